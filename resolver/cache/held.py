"""RRsets the answer cache holds for the record cache: a name asked once is kept once.

A client's question answered with one RRset would otherwise be kept twice: as
the RRset in the record cache, for the engine, and as the wire answer in the
answer cache, for the fast path.  When the answer is exactly one of the record
cache's RRsets (owned by the question's name, of its type, with its RRSIGs if it
has any), :meth:`HeldRRsets.release` drops the record cache's copy and the
answer *holds* the RRset (:meth:`~resolver.cache.answers.AnswerCache.hold`):

- a lookup that misses rebuilds the RRset from that answer: the stored response
  parsed with its question rebuilt from the key, the TTL left counted from the
  answer's own clock, the trust and DNSSEC state from the byte the answer keeps
  of them (the wire does not say them).  The engine asks for a held RRset only
  when the fast path could not answer (another client's flags) or for another
  question (a name server's address, a CNAME's target): the record cache then
  keeps it again, so that the next lookups cost no parse, and the answer stops
  holding it (a later answer may hold it again);
- new data ranks against it as against the record cache's own entry (RFC 2181
  section 5.4.1): lower-ranked data is refused while it lives; otherwise the new
  data is stored and the answer stops holding (it stays for the clients), so
  there is never more than one copy the engine could read; a NODATA for the same
  name and type supersedes it as it would an entry;
- with serve-stale, an expired holding answer is kept for the stale window, for
  stale lookups only (RFC 8767);
- dumps list it and the record cache's flushes reach it;
- when the answer cache evicts it, the RRset is gone from both caches: a miss, and
  the engine asks the servers again.

Kept in the record cache instead: RRsets that are not an answer's (trust below
ANSWER: referrals, glue), bogus ones, a wildcard expansion's (its NSEC proof is
not in a plain answer), one whose owner's letter case differs from the folded
name, and any RRset an answer does not carry exactly (a DO=0 client's answer
leaves the RRSIGs out; data refused for its rank).  Answers to CD=1 clients never
hold.

Which RRsets are held is known from a filter kept here: a counter per slot,
indexed by the record cache's key's hash, counted up when an answer starts
holding and down when it stops (the answer cache tells ``unheld``, whatever the
reason: replaced, flushed, evicted), so that a miss or a store of a new RRset
costs one array lookup, not a search of the answer cache, unless the slot says
an RRset with that hash is held.  A slot that reaches 255 stays there (a lookup
then searches; the answer is still exact).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from resolver.cache.answers import TAG_MASK, AnswerCache, wire_in_zone
from resolver.cache.entries import RRSIG_TYPE, CachedRRset, Security, StoredRRset, Trust
from resolver.wire import ResourceRecord, WireError
from resolver.wire.dnssec_rdata import RRSIG
from resolver.wire.names import name_key, name_to_wire
from resolver.wire.raw import key_name, key_qtype, question_name_wire, question_of
from resolver.wire.rdata import Rdata

SLOTS_PER_ENTRY = 4  # of the answer cache's bound: one lookup in 4 or fewer searches when full
SATURATED = 255
_ANSWER = int(Trust.ANSWER)
_BOGUS = int(Security.BOGUS)


def rank_of(trust: int, security: int) -> int:
    """The byte a holding answer keeps of its RRset: trust (3 bits), then DNSSEC state."""
    return trust | security << 3


def rdata_of(
    records: Sequence[ResourceRecord], owner: str, rrtype: int
) -> tuple[tuple[Rdata, ...], tuple[Rdata, ...]] | None:
    """The rdata of one RRset (``owner`` folded, ``rrtype``) and of the RRSIGs covering it,
    each once and in order, from an answer section; None if the section holds anything
    else or none of the RRset."""
    data: dict[Rdata, None] = {}
    sigs: dict[Rdata, None] = {}
    for rr in records:
        if name_key(rr.name) != owner:
            return None
        rdata = rr.rdata
        if rr.rrtype == rrtype:
            data[rdata] = None
        elif rr.rrtype == RRSIG_TYPE and isinstance(rdata, RRSIG) and rdata.type_covered == rrtype:
            sigs[rdata] = None
        else:
            return None
    return (tuple(data), tuple(sigs)) if data else None


class HeldRRsets:
    """The record cache's side of the RRsets an answer cache holds for it."""

    def __init__(self, answers: AnswerCache, clock: Callable[[], float]) -> None:
        self.answers = answers
        self.clock = clock  # the record cache's
        self.stale_window = 0.0
        size = 1
        while size < SLOTS_PER_ENTRY * answers.max_entries and size <= TAG_MASK:
            size *= 2
        self._mask = size - 1
        self._counts = bytearray(size)
        answers.unheld = self._unheld

    def _unheld(self, tag: int) -> None:
        slot = tag & self._mask
        count = self._counts[slot]
        if 0 < count < SATURATED:
            self._counts[slot] = count - 1

    def _holder(self, entry_key: str) -> bytes | None:
        """The key of the answer holding the RRset of ``entry_key`` (the record cache's key:
        folded owner, then the type as a character), live or expired; None if none."""
        if not self._counts[hash(entry_key) & self._mask]:
            return None  # the common case: no answer holds an RRset with this hash
        try:
            question = question_of(entry_key[:-1], ord(entry_key[-1]))
        except ValueError:  # not a name the wire can carry: nobody asked for it
            return None
        return self.answers.holder(question)

    # ------------------------------------------------------------ the record cache's steps

    def release(
        self, entry_key: str, entry: StoredRRset, key: bytes, answer: Sequence[ResourceRecord]
    ) -> bool:
        """Let the answer at ``key`` hold the RRset ``entry`` (at ``entry_key``) if it
        carries exactly that (see the module's description); True if it now holds it, and
        the record cache drops its own copy."""
        if (
            entry.owner is not None
            or entry.proof is not None
            or entry.trust < _ANSWER
            or entry.security == _BOGUS
        ):
            return False
        owner, rrtype = entry_key[:-1], ord(entry_key[-1])
        if len(answer) == 1 and not entry.sigs:  # the common case: one record, unsigned
            only = answer[0]
            if only.rrtype != rrtype or only.rdata != entry.data or name_key(only.name) != owner:
                return False
        else:
            carried = rdata_of(answer, owner, rrtype)
            if carried is None:
                return False
            data, sigs = carried
            rdatas = entry.data if isinstance(entry.data, tuple) else (entry.data,)
            if set(data) != set(rdatas) or set(sigs) != set(entry.sigs or ()):
                return False
        tag = hash(entry_key) & TAG_MASK
        within = entry.expires - self.clock()
        if not self.answers.hold(key, rank_of(entry.trust, entry.security), tag, within):
            return False
        slot = tag & self._mask
        if self._counts[slot] < SATURATED:
            self._counts[slot] += 1
        return True

    def rebuilt(self, entry_key: str, stale: bool) -> CachedRRset | None:
        """The RRset of ``entry_key`` from the answer holding it: live, and then the answer
        holds it no longer (the record cache keeps it again); with ``stale``, expired
        within the stale window too, and still held (a stale lookup is a last resort)."""
        key = self._holder(entry_key)
        if key is None:
            return None
        rrset = self._from(key, entry_key, stale)
        if rrset is not None and not stale:
            self.answers.unhold(key)
        return rrset

    def _from(self, key: bytes, entry_key: str, stale: bool) -> CachedRRset | None:
        held = self.answers.held(key)
        if held is None:
            return None
        rank, left = held
        if left <= 0 and (not stale or left + self.stale_window <= 0):
            return None
        owner, rrtype = entry_key[:-1], ord(entry_key[-1])
        records = self.answers.held_records(key)
        carried = None if records is None else rdata_of(records, owner, rrtype)
        if carried is None:
            return None
        data, sigs = carried
        return CachedRRset(owner, rrtype, data[0] if len(data) == 1 else data,
                           self.clock() + left, rank & 7, rank >> 3, sigs or None)  # fmt: skip

    def supersede(self, entry_key: str, trust: int) -> bool:
        """Before new data for ``entry_key`` is stored (the record cache has no entry of its
        own there): False if a live held RRset outranks it (RFC 2181 section 5.4.1); else
        True, the answer (if any) holding it no longer."""
        key = self._holder(entry_key)
        if key is None:
            return True
        held = self.answers.held(key)
        if held is not None and held[1] > 0 and held[0] & 7 > trust:
            return False
        self.answers.unhold(key)
        return True

    def drop(self, entry_key: str) -> None:
        """No answer holds the RRset of ``entry_key`` any more (a NODATA replaces it)."""
        key = self._holder(entry_key)
        if key is not None:
            self.answers.unhold(key)

    # ------------------------------------------------------------ the operator's commands

    def flush(self, name: str, below: bool) -> int:
        """No answer holds an RRset of ``name`` (folded), nor with ``below`` of a name under
        it; how many did."""
        wire = name_to_wire(name).lower()
        if below:
            return self.answers.unhold_all(
                lambda question: wire_in_zone(question_name_wire(question), wire)
            )
        return self.answers.unhold_all(lambda question: question_name_wire(question) == wire)

    def keys(self) -> list[bytes]:
        """The answer cache's keys of the live RRsets it holds, least recently used first."""
        return self.answers.holders()

    def rrset(self, key: bytes) -> CachedRRset | None:
        """The live RRset held at ``key`` (from :meth:`keys`), as a lookup would return it,
        without touching the use order; None if it is gone."""
        try:
            name = key_name(key)
        except WireError:
            return None
        entry_key = name_key(name) + chr(key_qtype(key))
        return self._from(key, entry_key, stale=False)
