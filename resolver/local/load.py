"""Putting the local zones together from what the configuration names.

Precedence, as Unbound's: a zone read from a master file replaces the default
zone of the same name, and a deeper zone wins below its apex (a file for
``1.168.192.in-addr.arpa.`` answers there, the default ``168.192.in-addr.arpa.``
everywhere else in it).  A default zone at or above a forward or stub zone is
left out, so that configuring a stub zone for a private reverse zone is enough
to reach it (a forward zone for ``.`` leaves every default in place: it is
above them).  Hosts-file names go into the local zone that covers them (the
default ``home.arpa.``, a zone file's) or, outside every zone, into a
transparent zone of their own; a PTR from the hosts file never replaces one a
zone already holds.

Every error is a :class:`LocalDataError` naming the file (and the line where the
reader knows it), so a reload can refuse bad data and say why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from resolver.local.defaults import default_zones
from resolver.local.hosts import HOSTS_TTL, load_hosts
from resolver.local.zones import LocalZone, LocalZones, LocalZoneType
from resolver.wire import CLASS_IN, ResourceRecord, RRType
from resolver.wire.names import is_subdomain, name_key, normalize
from resolver.wire.zonefile import load_zone


class LocalDataError(ValueError):
    """Local data that cannot be used: the message names the file and says why."""


@dataclass(frozen=True)
class LocalSources:
    """Where the local zones come from (the configuration's part, checked)."""

    defaults: bool = True  # serve the default zones (RFC 6303, RFC 6761)
    nodefault: tuple[str, ...] = ()  # default zones left out, by apex
    hosts_file: str | None = None
    hosts_ttl: int = HOSTS_TTL
    zone_files: tuple[tuple[str, str], ...] = ()  # (apex, path of a master file)
    delegated: tuple[str, ...] = ()  # forward and stub zones: defaults above them are left out


def load_local_zones(sources: LocalSources) -> LocalZones:
    """Every local zone ``sources`` describes; LocalDataError if a file is unusable."""
    zones: dict[str, LocalZone] = {}
    for apex, path in sources.zone_files:
        zone = read_zone_file(apex, path)
        zones[name_key(zone.apex)] = zone
    if sources.defaults:
        for zone in default_zones(sources.nodefault):
            key = name_key(zone.apex)
            covers_delegation = any(is_subdomain(d, zone.apex) for d in sources.delegated)
            if key not in zones and not covers_delegation:
                zones[key] = zone
    local = LocalZones(zones.values())
    if sources.hosts_file is not None:
        try:
            records = load_hosts(sources.hosts_file, sources.hosts_ttl)
        except ValueError as error:
            raise LocalDataError(str(error)) from None
        local = add_host_records(local, records, sources.hosts_file)
    return local


def add_host_records(
    local: LocalZones, records: Iterable[ResourceRecord], source: str
) -> LocalZones:
    """``local`` with hosts records added where they belong (see the module docstring)."""
    for record in records:
        zone = local.zone_for(record.name)
        if record.rrtype == RRType.PTR and zone is not None and zone.holds(record.name, RRType.PTR):
            continue
        if zone is None:
            zone = LocalZone(record.name, LocalZoneType.TRANSPARENT, source)
            local.add(zone)
        if zone.holds(record.name, RRType.CNAME):
            raise LocalDataError(
                f"{source}: {record.name} is a CNAME in {zone.source}: it cannot have an address"
            )
        zone.add(record)
    return local


def read_zone_file(apex: str, path: str) -> LocalZone:
    """A static local zone from an RFC 1035 master file whose origin is ``apex``."""
    try:
        apex = normalize(apex)
        records = load_zone(path, apex)
    except ValueError as error:  # ZoneFileError says file:line: why
        raise LocalDataError(str(error)) from None
    zone = LocalZone(apex, LocalZoneType.STATIC, path)
    for record in records:
        _check_record(record, zone, path)
        zone.add(record)
    if zone.soa is None:
        raise LocalDataError(f"{path}: no SOA record at the apex {apex} (RFC 1035 section 5.2)")
    return zone


def _check_record(record: ResourceRecord, zone: LocalZone, path: str) -> None:
    where = f"{path}: {record.name} {RRType.text(record.rrtype)}"
    if record.rrclass != CLASS_IN:
        raise LocalDataError(f"{where}: only class IN is served")
    if not is_subdomain(record.name, zone.apex):
        raise LocalDataError(f"{where}: outside the zone {zone.apex}")
    at_apex = name_key(record.name) == name_key(zone.apex)
    if record.rrtype == RRType.NS and not at_apex:
        raise LocalDataError(f"{where}: delegations are not served from local zones "
                             "(use a stub zone for the child)")  # fmt: skip
    if record.rrtype == RRType.SOA and not at_apex:
        raise LocalDataError(f"{where}: an SOA below the apex {zone.apex}")
    held = zone.data.get(name_key(record.name), {})
    is_cname = record.rrtype == RRType.CNAME
    if (is_cname and any(t != RRType.CNAME for t in held)) or (
        not is_cname and RRType.CNAME in held
    ):
        raise LocalDataError(
            f"{where}: a CNAME and other data at one name (RFC 1034 section 3.6.2)"
        )
    if is_cname and held.get(RRType.CNAME):
        raise LocalDataError(f"{where}: a second CNAME at one name")
