"""TsuNAME (Moura et al., 2021): two zones whose name servers are in each other, on canned
replies with a clock that moves only when told.  Each question is bounded (the plan
refuses a question already in it), and the failure is remembered (RFC 9520): new names
below the cycle cost the parents nothing until it runs out, a little longer each time.

The same against the running resolver and Unbound: tests/test_exhaust.py and
scripts/reliability/exhaust.py (tsuname).
"""

from __future__ import annotations

import itertools

import dns.message
import dns.name

from resolver.iterate.engine import IterativeEngine
from resolver.iterate.zonecut import UNUSABLE_FIRST, UNUSABLE_LONGEST
from resolver.wire import Rcode, RRType
from tests.fakes import FakeClock, FakeNetwork, make_engine, reply, resolve, soa

CYC1, CYC2 = "127.2.7.1", "127.2.7.2"
ROOT_SERVERS = ("127.1.0.1", "127.1.0.2")


def parent(zone: str, child: str, ns: str) -> object:
    """A TLD that delegates ``child`` to ``ns``, without glue (there can be none)."""

    def answer(qname: str, qtype: int) -> dns.message.Message:
        if dns.name.from_text(qname).is_subdomain(dns.name.from_text(child)):
            return reply(qname, RRType.text(qtype), authority=[f"{child} 300 NS {ns}"])
        return reply(qname, RRType.text(qtype), aa=True, rcode=3, authority=[soa(zone)])

    return answer


def world() -> tuple[IterativeEngine, FakeNetwork, FakeClock]:
    clock = FakeClock()
    net = FakeNetwork(clock=clock, rtt=0.0)

    def root(qname: str, qtype: int) -> dns.message.Message:
        tld = "cyc1." if qname.rstrip(".").endswith("cyc1") else "cyc2."
        address = CYC1 if tld == "cyc1." else CYC2
        return reply(qname, RRType.text(qtype), authority=[f"{tld} 172800 NS ns.{tld}"],
                     additional=[f"ns.{tld} 172800 A {address}"])  # fmt: skip

    for server in ROOT_SERVERS:
        net.servers[server] = root
    net.servers[CYC1] = parent("cyc1.", "a.cyc1.", "ns.b.cyc2.")  # type: ignore[assignment]
    net.servers[CYC2] = parent("cyc2.", "b.cyc2.", "ns.a.cyc1.")  # type: ignore[assignment]
    engine, _, _ = make_engine(net, clock)
    return engine, net, clock


def parents(net: FakeNetwork) -> int:
    return net.count(CYC1) + net.count(CYC2)


def test_a_cycle_of_delegations_is_servfail_and_bounded() -> None:
    engine, net, _clock = world()
    result = resolve(engine, "w0.a.cyc1.", "A")
    assert result.rcode == Rcode.SERVFAIL
    assert 0 < parents(net) <= 10


def test_new_names_below_a_cycle_cost_the_parents_nothing_while_it_is_remembered() -> None:
    engine, net, clock = world()
    resolve(engine, "w0.a.cyc1.", "A")
    first = parents(net)
    for i in range(1, 50):
        clock.advance(0.05)
        assert resolve(engine, f"w{i}.a.cyc1.", "A").rcode == Rcode.SERVFAIL
    assert parents(net) == first  # 50 questions in 2.5 s: the parents asked for the first


def test_the_failure_is_remembered_longer_each_time_up_to_a_bound() -> None:
    engine, net, clock = world()
    resolve(engine, "w0.a.cyc1.", "A")
    asked = [parents(net)]
    remembered = UNUSABLE_FIRST
    for i in range(1, 10):
        clock.advance(remembered + 0.1)
        resolve(engine, f"w{i}.a.cyc1.", "A")
        asked.append(parents(net))
        remembered = min(2 * remembered, UNUSABLE_LONGEST)
    assert all(later > earlier for earlier, later in itertools.pairwise(asked)), asked
    # Within the doubled time the next question costs nothing.
    clock.advance(remembered / 2)
    before = parents(net)
    resolve(engine, "late.a.cyc1.", "A")
    assert parents(net) == before


def test_a_flush_forgets_the_failure() -> None:
    engine, net, _clock = world()
    resolve(engine, "w0.a.cyc1.", "A")
    engine.env.finder.forget()
    engine.cache.clear()
    before = parents(net)
    resolve(engine, "w1.a.cyc1.", "A")
    assert parents(net) > before
