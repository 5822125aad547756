"""What the web view's live page shows, from counters the service already keeps.

Per process (:func:`process_state`, also run in each worker over the control links):
the slowest upstream server addresses, read from the engine's server table
(:class:`resolver.iterate.servers.ServerSelection`: the smoothed RTT it chooses
servers by, read, never changed), and the last SERVFAILs with their Extended DNS
Error (:attr:`resolver.serve.stats.ServiceStats.servfails`, a bounded ring).
:func:`summarise` adds the counters (queries, cache hits, the latency histogram) and
turns two readings of them into rates: queries a second and the cache hit rate over
the time between them.  Nothing here runs per query.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from resolver.ops.exposition import Sample
from resolver.ops.runtime import Runtime
from resolver.serve.stats import LATENCY_BOUNDS

SLOWEST = 10  # upstream addresses shown, slowest first
SERVFAILS_SHOWN = 20


def process_state(runtime: Runtime) -> dict[str, Any]:
    """This process's part of the live state (plain data: it crosses the worker links)."""
    measured = runtime.engine.selection.measured()  # (address, smoothed RTT, failures)
    servers = heapq.nlargest(
        SLOWEST, ((srtt, address, failures) for address, srtt, failures in measured)
    )
    return {
        "servers": [
            [address, round(srtt * 1000, 1), failures] for srtt, address, failures in servers
        ],
        "servfails": [list(entry) for entry in runtime.stats.servfails],
    }


def combine(states: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The processes' states as one: the slowest servers of all, the latest SERVFAILs."""
    servers: list[list[Any]] = []
    servfails: list[list[Any]] = []
    for state in states:
        servers += state.get("servers", [])
        servfails += state.get("servfails", [])
    return {
        "servers": heapq.nlargest(SLOWEST, servers, key=lambda server: float(server[1])),
        "servfails": sorted(servfails, key=lambda entry: float(entry[0]))[-SERVFAILS_SHOWN:][::-1],
    }


@dataclass
class Reading:
    """Counters at one moment: enough for rates between two readings."""

    at: float
    queries: float
    hits: float
    lookups: float


def _sum(samples: Iterable[Sample], name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for n, ls, value in samples if n == name and wanted <= set(ls))


def reading(samples: list[Sample], at: float | None = None) -> Reading:
    """The counters the rates are computed from (the wire answer cache: what clients hit)."""
    hits = _sum(samples, "cache_hits", cache="answers")
    misses = _sum(samples, "cache_misses", cache="answers")
    return Reading(time.monotonic() if at is None else at, _sum(samples, "queries"), hits,
                   hits + misses)  # fmt: skip


def histogram(samples: list[Sample]) -> list[list[Any]]:
    """The answer latency histogram as [upper bound in ms or "+Inf", answers in it]
    (per bucket, not cumulative as Prometheus has it)."""
    cumulative = {labels[0][1]: value for name, labels, value in samples
                  if name == "answer_duration_seconds_bucket"}  # fmt: skip
    out: list[list[Any]] = []
    below = 0.0
    for bound in (*(repr(b) for b in LATENCY_BOUNDS), "+Inf"):
        total = cumulative.get(bound, below)
        label = "+Inf" if bound == "+Inf" else round(float(bound) * 1000, 1)
        out.append([label, total - below])
        below = total
    return out


def summarise(
    samples: list[Sample], state: dict[str, Any], now: Reading, before: Reading
) -> dict[str, Any]:
    """The live page's numbers: rates between two readings, counters, servers, SERVFAILs."""
    seconds = max(now.at - before.at, 1e-9)
    lookups = now.lookups - before.lookups
    servfail = _sum(samples, "queries", rcode="SERVFAIL")
    return {
        "queries": now.queries,
        "queries_per_second": round((now.queries - before.queries) / seconds, 1),
        "cache_hit_rate": round((now.hits - before.hits) / lookups, 3) if lookups else None,
        "cache_hit_rate_total": round(now.hits / now.lookups, 3) if now.lookups else None,
        "servfail_total": servfail,
        "in_flight": _sum(samples, "resolutions_in_flight"),
        "upstream_queries": _sum(samples, "upstream_queries"),
        "processes": _sum(samples, "processes"),
        "latency_ms": histogram(samples),
        "window_seconds": round(seconds, 1),
        **state,
    }
