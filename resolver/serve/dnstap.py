"""dnstap query logs (``--dnstap unix:PATH`` or ``--dnstap file:PATH``), as Unbound, Knot,
BIND, PowerDNS and dnsdist write them.

Each client query and its response (CLIENT_QUERY, CLIENT_RESPONSE) and each exchange
with an upstream server (RESOLVER_QUERY, RESOLVER_RESPONSE) becomes a ``Dnstap``
protobuf message (the schema is dnstap.proto of the dnstap project), carried in
Frame Streams (the fstrm protocol): data frames of one content type,
``protobuf:dnstap.Dnstap``, between a START and a STOP control frame.  To a file
the stream is written as it is; to a Unix socket the writer first sends READY and
waits for the reader's ACCEPT (the bidirectional handshake), and at the end sends
STOP and waits for FINISH.  ``dnstap-read`` (BIND) and ``fstrm_capture`` read both.

The protobuf encoding is written here (:func:`encode`): the messages have a dozen
scalar and bytes fields, one nesting and no repeated field, which is forty lines of
varints, against a dependency (protobuf with generated code, whose runtime version
must match the generator's) in the serving path.  The tests read what we write with
``dnstap-read``, an independent decoder.

**Never blocks the query path.**  A message is a tuple put on a bounded deque
(:meth:`DnstapSink.offer`: no I/O, no encoding); a writer thread encodes and writes
them in batches with blocking I/O of its own.  While no reader is connected (the
socket's reader absent or gone) messages are dropped and counted; when the queue is
full, likewise.  The counts are ``resolver_dnstap_messages_total{result=...}``
(written, dropped_full, dropped_no_reader).  The thread reconnects every second.

Where the messages come from: :class:`TappedNetwork` wraps the engine's network (the
:class:`resolver.net.contract.Network` seam) and :class:`DnstapJournal` is one of the
service's journals (:mod:`resolver.serve.journal`, told of every packet in and every
answer out), so neither the engine nor the listener knows of dnstap.  The network
contract's Reply carries the query as it was sent and the reply as it came: those
bytes are the RESOLVER_QUERY and RESOLVER_RESPONSE messages (an exchange that failed
has no bytes from the network: its query is written as the transport writes it, ID 0).
Both are written when the exchange ends, the query with the time it was sent.  The
client's port is not known to the service (the transports pass its address only), so
CLIENT messages carry none.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from resolver.iterate.request import Transport
from resolver.net.contract import ExchangeFailed, Network, Query, Reply
from resolver.serve.journal import Answered
from resolver.serve.stats import ServiceStats
from resolver.wire import EDNS_PAYLOAD, write_message, write_query

log = structlog.get_logger("resolver.serve.dnstap")

CONTENT_TYPE = b"protobuf:dnstap.Dnstap"
MAX_QUEUE = 10_000  # messages waiting for the writer; past that they are dropped
BATCH = 256  # messages written at once
RECONNECT = 1.0  # seconds between attempts to reach the reader
HANDSHAKE_TIMEOUT = 2.0
IDLE = 0.05  # seconds the writer sleeps when there is nothing to write
VERSION = b"resolver 0.1.0"

# dnstap.proto's enums (Message.Type, SocketFamily, SocketProtocol)
RESOLVER_QUERY, RESOLVER_RESPONSE, CLIENT_QUERY, CLIENT_RESPONSE = 3, 4, 5, 6
INET, INET6 = 1, 2
UDP, TCP = 1, 2
DNSTAP_MESSAGE = 1  # Dnstap.Type MESSAGE

# Frame Streams control frame types and field
ACCEPT, START, STOP, READY, FINISH = 1, 2, 3, 4, 5
FIELD_CONTENT_TYPE = 1
MAX_CONTROL = 512  # bytes of a control frame we accept from a reader
U32 = struct.Struct("!I")

# (type, protocol, client or server address, its port, our port, query time ns,
#  query wire, response time ns, response wire); None where absent.
Entry = tuple[int, int, str, int | None, int | None, int, bytes | None, int | None, bytes | None]


def parse_target(value: str) -> tuple[str, str]:
    """``unix:PATH`` or ``file:PATH`` as (kind, path); ValueError with the reason."""
    kind, _, path = value.partition(":")
    if kind not in ("unix", "file") or not path:
        raise ValueError(f"{value!r}: dnstap goes to unix:PATH (a reader's socket) or file:PATH")
    if kind == "unix" and len(path.encode()) > 107:
        raise ValueError("a Unix socket path is at most 107 bytes")
    return kind, path


def target_problem(value: str | None, workers: int) -> str | None:
    """Why dnstap cannot go where the settings say (checked before serving), or None."""
    if value is None or value == "none":
        return None
    kind, path = parse_target(value)
    if kind == "file" and workers > 1:
        return "dnstap file:PATH takes one process (workers = 1): use unix:PATH with a reader"
    folder = os.path.dirname(os.path.abspath(path))
    if kind == "file" and not os.access(folder, os.W_OK | os.X_OK):
        return f"dnstap {value}: cannot write in {folder}"
    return None


# -------------------------------------------------------------------- protobuf


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)  # wire type 0: varint


def _bytes(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value  # wire type 2


def _fixed32(number: int, value: int) -> bytes:
    return _varint(number << 3 | 5) + struct.pack("<I", value)  # wire type 5


def _address(text: str) -> tuple[int, bytes]:
    host = text.split("%", 1)[0]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return (INET6 if family == socket.AF_INET6 else INET), socket.inet_pton(family, host)


def encode(entry: Entry, identity: bytes, ours: str | None) -> bytes:
    """One ``Dnstap`` message (dnstap.proto): identity 1, version 2, message 14, type 15."""
    kind, protocol, peer, peer_port, our_port, query_ns, query, response_ns, response = entry
    family, peer_bytes = _address(peer)
    client = kind in (CLIENT_QUERY, CLIENT_RESPONSE)
    body = _int(1, kind) + _int(2, family) + _int(3, protocol)
    if ours is not None and client:
        body += _bytes(5, _address(ours)[1])  # response_address: where the client asked
    body += _bytes(4 if client else 5, peer_bytes)  # query_address is the client's
    if peer_port is not None:
        body += _int(6 if client else 7, peer_port)
    if our_port is not None and client:
        body += _int(7, our_port)
    body += _int(8, query_ns // 1_000_000_000) + _fixed32(9, query_ns % 1_000_000_000)
    if query is not None:
        body += _bytes(10, query)
    if response_ns is not None:
        body += _int(12, response_ns // 1_000_000_000) + _fixed32(13, response_ns % 1_000_000_000)
    if response is not None:
        body += _bytes(14, response)
    return _bytes(1, identity) + _bytes(2, VERSION) + _bytes(14, body) + _int(15, DNSTAP_MESSAGE)


# -------------------------------------------------------------------- Frame Streams


def control_frame(kind: int, content_type: bool = True) -> bytes:
    """An escape (a zero length), the control frame's length, its type, the content type."""
    fields = U32.pack(kind)
    if content_type:
        fields += U32.pack(FIELD_CONTENT_TYPE) + U32.pack(len(CONTENT_TYPE)) + CONTENT_TYPE
    return U32.pack(0) + U32.pack(len(fields)) + fields


