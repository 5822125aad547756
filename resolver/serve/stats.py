"""The service's counters: kept as plain numbers, shown by ``resolver-control stats`` and
``/metrics`` (:mod:`resolver.ops.exposition` turns them into samples when asked).

Counting costs a dictionary update per answer (no lock, no library call on the
hot path).

Upstream work is counted by :class:`CountingNetwork`, a
:class:`resolver.net.contract.Network` wrapped around the transport: the engine
and the transport know nothing of it.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Callable

from resolver.iterate.request import Transport
from resolver.net.contract import ExchangeFailed, Network, Query, Reply
from resolver.wire import RRType

# Answer latency buckets, seconds: a cache hit is well under a millisecond, a cold walk
# tens to hundreds of milliseconds, and the engine gives up after 10 s.
LATENCY_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                  2.5, 5.0, 10.0)  # fmt: skip

RECENT_SERVFAILS = 50  # the last SERVFAILs kept for the web view's live page
# (when, name, type, EDE INFO-CODE, EXTRA-TEXT)
RecentServfail = tuple[float, str, str, int, str]


class ServiceStats:
    """What one process counts while it answers."""

    def __init__(self) -> None:
        self.queries: dict[tuple[int, int, Transport], int] = {}  # (qtype, rcode, transport)
        self.dropped = 0
        self.ratelimited = 0  # counted by resolver.serve.ratelimit
        self.latency = [0] * (len(LATENCY_BOUNDS) + 1)  # the last bucket: above every bound
        self.latency_sum = 0.0
        self.upstream_queries = 0
        self.upstream_tcp = 0
        self.upstream_failures: dict[str, int] = {}
        self.reloads: dict[str, int] = {}
        self.stale = 0  # answers from expired data
        # The shared cache tier's counts (kept here, so that a reload replacing the tier
        # keeps them); shared_up is None when no tier is configured.
        self.shared_lookups: dict[str, int] = {}
        self.shared_writes: dict[str, int] = {}
        self.shared_up: int | None = None
        # The last SERVFAILs given after a resolution, with their Extended DNS Error
        # (RFC 8914): bounded, appended only when a resolution failed.
        self.servfails: deque[RecentServfail] = deque(maxlen=RECENT_SERVFAILS)
        self.dnstap: dict[str, int] = {}  # dnstap messages by result (resolver.serve.dnstap)
        # Response policy: (zone, action) and (zone, result) counts, and the zones' sizes.
        self.policy_actions: dict[tuple[str, str], int] = {}
        self.policy_loads: dict[tuple[str, str], int] = {}
        self.policy_entries: Callable[[], dict[str, int]] | None = None
        # The encrypted transports: handshakes by (transport, result), connections open and
        # refused by transport, DoH responses by HTTP status, TLS to forwarders.
        self.handshakes: dict[tuple[Transport, str], int] = {}
        self.connections: dict[Transport, int] = {}
        self.connections_refused: dict[Transport, int] = {}
        self.https_status: dict[int, int] = {}
        # Counted by resolver.net.tls_upstream: "opened", "failed" (connections), "queries".
        self.upstream_tls: dict[str, int] = {}

    def servfailed(self, name: str, qtype: int, error: tuple[int, str] | None) -> None:
        """A SERVFAIL given after a resolution, and why (for the web view's live page)."""
        code, text = error if error is not None else (0, "")
        self.servfails.append((time.time(), name, RRType.text(qtype), int(code), text))

    def handshake(self, transport: Transport, result: str) -> None:
        key = (transport, result)
        self.handshakes[key] = self.handshakes.get(key, 0) + 1

    def answered(self, qtype: int, rcode: int, transport: Transport, seconds: float) -> None:
        key = (qtype, rcode, transport)
        queries = self.queries
        queries[key] = queries.get(key, 0) + 1
        self.latency[bisect.bisect_left(LATENCY_BOUNDS, seconds)] += 1
        self.latency_sum += seconds


class CountingNetwork:
    """The engine's network, counting exchanges, timeouts, TCP fallbacks and failures."""

    def __init__(self, inner: Network, stats: ServiceStats) -> None:
        self.inner = inner
        self.stats = stats

    async def exchange(self, query: Query) -> Reply:
        stats = self.stats
        stats.upstream_queries += 1
        try:
            reply = await self.inner.exchange(query)
        except ExchangeFailed as error:
            reason = error.failure.value
            stats.upstream_failures[reason] = stats.upstream_failures.get(reason, 0) + 1
            raise
        if reply.tcp:
            stats.upstream_tcp += 1
        return reply
