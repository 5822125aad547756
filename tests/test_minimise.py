"""QNAME minimisation (resolver.iterate.minimise, RFC 9156) on canned replies: what each
server is asked, the empty non-terminal, the fallbacks for broken servers, the bound on
extra questions for names with many labels, DS at the parent."""

from __future__ import annotations

import dns.rcode

from resolver.iterate.limits import Limits
from resolver.iterate.minimise import Minimiser
from resolver.iterate.zonecut import CutSource, ZoneCut
from resolver.wire import Rcode, RRType
from tests.fakes import (
    COM,
    EXAMPLE,
    ROOT_A,
    ROOT_B,
    FakeNetwork,
    make_engine,
    referral,
    reply,
    resolve,
    soa,
    texts,
    why,
)


def asked(net: FakeNetwork) -> list[tuple[str, str, str]]:
    return [(address, name, RRType.text(rrtype)) for address, name, rrtype in net.log]


def world() -> FakeNetwork:
    """root -> com -> example.com; a.b.example.com A, b.example.com an empty non-terminal."""
    net = FakeNetwork()
    for root in (ROOT_A, ROOT_B):
        net.add(root, "com.", "NS", referral("com.", "NS", "com.", [("ns1.nic.com.", COM)]))
    delegation = referral("example.com.", "NS", "example.com.", [("ns1.example.com.", EXAMPLE)])
    net.add(COM, "example.com.", "NS", delegation)
    net.add(EXAMPLE, "b.example.com.", "NS",
            reply("b.example.com.", "NS", aa=True, authority=[soa("example.com.")]))  # fmt: skip
    net.answers(EXAMPLE, "a.b.example.com.", "A", "a.b.example.com. 300 A 192.0.2.1")
    return net


def test_each_server_sees_only_the_next_label() -> None:
    net = world()
    engine, _, _ = make_engine(net, qname_minimisation=True)
    result = resolve(engine, "a.b.example.com.", "A")
    assert texts(result.answer) == ["a.b.example.com. 300 A 192.0.2.1"], why(result)
    assert asked(net) == [
        (ROOT_A, "com.", "NS"),
        (COM, "example.com.", "NS"),
        (EXAMPLE, "b.example.com.", "NS"),  # NODATA: it exists, and is no zone cut
        (EXAMPLE, "a.b.example.com.", "A"),  # the whole question, at last
    ]


def test_without_minimisation_every_server_gets_the_whole_name() -> None:
    net = FakeNetwork()
    net.servers[ROOT_A] = lambda q, t: referral(q, RRType.text(t), "com.", [("ns1.nic.com.", COM)])
    net.servers[COM] = lambda q, t: referral(q, RRType.text(t), "example.com.",
                                             [("ns1.example.com.", EXAMPLE)])  # fmt: skip
    net.answers(EXAMPLE, "a.b.example.com.", "A", "a.b.example.com. 300 A 192.0.2.1")
    engine, _, _ = make_engine(net, qname_minimisation=False)
    resolve(engine, "a.b.example.com.", "A")
    assert {name for _, name, _ in asked(net)} == {"a.b.example.com."}


def test_nxdomain_for_an_empty_non_terminal_falls_back_to_the_whole_name() -> None:
    """Broken servers deny empty non-terminals (RFC 9156 section 2.3): ask the whole name."""
    net = world()
    net.add(EXAMPLE, "b.example.com.", "NS", reply("b.example.com.", "NS", aa=True,
            rcode=dns.rcode.NXDOMAIN, authority=[soa("example.com.")]))  # fmt: skip
    engine, _, _ = make_engine(net, qname_minimisation=True)
    result = resolve(engine, "a.b.example.com.", "A")
    assert texts(result.answer) == ["a.b.example.com. 300 A 192.0.2.1"], why(result)
    assert asked(net)[-2:] == [
        (EXAMPLE, "b.example.com.", "NS"),
        (EXAMPLE, "a.b.example.com.", "A"),
    ]


def test_an_error_for_a_minimised_question_falls_back_to_the_whole_name() -> None:
    net = world()
    net.add(EXAMPLE, "b.example.com.", "NS",
            reply("b.example.com.", "NS", rcode=dns.rcode.REFUSED))  # fmt: skip
    engine, _, _ = make_engine(net, qname_minimisation=True)
    result = resolve(engine, "a.b.example.com.", "A")
    assert texts(result.answer) == ["a.b.example.com. 300 A 192.0.2.1"], why(result)


def test_an_authoritative_ns_answer_is_a_zone_cut_on_the_same_servers() -> None:
    net = world()
    net.add(EXAMPLE, "b.example.com.", "NS", reply("b.example.com.", "NS", aa=True,
            answer=["b.example.com. 300 NS ns1.example.com."]))  # fmt: skip
    engine, cache, _ = make_engine(net, qname_minimisation=True)
    resolve(engine, "a.b.example.com.", "A")
    assert cache.get_rrset("b.example.com.", RRType.NS) is not None


def test_a_name_with_many_labels_costs_a_bounded_number_of_questions() -> None:
    labels = [f"l{i}" for i in range(30)]
    name = ".".join(labels) + ".example.com."
    net = world()
    net.servers[EXAMPLE] = lambda q, t: (
        reply(q, "A", aa=True, answer=[f"{q} 300 A 192.0.2.9"])
        if RRType.text(t) == "A"
        else reply(q, RRType.text(t), aa=True, authority=[soa("example.com.")])
    )
    engine, _, _ = make_engine(net, qname_minimisation=True)
    result = resolve(engine, name, "A")
    assert result.rcode == Rcode.NOERROR, why(result)
    minimised = [q for q in asked(net) if q[0] == EXAMPLE and q[2] == "NS"]
    assert len(minimised) <= Limits().max_minimised_queries
    assert asked(net)[-1] == (EXAMPLE, name, "A")


def test_ds_is_asked_of_the_parent_with_minimisation_on() -> None:
    net = world()
    net.answers(COM, "example.com.", "DS", "example.com. 300 DS 12345 8 2 " + "ab" * 32)
    engine, _, _ = make_engine(net, qname_minimisation=True)
    result = resolve(engine, "example.com.", "DS")
    assert result.rcode == Rcode.NOERROR and result.answer, why(result)
    assert asked(net) == [(ROOT_A, "com.", "NS"), (COM, "example.com.", "DS")]


def test_the_minimiser_steps() -> None:
    limits = Limits(max_minimised_queries=6, minimise_one_label=2)
    minimiser = Minimiser(True, limits)
    minimiser.enter(ZoneCut("com.", [], CutSource.CACHE))
    name = "a.b.c.d.e.f.g.h.com."
    questions = []
    while True:
        qname, _, minimised = minimiser.question(name, RRType.A, name)
        questions.append(qname)
        if not minimised:
            break
        minimiser.deepen(qname)
    assert questions[:2] == ["h.com.", "g.h.com."]  # one label at a time, at first
    assert questions[-1] == name
    assert len(questions) <= limits.max_minimised_queries + 1
