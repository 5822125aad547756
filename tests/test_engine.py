"""The iteration engine (resolver.iterate.engine).

Part 1 drives the engine with a fake network (canned dnspython-built replies keyed by
(address, qname, qtype)) and a fake clock: no sockets.  Part 2 runs it against the lab
(tests/lab) on loopback; run those inside /work/shared/tools/offline.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from resolver.cache.records import RecordCache, Trust
from resolver.iterate.answer import Answer, FailureKind
from resolver.iterate.engine import IterativeEngine, Limits
from resolver.iterate.hints import load_root_hints, parse_root_hints
from resolver.iterate.servers import UNKNOWN_RTT, ServerSelection
from resolver.lab import CASES, Lab, LabCase
from resolver.net.contract import ExchangeFailed, Failure, Query, Reply
from resolver.net.transport import UpstreamTransport
from resolver.wire import MessageWriter, Rcode, ResourceRecord, RRType
from resolver.wire.names import name_key
from tests.fakes import (
    COM,
    EXAMPLE,
    EXAMPLE2,
    HINTS_TEXT,
    NET,
    ROOT_A,
    ROOT_B,
    FakeClock,
    FakeNetwork,
    Recorder,
    make_engine,
    referral,
    reply,
    resolve,
    soa,
    texts,
    why,
)


def example_world(clock: FakeClock | None = None) -> FakeNetwork:
    """root -> com -> example.com (glue everywhere); www.example.com A 192.0.2.1."""
    net = FakeNetwork(clock)
    for root in (ROOT_A, ROOT_B):
        net.servers[root] = lambda q, t: referral(
            q, RRType.text(t), "com.", [("ns1.nic.com.", COM)]
        )
    net.servers[COM] = lambda q, t: referral(
        q,
        RRType.text(t),
        "example.com.",
        [("ns1.example.com.", EXAMPLE), ("ns2.example.com.", EXAMPLE2)],
    )
    net.answers(EXAMPLE, "www.example.com.", "A", "www.example.com. 300 A 192.0.2.1")
    net.answers(EXAMPLE2, "www.example.com.", "A", "www.example.com. 300 A 192.0.2.1")
    return net


# ---------------------------------------------------------------------- the walk


def test_first_query_of_a_fresh_engine_goes_to_the_first_hint() -> None:
    net = example_world()
    engine, _, _ = make_engine(net)
    resolve(engine, "www.example.com.", "A")
    assert net.log[0] == (ROOT_A, "www.example.com.", RRType.A)

    reversed_hints = parse_root_hints(
        "\n".join(HINTS_TEXT.splitlines()[2:] + HINTS_TEXT.splitlines()[:2])
    )
    net = example_world()
    engine, _, _ = make_engine(net, root_hints=reversed_hints)
    resolve(engine, "www.example.com.", "A")
    assert net.log[0][0] == ROOT_B


def test_referral_with_glue_is_followed_and_glue_used() -> None:
    net = example_world()
    engine, cache, recorder = make_engine(net)
    result = resolve(engine, "www.example.com.", "A")
    assert result.rcode == Rcode.NOERROR
    assert texts(result.answer) == ["www.example.com. 300 A 192.0.2.1"]
    assert [address for address, _, _ in net.log] == [ROOT_A, COM, EXAMPLE]
    assert result.upstream_queries == 3
    assert recorder.named("sublookup") == []
    hops = recorder.named("hop")
    assert [h["outcome"] for h in hops] == ["referral", "referral", "answer"]
    assert hops[1]["referral"] == "example.com."
    assert hops[1]["glue"] == ["ns1.example.com.", "ns2.example.com."]
    # What the walk learned is in the cache, at the trust of where it came from.
    ns = cache.get_rrset("example.com.", RRType.NS)
    assert ns is not None and ns.trust == Trust.REFERRAL
    assert cache.get_rrset("ns1.example.com.", RRType.A) is None  # glue is not the child's
    glue = cache.get_glue("ns1.example.com.", RRType.A)  # but kept as the parent's side
    assert glue is not None and glue.trust == Trust.GLUE
    answer = cache.get_rrset("www.example.com.", RRType.A)
    assert answer is not None and answer.trust == Trust.AUTHORITATIVE


def test_glueless_ns_triggers_a_sublookup() -> None:
    net = FakeNetwork()
    net.servers[ROOT_A] = lambda q, t: (
        referral(q, RRType.text(t), "org.", [("ns1.nic.org.", "127.2.3.1")])
        if name_key(q).endswith("org.")
        else referral(q, RRType.text(t), "net.", [("ns1.nic.net.", NET)])
    )
    net.add(
        "127.2.3.1",
        "www.noglue.org.",
        "A",
        referral("www.noglue.org.", "A", "noglue.org.", [("ns1.provider.net.", None)]),
    )
    net.add(
        NET,
        "ns1.provider.net.",
        "A",
        referral("ns1.provider.net.", "A", "provider.net.", [("ns1.provider.net.", "127.3.5.1")]),
    )
    net.answers("127.3.5.1", "ns1.provider.net.", "A", "ns1.provider.net. 300 A 127.3.5.1")
    net.answers("127.3.5.1", "www.noglue.org.", "A", "www.noglue.org. 300 A 198.51.100.20")
    engine, _, recorder = make_engine(net)
    result = resolve(engine, "www.noglue.org.", "A")
    assert texts(result.answer) == ["www.noglue.org. 300 A 198.51.100.20"]
    assert recorder.named("sublookup") == [
        {
            "depth": 1,
            "qname": "ns1.provider.net.",
            "qtype": "A",
            "zone": "noglue.org.",
            "purpose": "glueless",
        }
    ]
    done = recorder.named("sublookup_done")
    assert done[0]["addresses"] == ["127.3.5.1"] and done[0]["rcode"] == "NOERROR"
    hops = recorder.named("hop")
    assert [h["depth"] for h in hops] == [0, 0, 1, 1, 1, 0]
    assert result.upstream_queries == 6
    # the sub-lookup's hops come between the glueless referral and the final answer
    names = [event for event, _ in recorder.events]
    assert names.index("sublookup") == 2 and names.index("sublookup_done") == 6


def chain_world() -> FakeNetwork:
    """www.chain.com CNAME a.chain.net CNAME b.chain.org A 198.51.100.7, three servers."""
    net = FakeNetwork()
    tld = {"com.": COM, "net.": NET, "org.": "127.2.3.1"}

    def root(q: str, t: int) -> dns.message.Message:
        zone = name_key(q).rsplit(".", 2)[-2] + "."
        return referral(q, RRType.text(t), zone, [(f"ns1.nic.{zone}", tld[zone])])

    net.servers[ROOT_A] = root
    for zone, address, child in (
        ("com.", COM, "127.3.2.1"),
        ("net.", NET, "127.3.3.1"),
        ("org.", "127.2.3.1", "127.3.4.1"),
    ):
        net.servers[address] = lambda q, t, zone=zone, child=child: referral(
            q, RRType.text(t), f"chain.{zone}", [(f"ns1.chain.{zone}", child)]
        )
    net.answers("127.3.2.1", "www.chain.com.", "A", "www.chain.com. 300 CNAME a.chain.net.")
    net.answers("127.3.3.1", "a.chain.net.", "A", "a.chain.net. 300 CNAME b.chain.org.")
    net.answers("127.3.4.1", "b.chain.org.", "A", "b.chain.org. 300 A 198.51.100.7")
    return net


def test_cname_chain_across_zones_is_kept_whole() -> None:
    net = chain_world()
    engine, _, recorder = make_engine(net)
    result = resolve(engine, "www.chain.com.", "A")
    assert result.rcode == Rcode.NOERROR
    assert texts(result.answer) == [
        "www.chain.com. 300 CNAME a.chain.net.",
        "a.chain.net. 300 CNAME b.chain.org.",
        "b.chain.org. 300 A 198.51.100.7",
    ]
    cname_hops = [h for h in recorder.named("hop") if h["outcome"] == "cname"]
    assert [h["target"] for h in cname_hops] == ["a.chain.net.", "b.chain.org."]
    # Asked again: all from the cache, chain intact.
    net.log.clear()
    again = resolve(engine, "www.chain.com.", "A")
    assert net.log == []
    assert texts(again.answer) == texts(result.answer)


def test_nxdomain_and_nodata_carry_the_soa() -> None:
    net = example_world()
    net.add(
        EXAMPLE,
        "nx.example.com.",
        "A",
        reply(
            "nx.example.com.",
            "A",
            rcode=dns.rcode.NXDOMAIN,
            aa=True,
            authority=[soa("example.com.")],
        ),
    )
    net.add(
        EXAMPLE,
        "www.example.com.",
        "MX",
        reply("www.example.com.", "MX", aa=True, authority=[soa("example.com.")]),
    )
    engine, cache, _ = make_engine(net)
    nx = resolve(engine, "nx.example.com.", "A")
    assert nx.rcode == Rcode.NXDOMAIN and nx.answer == []
    assert [rr.rrtype for rr in nx.authority] == [RRType.SOA]
    assert nx.authority[0].name == "example.com."
    nodata = resolve(engine, "www.example.com.", "MX")
    assert nodata.rcode == Rcode.NOERROR and nodata.answer == []
    assert texts(nodata.authority) == [
        "example.com. 300 SOA ns1.example.com. hostmaster.example.com. 1 1800 900 604800 60"
    ]
    negative = cache.get_negative("www.example.com.", RRType.MX)
    assert negative is not None and not negative.nxdomain
    assert cache.get_negative("www.example.com.", RRType.TXT) is None  # NODATA is per type


def test_lame_servers_are_skipped_for_the_next_one() -> None:
    net = example_world()
    net.servers[COM] = lambda q, t: referral(
        q,
        RRType.text(t),
        "example.com.",
        [
            ("ns1.example.com.", "127.3.1.1"),
            ("ns2.example.com.", "127.3.1.2"),
            ("ns3.example.com.", "127.3.1.3"),
        ],
    )
    net.replies.clear()
    net.add(
        "127.3.1.1",
        "www.example.com.",
        "A",
        reply("www.example.com.", "A", rcode=dns.rcode.REFUSED),
    )
    net.add(
        "127.3.1.2",
        "www.example.com.",
        "A",
        reply("www.example.com.", "A", rcode=dns.rcode.SERVFAIL),
    )
    net.answers("127.3.1.3", "www.example.com.", "A", "www.example.com. 300 A 192.0.2.1")
    engine, _, recorder = make_engine(net)
    result = resolve(engine, "www.example.com.", "A")
    assert texts(result.answer) == ["www.example.com. 300 A 192.0.2.1"]
    assert [a for a, _, _ in net.log] == [ROOT_A, COM, "127.3.1.1", "127.3.1.2", "127.3.1.3"]
    lame = [h for h in recorder.named("hop") if h["outcome"] == "lame"]
    assert [(h["address"], h["reason"]) for h in lame] == [
        ("127.3.1.1", "REFUSED"),
        ("127.3.1.2", "SERVFAIL"),
    ]
    # The next question in the zone asks the working server first: the other two are
    # remembered as lame for example.com. (and only for it).
    net.answers("127.3.1.3", "mail.example.com.", "A", "mail.example.com. 300 A 192.0.2.2")
    net.log.clear()
    result = resolve(engine, "mail.example.com.", "A")
    assert texts(result.answer) == ["mail.example.com. 300 A 192.0.2.2"]
    assert [a for a, _, _ in net.log] == ["127.3.1.3"]


@pytest.mark.parametrize(
    ("zone", "why"),
    [
        ("example.com.", "does not get closer"),  # a referral to the zone asked
        ("com.", "does not contain the name"),  # upward
        ("other.com.", "does not contain the name"),  # sideways
    ],
)
def test_a_referral_that_does_not_get_closer_is_lame(zone: str, why: str) -> None:
    net = example_world()
    net.replies.clear()
    net.add(
        EXAMPLE,
        "www.example.com.",
        "A",
        referral("www.example.com.", "A", zone, [("ns1.elsewhere.com.", "127.3.9.9")]),
    )
    net.answers(EXAMPLE2, "www.example.com.", "A", "www.example.com. 300 A 192.0.2.1")
    engine, cache, recorder = make_engine(net)
    result = resolve(engine, "www.example.com.", "A")
    assert texts(result.answer) == ["www.example.com. 300 A 192.0.2.1"]
    lame = [h for h in recorder.named("hop") if h["outcome"] == "lame"]
    assert len(lame) == 1 and lame[0]["address"] == EXAMPLE and why in lame[0]["reason"]
    assert net.count("127.3.9.9") == 0
    assert cache.get_rrset("ns1.elsewhere.com.", RRType.A) is None


def test_out_of_bailiwick_glue_and_answers_are_not_used_or_cached() -> None:
    net = FakeNetwork()
    net.servers[ROOT_A] = lambda q, t: referral(q, RRType.text(t), "com.", [("ns1.nic.com.", COM)])
    # com's referral carries glue for a name server in net (com cannot speak for it)
    # and an unrelated address record.
    net.servers[COM] = lambda q, t: reply(
        q,
        RRType.text(t),
        authority=["example.com. 3600 NS ns1.example.com.", "example.com. 3600 NS ns.evil.net."],
        additional=[
            "ns1.example.com. 3600 A 127.3.1.1",
            "ns.evil.net. 3600 A 127.6.6.6",
            "www.bank.net. 3600 A 127.6.6.7",
        ],
    )
    net.add(
        EXAMPLE,
        "www.example.com.",
        "A",
        reply(
            "www.example.com.",
            "A",
            aa=True,
            answer=["www.example.com. 300 A 192.0.2.1", "www.bank.net. 300 A 127.6.6.8"],
            authority=["net. 300 NS ns.evil.net."],
            additional=["ns.evil.net. 300 A 127.6.6.6"],
        ),
    )
    engine, cache, recorder = make_engine(net)
    result = resolve(engine, "www.example.com.", "A")
    assert texts(result.answer) == ["www.example.com. 300 A 192.0.2.1"]
    hop = recorder.named("hop")[1]
    assert hop["glue"] == ["ns1.example.com."]
    assert net.count("127.6.6.6") == 0
    for name, rrtype in (
        ("ns.evil.net.", RRType.A),
        ("www.bank.net.", RRType.A),
        ("net.", RRType.NS),
    ):
        assert cache.get_rrset(name, rrtype) is None, name
    assert cache.get_glue("ns1.example.com.", RRType.A) is not None  # in-bailiwick glue


def test_a_dead_server_is_avoided_on_the_second_question() -> None:
    net = example_world()
    net.dead.add(EXAMPLE)  # ns1.example.com, listed first
    net.answers(EXAMPLE2, "mail.example.com.", "A", "mail.example.com. 300 A 192.0.2.2")
    engine, _, recorder = make_engine(net)
    first = resolve(engine, "www.example.com.", "A")
    assert first.rcode == Rcode.NOERROR
    assert net.count(EXAMPLE) == 1
    assert [h["outcome"] for h in recorder.named("hop")][2:] == ["timeout", "answer"]
    net.log.clear()
    second = resolve(engine, "mail.example.com.", "A")
    assert texts(second.answer) == ["mail.example.com. 300 A 192.0.2.2"]
    assert net.count(EXAMPLE) == 0
    assert [a for a, _, _ in net.log] == [EXAMPLE2]


def test_every_server_failing_is_servfail_with_a_reason() -> None:
    net = example_world()
    net.dead |= {EXAMPLE, EXAMPLE2}
    engine, _, _ = make_engine(net)
    result = resolve(engine, "www.example.com.", "A")
    assert result.rcode == Rcode.SERVFAIL
    assert "example.com." in why(result)
    # root, com, then each example.com server twice: a timeout gets one more chance.
    assert result.upstream_queries == 6


def test_ds_is_asked_at_the_parent_side_of_the_cut() -> None:
    """RFC 4035 section 3.1.4.1: DS exists only in the parent zone, so com. is asked."""
    net = example_world()
    ds = "example.com. 3600 DS 12345 13 2 " + "ab" * 32
    net.add(COM, "example.com.", "DS", reply("example.com.", "DS", aa=True, answer=[ds]))
    engine, _, _ = make_engine(net)
    resolve(engine, "www.example.com.", "A")  # the example.com. cut is now cached
    net.log.clear()
    result = resolve(engine, "example.com.", "DS")
    assert result.rcode == Rcode.NOERROR and len(result.answer) == 1
    assert [a for a, _, _ in net.log] == [COM]  # not the child's servers


# ---------------------------------------------------------------------- limits


def limit_events(recorder: Recorder) -> list[str]:
    return [fields["limit"] for fields in recorder.named("limit")]


def test_limit_upstream_queries() -> None:
    net = example_world()
    engine, _, recorder = make_engine(net, limits=Limits(max_upstream_queries=2))
    result = resolve(engine, "www.example.com.", "A")
    assert result.rcode == Rcode.SERVFAIL
    assert why(result) == "limit: upstream queries"
    assert len(net.log) == 2 and result.upstream_queries == 2
    assert limit_events(recorder) == ["upstream queries"]


def test_limit_cname_loop() -> None:
    net = example_world()
    net.servers[ROOT_A] = lambda q, t: (
        referral(q, RRType.text(t), "com.", [("ns1.nic.com.", COM)])
        if name_key(q).endswith("com.")
        else referral(q, RRType.text(t), "net.", [("ns1.nic.net.", NET)])
    )
    net.answers(EXAMPLE, "a.example.com.", "A", "a.example.com. 300 CNAME b.loop.net.")
    net.answers(NET, "b.loop.net.", "A", "b.loop.net. 300 CNAME a.example.com.")
    engine, _, recorder = make_engine(net)
    result = resolve(engine, "a.example.com.", "A")
    assert result.rcode == Rcode.SERVFAIL
    assert why(result) == "limit: CNAME loop"
    assert limit_events(recorder) == ["CNAME loop"]
    assert len(net.log) == 5  # root, com, example.com, root, net: then the loop is seen


def test_limit_cname_loop_inside_one_reply() -> None:
    net = example_world()
    net.add(
        EXAMPLE,
        "a.example.com.",
        "A",
        reply(
            "a.example.com.",
            "A",
            aa=True,
            answer=[
                "a.example.com. 300 CNAME b.example.com.",
                "b.example.com. 300 CNAME a.example.com.",
            ],
        ),
    )
    engine, _, _ = make_engine(net)
    result = resolve(engine, "a.example.com.", "A")
    assert result.rcode == Rcode.SERVFAIL
    assert why(result) == "limit: CNAME loop"


def test_limit_cname_chain_length() -> None:
    net = FakeNetwork()

    def root(q: str, t: int) -> dns.message.Message:
        # c0.test. -> c1.test. -> ... (not authoritative: each CNAME is followed)
        n = int(q.split(".")[0][1:])
        return reply(q, RRType.text(t), answer=[f"{q} 300 CNAME c{n + 1}.test."])

    net.servers[ROOT_A] = root
    engine, _, recorder = make_engine(net, limits=Limits(max_cname_chain=3))
    result = resolve(engine, "c0.test.", "A")
    assert result.rcode == Rcode.SERVFAIL
    assert why(result) == "limit: CNAME chain length"
    assert limit_events(recorder) == ["CNAME chain length"]
    assert len(net.log) == 4


def test_limit_referral_depth() -> None:
    net = FakeNetwork()

    def server(q: str, t: int) -> dns.message.Message:
        # every server delegates one label further down, to a server at the next address
        labels = name_key(q).rstrip(".").split(".")
        depth = len(net.log)
        zone = ".".join(labels[-depth:]) + "."
        return referral(q, RRType.text(t), zone, [(f"ns.{zone}", f"127.5.0.{depth}")])

    net.servers[ROOT_A] = server
    for i in range(1, 10):
        net.servers[f"127.5.0.{i}"] = server
    engine, _, recorder = make_engine(net, limits=Limits(max_referrals=3))
    result = resolve(engine, "a.b.c.d.e.f.g.h.", "A")
    assert result.rcode == Rcode.SERVFAIL
    assert why(result) == "limit: referral depth"
    assert limit_events(recorder) == ["referral depth"]
    assert len(net.log) == 3


def glueless_chain_world() -> FakeNetwork:
    """z1.test NS ns.z2.test, z2.test NS ns.z3.test (no glue), z3.test glued."""
    net = FakeNetwork()

    def root(q: str, t: int) -> dns.message.Message:
        zone = ".".join(name_key(q).split(".")[-3:])  # zN.test.
        n = int(zone[1])
        if n == 3:
            return referral(q, RRType.text(t), zone, [("ns.z3.test.", "127.7.0.3")])
        return referral(q, RRType.text(t), zone, [(f"ns.z{n + 1}.test.", None)])

    net.servers[ROOT_A] = root
    net.answers("127.7.0.3", "ns.z3.test.", "A", "ns.z3.test. 300 A 127.7.0.3")
    net.answers("127.7.0.3", "ns.z2.test.", "A", "ns.z2.test. 300 A 127.7.0.3")
    net.answers("127.7.0.3", "www.z1.test.", "A", "www.z1.test. 300 A 192.0.2.5")
    return net


def test_sublookup_depth_within_the_limit_resolves() -> None:
    engine, _, recorder = make_engine(glueless_chain_world(), limits=Limits(max_sublookup_depth=2))
    result = resolve(engine, "www.z1.test.", "A")
    assert texts(result.answer) == ["www.z1.test. 300 A 192.0.2.5"]
    assert [(s["depth"], s["qname"]) for s in recorder.named("sublookup")] == [
        (1, "ns.z2.test."),
        (2, "ns.z3.test."),
    ]


def test_limit_sublookup_depth() -> None:
    net = glueless_chain_world()
    engine, _, recorder = make_engine(net, limits=Limits(max_sublookup_depth=1))
    result = resolve(engine, "www.z1.test.", "A")
    assert result.rcode == Rcode.SERVFAIL
    assert "sub-lookup depth" in why(result)
    limits = recorder.named("limit")
    assert [(f["limit"], f["qname"], f["depth"]) for f in limits] == [
        ("sub-lookup depth", "ns.z3.test.", 2)
    ]
    assert net.count("127.7.0.3") == 0


def test_limit_delegation_loop() -> None:
    net = FakeNetwork()
    net.servers[ROOT_A] = lambda q, t: (
        referral(q, RRType.text(t), "com.", [("ns1.nic.com.", COM)])
        if name_key(q).endswith("com.")
        else referral(q, RRType.text(t), "net.", [("ns1.nic.net.", NET)])
    )
    net.servers[COM] = lambda q, t: referral(
        q, RRType.text(t), "loop1.com.", [("ns.loop2.net.", None)]
    )
    net.servers[NET] = lambda q, t: referral(
        q, RRType.text(t), "loop2.net.", [("ns.loop1.com.", None)]
    )
    engine, _, recorder = make_engine(net)
    result = resolve(engine, "www.loop1.com.", "A")
    assert result.rcode == Rcode.SERVFAIL
    assert "delegation loop" in why(result)
    assert "delegation loop" in limit_events(recorder)
    assert [(s["depth"], s["qname"]) for s in recorder.named("sublookup")] == [
        (1, "ns.loop2.net."),
        (2, "ns.loop1.com."),
    ]
    assert len(net.log) <= 6  # quickly: no query is repeated more than once


def test_limit_time_budget_with_the_fake_clock() -> None:
    clock = FakeClock()
    net = example_world(clock)
    net.rtt = 3.0  # each exchange takes three (fake) seconds
    engine, _, recorder = make_engine(net, limits=Limits(time_budget=5.0), timer=clock)
    result = resolve(engine, "www.example.com.", "A")
    assert result.rcode == Rcode.SERVFAIL
    assert why(result) == "limit: time budget"
    assert limit_events(recorder) == ["time budget"]
    assert len(net.log) == 2


class SilentNetwork(FakeNetwork):
    """Servers that never answer: each exchange takes its whole timeout (real seconds)."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float] = []

    async def exchange(self, query: Query) -> Reply:
        self.log.append((query.address, query.qname, query.qtype))
        self.timeouts.append(query.timeout)
        await asyncio.sleep(query.timeout)
        raise ExchangeFailed(Failure.TIMEOUT, query.address)


