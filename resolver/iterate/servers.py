"""What the resolver has learned about upstream server addresses.

This is the infrastructure cache of Unbound (services/cache/infra.c) in small:
a smoothed round-trip time and its variance per address, in the manner of TCP's
retransmission timer (RFC 6298), so that servers are chosen by speed and a dead
server is avoided instead of timed out on every time.  A failed exchange backs
the address off exponentially; it is tried again once every other choice is
worse, so a server that comes back is noticed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from recordclass import dataobject

from resolver.cache.lru import LruDict
from resolver.iterate.zonecut import ZoneCut
from resolver.wire.names import name_key

UNKNOWN_RTT = 0.376  # Unbound's UNKNOWN_SERVER_NICENESS: an untried server looks this fast
MIN_TIMEOUT = 0.05
MAX_TIMEOUT = 3.0
FAILURE_RTT = 3.0  # the smoothed RTT a server gets after failing, before backing off
STATS_TTL = 900.0  # Unbound's infra-host-ttl: forget an address after 15 minutes
LAME_TTL = 900.0  # Unbound's infra-lame-ttl: how long a server stays lame for a zone


class ServerStats(dataobject, fast_new=True):
    srtt: float
    rttvar: float
    failures: int
    updated: float


class ServerSelection:
    """Smoothed RTT per server address, bounded in size (least recently used go first)."""

    def __init__(
        self,
        initial_timeout: float = 1.0,
        max_entries: int = 10000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.initial_timeout = initial_timeout
        self.clock = clock
        self._stats: LruDict[str, ServerStats] = LruDict(max_entries)
        self._lame: LruDict[tuple[str, str], float] = LruDict(max_entries)  # -> until when

    def measured(self) -> list[tuple[str, float, int]]:
        """What is known of each server address, read only: (address, smoothed RTT in
        seconds, failures in a row), least recently used first."""
        return [(address, stats.srtt, stats.failures) for address, stats in self._stats.items()]

    def _get(self, address: str) -> ServerStats | None:
        stats = self._stats.peek(address)
        if stats is not None and self.clock() - stats.updated > STATS_TTL:
            self._stats.pop(address)
            return None
        return stats

    def expected_rtt(self, address: str) -> float:
        """What choosing this address is expected to cost, in seconds."""
        stats = self._get(address)
        if stats is None:
            return UNKNOWN_RTT
        return stats.srtt * float(1 << min(stats.failures, 6))

    def timeout(self, address: str) -> float:
        """Retransmission timeout for the next query (RFC 6298: srtt + 4 * rttvar)."""
        stats = self._get(address)
        if stats is None or stats.failures:
            return self.initial_timeout
        return min(max(stats.srtt + 4 * stats.rttvar, MIN_TIMEOUT), MAX_TIMEOUT)

    def order(self, addresses: Iterable[str]) -> list[str]:
        """Addresses from best to worst; ties keep the given order (hints order first)."""
        return sorted(addresses, key=self.expected_rtt)

    def record_success(self, address: str, rtt: float) -> None:
        stats = self._get(address)
        now = self.clock()
        if stats is None or stats.failures:
            stats = ServerStats(rtt, rtt / 2, 0, now)
        else:
            # RFC 6298 section 2.3 with alpha = 1/8 and beta = 1/4.
            stats.rttvar = 0.75 * stats.rttvar + 0.25 * abs(stats.srtt - rtt)
            stats.srtt = 0.875 * stats.srtt + 0.125 * rtt
            stats.updated = now
        self._store(address, stats)

    def record_failure(self, address: str) -> None:
        stats = self._get(address)
        now = self.clock()
        if stats is None:
            stats = ServerStats(FAILURE_RTT, FAILURE_RTT / 2, 1, now)
        else:
            stats.srtt = max(stats.srtt, FAILURE_RTT)
            stats.failures += 1
            stats.updated = now
        self._store(address, stats)

    def _store(self, address: str, stats: ServerStats) -> None:
        self._stats.put(address, stats)

    def mark_lame(self, address: str, zone: str) -> None:
        """The server answered for ``zone`` without authority (REFUSED, SERVFAIL, ...)."""
        self._lame.put((address, name_key(zone)), self.clock() + LAME_TTL)

    def is_lame(self, address: str, zone: str) -> bool:
        key = (address, name_key(zone))
        until = self._lame.peek(key)
        if until is None:
            return False
        if until <= self.clock():
            self._lame.pop(key)
            return False
        return True


class ServerRound:
    """Which servers of one zone cut were tried, and which name servers still need an address."""

    def __init__(self, cut: ZoneCut, glueless: list[str], types: tuple[int, ...]) -> None:
        self.cut = cut
        self.tried: set[str] = set()
        self.timed_out: set[str] = set()
        self.retried = False
        self.types = types
        # (NS name, address type) to look up, likeliest first; A first, AAAA if A finds none.
        self.pending = [(ns, types[0]) for ns in glueless]
        self.names_looked_up = 0

    def next_server(self, selection: ServerSelection) -> tuple[str, str] | None:
        """The best untried (address, NS name): servers lame for the zone last, then the
        lowest expected RTT; ties keep the cut's order (NS order, hints order first)."""
        cut, tried = self.cut, self.tried
        candidates: dict[str, str] = {}  # untried address -> the first NS name listed for it
        for ns in cut.nameservers:
            for address in cut.addresses.get(name_key(ns), ()):
                if address not in tried and address not in candidates:
                    candidates[address] = ns
        if len(candidates) <= 1:  # below the TLDs, often a single server: no choice to make
            return next(iter(candidates.items()), None)
        zone = cut.zone

        def rank(address: str) -> tuple[bool, float]:
            return selection.is_lame(address, zone), selection.expected_rtt(address)

        best = min(candidates, key=rank)  # the first of the best: a stable order's head
        return best, candidates[best]

    def untried(self) -> bool:
        """Whether some address of the cut has not been asked yet in this round."""
        addresses = self.cut.addresses
        return any(
            address not in self.tried
            for ns in self.cut.nameservers
            for address in addresses.get(name_key(ns), ())
        )

    def next_glueless(self, limit: int) -> tuple[str, int] | None:
        """The next (NS name, type) to look up; ``limit`` bounds the names per cut."""
        while self.pending:
            ns, rrtype = self.pending[0]
            if self.cut.addresses.get(name_key(ns)):
                self.pending.pop(0)  # found meanwhile (another lookup, the other type)
                continue
            if rrtype == self.types[0]:
                if self.names_looked_up >= limit:
                    return None
                self.names_looked_up += 1
            return self.pending.pop(0)
        return None

    def found_nothing(self, ns: str, rrtype: int) -> None:
        """A lookup of ``ns`` gave no address of that type: try the next type (an
        IPv6-only name server, Deckard's iter_pc_aaaa)."""
        later = self.types[self.types.index(rrtype) + 1 :] if rrtype in self.types else ()
        if later:
            self.pending.insert(0, (ns, later[0]))

    def next_question(self) -> None:
        """A server answered and the lookup asks the same servers its next question (one
        label more, or the whole name): a new query, with its own retry (RFC 1035
        section 4.2.1, RFC 1536 section 1: a lost datagram is not a dead server).  Only
        an answer moves on, so servers that never answer cost no more than before."""
        self.timed_out.clear()
        self.retried = False

    def new_question_after_error(self) -> None:
        """The lookup asks another question of the same servers after an error, not an
        answer (the whole name after a lame reply to a minimised one): the servers that
        timed out have not seen it yet, so they are asked it too, and it gets its own
        retry (a lossy server loses a datagram of each question, not one in all)."""
        self.tried -= self.timed_out
        self.timed_out.clear()
        self.retried = False

    def retry_timeouts(self) -> bool:
        """Servers that timed out get one more chance for this question (a lost packet is
        not a dead server)."""
        if self.retried or not self.timed_out:
            return False
        self.retried = True
        self.tried -= self.timed_out
        return True
