"""The command line (`python -m resolver`): help, usage errors, start-up failures, signals.

Every test runs the real program in a subprocess.  None of them needs the lab running:
the resolver sends nothing upstream until a client asks, and these tests ask nothing.
Run inside the network sandbox:  /work/shared/tools/offline python -m pytest tests/test_cli.py
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.rrset
import pytest

from resolver.lab.topology import hints_text
from resolver.lab.unbound import free_port, nodefault_flags
from resolver.ops import cli
from resolver.ops.cli import (
    GC_YOUNG_THRESHOLD,
    build_parser,
    collect_less_often,
    freeze_start_up,
)

START_TIMEOUT = 10.0


def run(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resolver", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def hints(tmp_path: Path) -> Path:
    """Lab root hints (loopback addresses): never the real named.root."""
    path = tmp_path / "lab.hints"
    path.write_text(hints_text())
    return path


def one_line(text: str) -> str:
    """The only line of ``text``, asserting there is exactly one and no traceback."""
    assert "Traceback" not in text
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


def leading_options(line: str) -> set[str]:
    """The options a help line starts with: "-h, --help  show ..." -> {"-h", "--help"}."""
    options = set()
    for word in line.split():
        if not word.startswith("-"):
            break
        options.add(word.rstrip(","))
    return options


# -- --help ------------------------------------------------------------------------------


def test_help_lists_every_flag_on_a_line_of_its_own() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert result.stderr == ""
    lines = [line.strip() for line in result.stdout.splitlines()]
    flags = [s for action in build_parser()._actions for s in action.option_strings]
    expected = {"--port", "--address", "--allow", "--root-hints", "--upstream-port",
                "--ipv4-only", "--ipv6-only", "--no-qname-minimisation",
                "--cache-size", "--min-ttl", "--max-ttl", "--log-format", "--log-level",
                "--query-log", "--help", "--config", "--control-socket", "--metrics",
                "--workers", "--no-query-log"}  # fmt: skip
    assert expected <= set(flags)
    for flag in flags:
        described = [line for line in lines if flag in leading_options(line)]
        assert len(described) == 1, f"{flag} is not described on a line of its own"
    # Each flag has a help text (not just its name).
    for action in build_parser()._actions:
        assert action.help, action.option_strings


# -- usage errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--bogus"], id="unknown-flag"),
        pytest.param(["--port"], id="missing-value"),
        pytest.param(["--port", "abc"], id="port-not-a-number"),
        pytest.param(["--port", "70000"], id="port-too-large"),
        pytest.param(["--upstream-port", "0"], id="upstream-port-0"),
        pytest.param(["--upstream-port", "65536"], id="upstream-port-too-large"),
        pytest.param(["--address", "localhost"], id="address-not-ip"),
        pytest.param(["--allow", "10.0.0.0/33"], id="bad-cidr"),
        pytest.param(["--cache-size", "0"], id="cache-size-0"),
        pytest.param(["--max-ttl", "-1"], id="negative-ttl"),
        pytest.param(["--min-ttl", "600", "--max-ttl", "60"], id="min-above-max"),
        pytest.param(["--log-format", "xml"], id="bad-choice"),
        pytest.param(["stray"], id="positional"),
    ],
)
def test_bad_flag_is_one_line_and_status_2(args: list[str], hints: Path) -> None:
    result = run("--root-hints", str(hints), *args)
    assert result.returncode == 2
    assert result.stdout == ""
    line = one_line(result.stderr)
    assert line.startswith("resolver: ")
    assert "_port" not in line and "_positive" not in line  # no Python function names


def test_version_prints_the_installed_version(hints: Path) -> None:
    from importlib.metadata import version

    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"resolver {version('resolver')}\n"


def test_the_collector_is_set_for_a_long_running_service() -> None:
    """The young generation collected less often than CPython's 700, and what start-up
    built left out of every later collection."""
    threshold = gc.get_threshold()
    try:
        collect_less_often()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *threshold[1:])
        kept = {"built": ["at", "start-up"]}
        freeze_start_up()
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())  # frozen: not tracked any more
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_port_in_use_udp(hints: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = run("--port", str(port), "--root-hints", str(hints), "--upstream-port", "5300")
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line == f"resolver: cannot listen on 127.0.0.1 port {port}: Address already in use"


def test_port_in_use_tcp(hints: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("--port", str(port), "--root-hints", str(hints), "--upstream-port", "5300")
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith(f"resolver: cannot listen on 127.0.0.1 port {port}: ")
    assert "already in use" in line.lower()


def test_hints_file_without_an_address(tmp_path: Path) -> None:
    path = tmp_path / "noaddr.hints"
    path.write_text(".  3600000  NS  a.root-servers.net.\n")
    result = run("--root-hints", str(path), "--port", str(free_port()))
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("resolver: ")
    assert str(path) in line
    assert "no root server with an address" in line


def test_hints_file_missing(tmp_path: Path) -> None:
    path = tmp_path / "absent.hints"
    result = run("--root-hints", str(path), "--port", str(free_port()))
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line == f"resolver: cannot read root hints {path}: No such file or directory"


# -- signals -----------------------------------------------------------------------------


def wait_for_event(log: Path, event: str, process: subprocess.Popen[bytes]) -> dict[str, object]:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == event:
                return dict(entry)
        if process.poll() is not None:
            pytest.fail(f"resolver exited with {process.returncode}: {log.read_text()}")
        time.sleep(0.05)
    pytest.fail(f"no {event!r} event in time: {log.read_text()}")


@contextlib.contextmanager
def running(hints: Path, log: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The resolver on a free port on the lab's hints, JSON logs to ``log``; killed if
    a test leaves it running."""
    port = free_port()
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "resolver", "--port", str(port), "--root-hints", str(hints),
             "--upstream-port", "5300", "--log-format", "json",
             "--control-socket", str(log.parent / "control.sock"), *nodefault_flags(), *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_it_with_status_0(signum: int, hints: Path, tmp_path: Path) -> None:
    log = tmp_path / "resolver.log"
    with running(hints, log) as (process, port):
        started = wait_for_event(log, "started", process)
        assert started["port"] == port
        assert started["upstream_port"] == 5300
        assert started["loop"] == "uvloop"  # a dependency: the README's install gets it
        process.send_signal(signum)
        assert process.wait(timeout=10) == 0
    text = log.read_text()
    assert "Traceback" not in text
    assert wait_for_event(log, "stopping", process)["level"] == "info"
    # Every line is one JSON object (--log-format json).
    assert all(json.loads(line) for line in text.splitlines())


