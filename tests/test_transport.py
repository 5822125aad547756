"""Upstream transport (resolver.net.transport) against tiny servers written here, on loopback.

Run inside /work/shared/tools/offline.  Every server listens on 127.77.0.1 (UDP, and TCP on
the same port when a test needs it); nothing else is contacted.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import socket
import struct
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar, cast

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rrset
import pytest
import structlog
from structlog.testing import capture_logs

import resolver.net.transport as transport
from resolver.net.contract import ExchangeFailed, Failure, Query, Reply
from resolver.net.sockets import SocketPool, random_numbers
from resolver.net.transport import UpstreamTransport
from resolver.wire import EDNS_PAYLOAD, RRType

SERVER = "127.77.0.1"
NOBODY = "127.77.0.2"  # nothing listens there
QNAME = "www.example.com."
ANSWER = "192.0.2.1"

T = TypeVar("T")

# A behaviour gets the parsed query, its wire form and the protocol, and returns the
# datagrams (or TCP messages) to send back, in order.
Behaviour = Callable[[dns.message.Message, bytes, str], list[bytes]]


def answer_to(query: dns.message.Message, address: str = ANSWER, **flags: Any) -> bytes:
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    if flags.get("tc"):
        response.flags |= dns.flags.TC
    else:
        response.answer.append(dns.rrset.from_text(query.question[0].name, 300, "IN", "A", address))
    return response.to_wire()


def normal(query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
    return [answer_to(query)]


class FakeServer:
    """UDP (and optionally TCP) on SERVER at one port, recording every query."""

    def __init__(self, behaviour: Behaviour, tcp: bool = False) -> None:
        self.behaviour = behaviour
        self.want_tcp = tcp
        self.queries: list[tuple[str, dns.message.Message, tuple[str, int]]] = []
        self.port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    async def start(self) -> FakeServer:
        loop = asyncio.get_running_loop()
        for _ in range(20):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _Protocol(self), local_addr=(SERVER, 0)
            )
            port = udp.get_extra_info("sockname")[1]
            if not self.want_tcp:
                self._udp, self.port = udp, port
                return self
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, SERVER, port)
            except OSError:
                udp.close()
                continue
            self._udp, self.port = udp, port
            return self
        raise RuntimeError("no port free for UDP and TCP together")

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()

    def handle(self, wire: bytes, peer: tuple[str, int], proto: str) -> list[bytes]:
        query = dns.message.from_wire(wire)
        self.queries.append((proto, query, peer))
        return self.behaviour(query, wire, proto)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            wire = await reader.readexactly(length)
            for reply in self.handle(wire, writer.get_extra_info("peername"), "tcp"):
                writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        for reply in self.server.handle(data, addr, "udp"):
            self.transport.sendto(reply, addr)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a scenario, never longer than 10 s (a guard against hanging, not a timing test)."""

    async def guarded() -> T:
        return await asyncio.wait_for(coro, 10)

    return asyncio.run(guarded())


async def ask(
    behaviour: Behaviour, tcp: bool = False, timeout: float = 2.0, qname: str = QNAME
) -> tuple[Reply, FakeServer]:
    server = await FakeServer(behaviour, tcp).start()
    try:
        reply = await UpstreamTransport(port=server.port).exchange(
            Query(SERVER, qname, RRType.A, timeout)
        )
    finally:
        server.close()
    return reply, server


