"""Forward and stub zones (resolver.iterate.forwarding) on canned replies."""

from __future__ import annotations

import dns.rcode

from resolver.iterate.answer import FailureKind
from resolver.iterate.forwarding import ConfiguredZone, ConfiguredZones, Server, ZoneKind
from resolver.wire import Rcode, RRType
from tests.fakes import (
    COM,
    EXAMPLE,
    ROOT_A,
    FakeNetwork,
    make_engine,
    referral,
    reply,
    resolve,
    soa,
    texts,
    why,
)

FORWARDER, BACKUP = "127.9.0.1", "127.9.0.2"


def forward(zone: str, *servers: str, fallback: bool = False) -> ConfiguredZones:
    listed = [Server.parse(server) for server in servers]
    return ConfiguredZones([ConfiguredZone(zone, ZoneKind.FORWARD, listed, fallback)])


def test_server_text_takes_an_optional_port() -> None:
    assert Server.parse("192.0.2.1") == Server("192.0.2.1", None)
    assert Server.parse("2001:db8::1@5353") == Server("2001:db8::1", 5353)


def test_a_forward_zone_for_the_root_sends_everything_to_the_forwarder_with_rd() -> None:
    net = FakeNetwork()
    net.add(FORWARDER, "www.example.com.", "A", reply("www.example.com.", "A", ra=True,
            answer=["www.example.com. 300 A 192.0.2.1"]))  # fmt: skip
    engine, _, _ = make_engine(net, zones=forward(".", f"{FORWARDER}@5353"), primed=False)
    result = resolve(engine, "www.example.com.", "A")
    assert texts(result.answer) == ["www.example.com. 300 A 192.0.2.1"], why(result)
    assert net.log == [(FORWARDER, "www.example.com.", RRType.A)]  # no priming, no walk
    assert net.how == [{"port": 5353, "rd": True, "do": False}]


def test_forwarded_negative_answers_and_chains_are_final() -> None:
    net = FakeNetwork()
    net.add(FORWARDER, "nx.example.com.", "A", reply("nx.example.com.", "A", ra=True,
            rcode=dns.rcode.NXDOMAIN, authority=[soa("example.com.")]))  # fmt: skip
    net.add(FORWARDER, "alias.example.com.", "A", reply("alias.example.com.", "A", ra=True,
            answer=["alias.example.com. 300 CNAME www.example.org.",
                    "www.example.org. 300 A 192.0.2.7"]))  # fmt: skip
    net.add(FORWARDER, "empty.example.com.", "AAAA",
            reply("empty.example.com.", "AAAA", ra=True))  # fmt: skip
    engine, _, _ = make_engine(net, zones=forward(".", FORWARDER))
    assert resolve(engine, "nx.example.com.", "A").rcode == Rcode.NXDOMAIN
    chain = resolve(engine, "alias.example.com.", "A")
    assert texts(chain.answer)[-1] == "www.example.org. 300 A 192.0.2.7"
    empty = resolve(engine, "empty.example.com.", "AAAA")
    assert empty.rcode == Rcode.NOERROR and empty.answer == [] and empty.failure is None


def test_a_failing_forwarder_gives_way_to_the_next() -> None:
    net = FakeNetwork()
    net.add(FORWARDER, "www.example.com.", "A",
            reply("www.example.com.", "A", rcode=dns.rcode.SERVFAIL))  # fmt: skip
    net.add(BACKUP, "www.example.com.", "A", reply("www.example.com.", "A", ra=True,
            answer=["www.example.com. 300 A 192.0.2.1"]))  # fmt: skip
    engine, _, _ = make_engine(net, zones=forward(".", FORWARDER, BACKUP))
    result = resolve(engine, "www.example.com.", "A")
    assert texts(result.answer) == ["www.example.com. 300 A 192.0.2.1"], why(result)


