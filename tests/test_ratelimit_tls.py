"""``ip-ratelimit`` over DNS over TLS and DNS over HTTPS (issue 25): the attacker is a
real client on a real address, flooding over a connection it opened properly.

In-process listeners (DoT, DoH, plain TCP) sharing one service, clients on loopback
addresses of their own (127.0.0.1 floods, 127.0.0.2 is its neighbour in the same /24):

- a DoT client flooding a pipeline gets REFUSED with an Extended DNS Error, at once,
  for what is over its rate, and every query is answered (none dropped);
- a DoH client flooding HTTP/2 streams, or an HTTP/1.1 pipeline, gets 429 with
  ``Retry-After: 1`` for what is over its rate, with no DNS work done;
- meanwhile the neighbour is answered, and a second later the flooder is answered
  again on the same connection (its other streams are not starved forever);
- UDP, DoT and DoH from one address share one account; plain TCP is never limited; a
  valid DNS cookie exempts UDP only;
- with ``ip-ratelimit`` off, nothing changes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import h2.config
import h2.connection
import h2.events
import pytest
from tls_fixtures import SERVER_NAME, client_context, make_certificates, scripted_service

import resolver.serve.tcp as tcp_module
from resolver.iterate.request import Transport
from resolver.serve.doh import DohListener
from resolver.serve.dot import DotListener
from resolver.serve.listener import Pending, ResolverService
from resolver.serve.ratelimit import OVER_LIMIT, refused
from resolver.serve.tcp import TcpListener
from resolver.serve.tls import ServerCertificate
from resolver.wire.raw import COOKIE, truncated
from scripts.reliability.common import frame, query
from scripts.reliability.tls_lab import CertificateFiles

RATE = 10  # queries per second per address: a burst of 10, then one every 100 ms
FLOODER, NEIGHBOUR = "127.0.0.1", "127.0.0.2"  # one /24: its limit is 32 times RATE
WAIT = 10.0


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(autouse=True)
def short_idle(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(tcp_module, "TCP_IDLE_TIMEOUT", WAIT)
    yield


class Served:
    """DoT, DoH and plain TCP listeners on 127.0.0.1, one service, in the running loop."""

    def __init__(self, certificates: CertificateFiles, rate: int) -> None:
        self.certificates = certificates
        self.service: ResolverService = scripted_service()
        self.service.ratelimit.configure(rate, "truncate")
        certificate = ServerCertificate(str(certificates.certificate), str(certificates.key))
        self.handlers: dict[str, Any] = {
            "dot": DotListener(self.service, certificate),
            "doh": DohListener(self.service, certificate),
            "tcp": TcpListener(self.service),
        }
        self.servers: list[asyncio.Server] = []
        self.ports: dict[str, int] = {}

    async def start(self) -> None:
        for kind, handler in self.handlers.items():
            server = await asyncio.start_server(handler, "127.0.0.1", 0)
            self.servers.append(server)
            self.ports[kind] = server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        for server in self.servers:
            server.close()

    async def connect(
        self, kind: str, source: str, alpn: list[str] | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        ssl = None
        if kind != "tcp":
            ssl = client_context(self.certificates.ca, alpn or (["dot"] if kind == "dot" else None))
        return await asyncio.open_connection(
            "127.0.0.1",
            self.ports[kind],
            ssl=ssl,
            server_hostname=SERVER_NAME if ssl else None,
            local_addr=(source, 0),
        )


@asynccontextmanager
async def served(certificates: CertificateFiles, rate: int = RATE) -> AsyncIterator[Served]:
    lab = Served(certificates, rate)
    await lab.start()
    try:
        yield lab
    finally:
        lab.stop()


# -- DNS over TLS ----------------------------------------------------------------------


async def dot_replies(reader: asyncio.StreamReader, count: int) -> list[dns.message.Message]:
    replies = []
    async with asyncio.timeout(WAIT):
        for _ in range(count):
            length = int.from_bytes(await reader.readexactly(2), "big")
            replies.append(dns.message.from_wire(await reader.readexactly(length)))
    return replies


async def dot_pipeline(
    lab: Served, source: str, count: int, name: str = "flood.example."
) -> tuple[list[dns.message.Message], float, asyncio.StreamReader, asyncio.StreamWriter]:
    """``count`` queries written at once on one DoT connection from ``source``: the
    replies, the seconds they took, and the connection (still open)."""
    reader, writer = await lab.connect("dot", source)
    started = time.monotonic()
    writer.write(b"".join(frame(query(name, qid=i, edns=True)) for i in range(1, count + 1)))
    replies = await dot_replies(reader, count)
    return replies, time.monotonic() - started, reader, writer


def over_limit_error(reply: dns.message.Message) -> bool:
    """REFUSED with Extended DNS Error 0 (Other) saying it is the rate limit."""
    errors = [o for o in reply.options if o.otype == dns.edns.EDE]
    return (
        reply.rcode() == dns.rcode.REFUSED
        and len(errors) == 1
        and errors[0].code == OVER_LIMIT[0]
        and errors[0].text == OVER_LIMIT[1]
    )


def test_dot_flood_is_refused_at_once_and_the_neighbour_answered(
    certificates: CertificateFiles,
) -> None:
    """200 pipelined queries from one address: its rate's worth answered, every other one
    REFUSED with the EDE at once (none dropped: a pipelining place is never held); the
    neighbour in its /24 is answered meanwhile, and the flooder a second later on the
    same connection; each refusal is counted in queries_ratelimited."""

    async def scenario() -> tuple[list[dns.message.Message], float, Any, Any, int]:
        async with served(certificates) as lab:
            replies, seconds, reader, writer = await dot_pipeline(lab, FLOODER, 200)
            neighbour, _s, _nreader, nwriter = await dot_pipeline(lab, NEIGHBOUR, 1, "n.example.")
            await asyncio.sleep(1.1)
            writer.write(frame(query("again.example.", qid=999, edns=True)))
            again = (await dot_replies(reader, 1))[0]
            for w in (writer, nwriter):
                w.close()
            return replies, seconds, neighbour[0], again, lab.service.stats.ratelimited

    replies, seconds, neighbour, again, ratelimited = asyncio.run(scenario())
    answered = [r for r in replies if r.rcode() == dns.rcode.NOERROR and r.answer]
    limited = [r for r in replies if over_limit_error(r)]
    assert len(answered) + len(limited) == 200
    assert RATE <= len(answered) <= RATE + RATE * seconds + 1, (len(answered), seconds)
    assert seconds < 5.0
    assert {r.id for r in replies} == set(range(1, 201))
    assert all(str(r.question[0].name) == "flood.example." for r in limited)
    assert ratelimited == len(limited)
    assert neighbour.rcode() == dns.rcode.NOERROR and neighbour.answer
    assert again.rcode() == dns.rcode.NOERROR and again.answer and again.id == 999


# -- DNS over HTTPS --------------------------------------------------------------------


class H2:
    """An HTTP/2 client that opens many streams at once, as a flooding client would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.writer.write(self.conn.data_to_send())

    def post(self, name: str) -> int:
        stream_id: int = self.conn.get_next_available_stream_id()
        body = dns.message.make_query(name, "A").to_wire()
        self.conn.send_headers(stream_id, [
            (":method", "POST"), (":path", "/dns-query"), (":scheme", "https"),
            (":authority", SERVER_NAME), ("content-type", "application/dns-message"),
            ("content-length", str(len(body))),
        ])  # fmt: skip
        self.conn.send_data(stream_id, body, end_stream=True)
        self.writer.write(self.conn.data_to_send())
        return stream_id

    async def responses(self, streams: set[int]) -> dict[int, tuple[int, dict[bytes, bytes]]]:
        """The status and headers of each stream's response (waiting for all of them)."""
        got: dict[int, tuple[int, dict[bytes, bytes]]] = {}
        async with asyncio.timeout(WAIT):
            while not streams <= got.keys():
                data = await self.reader.read(65536)
                assert data, "the server closed the connection"
                for event in self.conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        headers = dict(event.headers or [])
                        assert event.stream_id is not None
                        got[event.stream_id] = (int(headers[b":status"]), headers)
                    elif isinstance(event, h2.events.DataReceived):
                        assert event.stream_id is not None
                        self.conn.acknowledge_received_data(
                            event.flow_controlled_length or 0, event.stream_id
                        )
                self.writer.write(self.conn.data_to_send())
        return got


