"""Lookup structures for policies of a million names: names by wire form, IPs by prefix.

Names are keyed by their uncompressed wire form with ASCII case folded
(:func:`name_wire`), the form a query carries them in: the listener's fast path
holds the question's name that way already (the wire cache's key), so checking a
query costs one dictionary lookup for the exact name and one per label above it
for wildcards, each a slice of the same bytes, and no conversion to text.  A
name's ancestors are suffixes of its wire form at label boundaries, which is why
the key is the wire form as it is and not its labels reversed: a suffix is a
slice, and a slice is a dictionary key.

Memory: one bytes object and one dictionary slot per name, about 110 bytes for
a typical blocklist name, and a reference to a rule shared by every name with
the same action (:data:`resolver.policy.rules.SPECIAL_RULES`).

:class:`PrefixIndex` keeps IP prefixes per address family and prefix length, as
integers with the host bits zero; a lookup masks the address once per prefix
length present (a few, in practice) from the longest down, so the longest
prefix wins (RPZ section 5.4).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

from resolver.policy.rules import Rule
from resolver.wire.names import BadName, labels_to_text, name_key, name_to_wire

ROOT_WIRE = b"\x00"
_BITS = {4: 32, 6: 128}


def name_wire(name: str) -> bytes:
    """The lookup key of a text name: its wire form, ASCII case folded; BadName if it is
    not a name.  The wire codec's cached converter is not used: a million names read
    once would only push out the names it holds for the hot paths."""
    return name_to_wire.__wrapped__(name_key(name))


def parent_wires(wire: bytes) -> Iterator[bytes]:
    """The keys of the names above a name, closest first, the root last."""
    pos = 0
    length = wire[0]
    while length:
        pos += length + 1
        yield wire[pos:]
        length = wire[pos]


def wire_text(wire: bytes) -> str:
    """A key back as text (for logs and listings)."""
    labels = []
    pos = 0
    while wire[pos]:
        length = wire[pos]
        labels.append(wire[pos + 1 : pos + 1 + length])
        pos += length + 1
    return labels_to_text(labels)


class NameIndex:
    """Rules by name: exact names, and wildcards (``*.parent``, matching every name
    strictly below ``parent``, RPZ section 6.1), keyed by the parent."""

    __slots__ = ("below", "exact")

    def __init__(self) -> None:
        self.exact: dict[bytes, Rule] = {}
        self.below: dict[bytes, Rule] = {}

    def __len__(self) -> int:
        return len(self.exact) + len(self.below)

    def __bool__(self) -> bool:
        return bool(self.exact) or bool(self.below)

    def table(self, wildcard: bool) -> dict[bytes, Rule]:
        return self.below if wildcard else self.exact

    def find(self, wire: bytes) -> tuple[Rule, bytes, bool] | None:
        """The rule for a name: its exact rule, else the wildcard of the closest name
        above it (an exact owner beats a wildcard, a longer wildcard a shorter one: RPZ
        section 5.4); with the key that matched and whether it was a wildcard."""
        rule = self.exact.get(wire)
        if rule is not None:
            return rule, wire, False
        below = self.below
        if below:
            for parent in parent_wires(wire):
                rule = below.get(parent)
                if rule is not None:
                    return rule, parent, True
        return None

    def matches(self, wire: bytes) -> bool:
        """Whether :meth:`find` would find a rule (the fast path's question)."""
        if wire in self.exact:
            return True
        below = self.below
        if below:
            pos = 0
            length = wire[0]
            while length:
                pos += length + 1
                if wire[pos:] in below:
                    return True
                length = wire[pos]
        return False


class PrefixIndex:
    """Rules by IP prefix, IPv4 and IPv6 apart; the longest matching prefix wins."""

    __slots__ = ("_count", "_lengths", "_tables")

    def __init__(self) -> None:
        # family (4 or 6) -> prefix length -> network as an integer -> rule
        self._tables: dict[int, dict[int, dict[int, Rule]]] = {4: {}, 6: {}}
        self._lengths: dict[int, list[tuple[int, int]]] = {4: [], 6: []}  # (length, mask)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def get(self, version: int, length: int, network: int) -> Rule | None:
        return self._tables[version].get(length, {}).get(network)

    def put(self, version: int, length: int, network: int, rule: Rule | None) -> None:
        """Set (or with None remove) the rule of one prefix."""
        by_length = self._tables[version]
        table = by_length.get(length)
        if rule is None:
            if table is not None and table.pop(network, None) is not None:
                self._count -= 1
                if not table:
                    del by_length[length]
                    self._index_lengths(version)
            return
        if table is None:
            table = by_length[length] = {}
            self._index_lengths(version)
        if network not in table:
            self._count += 1
        table[network] = rule

    def _index_lengths(self, version: int) -> None:
        bits = _BITS[version]
        full = (1 << bits) - 1
        self._lengths[version] = [
            (length, full ^ ((1 << (bits - length)) - 1))
            for length in sorted(self._tables[version], reverse=True)
        ]

    def find(self, version: int, address: int) -> tuple[Rule, int, int] | None:
        """The rule of the longest prefix holding ``address``: (rule, length, network)."""
        tables = self._tables[version]
        for length, mask in self._lengths[version]:
            network = address & mask
            rule = tables[length].get(network)
            if rule is not None:
                return rule, length, network
        return None

    def items(self) -> Iterator[tuple[int, int, int, Rule]]:
        """Every (family, length, network, rule)."""
        for version, by_length in self._tables.items():
            for length, table in by_length.items():
                for network, rule in table.items():
                    yield version, length, network, rule


def parse_address(text: str) -> tuple[int, int] | None:
    """(family 4 or 6, the address as an integer), or None if ``text`` is neither."""
    try:
        if ":" in text:
            return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text.split("%", 1)[0]))
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text))
    except OSError:
        return None


def prefix_text(version: int, length: int, network: int) -> str:
    """A prefix as people write it: ``192.0.2.0/24``, ``2001:db8::/32``."""
    if version == 4:
        address = socket.inet_ntoa(network.to_bytes(4, "big"))
    else:
        address = socket.inet_ntop(socket.AF_INET6, network.to_bytes(16, "big"))
    return f"{address}/{length}"


__all__ = [
    "ROOT_WIRE",
    "BadName",
    "NameIndex",
    "PrefixIndex",
    "name_wire",
    "parent_wires",
    "parse_address",
    "prefix_text",
    "wire_text",
]