def test_the_time_budget_holds_on_the_real_clock_and_cuts_the_last_exchange() -> None:
    """The budget is real time (the fake clock stands still here): SERVFAIL with the time
    budget's kind and limit event once it is spent, the last exchange's timeout cut to
    what was left, and that cut-short exchange not held against its server."""
    net = SilentNetwork()
    engine, _, recorder = make_engine(net, limits=Limits(time_budget=0.5))
    engine.env.selection = ServerSelection(initial_timeout=0.2, clock=FakeClock())
    started = time.monotonic()
    result = resolve(engine, "www.example.com.", "A")
    elapsed = time.monotonic() - started
    assert result.rcode == Rcode.SERVFAIL and why(result) == "limit: time budget"
    assert result.failure is not None and result.failure.kind is FailureKind.TIME_BUDGET
    assert limit_events(recorder) == ["time budget"]
    assert 0.5 <= elapsed < 0.9
    assert [address for address, _, _ in net.log] == [ROOT_A, ROOT_B, ROOT_A]
    assert net.timeouts[:2] == [0.2, 0.2] and 0.05 < net.timeouts[2] < 0.11  # the rest
    # Each root timed out once, as far as server selection knows: the last exchange
    # was cut short by the budget, not held against ROOT_A.
    selection = engine.selection
    assert selection.expected_rtt(ROOT_A) == selection.expected_rtt(ROOT_B) > UNKNOWN_RTT


