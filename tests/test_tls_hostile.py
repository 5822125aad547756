"""Hostile clients of DNS over TLS and DNS over HTTPS, in-process, with short timeouts:
each must be bounded like a TCP client (tests/test_hostile.py).  The full-size runs
against the running resolver and Unbound are scripts/reliability/hostile_tls.py; their
numbers are in docs/reliability.md.

- handshakes that never finish, or crawl: closed at the handshake timeout, counted
  against the connection cap meanwhile;
- a DoT client that never reads its answers: dropped, its buffer bounded;
- HTTP/2: too many streams (GOAWAY), streams whose bodies never end (the idle timeout),
  bodies over the flow-control window (FLOW_CONTROL_ERROR), streams reset as soon as
  opened (the work they start stays bounded), a client that never reads;
- HTTP/1.1: headers a byte at a time, headers without end, a pipeline of requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

import dns.message
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest
from hyperframe.frame import DataFrame, HeadersFrame, RstStreamFrame
from tls_fixtures import (
    SERVER_NAME,
    ScriptedEngine,
    client_context,
    make_certificates,
    scripted_service,
)

import resolver.serve.tcp as tcp_module
import resolver.serve.tls as tls_module
from resolver.iterate.request import Transport
from resolver.serve.doh import DohListener
from resolver.serve.doh_h2 import MAX_ABANDONED
from resolver.serve.dot import DotListener
from resolver.serve.tls import ServerCertificate
from scripts.reliability.common import frame, query
from scripts.reliability.tls_lab import CertificateFiles

IDLE = 0.4  # the idle and handshake timeouts these tests run with (seconds)
WAIT = 10.0


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(autouse=True)
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(tcp_module, "TCP_IDLE_TIMEOUT", IDLE)
    monkeypatch.setattr(tls_module, "HANDSHAKE_TIMEOUT", IDLE)
    yield


class Served:
    """A DoT or DoH listener on 127.0.0.1 in the running loop."""

    def __init__(self, certificates: CertificateFiles, kind: str, **options: Any) -> None:
        self.service = scripted_service()
        self.certificate = ServerCertificate(str(certificates.certificate), str(certificates.key))
        self.listener: DotListener | DohListener = (
            DotListener(self.service, self.certificate, **options)
            if kind == "dot"
            else DohListener(self.service, self.certificate, **options)
        )
        self.context = client_context(certificates.ca, ["dot"] if kind == "dot" else ["h2"])
        self.server: asyncio.Server | None = None
        self.port = 0

    @property
    def engine(self) -> ScriptedEngine:
        engine = self.service.engine
        assert isinstance(engine, ScriptedEngine)
        return engine

    async def __aenter__(self) -> Served:
        self.server = await asyncio.start_server(self.listener, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def tls(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=self.context, server_hostname=SERVER_NAME
        )

    async def drained(self) -> int:
        """Connections still open once the listener had a moment to let them go."""
        deadline = time.monotonic() + WAIT
        while self.listener.open and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return self.listener.open


async def until_closed(reader: asyncio.StreamReader) -> tuple[float, bytes]:
    started = time.monotonic()
    data = b""
    async with asyncio.timeout(WAIT):
        try:
            while chunk := await reader.read(65536):
                data += chunk
        except (ConnectionError, ssl.SSLError):
            pass
    return time.monotonic() - started, data


async def dot_reply(reader: asyncio.StreamReader) -> bytes:
    length = int.from_bytes(await reader.readexactly(2), "big")
    return await reader.readexactly(length)


# -- handshakes ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dot", "doh"])
def test_handshakes_that_never_finish_are_bounded(
    certificates: CertificateFiles, kind: str
) -> None:
    """60 connections that send nothing, or half a ClientHello, to a listener capped at 20:
    each one over the cap takes the place of the one longest in its handshake, so 40 are
    closed at once and 20 at the handshake timeout; meanwhile a real client gets in at
    once (taking one more place).  None of them ever reached the service."""

    async def scenario() -> tuple[list[float], float, int, dict[Any, int]]:
        async with Served(certificates, kind, max_connections=20) as served:
            streams = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(60)]
            for i, (_reader, writer) in enumerate(streams):
                if i % 2:
                    writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # cut short
            closing = asyncio.gather(*(until_closed(r) for r, _w in streams))
            await asyncio.sleep(IDLE / 4)
            started = time.monotonic()
            reader, writer = await served.tls()  # while the cap is full of silent ones
            if kind == "dot":
                writer.write(frame(query("real.example.", qid=9)))
                assert (await asyncio.wait_for(dot_reply(reader), WAIT))[:2] == b"\x00\x09"
            served_in = time.monotonic() - started
            writer.close()
            closings = await closing
            for _reader, writer in streams:
                writer.close()
            handshakes = served.service.stats.handshakes
            return [s for s, _ in closings], served_in, await served.drained(), handshakes

    seconds, served_in, still_open, handshakes = asyncio.run(scenario())
    assert served_in < IDLE / 2
    assert sum(s < IDLE / 2 for s in seconds) == 41  # 40, and the one the real client took
    assert all(IDLE * 0.8 < s < IDLE * 4 for s in sorted(seconds)[41:]), sorted(seconds)[41:]
    assert still_open == 0
    transport = Transport.TLS if kind == "dot" else Transport.HTTPS
    assert handshakes[(transport, "evicted")] == 41
    assert handshakes[(transport, "timeout")] == 19


def test_handshake_dripped_a_byte_at_a_time_is_cut(certificates: CertificateFiles) -> None:
    async def scenario() -> float:
        async with Served(certificates, "dot") as served:
            reader, writer = await asyncio.open_connection("127.0.0.1", served.port)

            async def drip() -> None:
                for byte in b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(500):
                    writer.write(bytes([byte]))
                    await asyncio.sleep(IDLE / 8)

            dripping = asyncio.ensure_future(drip())
            seconds, _ = await until_closed(reader)
            dripping.cancel()
            writer.close()
            return seconds

    assert IDLE * 0.8 < asyncio.run(scenario()) < IDLE * 4


# -- DNS over TLS ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dot", "doh"])
def test_garbage_after_the_handshake_closes_quietly(
    certificates: CertificateFiles, kind: str
) -> None:
    """Records that do not decrypt, after a good handshake: the connection is closed, no
    error escapes the listener, and the next client is served."""
    import structlog

    escaped: list[dict[str, Any]] = []  # what reached the event loop's exception handler

    async def scenario() -> tuple[bytes, int]:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, c: escaped.append(c))
        async with Served(certificates, kind) as served:
            reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = served.context.wrap_bio(incoming, outgoing, server_hostname=SERVER_NAME)
            while True:  # the handshake, by hand, so that raw bytes can follow it
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    writer.write(outgoing.read())
                    incoming.write(await asyncio.wait_for(reader.read(65536), WAIT))
            writer.write(outgoing.read())
            writer.write(b"\x17\x03\x03\x00\x40" + bytes(range(64)))  # application data, forged
            _seconds, data = await until_closed(reader)
            writer.close()
            return data, await served.drained()

    with structlog.testing.capture_logs() as logs:
        _data, still_open = asyncio.run(scenario())
    assert still_open == 0 and escaped == []
    assert not [e for e in logs if e["log_level"] in ("error", "critical")], logs




def test_dot_client_that_never_reads_is_closed(certificates: CertificateFiles) -> None:
    """2000 queries for 4 KB answers, nothing read: dropped, as over TCP."""

    async def scenario() -> int:
        async with Served(certificates, "dot") as served:
            _reader, writer = await served.tls()
            transport = writer.transport
            transport.get_extra_info("socket")
            writer.write(
                b"".join(frame(query(f"big{i}.example.", "TXT", qid=i)) for i in range(2000))
            )
            await asyncio.sleep(IDLE * 10)
            still = served.listener.open
            transport.abort()
            return still

    assert asyncio.run(scenario()) == 0


def test_dot_pipeline_of_a_thousand(certificates: CertificateFiles) -> None:
    async def scenario() -> set[int]:
        async with Served(certificates, "dot") as served:
            reader, writer = await served.tls()
            writer.write(b"".join(frame(query(f"p{i % 500}.example.", qid=i)) for i in range(1000)))
            replies = [await asyncio.wait_for(dot_reply(reader), WAIT) for _ in range(1000)]
            writer.close()
            return {int.from_bytes(r[:2], "big") for r in replies}

    assert asyncio.run(scenario()) == set(range(1000))


# -- DNS over HTTPS, HTTP/2 --------------------------------------------------------------


class H2Client:
    """An HTTP/2 client that does what it is told, whatever the server's settings say."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.writer.write(self.conn.data_to_send())
        self.received = b""

    def goaways(self) -> list[int]:
        """The error codes of the GOAWAY frames received, read from the frames by hand (h2
        stops reading once it sees answers on streams opened behind its back)."""
        codes, data = [], self.received
        while len(data) >= 9 and len(data) >= 9 + int.from_bytes(data[:3], "big"):
            length = int.from_bytes(data[:3], "big")
            if data[3] == 0x7:
                codes.append(int.from_bytes(data[13:17], "big"))
            data = data[9 + length :]
        return codes

    def headers(self, stream_id: int, length: int | None = None, end: bool = False) -> None:
        headers = [
            (":method", "POST"),
            (":path", "/dns-query"),
            (":scheme", "https"),
            (":authority", SERVER_NAME),
            ("content-type", "application/dns-message"),
        ]
        if length is not None:
            headers.append(("content-length", str(length)))
        frame_ = HeadersFrame(stream_id)
        frame_.data = self.conn.encoder.encode(headers)
        frame_.flags.add("END_HEADERS")
        if end:
            frame_.flags.add("END_STREAM")
        self.writer.write(frame_.serialize())

    def data(self, stream_id: int, data: bytes, end: bool = False) -> None:
        frame_ = DataFrame(stream_id, data=data)
        if end:
            frame_.flags.add("END_STREAM")
        self.writer.write(frame_.serialize())

    def reset(self, stream_id: int) -> None:
        self.writer.write(RstStreamFrame(stream_id, error_code=8).serialize())  # CANCEL

    async def events(self, seconds: float) -> tuple[list[h2.events.Event], bool]:
        """What the server sent within ``seconds``, and whether it closed the connection."""
        events: list[h2.events.Event] = []
        try:
            async with asyncio.timeout(seconds):
                while True:
                    data = await self.reader.read(65536)
                    if not data:
                        return events, True
                    self.received += data
                    with contextlib.suppress(h2.exceptions.ProtocolError):
                        events += self.conn.receive_data(data)
        except TimeoutError:
            return events, False
        except (ConnectionError, ssl.SSLError):
            return events, True


