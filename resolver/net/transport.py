"""Talking to upstream (authoritative) servers over UDP and TCP.

Every UDP query gets a fresh random 16-bit ID and a fresh random source port
(RFC 5452 section 9.2), and a reply counts only if it comes from the address
and port asked (the socket is connected, so the kernel filters the rest), has
the same ID and the same question (RFC 5452 section 3; names compared without
case).  Anything else is logged and ignored while waiting on.

EDNS0 is offered with a 1232-byte buffer (DNS Flag Day 2020); a server that
answers FORMERR or NOTIMP to EDNS is asked again without it (RFC 6891 section
7).  A truncated reply (TC=1) is asked again over TCP (RFC 7766 section 5,
RFC 2181 section 9 says to ignore the partial data).
"""

from __future__ import annotations

import asyncio
import errno
import secrets
import socket
import struct
import time
from collections.abc import Callable

import structlog

from resolver.net.contract import ExchangeFailed, Failure, Reply
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


class _RandomPool:
    """Unpredictable 16-bit numbers (RFC 5452 section 9), drawn from the OS in bulk."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.buffer = b""
        self.offset = 0

    def u16(self) -> int:
        if self.offset + 2 > len(self.buffer):
            self.buffer, self.offset = secrets.token_bytes(self.size), 0
        value = self.buffer[self.offset] << 8 | self.buffer[self.offset + 1]
        self.offset += 2
        return value


_random = _RandomPool()


def _random_port() -> int:
    while True:
        port = _random.u16()
        if port >= 1024:  # not a privileged port
            return port


def _udp_socket(address: str, port: int) -> socket.socket:
    """A non-blocking UDP socket on a random source port, connected to the server."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        for _ in range(10):
            try:
                sock.bind(("", _random_port()))
                break
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
        else:
            sock.bind(("", 0))  # the kernel's choice, still randomised on Linux
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _matches(reply: Message, qname: str, qtype: int) -> bool:
    if len(reply.question) != 1:
        return False
    got = reply.question[0]
    return got.rrtype == qtype and got.rrclass == CLASS_IN and name_key(got.name) == name_key(qname)


class UpstreamTransport:
    """Sends one question to one server and returns a checked :class:`Reply` (a Network)."""

    def __init__(self, port: int = DEFAULT_PORT, clock: Callable[[], float] = time.monotonic):
        self.port = port
        self.clock = clock

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
        msg_id = _random.u16()
        wire = query.wire(msg_id)
        loop = asyncio.get_running_loop()
        try:
            sock = _udp_socket(*server)
        except OSError as error:
            raise ExchangeFailed(Failure.LOCAL_ERROR, address, str(error.strerror)) from None
        with sock:
            started = self.clock()
            try:
                await loop.sock_sendall(sock, wire)
                async with asyncio.timeout(timeout):
                    while True:
                        data = await loop.sock_recv(sock, 65535)
                        message = self._accept(data, msg_id, query, address, "udp")
                        if message is not None:
                            return Reply(message, self.clock() - started, False)
            except TimeoutError:
                raise ExchangeFailed(Failure.TIMEOUT, address, "udp") from None
            except ConnectionRefusedError:
                raise ExchangeFailed(Failure.UNREACHABLE, address, "port unreachable") from None
            except OSError as error:
                raise ExchangeFailed(Failure.UNREACHABLE, address, str(error.strerror)) from None

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
        msg_id = _random.u16()
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