def test_a_question_waiting_on_a_shared_exchange_keeps_its_own_budget() -> None:
    """A question sharing another's exchange gives up at its own budget, not the other's;
    the other, with time left, gets its answer."""
    net = example_world()
    net.slow[ROOT_A] = 0.6  # the root takes 0.6 s to answer
    engine, _, recorder = make_engine(net, limits=Limits(time_budget=5.0))

    async def main() -> tuple[Answer, Answer, float]:
        patient = asyncio.ensure_future(engine.resolve("www.example.com.", RRType.A))
        await asyncio.sleep(0.05)  # its root exchange is out
        engine.reconfigure(limits=Limits(time_budget=0.2))  # the next question has 0.2 s
        started = time.monotonic()
        hasty = await engine.resolve("www.example.com.", RRType.A)
        elapsed = time.monotonic() - started
        return await patient, hasty, elapsed

    patient, hasty, elapsed = asyncio.run(main())
    assert texts(patient.answer) == ["www.example.com. 300 A 192.0.2.1"]
    assert hasty.rcode == Rcode.SERVFAIL and why(hasty) == "limit: time budget"
    assert 0.2 <= elapsed < 0.5
    assert net.count(ROOT_A) == 1  # shared, not sent twice
    assert limit_events(recorder) == ["time budget"]