def post_body(name: str) -> bytes:
    message = dns.message.make_query(name, "A")
    message.id = 0
    return message.to_wire()


def test_too_many_streams_is_goaway(certificates: CertificateFiles) -> None:
    async def scenario() -> tuple[list[h2.events.Event], bool, int, list[int]]:
        async with Served(certificates, "doh") as served:
            client = H2Client(*await served.tls())
            for i in range(101):
                client.headers(1 + 2 * i, length=40)  # 101 streams open: one too many
            _events, closed = await client.events(WAIT)
            client.writer.close()
            reader, writer = await served.tls()  # a well-behaved client still gets in
            again = H2Client(reader, writer)
            body = post_body("fine.example.")
            again.conn.send_headers(
                1,
                [
                    (":method", "POST"),
                    (":path", "/dns-query"),
                    (":scheme", "https"),
                    (":authority", SERVER_NAME),
                    ("content-type", "application/dns-message"),
                ],
            )
            again.conn.send_data(1, body, end_stream=True)
            writer.write(again.conn.data_to_send())
            answered, _ = await again.events(1.0)
            writer.close()
            return answered, closed, served.engine.calls, client.goaways()

    answered, closed, calls, goaways = asyncio.run(scenario())
    assert closed and goaways == [h2.errors.ErrorCodes.PROTOCOL_ERROR]
    assert any(isinstance(e, h2.events.DataReceived) for e in answered) and calls == 1


