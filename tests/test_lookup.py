"""One lookup's walk (resolver.iterate.lookup) on canned replies: priming, the hints as the
last resort, parent-side glue, recursion-lame servers, the NODATA forms, typed failures,
IPv6-only name servers and the addresses never queried.  No sockets: tests/fakes.py."""

from __future__ import annotations

import dns.message
import pytest

from resolver.cache.records import Trust
from resolver.iterate.answer import FailureKind
from resolver.iterate.hints import parse_root_hints
from resolver.iterate.plan import MOVES, ImpossibleStep, Step
from resolver.iterate.resolution import Resolution
from resolver.iterate.zonecut import AddressPolicy
from resolver.net.contract import ExchangeFailed, Failure
from resolver.wire import Rcode, ResourceRecord, RRType
from resolver.wire.rdata import NS
from tests.fakes import (
    COM,
    EXAMPLE,
    EXAMPLE2,
    ROOT_A,
    ROOT_B,
    FakeClock,
    FakeNetwork,
    hints,
    make_engine,
    priming_reply,
    referral,
    reply,
    resolve,
    soa,
    texts,
    why,
)


def example_world(clock: FakeClock | None = None) -> FakeNetwork:
    """root (answers priming) -> com -> example.com, glue everywhere."""
    net = FakeNetwork(clock)
    for root in (ROOT_A, ROOT_B):
        net.add(root, ".", "NS", priming_reply(hints()))
        net.servers[root] = lambda q, t: referral(
            q, RRType.text(t), "com.", [("ns1.nic.com.", COM)]
        )
    net.servers[COM] = lambda q, t: referral(
        q,
        RRType.text(t),
        "example.com.",
        [("ns1.example.com.", EXAMPLE), ("ns2.example.com.", EXAMPLE2)],
    )
    for server in (EXAMPLE, EXAMPLE2):
        net.answers(server, "www.example.com.", "A", "www.example.com. 300 A 192.0.2.1")
    return net


# ---------------------------------------------------------------- priming (RFC 8109)


def test_a_fresh_engine_primes_the_root_first_and_once() -> None:
    net = example_world()
    engine, cache, recorder = make_engine(net, primed=False)
    assert texts(resolve(engine, "www.example.com.", "A").answer) == [
        "www.example.com. 300 A 192.0.2.1"
    ]
    assert net.log[0] == (ROOT_A, ".", RRType.NS)
    root_ns = cache.get_rrset(".", RRType.NS)
    assert root_ns is not None and root_ns.trust == Trust.AUTHORITATIVE
    # the root servers' addresses came from the priming reply's additional section
    assert cache.get_glue("a.root-servers.net.", RRType.A) is not None
    assert [e["purpose"] for e in recorder.named("sublookup")] == ["priming"]
    net.log.clear()
    net.answers(EXAMPLE, "mail.example.com.", "A", "mail.example.com. 300 A 192.0.2.2")
    net.answers(EXAMPLE2, "mail.example.com.", "A", "mail.example.com. 300 A 192.0.2.2")
    resolve(engine, "mail.example.com.", "A")
    assert (ROOT_A, ".", RRType.NS) not in net.log and (ROOT_B, ".", RRType.NS) not in net.log


def test_the_root_is_primed_again_once_its_ns_set_expires() -> None:
    clock = FakeClock()
    net = example_world(clock)
    engine, _, _ = make_engine(net, clock, primed=False)
    resolve(engine, "www.example.com.", "A")
    clock.advance(518400 + 1)
    net.log.clear()
    resolve(engine, "www.example.com.", "A")
    assert net.log[0] == (ROOT_A, ".", RRType.NS)


def test_asking_for_the_root_ns_first_does_not_break_later_questions() -> None:
    """The severe bug: `dig NS .` on an empty cache left a root NS set without addresses
    in the cache, and every later question failed until it expired."""
    net = example_world()
    # a root that gives its NS set without any address (as many do for `. NS` over UDP)
    bare = reply(".", "NS", aa=True, answer=[". 518400 NS a.root-servers.net.",
                                             ". 518400 NS b.root-servers.net."])  # fmt: skip
    for root in (ROOT_A, ROOT_B):
        net.add(root, ".", "NS", bare)
    engine, cache, _ = make_engine(net, primed=False)
    first = resolve(engine, ".", "NS")
    assert first.rcode == Rcode.NOERROR and len(first.answer) == 2
    assert cache.get_rrset(".", RRType.NS) is not None  # cached, with no address at all
    later = resolve(engine, "www.example.com.", "A")
    assert later.rcode == Rcode.NOERROR, why(later)
    assert texts(later.answer) == ["www.example.com. 300 A 192.0.2.1"]


