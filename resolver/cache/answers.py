"""Whole answers kept in wire form, for the listener's cache-hit fast path.

A repeated question is answered without building a single object: the raw
query's question (lower-cased) is the key, the stored response is copied, and
only the ID, the RD and CD flags and the question's letter case are patched in.
Anything unusual about a query (compression in the question, EDNS options, a
second record, an answer too large for the client's UDP size) is left to the
normal path, which parses and checks everything.

TTLs count down with the time spent in the cache (RFC 1035 section 7.4): the
stored response always holds its TTLs as of its ``stored`` time, and a hit a
second or more later rewrites them once (and moves ``stored`` forward by the
whole seconds counted down), so the next hits in that second copy the bytes as
they are.  TTL offsets are found by walking the records then, not kept.

Each entry is one bytes object, to keep a cached answer small (it is most of
what a resolver's memory holds): a 20-byte prefix (``stored`` as a double, the
lifetime left from then and the whole lifetime it was stored with, in seconds:
prefetch asks for a refresh in its last tenth; then what the entry keeps of the
record cache's RRset it holds, if any, see below) then the response less its
question (each query brings its own).  Entries expire with the smallest TTL of
the records they contain and are bounded in number (a segmented LRU: answers
asked once go first).  The operator's flushes (``resolver-control flush``,
``flush-zone``, ``flush-negative``) remove the answers that hold a name: the
question's own, and the names further down a CNAME chain, kept for the few
entries that have them.

An answer whose answer section is one RRset, owned by the question's name and
of its type (with its RRSIGs when the client set DO), is also the record
cache's copy of that RRset: the record cache lets its own copy go
(:meth:`~resolver.cache.records.RecordCache.release`) and rebuilds the RRset
from here when the engine asks, so that a name asked once is kept once.  Such
an entry *holds* the RRset: its prefix keeps in one byte what the wire does not
say, the RRset's trust (RFC 2181 section 5.4.1) and DNSSEC state, and in three
the record cache's tag for it (its filter of held RRsets: ``unheld`` is told
the tag of each answer that stops holding, whatever the reason); with
serve-stale it is kept ``stale_window`` seconds past its expiry (RFC 8767), for
the record cache's stale lookups, never for clients.  At most one answer per
question holds (the record cache sees to it), and only answers to clients
without CD (whose answers are validated).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable, Iterator

from resolver.cache.lru import LruDict
from resolver.wire import HEADER_SIZE, Rcode, ResourceRecord, RRType, WireError, parse_message
from resolver.wire.header import RCODE_MASK
from resolver.wire.names import is_subdomain, name_key, name_to_wire, normalize
from resolver.wire.raw import (
    AD_KEY,
    DO_KEY,
    EDNS_KEY,
    QuestionKey,
    answer_flags,
    key_name,
    key_name_wire,
    key_qtype,
    key_question,
)

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
# stored (the clock's time), lifetime, whole lifetime, and what an answer holding a
# record cache's RRset keeps of it: its rank (a byte), its tag (3 bytes); 0 if none.
_PREFIX = struct.Struct("!dIII")
_STORED = struct.Struct("!dI")  # the prefix's first two fields
_HELD = _U32
_HELD_AT = _PREFIX.size - 4  # the rank's byte, then the tag
TAG_MASK = 0xFFFFFF
_AT = _PREFIX.size  # where the response starts in an entry
_FLAGS_AT = _AT + 2  # its flag bytes
_COUNTS_AT = _AT + 4  # its section counts
_RECORDS_AT = _AT + HEADER_SIZE  # its first record (no question)
PREFETCH_SHARE = 0.1  # a hit in the last tenth of an answer's lifetime asks for a refresh


# The flags bytes of the keys whose answers may hold a record cache's RRset (none with CD;
# DO comes with EDNS), the likeliest first: dnsperf's plain query, dig's EDNS and AD.
HOLDING_FLAGS = tuple(
    bytes((flags,))
    for flags in (0, EDNS_KEY | AD_KEY, EDNS_KEY, EDNS_KEY | DO_KEY, EDNS_KEY | DO_KEY | AD_KEY,
                  AD_KEY)
)  # fmt: skip
_HOLDING = frozenset(flags[0] for flags in HOLDING_FLAGS)


def _ttl_offsets(wire: bytes | bytearray, header: int, records: int) -> list[int]:
    """Offsets of the TTL field of every record but OPT, found by walking the records
    from ``records``; the section counts are in the header at ``header``."""
    offsets = []
    pos = records
    counts = _U16.unpack_from(wire, header + 6)[0] + _U16.unpack_from(wire, header + 8)[0]
    counts += _U16.unpack_from(wire, header + 10)[0]
    for _ in range(counts):
        while True:
            length = wire[pos]
            if length >= 0xC0:
                pos += 2
                break
            pos += length + 1
            if length == 0:
                break
        rrtype = _U16.unpack_from(wire, pos)[0]
        if rrtype != RRType.OPT:
            offsets.append(pos + 4)
        pos += 10 + _U16.unpack_from(wire, pos + 8)[0]
    return offsets


def _counted_down(entry: bytes, elapsed: int) -> bytes:
    """The entry ``elapsed`` whole seconds later: TTLs lowered, ``stored`` moved on."""
    stored, lifetime, whole, held = _PREFIX.unpack_from(entry)
    out = bytearray(entry)
    _PREFIX.pack_into(out, 0, stored + elapsed, lifetime - elapsed, whole, held)
    for offset in _ttl_offsets(out, _AT, _RECORDS_AT):
        ttl = _U32.unpack_from(out, offset)[0]
        _U32.pack_into(out, offset, max(ttl - elapsed, 0))
    return bytes(out)


class AnswerCache:
    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.time):
        self.clock = clock
        # key -> prefix + response less its question
        self._entries: LruDict[bytes, bytes] = LruDict(max_entries, self._evicted)
        self._names: dict[bytes, tuple[str, ...]] = {}  # other owners (CNAME chains), folded
        self.hits = 0
        self.misses = 0
        # Told (key, seconds left) of a hit in the last tenth of an answer's lifetime, so
        # that the answer can be refreshed before it expires (prefetch); None: nobody.
        self.expiring: Callable[[QuestionKey, float], None] | None = None
        # Seconds an answer holding a record cache's RRset is kept once expired (serve-stale),
        # and who is told the tag of an answer that stops holding one: set by that cache.
        self.stale_window = 0.0
        self.unheld: Callable[[int], None] | None = None

    @property
    def max_entries(self) -> int:
        return self._entries.max_entries

    @property
    def evictions(self) -> int:
        return self._entries.evictions

    def __len__(self) -> int:
        return len(self._entries)

    def store(
        self,
        key: QuestionKey,
        response: bytes,
        lifetime: int | None = None,
        names: Iterable[str] = (),
    ) -> bool:
        """Keep a response (as sent to a client) for as long as its shortest TTL; False if
        it was not kept.

        ``lifetime`` is for a response without records to count down, such as a
        SERVFAIL, which RFC 2308 section 7.1 allows to be cached for a short while.
        ``names`` are the owners in the answer besides the question's (the targets of
        a CNAME chain), so that flushing one of them drops this answer too.

        A live answer holding the record cache's RRset is not replaced: the response
        came from that RRset (the normal path takes a question the fast path had an
        answer for only when the answer is too large for the client), or from data the
        record cache refused as ranked below it.
        """
        current = self._entries.peek(key.key)
        if current is not None and current[_HELD_AT] and _left(current, self.clock()) > 0:
            return False
        if lifetime is None:
            offsets = _ttl_offsets(response, 0, key.end)
            if not offsets:
                return False  # nothing to count down: never cached
            lifetime = min(_U32.unpack_from(response, o)[0] for o in offsets)
            if lifetime <= 0:
                return False  # TTL 0 data: never cached
        entry = b"".join(
            (
                _PREFIX.pack(self.clock(), lifetime, lifetime, 0),
                response[:HEADER_SIZE],
                response[key.end :],
            )
        )
        name = key.key
        chain = tuple(names)
        if chain:
            self._names[name] = chain
        elif self._names:
            self._names.pop(name, None)
        if current is not None:
            self._gone(current)  # replaced (one holding an RRset, only once expired)
        self._entries.put(name, entry)
        return True

    def answer(self, key: QuestionKey, packet: bytes) -> bytes | None:
        """The stored response patched for this query, or None (miss, expired, too big)."""
        entries = self._entries
        name = key.key
        entry = entries.peek(name)
        if entry is None:
            self.misses += 1
            return None
        stored, lifetime, whole, held = _PREFIX.unpack_from(entry)
        age = self.clock() - stored
        if age >= lifetime:
            if not held or age >= lifetime + self.stale_window:
                self._drop(name)  # (one holding an RRset is the record cache's stale copy)
            self.misses += 1
            return None
        end = key.end
        if len(entry) - _AT + end - HEADER_SIZE > key.udp_size:
            return None  # the normal path truncates
        if age >= 1.0:
            entry = _counted_down(entry, int(age))
        entries.hit(name, entry)
        self.hits += 1
        left = lifetime - age
        if (left < whole * PREFETCH_SHARE and self.expiring is not None
                and entry[_FLAGS_AT + 1] & RCODE_MASK != Rcode.SERVFAIL):  # fmt: skip
            self.expiring(key, left)
        flags = answer_flags(entry, _FLAGS_AT, packet)  # the client's RD and CD
        # The question as the client wrote it, the rest as stored.
        return b"".join((packet[:2], flags, entry[_COUNTS_AT:_RECORDS_AT],
                         packet[HEADER_SIZE:end], entry[_RECORDS_AT:]))  # fmt: skip

    def _drop(self, name: bytes) -> None:
        entry = self._entries.pop(name)
        if entry is not None:
            self._evicted(name, entry)

    def _evicted(self, name: bytes, entry: bytes) -> None:
        """An entry is gone (evicted, expired, flushed, forgotten)."""
        if self._names:
            self._names.pop(name, None)
        self._gone(entry)

    def _gone(self, entry: bytes) -> None:
        """An entry stops holding an RRset (if it held one): its record cache is told."""
        held = _HELD.unpack_from(entry, _HELD_AT)[0]
        if held and self.unheld is not None:
            self.unheld(held & TAG_MASK)

    def forget(self, question: bytes) -> None:
        """Drop the answers to one question (a key less its flags byte), whatever the
        client's flags: after a refresh, the next query builds them from fresh data."""
        for flags in range(16):
            self._drop(question + bytes((flags,)))

    def clear(self) -> None:
        for _key, entry in self._entries.items():
            self._gone(entry)
        self._entries.clear()
        self._names.clear()

    # ------------------------------------------------------------ the record cache's RRsets

    def hold(self, key: bytes, rank: int, tag: int, within: float) -> bool:
        """Make the answer at ``key`` the record cache's copy of its RRset, whose rank
        (trust and DNSSEC state, 1 to 255) is ``rank`` and tag ``tag`` (24 bits).  False,
        nothing changed, when there is no live answer there, its client's flags may not
        hold one, it holds one already, or it would outlive the RRset (``within`` seconds
        from now) by a second or more."""
        entry = self._entries.peek(key)
        if entry is None or entry[_HELD_AT] or key[-1] not in _HOLDING or not 0 < rank < 256:
            return False
        left = _left(entry, self.clock())
        if left <= 0 or left >= within + 1:
            return False
        self._entries.replace(key, _with_held(entry, rank << 24 | tag & TAG_MASK))
        return True

    def unhold(self, key: bytes) -> None:
        """The answer at ``key`` is no longer the record cache's copy of anything (it
        stays, for the clients)."""
        entry = self._entries.peek(key)
        if entry is not None and entry[_HELD_AT]:
            self._entries.replace(key, _with_held(entry, 0))
            self._gone(entry)

    def holder(self, question: bytes) -> bytes | None:
        """The key of the answer that holds the RRset of ``question`` (a key less its
        flags byte, :func:`resolver.wire.raw.question_of`), live or expired; None when none does."""
        peek = self._entries.peek
        for flags in HOLDING_FLAGS:
            key = question + flags
            entry = peek(key)
            if entry is not None and entry[_HELD_AT]:
                return key
        return None

    def held(self, key: bytes) -> tuple[int, float] | None:
        """(rank, seconds left, negative once expired) of the answer at ``key`` if it
        holds an RRset."""
        entry = self._entries.peek(key)
        if entry is None or not entry[_HELD_AT]:
            return None
        return entry[_HELD_AT], _left(entry, self.clock())

    def held_records(self, key: bytes) -> list[ResourceRecord] | None:
        """The answer section of the answer at ``key`` that holds an RRset, parsed from the
        stored response with its question rebuilt from the key (the client's question
        folded, of the same length: the compression pointers still hold); None when
        there is no such answer or it cannot be read."""
        entry = self._entries.peek(key)
        if entry is None or not entry[_HELD_AT]:
            return None
        wire = b"".join((entry[_AT:_RECORDS_AT], key_question(key), entry[_RECORDS_AT:]))
        try:
            message = parse_message(wire)
        except WireError:
            return None
        return message.answer

    def holders(self) -> list[bytes]:
        """The keys of the live answers that hold an RRset, least recently used first."""
        now = self.clock()
        return [key for key, entry in self._entries.items()
                if entry[_HELD_AT] and _left(entry, now) > 0]  # fmt: skip

    def unhold_all(self, doomed: Callable[[bytes], bool] = lambda _question: True) -> int:
        """The answers whose question (a key less its flags byte) ``doomed`` says stop
        holding their RRsets, live or expired (the record cache's flushes); how many."""
        entries = self._entries.items()
        keys = [key for key, entry in entries if entry[_HELD_AT] and doomed(key_question(key))]
        for key in keys:
            self.unhold(key)
        return len(keys)

    # ------------------------------------------------------------ the operator's commands

    def resize(self, max_entries: int) -> int:
        """Hold at most ``max_entries`` from now on; evict the least recently used beyond
        that.  Returns how many were evicted."""
        before = self._entries.evictions
        self._entries.resize(max_entries)
        return self._entries.evictions - before

    def _remove(self, doomed: Callable[[bytes, bytes, tuple[str, ...]], bool]) -> int:
        """Drop the entries ``doomed(key, entry, other owners)`` says; how many."""
        names = self._names
        entries = self._entries.items()
        keys = [key for key, entry in entries if doomed(key, entry, names.get(key, ()))]
        for key in keys:
            self._drop(key)
        return len(keys)

    def flush_name(self, name: str) -> int:
        """Drop every answer that holds ``name`` (any type); how many were dropped."""
        wire = name_to_wire(name).lower()
        folded = name_key(normalize(name))
        return self._remove(
            lambda key, _entry, names: key_name_wire(key) == wire or folded in names
        )

    def flush_zone(self, zone: str) -> int:
        """Drop every answer that holds ``zone`` or a name below it."""
        wire = name_to_wire(zone).lower()
        zone = normalize(zone)
        return self._remove(
            lambda key, _entry, names: (
                wire_in_zone(key_name_wire(key), wire) or any(is_subdomain(n, zone) for n in names)
            )
        )

    def flush_negative(self) -> int:
        """Drop NXDOMAIN, NODATA (no answer records) and SERVFAIL answers."""
        return self._remove(
            lambda _key, entry, _names: (
                entry[_FLAGS_AT + 1] & RCODE_MASK != Rcode.NOERROR
                or entry[_COUNTS_AT + 2 : _COUNTS_AT + 4] == b"\x00\x00"
            )
        )

    def failures(self) -> Iterator[tuple[str, int, int]]:
        """(name, type, seconds left) of every live SERVFAIL kept (RFC 2308 section 7.1)."""
        now = self.clock()
        for key, entry in self._entries.items():
            stored, lifetime, _whole, _held = _PREFIX.unpack_from(entry)
            left = int(stored + lifetime - now)
            if left <= 0 or entry[_FLAGS_AT + 1] & RCODE_MASK != Rcode.SERVFAIL:
                continue
            try:
                name = key_name(key)
            except WireError:
                continue
            yield name, key_qtype(key), left


def _left(entry: bytes, now: float) -> float:
    """Seconds an entry has left at ``now``: negative once it expired."""
    stored, lifetime = _STORED.unpack_from(entry)
    return float(stored + lifetime - now)


def _with_held(entry: bytes, held: int) -> bytes:
    return b"".join((entry[:_HELD_AT], _HELD.pack(held), entry[_AT:]))


def wire_in_zone(name: bytes, zone: bytes) -> bool:
    """True when the wire name ``name`` is ``zone`` or below it (label by label: a byte
    suffix test would let a label that contains the zone's bytes pass)."""
    pos = 0
    while pos < len(name):
        if name[pos:] == zone:
            return True
        if name[pos] == 0:
            return False
        pos += name[pos] + 1
    return False
