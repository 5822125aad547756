"""The record cache: RRsets and negative answers, LRU-bounded, each entry living for its TTL.

- Keys are (name with ASCII case folded, type); only class IN is cached.
- Positive entries are RRsets with the trust of where they came from.  RFC 2181
  section 5.4.1 ranks data: an answer from an authoritative server outranks
  the authority section, which outranks glue.  Lower-ranked data never replaces
  a live higher-ranked RRset (Unbound's ``enum rrset_trust`` does the same).
- Negative entries follow RFC 2308: NXDOMAIN covers a name and every type,
  NODATA a name and one type; each lives min(SOA TTL, SOA MINIMUM) (section 5),
  capped like Unbound's ``cache-max-negative-ttl``, and keeps the SOA so the
  answer can be given again from the cache.
- TTLs are clamped to [min_ttl, max_ttl]; data that arrived with TTL 0 is used
  for the answer at hand and never stored (RFC 1035 section 3.2.1).
- Parent-side glue (the addresses a delegation gave for its name servers) is
  kept apart from the child's own address records, never replacing them nor
  replaced by them: when the child's addresses for a server fail, the parent's
  are still there to try (Unbound and Knot keep both, RFC 2181 section 5.4.1).
- Bounded by an entry count (:class:`LruDict`): glue and negative entries count
  like RRsets.
- With serve-stale (RFC 8767) an expired entry is kept ``stale_window`` seconds
  more, for lookups that ask for stale data (``stale=True``) and no others; it
  counts in the bound like any entry and fresh data replaces it.
- A name asked by a client is kept once, not twice: when the wire answer cache
  (:mod:`resolver.cache.answers`, given with :meth:`RecordCache.attach`) stores
  an answer that is exactly one of our RRsets, the listener calls
  :meth:`RecordCache.release`, which drops our copy; lookups then rebuild the
  RRset from that answer (its TTL counted down, its trust and DNSSEC state kept
  in the answer's prefix), stores rank new data against it as against an entry
  of ours (RFC 2181 section 5.4.1) and replace it, stale lookups find it in the
  stale window, and dumps and flushes cover it.  When the answer cache evicts it,
  the RRset is gone from both: a miss, and the engine asks again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from resolver.cache.answers import AnswerCache
from resolver.cache.entries import (
    NXDOMAIN_TYPE,
    RRSIG_TYPE,
    CachedNegative,
    CachedRRset,
    CacheEntry,
    Security,
    StoredRRset,
    Trust,
    remaining_ttl,
)
from resolver.cache.held import HeldRRsets
from resolver.cache.lru import LruDict
from resolver.wire import CLASS_IN, ResourceRecord
from resolver.wire.names import is_subdomain, name_key, normalize
from resolver.wire.rdata import SOA

__all__ = [
    "BOGUS_TTL",
    "NXDOMAIN_TYPE",
    "CachedNegative",
    "CachedRRset",
    "RecordCache",
    "Security",
    "StoredRRset",
    "Trust",
    "remaining_ttl",
]

DS_TYPE = 43
DNAME_TYPE = 39
BOGUS_TTL = 60  # seconds bogus data is kept, so it is not fetched again per query
# (Unbound's val-bogus-ttl)
BOGUS_MIN_TTL = 1  # RFC 9520 section 3.2: a failure is cached at least 1 s, TTL 0 too
INFINITY = float("inf")
GLUE = "\x00"  # first character of a parent-side glue key (no folded name starts with it)


class RecordCache:
    def __init__(
        self,
        max_entries: int = 100_000,
        min_ttl: int = 0,
        max_ttl: int = 86400,
        max_negative_ttl: int = 3600,
        clock: Callable[[], float] = time.time,
        stale_window: float = 0.0,
    ) -> None:
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.max_negative_ttl = max_negative_ttl
        self.clock = clock
        self._held: HeldRRsets | None = None  # the RRsets an answer cache holds for us
        self._stale_window = stale_window  # seconds expired entries are kept (RFC 8767)
        # Key: the owner with case folded, then one character for the type (chr(0) for
        # NXDOMAIN); glue keys start with GLUE.  One string per entry instead of a tuple
        # and a string saves memory; a name and type hold either an RRset or a NODATA
        # entry, never both.
        self._entries: LruDict[str, CacheEntry] = LruDict(max_entries)
        self.hits = 0
        self.misses = 0
        # A DNAME was ever stored: only then do lookups look for one above a name.
        self.holds_dnames = False

    def __len__(self) -> int:
        return len(self._entries)

    def attach(self, answers: AnswerCache) -> None:
        """Let ``answers`` hold RRsets for this cache (see :meth:`release`)."""
        self._held = HeldRRsets(answers, self.clock)
        self._held.stale_window = answers.stale_window = self._stale_window

    @property
    def stale_window(self) -> float:
        """Seconds expired entries are kept for serve-stale (RFC 8767), here and by the
        answer cache for the RRsets it holds."""
        return self._stale_window

    @stale_window.setter
    def stale_window(self, seconds: float) -> None:
        self._stale_window = seconds
        if self._held is not None:
            self._held.stale_window = self._held.answers.stale_window = seconds

    @property
    def max_entries(self) -> int:
        return self._entries.max_entries

    @property
    def evictions(self) -> int:
        return self._entries.evictions

    def clamp_ttl(self, ttl: int) -> int:
        """The TTL the cache keeps (and clients are told): within [min_ttl, max_ttl]."""
        return min(max(ttl, self.min_ttl), self.max_ttl)

    def _lookup(self, key: str, stale: bool) -> CacheEntry | None:
        if stale:  # not a hit: stale data is a last resort, it earns no protection
            entry = self._entries.peek(key)
            live = entry is not None and entry.expires + self._stale_window > self.clock()
            return entry if live else None
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        expires = entry.expires
        if expires <= self.clock():
            if expires + self._stale_window <= self.clock():
                self._entries.pop(key)
            self.misses += 1
            return None
        self.hits += 1
        return entry

    # ------------------------------------------------------------ positive data

    def get_rrset(self, name: str, rrtype: int, *, stale: bool = False) -> CachedRRset | None:
        """The live RRset; with ``stale``, one expired within the stale window too."""
        return self._get_rrset(name_key(name), rrtype, "", stale)

    def get_glue(self, name: str, rrtype: int) -> CachedRRset | None:
        """The parent-side addresses (A or AAAA) a delegation gave for name server ``name``."""
        return self._get_rrset(name_key(name), rrtype, GLUE, False)

    def _get_rrset(self, key: str, rrtype: int, prefix: str, stale: bool) -> CachedRRset | None:
        entry_key = prefix + key + chr(rrtype)
        entry = self._lookup(entry_key, stale)
        if isinstance(entry, StoredRRset):
            return CachedRRset(entry.owner or key, rrtype, entry.data, entry.expires,
                               entry.trust, entry.security, entry.sigs, entry.proof)  # fmt: skip
        if entry is not None or prefix or self._held is None:
            return None
        rrset = self._held.rebuilt(entry_key, stale)
        if rrset is not None and not stale:
            self.misses -= 1  # counted by _lookup; a hit after all
            self.hits += 1
            # Kept here again (the answer holds it no longer): the engine uses it beyond
            # its own question, or for another client's flags; lookups then cost no parse.
            kept = StoredRRset(None, rrset.data, rrset.expires, rrset.trust, rrset.security,
                               rrset.sigs)  # fmt: skip
            self._entries.put(entry_key, kept)
        return rrset

    def store_rrset(
        self,
        records: list[ResourceRecord],
        trust: Trust,
        security: Security = Security.UNCHECKED,
        sigs: list[ResourceRecord] | None = None,
        proof: list[ResourceRecord] | None = None,
        until: float = INFINITY,
    ) -> bool:
        """Store one RRset (all records share owner and type) with its validation state,
        its RRSIG records and (a wildcard expansion's) proof; False if not stored.
        ``until``: it lives no later than that, whatever its TTL (a delegation's data
        bounded by the parent's delegation: ghost domains)."""
        return self._store_rrset(records, trust, "", security, sigs, proof, until)

    def store_glue(self, records: list[ResourceRecord], until: float = INFINITY) -> bool:
        """Keep a delegation's glue for one name server, apart from the child's own data
        (``until``: as for :meth:`store_rrset`)."""
        return self._store_rrset(records, Trust.GLUE, GLUE, until=until)

    def _store_rrset(
        self,
        records: list[ResourceRecord],
        trust: Trust,
        prefix: str,
        security: Security = Security.UNCHECKED,
        sigs: list[ResourceRecord] | None = None,
        proof: list[ResourceRecord] | None = None,
        until: float = INFINITY,
    ) -> bool:
        first = records[0]
        if first.rrclass != CLASS_IN:
            return False
        if first.rrtype == DNAME_TYPE:
            self.holds_dnames = True
        ttl = min(rr.ttl for rr in records)  # RFC 2181 section 5.2: one TTL per RRset
        if security == Security.BOGUS:
            ttl = _bogus_ttl(ttl)
        if ttl <= 0:
            return False
        owner = name_key(first.name)
        key = prefix + owner + chr(first.rrtype)
        now = self.clock()
        expires = min(now + self.clamp_ttl(ttl), until)  # the bound wins even over min-ttl
        if expires <= now:
            return False
        current = self._entries.peek(key)
        if current is None and not prefix and self._held is not None:
            if not self._held.supersede(key, trust):
                return False  # held by the answer cache, and better (as below)
        elif isinstance(current, StoredRRset) and current.expires > now and current.trust > trust:
            return False  # RFC 2181 section 5.4.1: never replace better data with worse
        rdatas = tuple(dict.fromkeys(rr.rdata for rr in records))
        data = rdatas[0] if len(rdatas) == 1 else rdatas
        case = None if first.name == owner else first.name
        signatures = tuple(rr.rdata for rr in sigs) if sigs else None
        entry = StoredRRset(case, data, expires, int(trust), int(security), signatures,
                            tuple(proof) if proof else None)  # fmt: skip
        self._entries.put(key, entry)
        return True

    # ------------------------------------------------------------ negative data

    def get_negative(self, name: str, rrtype: int, *, stale: bool = False) -> CachedNegative | None:
        """NXDOMAIN for the name, else NODATA for (name, type), else None (``stale``: as
        for :meth:`get_rrset`)."""
        key = name_key(name)
        for slot in (NXDOMAIN_TYPE, rrtype):
            entry = self._lookup(key + chr(slot), stale)
            if isinstance(entry, CachedNegative):
                return entry
        return None

    def store_negative(
        self,
        name: str,
        rrtype: int,
        soa: ResourceRecord | None,
        security: Security = Security.UNCHECKED,
        proof: list[ResourceRecord] | None = None,
    ) -> bool:
        """Cache NXDOMAIN (``rrtype`` = NXDOMAIN_TYPE) or NODATA, per RFC 2308 section 5,
        with its validation state and proof.  Without an SOA only a DS denial from a
        referral is kept (its NSEC proof says for how long: RFC 4035 section 5.2)."""
        if soa is not None and isinstance(soa.rdata, SOA):
            ttl = min(soa.ttl, soa.rdata.minimum, self.max_negative_ttl)
        elif proof and rrtype == DS_TYPE:
            ttl = min(min(rr.ttl for rr in proof), self.max_negative_ttl)
        else:
            return False  # RFC 2308 section 5: without an SOA, negative answers are not cached
        if security == Security.BOGUS:
            ttl = _bogus_ttl(ttl)
        if ttl <= 0:
            return False
        ttl = self.clamp_ttl(ttl)
        entry = CachedNegative(name, rrtype, soa, self.clock() + ttl, int(security),
                               tuple(proof or ()))  # fmt: skip
        key = name_key(name) + chr(rrtype)
        if rrtype != NXDOMAIN_TYPE and self._held is not None:
            self._held.drop(key)  # NODATA replaces the RRset, as it would here
        self._entries.put(key, entry)
        return True

    # ------------------------------------------------------------ RRsets the answer cache holds

    def release(self, name: str, rrtype: int, key: bytes, answer: Sequence[ResourceRecord]) -> bool:
        """Drop our copy of the RRset (``name``, ``rrtype``) when the answer cache's answer
        at ``key``, just stored, can hold it: its answer section ``answer`` is exactly that
        RRset, and its RRSIGs if we keep any (see :mod:`resolver.cache.held`).  Lookups
        then rebuild it from there, with the trust and DNSSEC state it had.  True when
        released."""
        if self._held is None or rrtype == RRSIG_TYPE:
            return False
        entry_key = name_key(name) + chr(rrtype)
        entry = self._entries.peek(entry_key)
        if not isinstance(entry, StoredRRset) or not self._held.release(
            entry_key, entry, key, answer
        ):
            return False
        self._entries.pop(entry_key)
        return True

    def clear(self) -> None:
        self._entries.clear()
        if self._held is not None:
            self._held.answers.unhold_all()

    # ------------------------------------------------------------ the operator's commands
    # (resolver-control flush, flush-zone, flush-negative, dump; a reload's cache size)

    def _remove_keys(self, doomed: list[str]) -> int:
        for key in doomed:
            self._entries.pop(key)
        return len(doomed)

    @staticmethod
    def _owner_of(key: str) -> str:
        """The folded owner name of a key (glue keys start with GLUE)."""
        return key[1:-1] if key.startswith(GLUE) else key[:-1]

    def flush_name(self, name: str) -> int:
        """Drop every entry of ``name``, any type, positive or negative, glue too, and the
        RRsets of ``name`` the answer cache holds for us; how many."""
        owner = name_key(normalize(name))
        removed = self._remove_keys([k for k in self._entries if self._owner_of(k) == owner])
        return removed + (self._held.flush(owner, below=False) if self._held else 0)

    def flush_zone(self, zone: str) -> int:
        """Drop every entry of ``zone`` and of the names below it (label by label), the
        answer cache's held RRsets too."""
        zone = normalize(zone)
        owner_of = self._owner_of
        removed = self._remove_keys([k for k in self._entries if is_subdomain(owner_of(k), zone)])
        return removed + (self._held.flush(name_key(zone), below=True) if self._held else 0)

    def flush_negative(self) -> int:
        """Drop every NXDOMAIN and NODATA entry."""
        entries = self._entries
        return self._remove_keys([k for k, e in entries.items() if isinstance(e, CachedNegative)])

    def resize(self, max_entries: int) -> int:
        """Hold at most ``max_entries`` from now on, evicting the least recently used
        beyond that; how many were evicted."""
        before = self._entries.evictions
        self._entries.resize(max_entries)
        return self._entries.evictions - before

    def dump(self) -> list[CachedRRset | CachedNegative]:
        """Every live entry, least recently used first, as lookups would return them; a
        snapshot taken without touching the use order or the hit and miss counters.
        The RRsets the answer cache holds for us are not in it: :meth:`dump_held`."""
        now = self.clock()
        live: list[CachedRRset | CachedNegative] = []
        for key, entry in self._entries.items():
            if entry.expires <= now or key.startswith(GLUE):
                continue  # expired, or the parent's side of a name server's addresses
            if isinstance(entry, StoredRRset):
                owner = entry.owner or key[:-1]
                live.append(
                    CachedRRset(owner, ord(key[-1]), entry.data, entry.expires, entry.trust)
                )
            else:
                live.append(entry)
        return live

    def dump_held(self) -> list[bytes]:
        """The answer cache's keys of the live RRsets it holds for us (for dumps: each
        rebuilt by :meth:`held_rrset`, which parses, when it is listed)."""
        return [] if self._held is None else self._held.keys()

    def held_rrset(self, key: bytes) -> CachedRRset | None:
        """The live RRset held at ``key`` (from :meth:`dump_held`), as a lookup would
        return it, without touching the use order or the counters; None if gone."""
        return None if self._held is None else self._held.rrset(key)


def _bogus_ttl(ttl: int) -> int:
    """How long data that failed validation is kept: its TTL up to BOGUS_TTL, and at least
    BOGUS_MIN_TTL even when its TTL is 0 (RFC 9520 section 3.2: a resolution failure is
    cached at least 1 s, so a bogus answer is not fetched again for every query)."""
    return max(min(ttl, BOGUS_TTL), BOGUS_MIN_TTL)
