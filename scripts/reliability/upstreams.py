"""Authoritative servers that misbehave on purpose, in a hierarchy of their own.

A small relative of :class:`resolver.lab.Lab` (whose answering code,
:mod:`resolver.lab.authority`, it reuses): each :class:`Role` serves zones
(master-file text, or a Python function for answers generated per question) on
its 127.x.y.z addresses, UDP and TCP, with a :class:`Behaviour`: a share of
queries dropped, a delay, garbage, a reply from another port or another address,
TC=1 forever, a TCP connection closed before the answer, flapping up and down.
Every query received is counted per address and per name, which is how the
scripts measure upstream queries per client question.

It runs in one background thread (an asyncio loop), binds port 53 by default (as
root in the offline namespace, so Unbound, which cannot be told another upstream
port, walks the same hierarchy), and has its own root, whose hints it writes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rrset

from resolver.lab.authority import AuthoritativeData, Zone, make_reply


@dataclass(frozen=True)
class Delayed:
    """A generated answer sent ``seconds`` late (over UDP and TCP alike), on top of the
    role's own delay: a server that answers one question slowly on purpose."""

    message: dns.message.Message
    seconds: float


Generator = Callable[[dns.message.Message], dns.message.Message | Delayed | None]
"""Answers a parsed query itself (None: fall back to the role's zones)."""

ROOT_ADDRESS = "127.8.0.1"


@dataclass(frozen=True)
class Behaviour:
    drop: float = 0.0  # share of queries never answered
    delay: float = 0.0  # seconds before each answer
    garbage: float = 0.0  # share answered with random bytes (with the query's ID)
    other_port: bool = False  # UDP replies sent from another source port
    other_address: str = ""  # UDP replies sent from this address instead
    truncate: bool = False  # TC=1 and no records, over UDP and TCP alike, forever
    tcp_close: bool = False  # UDP: TC=1; TCP: the connection closed once the query is read
    flap: float = 0.0  # seconds up, then as many silent, and so on
    silent: bool = False  # reads every query, never answers


NORMAL = Behaviour()


@dataclass
class Role:
    name: str
    addresses: tuple[str, ...]
    zones: dict[str, str] = field(default_factory=dict)  # origin -> master-file text
    behaviour: Behaviour = NORMAL
    generator: Generator | None = None


