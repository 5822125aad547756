"""The service's counters: kept as plain numbers, read by ``resolver-control stats`` and
``/metrics``.

Counting costs a dictionary update per answer (no lock, no library call on the
hot path); the numbers are turned into :data:`Sample` values only when someone
asks.  A sample is ``(name, labels, value)``, the shape Prometheus uses, and
samples from several processes (``--workers``) add up key by key
(:func:`merge`), so the first process can answer for all of them.

Upstream work is counted by :class:`CountingNetwork`, a
:class:`resolver.net.contract.Network` wrapped around the transport: the engine
and the transport know nothing of it.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from resolver.iterate.request import Transport
from resolver.net.contract import ExchangeFailed, Failure, Network, Query, Reply
from resolver.wire import Rcode, RRType

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs
Sample = tuple[str, Labels, float]

# Answer latency buckets, seconds: a cache hit is well under a millisecond, a cold walk
# tens to hundreds of milliseconds, and the engine gives up after 10 s.
LATENCY_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                  2.5, 5.0, 10.0)  # fmt: skip

# name -> (Prometheus type, help); the Prometheus name is "resolver_" + name (+ "_total").
METRICS: dict[str, tuple[str, str]] = {
    "queries": ("counter", "Client queries answered, by query type, RCODE and transport"),
    "queries_dropped": ("counter", "Client packets dropped unanswered (too short, or a response)"),
    "queries_ratelimited": ("counter", "UDP queries over their client's ip-ratelimit"),
    "cache_hits": ("counter", "Cache lookups that found a live entry, by cache"),
    "cache_misses": ("counter", "Cache lookups that found nothing live, by cache"),
    "cache_evictions": ("counter", "Entries evicted to stay within the cache size, by cache"),
    "cache_entries": ("gauge", "Entries in the cache now, by cache"),
    "upstream_queries": ("counter", "Exchanges with authoritative servers"),
    "upstream_timeouts": ("counter", "Upstream exchanges that timed out (UDP or TCP)"),
    "upstream_tcp_fallbacks": ("counter", "Upstream answers that came over TCP after TC=1"),
    "upstream_failures": ("counter", "Upstream exchanges without a usable reply, by reason"),
    "resolutions_in_flight": ("gauge", "Questions being resolved now"),
    "stale_answers": ("counter", "Answers given from expired data (serve-stale, RFC 8767)"),
    "prefetches": ("counter", "Answers refreshed before they expired, by result"),
    "answer_duration_seconds": ("histogram", "Time from a query's arrival to its answer"),
    "reloads": ("counter", "Configuration reloads, by result"),
    # The shared cache tier ([shared-cache], resolver.serve.shared): shown when configured.
    "shared_cache_lookups": (
        "counter",
        "Shared cache tier lookups, by result (hit, miss, "
        "error, rejected: a bad value, skipped: the tier down or busy)",
    ),
    "shared_cache_writes": ("counter", "Answers written to the shared cache tier, by result"),
    "shared_cache_up": ("gauge", "1 while the shared cache tier answers, 0 during an outage"),
    "dnstap_messages": (
        "counter",
        "dnstap messages, by result (written; dropped_full: the queue was full; "
        "dropped_no_reader: no reader connected)",
    ),
    # Response policy ([[policy-zone]], [[blocklist]]: resolver.serve.policy_step).
    "policy_actions": ("counter", "Response policy rules applied, by zone and action"),
    "policy_loads": ("counter", "Policy zone loads and transfers, by zone and result"),
    "policy_entries": ("gauge", "Triggers held by each policy zone or blocklist"),
    # The encrypted transports (resolver.serve.tls, dot, doh; resolver.net.tls_upstream).
    "tls_handshakes": (
        "counter",
        "TLS handshakes with clients, by transport (tls, https) and result (full, resumed, "
        "failed, timeout)",
    ),
    "connections_open": ("gauge", "Client connections open now, by transport (tls, https)"),
    "connections_refused": (
        "counter",
        "Client connections closed at once for being over the cap, by transport (tls, https)",
    ),
    "https_responses": ("counter", "DNS over HTTPS responses, by HTTP status"),
    "upstream_tls_connections": (
        "counter",
        "TLS connections to forwarders, by result (opened, failed: no connection or a "
        "certificate that does not authenticate the server)",
    ),
    "upstream_tls_queries": ("counter", "Exchanges with forwarders carried over TLS"),
    "processes": ("gauge", "Processes answering (--workers)"),
    "tasks": ("gauge", "asyncio tasks alive (a leak shows here first)"),
    "open_descriptors": ("gauge", "File descriptors open (sockets included)"),
}

_KNOWN_TYPES = {int(t): t.name for t in RRType}

RECENT_SERVFAILS = 50  # the last SERVFAILs kept for the web view's live page
# (when, name, type, EDE INFO-CODE, EXTRA-TEXT)
RecentServfail = tuple[float, str, str, int, str]


def type_label(rrtype: int) -> str:
    """A query type as a label; the ones we do not name share one (clients choose the type,
    and every distinct label value is a new series)."""
    return _KNOWN_TYPES.get(rrtype, "other")


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

    def samples(self) -> list[Sample]:
        out: list[Sample] = []
        for (qtype, rcode, transport), count in self.queries.items():
            labels = (("qtype", type_label(qtype)), ("rcode", Rcode.text(rcode)),
                      ("transport", transport.value))  # fmt: skip
            out.append(("queries", labels, count))
        out.append(("queries_dropped", (), self.dropped))
        out.append(("queries_ratelimited", (), self.ratelimited))
        out.append(("stale_answers", (), self.stale))
        cumulative = 0
        for bound, count in zip((*LATENCY_BOUNDS, float("inf")), self.latency, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(("answer_duration_seconds_bucket", (("le", le),), cumulative))
        out.append(("answer_duration_seconds_count", (), cumulative))
        out.append(("answer_duration_seconds_sum", (), self.latency_sum))
        out.append(("upstream_queries", (), self.upstream_queries))
        out.append(("upstream_timeouts", (), self.upstream_failures.get(Failure.TIMEOUT.value, 0)))
        out.append(("upstream_tcp_fallbacks", (), self.upstream_tcp))
        for reason, count in self.upstream_failures.items():
            out.append(("upstream_failures", (("reason", reason),), count))
        for result, count in self.reloads.items():
            out.append(("reloads", (("result", result),), count))
        for result, count in self.shared_lookups.items():
            out.append(("shared_cache_lookups", (("result", result),), count))
        for result, count in self.shared_writes.items():
            out.append(("shared_cache_writes", (("result", result),), count))
        if self.shared_up is not None:
            out.append(("shared_cache_up", (), self.shared_up))
        for result, count in list(self.dnstap.items()):  # a copy: the writer thread adds
            out.append(("dnstap_messages", (("result", result),), count))
        for (zone, action), count in self.policy_actions.items():
            out.append(("policy_actions", (("action", action), ("zone", zone)), count))
        for (zone, result), count in self.policy_loads.items():
            out.append(("policy_loads", (("result", result), ("zone", zone)), count))
        for zone, entries in (self.policy_entries() if self.policy_entries else {}).items():
            out.append(("policy_entries", (("zone", zone),), entries))
        out.extend(self._encrypted_samples())
        out.append(("processes", (), 1))
        out.extend(process_samples())
        return out

    def _encrypted_samples(self) -> list[Sample]:
        out: list[Sample] = []
        for (transport, result), count in self.handshakes.items():
            labels = (("result", result), ("transport", transport.value))
            out.append(("tls_handshakes", labels, count))
        for transport, count in self.connections.items():
            out.append(("connections_open", (("transport", transport.value),), count))
        for transport, count in self.connections_refused.items():
            out.append(("connections_refused", (("transport", transport.value),), count))
        for status, count in self.https_status.items():
            out.append(("https_responses", (("status", str(status)),), count))
        for result, count in self.upstream_tls.items():
            if result == "queries":
                out.append(("upstream_tls_queries", (), count))
            else:
                out.append(("upstream_tls_connections", (("result", result),), count))
        return out


def process_samples() -> list[Sample]:
    """Tasks and descriptors of this process: after a load, both must return to where they
    were when it was idle (docs/reliability.md counts them this way)."""
    try:
        tasks = len(asyncio.all_tasks())
    except RuntimeError:  # no running loop (a test calling samples() directly)
        tasks = 0
    try:
        descriptors = len(os.listdir("/proc/self/fd")) - 1  # less the one listdir opened
    except OSError:  # no /proc (not Linux)
        descriptors = 0
    return [("tasks", (), tasks), ("open_descriptors", (), descriptors)]


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


def cache_samples(name: str, hits: int, misses: int, evictions: int, entries: int) -> list[Sample]:
    labels = (("cache", name),)
    return [("cache_hits", labels, hits), ("cache_misses", labels, misses),
            ("cache_evictions", labels, evictions), ("cache_entries", labels, entries)]  # fmt: skip


def merge(groups: Iterable[Iterable[Sample]]) -> list[Sample]:
    """Samples of several processes added up series by series (first-seen order)."""
    total: dict[tuple[str, Labels], float] = {}
    for samples in groups:
        for name, labels, value in samples:
            key = (name, labels)
            total[key] = total.get(key, 0) + value
    return [(name, labels, value) for (name, labels), value in total.items()]


def to_json(samples: Iterable[Sample]) -> list[list[Any]]:
    return [[name, [list(pair) for pair in labels], value] for name, labels, value in samples]


def from_json(data: Iterable[Any]) -> list[Sample]:
    return [(str(n), tuple((str(k), str(v)) for k, v in labels), float(value))
            for n, labels, value in data]  # fmt: skip


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6f}"


def as_text(samples: Iterable[Sample]) -> list[str]:
    """``key=value`` lines, as ``unbound-control stats`` prints: for each series without
    labels its value; for each labelled one its total and its sums by each label
    (``queries.total``, ``queries.qtype.A``, ``queries.rcode.NOERROR``...); histogram
    buckets as ``answer_duration_seconds.le.0.001`` (cumulative, as Prometheus counts)."""
    sums: dict[str, float] = {}

    def add(key: str, value: float) -> None:
        sums[key] = sums.get(key, 0) + value

    for name, labels, value in samples:
        if name.endswith("_bucket"):
            add(f"{name.removesuffix('_bucket')}.le.{labels[0][1]}", value)
        elif name.endswith(("_count", "_sum")) and name.rsplit("_", 1)[0] in METRICS:
            base, part = name.rsplit("_", 1)
            add(f"{base}.{part}", value)
        elif not labels:
            add(name, value)
        else:
            add(f"{name}.total", value)
            for label, label_value in labels:
                add(f"{name}.{label}.{label_value}", value)
    return [f"{key}={_number(value)}" for key, value in sorted(sums.items())]
