"""The command line (`python -m resolver`): help, usage errors, start-up failures, signals.

Every test runs the real program in a subprocess.  None of them needs the lab running:
the resolver sends nothing upstream until a client asks, and these tests ask nothing.
Run inside the network sandbox:  /work/shared/tools/offline python -m pytest tests/test_cli.py
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest

from resolver.lab.topology import hints_text
from resolver.serve.cli import build_parser

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


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (just now)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return int(port)


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
                "--ipv4-only", "--ipv6-only", "--no-qname-minimisation", "--cache-size",
                "--min-ttl", "--max-ttl", "--log-format", "--log-level",
                "--query-log", "--help"}  # fmt: skip
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
             "--upstream-port", "5300", "--log-format", "json", *extra],
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