# ---------------------------------------------------------------------- the cache


def test_cache_hit_answers_without_exchanges_and_counts_ttl_down() -> None:
    clock = FakeClock()
    net = example_world(clock)
    engine, _, _ = make_engine(net)
    first = resolve(engine, "www.example.com.", "A")
    assert texts(first.answer) == ["www.example.com. 300 A 192.0.2.1"]
    net.log.clear()
    clock.advance(100)
    second = resolve(engine, "www.example.com.", "A")
    assert net.log == [] and second.upstream_queries == 0
    assert texts(second.answer) == ["www.example.com. 200 A 192.0.2.1"]
    clock.advance(200)  # expired: asked again, from the cached cut (com and example.com live)
    third = resolve(engine, "www.example.com.", "A")
    assert texts(third.answer) == ["www.example.com. 300 A 192.0.2.1"]
    assert [a for a, _, _ in net.log] == [EXAMPLE]


def test_answer_ttls_are_held_within_the_cache_bounds() -> None:
    """--max-ttl caps what clients are told, on the first answer as from the cache."""
    clock = FakeClock()
    net = example_world(clock)
    net.answers(EXAMPLE, "long.example.com.", "A", "long.example.com. 604800 A 192.0.2.9")
    engine, _, _ = make_engine(net)
    engine.cache.max_ttl = 3600
    first = resolve(engine, "long.example.com.", "A")
    assert texts(first.answer) == ["long.example.com. 3600 A 192.0.2.9"]
    clock.advance(600)
    assert texts(resolve(engine, "long.example.com.", "A").answer) == [
        "long.example.com. 3000 A 192.0.2.9"
    ]


