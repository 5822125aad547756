"""Talking to upstream (authoritative) servers over UDP and TCP.

Every UDP query gets a fresh random 16-bit ID and goes out from a random
source port (RFC 5452 section 9.2) on a socket connected to that one server,
so the kernel drops datagrams from any other address or port;
:mod:`resolver.net.sockets` says how sockets are reused (a few times, for the
same server only) without making the port predictable.  A reply counts only if
it has the same ID and the same question (RFC 5452 section 3; names compared
without case).  Anything else is logged and ignored while waiting on.

Optional, each its own module: 0x20 case randomisation of the question
(:mod:`resolver.net.caps`, ``use-caps-for-id``, off by default) and DNS cookies
(:mod:`resolver.net.cookies`, on by default): a reply with the wrong case, with
another Client Cookie, or without a cookie from a server known to send one, is
ignored like one with the wrong ID, and the exchange waits on for the right one.

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
import socket
import struct
import time
from collections.abc import Callable
from enum import Enum
from typing import cast

import structlog

from resolver.net.caps import CaseKeeping, name_end, randomise
from resolver.net.contract import ExchangeFailed, Failure, Query, Reply
from resolver.net.cookies import CookieCheck, CookieJar
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
from resolver.wire.raw import BADCOOKIE, add_query_option

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
        caps: CaseKeeping | None = None,
        cookies: bool = True,
    ) -> None:
        """``max_uses``: the most queries one UDP socket carries (to one server); 1, the
        default, opens a socket per query.  ``caps``: 0x20 (off when None).
        ``cookies``: send DNS cookies and check them in replies."""
        self.port = port
        self.clock = clock
        self.sockets = SocketPool(max_uses)
        self.caps = caps or CaseKeeping()
        self.cookies = CookieJar(clock) if cookies else None

    async def exchange(self, asked: Query) -> Reply:
        """Ask ``asked.address`` for (qname, qtype); raises :class:`ExchangeFailed`."""
        started = self.clock()
        address, qname, qtype, timeout = asked.address, asked.qname, asked.qtype, asked.timeout
        server = (address, asked.port or self.port)
        recursion_desired = asked.recursion_desired
        query = _Form(qname, qtype, recursion_desired, EDNS_PAYLOAD, asked.dnssec_ok)
        reply = await self._udp(server, query, timeout)
        rcode = reply.message.rcode
        if rcode in (Rcode.FORMERR, Rcode.NOTIMP) and reply.message.edns is None:
            log.debug("edns_fallback", server=address, qname=qname)
            query = _Form(qname, qtype, recursion_desired, None, False)
            reply = await self._udp(server, query, self._remaining(started, timeout))
        elif rcode == BADCOOKIE and self.cookies is not None:
            # RFC 7873 section 5.3: once more with the Server Cookie it just gave (check()
            # kept it); a second BADCOOKIE, over TCP, where cookies are not needed.
            log.debug("badcookie_retry", server=address, qname=qname)
            reply = await self._udp(server, query, self._remaining(started, timeout))
            if reply.message.rcode == BADCOOKIE:
                reply = await self._tcp(server, query, self._remaining(started, timeout))
        if reply.message.header.tc:
            reply = await self._tcp(server, query, self._remaining(started, timeout))
        return reply

    def _remaining(self, started: float, timeout: float) -> float:
        return max(timeout - (self.clock() - started), 0.05)

    async def _udp(self, server: tuple[str, int], query: _Form, timeout: float) -> Reply:
        address = server[0]
        attempt = self._attempt(address, query)
        loop = asyncio.get_running_loop()
        try:
            upstream = self.sockets.take(server, loop)
        except OSError as error:
            raise ExchangeFailed(Failure.LOCAL_ERROR, address, str(error.strerror)) from None
        waiter = _Waiter(self, loop.create_future(), attempt, address)
        upstream.receiver = waiter
        healthy = False
        started = self.clock()
        try:
            try:
                upstream.sock.send(attempt.wire)
            except BlockingIOError:  # the send buffer is full: wait for room
                await loop.sock_sendall(cast(socket.socket, upstream.sock), attempt.wire)
            timer = loop.call_at(loop.time() + timeout, waiter.expire)
            try:
                message = await waiter.future
            finally:
                timer.cancel()
            healthy = True
            return Reply(message, self.clock() - started, False, attempt.wire, waiter.received)
        except ConnectionRefusedError:
            raise ExchangeFailed(Failure.UNREACHABLE, address, "port unreachable") from None
        except OSError as error:
            raise ExchangeFailed(Failure.UNREACHABLE, address, str(error.strerror)) from None
        finally:
            self.sockets.give_back(upstream, healthy)

    def _attempt(self, address: str, query: _Form) -> _Attempt:
        """One UDP query's wire form and what its reply is checked against: a fresh ID,
        the question's case (0x20) and our Client Cookie when they are used."""
        msg_id = random_numbers.u16()
        wire = query.wire(msg_id)
        sent_name = None
        if self.caps.enabled and self.caps.wanted(address, query.qname):
            end = name_end(wire, HEADER_SIZE)
            sent_name = randomise(wire[HEADER_SIZE:end])
            wire = wire[:HEADER_SIZE] + sent_name + wire[end:]
        cookie = self.cookies is not None and query.edns_payload is not None
        if cookie:
            assert self.cookies is not None
            wire = add_query_option(wire, self.cookies.option(address))
        return _Attempt(msg_id, wire, query, sent_name, cookie)

    def _accept(
        self, data: bytes, msg_id: int, query: _Form, address: str, proto: str
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

    def _judge(self, data: bytes, attempt: _Attempt, address: str) -> Message | Refused | None:
        """A UDP datagram against its attempt: the message if it is the reply, None if it
        is not, or why a reply with the right ID and question was refused all the same
        (the wrong case, the wrong or a missing cookie); logged either way."""
        sent_name = attempt.sent_name
        if sent_name is not None and len(data) > HEADER_SIZE + len(sent_name):
            got = data[HEADER_SIZE : HEADER_SIZE + len(sent_name)]
            if got != sent_name:
                if got.lower() == sent_name.lower() and data[:2] == attempt.wire[:2]:
                    log.warning("reply_ignored", reason=Refused.WRONG_CASE.value,
                                server=address, proto="udp")  # fmt: skip
                    return Refused.WRONG_CASE
            else:  # RFC 5452 checks the name without case: give the reply the asked case
                original = attempt.query.wire_name()
                data = data[:HEADER_SIZE] + original + data[HEADER_SIZE + len(original) :]
        message = self._accept(data, attempt.msg_id, attempt.query, address, "udp")
        if message is None or not attempt.cookie or self.cookies is None:
            return message
        verdict = self.cookies.check(address, message.edns.options if message.edns else ())
        if verdict is CookieCheck.ACCEPTED:
            return message
        refused = Refused.WRONG_COOKIE if verdict is CookieCheck.WRONG_COOKIE else Refused.NO_COOKIE
        log.warning("reply_ignored", reason=refused.value, server=address, proto="udp")
        return refused

    def _suspicious_timeout(self, waiter: _Waiter) -> None:
        """A UDP exchange timed out having seen only refused replies with the right ID:
        the server does not keep case, or stopped sending cookies; the next try goes
        without that check."""
        if waiter.wrong_case:
            log.info("caps_fallback", server=waiter.address)
            self.caps.does_not_keep_case(waiter.address)
        if waiter.no_cookie and self.cookies is not None:
            log.info("cookie_fallback", server=waiter.address)
            self.cookies.forget(waiter.address)

    async def _tcp(self, server: tuple[str, int], query: _Form, timeout: float) -> Reply:
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
                        return Reply(message, self.clock() - started, True, wire, data)
        except TimeoutError:
            raise ExchangeFailed(Failure.TIMEOUT, address, "tcp") from None
        except asyncio.IncompleteReadError:
            raise ExchangeFailed(Failure.CONNECTION_CLOSED, address, "tcp") from None
        except OSError as error:
            raise ExchangeFailed(Failure.UNREACHABLE, address, f"tcp: {error.strerror}") from None
        finally:
            if writer is not None:
                writer.close()


class Refused(Enum):
    """Why a reply with the right ID and question was not accepted."""

    WRONG_CASE = "wrong case (0x20)"  # a forgery, or a server that does not keep case
    WRONG_COOKIE = "wrong client cookie"  # a forgery: only the server saw our cookie
    NO_COOKIE = "no cookie from a cookie server"  # a forgery, or the server stopped


class _Form:
    """The question of one exchange and the form it is asked in (EDNS or not, the DO bit)."""

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

    def wire_name(self) -> bytes:
        """The question's name in wire form, in the case we were asked."""
        wire = write_query(self.qname, self.qtype, 0, edns_payload=None)
        return wire[HEADER_SIZE : name_end(wire, HEADER_SIZE)]


class _Attempt:
    """One UDP query as sent: its ID and wire, the name as sent when its case was drawn at
    random (0x20), and whether it carried our cookie."""

    __slots__ = ("cookie", "msg_id", "query", "sent_name", "wire")

    def __init__(
        self, msg_id: int, wire: bytes, query: _Form, sent_name: bytes | None, cookie: bool
    ) -> None:
        self.msg_id = msg_id
        self.wire = wire
        self.query = query
        self.sent_name = sent_name
        self.cookie = cookie


class _Waiter:
    """One UDP exchange waiting on its socket: checks each datagram, completes the future."""

    __slots__ = ("address", "attempt", "future", "no_cookie", "received", "transport", "wrong_case")

    def __init__(
        self,
        transport: UpstreamTransport,
        future: asyncio.Future[Message],
        attempt: _Attempt,
        address: str,
    ) -> None:
        self.transport = transport
        self.future = future
        self.attempt = attempt
        self.address = address
        self.wrong_case = False  # a reply came with the right ID but the wrong case
        self.no_cookie = False  # one came without a cookie from a server known to send one
        self.received = b""  # the reply as it came, once accepted

    def datagram(self, data: bytes) -> bool:
        future = self.future
        if future.done():
            return True  # answered already; a duplicate
        try:
            outcome = self.transport._judge(data, self.attempt, self.address)
        except ExchangeFailed as failed:
            future.set_exception(failed)
            return True
        if outcome is None:
            return False
        if isinstance(outcome, Refused):
            self.wrong_case |= outcome is Refused.WRONG_CASE
            self.no_cookie |= outcome is Refused.NO_COOKIE
            return False
        self.received = data
        future.set_result(outcome)
        return True

    def error(self, error: OSError) -> None:
        if not self.future.done():
            self.future.set_exception(error)

    def expire(self) -> None:
        if not self.future.done():
            if self.wrong_case or self.no_cookie:
                self.transport._suspicious_timeout(self)
            self.future.set_exception(ExchangeFailed(Failure.TIMEOUT, self.address, "udp"))