def test_streams_that_never_end_do_not_hold_the_connection(
    certificates: CertificateFiles,
) -> None:
    """50 streams announce a body and send part of it, then nothing: nothing is resolved,
    and the connection is closed at the idle timeout, not kept by the open streams."""

    async def scenario() -> tuple[float, bool, int]:
        async with Served(certificates, "doh") as served:
            client = H2Client(*await served.tls())
            for i in range(50):
                client.headers(1 + 2 * i, length=100)
                client.data(1 + 2 * i, b"\0" * 10)
            started = time.monotonic()
            _events, closed = await client.events(WAIT)
            client.writer.close()
            return time.monotonic() - started, closed, served.engine.calls

    seconds, closed, calls = asyncio.run(scenario())
    assert closed and IDLE * 0.5 < seconds < IDLE * 4 and calls == 0


def test_bodies_beyond_the_window_are_a_flow_control_error(
    certificates: CertificateFiles,
) -> None:
    """Unfinished bodies are held to the connection's 65535-octet window: a client that
    sends more than it was given breaks the protocol and is closed (FLOW_CONTROL_ERROR)."""

    async def scenario() -> tuple[list[int], bool]:
        async with Served(certificates, "doh") as served:
            client = H2Client(*await served.tls())
            for stream in (1, 3, 5):
                client.headers(stream)
                for _ in range(2):
                    client.data(stream, b"\0" * 16384)  # 96 KiB in all, none of it ended
            _events, closed = await client.events(WAIT)
            return client.goaways(), closed

    goaways, closed = asyncio.run(scenario())
    assert closed and goaways == [h2.errors.ErrorCodes.FLOW_CONTROL_ERROR]