def test_nxdomain_is_cached_for_every_type_of_the_name() -> None:
    clock = FakeClock()
    net = example_world(clock)
    net.add(
        EXAMPLE,
        "nx.example.com.",
        "A",
        reply(
            "nx.example.com.",
            "A",
            rcode=dns.rcode.NXDOMAIN,
            aa=True,
            authority=[soa("example.com.", ttl=300, minimum=120)],
        ),
    )
    engine, _, _ = make_engine(net)
    assert resolve(engine, "nx.example.com.", "A").rcode == Rcode.NXDOMAIN
    net.log.clear()
    clock.advance(20)
    for qtype in ("AAAA", "MX", "TXT", "A"):
        result = resolve(engine, "NX.example.com.", qtype)
        assert result.rcode == Rcode.NXDOMAIN, qtype
        assert [rr.ttl for rr in result.authority] == [100]  # min(300, 120) - 20
    assert net.log == []


def test_glue_does_not_replace_an_authoritative_answer() -> None:
    net = example_world()
    # com also delegates other.com to ns1.example.com, with (different) glue for it
    net.servers[COM] = lambda q, t: (
        referral(q, RRType.text(t), "other.com.", [("ns1.example.com.", "127.3.1.9")])
        if name_key(q).endswith("other.com.")
        else referral(q, RRType.text(t), "example.com.", [("ns1.example.com.", EXAMPLE)])
    )
    net.answers(EXAMPLE, "ns1.example.com.", "A", "ns1.example.com. 300 A 127.3.1.1")
    for address in ("127.3.1.9", "127.3.1.1"):  # the glue's address and the child's
        net.answers(address, "www.other.com.", "A", "www.other.com. 300 A 192.0.2.9")
    engine, cache, _ = make_engine(net)

    # glue first, then the authoritative answer replaces it
    assert resolve(engine, "ns1.example.com.", "A").rcode == Rcode.NOERROR
    cached = cache.get_rrset("ns1.example.com.", RRType.A)
    assert cached is not None and cached.trust == Trust.AUTHORITATIVE

    # then glue from another referral: used for that delegation, but not cached over it
    result = resolve(engine, "www.other.com.", "A")
    assert texts(result.answer) == ["www.other.com. 300 A 192.0.2.9"]
    assert cache.get_glue("ns1.example.com.", RRType.A) is not None  # kept apart
    cached = cache.get_rrset("ns1.example.com.", RRType.A)
    assert cached is not None and cached.trust == Trust.AUTHORITATIVE
    assert [r.to_text() for r in cached.rdatas] == ["127.3.1.1"]
    net.log.clear()
    again = resolve(engine, "ns1.example.com.", "A")
    assert texts(again.answer) == ["ns1.example.com. 300 A 127.3.1.1"] and net.log == []


