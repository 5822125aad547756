"""Off-path forgery against the upstream transport (resolver.net): a fresh port per query,
0x20 case randomisation, DNS cookies towards servers.  Tiny servers of
tests/test_transport.py on loopback; the forgers are the servers' own early replies (the
right address, port and ID, the rest wrong), the strongest an off-path attacker can be.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import socket
from collections.abc import Coroutine
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import pytest

from resolver.net.caps import CaseKeeping, randomise
from resolver.net.contract import ExchangeFailed, Failure, Query, Reply
from resolver.net.cookies import CookieJar
from resolver.net.sockets import REUSE_MAX_USES
from resolver.net.transport import UpstreamTransport
from resolver.wire import RRType
from tests.test_transport import (
    ANSWER,
    QNAME,
    SERVER,
    Behaviour,
    FakeServer,
    addresses,
    answer_to,
    normal,
    run,
    source_ports,
)

COOKIE = 10


async def exchanges(
    behaviour: Behaviour, count: int, timeout: float = 2.0, **options: Any
) -> tuple[list[Reply | ExchangeFailed], FakeServer, UpstreamTransport]:
    """``count`` exchanges in turn with one server; failures are returned, not raised."""
    server = await FakeServer(behaviour).start()
    upstream = UpstreamTransport(port=server.port, **options)
    outcomes: list[Reply | ExchangeFailed] = []
    try:
        for _ in range(count):
            try:
                outcomes.append(await upstream.exchange(Query(SERVER, QNAME, RRType.A, timeout)))
            except ExchangeFailed as failed:
                outcomes.append(failed)
    finally:
        server.close()
    return outcomes, server, upstream


def go(coro: Coroutine[Any, Any, Any]) -> Any:
    return run(coro)


def port_is_open(port: int) -> bool:
    """Whether a UDP socket of ours holds ``port`` (binding it fails while one does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("", port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise
    return False


# ---------------------------------------------------------------------- source ports


def test_every_query_gets_a_socket_and_a_port_of_its_own_by_default() -> None:
    """RFC 5452 section 9.2: 300 queries to one server, 300 sockets; their ports are drawn
    at random from 64,512, so a few may repeat by chance (about 0.7 expected), never
    because a socket was reused."""
    outcomes, server, upstream = go(exchanges(normal, 300, cookies=False))
    assert all(isinstance(o, Reply) for o in outcomes)
    ports = source_ports(server)
    assert upstream.sockets.opened == 300 and len(ports) == 300
    assert len(set(ports)) >= 295
    assert all(port >= 1024 for port in ports)
    # Twice in a row only by chance (a new socket drawing the port just closed: p < 0.5%).
    assert sum(a == b for a, b in itertools.pairwise(ports)) <= 1


def test_port_reuse_is_an_opt_in() -> None:
    outcomes, server, upstream = go(exchanges(normal, 64, max_uses=REUSE_MAX_USES, cookies=False))
    assert all(isinstance(o, Reply) for o in outcomes)
    assert upstream.sockets.opened < 40 and len(set(source_ports(server))) < 40


def test_sad_dns_a_port_found_open_is_closed_before_the_next_query() -> None:
    """SAD DNS infers the open source port of an outstanding query (ICMP rate limits: the
    kernel's), then guesses the ID.  Here the attacker is given the port outright, while
    the query is outstanding: the socket is closed as soon as the reply is in, the next
    query has another port, and replies sent to the old port reach nobody."""
    seen_open: list[bool] = []

    def watched(query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
        return [answer_to(query)]

    async def scenario() -> tuple[list[int], list[bool], int]:
        server = await FakeServer(watched).start()
        original = server.handle

        def record(wire: bytes, peer: tuple[str, int], proto: str) -> list[bytes]:
            seen_open.append(port_is_open(peer[1]))  # found open while the query waits
            return original(wire, peer, proto)

        server.handle = record  # type: ignore[method-assign]
        upstream = UpstreamTransport(port=server.port)
        after: list[bool] = []
        late = 0
        try:
            for _ in range(20):
                await upstream.exchange(Query(SERVER, QNAME, RRType.A, 2.0))
                port = source_ports(server)[-1]
                after.append(port_is_open(port))
                # The attacker's 65,536 IDs arrive now: the port refuses them all.
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as forger:
                    forger.connect(("127.0.0.1", port))
                    forger.send(b"\x00" * 12)
                    await asyncio.sleep(0.01)
                    try:
                        forger.send(b"\x00" * 12)
                    except ConnectionRefusedError:
                        late += 1  # ICMP port unreachable came back for the first one
        finally:
            server.close()
        return source_ports(server), after, late

    ports, after, refused = go(scenario())
    assert all(seen_open) and len(seen_open) == 20  # open while its one query waited
    assert not any(after)  # closed once the reply was in
    assert refused == 20
    assert len(set(ports)) >= 19


def test_a_port_is_open_no_longer_than_its_query_timeout() -> None:
    def silent(query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
        return []

    outcomes, server, _ = go(exchanges(silent, 3, timeout=0.2))
    assert all(isinstance(o, ExchangeFailed) and o.failure is Failure.TIMEOUT for o in outcomes)
    assert not any(port_is_open(port) for port in source_ports(server))
    assert len(set(source_ports(server))) == 3


# ---------------------------------------------------------------------- 0x20


def caps_on() -> CaseKeeping:
    return CaseKeeping(enabled=True)


def test_randomise_keeps_the_letters_and_changes_their_case() -> None:
    name = b"\x03www\x07example\x03com\x00"
    drawn = {randomise(name) for _ in range(50)}
    assert all(d.lower() == name for d in drawn) and len(drawn) > 40
    assert randomise(b"\x0212\x00") == b"\x0212\x00"


def test_with_0x20_the_question_goes_out_in_random_case_and_comes_back_as_asked() -> None:
    def echo(query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
        return [answer_to(query)]  # dnspython copies the question name as received

    outcomes, server, _ = go(exchanges(echo, 8, caps=caps_on()))
    sent = [query.question[0].name.to_text() for _, query, _ in server.queries]
    assert all(name.lower() == QNAME for name in sent) and len(set(sent)) > 4
    for reply in outcomes:
        assert isinstance(reply, Reply) and addresses(reply) == [ANSWER]
        assert reply.message.question[0].name == QNAME  # the case we were asked
        assert reply.message.answer[0].name == QNAME  # compressed against it


def test_0x20_is_off_by_default() -> None:
    _, server, _ = go(exchanges(normal, 4))
    assert {query.question[0].name.to_text() for _, query, _ in server.queries} == {QNAME}


def wrong_case_first(query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
    """A forger that guessed the ID and the port but not the case, then the server."""
    forged = dns.message.from_wire(answer_to(query, "203.0.113.66"))
    forged.question[0].name = dns.name.from_text(QNAME.swapcase())
    forged.answer[0].name = forged.question[0].name
    return [forged.to_wire(), answer_to(query)]


def test_0x20_a_forgery_with_the_right_id_and_port_but_the_wrong_case_is_refused() -> None:
    outcomes, _, upstream = go(exchanges(wrong_case_first, 10, caps=caps_on()))
    assert all(isinstance(o, Reply) and addresses(o) == [ANSWER] for o in outcomes)
    assert upstream.caps.careless == {}  # the server kept case: never a fallback

    # Without 0x20 the same forgery wins: what the attacker gets is the poisoned answer.
    outcomes, _, _ = go(exchanges(wrong_case_first, 1))
    assert addresses(outcomes[0]) == ["203.0.113.66"]


def test_0x20_falls_back_for_a_server_that_does_not_keep_case() -> None:
    """A server that answers in lower case whatever it was asked: the first exchange times
    out (its replies look like forgeries), the server is then asked plainly and answers."""

    def lower(query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
        reply = dns.message.from_wire(answer_to(query))
        reply.question[0].name = dns.name.from_text(QNAME)
        return [reply.to_wire()]

    outcomes, server, upstream = go(exchanges(lower, 3, timeout=0.3, caps=caps_on()))
    assert isinstance(outcomes[0], ExchangeFailed) and outcomes[0].failure is Failure.TIMEOUT
    assert all(isinstance(o, Reply) and addresses(o) == [ANSWER] for o in outcomes[1:])
    assert SERVER in upstream.caps.careless
    assert [q.question[0].name.to_text() for _, q, _ in server.queries][1:] == [QNAME, QNAME]


def test_0x20_exempt_names_go_out_plainly() -> None:
    caps = CaseKeeping(enabled=True, exempt=["example.COM."])
    assert not caps.wanted(SERVER, "www.Example.com.") and not caps.wanted(SERVER, "example.com.")
    assert caps.wanted(SERVER, "www.example.net.") and caps.wanted(SERVER, ".")
    assert not CaseKeeping(enabled=True, exempt=["."]).wanted(SERVER, "a.b.")


# ---------------------------------------------------------------------- cookies


class CookieServer:
    """A server that does DNS cookies (RFC 7873): a Server Cookie of its own for each
    Client Cookie; with ``strict``, BADCOOKIE to a query whose Server Cookie is not its."""

    def __init__(self, strict: bool = False, forge: str = "", forge_from: int = 0) -> None:
        self.strict = strict
        self.forge = forge  # "wrong" (another client cookie) or "none" (no cookie) first
        self.forge_from = forge_from  # the first query (counted from 0) that a forger races
        self.cookies: list[bytes] = []  # the COOKIE option of each query

    def server_cookie(self, client: bytes) -> bytes:
        return bytes(b ^ 0x5A for b in client) + b"SERVERCK"

    def __call__(self, query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
        sent = next((o for o in query.options if o.otype == COOKIE), None)
        value = sent.to_wire() if sent is not None else b""
        self.cookies.append(value)
        client = value[:8]
        response = dns.message.from_wire(answer_to(query))
        mine = client + self.server_cookie(client)
        bad = self.strict and value != mine
        if bad:
            response = dns.message.make_response(query)
        response.use_edns(0, options=[dns.edns.GenericOption(COOKIE, mine)])
        if bad:
            response.set_rcode(dns.rcode.BADCOOKIE)  # extended: after use_edns
        replies = [response.to_wire()]
        if self.forge and len(self.cookies) > self.forge_from:
            forged = dns.message.from_wire(answer_to(query, "203.0.113.66"))
            other = b"\x01" * 8 + self.server_cookie(b"\x01" * 8)
            options = [dns.edns.GenericOption(COOKIE, other)] if self.forge == "wrong" else []
            forged.use_edns(0, options=options)
            replies.insert(0, forged.to_wire())
        return replies


def test_cookies_are_sent_learnt_and_sent_back() -> None:
    behaviour = CookieServer()
    outcomes, _, upstream = go(exchanges(behaviour, 3))
    assert all(isinstance(o, Reply) and addresses(o) == [ANSWER] for o in outcomes)
    first, second, third = behaviour.cookies
    assert len(first) == 8  # the Client Cookie alone
    assert second == third == first + behaviour.server_cookie(first)
    assert first == upstream.cookies.client_cookie(SERVER)


def test_client_cookies_differ_per_server_and_per_process() -> None:
    jar, other = CookieJar(), CookieJar()
    assert jar.client_cookie("127.0.0.1") != jar.client_cookie("127.0.0.2")
    assert jar.client_cookie("127.0.0.1") != other.client_cookie("127.0.0.1")


def test_a_forgery_with_the_wrong_client_cookie_is_refused() -> None:
    outcomes, _, _ = go(exchanges(CookieServer(forge="wrong"), 5))
    assert all(isinstance(o, Reply) and addresses(o) == [ANSWER] for o in outcomes)


def test_a_forgery_without_a_cookie_is_refused_once_the_server_is_known_to_send_them() -> None:
    outcomes, _, _ = go(exchanges(CookieServer(forge="none", forge_from=1), 5))
    assert all(isinstance(o, Reply) and addresses(o) == [ANSWER] for o in outcomes)
    # Before anything is known of the server, the same forgery wins (what cookies cannot
    # do for a first contact: 0x20 and the port still count then).
    outcomes, _, _ = go(exchanges(CookieServer(forge="none"), 1))
    assert addresses(outcomes[0]) == ["203.0.113.66"]


def test_badcookie_is_asked_again_with_the_new_server_cookie() -> None:
    behaviour = CookieServer(strict=True)
    outcomes, server, _ = go(exchanges(behaviour, 2))
    assert all(isinstance(o, Reply) and addresses(o) == [ANSWER] for o in outcomes)
    assert len(server.queries) == 3  # BADCOOKIE once, then every query carries the cookie


def test_a_server_that_stops_sending_cookies_is_asked_without_expecting_them() -> None:
    state = {"cookies": True}

    def flaky(query: dns.message.Message, wire: bytes, proto: str) -> list[bytes]:
        if state["cookies"]:
            return CookieServer()(query, wire, proto)
        return [answer_to(query)]

    async def scenario() -> list[Reply | ExchangeFailed]:
        server = await FakeServer(flaky).start()
        upstream = UpstreamTransport(port=server.port)
        outcomes: list[Reply | ExchangeFailed] = []
        try:
            outcomes.append(await upstream.exchange(Query(SERVER, QNAME, RRType.A, 0.3)))
            state["cookies"] = False  # a new server software behind the address
            for _ in range(2):
                try:
                    outcomes.append(await upstream.exchange(Query(SERVER, QNAME, RRType.A, 0.3)))
                except ExchangeFailed as failed:
                    outcomes.append(failed)
        finally:
            server.close()
        return outcomes

    first, second, third = go(scenario())
    assert isinstance(first, Reply)
    assert isinstance(second, ExchangeFailed) and second.failure is Failure.TIMEOUT
    assert isinstance(third, Reply) and addresses(third) == [ANSWER]


@pytest.mark.parametrize("cookies", [True, False])
def test_a_server_without_cookies_is_answered_as_before(cookies: bool) -> None:
    outcomes, server, _ = go(exchanges(normal, 2, cookies=cookies))
    assert all(isinstance(o, Reply) for o in outcomes)
    has = [any(o.otype == COOKIE for o in q.options) for _, q, _ in server.queries]
    assert has == [cookies, cookies]


# ---------------------------------------------------------------------- the running service


def test_the_running_service_uses_a_port_per_query_and_refuses_a_wrong_case_forgery(
    tmp_path: Any,
) -> None:
    """scripts/reliability/offpath.py, small: 60 names asked of the running resolver, each
    upstream query from its own port; with use-caps-for-id a forger that guessed ID and
    port (the server itself, replying first in the wrong case) gets nothing, without it
    everything (the numbers with Unbound beside ours are in docs/reliability.md)."""
    import os

    from scripts.reliability.common import port_53_problem
    from scripts.reliability.offpath import measure

    problem = port_53_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(problem + " (run the suite with scripts/test.sh)")
        pytest.skip(problem)
    ports = measure("ours", tmp_path, 60, "ports")
    # One query a name (a retry after a timeout on a loaded machine adds one): each query
    # from a port of its own, but for a repeat drawn by chance.
    assert 60 <= ports["upstream_queries"] <= 63
    assert ports["distinct_ports"] >= ports["upstream_queries"] - 1
    caps = measure("ours", tmp_path, 60, "caps", ("--use-caps-for-id",))
    assert caps["forged_answers"] == 0 and caps["answers"] == {"192.0.2.7": 60}
    plain = measure("ours", tmp_path, 20, "caps")
    assert plain["forged_answers"] == 20  # what the attacker gets without 0x20
