"""Misbehaving fronts: relays on 127.51.F.1 port 53 to an NSD, for what NSD will not do.

NSD answers every query at once, with the SOA in every negative answer.  A name server
that is slow, that loses packets, or that leaves the SOA out of NXDOMAIN and NODATA
answers (seen in the wild; RFC 2308 section 2.2 lists NODATA without SOA as a form a
resolver must handle) is made here by relaying each query to the NSD that serves the
zone and changing what comes back (:data:`resolver.lab.generated_model.FRONT_KINDS`):

``slow``       the reply is sent ``delay_ms`` late (UDP and TCP);
``drop``       over UDP, every other query for the same question from the same client
               address is not answered: a resolver's first try gets nothing, its retry
               gets the answer;
``strip-soa``  an authoritative NXDOMAIN, or NOERROR with an empty answer section, loses
               its whole authority section (the SOA, and NSEC/NSEC3 proofs when signed).

All fronts run in one background thread (asyncio); the relayed exchanges run in a small
thread pool with bounded socket timeouts, so a dead backend costs a front nothing but
a missing reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.rcode

from resolver.lab.generated_model import Front

RELAY_TIMEOUT = 2.0
TCP_IDLE = 3.0


def strip_negative(wire: bytes) -> bytes:
    """``wire`` without its authority section if it is an authoritative negative answer."""
    try:
        reply = dns.message.from_wire(wire)
    except dns.exception.DNSException:
        return wire
    negative = reply.rcode() == dns.rcode.NXDOMAIN or (
        reply.rcode() == dns.rcode.NOERROR and not reply.answer
    )
    if not negative or not reply.flags & dns.flags.AA:
        return wire  # answers and referrals pass unchanged
    reply.authority = []
    return reply.to_wire()


def _relay_udp(wire: bytes, backend: str, port: int) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(RELAY_TIMEOUT)
        try:
            sock.sendto(wire, (backend, port))
            return sock.recv(65535)
        except OSError:
            return None


def _relay_tcp(wire: bytes, backend: str, port: int) -> bytes | None:
    try:
        with socket.create_connection((backend, port), timeout=RELAY_TIMEOUT) as sock:
            sock.sendall(struct.pack("!H", len(wire)) + wire)
            header = _read_exactly(sock, 2)
            return _read_exactly(sock, struct.unpack("!H", header)[0])
    except (OSError, EOFError):
        return None


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def question_key(wire: bytes) -> bytes:
    """The question section's bytes, lower-cased (a key that ignores the query ID)."""
    if len(wire) < 12:
        return b""
    end = 12
    while end < len(wire) and wire[end] != 0:
        end += wire[end] + 1
    return wire[12 : end + 5].lower()


class _FrontServer:
    def __init__(self, front: Front, port: int, pool: ThreadPoolExecutor) -> None:
        self.front = front
        self.port = port
        self.pool = pool
        self.seen: Counter[bytes] = Counter()

    async def reply(self, wire: bytes, transport: str, client: str = "") -> bytes | None:
        front = self.front
        if front.kind == "drop" and transport == "udp":
            key = client.encode() + b" " + question_key(wire)  # each client on its own
            self.seen[key] += 1
            if self.seen[key] % 2 == 1:
                return None
        relay = _relay_udp if transport == "udp" else _relay_tcp
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(self.pool, relay, wire, front.backend, self.port)
        if answer is None:
            return None
        if front.kind == "slow":
            await asyncio.sleep(front.delay_ms / 1000)
        if front.kind == "strip-soa":
            answer = strip_negative(answer)
        return answer


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: _FrontServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        task = asyncio.get_running_loop().create_task(self._answer(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, data: bytes, addr: tuple[str, int]) -> None:
        answer = await self.server.reply(data, "udp", addr[0])
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)

    def error_received(self, exc: Exception) -> None:
        pass


class Fronts:
    """Every front of a hierarchy, started and stopped together."""

    def __init__(self, fronts: Iterable[Front], port: int = 53) -> None:
        self.fronts = tuple(fronts)
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="front-relay")
        self._closers: list[asyncio.BaseTransport | asyncio.Server] = []

    def start(self) -> Fronts:
        if not self.fronts:
            return self
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="fronts", daemon=True)
        self._thread.start()
        self._loop = loop
        try:
            asyncio.run_coroutine_threadsafe(self._bind(), loop).result(10)
        except BaseException:
            self.stop()
            raise
        return self

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        for front in self.fronts:
            server = _FrontServer(front, self.port, self._pool)
            transport, _ = await loop.create_datagram_endpoint(
                functools.partial(_Udp, server), local_addr=(front.address, self.port)
            )
            self._closers.append(transport)
            tcp = await asyncio.start_server(
                functools.partial(self._serve_tcp, server), host=front.address, port=self.port,
                reuse_address=True,
            )  # fmt: skip
            self._closers.append(tcp)

    async def _serve_tcp(
        self, server: _FrontServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                header = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE)
                wire = await asyncio.wait_for(reader.readexactly(struct.unpack("!H", header)[0]),
                                              TCP_IDLE)  # fmt: skip
                answer = await server.reply(wire, "tcp")
                if answer is None:
                    break
                writer.write(struct.pack("!H", len(answer)) + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._close(), loop).result(5)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()
        self._loop = self._thread = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _close(self) -> None:
        for closer in self._closers:
            closer.close()
        self._closers.clear()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:  # TCP connections and delayed replies still in flight
            task.cancel()
        if others:
            await asyncio.wait(others, timeout=2)

    def __enter__(self) -> Fronts:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