def test_referral_data_is_not_an_answer() -> None:
    """NS and glue learned from referrals are not given to clients as answers."""
    net = example_world()
    net.answers(EXAMPLE, "ns1.example.com.", "A", "ns1.example.com. 300 A 127.3.1.1")
    net.answers(EXAMPLE, "example.com.", "NS", "example.com. 300 NS ns1.example.com.")
    engine, _, _ = make_engine(net)
    resolve(engine, "www.example.com.", "A")
    net.log.clear()
    result = resolve(engine, "ns1.example.com.", "A")
    assert net.log == [(EXAMPLE, "ns1.example.com.", RRType.A)]
    assert texts(result.answer) == ["ns1.example.com. 300 A 127.3.1.1"]
    net.log.clear()
    result = resolve(engine, "example.com.", "NS")
    assert net.log == [(EXAMPLE, "example.com.", RRType.NS)]
    assert result.answer[0].ttl == 300


# ====================================================================== part 2: the lab


def our_tuple(rr: ResourceRecord) -> tuple[str, str, str]:
    return (rr.name.lower(), RRType.text(rr.rrtype), rr.rdata.to_text())


def dnspython_text(rr: ResourceRecord) -> str:
    """The rdata of one of our records as dnspython writes it, through the wire form."""
    out = MessageWriter()
    rr.rdata.write(out)
    wire = bytes(out.buf)
    rdata = dns.rdata.from_wire(dns.rdataclass.IN, rr.rrtype, wire, 0, len(wire))
    return rdata.to_text()


