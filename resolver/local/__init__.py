"""Local zones: what the resolver answers itself, with no upstream query (Unbound's local-zone).

A floor of its own, importing only :mod:`resolver.wire`: the default zones of
RFC 6303 and RFC 6761 (:mod:`.defaults`), hosts files (:mod:`.hosts`), zone
files read with :mod:`resolver.wire.zonefile`, and the lookup that answers from
them (:mod:`.zones`).  :mod:`.load` puts them together from the configuration.
The engine asks :meth:`LocalZones.lookup` before anything else.
"""

from resolver.local.defaults import DEFAULT_ZONES, check_zone_names, default_zones
from resolver.local.hosts import HOSTS_TTL, HostsError, load_hosts, parse_hosts
from resolver.local.load import LocalDataError, LocalSources, load_local_zones, read_zone_file
from resolver.local.zones import LocalAnswer, LocalZone, LocalZones, LocalZoneType

__all__ = [
    "DEFAULT_ZONES",
    "HOSTS_TTL",
    "HostsError",
    "LocalAnswer",
    "LocalDataError",
    "LocalSources",
    "LocalZone",
    "LocalZoneType",
    "LocalZones",
    "check_zone_names",
    "default_zones",
    "load_hosts",
    "load_local_zones",
    "parse_hosts",
    "read_zone_file",
]