def test_a_cached_root_ns_set_without_addresses_gives_way_to_the_hints() -> None:
    net = example_world()
    engine, cache, _ = make_engine(net, primed=False)
    cache.store_rrset(
        [ResourceRecord(".", RRType.NS, 1, 86400, NS("x.nowhere.example."))], Trust.AUTHORITATIVE
    )
    result = resolve(engine, "www.example.com.", "A")
    assert result.rcode == Rcode.NOERROR, why(result)


def test_a_failed_priming_still_walks_from_the_hints() -> None:
    net = example_world()
    for root in (ROOT_A, ROOT_B):
        net.add(root, ".", "NS", reply(".", "NS", rcode=dns.rcode.SERVFAIL))
    engine, _, _ = make_engine(net, primed=False)
    result = resolve(engine, "www.example.com.", "A")
    assert result.rcode == Rcode.NOERROR, why(result)
    assert sum(1 for _, name, _ in net.log if name == ".") == 2  # once per root, no more


# ---------------------------------------------------------------- parent-side glue


def test_the_parent_side_address_is_tried_when_the_child_side_one_fails() -> None:
    """Deckard's iter_pcdiff: the child gives its name server another address than the
    parent's glue, and that address does not work."""
    net = FakeNetwork()
    net.servers[ROOT_A] = lambda q, t: referral(q, RRType.text(t), "com.", [("ns1.nic.com.", COM)])
    net.servers[COM] = lambda q, t: referral(q, RRType.text(t), "example.com.",
                                             [("ns.example.com.", EXAMPLE)])  # fmt: skip
    # the child says its server is at EXAMPLE2, which fails; the parent's EXAMPLE works
    net.answers(EXAMPLE, "ns.example.com.", "A", "ns.example.com. 300 A 127.3.1.2")
    net.failing[EXAMPLE2] = Failure.UNREACHABLE
    net.answers(EXAMPLE, "www.example.com.", "A", "www.example.com. 300 A 192.0.2.1")
    engine, cache, _ = make_engine(net)
    assert resolve(engine, "ns.example.com.", "A").rcode == Rcode.NOERROR
    child = cache.get_rrset("ns.example.com.", RRType.A)
    parent = cache.get_glue("ns.example.com.", RRType.A)
    assert child is not None and parent is not None
    assert [r.to_text() for r in child.rdatas] == ["127.3.1.2"]
    assert [r.to_text() for r in parent.rdatas] == [EXAMPLE]
    net.log.clear()
    engine.selection.record_failure(EXAMPLE)  # make the parent's address look worse
    result = resolve(engine, "www.example.com.", "A")
    assert texts(result.answer) == ["www.example.com. 300 A 192.0.2.1"], why(result)
    assert [address for address, _, _ in net.log] == [EXAMPLE2, EXAMPLE]


# ---------------------------------------------------------------- what a reply means


def test_a_recursion_lame_server_is_passed_over_for_an_authoritative_one() -> None:
    net = example_world()
    net.add(EXAMPLE, "www.example.com.", "A", reply("www.example.com.", "A", ra=True,
            answer=["www.example.com. 300 A 203.0.113.66"]))  # fmt: skip
    engine, _, recorder = make_engine(net)
    engine.selection.record_success(EXAMPLE, 0.001)  # asked first
    result = resolve(engine, "www.example.com.", "A")
    assert texts(result.answer) == ["www.example.com. 300 A 192.0.2.1"]
    lame = [hop for hop in recorder.named("hop") if hop["outcome"] == "lame"]
    assert lame and "recursion lame" in lame[0]["reason"]


def test_when_every_server_is_recursion_lame_their_answer_is_used() -> None:
    """Deckard's iter_reclame_two: better their data than SERVFAIL (Unbound does so)."""
    net = example_world()
    for server in (EXAMPLE, EXAMPLE2):
        net.add(server, "www.example.com.", "A", reply("www.example.com.", "A", ra=True,
                answer=["www.example.com. 300 A 192.0.2.1"]))  # fmt: skip
    engine, _, _ = make_engine(net)
    result = resolve(engine, "www.example.com.", "A")
    assert texts(result.answer) == ["www.example.com. 300 A 192.0.2.1"], why(result)