def lab_engine(lab: Lab, lab_hints: Any, **kwargs: Any) -> IterativeEngine:
    return IterativeEngine(
        UpstreamTransport(port=lab.port),
        RecordCache(),
        kwargs.pop("root_hints", None) or load_root_hints(lab_hints),
        selection=ServerSelection(initial_timeout=0.5),
        **kwargs,
    )


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_lab_case(case: LabCase, lab: Lab, lab_hints: Any) -> None:
    recorder = Recorder()
    engine = lab_engine(lab, lab_hints, observer=recorder)
    result = asyncio.run(engine.resolve(case.qname, RRType.from_text(case.qtype)))
    assert Rcode.text(result.rcode) == case.rcode, why(result)
    got = frozenset(our_tuple(rr) for rr in result.answer)
    assert got == case.answer
    # our text forms are dnspython's, so the comparison above means what it says
    for rr in result.answer:
        assert rr.rdata.to_text() == dnspython_text(rr)
    if (case.rcode == "NOERROR" and not case.answer) or case.rcode == "NXDOMAIN":
        assert [RRType.text(rr.rrtype) for rr in result.authority] == ["SOA"]
    assert result.upstream_queries == len(recorder.named("hop"))


def test_lab_glue_takes_priming_and_three_minimised_queries(lab: Lab, lab_hints: Any) -> None:
    engine = lab_engine(lab, lab_hints)
    lab.reset_queries()
    result = asyncio.run(engine.resolve("www.example.com.", RRType.A))
    assert result.upstream_queries == 4
    asked = [(q.server, q.qname, q.qtype) for q in lab.queries]
    assert len(asked) == 4
    assert asked[0] == ("127.1.0.1", ".", "NS")  # priming, at the first hint (RFC 8109)
    assert asked[1][0] in ("127.1.0.1", "127.1.0.2") and asked[1][1:] == ("com.", "NS")
    assert asked[2][0] in ("127.2.1.1", "127.2.1.2") and asked[2][1:] == ("example.com.", "NS")
    assert asked[3][0] in ("127.3.1.1", "127.3.1.2")  # example.com, the whole question
    assert asked[3][1:] == ("www.example.com.", "A")


