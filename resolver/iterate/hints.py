"""Root hints: the file (InterNIC ``named.root``) that tells where resolution starts.

The file is a zone file in the master-file format of RFC 1035 section 5, read
with the project's one master-file reader, :mod:`resolver.wire.zonefile`
(``$ORIGIN``, ``$TTL``, comments, parentheses, relative names, ``@``, omitted
owner, TTL and class in either order).  What a hints file may hold is checked
here: NS records for the root and A and AAAA records, class IN; anything else
(another type or class, an NS for another zone, ``$INCLUDE``) is rejected with
the file and the line, rather than half-understood.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from resolver.wire import CLASS_IN, ResourceRecord, RRType
from resolver.wire.names import ROOT, name_key
from resolver.wire.rdata import AAAA, NS, A
from resolver.wire.zonefile import CLASS_MNEMONICS, ZoneFileError, entries, parse_zone


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


def parse_root_hints(text: str, source: str = "<hints>") -> RootHints:
    """Parse hints text; raise :class:`HintsError` if no root server address is usable.

    Every error message starts with ``source`` (the file name), then the line.
    """
    try:
        records = parse_zone(text, ROOT, source)
        lines = _record_lines(text, source)
    except ZoneFileError as error:
        raise HintsError(f"{source}: line {error.line}: {error.reason}") from None
    ns_names: list[str] = []
    addresses: dict[str, HintServer] = {}
    ttl = 0
    for record, lineno in zip(records, lines, strict=True):
        try:
            _check(record)
        except ValueError as error:
            raise HintsError(f"{source}: line {lineno}: {error}") from None
        if isinstance(record.rdata, NS):
            ns_names.append(record.rdata.target)
            ttl = max(ttl, record.ttl)
        elif isinstance(record.rdata, A | AAAA):
            server = addresses.setdefault(name_key(record.name), HintServer(record.name))
            ipv4 = isinstance(record.rdata, A)
            (server.ipv4 if ipv4 else server.ipv6).append(record.rdata.address)
    try:
        return _assemble(ns_names, addresses, ttl, source)
    except HintsError as error:
        raise HintsError(f"{source}: {error}") from None


def _record_lines(text: str, source: str) -> list[int]:
    """The line each record of ``text`` starts on, in the order parse_zone gives them
    (one record per entry that is not a directive)."""
    return [e.line for e in entries(text, source) if not (e.has_owner and e.tokens[0][:1] == "$")]


def _check(record: ResourceRecord) -> None:
    """ValueError if ``record`` has no place in a hints file."""
    if record.rrclass != CLASS_IN:
        names = {code: text for text, code in CLASS_MNEMONICS.items()}
        raise ValueError(f"class {names.get(record.rrclass, record.rrclass)} is not IN")
    if record.rrtype == RRType.NS and name_key(record.name) != ROOT:
        raise ValueError(f"NS record for {record.name}, hints hold only the root")
    if record.rrtype not in (RRType.NS, RRType.A, RRType.AAAA):
        raise ValueError(f"record type {RRType.text(record.rrtype)} is not used in hints")


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