def child_behind_its_own_name_world() -> FakeNetwork:
    """example.com.'s two servers: EXAMPLE2 refers ``sub.example.com.`` to
    ``ns1.sub.example.com.`` without glue (the name is inside the zone it serves: nothing
    else can give its address), EXAMPLE serves ``sub.example.com.`` too (REFUSED for the
    parent's own names) and answers for it.  The differential run's hierarchy
    86859854680825 (a lame parent server that serves the child, missing glue)."""
    net = example_world()
    child, child_ns = "127.3.2.1", "ns1.sub.example.com."
    net.servers[EXAMPLE2] = lambda q, t: referral(q, RRType.text(t), "sub.example.com.",
                                                  [(child_ns, None)])  # fmt: skip
    net.servers[EXAMPLE] = lambda q, t: reply(q, RRType.text(t), rcode=dns.rcode.REFUSED)
    for server in (EXAMPLE, child):
        net.answers(server, child_ns, "A", f"{child_ns} 300 A {child}")
        net.answers(server, "txt.sub.example.com.", "TXT", 'txt.sub.example.com. 300 TXT "x"')
    return net


@pytest.mark.parametrize("minimise", [False, True])
def test_a_referral_to_a_zone_whose_servers_cannot_be_found_gives_way_to_other_servers(
    minimise: bool,
) -> None:
    """The first server asked refers to a zone whose only name server has no glue and is
    inside it; the parent's other server serves the child and answers.  The walk goes back
    to it rather than ending (RFC 1034 section 5.3.3 step 4), for the question and for the
    name server's address alike; Unbound's answer here depends on which it asks first."""
    net = child_behind_its_own_name_world()
    engine, _, _ = make_engine(net, qname_minimisation=minimise)
    engine.selection.mark_lame(EXAMPLE, "example.com.")  # it REFUSED a question of the parent
    result = resolve(engine, "txt.sub.example.com.", "TXT")
    assert texts(result.answer) == ['txt.sub.example.com. 300 TXT "x"'], why(result)
    assert net.count(EXAMPLE2) >= 1  # the referral was taken first, then the other server


def test_a_referral_to_a_zone_whose_servers_cannot_be_found_still_fails_when_alone() -> None:
    """Every server of the parent refers to the unusable child: SERVFAIL, each asked a
    bounded number of times (no loop between the referral and its parent)."""
    net = child_behind_its_own_name_world()
    net.servers[EXAMPLE] = net.servers[EXAMPLE2]
    for key in [key for key in net.replies if key[0] == EXAMPLE]:
        del net.replies[key]
    engine, _, _ = make_engine(net)
    result = resolve(engine, "txt.sub.example.com.", "TXT")
    assert result.rcode == Rcode.SERVFAIL
    assert "sub.example.com." in why(result)
    assert net.count(EXAMPLE) + net.count(EXAMPLE2) <= 6


def test_an_empty_authoritative_answer_with_the_zone_ns_is_nodata() -> None:
    """Deckard's iter_pcnamech: NOERROR, AA, no data, only the zone's own NS (no SOA)."""
    net = example_world()
    net.add(EXAMPLE, "www.example.com.", "AAAA", reply("www.example.com.", "AAAA", aa=True,
            authority=["example.com. 300 NS ns1.example.com."]))  # fmt: skip
    engine, _, _ = make_engine(net)
    result = resolve(engine, "www.example.com.", "AAAA")
    assert result.rcode == Rcode.NOERROR and result.answer == [] and result.failure is None
    assert net.count(EXAMPLE2) == 0  # one server's answer was enough


def test_an_answer_of_another_type_only_is_nodata_not_lameness() -> None:
    """Deckard's iter_unexpectedrrtype."""
    net = example_world()
    net.add(EXAMPLE, "www.example.com.", "AAAA", reply("www.example.com.", "AAAA",
            answer=["www.example.com. 0 A 192.0.2.2"]))  # fmt: skip
    engine, _, _ = make_engine(net)
    result = resolve(engine, "www.example.com.", "AAAA")
    assert result.rcode == Rcode.NOERROR and result.answer == [] and result.failure is None


# ---------------------------------------------------------------- failures


def test_every_server_unreachable_is_a_network_error() -> None:
    net = example_world()
    net.failing[EXAMPLE] = net.failing[EXAMPLE2] = Failure.UNREACHABLE
    engine, _, _ = make_engine(net)
    result = resolve(engine, "www.example.com.", "A")
    assert result.rcode == Rcode.SERVFAIL and result.failure is not None
    assert result.failure.kind is FailureKind.NETWORK_ERROR
    assert why(result) == "no server of example.com. answered"