def test_without_fallback_failing_forwarders_are_servfail() -> None:
    net = FakeNetwork()
    net.dead.add(FORWARDER)
    engine, _, _ = make_engine(net, zones=forward(".", FORWARDER))
    result = resolve(engine, "www.example.com.", "A")
    assert result.rcode == Rcode.SERVFAIL and result.failure is not None
    assert result.failure.kind is FailureKind.NO_REACHABLE_AUTHORITY
    assert why(result) == "no forwarder of . answered"


def test_with_fallback_failing_forwarders_give_way_to_iteration() -> None:
    net = FakeNetwork()
    net.dead.add(FORWARDER)
    net.servers[ROOT_A] = lambda q, t: referral(q, RRType.text(t), "com.", [("ns1.nic.com.", COM)])
    net.servers[COM] = lambda q, t: referral(q, RRType.text(t), "example.com.",
                                             [("ns1.example.com.", EXAMPLE)])  # fmt: skip
    net.answers(EXAMPLE, "www.example.com.", "A", "www.example.com. 300 A 192.0.2.1")
    engine, _, _ = make_engine(net, zones=forward(".", FORWARDER, fallback=True))
    result = resolve(engine, "www.example.com.", "A")
    assert texts(result.answer) == ["www.example.com. 300 A 192.0.2.1"], why(result)


def test_a_forward_zone_covers_only_the_names_below_it() -> None:
    net = FakeNetwork()
    net.add(FORWARDER, "www.corp.example.", "A", reply("www.corp.example.", "A", ra=True,
            answer=["www.corp.example. 300 A 10.0.0.1"]))  # fmt: skip
    net.servers[ROOT_A] = lambda q, t: referral(q, RRType.text(t), "com.", [("ns1.nic.com.", COM)])
    net.servers[COM] = lambda q, t: referral(q, RRType.text(t), "example.com.",
                                             [("ns1.example.com.", EXAMPLE)])  # fmt: skip
    net.answers(EXAMPLE, "www.example.com.", "A", "www.example.com. 300 A 192.0.2.1")
    engine, _, _ = make_engine(net, zones=forward("corp.example.", FORWARDER))
    assert texts(resolve(engine, "www.corp.example.", "A").answer) == [
        "www.corp.example. 300 A 10.0.0.1"
    ]
    assert texts(resolve(engine, "www.example.com.", "A").answer) == [
        "www.example.com. 300 A 192.0.2.1"
    ]
    assert net.count(FORWARDER) == 1


def test_a_stub_zone_iterates_from_its_listed_servers() -> None:
    net = FakeNetwork()
    stub = "127.9.1.1"
    net.add(stub, "www.private.", "A", referral("www.private.", "A", "www.private.",
            [("ns.www.private.", EXAMPLE)]))  # fmt: skip
    net.answers(EXAMPLE, "www.private.", "A", "www.private. 300 A 10.1.1.1")
    zones = ConfiguredZones([ConfiguredZone("private.", ZoneKind.STUB, [Server(stub)])])
    engine, _, _ = make_engine(net, zones=zones)
    result = resolve(engine, "www.private.", "A")
    assert texts(result.answer) == ["www.private. 300 A 10.1.1.1"], why(result)
    assert net.how[0]["rd"] is False and net.log[0][0] == stub


# ---------------------------------------------------------------------- MaginotDNS
# (Li et al., USENIX Security 2023; BIND's CVE-2021-25220): a resolver that forwards some
# zones and iterates for the rest keeps each source to its own zones.  The same attack
# against the running resolver and Unbound: scripts/reliability/poison.py (maginot).


def iterated(net: FakeNetwork) -> None:
    """The iterated side: com. and example.com. (192.0.2.1 for every name)."""
    net.servers[ROOT_A] = lambda q, t: referral(q, RRType.text(t), "com.", [("ns1.nic.com.", COM)])
    net.servers[COM] = lambda q, t: referral(q, RRType.text(t), "example.com.",
                                             [("ns1.example.com.", EXAMPLE)])  # fmt: skip
    net.servers[EXAMPLE] = lambda q, t: reply(q, RRType.text(t), aa=True,
                                              answer=[f"{q} 300 A 192.0.2.1"])  # fmt: skip