def test_doh_http2_flood_gets_429_and_the_neighbour_is_answered(
    certificates: CertificateFiles,
) -> None:
    """90 streams at once on one HTTP/2 connection: its rate's worth get 200, the rest
    429 with Retry-After: 1 at once, and none of those reached the service (no DNS work);
    the neighbour gets 200 meanwhile, and the flooder's next stream a second later."""

    async def scenario() -> tuple[Any, float, int, int, int, ResolverService]:
        async with served(certificates) as lab:
            client = H2(*await lab.connect("doh", FLOODER, ["h2"]))
            started = time.monotonic()
            streams = {client.post("flood.example.") for _ in range(90)}
            got = await client.responses(streams)
            seconds = time.monotonic() - started
            neighbour = H2(*await lab.connect("doh", NEIGHBOUR, ["h2"]))
            near = (await neighbour.responses({neighbour.post("n.example.")})).popitem()[1][0]
            await asyncio.sleep(1.1)
            again = (await client.responses({client.post("again.example.")})).popitem()[1][0]
            client.writer.close()
            neighbour.writer.close()
            return got, seconds, near, again, lab.service.stats.ratelimited, lab.service

    got, seconds, near, again, ratelimited, service = asyncio.run(scenario())
    statuses = [status for status, _headers in got.values()]
    ok, too_many = statuses.count(200), statuses.count(429)
    assert ok + too_many == 90
    assert RATE <= ok <= RATE + RATE * seconds + 1, (ok, seconds)
    assert seconds < 5.0
    assert all(h[b"retry-after"] == b"1" for s, h in got.values() if s == 429)
    assert ratelimited == too_many == service.stats.https_status[429]
    # No DNS work for a 429: the service answered (and counted) only the 200s, and the two
    # after the flood.
    assert sum(service.stats.queries.values()) == ok + 2
    assert (near, again) == (200, 200)


