"""Prometheus metrics (resolver/ops/metrics.py, resolver/serve/stats.py): an HTTP GET of
/metrics from a running resolver on the lab, parsed with prometheus-client's own parser; the
upstream counters (CountingNetwork) and the sums across --workers.

Run inside the network sandbox:
    /work/shared/tools/offline python -m pytest tests/test_metrics.py
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from test_listener import ResolverProcess, dig, new_client

from resolver.iterate.request import Transport
from resolver.lab import Lab
from resolver.lab.unbound import free_port
from resolver.net.contract import ExchangeFailed, Failure, Query, Reply
from resolver.ops.exposition import Sample, as_text, merge, samples
from resolver.ops.metrics import families
from resolver.serve.stats import CountingNetwork, ServiceStats
from resolver.wire import Header, Message

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int, path: str = "/metrics") -> tuple[Series, dict[str, str]]:
    """Every sample (name, sorted labels) -> value, and each family's type."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"] == CONTENT_TYPE_LATEST  # text format
        text = reply.read().decode()
    series: Series = {}
    types = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            series[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return series, types


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def resolver(lab: Lab, tmp_path_factory: pytest.TempPathFactory,
             metrics_port: int) -> Iterator[ResolverProcess]:  # fmt: skip
    running = ResolverProcess(lab, tmp_path_factory.mktemp("metrics"), "--metrics",
                              f"127.0.0.1:{metrics_port}")  # fmt: skip
    try:
        yield running
    finally:
        assert running.stop() == 0


# -- through the running service -------------------------------------------------------------


def test_metrics_count_what_clients_and_upstreams_saw(resolver: ResolverProcess,
                                                      metrics_port: int) -> None:  # fmt: skip
    before, _ = scrape(metrics_port)
    client = new_client()
    for _ in range(3):
        dig(resolver.port, "www.example.com", "A", source=client)
    dig(resolver.port, "doesnotexist.example.com", "A", source=client)
    dig(resolver.port, "+tcp", "big.example.com", "TXT", source=client)  # TCP upstream too
    after, types = scrape(metrics_port)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    udp_a = {"qtype": "A", "transport": "udp"}
    assert delta("resolver_queries_total", rcode="NOERROR", **udp_a) == 3
    assert delta("resolver_queries_total", rcode="NXDOMAIN", **udp_a) == 1
    assert delta("resolver_queries_total", qtype="TXT", rcode="NOERROR", transport="tcp") == 1
    assert delta("resolver_answer_duration_seconds_count") == 5
    assert delta("resolver_answer_duration_seconds_bucket", le="+Inf") == 5
    assert delta("resolver_answer_duration_seconds_sum") > 0
    assert delta("resolver_cache_hits_total", cache="answers") >= 2
    assert delta("resolver_cache_misses_total", cache="records") > 0
    assert delta("resolver_upstream_queries_total") > 0
    assert delta("resolver_upstream_tcp_fallbacks_total") >= 1
    assert after[("resolver_cache_entries", (("cache", "records"),))] > 0
    assert after[("resolver_resolutions_in_flight", ())] == 0
    assert after[("resolver_processes", ())] == 1
    assert types["resolver_queries"] == "counter"
    assert types["resolver_cache_entries"] == "gauge"
    assert types["resolver_answer_duration_seconds"] == "histogram"
    assert types["resolver_upstream_failures"] == "counter"  # by reason: see test_counting_network


def test_other_paths_are_not_found(resolver: ResolverProcess, metrics_port: int) -> None:
    # (/ is the web view's page: tests/test_webview.py)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/nothing", timeout=10)
    assert caught.value.code == 404


def test_workers_are_summed_on_one_endpoint(lab: Lab, tmp_path: Path) -> None:
    port = free_port()
    running = ResolverProcess(lab, tmp_path, "--workers", "2", "--metrics", f"127.0.0.1:{port}")
    try:
        for i in range(20):  # from many source ports: both workers answer some
            dig(running.port, f"m{i}.wild.example.com", "A")
        series, _ = scrape(port)
        labels = (("qtype", "A"), ("rcode", "NOERROR"), ("transport", "udp"))
        assert series[("resolver_queries_total", labels)] == 20
        assert series[("resolver_processes", ())] == 2
        # Both did answer (each caches what it resolved): the sum is over both.
        dump = subprocess.run([sys.executable, "-m", "resolver.ops.control", "--control-socket",
                               str(tmp_path / "control.sock"), "dump"],
                              capture_output=True, text=True, timeout=30).stdout  # fmt: skip
        sections = dump.split("; process ")[1:]
        assert len(sections) == 2
        assert all(".wild.example.com. " in section for section in sections)
        # The web view's live state gathers both processes too.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/state", timeout=10) as reply:
            state = json.loads(reply.read())
        assert state["processes"] == 2 and state["queries"] == 20
        assert state["servers"]  # the server tables of both, the slowest first
    finally:
        assert running.stop() == 0


def test_metrics_port_in_use(lab: Lab, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "resolver", "--port", str(free_port()), "--root-hints",
             str(lab.write_hints(tmp_path / "h")), "--control-socket", "none",
             "--metrics", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == (
        f"resolver: cannot serve metrics on 127.0.0.1:{port}: Address already in use\n"
    )


# -- in-process: counting upstream work, adding up, the families ----------------------------


class FakeNetwork:
    def __init__(self) -> None:
        self.outcomes: list[Reply | ExchangeFailed] = []

    async def exchange(self, query: Query) -> Reply:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, ExchangeFailed):
            raise outcome
        return outcome


def test_counting_network() -> None:
    inner = FakeNetwork()
    message = Message(Header(), [], [], [], [])
    inner.outcomes = [
        Reply(message, 0.01, False),
        Reply(message, 0.02, True),
        ExchangeFailed(Failure.TIMEOUT, "192.0.2.1"),
        ExchangeFailed(Failure.TIMEOUT, "192.0.2.2", "tcp"),
        ExchangeFailed(Failure.UNREACHABLE, "192.0.2.3"),
    ]
    stats = ServiceStats()
    network = CountingNetwork(inner, stats)

    async def scenario() -> list[str]:
        seen = []
        for _ in range(5):
            try:
                reply = await network.exchange(Query("192.0.2.1", "example.", 1, 1.0))
                seen.append("tcp" if reply.tcp else "udp")
            except ExchangeFailed as error:
                seen.append(error.failure.value)
        return seen

    assert asyncio.run(scenario()) == ["udp", "tcp", "timeout", "timeout", "unreachable"]
    assert (stats.upstream_queries, stats.upstream_tcp) == (5, 1)
    assert stats.upstream_failures == {"timeout": 2, "unreachable": 1}
    text = as_text(samples(stats))
    assert "upstream_timeouts=2" in text and "upstream_failures.reason.unreachable=1" in text


def test_merge_adds_series_up() -> None:
    one: list[Sample] = [("queries", (("qtype", "A"),), 2), ("processes", (), 1)]
    two: list[Sample] = [("queries", (("qtype", "A"),), 3), ("queries", (("qtype", "MX"),), 1),
                         ("processes", (), 1)]  # fmt: skip
    assert merge([one, two]) == [("queries", (("qtype", "A"),), 5), ("processes", (), 2),
                                 ("queries", (("qtype", "MX"),), 1)]  # fmt: skip
    assert as_text(merge([one, two])) == ["processes=2", "queries.qtype.A=5",
                                          "queries.qtype.MX=1", "queries.total=6"]  # fmt: skip


def test_families_from_samples() -> None:
    stats = ServiceStats()
    stats.answered(1, 0, Transport.UDP, 0.0002)
    stats.answered(1, 0, Transport.UDP, 0.3)
    stats.answered(65280, 2, Transport.TCP, 12.0)  # an unnamed type and beyond the last bucket
    by_name = {f.name: f for f in families(samples(stats))}
    queries = by_name["resolver_queries"]
    assert queries.type == "counter"
    assert {(tuple(s.labels.values()), s.value) for s in queries.samples} == {
        (("A", "NOERROR", "udp"), 2), (("other", "SERVFAIL", "tcp"), 1)}  # fmt: skip
    histogram = {(s.name, s.labels.get("le")): s.value
                 for s in by_name["resolver_answer_duration_seconds"].samples}  # fmt: skip
    assert histogram[("resolver_answer_duration_seconds_bucket", "0.0005")] == 1
    assert histogram[("resolver_answer_duration_seconds_bucket", "0.5")] == 2
    assert histogram[("resolver_answer_duration_seconds_bucket", "10.0")] == 2
    assert histogram[("resolver_answer_duration_seconds_bucket", "+Inf")] == 3
    assert histogram[("resolver_answer_duration_seconds_count", None)] == 3
    assert histogram[("resolver_answer_duration_seconds_sum", None)] == pytest.approx(12.3002)


def test_a_lost_worker_is_an_error_not_a_smaller_sum(lab: Lab, tmp_path: Path) -> None:
    """If a worker is gone, neither /metrics nor `stats` passes off the others' sum as the
    whole: 503 and exit status 1, naming the worker."""
    port = free_port()
    running = ResolverProcess(lab, tmp_path, "--workers", "2", "--metrics", f"127.0.0.1:{port}")
    try:
        scrape(port)
        (worker,) = {int(e["worker"]) for e in running.events()
                     if e["event"] == "started"} - {running.process.pid}  # fmt: skip
        os.kill(worker, signal.SIGKILL)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=40)
        assert caught.value.code == 503
        assert f"worker {worker} did not answer" in caught.value.read().decode()
        done = subprocess.run([sys.executable, "-m", "resolver.ops.control", "--control-socket",
                               str(tmp_path / "control.sock"), "stats"],
                              capture_output=True, text=True, timeout=40)  # fmt: skip
        assert done.returncode == 1
        assert f"worker {worker} did not answer" in done.stderr
    finally:
        assert running.stop() == 0
