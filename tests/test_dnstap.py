"""dnstap (resolver/serve/dnstap.py): what the resolver writes is read back by BIND's
``dnstap-read``, to a file (``--dnstap file:PATH``) and to a Unix socket whose reader is
``fstrm_capture`` (fstrm-bin: the bidirectional Frame Streams handshake); an absent or
stalled reader never holds up an answer, and what is dropped is counted.  Unbound's own
dnstap on the same questions: tests/interop/test_dnstap_unbound.py.

Without dnstap-read or fstrm_capture these tests are skipped with the reason, except in
CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_listener import ResolverProcess, dig

from resolver.lab import Lab
from resolver.net.contract import Query, Reply
from resolver.ops.config import SettingsError, load_settings
from resolver.serve.dnstap import (
    ACCEPT,
    CLIENT_QUERY,
    CONTENT_TYPE,
    FINISH,
    READY,
    RESOLVER_QUERY,
    RESOLVER_RESPONSE,
    START,
    UDP,
    DnstapSink,
    TappedNetwork,
    control_frame,
    encode,
    read_control,
)
from resolver.serve.stats import ServiceStats
from resolver.wire import RRType, parse_message, write_query

LINE = re.compile(r"^\S+ \S+ (?P<kind>[A-Z]{2}) (?P<peer>\S+) (?:->|<-) (?P<server>\S+) "
                  r"(?P<proto>UDP|TCP) (?P<size>\d+)b (?P<question>\S+)$")  # fmt: skip


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (apt-get install {package})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"dnstap test cannot run in CI: {reason}")
        pytest.skip(reason)
    return path


def dnstap_read(path: Path) -> list[dict[str, str]]:
    """Each message of a dnstap file, as ``dnstap-read`` prints it: kind (CQ, CR, RQ, RR),
    peer, server, protocol, size and question (name/IN/TYPE)."""
    done = subprocess.run([tool("dnstap-read", "bind9-dnsutils"), str(path)],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    messages = []
    for line in done.stdout.splitlines():
        match = LINE.match(line)
        assert match, line
        messages.append(match.groupdict())
    return messages


def kinds_for(messages: list[dict[str, str]], question: str) -> list[str]:
    return [m["kind"] for m in messages if m["question"] == question]


class Capture:
    """``fstrm_capture`` reading dnstap on a Unix socket into a file, stopped by PID."""

    def __init__(self, directory: Path, socket_path: Path | None = None) -> None:
        self.socket = socket_path or directory / "dnstap.sock"
        self.output = directory / "captured.tap"
        self.process = subprocess.Popen(
            [tool("fstrm_capture", "fstrm-bin"), "-t", CONTENT_TYPE.decode(), "-u",
             str(self.socket), "-w", str(self.output)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            assert self.process.poll() is None and time.monotonic() < deadline, "no reader"
            time.sleep(0.05)

    def stop(self) -> list[dict[str, str]]:
        self.process.send_signal(2)  # SIGINT: fstrm_capture closes its file and exits
        self.process.wait(timeout=10)
        return dnstap_read(self.output)


def connected(resolver: ResolverProcess) -> bool:
    return any(e["event"] == "dnstap_connected" for e in resolver.events())


def wait_connected(resolver: ResolverProcess, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not connected(resolver):
        assert time.monotonic() < deadline, resolver.log_path.read_text()
        time.sleep(0.05)


@pytest.fixture
def capture(tmp_path: Path) -> Iterator[Capture]:
    reader = Capture(tmp_path)
    yield reader
    if reader.process.poll() is None:
        reader.process.kill()
        reader.process.wait()


def test_a_file_holds_client_and_resolver_messages_for_dnstap_read(
    lab: Lab, tmp_path: Path
) -> None:
    tap = tmp_path / "resolver.tap"
    resolver = ResolverProcess(lab, tmp_path, "--dnstap", f"file:{tap}")
    try:
        wait_connected(resolver)
        assert "198.51.100.14" in dig(resolver.port, "www.google.com").text  # cold: walked
        assert "198.51.100.14" in dig(resolver.port, "www.google.com", "+tcp").text  # cached
    finally:
        assert resolver.stop() == 0
    messages = dnstap_read(tap)
    assert kinds_for(messages, "www.google.com/IN/A")[0] == "CQ"
    clients = [(m["kind"], m["proto"]) for m in messages if m["kind"] in ("CQ", "CR")]
    assert clients == [("CQ", "UDP"), ("CR", "UDP"), ("CQ", "TCP"), ("CR", "TCP")], messages
    upstream = [m for m in messages if m["kind"] in ("RQ", "RR")]
    assert {m["kind"] for m in upstream} == {"RQ", "RR"}
    assert all(m["server"].endswith(f":{lab.port}") for m in upstream)  # the lab's servers
    assert ("RR", "www.google.com/IN/A") in {(m["kind"], m["question"]) for m in upstream}
    # every upstream answer follows its query, and the client's answer follows them all
    kinds = [m["kind"] for m in messages]
    assert kinds.index("CR") > max(i for i, k in enumerate(kinds) if k == "RR")
    # the cached answer went upstream for nothing: the TCP pair is alone at the end
    assert kinds[-2:] == ["CQ", "CR"] and kinds[-3] != "CQ"


def test_a_unix_socket_reader_gets_the_stream_after_the_handshake(
    lab: Lab, tmp_path: Path, capture: Capture
) -> None:
    resolver = ResolverProcess(lab, tmp_path, "--dnstap", f"unix:{capture.socket}")
    try:
        wait_connected(resolver)
        assert "198.51.100.7" in dig(resolver.port, "www.chain.com").text
    finally:
        assert resolver.stop() == 0  # STOP sent, FINISH awaited
    messages = capture.stop()
    assert messages[0]["kind"] == "CQ" and messages[-1]["kind"] == "CR"
    asked = {m["question"] for m in messages if m["kind"] == "RR"}
    assert {"www.chain.com/IN/A", "a.chain.net/IN/A", "b.chain.org/IN/A"} <= asked  # the CNAMEs
    assert kinds_for(messages, "www.chain.com/IN/A").count("CR") == 1


def test_no_reader_drops_and_counts_and_answers_all_the_same(lab: Lab, tmp_path: Path) -> None:
    path = tmp_path / "nobody.sock"
    control = tmp_path / "control.sock"
    resolver = ResolverProcess(lab, tmp_path, "--dnstap", f"unix:{path}",
                               "--control-socket", str(control))  # fmt: skip
    late: Capture | None = None
    try:
        started = time.monotonic()
        assert "198.51.100.14" in dig(resolver.port, "www.google.com").text
        assert time.monotonic() - started < 5
        stats = subprocess.run(
            [sys.executable, "-m", "resolver.ops.control", "--control-socket", str(control),
             "stats"], capture_output=True, text=True, timeout=30,
        ).stdout  # fmt: skip
        dropped = re.search(r"^dnstap_messages\.result\.dropped_no_reader=(\d+)$", stats, re.M)
        assert dropped and int(dropped[1]) >= 2, stats  # at least the client's two
        # A reader that comes later is found (the writer tries again every second).
        (tmp_path / "late").mkdir()
        late = Capture(tmp_path / "late", path)
        wait_connected(resolver)
        dig(resolver.port, "www.noglue.org")
    finally:
        assert resolver.stop() == 0
    assert late is not None
    messages = late.stop()
    assert "www.noglue.org/IN/A" in {m["question"] for m in messages}


def test_a_reader_that_stops_reading_never_holds_up_the_query_path(tmp_path: Path) -> None:
    """A reader that accepts and then reads nothing: the writer thread blocks on its
    socket, the queue fills, and offering a message stays instant (dropped, counted)."""
    path = str(tmp_path / "stalled.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    accepted: list[socket.socket] = []

    def handshake() -> None:
        conn, _ = listener.accept()
        accepted.append(conn)
        recv = conn.recv
        assert read_control(lambda n: recv(n, socket.MSG_WAITALL))[0] == READY
        conn.sendall(control_frame(ACCEPT))
        assert read_control(lambda n: recv(n, socket.MSG_WAITALL))[0] == START
        # ... and never read again

    thread = threading.Thread(target=handshake, daemon=True)
    thread.start()
    stats = ServiceStats()
    sink = DnstapSink(f"unix:{path}", stats, "127.0.0.1", max_queue=100)
    deadline = time.monotonic() + 10
    while not sink.connected:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    query = write_query("www.example.com.", 1, 1) + b"\0" * 4000  # a big one: fills buffers
    slowest = 0.0
    for _ in range(20_000):
        before = time.perf_counter()
        sink.offer((CLIENT_QUERY, UDP, "127.0.0.1", None, 53, time.time_ns(), query, None, None))
        slowest = max(slowest, time.perf_counter() - before)
    assert stats.dnstap.get("dropped_full", 0) > 0, stats.dnstap
    assert slowest < 0.05  # never waits on the reader
    assert len(sink.queue) <= 100
    sink.stopping = True  # the thread is stuck in sendall: closing the reader frees it
    for conn in accepted:
        conn.close()
    listener.close()
    sink.close(timeout=5)
    assert not sink._thread.is_alive()


def test_a_stopped_stream_ends_with_stop_and_awaits_finish(tmp_path: Path) -> None:
    """The Unix socket's whole conversation, by a reader written here from the spec:
    READY -> ACCEPT -> START, data frames, STOP -> FINISH."""
    path = str(tmp_path / "reader.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    seen: list[object] = []

    def reader() -> None:
        conn, _ = listener.accept()
        recv = lambda n: conn.recv(n, socket.MSG_WAITALL)  # noqa: E731
        seen.append(read_control(recv))
        conn.sendall(control_frame(ACCEPT))
        seen.append(read_control(recv))
        while True:
            length = int.from_bytes(recv(4), "big")
            if length == 0:  # an escape: the next is a control frame (STOP)
                size = int.from_bytes(recv(4), "big")
                seen.append(int.from_bytes(recv(size)[:4], "big"))
                conn.sendall(control_frame(FINISH, content_type=False))
                conn.close()
                return
            seen.append(recv(length))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    sink = DnstapSink(f"unix:{path}", ServiceStats(), "127.0.0.1")
    while not sink.connected:
        time.sleep(0.01)
    entry = (CLIENT_QUERY, UDP, "127.0.0.1", None, 53, 1_700_000_000_123_456_789,
             write_query("a.example.", 1, 7), None, None)  # fmt: skip
    sink.offer(entry)
    sink.close()
    thread.join(5)
    assert seen[0] == (READY, [CONTENT_TYPE]) and seen[1] == (START, [CONTENT_TYPE])
    assert seen[2] == encode(entry, sink.identity, "127.0.0.1") and seen[3] == 3  # STOP


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        ({"dnstap": "tcp:127.0.0.1:6000"}, "dnstap goes to unix:PATH"),
        ({"dnstap": "file:/tmp/x.tap", "workers": 2}, "takes one process"),
        ({"dnstap": "file:/nonexistent/dir/x.tap"}, "cannot write in /nonexistent/dir"),
    ],
)
def test_bad_targets_are_refused_before_serving(flags: dict[str, object], error: str) -> None:
    try:
        load_settings(None, flags)
    except (SettingsError, ValueError) as raised:
        assert error in str(raised)
    else:
        pytest.fail("accepted")


class _Offers:
    """A sink that keeps what it is offered (no thread, no file)."""

    def __init__(self) -> None:
        self.entries: list[tuple[object, ...]] = []

    def offer(self, entry: tuple[object, ...]) -> None:
        self.entries.append(entry)


def test_resolver_messages_carry_the_bytes_that_were_on_the_wire() -> None:
    """RESOLVER_QUERY and RESOLVER_RESPONSE hold the query as the transport sent it (its
    ID, the name's case drawn for 0x20, our COOKIE) and the reply as it came, not the
    same messages written again: the network contract's Reply carries both."""
    sent = write_query("wWw.ExAmPlE.cOm.", RRType.A, 0x1234, edns_payload=1232)
    received = bytes([0x12, 0x34, 0x81, 0x80]) + sent[4:]

    class Network:
        async def exchange(self, query: Query) -> Reply:
            message = parse_message(received)
            return Reply(message, 0.001, False, sent, received)

    offers = _Offers()
    tapped = TappedNetwork(Network(), offers, 53)  # type: ignore[arg-type]
    asyncio.run(tapped.exchange(Query("127.0.0.9", "www.example.com.", RRType.A, 1.0)))
    (query_kind, *query), (response_kind, *response) = offers.entries
    assert (query_kind, response_kind) == (RESOLVER_QUERY, RESOLVER_RESPONSE)
    assert query[5] == sent and response[5] == sent and response[7] == received
