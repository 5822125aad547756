"""Root hints: the file (InterNIC ``named.root``) that tells where resolution starts.

The file is a zone file in the master-file format of RFC 1035 section 5.  The
subset a hints file needs is understood here: ``$ORIGIN`` and ``$TTL``
(RFC 2308 section 4), ``;`` comments, blank lines, absolute and relative owner
names, ``@``, an omitted owner (the previous one), TTL and class in either
order, and NS, A and AAAA records.  Anything else (``$INCLUDE``, parentheses,
other types, other classes) is rejected with the line number, rather than
half-understood.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass, field
from pathlib import Path

from resolver.wire.names import ROOT, BadName, name_key, normalize


def _default_hints() -> Path:
    """The shipped named.root: beside the package in a checkout, or where pip put it."""
    checkout = Path(__file__).resolve().parents[2] / "named.root"
    installed = Path(sys.prefix) / "share" / "resolver" / "named.root"
    return checkout if checkout.exists() or not installed.exists() else installed


DEFAULT_HINTS = _default_hints()


class HintsError(ValueError):
    """The hints file cannot be used; the message says where and why."""


@dataclass
class HintServer:
    """One root server: its name and the addresses the hints give for it."""

    name: str
    ipv4: list[str] = field(default_factory=list)
    ipv6: list[str] = field(default_factory=list)


@dataclass
class RootHints:
    """The root servers in file order (the first is asked first by a fresh resolver)."""

    servers: list[HintServer]
    ttl: int
    source: str

    def addresses(self) -> list[str]:
        """Every address of every root server, IPv4 and IPv6, in file order."""
        return [a for server in self.servers for a in server.ipv4 + server.ipv6]


def _absolute(name: str, origin: str, lineno: int) -> str:
    if name == "@":
        return origin
    try:
        if name.endswith(".") and not name.endswith("\\."):
            return normalize(name)
        return normalize(name + "." + origin) if origin != ROOT else normalize(name)
    except BadName as error:
        raise HintsError(f"line {lineno}: bad name {name!r}: {error}") from None


def _split_ttl_class(
    fields: list[str], lineno: int, default_ttl: int | None
) -> tuple[int, list[str]]:
    ttl = default_ttl
    while fields and (fields[0].isdigit() or fields[0].upper() in ("IN", "CH", "HS", "CS")):
        token = fields.pop(0)
        if token.isdigit():
            ttl = int(token)
        elif token.upper() != "IN":
            raise HintsError(f"line {lineno}: class {token} is not IN")
    if ttl is None:
        raise HintsError(f"line {lineno}: no TTL and no $TTL before it")
    return ttl, fields


def parse_root_hints(text: str, source: str = "<hints>") -> RootHints:
    """Parse hints text; raise :class:`HintsError` if no root server address is usable.

    Every error message starts with ``source`` (the file name), then the line.
    """
    try:
        return _parse(text, source)
    except HintsError as error:
        raise HintsError(f"{source}: {error}") from None


def _parse(text: str, source: str) -> RootHints:
    origin = ROOT
    default_ttl: int | None = None
    owner: str | None = None
    ns_names: list[str] = []
    addresses: dict[str, HintServer] = {}
    ttl_seen = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split(";", 1)[0].rstrip()
        if not line.strip():
            continue
        if "(" in line or ")" in line:
            raise HintsError(f"line {lineno}: multi-line records are not supported in hints")
        fields = line.split()
        directive = fields[0].upper()
        if directive == "$ORIGIN" and len(fields) == 2:
            origin = _absolute(fields[1], origin, lineno)  # a relative one extends the last
            continue
        if directive == "$TTL" and len(fields) == 2 and fields[1].isdigit():
            default_ttl = int(fields[1])
            continue
        if directive.startswith("$"):
            raise HintsError(f"line {lineno}: directive {fields[0]} is not supported in hints")
        if not line[0].isspace():
            owner = _absolute(fields.pop(0), origin, lineno)
        if owner is None:
            raise HintsError(f"line {lineno}: record without an owner name")
        ttl, fields = _split_ttl_class(fields, lineno, default_ttl)
        if len(fields) != 2:
            raise HintsError(f"line {lineno}: expected TYPE and one value, got {fields}")
        rrtype, value = fields[0].upper(), fields[1]
        if rrtype == "NS":
            if owner != ROOT:
                raise HintsError(f"line {lineno}: NS record for {owner}, hints hold only the root")
            ns_names.append(_absolute(value, origin, lineno))
            ttl_seen = max(ttl_seen, ttl)
        elif rrtype in ("A", "AAAA"):
            server = addresses.setdefault(name_key(owner), HintServer(owner))
            _add_address(server, rrtype, value, lineno)
        else:
            raise HintsError(f"line {lineno}: record type {fields[0]} is not used in hints")
    return _assemble(ns_names, addresses, ttl_seen, source)


def _add_address(server: HintServer, rrtype: str, value: str, lineno: int) -> None:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise HintsError(f"line {lineno}: {value!r} is not an IP address") from None
    if (address.version == 4) != (rrtype == "A"):
        raise HintsError(f"line {lineno}: {value} does not fit a {rrtype} record")
    (server.ipv4 if address.version == 4 else server.ipv6).append(str(address))


def _assemble(
    ns_names: list[str], addresses: dict[str, HintServer], ttl: int, source: str
) -> RootHints:
    servers = []
    for ns in ns_names:
        found = addresses.get(name_key(ns))
        servers.append(
            HintServer(ns, list(found.ipv4), list(found.ipv6)) if found else HintServer(ns)
        )
    if not any(server.ipv4 or server.ipv6 for server in servers):
        raise HintsError(
            "no root server with an address (need '. NS name' and 'name A addr' lines)"
        )
    return RootHints(servers, ttl or 3600000, source)


def load_root_hints(path: str | Path = DEFAULT_HINTS) -> RootHints:
    """Read and parse a hints file; errors name the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise HintsError(f"cannot read root hints {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise HintsError(f"root hints {path} is not UTF-8 text") from None
    return parse_root_hints(text, str(path))