def started_workers(log: Path, count: int) -> set[int]:
    """The PIDs of the workers that logged ``started``, once ``count`` have (bounded wait)."""
    deadline = time.monotonic() + START_TIMEOUT
    workers: set[int] = set()
    while len(workers) < count and time.monotonic() < deadline:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line]
        workers = {int(e["worker"]) for e in lines if e.get("event") == "started"}
        time.sleep(0.05)
    assert len(workers) == count, log.read_text()
    return workers


def test_workers_share_the_port_and_stop_together(hints: Path, tmp_path: Path, lab: object) -> None:
    """--workers 2: two processes bound with SO_REUSEPORT both answer; SIGTERM ends both."""
    log = tmp_path / "resolver.log"
    with running(hints, log, "--workers", "2") as (process, port):
        workers = started_workers(log, 2)
        assert process.pid in workers
        # Queries from many source ports are spread over both; each one is answered.
        for i in range(20):
            query = dns.message.make_query(f"n{i}.wild.example.com.", "A")
            reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=5)
            assert reply.rcode() == 0 and len(reply.answer) == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    stopping = [json.loads(line) for line in log.read_text().splitlines() if "stopping" in line]
    assert {e["worker"] for e in stopping} == workers  # every worker stopped cleanly
    for pid in workers:  # and none is left behind
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_listens_on_ipv6_too(hints: Path, tmp_path: Path, lab: object) -> None:
    """--address is repeatable and takes IPv6: answers on ::1 over UDP and TCP."""
    log = tmp_path / "resolver.log"
    with running(hints, log, "--address", "127.0.0.1", "--address", "::1") as (process, port):
        assert wait_for_event(log, "started", process)["addresses"] == ["127.0.0.1", "::1"]
        query = dns.message.make_query("www.example.com.", "A")
        for ask in (dns.query.udp, dns.query.tcp):
            reply = ask(query, "::1", port=port, timeout=5)
            assert reply.rcode() == 0 and len(reply.answer) == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_workers_do_not_outlive_a_killed_parent(hints: Path, tmp_path: Path) -> None:
    """Even when the first process is killed outright (SIGKILL), its workers stop."""
    log = tmp_path / "resolver.log"
    with running(hints, log, "--workers", "2") as (process, _port):
        workers = started_workers(log, 2)
        process.kill()
        process.wait()
    (child,) = workers - {process.pid}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)  # do not leave it behind, then fail
    pytest.fail("a worker outlived its killed parent")


