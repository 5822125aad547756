"""NRDelegation (Afek et al., USENIX Security 2023; BIND's CVE-2022-2795, Unbound's
CVE-2022-3204): a referral to 1,500 name servers that never answer, on canned replies.
The delegation keeps 20 of them, so building its zone cut costs 20 names' lookups, and the
question's work is bounded by the per-question limits.

The same against the running resolver and Unbound (queries, time and CPU per question):
tests/test_exhaust.py and scripts/reliability/exhaust.py (nrdelegation).
"""

from __future__ import annotations

import dns.message

from resolver.iterate.classify import MAX_NS_PER_RRSET
from resolver.iterate.limits import Limits
from resolver.wire import Rcode, RRType
from tests.fakes import COM, FakeNetwork, make_engine, reply, resolve

ROOT_SERVERS = ("127.1.0.1", "127.1.0.2")
NAMES = "127.2.8.1"
N = 1500


def silent(j: int) -> str:
    return f"127.66.{j // 250}.{j % 250 + 1}"


def world(glue: bool) -> tuple[FakeNetwork, list[str]]:
    net = FakeNetwork()
    servers = ([f"ns{j}.big.com." for j in range(N)] if glue
               else [f"ns{j}.names.net." for j in range(N)])  # fmt: skip

    def root(qname: str, qtype: int) -> dns.message.Message:
        tld, address = ("net.", NAMES) if qname.endswith("net.") else ("com.", COM)
        return reply(qname, RRType.text(qtype), authority=[f"{tld} 172800 NS ns.{tld}"],
                     additional=[f"ns.{tld} 172800 A {address}"])  # fmt: skip

    def com(qname: str, qtype: int) -> dns.message.Message:
        glued = [f"{ns} 300 A {silent(j)}" for j, ns in enumerate(servers)] if glue else []
        return reply(qname, RRType.text(qtype),
                     authority=[f"big.com. 300 NS {ns}" for ns in servers],
                     additional=glued)  # fmt: skip

    def names(qname: str, qtype: int) -> dns.message.Message:
        j = int(qname.split(".")[0][2:])
        if qtype != RRType.A:
            return reply(qname, RRType.text(qtype), aa=True)
        return reply(qname, "A", aa=True, answer=[f"{qname} 300 A {silent(j)}"])

    for server in ROOT_SERVERS:
        net.servers[server] = root
    net.servers[COM] = com
    net.servers[NAMES] = names
    net.dead.update(silent(j) for j in range(N))
    return net, servers


def test_a_delegation_to_1500_glued_servers_keeps_twenty() -> None:
    net, servers = world(glue=True)
    engine, cache, _ = make_engine(net)
    result = resolve(engine, "www.big.com.", "A")
    assert result.rcode == Rcode.SERVFAIL
    kept = cache.get_rrset("big.com.", RRType.NS)
    assert kept is not None and len(kept.rdatas) == MAX_NS_PER_RRSET
    tried = {address for address, _, _ in net.log if address.startswith("127.66.")}
    assert tried <= {silent(j) for j in range(MAX_NS_PER_RRSET)}
    assert len(net.log) <= Limits().max_upstream_queries
    assert cache.get_glue(servers[MAX_NS_PER_RRSET], RRType.A) is None  # not even kept


def test_a_delegation_to_1500_names_without_glue_looks_up_four() -> None:
    net, _servers = world(glue=False)
    engine, cache, _ = make_engine(net)
    result = resolve(engine, "www.big.com.", "A")
    assert result.rcode == Rcode.SERVFAIL
    looked_up = {qname for address, qname, _ in net.log if address == NAMES}
    assert len(looked_up) <= Limits().max_glueless_per_cut
    kept = cache.get_rrset("big.com.", RRType.NS)
    assert kept is not None and len(kept.rdatas) == MAX_NS_PER_RRSET
