"""Prometheus metrics at ``--metrics ADDR:PORT`` (``GET /metrics``), off unless asked for.

The same address serves the web view (:mod:`resolver.ops.webview`: ``/`` the form
and the live state, ``/trace`` a resolution drawn, ``/state`` the live numbers).

The numbers are the service's own counters (:mod:`resolver.serve.stats`), turned
into Prometheus metric families with the prometheus-client library at each
scrape, and served by a small HTTP handler on the event loop (no thread, so a
scrape reads the counters between two packets, never in the middle of one).
Names follow the Prometheus conventions: ``resolver_`` first, the unit in the
name, ``_total`` for counters.

``--workers N``: each worker counts for itself; the first process gathers every
worker's counters over the control links (:class:`resolver.ops.control.Front`)
and serves their sums, so one target covers the whole resolver and each
worker's numbers reach it.  This is instead of prometheus-client's multiprocess
mode (a directory of memory-mapped files, one per worker, and a lock taken at
every increment on the hot path) and instead of one port per worker (N scrape
targets to list and keep in step with ``--workers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterable, Iterator

import structlog
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from resolver.ops.exposition import METRICS, Sample
from resolver.ops.webview import Page, WebView

log = structlog.get_logger("resolver.ops.metrics")

PREFIX = "resolver_"
Gather = Callable[[], Awaitable[list[Sample]]]


def families(samples: Iterable[Sample]) -> list[Metric]:
    """The metric families of a set of samples, one per entry of METRICS."""
    by_name: dict[str, list[Sample]] = {}
    for sample in samples:
        by_name.setdefault(sample[0], []).append(sample)
    out: list[Metric] = []
    for name, (kind, help_text) in METRICS.items():
        if kind == "histogram":
            out.append(_histogram(name, help_text, by_name))
            continue
        series = by_name.get(name, [])
        label_names = [label for label, _ in series[0][1]] if series else []
        family: CounterMetricFamily | GaugeMetricFamily
        if kind == "counter":
            family = CounterMetricFamily(PREFIX + name, help_text, labels=label_names)
        else:
            family = GaugeMetricFamily(PREFIX + name, help_text, labels=label_names)
        for _name, labels, value in series:
            family.add_metric([v for _, v in labels], value)
        out.append(family)
    return out


def _histogram(name: str, help_text: str, by_name: dict[str, list[Sample]]) -> Metric:
    buckets = sorted(
        ((labels[0][1], value) for _n, labels, value in by_name.get(f"{name}_bucket", [])),
        key=lambda bucket: float(bucket[0]),
    )
    total = sum(value for _n, _l, value in by_name.get(f"{name}_sum", []))
    return HistogramMetricFamily(PREFIX + name, help_text, buckets=buckets, sum_value=total)


class _Snapshot(Collector):
    """A collector over samples already gathered (prometheus-client's exposition reads
    a registry synchronously; the gathering from workers is asynchronous)."""

    def __init__(self, samples: list[Sample]) -> None:
        self.samples = samples

    def collect(self) -> Iterator[Metric]:
        yield from families(self.samples)


async def exposition(gather: Gather) -> bytes:
    """The text a scrape gets."""
    return generate_latest(_Snapshot(await gather()))


class MetricsServer:
    """HTTP/1.1 just enough for Prometheus (``GET /metrics``) and the web view, one request
    per connection."""

    def __init__(self, gather: Gather, web: WebView | None = None) -> None:
        self.gather = gather
        self.web = web

    async def _respond(self, method: str, target: str, peer: str) -> Page:
        """The response to a request for ``target`` (a path and its query string)."""
        if method not in ("GET", "HEAD"):
            return Page("405 Method Not Allowed", "text/plain", b"GET only\n")
        path, _, query = target.partition("?")
        if path != "/metrics":
            page = await self.web.respond(path, query, peer) if self.web is not None else None
            return page or Page("404 Not Found", "text/plain", b"see /metrics or /\n")
        try:
            return Page("200 OK", CONTENT_TYPE_LATEST, await exposition(self.gather))
        except Exception as error:  # a worker that does not answer, say
            log.warning("metrics_unavailable", error=str(error))
            return Page("503 Service Unavailable", "text/plain", f"{error}\n".encode())

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = (writer.get_extra_info("peername") or ("",))[0]
        try:
            async with asyncio.timeout(10):
                request = await reader.readuntil(b"\r\n\r\n")
                method, _, rest = request.decode("latin-1").partition(" ")
                page = await self._respond(method, rest.split(" ", 1)[0], str(peer))
            extra = "".join(f"{name}: {value}\r\n" for name, value in page.headers)
            head = (f"HTTP/1.1 {page.status}\r\nContent-Type: {page.kind}\r\n"
                    f"Content-Length: {len(page.body)}\r\nX-Content-Type-Options: nosniff\r\n"
                    f"{extra}Connection: close\r\n\r\n")  # fmt: skip
            writer.write(head.encode() + (page.body if method != "HEAD" else b""))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # not an HTTP request we serve: close
        except ConnectionError:
            pass
        except Exception:
            log.exception("metrics_error")
        finally:
            with contextlib.suppress(ConnectionError):
                writer.close()


def bind_metrics_socket(address: str, port: int) -> socket.socket:
    """The listening TCP socket of the metrics endpoint (OSError if it cannot be had)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
        sock.listen(16)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
