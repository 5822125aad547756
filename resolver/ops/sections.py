"""The sections of the configuration file: ``[local-zones]``, ``[forward-zones]``, ``[stub-zones]``.

Each parser takes the section's table (zone name -> what to do for it) and gives
a checked, comparable value (tuples of frozen dataclasses), or raises ValueError
with the reason; :data:`resolver.ops.config.SECTIONS` registers them.

- ``[local-zones]``: ``"corp.example." = "/etc/resolver/corp.example.zone"``, a
  master file (RFC 1035 section 5) served as a static local zone.
- ``[forward-zones]``: ``"corp.example." = { forwarders = ["192.0.2.53",
  "192.0.2.54@5353"], fallback = false }``: questions at or below the zone go to
  these recursive resolvers (RD=1); ``fallback`` iterates when all of them fail
  (Unbound's ``forward-first``).  A zone ``"."`` forwards everything.
  ``tls = true`` asks the forwarders over TLS (RFC 7858; Unbound's
  ``forward-tls-upstream``), port 853 unless given, each server authenticated by
  name (RFC 8310 section 8.1, the strict profile): ``tls-auth-name`` for all of
  them, or ``ADDRESS@PORT#NAME`` for one (Unbound's form); ``tls-ca-file`` is the
  authority to trust instead of the system's (:mod:`resolver.net.tls_upstream`).
- ``[stub-zones]``: ``"private." = { servers = ["10.0.0.53"] }``: iterate from
  these authoritative servers for the zone.

Servers are ``ADDRESS`` or ``ADDRESS@PORT`` (Unbound's form; IPv6 too).
"""

from __future__ import annotations

import ipaddress
import ssl
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
    # Forward zones over TLS: servers as ADDRESS@PORT#NAME, NAME their authentication name.
    tls: bool = False
    tls_ca_file: str | None = None  # the authority to trust; None: the system's


TLS_PORT = 853  # RFC 7858 section 3.1


def tls_server(value: str, auth_name: str | None) -> str:
    """A TLS forwarder as ``ADDRESS@PORT#NAME``: port 853 unless given, the name its own
    (after ``#``) or the zone's ``tls-auth-name``; ValueError without either."""
    address, _, name = value.partition("#")
    checked = server(address)
    if "@" not in checked:
        checked += f"@{TLS_PORT}"
    name = name or auth_name or ""
    if not name:
        raise ValueError(f"{value!r}: a TLS forwarder needs a name to authenticate it by "
                         "(tls-auth-name, or ADDRESS#NAME)")  # fmt: skip
    return f"{checked}#{zone_name(name).rstrip('.') or '.'}"


def _table(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a table, not {value!r}")
    return value


def _zones_of(table: dict[str, Any], stub: bool) -> tuple[DelegatedZone, ...]:
    key = "servers" if stub else "forwarders"
    allowed = {key} if stub else {key, "fallback", *TLS_KEYS}
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
            tls, auth_name, ca_file = _tls_keys(body)
            if tls:
                checked = tuple(tls_server(s, auth_name) for s in servers)
            elif any("#" in s for s in servers):
                raise ValueError("ADDRESS#NAME is for forwarders asked over TLS (tls = true)")
            else:
                checked = tuple(server(s) for s in servers)
        except ValueError as error:
            raise ValueError(f"zone {name!r}: {error}") from None
        zones.append(DelegatedZone(zone_name(name), stub, checked, fallback, tls, ca_file))
    no_duplicates([zone.zone for zone in zones])
    return tuple(sorted(zones, key=lambda zone: name_key(zone.zone)))


TLS_KEYS = ("tls", "tls-auth-name", "tls-ca-file")


def _tls_keys(body: dict[str, Any]) -> tuple[bool, str | None, str | None]:
    """A forward zone's ``tls``, ``tls-auth-name`` and ``tls-ca-file``, checked."""
    tls = body.get("tls", False)
    if not isinstance(tls, bool):
        raise ValueError(f"tls must be true or false, not {tls!r}")
    auth_name, ca_file = body.get("tls-auth-name"), body.get("tls-ca-file")
    for key, value in (("tls-auth-name", auth_name), ("tls-ca-file", ca_file)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{key} must be a non-empty string, not {value!r}")
        if value is not None and not tls:
            raise ValueError(f"{key} is for forwarders asked over TLS (tls = true)")
    if ca_file is not None:
        try:  # read now: a file that does not load is an error of the configuration
            ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as error:
            reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or error
            raise ValueError(f"tls-ca-file {ca_file}: {reason}") from None
    return tls, auth_name, ca_file


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
