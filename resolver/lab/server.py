"""The lab's authoritative servers: asyncio UDP + TCP endpoints in one background thread."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset

from . import topology
from .authority import AuthoritativeData, Zone, make_reply
from .topology import ZONES_DIR, ServerRole, write_hints_file

log = logging.getLogger(__name__)

DEFAULT_PORT = 5300
TCP_IDLE_TIMEOUT = 3.0
START_TIMEOUT = 10.0

POISON_A = dns.rrset.from_text("www.example.com.", 300, "IN", "A", "203.0.113.66")
POISON_NS = dns.rrset.from_text("example.com.", 300, "IN", "NS", "ns1.poison.com.")
WRONG_QUESTION = dns.name.from_text("wrong-question.invalid.")


class LabError(RuntimeError):
    """The lab could not start (already running, or an address could not be bound)."""


@dataclass(frozen=True)
class QueryRecord:
    """One query a lab server received (logged before the behaviour decides the reply)."""

    server: str
    """The lab address the query was sent to."""
    qname: str
    """As sent (case kept), absolute with trailing dot."""
    qtype: str
    protocol: str
    """"udp" or "tcp"."""


def _header_reply(wire: bytes, rcode: int) -> bytes | None:
    """A header-only reply to an unparseable query (None: not worth answering)."""
    if len(wire) < 12:
        return None
    qid, flags = struct.unpack("!HH", wire[:4])
    if flags & dns.flags.QR:
        return None  # never answer responses
    flags = dns.flags.QR | (flags & (0xF << 11)) | (flags & dns.flags.RD) | rcode
    return struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0)


class _Server:
    """One server role: its zone data, behaviour and the code that builds reply datagrams."""

    def __init__(self, lab: Lab, role: ServerRole, data: AuthoritativeData) -> None:
        self.lab = lab
        self.role = role
        self.data = data

    def handle(self, wire: bytes, address: str, protocol: str) -> list[bytes]:
        """Wire replies to send for one query (possibly none). Never raises."""
        try:
            return self._handle(wire, address, protocol)
        except Exception as exc:  # a bad packet must never kill a server
            log.exception("lab server %s failed on a query", self.role.name)
            self.lab._record_error(f"{self.role.name}@{address}: {exc!r}")
            reply = _header_reply(wire, dns.rcode.SERVFAIL)
            return [reply] if reply else []

    def _handle(self, wire: bytes, address: str, protocol: str) -> list[bytes]:
        if len(wire) < 12 or struct.unpack("!H", wire[2:4])[0] & dns.flags.QR:
            return []
        opcode = (struct.unpack("!H", wire[2:4])[0] >> 11) & 0xF
        if opcode != dns.opcode.QUERY:
            reply = _header_reply(wire, dns.rcode.NOTIMP)
            return [reply] if reply and self.role.behaviour != "silent" else []
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            reply = _header_reply(wire, dns.rcode.FORMERR)
            return [reply] if reply and self.role.behaviour != "silent" else []
        for q in query.question:
            self.lab._record_query(
                QueryRecord(address, q.name.to_text(), dns.rdatatype.to_text(q.rdtype), protocol)
            )
        behaviour = self.role.behaviour
        if behaviour == "silent":
            return []
        if behaviour == "refused":
            response = dns.message.make_response(query, our_payload=1232)
            response.set_rcode(dns.rcode.REFUSED)
        else:
            response = make_reply(self.data, query)
        if behaviour == "poison" and response.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            response.answer.append(POISON_A)
            response.authority.append(POISON_NS)
            response.additional.append(POISON_A)
        if protocol == "tcp":
            return [response.to_wire(max_size=65535)]
        good = _to_udp_wire(response, query)
        if behaviour != "wrong_first":
            return [good]
        wrong_id = dns.message.from_wire(good)
        wrong_id.id = (query.id + 1) & 0xFFFF
        wrong_question = dns.message.from_wire(good)
        if wrong_question.question:
            q = wrong_question.question[0]
            wrong_question.question = [
                dns.rrset.RRset(WRONG_QUESTION, q.rdclass, q.rdtype),
            ]
        return [wrong_id.to_wire(), wrong_question.to_wire(), good]


def _to_udp_wire(response: dns.message.Message, query: dns.message.Message) -> bytes:
    """Render for UDP: over the requester's limit -> TC=1 with only header + question
    (and OPT when the query had EDNS)."""
    limit = max(512, query.payload) if query.edns >= 0 else 512
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        response.answer = []
        response.authority = []
        response.additional = []
        response.flags |= dns.flags.TC
        return response.to_wire(max_size=limit)


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: _Server, address: str) -> None:
        self.server = server
        self.address = address
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        for reply in self.server.handle(data, self.address, "udp"):
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # e.g. ICMP port unreachable for a client that went away


class Lab:
    """The whole simulated DNS internet on 127.0.0.0/8, all servers on one port.

    >>> with Lab() as lab:                                    # doctest: +SKIP
    ...     lab.write_hints("/tmp/root.hints")
    """

    def __init__(self, port: int = DEFAULT_PORT, tcp_idle_timeout: float = TCP_IDLE_TIMEOUT):
        if not 0 < port < 65536:
            raise ValueError(f"lab port must be 1..65535 (all servers share it), got {port}")
        self.port = port
        self.tcp_idle_timeout = tcp_idle_timeout
        self.zones_dir: Path = ZONES_DIR
        self.servers: tuple[ServerRole, ...] = topology.SERVERS
        self.dead_addresses: frozenset[str] = topology.DEAD_ADDRESSES
        self._lock = threading.Lock()
        self._queries: list[QueryRecord] = []
        self._errors: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closers: list[asyncio.BaseTransport | asyncio.Server] = []
        self._tcp_tasks: set[asyncio.Task[None]] = set()

    # -- observability -------------------------------------------------------------
    @property
    def queries(self) -> list[QueryRecord]:
        """A snapshot of every query received since start / the last reset_queries()."""
        with self._lock:
            return list(self._queries)

    def reset_queries(self) -> None:
        with self._lock:
            self._queries.clear()

    @property
    def errors(self) -> list[str]:
        """Exceptions raised inside lab servers while answering (should stay empty)."""
        with self._lock:
            return list(self._errors)

    def _record_query(self, record: QueryRecord) -> None:
        with self._lock:
            self._queries.append(record)

    def _record_error(self, text: str) -> None:
        with self._lock:
            self._errors.append(text)

    # -- hints -----------------------------------------------------------------------
    def hints_text(self) -> str:
        return topology.hints_text()

    def write_hints(self, path: str | Path) -> Path:
        return write_hints_file(path, self.hints_text())

    # -- life cycle --------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> Lab:
        if self._thread is not None:
            raise LabError("lab already started")
        zones = {origin: Zone.load(self.zones_dir, origin) for origin in topology.all_zones()}
        servers = [
            _Server(self, role, AuthoritativeData(zones[o] for o in role.zones))
            for role in self.servers
        ]
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="dns-lab", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        future = asyncio.run_coroutine_threadsafe(self._bind_all(servers), loop)
        try:
            future.result(START_TIMEOUT)
        except BaseException as exc:
            self.stop()
            if isinstance(exc, OSError):
                raise LabError(f"lab could not start: {exc}") from exc
            raise
        return self

    async def _bind_all(self, servers: Iterable[_Server]) -> None:
        loop = asyncio.get_running_loop()
        for server in servers:
            for address in server.role.addresses:
                try:
                    transport, _ = await loop.create_datagram_endpoint(
                        functools.partial(_UDPProtocol, server, address),
                        local_addr=(address, self.port),
                    )
                    self._closers.append(transport)
                    tcp = await asyncio.start_server(
                        functools.partial(self._serve_tcp, server, address),
                        host=address,
                        port=self.port,
                        reuse_address=True,
                    )
                    self._closers.append(tcp)
                except OSError as exc:
                    raise OSError(
                        exc.errno,
                        f"cannot bind {server.role.name} on {address}:{self.port}: "
                        f"{exc.strerror or exc}",
                    ) from exc

    async def _serve_tcp(
        self,
        server: _Server,
        address: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tcp_tasks.add(task)
        try:
            while True:
                header = await asyncio.wait_for(reader.readexactly(2), self.tcp_idle_timeout)
                (length,) = struct.unpack("!H", header)
                wire = await asyncio.wait_for(reader.readexactly(length), self.tcp_idle_timeout)
                for reply in server.handle(wire, address, "tcp"):
                    writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass  # client closed, or idle: close our side
        except asyncio.CancelledError:
            pass  # lab stopping
        finally:
            self._tcp_tasks.discard(task)
            writer.close()

    async def _close_all(self) -> None:
        for closer in self._closers:
            closer.close()
        for task in list(self._tcp_tasks):
            task.cancel()
        if self._tcp_tasks:
            await asyncio.wait(list(self._tcp_tasks), timeout=2)
        self._closers.clear()
        await asyncio.sleep(0)  # let the transports' close callbacks run

    def stop(self) -> None:
        """Close every socket and join the server thread. Safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close_all(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
