"""Local zones: names the resolver answers itself, without asking anyone (Unbound's local-zone).

A :class:`LocalZone` is a zone apex, a type, and the records held under it.  The
types are Unbound's:

- ``STATIC``: the zone is ours.  A name and type we hold is answered; a name we
  hold without that type is NODATA; any other name at or below the apex is
  NXDOMAIN.  Both negative answers carry the apex SOA in authority, as an
  authoritative server's do (RFC 2308 section 3), so clients cache them.  The
  default zones of RFC 6303 and RFC 6761, and zones read from master files, are
  static.
- ``REDIRECT``: every name at or below the apex gets the apex's records, with the
  owner rewritten to the name asked (``localhost.``: ``foo.localhost.`` is
  127.0.0.1 too, RFC 6761 section 6.3).
- ``TRANSPARENT``: names we hold are answered (NODATA for a type we do not hold);
  any other name is resolved as usual.  Names from a hosts file that fall in no
  other local zone get one each, as Unbound's local-data without a local-zone.

A CNAME held locally is answered and followed inside local data; when its target
is outside every local zone, :attr:`LocalAnswer.follow` names it and the caller
resolves the rest (the engine walks for it).  A DS question is asked of the zone
above a zone's apex (the DS lives on the parent side of a cut, RFC 4035 section
2.4), as Unbound does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from enum import Enum

from recordclass import dataobject

from resolver.wire import Rcode, ResourceRecord, RRType
from resolver.wire.names import ROOT, ancestors, is_subdomain, name_key, parent
from resolver.wire.rdata import CNAME, SOA

MAX_LOCAL_CNAMES = 11  # a chain inside local data: Unbound's max-query-restarts, as the engine


class LocalZoneType(Enum):
    STATIC = "static"
    REDIRECT = "redirect"
    TRANSPARENT = "transparent"


class LocalAnswer(dataobject, fast_new=True):
    """What local data says about a question: a whole answer, or the start of one.

    ``follow`` is set when a CNAME chain leaves local data: the name to resolve next
    (``answer`` holds the chain up to it; ``rcode`` and ``authority`` are then the
    caller's to decide from what it finds)."""

    rcode: int
    answer: list[ResourceRecord]
    authority: list[ResourceRecord]
    follow: str | None = None


class LocalZone:
    """One local zone: its apex, its type and the records held in it."""

    def __init__(self, apex: str, kind: LocalZoneType, source: str = "") -> None:
        self.apex = apex
        self.kind = kind
        self.source = source  # where it came from, for logs: "default", a file name
        # name key -> type -> records (one RRset per type)
        self.data: dict[str, dict[int, list[ResourceRecord]]] = {}
        self._names: set[str] = {name_key(apex)}  # held names and their empty non-terminals

    def add(self, record: ResourceRecord) -> None:
        """Hold ``record`` (a duplicate is ignored).  ValueError if it is outside the zone."""
        if not is_subdomain(record.name, self.apex):
            raise ValueError(f"{record.name} is not in the zone {self.apex}")
        key = name_key(record.name)
        rrset = self.data.setdefault(key, {}).setdefault(record.rrtype, [])
        if record not in rrset:
            rrset.append(record)
        name = record.name
        while name_key(name) not in self._names:
            self._names.add(name_key(name))
            name = parent(name)

    def holds(self, name: str, rrtype: int) -> bool:
        return rrtype in self.data.get(name_key(name), {})

    @property
    def soa(self) -> ResourceRecord | None:
        found = self.data.get(name_key(self.apex), {}).get(RRType.SOA)
        return found[0] if found else None

    def records(self) -> list[ResourceRecord]:
        return [rr for rrsets in self.data.values() for rrset in rrsets.values() for rr in rrset]

    def same_content(self, other: LocalZone) -> bool:
        """Same type and the same records (for a reload: what changed must be flushed)."""
        return self.kind is other.kind and sorted(map(_sort_key, self.records())) == sorted(
            map(_sort_key, other.records())
        )

    def answer(self, qname: str, qtype: int) -> LocalAnswer | None:
        """This zone's answer for a name at or below its apex; None: resolve as usual."""
        rrsets = self.data.get(name_key(qname))
        if rrsets is None and self.kind is LocalZoneType.REDIRECT:
            return self._redirected(qname, qtype)
        if rrsets is None:
            if self.kind is LocalZoneType.TRANSPARENT:
                return None
            exists = name_key(qname) in self._names  # an empty non-terminal exists
            return self._negative(Rcode.NOERROR if exists else Rcode.NXDOMAIN)
        if qtype == RRType.ANY:
            return LocalAnswer(Rcode.NOERROR, [rr for s in rrsets.values() for rr in s], [])
        found = rrsets.get(qtype) or rrsets.get(RRType.CNAME)
        if found is None:
            return self._negative(Rcode.NOERROR)
        return LocalAnswer(Rcode.NOERROR, list(found), [])

    def _redirected(self, qname: str, qtype: int) -> LocalAnswer:
        apex = self.data.get(name_key(self.apex), {})
        found = apex.get(qtype) or apex.get(RRType.CNAME)
        if found is None:
            return self._negative(Rcode.NOERROR)
        return LocalAnswer(
            Rcode.NOERROR,
            [ResourceRecord(qname, rr.rrtype, rr.rrclass, rr.ttl, rr.rdata) for rr in found],
            [],
        )

    def _negative(self, rcode: int) -> LocalAnswer:
        """NXDOMAIN or NODATA with the apex SOA, its TTL the negative TTL (RFC 2308 s. 3)."""
        soa = self.soa
        authority = []
        if soa is not None and isinstance(soa.rdata, SOA):
            ttl = min(soa.ttl, soa.rdata.minimum)
            authority = [ResourceRecord(soa.name, soa.rrtype, soa.rrclass, ttl, soa.rdata)]
        return LocalAnswer(rcode, [], authority)


def _sort_key(record: ResourceRecord) -> tuple[str, int, int, str]:
    return name_key(record.name), record.rrtype, record.ttl, record.rdata.to_text()


class LocalZones:
    """Every local zone of the resolver, found by the deepest apex at or above a name."""

    def __init__(self, zones: Iterable[LocalZone] = ()) -> None:
        self._zones: dict[str, LocalZone] = {}
        for zone in zones:
            self.add(zone)

    def __bool__(self) -> bool:
        return bool(self._zones)

    def __len__(self) -> int:
        return len(self._zones)

    def __iter__(self) -> Iterator[LocalZone]:
        return iter(self._zones.values())

    def add(self, zone: LocalZone) -> None:
        """Add ``zone`` (replacing one with the same apex); for building, not while serving."""
        self._zones[name_key(zone.apex)] = zone

    def get(self, apex: str) -> LocalZone | None:
        return self._zones.get(name_key(apex))

    def zone_for(self, name: str, qtype: int = RRType.A) -> LocalZone | None:
        """The deepest local zone at or above ``name`` (above it, for DS: the parent side)."""
        if not self._zones:
            return None
        if qtype == RRType.DS and name != ROOT:
            name = parent(name)
        for candidate in ancestors(name):
            zone = self._zones.get(name_key(candidate))
            if zone is not None:
                return zone
        return None

    def lookup(self, qname: str, qtype: int) -> LocalAnswer | None:
        """The local answer to (qname, qtype, IN), or None when it is not local."""
        zone = self.zone_for(qname, qtype)
        first = zone.answer(qname, qtype) if zone is not None else None
        if first is None or not _ends_in_cname(first, qtype):
            return first
        chain = list(first.answer)
        for _ in range(MAX_LOCAL_CNAMES):
            target = _cname_target(chain[-1])
            zone = self.zone_for(target, qtype)
            step = zone.answer(target, qtype) if zone is not None else None
            if step is None:
                return LocalAnswer(Rcode.NOERROR, chain, [], follow=target)
            chain += step.answer
            if not _ends_in_cname(step, qtype):
                return LocalAnswer(step.rcode, chain, step.authority)
        return LocalAnswer(Rcode.SERVFAIL, chain, [])  # a loop in local data

    def changed(self, other: LocalZones) -> list[str]:
        """Apexes whose zone differs between ``self`` and ``other`` (added, removed or
        changed): what a reload must flush from the answer cache."""
        apexes = {**{k: z.apex for k, z in self._zones.items()},
                  **{k: z.apex for k, z in other._zones.items()}}  # fmt: skip
        changed = []
        for key, apex in sorted(apexes.items()):
            mine, theirs = self._zones.get(key), other._zones.get(key)
            if mine is None or theirs is None or not mine.same_content(theirs):
                changed.append(apex)
        return changed


def _ends_in_cname(answer: LocalAnswer, qtype: int) -> bool:
    return (
        qtype not in (RRType.CNAME, RRType.ANY)
        and bool(answer.answer)
        and answer.answer[-1].rrtype == RRType.CNAME
    )


def _cname_target(record: ResourceRecord) -> str:
    assert isinstance(record.rdata, CNAME)
    return record.rdata.target
