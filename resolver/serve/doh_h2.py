"""DNS over HTTPS over HTTP/2 (RFC 8484 section 5.2, RFC 9113), with the ``h2`` library.

What bounds one connection, against slow and hostile clients:

- at most :data:`MAX_STREAMS` streams open at once (SETTINGS_MAX_CONCURRENT_STREAMS, as
  Unbound's ``http-max-streams``); a client opening more breaks the protocol and the
  connection is closed with GOAWAY (h2 enforces it, RFC 9113 section 5.1.2);
- request bodies are held to the flow-control windows: their bytes are acknowledged
  (WINDOW_UPDATE) only once the request is complete, so the bodies of unfinished
  requests of one connection never exceed its 65535-octet window, however many streams
  trickle; a body over 65535 octets gets 413 at once, and the rest of it is dropped;
- the idle timeout counts, as over TCP, from the last answer sent while no answer is
  being prepared: streams opened and never finished do not keep a connection open;
- at most ``MAX_PIPELINED`` answers in preparation; beyond that reading stops, and a
  stream reset by the client still counts until its answer is ready (so resetting
  streams cannot start more work than that, CVE-2023-44487 "rapid reset"); a client
  that resets more than :data:`MAX_ABANDONED` streams whose answers we were preparing
  is told GOAWAY (ENHANCE_YOUR_CALM) and closed, as nghttp2 and nginx do since;
- an answer the client's window does not let us send waits for WINDOW_UPDATE, and the
  connection is closed one idle timeout after the last byte it took; writes that the
  client does not read are cut off likewise.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import structlog

from resolver.serve import tcp
from resolver.serve.doh import MAX_MESSAGE, TOO_BIG, DohListener, HttpResponse, _error, header
from resolver.serve.listener import Pending
from resolver.serve.tls import READ_SIZE

log = structlog.get_logger("resolver.serve.doh")

MAX_STREAMS = 100
MAX_ABANDONED = MAX_STREAMS  # streams reset while their answers were being prepared
LINGER = 1.0  # seconds the rest of a dropped client's bytes are read after its GOAWAY
MAX_HEADER_LIST = 16384  # octets of decoded headers per request (the GET's URL included)


@dataclass
class _Request:
    """A stream whose request is still arriving."""

    method: str
    target: str
    content_type: bytes | None
    body: bytearray = field(default_factory=bytearray)
    unacknowledged: int = 0  # flow-controlled octets not yet given back to the client
    rejected: bool = False  # answered already (413): the rest of its body is dropped


class Http2Connection:
    """One HTTP/2 client: reads frames, answers each request on its stream when ready."""

    def __init__(self, listener: DohListener, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, client: str, first: bytes) -> None:  # fmt: skip
        self.listener = listener
        self.reader = reader
        self.writer = writer
        self.client = client
        self.first = first
        # What we send is ours and well-formed: h2 need not check it (a third of its cost).
        config = h2.config.H2Configuration(client_side=False, header_encoding=None,
                                           validate_outbound_headers=False,
                                           normalize_outbound_headers=False)  # fmt: skip
        self.h2 = h2.connection.H2Connection(config)
        self.loop = asyncio.get_running_loop()
        self.requests: dict[int, _Request] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.unsent: dict[int, memoryview] = {}  # answers waiting for the client's window
        self.preparing: set[int] = set()  # streams whose answers are being prepared
        self.abandoned = 0  # of those, the ones the client reset
        self.idle_since = self.loop.time()
        self.read_timeout: asyncio.Timeout | None = None
        self.closing = False  # reading no more (GOAWAY from either side, or a write failed)
        self.dropped = False  # no answers either: we told the client to go (GOAWAY)

    async def serve(self) -> None:
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
            },
        )
        self.h2.initiate_connection()
        await self._flush()
        data = self.first
        while not self.closing:
            if not data:
                data = await self._read()
                if not data:
                    break
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError as error:
                log.info("https_closed", client=self.client, reason=f"HTTP/2: {error}")
                self.dropped = True  # h2 has queued its GOAWAY, sent below
                break
            data = b""
            for event in events:
                self._handle(event)
            await self._flush()
            if len(self.tasks) >= tcp.MAX_PIPELINED:
                # Backpressure: a client asking faster than we answer waits for us.
                await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
        if self.dropped:
            for task in self.tasks:
                task.cancel()  # ours only: a resolution shared with others goes on
        elif self.tasks:
            await asyncio.wait(self.tasks, timeout=tcp.TCP_IDLE_TIMEOUT)
        if not self.dropped:  # (when dropped, a GOAWAY saying why is on its way already)
            with contextlib.suppress(h2.exceptions.H2Error):  # the client's GOAWAY came
                self.h2.close_connection()
        await self._flush()
        if self.dropped:
            await self._linger()

    async def _linger(self) -> None:
        """Read and drop what the client still sends, a moment: closing a socket with
        unread data resets it, and the reset would overtake the GOAWAY that says why."""
        with contextlib.suppress(TimeoutError, ConnectionError, OSError):
            async with asyncio.timeout(LINGER):
                while await self.reader.read(READ_SIZE):
                    pass

    async def _read(self) -> bytes:
        """The next bytes from the client; b"" once it is gone or idle too long (no answer
        in preparation, and none of ours taken for the idle timeout)."""
        deadline = None if self.tasks else self.idle_since + tcp.TCP_IDLE_TIMEOUT
        try:
            async with asyncio.timeout_at(deadline) as self.read_timeout:
                return await self.reader.read(READ_SIZE)
        except (TimeoutError, ConnectionError):
            return b""
        finally:
            self.read_timeout = None

    def _rearm(self) -> None:
        """The last answer in preparation is done: a read waiting without a deadline gets
        the idle one (as the TCP connection's does)."""
        preparing = sum(not task.done() for task in self.tasks)  # this one's own, at least
        if self.read_timeout is not None and preparing <= 1:
            self.read_timeout.reschedule(self.idle_since + tcp.TCP_IDLE_TIMEOUT)

    # ---------------------------------------------------------------- events

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._request(event)
        elif isinstance(event, h2.events.DataReceived):
            self._data(event)
        elif isinstance(event, h2.events.StreamEnded):
            self._ended(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self._forget(event.stream_id)
        elif isinstance(event, h2.events.WindowUpdated):
            for stream_id in list(self.unsent):
                self._send_body(stream_id)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.closing = True  # GOAWAY: answer what was asked, take nothing more

    def _request(self, event: h2.events.RequestReceived) -> None:
        headers = event.headers or []
        method = (header(headers, b":method") or b"").decode("latin-1")
        target = (header(headers, b":path") or b"").decode("latin-1")
        request = _Request(method, target, header(headers, b"content-type"))
        assert event.stream_id is not None
        self.requests[event.stream_id] = request
        length = header(headers, b"content-length")
        if length is not None and length.isdigit() and int(length) > MAX_MESSAGE:
            self._reject(event.stream_id, request)

    def _data(self, event: h2.events.DataReceived) -> None:
        stream_id = event.stream_id
        assert stream_id is not None
        size = event.flow_controlled_length or 0
        request = self.requests.get(stream_id)
        if request is None or request.rejected:
            self._acknowledge(stream_id, size)
            return
        request.body += event.data or b""
        request.unacknowledged += size
        if len(request.body) > MAX_MESSAGE:
            self._reject(stream_id, request)

    def _reject(self, stream_id: int, request: _Request) -> None:
        """413 at once (RFC 9113 section 8.1: a complete response may come before the
        request is); its body's octets given back, the rest of it dropped as it comes.
        The stream is not reset: curl 7.88 reports a reset stream as a failure, not the
        413 that came before it."""
        request.rejected = True
        self._acknowledge(stream_id, request.unacknowledged)
        request.unacknowledged = 0
        request.body = bytearray()
        self._respond(stream_id, self.listener.counted(_error(413, TOO_BIG)))

    def _ended(self, stream_id: int) -> None:
        request = self.requests.pop(stream_id, None)
        if request is None or request.rejected:
            return
        self._acknowledge(stream_id, request.unacknowledged)
        started = self.listener.start(request.method, request.target, request.content_type,
                                      bytes(request.body), self.client)  # fmt: skip
        if isinstance(started, HttpResponse):  # written with the others of this read
            self._respond(stream_id, started)
            return
        task = asyncio.ensure_future(self._answer(stream_id, *started))
        self.preparing.add(stream_id)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _forget(self, stream_id: int) -> None:
        """A stream reset by the client: its partial body's octets are given back; an
        answer in preparation is dropped when ready (it still counts until then), and a
        client abandoning too many is closed."""
        request = self.requests.pop(stream_id, None)
        if request is not None:
            self._acknowledge(stream_id, request.unacknowledged)
        self.unsent.pop(stream_id, None)
        if stream_id in self.preparing:
            self.abandoned += 1
            if self.abandoned > MAX_ABANDONED and not self.closing:
                log.warning("https_closed", client=self.client, reason="streams reset")
                self.h2.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
                self.closing = self.dropped = True

    def _acknowledge(self, stream_id: int, size: int) -> None:
        if size:
            self.h2.acknowledge_received_data(size, stream_id)

    # ---------------------------------------------------------------- answers

    async def _answer(self, stream_id: int, query: bytes, pending: Pending) -> None:
        response = await self.listener.finish(query, pending)
        self.preparing.discard(stream_id)
        if not self.dropped:
            self._respond(stream_id, response)
            await self._flush()
        self._rearm()

    def _respond(self, stream_id: int, response: HttpResponse) -> None:
        headers = [(b":status", str(response.status).encode()), *response.headers,
                   (b"content-length", str(len(response.body)).encode())]  # fmt: skip
        try:
            self.h2.send_headers(stream_id, headers, end_stream=not response.body)
        except h2.exceptions.H2Error:
            return  # the stream was reset, or the connection is closing
        if response.body:
            self.unsent[stream_id] = memoryview(response.body)
            self._send_body(stream_id)
        else:
            self.idle_since = self.loop.time()

    def _send_body(self, stream_id: int) -> None:
        """As much of an answer as the client's windows allow, in frames it accepts."""
        body = self.unsent[stream_id]
        try:
            while body:
                window = self.h2.local_flow_control_window(stream_id)
                size = min(window, len(body), self.h2.max_outbound_frame_size)
                if size <= 0:
                    break
                self.h2.send_data(stream_id, body[:size].tobytes(), end_stream=size == len(body))
                body = body[size:]
                self.idle_since = self.loop.time()  # progress: the client takes our answers
        except h2.exceptions.H2Error:
            body = body[:0]  # the stream is gone
        if body:
            self.unsent[stream_id] = body
        else:
            del self.unsent[stream_id]

    async def _flush(self) -> None:
        """Write what h2 has to send; a client that does not read is dropped (the write
        buffer stays bounded, as over TCP)."""
        data = self.h2.data_to_send()
        if not data or self.writer.is_closing():
            return
        self.writer.write(data)
        if not self.writer.transport.get_write_buffer_size():
            return  # all of it went to the socket at once: nothing to wait for
        try:
            async with asyncio.timeout(tcp.TCP_IDLE_TIMEOUT):
                await self.writer.drain()
        except TimeoutError:
            log.warning("https_closed", client=self.client, reason="answers not read")
            self.writer.transport.abort()
            self.closing = True
        except ConnectionError:
            self.closing = True
