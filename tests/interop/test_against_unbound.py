"""Our resolver and Unbound, side by side, on the lab's zones served by NSD.

Both start with empty caches (one fresh process each per test module) and resolve
every lab case from the root hints.  For each case the RCODE and the answer RRsets
must be the same (names compared without case, records in any order), every TTL
must be at most the zone's for that record, and both must give what the lab case
expects.

Where NSD cannot imitate a lab server (:data:`NOT_EXERCISED`: silent, poison,
wrong-first, see resolver/lab/nsd.py) the case still runs and must still give
the lab's answer, but the misbehaviour itself is only tested against the
dnspython lab (tests/test_lab.py, tests/test_engine.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest

from resolver.lab.cases import CASES, LabCase, answer_of
from resolver.lab.nsd import NsdLab

pytestmark = pytest.mark.interop

NOT_EXERCISED = {
    "silent-ns": "ns1.silent.com is dead (ICMP unreachable) here, not silent (a timeout)",
    "poison": "NSD serves poison.com without the out-of-bailiwick junk",
    "wrong-first": "NSD sends no wrong-ID / wrong-question replies first",
}
"""Lab cases whose misbehaving server NSD cannot imitate: only the answer is checked."""

TtlTable = dict[tuple[dns.name.Name, int], int]


@pytest.fixture(scope="module")
def zone_ttls(nsd_lab: NsdLab) -> TtlTable:
    """(owner, type) -> TTL of every RRset in every zone the NSD lab serves."""
    table: TtlTable = {}
    for origin, path in nsd_lab.served_zones().items():
        zone = dns.zone.from_file(str(path), origin, relativize=False, check_origin=False)
        for name, rdataset in zone.iterate_rdatasets():
            table[(name, rdataset.rdtype)] = rdataset.ttl
    return table


def original_ttl(table: TtlTable, owner: dns.name.Name, rdtype: int) -> int:
    """The zone TTL of an answer RRset: its own, or that of the wildcard it came from."""
    owner = owner.canonicalize()
    if (owner, rdtype) in table:
        return table[(owner, rdtype)]
    parent = owner
    while parent != dns.name.root:
        parent = parent.parent()
        wildcard = dns.name.Name((b"*", *parent.labels))
        if (wildcard, rdtype) in table:
            return table[(wildcard, rdtype)]
    raise AssertionError(f"{owner} {dns.rdatatype.to_text(rdtype)} is in no zone of the lab")


def ask(port: int, qname: str, qtype: str) -> dns.message.Message:
    """One question as a stub asks it: UDP with EDNS (1232), TCP after TC=1."""
    query = dns.message.make_query(qname, qtype, use_edns=0, payload=1232)
    reply, _ = dns.query.udp_with_fallback(query, "127.0.0.1", port=port, timeout=10)
    return reply


def rcode(message: dns.message.Message) -> str:
    return dns.rcode.to_text(message.rcode())


def soa_owners(message: dns.message.Message) -> set[str]:
    return {
        rrset.name.to_text().lower()
        for rrset in message.authority
        if rrset.rdtype == dns.rdatatype.SOA
    }


def check_ttls(table: TtlTable, who: str, rrsets: Iterable[dns.rrset.RRset]) -> None:
    for rrset in rrsets:
        limit = original_ttl(table, rrset.name, rrset.rdtype)
        assert 0 <= rrset.ttl <= limit, f"{who}: {rrset.name} TTL {rrset.ttl} > zone's {limit}"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_same_answer_as_unbound(
    case: LabCase, ours: int, unbound: int, zone_ttls: TtlTable
) -> None:
    theirs = ask(unbound, case.qname, case.qtype)
    mine = ask(ours, case.qname, case.qtype)
    note = case.note + (f" [not exercised: {NOT_EXERCISED[case.id]}]" if case.id in NOT_EXERCISED
                        else "")  # fmt: skip
    # Same as Unbound ...
    assert rcode(mine) == rcode(theirs), note
    assert answer_of(mine) == answer_of(theirs), note
    # ... and as the lab says (every case's answer is reproducible with NSD).
    assert (rcode(theirs), answer_of(theirs)) == (case.rcode, case.answer), note
    assert (rcode(mine), answer_of(mine)) == (case.rcode, case.answer), note
    check_ttls(zone_ttls, "unbound", theirs.answer)
    check_ttls(zone_ttls, "ours", mine.answer)
    # A negative answer carries the SOA of the zone that denied it (RFC 2308 §3).
    if case.rcode == "NXDOMAIN" or (case.rcode == "NOERROR" and not case.answer):
        assert soa_owners(mine) == soa_owners(theirs) != set(), note
    # Minimal responses, like Unbound's minimal-responses: yes (which we set there).
    assert not mine.flags & dns.flags.AA
    assert mine.flags & dns.flags.RA
    assert not mine.additional


# Questions beyond the lab cases: apex and cut records, case, wildcards, negatives.
EXTRA = [
    ("example.com.", "NS"),
    ("com.", "NS"),
    (".", "SOA"),
    ("b.a.deep.lab.", "NS"),
    ("noglue.org.", "NS"),
    ("ns1.provider.net.", "A"),
    ("WwW.ExAmPlE.CoM.", "A"),
    ("alias.example.com.", "CNAME"),
    ("alias.example.com.", "MX"),
    ("www.chain.com.", "AAAA"),
    ("x.y.wild.example.com.", "A"),
    ("wild.example.com.", "TXT"),
    ("_udp.example.com.", "A"),
    ("example.com.", "A"),
    ("nothing.example.net.", "A"),
    ("x.alias.example.com.", "A"),
    ("nonexistent-tld.", "A"),
    ("www.nope.lab.", "A"),
    ("www.loop2.net.", "A"),
    ("25.2.0.192.in-addr.arpa.", "PTR"),
    ("www.example.com.", "TYPE65"),
    ("example.com.", "DS"),
    ("com.", "DS"),
]

DS_AT_PARENT = {"example.com.": "com.", "com.": "."}
"""DS questions: the zone whose SOA both NODATA answers carry.

"The DS resource record type is unusual in that it appears only on the parent zone's
side of a zone cut" (RFC 4035 §3.1.4.1), so the parent's servers are asked (com. for
example.com. DS), and their negative answer carries the parent's SOA.
"""


@pytest.mark.parametrize(("qname", "qtype"), EXTRA, ids=[f"{n}{t}" for n, t in EXTRA])
def test_more_questions_as_unbound(
    qname: str, qtype: str, ours: int, unbound: int, zone_ttls: TtlTable
) -> None:
    theirs = ask(unbound, qname, qtype)
    mine = ask(ours, qname, qtype)
    assert rcode(mine) == rcode(theirs)
    assert answer_of(mine) == answer_of(theirs)
    # The answer's owner names are the question's spelling (RFC 4343 §4: case preserved).
    assert {r.name.to_text() for r in mine.answer[:1]} == {
        r.name.to_text() for r in theirs.answer[:1]
    }
    check_ttls(zone_ttls, "unbound", theirs.answer)
    check_ttls(zone_ttls, "ours", mine.answer)
    if qtype == "DS":
        assert soa_owners(theirs) == soa_owners(mine) == {DS_AT_PARENT[qname]}
    elif not mine.answer or rcode(mine) == "NXDOMAIN":
        assert soa_owners(mine) == soa_owners(theirs)
