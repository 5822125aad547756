"""Serve-stale (resolver/iterate/stale.py, RFC 8767) in the engine, on canned replies."""

from __future__ import annotations

import asyncio

from resolver.iterate.answer import Answer, FailureKind, servfail
from resolver.iterate.engine import IterativeEngine
from resolver.iterate.stale import StalePolicy, StaleState, as_stale, may_replace
from resolver.wire import Rcode, RRType
from tests.fakes import (
    EXAMPLE,
    EXAMPLE2,
    FakeClock,
    FakeNetwork,
    make_engine,
    reply,
    resolve,
    soa,
    texts,
)
from tests.test_engine import example_world

WWW = "www.example.com."
SERVERS = {EXAMPLE, EXAMPLE2}


def stale_engine(
    policy: StalePolicy | None = None,
) -> tuple[IterativeEngine, FakeNetwork, FakeClock]:
    clock = FakeClock()
    net = example_world(clock)
    engine, _, _ = make_engine(net, stale=policy or StalePolicy())
    return engine, net, clock


def test_expired_data_answers_when_every_server_fails() -> None:
    engine, net, clock = stale_engine()
    assert texts(resolve(engine, WWW, "A").answer) == [f"{WWW} 300 A 192.0.2.1"]
    clock.advance(400)  # the A record expired (example.com's NS set, 3600 s, did not)
    net.dead |= SERVERS
    stale = resolve(engine, WWW, "A")
    assert stale.rcode == Rcode.NOERROR and stale.stale
    assert texts(stale.answer) == [f"{WWW} 30 A 192.0.2.1"]  # RFC 8767 section 4: TTL 30
    assert engine.stale is not None and engine.stale.served == 1


def test_after_a_failed_refresh_the_servers_are_left_alone_for_30_seconds() -> None:
    engine, net, clock = stale_engine()
    resolve(engine, WWW, "A")
    clock.advance(400)
    net.dead |= SERVERS
    resolve(engine, WWW, "A")
    net.log.clear()
    clock.advance(20)
    again = resolve(engine, WWW, "A")
    assert again.stale and net.log == []  # no query within the recheck time
    clock.advance(11)
    assert resolve(engine, WWW, "A").stale
    assert {address for address, _, _ in net.log} >= SERVERS  # tried again after 30 s


def test_fresh_data_replaces_stale_data_once_the_servers_answer() -> None:
    engine, net, clock = stale_engine()
    resolve(engine, WWW, "A")
    clock.advance(400)
    net.dead |= SERVERS
    resolve(engine, WWW, "A")
    net.dead.clear()
    net.answers(EXAMPLE, WWW, "A", f"{WWW} 300 A 192.0.2.7")
    clock.advance(31)
    fresh = resolve(engine, WWW, "A")
    assert not fresh.stale and texts(fresh.answer) == [f"{WWW} 300 A 192.0.2.7"]


def test_data_expired_longer_than_the_window_is_gone() -> None:
    engine, net, clock = stale_engine(StalePolicy(window=1000))
    resolve(engine, WWW, "A")
    clock.advance(300 + 1000)
    net.dead |= SERVERS
    assert resolve(engine, WWW, "A").rcode == Rcode.SERVFAIL


def test_without_serve_stale_expired_data_is_never_used() -> None:
    clock = FakeClock()
    net = example_world(clock)
    engine, cache, _ = make_engine(net)
    resolve(engine, WWW, "A")
    clock.advance(400)
    net.dead |= SERVERS
    assert resolve(engine, WWW, "A").rcode == Rcode.SERVFAIL
    assert cache.get_rrset(WWW, RRType.A, stale=True) is None  # dropped when found expired


def test_a_negative_answer_is_served_stale_too() -> None:
    engine, net, clock = stale_engine()
    gone = reply("gone.example.com.", "A", rcode=3, aa=True, authority=[soa("example.com.")])
    net.add(EXAMPLE, "gone.example.com.", "A", gone)
    assert resolve(engine, "gone.example.com.", "A").rcode == Rcode.NXDOMAIN
    clock.advance(100)  # past the SOA minimum (60 s)
    net.dead |= SERVERS
    stale = resolve(engine, "gone.example.com.", "A")
    assert stale.rcode == Rcode.NXDOMAIN and stale.stale
    assert [rr.ttl for rr in stale.authority] == [30]