def test_doh_http11_pipeline_flood_gets_429_and_the_connection_lives(
    certificates: CertificateFiles,
) -> None:
    """40 HTTP/1.1 requests in one write: the first RATE answered, the rest 429 with
    Retry-After: 1, in order, on a connection kept alive; a second later, 200 on it."""

    def request(name: str) -> bytes:
        body = dns.message.make_query(name, "A").to_wire()
        return (
            b"POST /dns-query HTTP/1.1\r\nHost: x\r\nContent-Type: application/dns-message\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )

    async def head(reader: asyncio.StreamReader) -> bytes:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        return head

    async def scenario() -> tuple[list[bytes], float, bytes]:
        async with served(certificates) as lab:
            reader, writer = await lab.connect("doh", FLOODER, ["http/1.1"])
            started = time.monotonic()
            writer.write(b"".join(request(f"h1-{i}.example.") for i in range(40)))
            heads = [await head(reader) for _ in range(40)]
            seconds = time.monotonic() - started
            await asyncio.sleep(1.1)
            writer.write(request("again.example."))
            again = await head(reader)
            writer.close()
            return heads, seconds, again

    heads, seconds, again = asyncio.run(scenario())
    ok = [h for h in heads if h.startswith(b"HTTP/1.1 200 ")]
    too_many = [h for h in heads if h.startswith(b"HTTP/1.1 429 ")]
    assert len(ok) + len(too_many) == 40
    assert RATE <= len(ok) <= RATE + RATE * seconds + 1, (len(ok), seconds)
    assert all(b"\r\nretry-after: 1\r\n" in h.lower() for h in too_many)
    assert again.startswith(b"HTTP/1.1 200 ")


# -- one account, the exemptions, off --------------------------------------------------


def test_udp_dot_and_doh_from_one_address_share_the_account(
    certificates: CertificateFiles,
) -> None:
    """The UDP way in (``take``) spends an address's account, and its next DoT query is
    REFUSED and its next DoH request 429; the other way round, DoT spends it and UDP gets
    TC=1.  Plain TCP from the same address, over its limit, is answered all the same.
    (A rate of 1: once spent, the account stays empty for half a second, far longer than
    a query takes here.)"""
    rate = 1
    packet = query("shared.example.", qid=5)

    def spend(service: ResolverService, client: str) -> int:
        """UDP queries until one is limited: how many were answered."""
        for answered in range(4 * rate):
            if is_limited(service.take(packet, client, Transport.UDP)):
                return answered
        raise AssertionError("never limited")

    async def scenario() -> dict[str, Any]:
        async with served(certificates, rate) as lab:
            service = lab.service
            seen: dict[str, Any] = {}
            dot_reader, dot_writer = await lab.connect("dot", FLOODER)
            h2c = H2(*await lab.connect("doh", FLOODER, ["h2"]))
            tcp_reader, tcp_writer = await lab.connect("tcp", FLOODER)
            seen["udp answered"] = spend(service, FLOODER)
            dot_writer.write(frame(query("shared.example.", qid=6, edns=True)))
            seen["dot"] = (await dot_replies(dot_reader, 1))[0]
            spend(service, FLOODER)
            seen["doh"] = (await h2c.responses({h2c.post("shared.example.")})).popitem()[1][0]
            spend(service, FLOODER)
            tcp_writer.write(b"".join(frame(query("tcp.example.", qid=i)) for i in range(50)))
            seen["tcp"] = await dot_replies(tcp_reader, 50)
            # The other way: DoT spends NEIGHBOUR's account, then its UDP is truncated.
            seen["dot first"], _s, _r, writer = await dot_pipeline(lab, NEIGHBOUR, rate)
            seen["udp after"] = service.take(packet, NEIGHBOUR, Transport.UDP)
            for w in (dot_writer, tcp_writer, writer, h2c.writer):
                w.close()
            return seen

    seen = asyncio.run(scenario())
    assert seen["udp answered"] == rate
    assert over_limit_error(seen["dot"])
    assert seen["doh"] == 429
    assert all(r.rcode() == dns.rcode.NOERROR and r.answer for r in seen["tcp"])
    assert all(r.rcode() == dns.rcode.NOERROR for r in seen["dot first"])
    after = seen["udp after"]
    assert isinstance(after, bytes) and dns.message.from_wire(after).flags & dns.flags.TC


def test_a_valid_cookie_exempts_udp_only() -> None:
    """A client that got our Server Cookie is exempt over UDP (it proved its address), not
    over DoT: on a connection a cookie would be a way around the limit and nothing else."""
    service = scripted_service()
    service.ratelimit.configure(1, "truncate")
    client_cookie = bytes(range(8))
    first = query_with_cookie(client_cookie)
    pending = service.take(first, "192.0.2.7", Transport.UDP)
    assert isinstance(pending, Pending) and pending.options  # the burst: one, with our cookie
    cookie = pending.options[4:]  # the COOKIE option's value: client and server cookies
    assert pending.options[:2] == COOKIE.to_bytes(2, "big") and cookie[:8] == client_cookie
    valid = query_with_cookie(cookie)
    for _ in range(5):  # over the limit of 1, and never limited
        assert not is_limited(service.take(valid, "192.0.2.7", Transport.UDP))
    for _ in range(2):
        assert is_limited(service.take(valid, "192.0.2.7", Transport.TLS))
    assert service.stats.ratelimited == 2


def query_with_cookie(value: bytes) -> bytes:
    message = dns.message.make_query(
        "cookie.example.", "A", use_edns=0, options=[dns.edns.GenericOption(COOKIE, value)]
    )
    message.id = 3
    return message.to_wire()


def is_limited(outcome: object) -> bool:
    """A refusal of the rate limit: TC=1 or REFUSED with its EDE (or a UDP drop)."""
    if outcome is None:
        return True
    if not isinstance(outcome, bytes):
        return False
    reply = dns.message.from_wire(outcome)
    return bool(reply.flags & dns.flags.TC) or over_limit_error(reply)


def test_off_changes_nothing(certificates: CertificateFiles) -> None:
    """ip-ratelimit 0: the same floods are all answered, nothing counted."""

    async def scenario() -> tuple[list[dns.message.Message], list[int], int]:
        async with served(certificates, rate=0) as lab:
            replies, _s, _r, writer = await dot_pipeline(lab, FLOODER, 200)
            writer.close()
            client = H2(*await lab.connect("doh", FLOODER, ["h2"]))
            got = await client.responses({client.post("flood.example.") for _ in range(90)})
            client.writer.close()
            return replies, [s for s, _h in got.values()], lab.service.stats.ratelimited

    replies, statuses, ratelimited = asyncio.run(scenario())
    assert all(r.rcode() == dns.rcode.NOERROR and r.answer for r in replies)
    assert statuses == [200] * 90
    assert ratelimited == 0


# -- the refusal itself ----------------------------------------------------------------


def test_refused_is_the_question_and_the_extended_error() -> None:
    """Made from the query's bytes: REFUSED, the question, RD and CD as asked, the EDE
    only if the query had EDNS (RFC 8914 section 3), a bare header if the question
    cannot be read."""
    with_edns = dns.message.make_query("a.example.", "AAAA", use_edns=0)
    with_edns.flags |= dns.flags.CD
    with_edns.id = 77
    reply = dns.message.from_wire(refused(with_edns.to_wire()))
    assert reply.id == 77 and reply.flags & dns.flags.QR and reply.flags & dns.flags.CD
    assert reply.flags & dns.flags.RD and not reply.flags & dns.flags.TC
    assert over_limit_error(reply)
    assert [str(q.name) for q in reply.question] == ["a.example."]
    plain = dns.message.from_wire(refused(query("b.example.", qid=8)))
    assert plain.rcode() == dns.rcode.REFUSED and plain.edns < 0 and not plain.options
    garbage = query("c.example.", qid=9)[:14]  # a header, and a question cut short
    assert truncated(garbage) is None
    bare = refused(garbage)
    assert len(bare) == 12 and bare[:2] == b"\x00\x09" and bare[3] & 0xF == dns.rcode.REFUSED
