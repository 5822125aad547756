"""The service clients talk to: DNS over UDP and TCP on one port, answering from the engine.

- Bad input never stops or slows the listener (RFC 1035 section 4.1.1 RCODEs):
  shorter than a header -> dropped; a response (QR=1) -> dropped, never answered,
  so two servers cannot be made to bounce packets at each other; unparseable
  with a readable header -> FORMERR; QDCOUNT other than 1 -> FORMERR; an opcode
  other than QUERY -> NOTIMP; a class other than IN -> REFUSED (we only resolve
  the Internet class); AXFR/IXFR -> REFUSED (zone transfers are for
  authoritative servers); EDNS version above 0 -> BADVERS (RFC 6891 section
  6.1.3).  Each case is logged at warning with the client address.
- Responses copy the client's ID, RD and CD, set QR and RA, never AA, echo the
  question as written, and carry EDNS only if the query did.  They are minimal,
  as Unbound's by default: the answer section, the SOA in authority for
  NXDOMAIN/NODATA, nothing else.  A UDP answer larger than the client takes
  (512, or its EDNS size capped at 1232) is sent with TC=1 and no records.
- The same question asked by several clients while it is being resolved is
  resolved once and answered to all (in-flight coalescing).
- TCP follows RFC 7766: 2-byte length prefix, several queries per connection
  answered as they complete (possibly out of order), an idle timeout, and a cap
  on open connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

import structlog

from resolver.cache.answers import AnswerCache, question_key
from resolver.iterate.answer import Answer, FailureKind, servfail
from resolver.iterate.engine import IterativeEngine
from resolver.wire import (
    CLASS_IN,
    EDNS_PAYLOAD,
    HEADER_SIZE,
    UDP_PLAIN,
    Edns,
    Header,
    Message,
    Opcode,
    Rcode,
    RRType,
    WireError,
    is_response,
    parse_message,
    rcode_of,
    response_from_header,
    write_message,
)
from resolver.wire.names import name_key

log = structlog.get_logger("resolver.serve.listener")

TCP_IDLE_TIMEOUT = 10.0  # seconds without a query before a TCP connection is closed
MAX_TCP_CONNECTIONS = 256
MAX_PIPELINED = 64  # queries of one TCP connection in progress before we stop reading it
SERVFAIL_TTL = 5  # seconds a SERVFAIL is answered from the cache (BIND: servfail-ttl 1)
MAX_IN_FLIGHT = 4096  # distinct questions being resolved at once; beyond: SERVFAIL

Address = tuple[Any, ...]


class AccessList:
    """Which client addresses may use the resolver: loopback always, plus the CIDRs given."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]
        self._decided: dict[str, bool] = {}

    def allows(self, host: str) -> bool:
        decided = self._decided.get(host)
        if decided is None:
            address = ipaddress.ip_address(host.split("%", 1)[0])
            if address.version == 6 and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            decided = address.is_loopback or any(address in net for net in self.networks)
            if len(self._decided) > 65536:
                self._decided.clear()
            self._decided[host] = decided
        return decided


def error_response(query: Message, rcode: int, with_question: bool = True) -> Message:
    header = query.header
    edns = Edns(EDNS_PAYLOAD) if query.edns is not None else None
    response = Message(
        Header(header.id, 1, header.opcode, 0, 0, header.rd, 1, 0, 0, header.cd, 0),
        list(query.question) if with_question else [],
        [], [], [], edns,
    )  # fmt: skip
    response.set_rcode(rcode)
    return response


def _servfail(packet: bytes) -> bytes | None:
    """SERVFAIL for a query that broke something of ours; None if it has no header."""
    if len(packet) < HEADER_SIZE or is_response(packet):
        return None
    return response_from_header(packet, Rcode.SERVFAIL)


