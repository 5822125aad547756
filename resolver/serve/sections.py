"""The sections of the configuration file: ``[local-zones]``, ``[forward-zones]``, ``[stub-zones]``.

Each parser takes the section's table (zone name -> what to do for it) and gives
a checked, comparable value (tuples of frozen dataclasses), or raises ValueError
with the reason; :data:`resolver.serve.config.SECTIONS` registers them.

- ``[local-zones]``: ``"corp.example." = "/etc/resolver/corp.example.zone"``, a
  master file (RFC 1035 section 5) served as a static local zone.
- ``[forward-zones]``: ``"corp.example." = { forwarders = ["192.0.2.53",
  "192.0.2.54@5353"], fallback = false }``: questions at or below the zone go to
  these recursive resolvers (RD=1); ``fallback`` iterates when all of them fail
  (Unbound's ``forward-first``).  A zone ``"."`` forwards everything.
- ``[stub-zones]``: ``"private." = { servers = ["10.0.0.53"] }``: iterate from
  these authoritative servers for the zone.

Servers are ``ADDRESS`` or ``ADDRESS@PORT`` (Unbound's form; IPv6 too).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from resolver.local import check_zone_names
from resolver.wire.names import name_key, normalize


def zone_name(value: str) -> str:
    """A zone name, absolute (the final dot added)."""
    try:
        return normalize(value)
    except ValueError as error:
        raise ValueError(f"{value!r} is not a domain name: {error}") from None


def default_zone_name(value: str) -> str:
    return check_zone_names([value])[0]


def server(value: str) -> str:
    """``ADDRESS`` or ``ADDRESS@PORT`` (Unbound's form, IPv6 too), checked."""
    address, at, port = value.partition("@")
    try:
        checked = str(ipaddress.ip_address(address))
    except ValueError:
        raise ValueError(f"{address!r} is not an IP address") from None
    if not at:
        return checked
    if not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{value!r}: {port!r} after @ is not a port number")
    return f"{checked}@{int(port)}"


@dataclass(frozen=True)
class DelegatedZone:
    """A forward zone (``[forward-zones]``) or a stub zone (``[stub-zones]``), checked."""

    zone: str
    stub: bool  # a stub zone: iterate from these authoritative servers; else forward to them
    servers: tuple[str, ...]  # ADDRESS or ADDRESS@PORT
    fallback: bool = False  # forward zones: iterate when every forwarder fails


def _table(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a table, not {value!r}")
    return value


def _zones_of(table: dict[str, Any], stub: bool) -> tuple[DelegatedZone, ...]:
    key = "servers" if stub else "forwarders"
    allowed = {key} if stub else {key, "fallback"}
    zones = []
    for name, value in table.items():
        body = _table(value, f"zone {name!r}")
        unknown = set(body) - allowed
        if unknown:
            raise ValueError(f"zone {name!r}: unknown key {sorted(unknown)[0]!r} "
                             f"(known: {', '.join(sorted(allowed))})")  # fmt: skip
        servers = body.get(key)
        if isinstance(servers, str):
            servers = [servers]
        if (
            not servers
            or not isinstance(servers, list)
            or not all(isinstance(v, str) for v in servers)
        ):
            raise ValueError(f"zone {name!r}: {key} must be a list of addresses, not {servers!r}")
        fallback = body.get("fallback", False)
        if not isinstance(fallback, bool):
            raise ValueError(f"zone {name!r}: fallback must be true or false, not {fallback!r}")
        try:
            checked = tuple(server(s) for s in servers)
        except ValueError as error:
            raise ValueError(f"zone {name!r}: {error}") from None
        zones.append(DelegatedZone(zone_name(name), stub, checked, fallback))
    no_duplicates([zone.zone for zone in zones])
    return tuple(sorted(zones, key=lambda zone: name_key(zone.zone)))


def no_duplicates(zones: list[str]) -> None:
    seen: set[str] = set()
    for zone in zones:
        if name_key(zone) in seen:
            raise ValueError(f"zone {zone} is given twice")
        seen.add(name_key(zone))


def parse_forward_zones(table: dict[str, Any]) -> tuple[DelegatedZone, ...]:
    """``"zone." = { forwarders = ["ADDR", "ADDR@PORT"], fallback = false }``."""
    return _zones_of(table, stub=False)


def parse_stub_zones(table: dict[str, Any]) -> tuple[DelegatedZone, ...]:
    """``"zone." = { servers = ["ADDR", "ADDR@PORT"] }``."""
    return _zones_of(table, stub=True)


def parse_local_zones(table: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """``"zone." = "PATH"``: a master file (RFC 1035 section 5) served as a local zone."""
    files = []
    for name, path in table.items():
        if not isinstance(path, str) or not path:
            raise ValueError(f"zone {name!r}: the value is the path of its zone file, not {path!r}")
        files.append((zone_name(name), path))
    no_duplicates([zone for zone, _ in files])
    return tuple(sorted(files, key=lambda item: name_key(item[0])))
