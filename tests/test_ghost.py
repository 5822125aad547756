"""Ghost and Phoenix domains on canned replies with a clock that moves only when told: a
delegation lives no longer than the parent's NS TTL, whatever its child's servers say
(the child's own NS RRset, sub-delegations, replies that arrive after it expired).

The same attacks against the running resolver and Unbound: tests/test_poison.py and
scripts/reliability/ghost.py.
"""

from __future__ import annotations

import dns.message
import dns.name
import dns.rcode

from resolver.iterate.engine import IterativeEngine
from resolver.wire import Rcode, RRType
from tests.fakes import (
    COM,
    FakeClock,
    FakeNetwork,
    make_engine,
    reply,
    resolve,
    soa,
    texts,
)

CHILD, SUB, SINKHOLE = "127.4.1.1", "127.4.1.2", "127.4.1.3"
PARENT_TTL = 10
DAY = 86400
ROOT_SERVERS = ("127.1.0.1", "127.1.0.2")


class Registry:
    """``com.``'s server: ``ghost.com.`` delegated for PARENT_TTL seconds until removed
    (NXDOMAIN) or moved to a sinkhole."""

    def __init__(self) -> None:
        self.state = "delegated"

    def __call__(self, qname: str, qtype: int) -> dns.message.Message:
        name = dns.name.from_text(qname)
        if not name.is_subdomain(dns.name.from_text("ghost.com.")):
            return reply(qname, RRType.text(qtype), aa=True, authority=[soa("com.")])
        if self.state == "removed":
            return reply(qname, RRType.text(qtype), aa=True, rcode=dns.rcode.NXDOMAIN,
                         authority=[soa("com.")])  # fmt: skip
        server, address = ("ns.sinkhole.com.", SINKHOLE) if self.state == "sinkhole" else (
            "ns.ghost.com.", CHILD)  # fmt: skip
        return reply(qname, RRType.text(qtype), authority=[f"ghost.com. {PARENT_TTL} NS {server}"],
                     additional=[f"{server} {PARENT_TTL} A {address}"])  # fmt: skip


def attacker(qname: str, qtype: int) -> dns.message.Message:
    """The removed zone's server: its NS RRset renamed, for a day, as the answer to NS and
    in the authority section of everything; ``sub.ghost.com.`` delegated for a day."""
    ns = [f"ghost.com. {DAY} NS ns1.ghost.com.", f"ghost.com. {DAY} NS ns.ghost.com."]
    glue = [f"ns1.ghost.com. {DAY} A {CHILD}", f"ns.ghost.com. {DAY} A {CHILD}"]
    text = RRType.text(qtype)
    if dns.name.from_text(qname).is_subdomain(dns.name.from_text("sub.ghost.com.")):
        return reply(qname, text, authority=[f"sub.ghost.com. {DAY} NS ns.sub.ghost.com."],
                     additional=[f"ns.sub.ghost.com. {DAY} A {SUB}"])  # fmt: skip
    if qtype == RRType.NS and qname == "ghost.com.":
        return reply(qname, text, aa=True, answer=ns, additional=glue)
    return reply(qname, text, aa=True, answer=[f"{qname} 1 A 192.0.2.66"], authority=ns,
                 additional=glue)  # fmt: skip


def world() -> tuple[IterativeEngine, FakeNetwork, FakeClock, Registry]:
    clock = FakeClock()
    net = FakeNetwork(clock=clock, rtt=0.0)
    registry = Registry()
    for root in ROOT_SERVERS:
        net.servers[root] = lambda qname, qtype: reply(
            qname, RRType.text(qtype), authority=["com. 172800 NS ns.com."],
            additional=[f"ns.com. 172800 A {COM}"])  # fmt: skip
    net.servers[COM] = registry
    net.servers[CHILD] = attacker
    net.servers[SUB] = lambda qname, qtype: reply(
        qname, RRType.text(qtype), aa=True, answer=[f"{qname} 1 A 192.0.2.67"])  # fmt: skip
    net.servers[SINKHOLE] = lambda qname, qtype: reply(
        qname, RRType.text(qtype), aa=True, answer=[f"{qname} 60 A 192.0.2.99"])  # fmt: skip
    engine, _, _ = make_engine(net, clock)
    return engine, net, clock, registry