# -- SIGHUP: reload, never die -----------------------------------------------------------


def events(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def wait_for(
    log: Path, event: str, count: int = 1, timeout: float = START_TIMEOUT
) -> list[dict[str, object]]:
    """The first ``count`` events named ``event`` (bounded wait, failing if they never come)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in events(log) if e.get("event") == event]
        if len(found) >= count:
            return found[:count]
        time.sleep(0.05)
    pytest.fail(f"fewer than {count} {event!r} events: {log.read_text()}")


def ask(port: int, name: str, source: str = "127.0.0.1") -> dns.message.Message:
    query = dns.message.make_query(name, "A")
    return dns.query.udp(query, "127.0.0.1", port=port, timeout=5, source=source)


def test_sighup_reloads_the_configuration(hints: Path, tmp_path: Path, lab: object) -> None:
    """SIGHUP used to kill the resolver (exit 129); now it reads the file again: what can
    change does, what cannot is reported, and a broken file leaves the old one in force."""
    config = tmp_path / "resolver.toml"
    config.write_text("query-log = false\n")
    log = tmp_path / "resolver.log"
    with running(hints, log, "--config", str(config)) as (process, port):
        wait_for_event(log, "started", process)
        process.send_signal(signal.SIGHUP)
        assert wait_for(log, "reloaded")[0]["changed"] == []
        assert process.poll() is None
        assert ask(port, "www.example.com.").rcode() == 0
        assert [e for e in events(log) if e["event"] == "query"] == []  # query log off

        config.write_text("query-log = true\n")
        process.send_signal(signal.SIGHUP)
        assert wait_for(log, "reloaded", 2)[1]["changed"] == ["query-log"]
        ask(port, "mail.example.com.", source="127.8.0.1")
        assert wait_for(log, "query")[0]["client"] == "127.8.0.1"

        config.write_text("query-log = false\nportt = 53\n")  # a typo: the old one stays
        process.send_signal(signal.SIGHUP)
        failed = wait_for(log, "reload_failed")[0]
        assert failed["level"] == "warning"
        assert failed["error"] == f"{config} line 2: unknown key 'portt' (did you mean 'port'?)"
        ask(port, "sip.example.com.", source="127.8.0.2")
        assert wait_for(log, "query", 2)[1]["client"] == "127.8.0.2"  # still logging queries

        # --port on the command line wins over the file; ipv6-only is the file's, bound at start.
        config.write_text(f"query-log = true\nport = {port + 1}\nipv6-only = true\n"
                          "log-level = 'warning'\n")  # fmt: skip
        process.send_signal(signal.SIGHUP)
        assert wait_for(log, "needs_restart")[0]["keys"] == ["ipv6-only"]
        assert ask(port, "www.example.com.").rcode() == 0
        time.sleep(0.2)
        assert [e for e in events(log) if e["event"] == "query"][2:] == []  # info is off now

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


class SlowRoot:
    """A root server that takes ``delay`` seconds to answer anything, authoritatively:
    every name has A 192.0.2.77.  Resolutions through it stay in flight for that long."""

    ADDRESS = "127.99.0.1"

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.ADDRESS, 0))
        self.port = int(self.sock.getsockname()[1])
        self.received: list[float] = []
        self.sent: list[float] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def hints(self, path: Path) -> Path:
        path.write_text(f".  3600000  NS  a.slow-root.\na.slow-root.  3600000  A  {self.ADDRESS}\n")
        return path

    def _serve(self) -> None:
        while True:
            try:
                wire, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            self.received.append(time.monotonic())
            threading.Timer(self.delay, self._answer, (wire, peer)).start()

    def _answer(self, wire: bytes, peer: tuple[str, int]) -> None:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        if question.rdtype == dns.rdatatype.NS and question.name == dns.name.root:
            response.answer.append(dns.rrset.from_text(".", 300, "IN", "NS", "a.slow-root."))
            response.additional.append(
                dns.rrset.from_text("a.slow-root.", 300, "IN", "A", self.ADDRESS)
            )
        elif question.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(question.name, 300, "IN", "A", "192.0.2.77"))
        with contextlib.suppress(OSError):
            self.sock.sendto(response.to_wire(), peer)
            if question.rdtype == dns.rdatatype.A:  # the answers, not the priming replies
                self.sent.append(time.monotonic())

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "workers-2"])
def test_sighup_with_queries_in_flight_loses_none(tmp_path: Path, workers: int) -> None:
    """Queries whose resolutions are in flight when SIGHUP arrives are all answered; with
    --workers, every worker reloads."""
    root = SlowRoot(delay=0.6)  # less than the first upstream timeout (1 s): no retries
    config = tmp_path / "resolver.toml"
    # Without minimisation each question is one query at the root, after one priming query
    # that every resolution shares (identical exchanges in flight are sent once).
    settings = f"upstream-port = {root.port}\nworkers = {workers}\nqname-minimisation = false\n"
    config.write_text(settings)
    log = tmp_path / "resolver.log"
    try:
        with running(root.hints(tmp_path / "slow.hints"), log, "--config", str(config),
                     "--upstream-port", str(root.port)) as (process, port):  # fmt: skip
            started_workers(log, workers)
            names = [f"q{i}.inflight.test." for i in range(24)]
            with ThreadPoolExecutor(max_workers=len(names)) as pool:
                replies = [pool.submit(ask, port, name) for name in names]
                deadline = time.monotonic() + 5
                upstream = len(names) + workers  # and one priming query per process
                while len(root.received) < upstream and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert len(root.received) >= upstream  # every question is upstream now
                config.write_text(settings + "query-log = true\n")
                hup = time.monotonic()
                process.send_signal(signal.SIGHUP)
                results = [future.result(timeout=15) for future in replies]
            reloads = wait_for(log, "reloaded", workers)
            assert {e["worker"] for e in reloads} == started_workers(log, workers)
            assert all(e["changed"] == ["query-log"] for e in reloads)
            assert max(root.received) < hup < min(root.sent)  # in flight across the reload
            for name, reply in zip(names, results, strict=True):
                assert reply.rcode() == 0
                assert [rr.to_text() for rr in reply.answer[0]] == ["192.0.2.77"], name
            assert process.poll() is None
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
    finally:
        root.close()


def test_loop_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = asyncio.get_event_loop_policy()
    try:
        monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
        assert cli.use_fastest_loop() == "asyncio"
        loop = asyncio.new_event_loop()
        try:
            assert cli.loop_name(loop) == "asyncio"
        finally:
            loop.close()
        monkeypatch.delitem(sys.modules, "uvloop")
        assert cli.use_fastest_loop() == "uvloop"
        loop = asyncio.new_event_loop()
        try:
            assert cli.loop_name(loop) == "uvloop"
        finally:
            loop.close()
    finally:
        asyncio.set_event_loop_policy(policy)
