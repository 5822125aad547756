"""The zones every resolver serves itself unless told not to (RFC 6761, RFC 6303, RFC 7686).

The list and the contents are Unbound's (services/localzone.c
``local_zone_enter_defaults`` and util/as112.c), with the special-use names
RFC 8375, RFC 9462 and RFC 9665 added since:

- ``localhost.`` (RFC 6761 section 6.3) is a redirect zone: it and every name
  below it are 127.0.0.1 and ::1;
- the loopback reverse zones answer ``PTR localhost.`` for 127.0.0.1 and ::1;
- every other zone is empty (RFC 6303 section 3: an SOA and an NS at the apex,
  NXDOMAIN below it): the reverse zones of private (RFC 1918), shared (RFC 6598),
  link-local, documentation (RFC 5737, RFC 3849), unique-local (RFC 4193) and
  unspecified addresses, and the special-use names ``onion.`` (RFC 7686),
  ``test.`` and ``invalid.`` (RFC 6761), ``home.arpa.`` (RFC 8375),
  ``resolver.arpa.`` (RFC 9462 section 6.4) and ``service.arpa.`` (RFC 9665).

Questions for them never leave the resolver, so private reverse lookups and
typos of special-use names do not reach the root or the AS112 servers.  Each can
be turned off by name (Unbound's ``local-zone: "X." nodefault``), or all of
them at once.
"""

from __future__ import annotations

from collections.abc import Iterable

from resolver.local.zones import LocalZone, LocalZoneType
from resolver.wire import CLASS_IN, ResourceRecord, RRType
from resolver.wire.names import name_key, normalize
from resolver.wire.rdata import AAAA, NS, PTR, SOA, A, Rdata

DEFAULT_TTL = 10800  # Unbound's, for every record of the default zones
LOCALHOST = "localhost."
LOOPBACK_V4_REVERSE = "127.in-addr.arpa."
LOOPBACK_V6_REVERSE = "1." + "0." * 31 + "ip6.arpa."

_EMPTY_ZONES: tuple[str, ...] = (
    "onion.",  # RFC 7686
    "test.",  # RFC 6761 section 6.2
    "invalid.",  # RFC 6761 section 6.4
    "home.arpa.",  # RFC 8375
    "resolver.arpa.",  # RFC 9462 section 6.4
    "service.arpa.",  # RFC 9665
    # RFC 6303 section 4.1: RFC 1918 private addresses
    "10.in-addr.arpa.",
    *(f"{n}.172.in-addr.arpa." for n in range(16, 32)),
    "168.192.in-addr.arpa.",
    # RFC 6303 section 4.2-4.5: "this" network, link-local, documentation, broadcast
    "0.in-addr.arpa.",
    *(f"{n}.100.in-addr.arpa." for n in range(64, 128)),  # RFC 6598 shared address space
    "254.169.in-addr.arpa.",
    "2.0.192.in-addr.arpa.",  # RFC 5737 TEST-NET-1
    "100.51.198.in-addr.arpa.",  # TEST-NET-2
    "113.0.203.in-addr.arpa.",  # TEST-NET-3
    "255.255.255.255.in-addr.arpa.",
    # RFC 6303 section 4.6-4.8: IPv6 unspecified, unique-local, link-local, documentation
    "0." * 32 + "ip6.arpa.",
    "d.f.ip6.arpa.",
    "8.e.f.ip6.arpa.",
    "9.e.f.ip6.arpa.",
    "a.e.f.ip6.arpa.",
    "b.e.f.ip6.arpa.",
    "8.b.d.0.1.0.0.2.ip6.arpa.",  # RFC 3849
)

DEFAULT_ZONES: tuple[str, ...] = (LOCALHOST, LOOPBACK_V4_REVERSE, LOOPBACK_V6_REVERSE,
                                  *_EMPTY_ZONES)  # fmt: skip
"""Every default zone's apex, in the order Unbound enters them."""


def _record(name: str, rrtype: int, rdata: Rdata) -> ResourceRecord:
    return ResourceRecord(name, rrtype, CLASS_IN, DEFAULT_TTL, rdata)


def _apex_records(apex: str) -> list[ResourceRecord]:
    """The SOA and NS every default zone has (Unbound's: served by "localhost.")."""
    soa = SOA(LOCALHOST, "nobody.invalid.", 1, 3600, 1200, 604800, DEFAULT_TTL)
    return [_record(apex, RRType.SOA, soa), _record(apex, RRType.NS, NS(LOCALHOST))]


def _zone(apex: str) -> LocalZone:
    kind = LocalZoneType.REDIRECT if apex == LOCALHOST else LocalZoneType.STATIC
    zone = LocalZone(apex, kind, "default")
    for record in _apex_records(apex):
        zone.add(record)
    if apex == LOCALHOST:
        zone.add(_record(apex, RRType.A, A("127.0.0.1")))
        zone.add(_record(apex, RRType.AAAA, AAAA("::1")))
    elif apex == LOOPBACK_V4_REVERSE:
        zone.add(_record("1.0.0.127.in-addr.arpa.", RRType.PTR, PTR(LOCALHOST)))
    elif apex == LOOPBACK_V6_REVERSE:
        zone.add(_record(apex, RRType.PTR, PTR(LOCALHOST)))
    return zone


def check_zone_names(names: Iterable[str]) -> tuple[str, ...]:
    """Zone names as typed, normalised (absolute, with the final dot); ValueError if one
    is not a default zone (a typo must not leave the zone it meant served)."""
    defaults = {name_key(zone) for zone in DEFAULT_ZONES}
    checked = []
    for name in names:
        normal = normalize(name)
        if name_key(normal) not in defaults:
            raise ValueError(f"{name!r} is not one of the default local zones")
        checked.append(normal)
    return tuple(checked)


def default_zones(nodefault: Iterable[str] = ()) -> list[LocalZone]:
    """The default local zones, less those named in ``nodefault``."""
    skipped = {name_key(normalize(name)) for name in nodefault}
    return [_zone(apex) for apex in DEFAULT_ZONES if name_key(apex) not in skipped]