def test_a_forwarder_cannot_plant_records_for_the_zones_the_resolver_iterates() -> None:
    """The forwarder of ``corp.example.`` answers with a CNAME to ``www.example.com.`` and
    the target's address, an NS RRset taking ``example.com.`` over and addresses in
    additional: the target is resolved by iteration, nothing else is kept."""
    net = FakeNetwork()
    iterated(net)
    net.add(FORWARDER, "www.corp.example.", "A", reply(
        "www.corp.example.", "A", ra=True,
        answer=["www.corp.example. 300 CNAME www.example.com.",
                "www.example.com. 86400 A 203.0.113.66"],
        authority=["example.com. 86400 NS ns.attacker.example.",
                   "com. 86400 NS ns.attacker.example."],
        additional=["ns.attacker.example. 86400 A 127.66.0.1",
                    "mail.example.com. 86400 A 203.0.113.66"]))  # fmt: skip
    engine, cache, _ = make_engine(net, zones=forward("corp.example.", FORWARDER))
    result = resolve(engine, "www.corp.example.", "A")
    assert texts(result.answer) == ["www.corp.example. 300 CNAME www.example.com.",
                                    "www.example.com. 300 A 192.0.2.1"], why(result)  # fmt: skip
    assert net.count(EXAMPLE) == 1  # the target asked where it lives
    for name, rrtype in (("mail.example.com.", RRType.A), ("example.com.", RRType.NS),
                         ("ns.attacker.example.", RRType.A), ("com.", RRType.NS)):  # fmt: skip
        cached = cache.get_rrset(name, rrtype)
        assert cached is None or "attacker" not in str(cached.data), (name, cached)
    assert texts(resolve(engine, "mail.example.com.", "A").answer) == [
        "mail.example.com. 300 A 192.0.2.1"
    ]


def test_iteration_cannot_plant_records_for_a_forward_zone_below_it() -> None:
    """The reverse: ``example.com.``'s server (iterated) answers with a CNAME into the
    forward zone ``corp.example.com.`` and an address for it; only the forwarder of that
    zone is believed about it."""
    net = FakeNetwork()
    iterated(net)
    net.add(EXAMPLE, "www.example.com.", "A", reply(
        "www.example.com.", "A", aa=True,
        answer=["www.example.com. 300 CNAME www.corp.example.com.",
                "www.corp.example.com. 86400 A 203.0.113.66"],
        authority=["corp.example.com. 86400 NS ns.attacker.example."]))  # fmt: skip
    net.add(FORWARDER, "www.corp.example.com.", "A", reply("www.corp.example.com.", "A",
            ra=True, answer=["www.corp.example.com. 300 A 10.0.0.1"]))  # fmt: skip
    engine, _, _ = make_engine(net, zones=forward("corp.example.com.", FORWARDER))
    result = resolve(engine, "www.example.com.", "A")
    assert texts(result.answer)[-1] == "www.corp.example.com. 300 A 10.0.0.1", why(result)
    again = resolve(engine, "www.corp.example.com.", "A")
    assert texts(again.answer) == ["www.corp.example.com. 300 A 10.0.0.1"]
    assert net.count(FORWARDER) == 1  # the second from the cache: the forwarder's data


def test_forward_first_still_iterates_into_its_own_zone() -> None:
    """With fallback, a question inside the forward zone is resolved by iteration when
    the forwarders fail: the servers of the zone above are believed about it then."""
    net = FakeNetwork()
    iterated(net)
    net.dead.add(FORWARDER)
    engine, _, _ = make_engine(net, zones=forward("corp.example.com.", FORWARDER,
                                                  fallback=True))  # fmt: skip
    result = resolve(engine, "www.corp.example.com.", "A")
    assert texts(result.answer) == ["www.corp.example.com. 300 A 192.0.2.1"], why(result)
