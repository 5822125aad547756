"""The per-zone upstream rate limit (resolver.iterate.zonelimit), Unbound's ``ratelimit``."""

from __future__ import annotations

import dns.message
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolver.iterate.answer import FailureKind
from resolver.iterate.zonelimit import ZoneRateLimit
from resolver.wire import Rcode, RRType
from resolver.wire.names import name_key
from tests.fakes import (
    COM,
    EXAMPLE,
    NET,
    ROOT_A,
    ROOT_B,
    FakeClock,
    FakeNetwork,
    make_engine,
    referral,
    resolve,
    why,
)


def test_queries_up_to_the_limit_are_sent_then_refused() -> None:
    limit = ZoneRateLimit(3, factor=0)
    assert [limit.allows("victim.example.", 100.1) for _ in range(5)] == [
        True, True, True, False, False]  # fmt: skip


def test_the_count_starts_again_each_second() -> None:
    limit = ZoneRateLimit(2, factor=0)
    assert [limit.allows("victim.", 7.0) for _ in range(3)] == [True, True, False]
    assert [limit.allows("victim.", 8.5) for _ in range(3)] == [True, True, False]


def test_one_in_factor_over_the_limit_is_let_through() -> None:
    limit = ZoneRateLimit(1, factor=10)
    allowed = [limit.allows("victim.", 0.0) for _ in range(31)]
    assert allowed[0] and sum(allowed) == 1 + 3  # the first, then the 10th, 20th, 30th over


def test_zones_are_counted_apart_and_without_case() -> None:
    limit = ZoneRateLimit(1, factor=0)
    assert limit.allows("Victim.Example.", 1.0)
    assert not limit.allows("victim.example.", 1.0)  # the same zone (RFC 4343)
    assert limit.allows("other.example.", 1.0)


def test_the_table_is_bounded() -> None:
    limit = ZoneRateLimit(1, factor=0, max_zones=100)
    for index in range(1000):
        limit.allows(f"z{index}.example.", 1.0)
    assert len(limit) <= 100


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        ZoneRateLimit(0)


@given(
    per_second=st.integers(1, 50),
    factor=st.integers(0, 20),
    asks=st.lists(st.floats(0, 5, allow_nan=False), max_size=300),
)
def test_never_more_than_the_limit_and_its_share_in_a_second(
    per_second: int, factor: int, asks: list[float]
) -> None:
    limit = ZoneRateLimit(per_second, factor=factor)
    sent: dict[int, int] = {}
    asked: dict[int, int] = {}
    for now in sorted(asks):
        asked[int(now)] = asked.get(int(now), 0) + 1
        if limit.allows("victim.", now):
            sent[int(now)] = sent.get(int(now), 0) + 1
    for second, count in sent.items():
        over = max(0, asked[second] - per_second)
        assert count == min(asked[second], per_second) + (over // factor if factor else 0)


# ------------------------------------------------------------------ in the engine


def flood_world(clock: FakeClock, count: int) -> FakeNetwork:
    """root -> com -> example.com, and ``count`` names in example.com."""
    net = FakeNetwork(clock)
    for root in (ROOT_A, ROOT_B):
        net.servers[root] = lambda q, t: referral(q, RRType.text(t), "com.",
                                                  [("ns1.nic.com.", COM)])  # fmt: skip
    net.servers[COM] = lambda q, t: referral(q, RRType.text(t), "example.com.",
                                             [("ns1.example.com.", EXAMPLE)])  # fmt: skip
    for index in range(count):
        name = f"n{index}.example.com."
        net.answers(EXAMPLE, name, "A", f"{name} 300 A 192.0.2.1")
    return net


def test_a_zone_over_its_limit_is_not_asked_and_the_question_fails() -> None:
    clock = FakeClock()
    net = flood_world(clock, 6)
    engine, _, recorder = make_engine(net, clock)
    engine.reconfigure(zone_limit=ZoneRateLimit(3, factor=0))
    results = [resolve(engine, f"n{index}.example.com.", "A") for index in range(5)]
    assert [r.rcode for r in results] == [Rcode.NOERROR] * 3 + [Rcode.SERVFAIL] * 2
    assert why(results[3]) == "limit: zone rate limit"
    assert results[3].failure is not None and results[3].failure.kind is FailureKind.LIMIT
    assert net.count(EXAMPLE) == 3  # the fourth and fifth were never sent
    assert any(fields.get("limit") == "zone rate limit" for _, fields in recorder.events)
    assert resolve(engine, "n0.example.com.", "A").rcode == Rcode.NOERROR  # cached: free
    clock.advance(1)
    assert resolve(engine, "n5.example.com.", "A").rcode == Rcode.NOERROR  # a new second


def test_without_a_limit_every_name_is_asked() -> None:
    clock = FakeClock()
    net = flood_world(clock, 6)
    engine, _, _ = make_engine(net, clock)
    assert engine.env.zone_limit is None  # off by default
    results = [resolve(engine, f"n{index}.example.com.", "A") for index in range(6)]
    assert all(r.rcode == Rcode.NOERROR for r in results) and net.count(EXAMPLE) == 6


def test_a_sublookup_over_the_limit_fails_alone_and_the_question_goes_on() -> None:
    """Unbound's ratelimit fails one query, not the client's question: a name server
    whose address lies in a zone over its limit is given up, the next one is used."""
    clock = FakeClock()
    net = FakeNetwork(clock)
    tld = {"com.": COM, "net.": NET, "org.": "127.2.3.1"}

    def root(qname: str, qtype: int) -> dns.message.Message:
        zone = name_key(qname).rsplit(".", 2)[-2] + "."
        return referral(qname, RRType.text(qtype), zone, [(f"ns1.nic.{zone}", tld[zone])])

    net.servers[ROOT_A] = root
    net.add("127.2.3.1", "www.noglue.org.", "A", referral(
        "www.noglue.org.", "A", "noglue.org.", [("ns1.provider.net.", None),
                                                ("ns1.provider.com.", None)]))  # fmt: skip
    for tld_address, ns, address in ((NET, "ns1.provider.net.", "127.3.5.1"),
                                     (COM, "ns1.provider.com.", "127.3.6.1")):  # fmt: skip
        zone = ns.split(".", 1)[1]
        net.add(tld_address, ns, "A", referral(ns, "A", zone, [(ns, address)]))
        net.answers(address, ns, "A", f"{ns} 300 A {address}")
        net.answers(address, "www.noglue.org.", "A", "www.noglue.org. 300 A 198.51.100.20")
    engine, _, recorder = make_engine(net, clock)
    limit = ZoneRateLimit(100, factor=0)
    engine.reconfigure(zone_limit=limit)
    while limit.allows("net.", clock()):  # net.'s servers have had their second already
        pass
    result = resolve(engine, "www.noglue.org.", "A")
    assert result.rcode == Rcode.NOERROR, why(result)
    assert net.count(NET) == 0 and net.count("127.3.6.1") == 2
    assert [e["zone"] for e in recorder.named("limit")] == ["net."]