def test_a_timeout_gets_one_more_try_whatever_the_transport() -> None:
    net = example_world()
    net.dead.update({EXAMPLE, EXAMPLE2})
    engine, _, _ = make_engine(net)
    result = resolve(engine, "www.example.com.", "A")
    assert result.failure is not None
    assert result.failure.kind is FailureKind.NO_REACHABLE_AUTHORITY
    assert net.count(EXAMPLE) == net.count(EXAMPLE2) == 2


def test_each_question_to_a_lossy_server_gets_its_retry() -> None:
    """The differential tester's lossy-single-server: the zone's only server loses the
    first datagram of each question; minimised, ``x.www.example.com.`` takes two
    questions to it, each lost once and answered on its retry (RFC 1035 section 4.2.1,
    RFC 1536 section 1: a lost datagram is not a dead server).  Cost: one query more per
    question lost, no more."""
    net = example_world()
    lost: set[tuple[str, int]] = set()
    nxdomain = reply("x.www.example.com.", "A", rcode=Rcode.NXDOMAIN, aa=True,
                     authority=[soa("example.com.")])  # fmt: skip

    def lossy(qname: str, qtype: int) -> dns.message.Message:
        if (qname, qtype) not in lost:
            lost.add((qname, qtype))
            raise ExchangeFailed(Failure.TIMEOUT, EXAMPLE)
        if qname == "www.example.com.":
            return reply(qname, "A", aa=True, answer=["www.example.com. 300 A 192.0.2.1"])
        return nxdomain

    net.servers[EXAMPLE] = lossy
    net.servers[COM] = lambda q, t: referral(q, RRType.text(t), "example.com.",
                                             [("ns1.example.com.", EXAMPLE)])  # fmt: skip
    engine, _, _ = make_engine(net, qname_minimisation=True)
    result = resolve(engine, "x.www.example.com.", "A")
    assert result.rcode == Rcode.NXDOMAIN, why(result)
    assert net.count(EXAMPLE) == 4  # two questions, each twice
    again = resolve(engine, "y.www.example.com.", "A")  # www. known: one question, lost once
    assert again.rcode == Rcode.NXDOMAIN, why(again)


def test_a_lossy_server_keeps_its_retry_when_the_other_server_is_lame() -> None:
    """Seed 3's hierarchy 42018744449162: the lossy server loses the minimised question,
    the zone's other server refuses it (lame), so the whole name is asked next; that
    question is new to the lossy server too and gets its own retry (it was forgotten:
    SERVFAIL "no server of example.com. answered").  Unbound keeps minimising after a
    REFUSED and asks the lossy server again."""
    net = example_world()
    lost: set[tuple[str, int]] = set()

    def lossy(qname: str, qtype: int) -> dns.message.Message:
        if (qname, qtype) not in lost:
            lost.add((qname, qtype))
            raise ExchangeFailed(Failure.TIMEOUT, EXAMPLE)
        return reply(qname, RRType.text(qtype), rcode=Rcode.NXDOMAIN, aa=True,
                     authority=[soa("example.com.")])  # fmt: skip

    net.servers[EXAMPLE] = lossy
    net.servers[EXAMPLE2] = lambda q, t: reply(q, RRType.text(t), rcode=dns.rcode.REFUSED)
    engine, _, _ = make_engine(net, qname_minimisation=True)
    result = resolve(engine, "x.www.example.com.", "A")
    assert result.rcode == Rcode.NXDOMAIN, why(result)
    assert net.count(EXAMPLE) <= 4 and net.count(EXAMPLE2) <= 2


def test_a_dead_server_is_not_asked_more_for_retrying_each_question() -> None:
    net = example_world()
    net.dead.add(EXAMPLE)
    net.servers[COM] = lambda q, t: referral(q, RRType.text(t), "example.com.",
                                             [("ns1.example.com.", EXAMPLE)])  # fmt: skip
    engine, _, _ = make_engine(net, qname_minimisation=True)
    result = resolve(engine, "x.www.example.com.", "A")
    assert result.rcode == Rcode.SERVFAIL
    assert net.count(EXAMPLE) == 2  # the first question and its retry: no answer, no more


# ---------------------------------------------------------------- addresses


