"""A :class:`~resolver.lab.forged_zones.World` on the network: UDP and TCP on its addresses.

One background thread runs an asyncio loop with a UDP endpoint and a TCP listener per
server address, all on one port (53 when run as root in a namespace, so that Unbound can
be pointed at it; any port for this resolver, ``--upstream-port``).  UDP replies larger
than the query's EDNS payload (512 without EDNS) are sent truncated (TC=1, RFC 2181
section 9), so the big answers of the KeyTrap zone come over TCP, as they would.

    with ForgedServers(world, port=53) as servers:
        ...  # resolvers with world.hints_text() as root hints, world.anchor_text() as anchor
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import struct
import threading
from types import TracebackType
from typing import cast

import dns.exception
import dns.flags
import dns.message

from .forged_world import World

START_TIMEOUT = 10.0
TCP_IDLE_TIMEOUT = 5.0


def _udp_wire(reply: dns.message.Message, query: dns.message.Message) -> bytes:
    limit = max(512, query.payload) if query.edns >= 0 else 512
    try:
        return reply.to_wire(max_size=limit)
    except dns.exception.TooBig:
        reply.answer, reply.authority, reply.additional = [], [], []
        reply.flags |= dns.flags.TC
        return reply.to_wire(max_size=limit)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, servers: ForgedServers, address: str) -> None:
        self.servers = servers
        self.address = address
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        reply = self.servers.answer(self.address, data, tcp=False)
        if reply is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        pass


class ForgedServers:
    """Every server of a world, answering on ``port`` until stopped."""

    def __init__(self, world: World, port: int = 53) -> None:
        self.world = world
        self.port = port
        self.queries: list[tuple[str, str, int]] = []  # (address, qname, qtype) as received
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closers: list[asyncio.BaseTransport | asyncio.Server] = []
        self._tcp_tasks: set[asyncio.Task[None]] = set()

    def answer(self, address: str, wire: bytes, tcp: bool) -> bytes | None:
        """The reply to one query (None: nothing worth answering).  Never raises."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        if query.flags & dns.flags.QR or not query.question:
            return None
        question = query.question[0]
        with self._lock:
            self.queries.append((address, question.name.to_text(), question.rdtype))
        try:
            reply = self.world.respond(address, query)
            return reply.to_wire(max_size=65535) if tcp else _udp_wire(reply, query)
        except Exception as error:  # a hostile server must not die of its own forgeries
            with self._lock:
                self.errors.append(f"{address} {question.name} {question.rdtype}: {error!r}")
            return None

    def start(self) -> ForgedServers:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="forged-servers", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self._bind(), loop).result(START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        return self

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        for address in self.world.servers:
            transport, _ = await loop.create_datagram_endpoint(
                functools.partial(_Udp, self, address), local_addr=(address, self.port)
            )
            self._closers.append(transport)
            tcp = await asyncio.start_server(functools.partial(self._tcp, address),
                                             host=address, port=self.port,
                                             reuse_address=True)  # fmt: skip
            self._closers.append(tcp)

    async def _tcp(
        self, address: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tcp_tasks.add(task)
        try:
            while True:
                header = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                (length,) = struct.unpack("!H", header)
                wire = await asyncio.wait_for(reader.readexactly(length), TCP_IDLE_TIMEOUT)
                reply = self.answer(address, wire, tcp=True)
                if reply is not None:
                    writer.write(struct.pack("!H", len(reply)) + reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tcp_tasks.discard(task)
            writer.close()

    async def _close(self) -> None:
        for closer in self._closers:
            closer.close()
        self._closers.clear()
        for task in list(self._tcp_tasks):
            task.cancel()
        if self._tcp_tasks:
            await asyncio.wait(list(self._tcp_tasks), timeout=2)
        await asyncio.sleep(0)

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        self._loop = self._thread = None

    def count(self, qname: str, qtype: int | None = None) -> int:
        """How many queries for ``qname`` (and ``qtype``) the servers received."""
        wanted = qname.lower()
        with self._lock:
            return sum(1 for _, name, rdtype in self.queries
                       if name.lower() == wanted and qtype in (None, rdtype))  # fmt: skip

    def __enter__(self) -> ForgedServers:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
