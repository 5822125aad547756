"""Talking to upstream (authoritative) servers over UDP and TCP.

Every UDP query gets a fresh random 16-bit ID and goes out from a random
source port (RFC 5452 section 9.2) on a socket connected to that one server,
so the kernel drops datagrams from any other address or port;
:mod:`resolver.net.sockets` says how sockets are reused (a few times, for the
same server only) without making the port predictable.  A reply counts only if
it has the same ID and the same question (RFC 5452 section 3; names compared
without case).  Anything else is logged and ignored while waiting on.

EDNS0 is offered with a 1232-byte buffer (DNS Flag Day 2020); a server that
answers FORMERR or NOTIMP to EDNS is asked again without it (RFC 6891 section
7).  A truncated reply (TC=1) is asked again over TCP (RFC 7766 section 5,
RFC 2181 section 9 says to ignore the partial data).

A UDP exchange is driven by callbacks rather than awaited socket calls: the
socket's reader callback (registered once per socket) hands each datagram to
the :class:`_Waiter` of the exchange, which checks it and completes a future;
a timer handle ends it at the timeout.  That is a third of the CPU of
``sock_sendall``/``sock_recv`` under ``asyncio.timeout`` per exchange.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable

import structlog

from resolver.net.contract import ExchangeFailed, Failure, Reply
from resolver.net.sockets import DEFAULT_MAX_USES, SocketPool, random_numbers
from resolver.wire import (
    CLASS_IN,
    EDNS_PAYLOAD,
    HEADER_SIZE,
    Message,
    Rcode,
    WireError,
    parse_message,
    write_query,
)
from resolver.wire.names import name_key

DEFAULT_PORT = 53
TCP_LENGTH = struct.Struct("!H")

log = structlog.get_logger("resolver.net.transport")


def _matches(reply: Message, qname: str, qtype: int) -> bool:
    if len(reply.question) != 1:
        return False
    got = reply.question[0]
    return got.rrtype == qtype and got.rrclass == CLASS_IN and name_key(got.name) == name_key(qname)


class UpstreamTransport:
    """Sends one question to one server and returns a checked :class:`Reply` (a Network)."""

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_uses: int = DEFAULT_MAX_USES,
    ) -> None:
        """``max_uses``: the most queries one UDP socket carries (to one server); 1 opens
        a socket per query."""
        self.port = port
        self.clock = clock
        self.sockets = SocketPool(max_uses)

    async def exchange(
        self,
        address: str,
        qname: str,
        qtype: int,
        timeout: float,
        *,
        port: int | None = None,
        recursion_desired: bool = False,
        dnssec_ok: bool = False,
    ) -> Reply:
        """Ask ``address`` for (qname, qtype); raises :class:`ExchangeFailed`."""
        started = self.clock()
        server = (address, port or self.port)
        query = _Query(qname, qtype, recursion_desired, EDNS_PAYLOAD, dnssec_ok)
        reply = await self._udp(server, query, timeout)
        if reply.message.rcode in (Rcode.FORMERR, Rcode.NOTIMP) and reply.message.edns is None:
            log.debug("edns_fallback", server=address, qname=qname)
            query = _Query(qname, qtype, recursion_desired, None, False)
            reply = await self._udp(server, query, self._remaining(started, timeout))
        if reply.message.header.tc:
            reply = await self._tcp(server, query, self._remaining(started, timeout))
        return reply

    def _remaining(self, started: float, timeout: float) -> float:
        return max(timeout - (self.clock() - started), 0.05)

    async def _udp(self, server: tuple[str, int], query: _Query, timeout: float) -> Reply:
        address = server[0]
        msg_id = random_numbers.u16()
        wire = query.wire(msg_id)
        loop = asyncio.get_running_loop()
        try:
            upstream = self.sockets.take(server, loop)
        except OSError as error:
            raise ExchangeFailed(Failure.LOCAL_ERROR, address, str(error.strerror)) from None
        waiter = _Waiter(self, loop.create_future(), msg_id, query, address)
        upstream.receiver = waiter
        healthy = False
        started = self.clock()
        try:
            try:
                upstream.sock.send(wire)
            except BlockingIOError:  # the send buffer is full: wait for room
                await loop.sock_sendall(upstream.sock, wire)
            timer = loop.call_at(loop.time() + timeout, waiter.expire)
            try:
                message = await waiter.future
            finally:
                timer.cancel()
            healthy = True
            return Reply(message, self.clock() - started, False)
        except ConnectionRefusedError:
            raise ExchangeFailed(Failure.UNREACHABLE, address, "port unreachable") from None
        except OSError as error:
            raise ExchangeFailed(Failure.UNREACHABLE, address, str(error.strerror)) from None
        finally:
            self.sockets.give_back(upstream, healthy)

    def _accept(
        self, data: bytes, msg_id: int, query: _Query, address: str, proto: str
    ) -> Message | None:
        """The parsed reply if it answers ``query``; None (logged) for anything else."""
        if len(data) < HEADER_SIZE or int.from_bytes(data[:2], "big") != msg_id:
            log.warning("reply_ignored", reason="wrong id", server=address, proto=proto)
            return None
        try:
            message = parse_message(data)
        except WireError as error:
            raise ExchangeFailed(Failure.MALFORMED, address, str(error)) from None
        if not message.header.qr or not _matches(message, query.qname, query.qtype):
            log.warning("reply_ignored", reason="wrong question", server=address, proto=proto)
            return None
        return message

    async def _tcp(self, server: tuple[str, int], query: _Query, timeout: float) -> Reply:
        address = server[0]
        msg_id = random_numbers.u16()
        wire = query.wire(msg_id)
        started = self.clock()
        writer = None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(*server)
                writer.write(TCP_LENGTH.pack(len(wire)) + wire)
                await writer.drain()
                while True:
                    (length,) = TCP_LENGTH.unpack(await reader.readexactly(2))
                    data = await reader.readexactly(length)
                    message = self._accept(data, msg_id, query, address, "tcp")
                    if message is not None:
                        return Reply(message, self.clock() - started, True)
        except TimeoutError:
            raise ExchangeFailed(Failure.TIMEOUT, address, "tcp") from None
        except asyncio.IncompleteReadError:
            raise ExchangeFailed(Failure.CONNECTION_CLOSED, address, "tcp") from None
        except OSError as error:
            raise ExchangeFailed(Failure.UNREACHABLE, address, f"tcp: {error.strerror}") from None
        finally:
            if writer is not None:
                writer.close()


class _Query:
    """The question of one exchange and how it is asked (EDNS or not, the DO bit)."""

    __slots__ = ("dnssec_ok", "edns_payload", "qname", "qtype", "rd")

    def __init__(
        self, qname: str, qtype: int, rd: bool, edns_payload: int | None, dnssec_ok: bool
    ) -> None:
        self.qname = qname
        self.qtype = qtype
        self.rd = rd
        self.edns_payload = edns_payload
        self.dnssec_ok = dnssec_ok

    def wire(self, msg_id: int) -> bytes:
        return write_query(self.qname, self.qtype, msg_id, rd=self.rd,
                           edns_payload=self.edns_payload, dnssec_ok=self.dnssec_ok)  # fmt: skip


class _Waiter:
    """One UDP exchange waiting on its socket: checks each datagram, completes the future."""

    __slots__ = ("address", "future", "msg_id", "query", "transport")

    def __init__(
        self,
        transport: UpstreamTransport,
        future: asyncio.Future[Message],
        msg_id: int,
        query: _Query,
        address: str,
    ) -> None:
        self.transport = transport
        self.future = future
        self.msg_id = msg_id
        self.query = query
        self.address = address

    def datagram(self, data: bytes) -> None:
        if self.future.done():
            return  # answered already; a duplicate
        try:
            message = self.transport._accept(data, self.msg_id, self.query, self.address, "udp")
        except ExchangeFailed as failed:
            self.future.set_exception(failed)
            return
        if message is not None:
            self.future.set_result(message)

    def error(self, error: OSError) -> None:
        if not self.future.done():
            self.future.set_exception(error)

    def expire(self) -> None:
        if not self.future.done():
            self.future.set_exception(ExchangeFailed(Failure.TIMEOUT, self.address, "udp"))