def address(engine: IterativeEngine, name: str) -> str:
    result = resolve(engine, name, "A")
    if result.rcode != Rcode.NOERROR:
        return Rcode.text(result.rcode)
    return texts(result.answer)[-1].split()[-1]


def test_the_child_ns_rrset_does_not_outlive_the_parents_delegation() -> None:
    """Ghost domain (NDSS 2012): the child answers its NS RRset with other names and a TTL
    of a day, directly and in every authority section; once the parent's 10 s are over
    the parent is asked again, and a removed delegation is gone."""
    engine, net, clock, registry = world()
    assert address(engine, "www.ghost.com.") == "192.0.2.66"
    assert resolve(engine, "ghost.com.", "NS").rcode == Rcode.NOERROR  # a day, says the child
    registry.state = "removed"
    clock.advance(PARENT_TTL - 1)
    assert address(engine, "a.ghost.com.") == "192.0.2.66"  # the delegation still holds
    resolve(engine, "ghost.com.", "NS")  # refreshed by the child: changes nothing
    clock.advance(2)
    before = net.count(COM)
    assert address(engine, "b.ghost.com.") == "NXDOMAIN"
    assert net.count(COM) == before + 1


def test_a_sub_delegation_dies_with_its_parent() -> None:
    """Phoenix domain T2 (CVE-2022-30698): ``sub.ghost.com.`` learned from the ghost's
    servers for a day lives no longer than ``ghost.com.``'s own delegation."""
    engine, _net, clock, registry = world()
    assert address(engine, "x.sub.ghost.com.") == "192.0.2.67"
    registry.state = "removed"
    clock.advance(PARENT_TTL + 1)
    assert address(engine, "y.sub.ghost.com.") == "NXDOMAIN"


def test_a_reply_that_arrives_after_the_delegation_expired_teaches_nothing() -> None:
    """Phoenix domain T1 (CVE-2022-30699): a question sent under the old delegation, its
    answer (a new NS RRset for a day) arriving after the delegation expired."""
    engine, net, clock, registry = world()
    assert address(engine, "www.ghost.com.") == "192.0.2.66"
    clock.advance(PARENT_TTL - 1)

    def late(qname: str, qtype: int) -> dns.message.Message:
        clock.advance(2)  # the server sits on the question past the parent's TTL
        return attacker(qname, qtype)

    net.servers[CHILD] = late
    registry.state = "removed"
    assert resolve(engine, "ghost.com.", "NS").rcode == Rcode.NOERROR  # answered, not kept
    net.servers[CHILD] = attacker
    assert address(engine, "c.ghost.com.") == "NXDOMAIN"


def test_a_sinkholed_delegation_moves_once_the_parents_ttl_is_over() -> None:
    engine, _net, clock, registry = world()
    assert address(engine, "www.ghost.com.") == "192.0.2.66"
    resolve(engine, "ghost.com.", "NS")
    registry.state = "sinkhole"
    clock.advance(PARENT_TTL + 1)
    assert address(engine, "d.ghost.com.") == "192.0.2.99"


def test_a_child_ttl_shorter_than_the_parents_is_kept_shorter() -> None:
    """The bound is a ceiling: a child NS RRset of 5 s is asked again after 5 s."""
    engine, net, clock, _registry = world()

    def short(qname: str, qtype: int) -> dns.message.Message:
        if qtype == RRType.NS and qname == "ghost.com.":
            return reply(qname, "NS", aa=True, answer=["ghost.com. 5 NS ns.ghost.com."],
                         additional=[f"ns.ghost.com. 5 A {CHILD}"])  # fmt: skip
        return reply(qname, RRType.text(qtype), aa=True, answer=[f"{qname} 1 A 192.0.2.66"])

    net.servers[CHILD] = short
    address(engine, "www.ghost.com.")
    resolve(engine, "ghost.com.", "NS")
    clock.advance(6)
    before = net.count(COM)
    assert address(engine, "e.ghost.com.") == "192.0.2.66"
    assert net.count(COM) == before + 1  # the parent asked again after the child's 5 s