def test_an_ipv6_only_name_server_is_found_by_aaaa() -> None:
    """Deckard's iter_pc_aaaa: the name server has no A record, only AAAA."""
    net = FakeNetwork()
    example_net = "127.2.2.1"  # the servers of example.net., where ns.example.net. lives
    net.servers[ROOT_A] = lambda q, t: (
        referral(q, RRType.text(t), "example.net.", [("ns1.example.net.", example_net)])
        if q.endswith("example.net.")
        else referral(q, RRType.text(t), "com.", [("ns1.nic.com.", COM)])
    )
    net.add(COM, "www.example.com.", "A", referral("www.example.com.", "A", "example.com.",
            [("ns.example.net.", None)]))  # fmt: skip
    net.add(example_net, "ns.example.net.", "A",
            reply("ns.example.net.", "A", aa=True, authority=[soa("example.net.")]))  # fmt: skip
    net.answers(example_net, "ns.example.net.", "AAAA", "ns.example.net. 300 AAAA ::1")
    net.answers("::1", "www.example.com.", "A", "www.example.com. 300 A 192.0.2.1")
    engine, _, _ = make_engine(net, addresses=AddressPolicy(ipv4=True, ipv6=True, loopback=True))
    result = resolve(engine, "www.example.com.", "A")
    assert texts(result.answer) == ["www.example.com. 300 A 192.0.2.1"], why(result)
    asked = [(name, RRType.text(rrtype)) for _, name, rrtype in net.log]
    assert asked.index(("ns.example.net.", "A")) < asked.index(("ns.example.net.", "AAAA"))
    assert net.log[-1] == ("::1", "www.example.com.", RRType.A)


def test_without_ipv6_an_ipv6_only_name_server_is_not_looked_up_by_aaaa() -> None:
    policy = AddressPolicy(ipv4=True, ipv6=False, loopback=True)
    assert policy.types == (RRType.A,)
    assert not policy.usable("2001:db8::1") and policy.usable("127.0.0.1")


def test_a_delegation_to_loopback_is_never_queried_outside_a_lab() -> None:
    """Deckard's iter_donotq127 (Unbound's do-not-query-localhost)."""
    net = FakeNetwork()
    outside = "192.0.2.53"  # a root server that is not on loopback: not a lab
    net.servers[outside] = lambda q, t: referral(q, RRType.text(t), "com.",
                                                 [("ns.evil.com.", "127.0.0.1")])  # fmt: skip
    engine, _, _ = make_engine(
        net,
        root_hints=parse_root_hints(f". 3600000 NS a.root.\na.root. 3600000 A {outside}\n"),
        addresses=AddressPolicy(ipv4=True, ipv6=False, loopback=False),
    )
    result = resolve(engine, "www.example.com.", "A")
    assert result.rcode == Rcode.SERVFAIL
    assert all(address == outside for address, _, _ in net.log)


# ---------------------------------------------------------------- the step table


def test_a_move_the_step_table_does_not_allow_raises() -> None:
    """A lookup moves only as plan.MOVES allows (as h11 checks its states): a reply taken
    while no exchange is out, or a move out of DONE, is a bug that raises at once, never a
    walk that goes on from a wrong state."""
    engine, _, _ = make_engine(example_world())
    resolution = Resolution("www.example.com.", RRType.A, engine.env)
    lookup = resolution.plan[0]
    assert lookup.step is Step.CHECK_CACHE
    with pytest.raises(ImpossibleStep):
        lookup._move(Step.WAIT_REPLY)  # nothing was asked
    assert lookup.step is Step.CHECK_CACHE  # refused, not half done
    exchange = resolution.next_exchange()
    assert exchange is not None and lookup.step is Step.WAIT_REPLY
    with pytest.raises(ImpossibleStep):
        lookup._move(Step.JUDGE)  # a reply must come (or fail) first
    lookup.step = Step.DONE
    for step in Step:
        with pytest.raises(ImpossibleStep):
            lookup._move(step)


def test_every_move_of_a_resolution_is_in_the_table() -> None:
    """The table holds the moves the walk makes: a walk with priming, glueless name
    servers, a CNAME and minimisation takes none that is not there (none raises)."""
    assert (Step.WAIT_REPLY, Step.ASK) in MOVES and (Step.DONE, Step.ASK) not in MOVES
    net = example_world()
    engine, _, _ = make_engine(net, primed=False, qname_minimisation=True)
    assert texts(resolve(engine, "www.example.com.", "A").answer) == [
        "www.example.com. 300 A 192.0.2.1"
    ]