def test_live_data_is_not_called_stale() -> None:
    engine, net, clock = stale_engine()
    resolve(engine, WWW, "A")
    clock.advance(10)
    net.dead |= SERVERS
    answer = resolve(engine, WWW, "A")
    assert not answer.stale and texts(answer.answer) == [f"{WWW} 290 A 192.0.2.1"]


def test_a_slow_refresh_gives_stale_data_then_refreshes_in_the_background() -> None:
    """RFC 8767 section 5: after the client timeout the client gets stale data; the
    resolution goes on and what it finds is cached for the next client."""
    engine, net, clock = stale_engine(StalePolicy(client_timeout=0.05))
    resolve(engine, WWW, "A")
    clock.advance(400)
    net.answers(EXAMPLE, WWW, "A", f"{WWW} 300 A 192.0.2.9")
    net.slow[EXAMPLE] = 0.3

    async def scenario() -> tuple[Answer, Answer, int]:
        first = await engine.resolve(WWW, RRType.A)
        await asyncio.sleep(0.5)  # the background walk ends
        net.log.clear()
        second = await engine.resolve(WWW, RRType.A)
        return first, second, len(net.log)

    first, second, queries = asyncio.run(scenario())
    assert first.stale and texts(first.answer) == [f"{WWW} 30 A 192.0.2.1"]
    assert not second.stale and queries == 0
    assert texts(second.answer) == [f"{WWW} 300 A 192.0.2.9"]


def test_a_refresh_fetches_the_question_again_though_it_is_cached() -> None:
    clock = FakeClock()
    net = example_world(clock)
    engine, _, _ = make_engine(net)
    resolve(engine, WWW, "A")
    net.log.clear()
    net.answers(EXAMPLE, WWW, "A", f"{WWW} 300 A 192.0.2.8")
    clock.advance(280)
    fresh = asyncio.run(engine.resolve(WWW, RRType.A, refresh=True))
    assert [address for address, _, _ in net.log] == [EXAMPLE]  # the cut came from the cache
    assert texts(fresh.answer) == [f"{WWW} 300 A 192.0.2.8"]
    assert texts(resolve(engine, WWW, "A").answer) == [f"{WWW} 300 A 192.0.2.8"]


def test_only_failures_of_the_servers_may_be_replaced() -> None:
    for kind in FailureKind:
        expected = kind not in (FailureKind.DNSSEC_BOGUS, FailureKind.OVERLOADED)
        assert may_replace(servfail(kind, "why")) is expected, kind
    assert not may_replace(Answer(Rcode.NXDOMAIN, [], []))


def test_stale_copies_have_every_ttl_set() -> None:
    engine, _, _ = stale_engine()
    answer = resolve(engine, WWW, "A")
    copy = as_stale(answer, 30)
    assert copy.stale and copy.from_cache and [rr.ttl for rr in copy.answer] == [30]
    assert [rr.ttl for rr in answer.answer] == [300]  # the original is left alone


def test_the_recheck_table_forgets_after_a_success_and_is_bounded() -> None:
    state = StaleState(StalePolicy(max_failures_kept=2))
    failed = servfail(FailureKind.NO_REACHABLE_AUTHORITY, "down")
    state.note(("a.", 1), failed, 0.0)
    assert state.failed_lately(("a.", 1), 29.0)
    assert not state.failed_lately(("a.", 1), 30.0)
    state.note(("b.", 1), failed, 0.0)
    state.note(("b.", 1), Answer(Rcode.NOERROR, [], []), 1.0)
    assert not state.failed_lately(("b.", 1), 2.0)
    for n in range(5):
        state.note((f"n{n}.", 1), failed, 0.0)
    assert sum(state.failed_lately((f"n{n}.", 1), 1.0) for n in range(5)) == 2