def test_rapid_reset_work_stays_bounded(certificates: CertificateFiles) -> None:
    """CVE-2023-44487: 3000 streams opened and reset at once, each a new name.  The
    resolutions they start never exceed the per-connection bound at a time, and past
    MAX_ABANDONED resets the client is told to calm down (GOAWAY) and closed."""

    async def scenario() -> tuple[int, int, list[h2.events.Event], bool]:
        async with Served(certificates, "doh") as served:
            served.engine.gate = asyncio.Event()
            client = H2Client(*await served.tls())
            for i in range(3000):
                stream = 1 + 2 * i
                body = post_body(f"slow20-reset{i}.example.")
                client.headers(stream, length=len(body))
                client.data(stream, body, end=True)
                client.reset(stream)
            await asyncio.sleep(0.5)
            peak_while_blocked = served.engine.peak
            served.engine.gate.set()
            _events, closed = await client.events(WAIT)
            client.writer.close()
            return peak_while_blocked, served.engine.calls, client.goaways(), closed

    blocked, calls, goaways, closed = asyncio.run(scenario())
    assert 0 < blocked <= tcp_module.MAX_PIPELINED
    assert calls <= MAX_ABANDONED + tcp_module.MAX_PIPELINED + 1
    assert closed and goaways == [h2.errors.ErrorCodes.ENHANCE_YOUR_CALM]


def test_http2_client_that_never_reads_is_closed(certificates: CertificateFiles) -> None:
    """4 connections each asking 100 answers of 4 KB and reading none: the answers wait
    for a flow-control window that never opens, and the connections are closed one idle
    timeout after the last byte the client took."""

    async def scenario() -> int:
        async with Served(certificates, "doh") as served:
            clients = []
            for c in range(4):
                reader, writer = await served.tls()
                writer.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_RCVBUF, 4096
                )
                client = H2Client(reader, writer)
                for i in range(100):
                    body = post_body(f"big{c}-{i}.example.")
                    client.headers(1 + 2 * i, length=len(body))
                    client.data(1 + 2 * i, body, end=True)
                clients.append(client)
            await asyncio.sleep(IDLE * 10)
            still = served.listener.open
            for client in clients:
                client.writer.transport.abort()
            return still

    assert asyncio.run(scenario()) == 0


# -- DNS over HTTPS, HTTP/1.1 -----------------------------------------------------------


def http11_context(certificates: CertificateFiles) -> ssl.SSLContext:
    return client_context(certificates.ca, ["http/1.1"])


def test_http11_slow_headers_are_cut(certificates: CertificateFiles) -> None:
    async def scenario() -> tuple[float, bytes]:
        async with Served(certificates, "doh") as served:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1",
                served.port,
                ssl=http11_context(certificates),
                server_hostname=SERVER_NAME,
            )
            request = (
                b"GET /dns-query?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB HTTP/1.1\r\n"
            )

            async def drip() -> None:
                for byte in request:
                    writer.write(bytes([byte]))
                    await asyncio.sleep(IDLE / 8)

            dripping = asyncio.ensure_future(drip())
            closed = await until_closed(reader)
            dripping.cancel()
            writer.close()
            return closed

    seconds, data = asyncio.run(scenario())
    assert data == b"" and IDLE * 0.8 < seconds < IDLE * 4


def test_http11_endless_headers_are_refused(certificates: CertificateFiles) -> None:
    async def scenario() -> bytes:
        async with Served(certificates, "doh") as served:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1",
                served.port,
                ssl=http11_context(certificates),
                server_hostname=SERVER_NAME,
            )
            writer.write(b"GET /dns-query HTTP/1.1\r\nHost: x\r\n")
            writer.write(b"".join(b"X-Filler-%d: %s\r\n" % (i, b"y" * 100) for i in range(400)))
            _seconds, data = await until_closed(reader)
            writer.close()
            return data

    assert asyncio.run(scenario()).startswith(b"HTTP/1.1 431 ")


def test_http11_pipeline(certificates: CertificateFiles) -> None:
    """50 requests in one write: 50 answers, in order (HTTP/1.1 has no other)."""

    async def scenario() -> list[bytes]:
        async with Served(certificates, "doh") as served:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1",
                served.port,
                ssl=http11_context(certificates),
                server_hostname=SERVER_NAME,
            )
            requests = []
            for i in range(50):
                body = post_body(f"h1-{i}.example.")
                requests.append(
                    b"POST /dns-query HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/dns-message\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            writer.write(b"".join(requests))
            names = []
            for _ in range(50):
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
                assert head.startswith(b"HTTP/1.1 200 ")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                reply = dns.message.from_wire(await reader.readexactly(length))
                names.append(reply.question[0].name.to_text().encode())
            writer.close()
            return names

    assert asyncio.run(scenario()) == [f"h1-{i}.example.".encode() for i in range(50)]
