"""The service's counters shown: ``resolver-control stats`` lines and ``/metrics`` samples.

The data path counts (:class:`resolver.serve.stats.ServiceStats`: plain numbers, no
library call per answer); this turns them into :data:`Sample` values only when someone
asks.  A sample is ``(name, labels, value)``, the shape Prometheus uses, and samples from
several processes (``--workers``) add up key by key (:func:`merge`), so the first
process can answer for all of them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from typing import Any

from resolver.net.contract import Failure
from resolver.serve.stats import LATENCY_BOUNDS, ServiceStats
from resolver.wire import Rcode, RRType

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs
Sample = tuple[str, Labels, float]

# name -> (Prometheus type, help); the Prometheus name is "resolver_" + name (+ "_total").
METRICS: dict[str, tuple[str, str]] = {
    "queries": ("counter", "Client queries answered, by query type, RCODE and transport"),
    "queries_dropped": ("counter", "Client packets dropped unanswered (too short, or a response)"),
    "queries_ratelimited": ("counter", "Queries over their client's ip-ratelimit (UDP, DoT, DoH)"),
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


def type_label(rrtype: int) -> str:
    """A query type as a label; the ones we do not name share one (clients choose the type,
    and every distinct label value is a new series)."""
    return _KNOWN_TYPES.get(rrtype, "other")


def samples(stats: ServiceStats) -> list[Sample]:
    """Every counter of ``stats`` as samples (what ``stats`` and ``/metrics`` show)."""
    out: list[Sample] = []
    for (qtype, rcode, transport), count in stats.queries.items():
        labels = (("qtype", type_label(qtype)), ("rcode", Rcode.text(rcode)),
                  ("transport", transport.value))  # fmt: skip
        out.append(("queries", labels, count))
    out.append(("queries_dropped", (), stats.dropped))
    out.append(("queries_ratelimited", (), stats.ratelimited))
    out.append(("stale_answers", (), stats.stale))
    cumulative = 0
    for bound, count in zip((*LATENCY_BOUNDS, float("inf")), stats.latency, strict=True):
        cumulative += count
        le = "+Inf" if bound == float("inf") else repr(bound)
        out.append(("answer_duration_seconds_bucket", (("le", le),), cumulative))
    out.append(("answer_duration_seconds_count", (), cumulative))
    out.append(("answer_duration_seconds_sum", (), stats.latency_sum))
    out.append(("upstream_queries", (), stats.upstream_queries))
    out.append(("upstream_timeouts", (), stats.upstream_failures.get(Failure.TIMEOUT.value, 0)))
    out.append(("upstream_tcp_fallbacks", (), stats.upstream_tcp))
    for reason, count in stats.upstream_failures.items():
        out.append(("upstream_failures", (("reason", reason),), count))
    for result, count in stats.reloads.items():
        out.append(("reloads", (("result", result),), count))
    for result, count in stats.shared_lookups.items():
        out.append(("shared_cache_lookups", (("result", result),), count))
    for result, count in stats.shared_writes.items():
        out.append(("shared_cache_writes", (("result", result),), count))
    if stats.shared_up is not None:
        out.append(("shared_cache_up", (), stats.shared_up))
    for result, count in list(stats.dnstap.items()):  # a copy: the writer thread adds
        out.append(("dnstap_messages", (("result", result),), count))
    for (zone, action), count in stats.policy_actions.items():
        out.append(("policy_actions", (("action", action), ("zone", zone)), count))
    for (zone, result), count in stats.policy_loads.items():
        out.append(("policy_loads", (("result", result), ("zone", zone)), count))
    for zone, entries in (stats.policy_entries() if stats.policy_entries else {}).items():
        out.append(("policy_entries", (("zone", zone),), entries))
    out.extend(_encrypted_samples(stats))
    out.append(("processes", (), 1))
    out.extend(process_samples())
    return out


def _encrypted_samples(stats: ServiceStats) -> list[Sample]:
    out: list[Sample] = []
    for (transport, result), count in stats.handshakes.items():
        labels = (("result", result), ("transport", transport.value))
        out.append(("tls_handshakes", labels, count))
    for transport, count in stats.connections.items():
        out.append(("connections_open", (("transport", transport.value),), count))
    for transport, count in stats.connections_refused.items():
        out.append(("connections_refused", (("transport", transport.value),), count))
    for status, count in stats.https_status.items():
        out.append(("https_responses", (("status", str(status)),), count))
    for result, count in stats.upstream_tls.items():
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