class ResolverService:
    """Turns query packets into response packets, whatever the transport."""

    def __init__(
        self,
        engine: IterativeEngine,
        answers: AnswerCache,
        access: AccessList | None = None,
        query_log: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.answers = answers
        self.access = access or AccessList()
        self.query_log = query_log
        self.clock = clock
        self._in_flight: dict[tuple[str, int], asyncio.Task[Answer]] = {}

    def fast_answer(self, packet: bytes, client: str, udp: bool) -> bytes | None:
        """A cached answer for a plain query, without parsing it; None for the full path."""
        key = question_key(packet)
        if key is None:
            return None
        if not udp:
            key.udp_size = 65535
        response = self.answers.answer(key, packet)
        if response is not None and self.query_log:
            self._log_fast(packet, client, rcode_of(response))
        return response

    def _log_fast(self, packet: bytes, client: str, rcode: int) -> None:
        try:
            message = parse_message(packet)
        except WireError:
            return
        question = message.question[0]
        log.info("query", client=client, name=question.name, type=RRType.text(question.rrtype),
                 rcode=Rcode.text(rcode), cache=True, upstream=0, ms=0.0)  # fmt: skip

    async def handle(self, packet: bytes, client: str, udp: bool) -> bytes | None:
        """The response to one query packet, or None when it must be dropped."""
        started = self.clock()
        if len(packet) < HEADER_SIZE:
            log.warning("bad_query", client=client, problem="shorter than a header")
            return None
        if is_response(packet):
            log.warning("bad_query", client=client, problem="a response (QR=1), not answered")
            return None
        try:
            query = parse_message(packet)
        except WireError as error:
            log.warning("bad_query", client=client, problem=str(error))
            return response_from_header(packet, Rcode.FORMERR)
        refusal = self._refusal(query, client)
        if refusal is not None:
            return write_message(refusal)
        question = query.question[0]
        resolution, cached = await self._resolve(question.name, question.rrtype)
        response = self._build(query, resolution)
        wire = write_message(response)
        key = question_key(packet)
        if key is not None:
            if resolution.rcode in (Rcode.NOERROR, Rcode.NXDOMAIN):
                self.answers.store(key, wire)
            elif (
                resolution.failure is not None and resolution.failure.kind != FailureKind.OVERLOADED
            ):
                # RFC 2308 section 7.1: a failure may be remembered (at most 5 minutes), so
                # that clients retrying a broken name do not each start the walk again.
                self.answers.store(key, wire, lifetime=SERVFAIL_TTL)
        if udp:
            wire = self._fit_udp(query, response, wire)
        if self.query_log:
            log.info("query", client=client, name=question.name,
                     type=RRType.text(question.rrtype), rcode=Rcode.text(resolution.rcode),
                     cache=cached, upstream=resolution.upstream_queries,
                     ms=round((self.clock() - started) * 1000, 2))  # fmt: skip
        return wire

    def _refusal(self, query: Message, client: str) -> Message | None:
        """The error response a query gets instead of resolution, if any (logged)."""
        problem, rcode = None, Rcode.NOERROR
        header = query.header
        if not self.access.allows(client):
            problem, rcode = "client not in --allow", Rcode.REFUSED
        elif header.opcode != Opcode.QUERY:
            problem, rcode = f"opcode {header.opcode}", Rcode.NOTIMP
        elif len(query.question) != 1:
            problem, rcode = f"{len(query.question)} questions", Rcode.FORMERR
        elif query.edns is not None and query.edns.version != 0:
            problem, rcode = f"EDNS version {query.edns.version}", Rcode.BADVERS
        elif query.question[0].rrclass != CLASS_IN:
            problem, rcode = f"class {query.question[0].rrclass}", Rcode.REFUSED
        elif query.question[0].rrtype in (RRType.AXFR, RRType.IXFR):
            problem, rcode = "zone transfer", Rcode.REFUSED
        elif query.question[0].rrtype == RRType.OPT or 128 <= query.question[0].rrtype <= 254:
            problem, rcode = f"meta type {query.question[0].rrtype}", Rcode.FORMERR
        if problem is None:
            return None
        log.warning("bad_query", client=client, problem=problem, rcode=Rcode.text(rcode))
        return error_response(query, rcode, with_question=len(query.question) == 1)

    async def _resolve(self, name: str, rrtype: int) -> tuple[Answer, bool]:
        """Resolve, sharing one resolution among clients asking the same question."""
        key = (name_key(name), rrtype)
        task = self._in_flight.get(key)
        if task is None:
            if len(self._in_flight) >= MAX_IN_FLIGHT:
                log.warning("overloaded", in_flight=len(self._in_flight))
                return servfail(FailureKind.OVERLOADED, "too many questions in flight"), False
            task = asyncio.ensure_future(self.engine.resolve(name, rrtype))
            self._in_flight[key] = task
            task.add_done_callback(lambda _t: self._in_flight.pop(key, None))
        resolution = await asyncio.shield(task)
        return resolution, resolution.upstream_queries == 0

    @staticmethod
    def _build(query: Message, resolution: Answer) -> Message:
        response = error_response(query, resolution.rcode)
        response.answer = resolution.answer
        response.authority = resolution.authority
        return response

    @staticmethod
    def _fit_udp(query: Message, response: Message, wire: bytes) -> bytes:
        """Truncate (TC=1, no records) when the answer is larger than the client takes."""
        limit = (
            UDP_PLAIN
            if query.edns is None
            else min(max(query.edns.payload, UDP_PLAIN), EDNS_PAYLOAD)
        )
        if len(wire) <= limit:
            return wire
        response.answer, response.authority, response.additional = [], [], []
        response.header.tc = 1
        return write_message(response)


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, service: ResolverService) -> None:
        self.service = service
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport is not a subclass of asyncio's, so no isinstance check.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        service = self.service
        # Access first: a client outside --allow must not be answered (nor logged) from the cache.
        allowed = service.access.allows(addr[0])
        fast = service.fast_answer(data, addr[0], udp=True) if allowed else None
        if fast is not None:
            assert self.transport is not None
            self.transport.sendto(fast, addr)
            return
        task = asyncio.ensure_future(self._answer(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, data: bytes, addr: Address) -> None:
        try:
            response = await self.service.handle(data, addr[0], udp=True)
        except Exception:
            log.exception("internal_error", client=addr[0])
            response = _servfail(data)
        if response is not None and self.transport is not None:
            self.transport.sendto(response, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp_error", error=str(exc))


class TcpListener:
    """RFC 7766 service: pipelined queries, out-of-order answers, idle timeout, connection cap."""

    def __init__(self, service: ResolverService, max_connections: int = MAX_TCP_CONNECTIONS):
        self.service = service
        self.max_connections = max_connections
        self.open = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?",)
        if self.open >= self.max_connections:
            log.warning("tcp_refused", client=peer[0], reason="too many connections")
            writer.close()
            return
        self.open += 1
        pending: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                        prefix = await reader.readexactly(2)
                        packet = await reader.readexactly(int.from_bytes(prefix, "big"))
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    break
                task = asyncio.ensure_future(self._answer(packet, peer[0], writer))
                pending.add(task)
                task.add_done_callback(pending.discard)
                if len(pending) >= MAX_PIPELINED:
                    # Backpressure: a client that sends without reading waits for us.
                    await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if pending:
                await asyncio.wait(pending, timeout=TCP_IDLE_TIMEOUT)
        finally:
            self.open -= 1
            writer.close()

    async def _answer(self, packet: bytes, client: str, writer: asyncio.StreamWriter) -> None:
        service = self.service
        allowed = service.access.allows(client)
        response = service.fast_answer(packet, client, udp=False) if allowed else None
        if response is None:
            try:
                response = await service.handle(packet, client, udp=False)
            except Exception:
                log.exception("internal_error", client=client)
                response = _servfail(packet)  # as over UDP: the client gets an answer
        if response is not None and not writer.is_closing():
            writer.write(len(response).to_bytes(2, "big") + response)
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                    await writer.drain()  # the write buffer stays bounded
