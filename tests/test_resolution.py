"""The plan of one question (resolver.iterate.resolution) driven without any event loop,
and the engine's driver sharing identical exchanges in flight (resolver.iterate.engine)."""

from __future__ import annotations

import asyncio

from resolver.iterate.plan import Exchange
from resolver.iterate.resolution import Resolution
from resolver.net.contract import ExchangeFailed, Reply
from resolver.wire import Rcode, RRType, parse_message
from resolver.wire.names import name_key
from tests.fakes import (
    COM,
    EXAMPLE,
    EXAMPLE2,
    ROOT_A,
    ROOT_B,
    FakeNetwork,
    make_engine,
    referral,
    texts,
)


def world() -> FakeNetwork:
    net = FakeNetwork()
    for root in (ROOT_A, ROOT_B):
        net.servers[root] = lambda q, t: referral(
            q, RRType.text(t), "com.", [("ns1.nic.com.", COM)]
        )
    net.add(COM, "www.example.com.", "A", referral("www.example.com.", "A", "example.com.",
            [("ns1.example.com.", EXAMPLE), ("ns2.example.com.", EXAMPLE2)]))  # fmt: skip
    net.answers(EXAMPLE, "www.example.com.", "A", "www.example.com. 300 A 192.0.2.1")
    return net


def answer_synchronously(net: FakeNetwork, exchange: Exchange) -> Reply | ExchangeFailed:
    """What FakeNetwork.exchange would return, without a coroutine."""
    net.log.append((exchange.address, exchange.qname, exchange.qtype))
    key = (exchange.address, name_key(exchange.qname), exchange.qtype)
    message = net.replies.get(key) or net.servers[exchange.address](exchange.qname,
                                                                     exchange.qtype)  # fmt: skip
    return Reply(parse_message(message.to_wire()), 0.01, False)


def test_a_resolution_is_driven_by_plain_calls_with_no_event_loop() -> None:
    """next_exchange / take_reply: the walk itself does no I/O and needs no asyncio."""
    net = world()
    engine, _, _ = make_engine(net)
    resolution = Resolution("www.example.com.", RRType.A, engine.env)
    exchanges = []
    exchange = resolution.next_exchange()
    while exchange is not None:
        exchanges.append((exchange.zone, exchange.address, exchange.qname))
        resolution.take_reply(exchange, answer_synchronously(net, exchange))
        exchange = resolution.next_exchange()
    assert resolution.answer is not None and resolution.answer.rcode == Rcode.NOERROR
    assert texts(resolution.answer.answer) == ["www.example.com. 300 A 192.0.2.1"]
    assert exchanges == [
        (".", ROOT_A, "www.example.com."),
        ("com.", COM, "www.example.com."),
        ("example.com.", EXAMPLE, "www.example.com."),
    ]
    assert resolution.answer.upstream_queries == 3 and not resolution.answer.from_cache


def test_the_plan_shows_its_sub_lookups_while_they_run() -> None:
    net = world()
    net.add(COM, "www.example.com.", "A", referral("www.example.com.", "A", "example.com.",
            [("ns.example.org.", None)]))  # fmt: skip
    engine, _, _ = make_engine(net)
    resolution = Resolution("www.example.com.", RRType.A, engine.env)
    depths = []
    exchange = resolution.next_exchange()
    while exchange is not None and len(depths) < 4:
        depths.append([(lookup.name, lookup.purpose.value) for lookup in resolution.plan])
        resolution.take_reply(exchange, answer_synchronously(net, exchange))
        exchange = resolution.next_exchange()
    assert depths[2] == [("www.example.com.", "question"), ("ns.example.org.", "glueless")]


def test_the_same_question_from_two_resolutions_shares_each_exchange() -> None:
    """RFC 5452 section 9.3: identical queries are not outstanding twice at once."""
    net = world()
    engine, _, _ = make_engine(net)
    original = net.exchange

    async def slow_exchange(*args: object, **kwargs: object) -> Reply:
        await asyncio.sleep(0.01)  # on the wire for a while: both questions get there
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    net.exchange = slow_exchange  # type: ignore[method-assign]

    async def main() -> None:
        first = asyncio.ensure_future(engine.resolve("www.example.com.", RRType.A))
        second = asyncio.ensure_future(engine.resolve("www.example.com.", RRType.A))
        answers = await asyncio.gather(first, second)
        assert all(texts(a.answer) == ["www.example.com. 300 A 192.0.2.1"] for a in answers)

    asyncio.run(main())
    assert net.count(ROOT_A) == 1 and net.count(COM) == 1 and net.count(EXAMPLE) == 1


def test_a_shared_exchange_abandoned_by_its_sender_fails_over_for_the_others() -> None:
    """The question that sent an exchange is cancelled while another waits on it: the
    other gets a failure at once (not a hang) and goes on with the next server."""
    net = world()
    engine, _, _ = make_engine(net)
    original = net.exchange

    async def slow_exchange(*args: object, **kwargs: object) -> Reply:
        await asyncio.sleep(0.05)
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    net.exchange = slow_exchange  # type: ignore[method-assign]

    async def main() -> None:
        first = asyncio.ensure_future(engine.resolve("www.example.com.", RRType.A))
        second = asyncio.ensure_future(engine.resolve("www.example.com.", RRType.A))
        await asyncio.sleep(0.01)  # both wait on the first exchange, sent by the first
        first.cancel()
        answer = await asyncio.wait_for(second, 5)
        assert texts(answer.answer) == ["www.example.com. 300 A 192.0.2.1"]
        assert first.cancelled()

    asyncio.run(main())
    # The first exchange never got its reply (its sender was cancelled); the other
    # question went on with the other root at once.
    assert [address for address, _, _ in net.log] == [ROOT_B, COM, EXAMPLE]
