"""Serve-stale (RFC 8767): answering from expired data when the servers cannot be reached.

The record cache keeps an entry for ``window`` seconds after it expired (RFC 8767
section 5 suggests 1 to 3 days: here 1 day by default); expired entries are
never used by the walk and never block fresh data (a store replaces them, and
they are one entry each in the cache's bound, like live ones).  The engine uses
them in three cases, as Unbound's ``serve-expired-client-timeout`` and BIND's
``stale-answer-client-timeout`` do:

- a question that ends in SERVFAIL because the servers failed (not because the
  data was bogus) is answered from stale data instead, if there is any;
- a question still unresolved after ``client_timeout`` (1.8 s, RFC 8767 section
  5) is answered from stale data at once, and its resolution goes on in the
  background, refreshing the cache if it succeeds;
- for ``recheck`` seconds after a failed refresh (30 s, RFC 8767 section 4:
  "no more frequently than every 30 seconds") the question is answered from
  stale data without asking the servers again, so a dead zone is not hammered.

A stale answer's records all carry TTL ``answer_ttl`` (30 s, RFC 8767 section
4), and the answer is marked so the service adds Extended DNS Error 3 (Stale
Answer, RFC 8914 section 4.4) and does not keep it in the answer cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from resolver.cache.lru import LruDict
from resolver.iterate.answer import Answer, FailureKind
from resolver.wire import ResourceRecord
from resolver.wire.names import is_subdomain

# Failures that stale data may stand in for: the servers, not the data, were the problem.
# A bogus answer is not replaced (RFC 8767 section 5 leaves validation failures alone:
# the stale data may be what an attacker wants served).
STALE_FAILURES = frozenset({
    FailureKind.NO_REACHABLE_AUTHORITY, FailureKind.NETWORK_ERROR,
    FailureKind.TIME_BUDGET, FailureKind.LIMIT,
})  # fmt: skip


@dataclass(frozen=True)
class StalePolicy:
    """How serve-stale behaves (the ``serve-stale`` settings)."""

    window: float = 86400.0  # seconds an expired entry is kept (RFC 8767: 1 to 3 days)
    client_timeout: float = 1.8  # seconds before a client gets stale data (section 5)
    answer_ttl: int = 30  # the TTL of stale records (section 4)
    recheck: float = 30.0  # seconds after a failed refresh before the servers are asked again
    max_failures_kept: int = 10_000  # questions whose refresh failed, remembered (bounded)


class StaleState:
    """The questions whose refresh failed lately, so they are not retried at every query."""

    def __init__(self, policy: StalePolicy) -> None:
        self.policy = policy
        self._failed: LruDict[tuple[str, int], float] = LruDict(policy.max_failures_kept)
        self.served = 0  # stale answers given, for the stats

    def failed_lately(self, key: tuple[str, int], now: float) -> bool:
        failed_at = self._failed.peek(key)
        if failed_at is None:
            return False
        if now - failed_at >= self.policy.recheck:
            self._failed.pop(key)
            return False
        return True

    def forget(self, zone: str | None = None) -> None:
        """Forget the failures of the questions at and below ``zone`` (None: all): their
        data was flushed, so the servers are asked again at once."""
        if zone is None:
            self._failed.clear()
            return
        for key, _ in self._failed.items():
            if is_subdomain(key[0], zone):
                self._failed.pop(key)

    def note(self, key: tuple[str, int], answer: Answer, now: float) -> None:
        """How a refresh ended: a failure starts the recheck timer, a success ends it."""
        if answer.failure is not None and answer.failure.kind in STALE_FAILURES:
            self._failed.put(key, now)
        else:
            self._failed.pop(key)


def may_replace(answer: Answer) -> bool:
    """True when stale data may be given instead of this answer."""
    return answer.failure is not None and answer.failure.kind in STALE_FAILURES


def as_stale(answer: Answer, ttl: int) -> Answer:
    """The answer the cache's expired data gives, every TTL set to ``ttl``, marked stale."""

    def with_ttl(records: list[ResourceRecord] | None) -> list[ResourceRecord] | None:
        if records is None:
            return None
        return [ResourceRecord(rr.name, rr.rrtype, rr.rrclass, ttl, rr.rdata) for rr in records]

    stale = Answer(answer.rcode, with_ttl(answer.answer) or [], with_ttl(answer.authority) or [])
    stale.from_cache = True
    stale.stale = True
    stale.security = answer.security
    stale.sigs = with_ttl(answer.sigs)
    stale.proof = with_ttl(answer.proof)
    return stale