class Counts:
    """Queries received: per address, per (address, qname lower-cased), in total."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_address: collections.Counter[str] = collections.Counter()
        self.by_name: collections.Counter[tuple[str, str]] = collections.Counter()
        self.times: dict[str, list[float]] = collections.defaultdict(list)

    def add(self, address: str, qname: str) -> None:
        with self.lock:
            self.by_address[address] += 1
            self.by_name[(address, qname.lower())] += 1
            self.times[address].append(time.monotonic())

    def total(self, addresses: Iterable[str] | None = None) -> int:
        with self.lock:
            if addresses is None:
                return sum(self.by_address.values())
            return sum(self.by_address[a] for a in addresses)

    def reset(self) -> None:
        with self.lock:
            self.by_address.clear()
            self.by_name.clear()
            self.times.clear()


class _Server:
    def __init__(self, lab: BrokenLab, role: Role, data: AuthoritativeData) -> None:
        self.lab, self.role, self.data = lab, role, data
        self.started = time.monotonic()
        self.random = random.Random(hash(role.name) & 0xFFFF)

    def up(self) -> bool:
        flap = self.role.behaviour.flap
        return not flap or int((time.monotonic() - self.started) / flap) % 2 == 0

    def reply(self, wire: bytes, address: str, tcp: bool) -> tuple[bytes, float] | None:
        """The reply to send and how late (None: nothing), the behaviour applied except
        the paths it takes."""
        behaviour = self.role.behaviour
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        if query.question:
            self.lab.counts.add(address, query.question[0].name.to_text())
        if behaviour.silent or not self.up() or self.random.random() < behaviour.drop:
            return None
        delay = behaviour.delay
        if self.random.random() < behaviour.garbage:
            return wire[:2] + self.random.randbytes(self.random.randrange(1, 200)), delay
        if behaviour.truncate or (behaviour.tcp_close and not tcp):
            response = dns.message.make_response(query)
            response.flags |= dns.flags.TC
            return response.to_wire(), delay
        generated = self.role.generator(query) if self.role.generator else None
        if isinstance(generated, Delayed):
            generated, delay = generated.message, delay + generated.seconds
        response = generated if generated is not None else make_reply(self.data, query)
        limit = 65535 if tcp else max(512, query.payload) if query.edns >= 0 else 512
        try:
            return response.to_wire(max_size=limit), delay
        except dns.exception.TooBig:
            response.answer, response.authority, response.additional = [], [], []
            response.flags |= dns.flags.TC
            return response.to_wire(), delay


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: _Server, address: str) -> None:
        self.server, self.address = server, address
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        outgoing = self.server.reply(data, self.address, tcp=False)
        if outgoing is None:
            return
        reply, delay = outgoing
        loop = asyncio.get_running_loop()
        loop.call_later(delay, self._send, reply, addr) if delay else self._send(reply, addr)

    def _send(self, reply: bytes, addr: tuple[str, int]) -> None:
        behaviour = self.server.role.behaviour
        if behaviour.other_port or behaviour.other_address:
            source = behaviour.other_address or self.address
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind((source, 0))
                sock.sendto(reply, addr)
        elif self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        pass


class BrokenLab:
    """Every role on its addresses, one port, in a background thread."""

    def __init__(self, directory: Path, roles: Iterable[Role], port: int = 53) -> None:
        self.directory = directory
        self.roles = list(roles)
        self.port = port
        self.counts = Counts()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closers: list[asyncio.BaseTransport | asyncio.Server] = []

    def _zone(self, origin: str, text: str) -> Zone:
        zones = self.directory / "zones"
        zones.mkdir(parents=True, exist_ok=True)
        (zones / (origin.rstrip(".") + ".zone" if origin != "." else "root.zone")).write_text(text)
        return Zone.load(zones, origin)

    def hints_text(self) -> str:
        return f". 3600000 NS a.root.\na.root. 3600000 A {ROOT_ADDRESS}\n"

    def write_hints(self, path: Path) -> Path:
        path.write_text(self.hints_text())
        return path

    def start(self) -> BrokenLab:
        servers = [
            _Server(self, role, AuthoritativeData(self._zone(o, t) for o, t in role.zones.items()))
            for role in self.roles
        ]
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="broken-lab", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._bind(servers), loop).result(20)
        return self

    async def _bind(self, servers: list[_Server]) -> None:
        loop = asyncio.get_running_loop()
        for server in servers:
            for address in server.role.addresses:
                transport, _ = await loop.create_datagram_endpoint(
                    functools.partial(_Udp, server, address), local_addr=(address, self.port)
                )
                self._closers.append(transport)
                tcp = await asyncio.start_server(
                    functools.partial(self._tcp, server, address), address, self.port,
                    reuse_address=True,
                )  # fmt: skip
                self._closers.append(tcp)

    async def _tcp(
        self, server: _Server, address: str, reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:  # fmt: skip
        try:
            while True:
                prefix = await asyncio.wait_for(reader.readexactly(2), 5)
                wire = await asyncio.wait_for(reader.readexactly(struct.unpack("!H", prefix)[0]), 5)
                if server.role.behaviour.tcp_close:
                    server.lab.counts.add(address, _qname(wire))
                    break
                outgoing = server.reply(wire, address, tcp=True)
                if outgoing is None:
                    continue
                reply, delay = outgoing
                if delay:
                    await asyncio.sleep(delay)
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def close() -> None:
            for closer in self._closers:
                closer.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        self._loop = self._thread = None

    def __enter__(self) -> BrokenLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _qname(wire: bytes) -> str:
    try:
        message = dns.message.from_wire(wire)
        return message.question[0].name.to_text() if message.question else "?"
    except Exception:
        return "?"


# -------------------------------------------------------------------- zone text helpers


def soa(origin: str) -> str:
    return f"$TTL 300\n@ SOA ns.{origin} host.{origin} 1 3600 900 604800 60\n"


def root_zone(delegations: dict[str, list[tuple[str, str]]]) -> str:
    """The root: ``zone -> [(ns name, glue address or "")]``."""
    lines = [soa("root."), "@ NS a.root.", f"a.root. A {ROOT_ADDRESS}"]
    for zone, servers in delegations.items():
        for name, glue in servers:
            lines.append(f"{zone} NS {name}")
            if glue:
                lines.append(f"{name} A {glue}")
    return "\n".join(lines) + "\n"


def root_role(delegations: dict[str, list[tuple[str, str]]]) -> Role:
    return Role("root", (ROOT_ADDRESS,), {".": root_zone(delegations)})


def leaf_zone(origin: str, server: str, address: str, body: str = "") -> str:
    """A zone with one name server (glue inside) and whatever ``body`` adds."""
    return f"$ORIGIN {origin}\n{soa(origin)}@ NS {server}\n{server} A {address}\n{body}"


def respond(
    query: dns.message.Message,
    *,
    aa: bool = True,
    ra: bool = False,
    rcode: int = dns.rcode.NOERROR,
    answer: Iterable[str] = (),
    authority: Iterable[str] = (),
    additional: Iterable[str] = (),
) -> dns.message.Message:
    """A reply to ``query`` made up by a hostile server: sections as record lines
    (``owner ttl TYPE rdata``), lines of one owner and type in one RRset."""
    response = dns.message.make_response(query)
    response.flags &= ~(dns.flags.AA | dns.flags.RA)
    response.flags |= (dns.flags.AA if aa else 0) | (dns.flags.RA if ra else 0)
    response.set_rcode(rcode)
    for section, lines in ((response.answer, answer), (response.authority, authority),
                           (response.additional, additional)):  # fmt: skip
        grouped: dict[tuple[str, str], dns.rrset.RRset] = {}
        for line in lines:
            owner, ttl, rrtype, rdata = line.split(None, 3)
            key = (owner.lower(), rrtype.upper())
            if key in grouped:
                grouped[key].add(dns.rdata.from_text("IN", rrtype, rdata))
            else:
                grouped[key] = dns.rrset.from_text(owner, int(ttl), "IN", rrtype, rdata)
        section.extend(grouped.values())
    return response