def addresses(reply: Reply) -> list[str]:
    return [rr.rdata.to_text() for rr in reply.message.answer]


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Events logged by the transport (with structlog's defaults, whatever ran before)."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    monkeypatch.setattr(transport, "log", structlog.get_logger("resolver.net.transport"))
    try:
        with capture_logs() as entries:
            yield entries
    finally:
        structlog.configure(**saved)


# ---------------------------------------------------------------------- the query


def test_a_plain_exchange() -> None:
    reply, server = run(ask(normal))
    assert addresses(reply) == [ANSWER]
    assert not reply.tcp and reply.message.edns is not None
    assert reply.rtt >= 0
    assert len(server.queries) == 1


def test_query_offers_edns_1232_without_rd() -> None:
    _, server = run(ask(normal))
    (proto, query, _) = server.queries[0]
    assert proto == "udp"
    assert query.edns == 0 and query.payload == EDNS_PAYLOAD == 1232
    assert not query.flags & dns.flags.RD
    assert query.question[0].name.to_text() == QNAME
    assert query.question[0].rdtype == RRType.A


async def queries_to(servers: list[FakeServer], count: int, upstream: UpstreamTransport) -> None:
    """``count`` queries in turn to each of ``servers``, one at a time."""
    for _ in range(count):
        for server in servers:
            await upstream.exchange(Query(SERVER, QNAME, RRType.A, 2.0, port=server.port))


def sequential(count: int, **options: Any) -> FakeServer:
    async def scenario() -> FakeServer:
        server = await FakeServer(normal).start()
        try:
            await queries_to([server], count, UpstreamTransport(**options))
        finally:
            server.close()
        return server

    return run(scenario())


def source_ports(server: FakeServer) -> list[int]:
    return [peer[1] for _, _, peer in server.queries]


def test_every_query_gets_a_fresh_id() -> None:
    server = sequential(8)
    ids = [query.id for _, query, _ in server.queries]
    assert len(ids) == 8
    # random 16-bit values: one collision in eight is already unlikely (p < 0.001)
    assert len(set(ids)) >= 7


def test_with_one_use_every_query_gets_a_fresh_source_port() -> None:
    ports = source_ports(sequential(8, max_uses=1))
    assert len(set(ports)) >= 7
    assert all(port >= 1024 for port in ports)


def test_a_source_port_carries_at_most_max_uses_queries_and_then_changes() -> None:
    ports = source_ports(sequential(64, max_uses=4))
    uses = collections.Counter(ports)
    assert max(uses.values()) <= 4
    assert len(uses) >= 16
    assert all(port >= 1024 for port in ports)
    # Sockets are reused for a random number of queries (1 to 4), not always 4.
    runs = [len(list(group)) for _, group in itertools.groupby(ports)]
    assert len(set(runs)) > 1


def test_a_socket_is_never_used_for_another_server() -> None:
    async def scenario() -> tuple[FakeServer, FakeServer]:
        first, second = await FakeServer(normal).start(), await FakeServer(normal).start()
        try:
            await queries_to([first, second], 32, UpstreamTransport(max_uses=16))
        finally:
            first.close()
            second.close()
        return first, second

    first, second = run(scenario())
    assert len(first.queries) == len(second.queries) == 32
    assert not set(source_ports(first)) & set(source_ports(second))


def test_sockets_past_their_age_are_not_reused_and_idle_ones_are_closed() -> None:
    async def scenario() -> tuple[FakeServer, SocketPool]:
        server = await FakeServer(normal).start()
        upstream = UpstreamTransport(port=server.port, max_uses=1000)
        upstream.sockets.max_age = 0.2
        try:
            await queries_to([server], 4, upstream)
            await asyncio.sleep(0.25)  # every socket is now too old to carry a query
            await queries_to([server], 4, upstream)
            assert upstream.sockets.idle_count == 1
            await asyncio.sleep(0.5)  # the sweep closes idle sockets past their age
        finally:
            server.close()
        return server, upstream.sockets

    server, pool = run(scenario())
    ports = source_ports(server)
    assert len(set(ports[:4])) == 1 and len(set(ports[4:])) == 1  # one socket at a time
    assert ports[0] != ports[4]
    assert pool.idle_count == 0 and pool.opened == 2


def test_a_socket_that_timed_out_is_closed() -> None:
    answered = []

    def every_other(query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
        answered.append(not answered or not answered[-1])
        return [answer_to(query)] if answered[-1] else []

    async def scenario() -> FakeServer:
        server = await FakeServer(every_other).start()
        upstream = UpstreamTransport(port=server.port, max_uses=1000)
        try:
            await upstream.exchange(Query(SERVER, QNAME, RRType.A, 2.0))  # answered
            with pytest.raises(ExchangeFailed):
                await upstream.exchange(Query(SERVER, QNAME, RRType.A, 0.2))  # not answered
            await upstream.exchange(Query(SERVER, QNAME, RRType.A, 2.0))
        finally:
            server.close()
        return server

    ports = source_ports(run(scenario()))
    assert ports[0] == ports[1] != ports[2]


def test_a_late_reply_never_reaches_the_next_query(logs: list[dict[str, Any]]) -> None:
    """A duplicate of the first reply arrives while the socket is idle: dropped unread."""

    def twice(query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
        return [answer_to(query), answer_to(query, "203.0.113.66")]

    async def scenario() -> list[Reply]:
        server = await FakeServer(twice).start()
        upstream = UpstreamTransport(port=server.port, max_uses=1000)
        try:
            first = await upstream.exchange(Query(SERVER, QNAME, RRType.A, 2.0))
            await asyncio.sleep(0.05)
            second = await upstream.exchange(Query(SERVER, QNAME, RRType.A, 2.0))
        finally:
            server.close()
        return [first, second]

    replies = run(scenario())
    assert [addresses(reply) for reply in replies] == [[ANSWER], [ANSWER]]
    assert not [entry for entry in logs if entry["event"] == "reply_ignored"]


def test_random_below_is_in_range_and_covers_it() -> None:
    seen = collections.Counter(random_numbers.below(5) for _ in range(2000))
    assert set(seen) == {0, 1, 2, 3, 4}
    assert min(seen.values()) > 300  # 400 expected each


# ---------------------------------------------------------------------- replies ignored


def test_wrong_id_and_wrong_question_are_ignored_and_logged(
    logs: list[dict[str, Any]],
) -> None:
    def tricky(query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
        wrong_id = dns.message.from_wire(answer_to(query, "203.0.113.66"))
        wrong_id.id = (query.id + 1) & 0xFFFF
        wrong_question = dns.message.make_query("www.evil.example.", "A")
        wrong_question.id = query.id
        wrong_question.flags |= dns.flags.QR
        not_a_response = dns.message.from_wire(answer_to(query, "203.0.113.67"))
        not_a_response.flags &= ~dns.flags.QR
        return [
            wrong_id.to_wire(),
            wrong_question.to_wire(),
            not_a_response.to_wire(),
            b"\x01",  # shorter than a header
            answer_to(query),
        ]

    reply, _ = run(ask(tricky))
    assert addresses(reply) == [ANSWER]
    ignored = [entry for entry in logs if entry["event"] == "reply_ignored"]
    assert [entry["reason"] for entry in ignored] == [
        "wrong id",
        "wrong question",
        "wrong question",
        "wrong id",
    ]
    assert all(entry["server"] == SERVER and entry["log_level"] == "warning" for entry in ignored)


def test_question_name_matches_without_case() -> None:
    def shouting(query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
        response = dns.message.from_wire(answer_to(query))
        response.question[0].name = dns.name.from_text(QNAME.upper())
        return [response.to_wire()]

    import dns.name

    reply, _ = run(ask(shouting))
    assert addresses(reply) == [ANSWER]


def test_reply_from_another_port_is_not_accepted() -> None:
    """The socket is connected: a datagram from another source never reaches the transport."""
    stray = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stray.bind((SERVER, 0))

    def spoofed(query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
        peer = server_peer[0]
        stray.sendto(answer_to(query, "203.0.113.66"), peer)  # right ID, wrong source port
        return [answer_to(query)]

    server_peer: list[tuple[str, int]] = []

    async def scenario() -> Reply:
        server = await FakeServer(spoofed).start()
        original = server.handle

        def remember(wire: bytes, peer: tuple[str, int], proto: str) -> list[bytes]:
            server_peer[:] = [peer]
            return original(wire, peer, proto)

        server.handle = remember  # type: ignore[method-assign]
        try:
            return await UpstreamTransport(port=server.port).exchange(
                Query(SERVER, QNAME, RRType.A, 2)
            )
        finally:
            server.close()

    try:
        reply = run(scenario())
    finally:
        stray.close()
    assert addresses(reply) == [ANSWER]


# ---------------------------------------------------------------------- fallbacks


@pytest.mark.parametrize("rcode", [dns.rcode.FORMERR, dns.rcode.NOTIMP])
def test_formerr_to_edns_is_asked_again_without_edns(rcode: int) -> None:
    def old_server(query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
        if query.edns >= 0:
            response = dns.message.make_response(query)
            response.use_edns(False)
            response.set_rcode(rcode)
            return [response.to_wire()]
        return [answer_to(query)]

    reply, server = run(ask(old_server))
    assert addresses(reply) == [ANSWER]
    assert reply.message.edns is None
    assert [query.edns for _, query, _ in server.queries] == [0, -1]


def test_formerr_with_edns_in_the_reply_is_not_retried() -> None:
    """FORMERR that carries OPT is not about EDNS: it is handed back as it is."""

    def formerr(query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
        response = dns.message.make_response(query)
        response.set_rcode(dns.rcode.FORMERR)
        return [response.to_wire()]

    reply, server = run(ask(formerr))
    assert reply.message.rcode == dns.rcode.FORMERR
    assert len(server.queries) == 1


def test_truncated_reply_is_asked_again_over_tcp() -> None:
    def big(query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
        if proto == "udp":
            return [answer_to(query, tc=True)]
        return [answer_to(query)]

    reply, server = run(ask(big, tcp=True))
    assert reply.tcp and reply.message.edns is not None
    assert addresses(reply) == [ANSWER]
    assert [proto for proto, _, _ in server.queries] == ["udp", "tcp"]
    assert server.queries[1][1].edns == 0


def test_tcp_reply_with_the_wrong_question_is_skipped(logs: list[dict[str, Any]]) -> None:
    def big(query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
        if proto == "udp":
            return [answer_to(query, tc=True)]
        wrong = dns.message.make_query("www.evil.example.", "A")
        wrong.id = query.id
        wrong.flags |= dns.flags.QR
        return [wrong.to_wire(), answer_to(query)]

    reply, _ = run(ask(big, tcp=True))
    assert reply.tcp and addresses(reply) == [ANSWER]
    assert [(e["reason"], e["proto"]) for e in logs if e["event"] == "reply_ignored"] == [
        ("wrong question", "tcp")
    ]


def test_tcp_closed_early_is_an_error() -> None:
    def hang_up(query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
        return [answer_to(query, tc=True)] if proto == "udp" else []

    with pytest.raises(ExchangeFailed) as error:
        run(ask(hang_up, tcp=True))
    assert error.value.failure is Failure.CONNECTION_CLOSED


# ---------------------------------------------------------------------- failures


def test_timeout_raises_transport_error() -> None:
    def silent(query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
        return []

    with pytest.raises(ExchangeFailed) as error:
        run(ask(silent, timeout=0.2))
    assert error.value.failure is Failure.TIMEOUT
    assert error.value.address == SERVER


def test_only_wrong_replies_is_a_timeout(logs: list[dict[str, Any]]) -> None:
    def liar(query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
        response = dns.message.from_wire(answer_to(query))
        response.id = (query.id + 1) & 0xFFFF
        return [response.to_wire()]

    with pytest.raises(ExchangeFailed) as error:
        run(ask(liar, timeout=0.2))
    assert error.value.failure is Failure.TIMEOUT
    assert [e["reason"] for e in logs if e["event"] == "reply_ignored"] == ["wrong id"]


def test_port_unreachable_raises_transport_error() -> None:
    async def scenario() -> Reply:
        # a port that was just free: bind, note it, close
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind((NOBODY, 0))
        port = probe.getsockname()[1]
        probe.close()
        return await UpstreamTransport(port=port).exchange(Query(NOBODY, QNAME, RRType.A, 5.0))

    with pytest.raises(ExchangeFailed) as error:
        run(scenario())
    assert error.value.failure is Failure.UNREACHABLE
    assert str(error.value) == f"unreachable from {NOBODY} (port unreachable)"


def test_malformed_reply_with_the_right_id_is_an_error() -> None:
    def broken(query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
        return [answer_to(query) + b"\x00\x01trailing"]

    with pytest.raises(ExchangeFailed) as error:
        run(ask(broken))
    assert error.value.failure is Failure.MALFORMED