def test_lab_dead_root_hint_avoided_on_the_second_question(lab: Lab, lab_hints: Any) -> None:
    # The lab's hints with the dead c.root-servers.net moved first.
    lines = lab.hints_text().splitlines()
    dead_first = [line for line in lines if "c.root-servers" in line]
    dead_first += [line for line in lines if "c.root-servers" not in line]
    root_hints = parse_root_hints("\n".join(dead_first))
    assert root_hints.servers[0].ipv4 == ["127.1.0.3"]
    recorder = Recorder()
    engine = lab_engine(lab, lab_hints, root_hints=root_hints, observer=recorder)

    def asked_dead() -> list[str]:
        return [h["outcome"] for h in recorder.named("hop") if h["address"] == "127.1.0.3"]

    first = asyncio.run(engine.resolve("www.example.com.", RRType.A))
    assert first.rcode == Rcode.NOERROR
    assert asked_dead() == ["unreachable"]
    recorder.events.clear()
    second = asyncio.run(engine.resolve("www.noglue.org.", RRType.A))  # root asked again
    assert second.rcode == Rcode.NOERROR
    assert asked_dead() == []
    assert recorder.named("hop")[0]["zone"] == "."


def test_lab_loop_stops_by_its_limit(lab: Lab, lab_hints: Any) -> None:
    recorder = Recorder()
    engine = lab_engine(lab, lab_hints, observer=recorder)
    result = asyncio.run(engine.resolve("www.loop1.com.", RRType.A))
    assert result.rcode == Rcode.SERVFAIL
    assert "delegation loop" in why(result)
    assert "delegation loop" in limit_events(recorder)
    assert result.upstream_queries <= 8


def test_lab_poison_is_not_cached(lab: Lab, lab_hints: Any) -> None:
    engine = lab_engine(lab, lab_hints)
    result = asyncio.run(engine.resolve("www.poison.com.", RRType.A))
    assert [our_tuple(rr) for rr in result.answer] == [("www.poison.com.", "A", "203.0.113.40")]
    assert engine.cache.get_rrset("www.example.com.", RRType.A) is None
    assert engine.cache.get_rrset("example.com.", RRType.NS) is None


def test_lab_ttl0_is_not_served_from_the_cache(lab: Lab, lab_hints: Any) -> None:
    engine = lab_engine(lab, lab_hints)
    first = asyncio.run(engine.resolve("ttl0.example.com.", RRType.A))
    assert first.rcode == Rcode.NOERROR
    second = asyncio.run(engine.resolve("ttl0.example.com.", RRType.A))
    assert second.upstream_queries == 1  # example.com's servers asked again
    assert [our_tuple(rr) for rr in second.answer] == [("ttl0.example.com.", "A", "192.0.2.10")]