def data_frame(payload: bytes) -> bytes:
    return U32.pack(len(payload)) + payload


def read_control(recv: Callable[[int], bytes]) -> tuple[int, list[bytes]]:
    """A control frame from a peer: (type, content types); ValueError if it is not one."""
    escape, length = U32.unpack(recv(4))[0], U32.unpack(recv(4))[0]
    if escape != 0 or not 4 <= length <= MAX_CONTROL:
        raise ValueError("not a Frame Streams control frame")
    frame = recv(length)
    kind, offset, types = U32.unpack_from(frame)[0], 4, []
    while offset + 8 <= len(frame):
        field_type, size = struct.unpack_from("!II", frame, offset)
        value = frame[offset + 8 : offset + 8 + size]
        if field_type == FIELD_CONTENT_TYPE:
            types.append(value)
        offset += 8 + size
    return kind, types


def _exactly(sock: socket.socket) -> Callable[[int], bytes]:
    def recv(size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("the reader closed the connection")
            data += chunk
        return data

    return recv


# -------------------------------------------------------------------- the writer


class DnstapSink:
    """A bounded queue of messages and the thread that writes them to the reader."""

    def __init__(self, target: str, stats: ServiceStats, address: str | None = None,
                 identity: bytes | None = None, max_queue: int = MAX_QUEUE) -> None:  # fmt: skip
        self.kind, self.path = parse_target(target)
        self.stats = stats
        self.address = address  # where clients ask us (None: several, not said)
        self.identity = identity if identity is not None else socket.gethostname().encode()
        self.max_queue = max_queue
        self.queue: deque[Entry] = deque()
        self.connected = False
        self.stopping = False
        self._out: Any = None  # the open file or socket
        self._failing = False  # the last attempt to reach the reader failed
        self._thread = threading.Thread(target=self._run, name="dnstap", daemon=True)
        self._thread.start()

    def _count(self, result: str, count: int = 1) -> None:
        counts = self.stats.dnstap
        counts[result] = counts.get(result, 0) + count

    def offer(self, entry: Entry) -> None:
        """Queue one message, or drop and count it: never waits."""
        if not self.connected:
            self._count("dropped_no_reader")
        elif len(self.queue) >= self.max_queue:
            self._count("dropped_full")
        else:
            self.queue.append(entry)

    # ---------------------------------------------------------------- the thread

    def _run(self) -> None:
        while not self.stopping:
            if not self.connected:
                try:
                    self._connect()
                except (OSError, ValueError) as error:
                    # Said once an outage (a warning), then every second at debug.
                    level = log.debug if self._failing else log.warning
                    level("dnstap_no_reader", target=f"{self.kind}:{self.path}", error=str(error))
                    self._failing = True
                    self._sleep(RECONNECT)
                    continue
                self._failing = False
            if not self.queue:
                time.sleep(IDLE)
                continue
            self._write_batch()
        self._finish()

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(IDLE)

    def _connect(self) -> None:
        if self.kind == "file":
            out: Any = open(self.path, "wb")  # noqa: SIM115 (kept open until close)
            out.write(control_frame(START))
            out.flush()
        else:
            out = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                out.settimeout(HANDSHAKE_TIMEOUT)
                out.connect(self.path)
                out.sendall(control_frame(READY))
                kind, types = read_control(_exactly(out))
                if kind != ACCEPT or CONTENT_TYPE not in types:
                    raise ValueError(f"the reader did not accept {CONTENT_TYPE.decode()}")
                out.sendall(control_frame(START))
            except BaseException:
                out.close()
                raise
        self._out = out
        self.connected = True
        log.info("dnstap_connected", target=f"{self.kind}:{self.path}", pid=os.getpid())

    def _write_batch(self) -> None:
        entries: list[Entry] = []
        while self.queue and len(entries) < BATCH:
            entries.append(self.queue.popleft())
        frames = b"".join(data_frame(encode(e, self.identity, self.address)) for e in entries)
        try:
            if self.kind == "file":
                self._out.write(frames)
                self._out.flush()
            else:
                self._out.sendall(frames)
        except OSError as error:
            self._count("dropped_no_reader", len(entries) + len(self.queue))
            self.queue.clear()
            self._disconnect()
            log.warning("dnstap_reader_lost", target=f"{self.kind}:{self.path}", error=str(error))
            return
        self._count("written", len(entries))

    def _disconnect(self) -> None:
        self.connected = False
        out, self._out = self._out, None
        if out is not None:
            with contextlib.suppress(OSError):
                out.close()

    def _finish(self) -> None:
        """What is queued, then STOP (and, on a socket, the reader's FINISH)."""
        if not self.connected:
            return
        while self.queue and self.connected:
            self._write_batch()
        if self._out is None:  # the reader went away while the last batch was written
            return
        with contextlib.suppress(OSError, ValueError):
            if self.kind == "file":
                self._out.write(control_frame(STOP, content_type=False))
                self._out.flush()
            else:
                self._out.sendall(control_frame(STOP, content_type=False))
                read_control(_exactly(self._out))  # FINISH, or the reader just closes
        self._disconnect()

    def close(self, timeout: float = 3.0) -> None:
        """Write what is queued and STOP; waits for the thread at most ``timeout`` s."""
        self.stopping = True
        self._thread.join(timeout)


# -------------------------------------------------------------------- the hooks


class TappedNetwork:
    """The engine's network, reporting each exchange (RESOLVER_QUERY and _RESPONSE)."""

    def __init__(self, inner: Network, sink: DnstapSink, default_port: int) -> None:
        self.inner = inner
        self.sink = sink
        self.default_port = default_port

    async def exchange(self, query: Query) -> Reply:
        sent = time.time_ns()
        address, server_port = query.address, query.port or self.default_port
        try:
            reply = await self.inner.exchange(query)
        except ExchangeFailed:
            # No reply, so no bytes from the network: the query as the transport writes it.
            wire = write_query(query.qname, query.qtype, 0, rd=query.recursion_desired,
                               dnssec_ok=query.dnssec_ok)  # fmt: skip
            self.sink.offer((RESOLVER_QUERY, UDP, address, server_port, None, sent, wire,
                             None, None))  # fmt: skip
            raise
        protocol = TCP if reply.tcp else UDP
        answered = time.time_ns()
        # The query and the reply as they were on the wire (the last attempt's, after an
        # EDNS fallback or over TCP after TC=1); rebuilt only from a network without them.
        wire = reply.query_wire or write_query(
            query.qname, query.qtype, reply.message.header.id, rd=query.recursion_desired,
            edns_payload=EDNS_PAYLOAD, dnssec_ok=query.dnssec_ok,
        )  # fmt: skip
        received = reply.wire or write_message(reply.message)
        self.sink.offer((RESOLVER_QUERY, protocol, address, server_port, None, sent, wire,
                         None, None))  # fmt: skip
        self.sink.offer((RESOLVER_RESPONSE, protocol, address, server_port, None, sent, wire,
                         answered, received))  # fmt: skip
        return reply


class DnstapJournal:
    """The service's journal of client messages: CLIENT_QUERY for each packet that
    arrives, CLIENT_RESPONSE for each answer (the fast path's, refusals and FORMERR
    included: :mod:`resolver.serve.journal`)."""

    def __init__(self, sink: DnstapSink, port: int) -> None:
        self.sink = sink
        self.port = port  # ours, where clients ask

    def asked(self, packet: bytes, client: str, transport: Transport) -> None:
        self.sink.offer((CLIENT_QUERY, _protocol(transport), client, None, self.port,
                         time.time_ns(), packet, None, None))  # fmt: skip

    def answered(self, done: Answered) -> None:
        if done.response is None:
            return
        now = time.time_ns()
        asked = now - int((done.finished - done.started) * 1e9)
        self.sink.offer((CLIENT_RESPONSE, _protocol(done.transport), done.client, None,
                         self.port, asked, done.packet, now, done.response))  # fmt: skip


def _protocol(transport: Transport) -> int:
    return UDP if transport is Transport.UDP else TCP
