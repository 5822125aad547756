"""Expected results of a recursive resolver walking the lab from its root hints.

Each :class:`LabCase` is one lab feature: a question and the rcode + full answer section
(every CNAME of a chain included) a correct recursive resolver returns. Answers are sets
of ``(owner, type, rdata)`` text tuples; :func:`answer_of` converts a dnspython response
into the same form, so a test can simply compare with ``==``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dns.message
import dns.rdatatype
import dns.rrset

Answer = frozenset[tuple[str, str, str]]


@dataclass(frozen=True)
class LabCase:
    id: str
    qname: str
    qtype: str
    rcode: str
    answer: Answer
    note: str


def answer_tuples(rrsets: Iterable[dns.rrset.RRset]) -> Answer:
    """``(owner lowercased with trailing dot, type mnemonic, rdata.to_text())`` per record."""
    return frozenset(
        (rrset.name.to_text().lower(), dns.rdatatype.to_text(rrset.rdtype), rdata.to_text())
        for rrset in rrsets
        for rdata in rrset
    )


def answer_of(message: dns.message.Message) -> Answer:
    """The answer section of a dnspython response in the :class:`LabCase` form."""
    return answer_tuples(message.answer)


def _a(*records: tuple[str, str, str]) -> Answer:
    return frozenset(records)


NONE: Answer = frozenset()

BIG_TXT = " ".join(f'"{i:02d}-{chr(ord("a") + i % 26) * 97}"' for i in range(30))
"""rdata text of big.example.com TXT: 30 strings of 100 characters (> 3000 bytes)."""

CASES: list[LabCase] = [
    LabCase(
        "glue",
        "www.example.com.",
        "A",
        "NOERROR",
        _a(("www.example.com.", "A", "192.0.2.1")),
        "com delegates example.com with in-bailiwick glue (ns1/ns2.example.com).",
    ),
    LabCase(
        "glueless",
        "www.noglue.org.",
        "A",
        "NOERROR",
        _a(("www.noglue.org.", "A", "198.51.100.20")),
        "noglue.org NS ns1.provider.net only, no glue in org: needs a sub-lookup.",
    ),
    LabCase(
        "cname-chain",
        "www.chain.com.",
        "A",
        "NOERROR",
        _a(
            ("www.chain.com.", "CNAME", "a.chain.net."),
            ("a.chain.net.", "CNAME", "b.chain.org."),
            ("b.chain.org.", "A", "198.51.100.7"),
        ),
        "CNAME chain across three zones on three servers.",
    ),
    LabCase(
        "cname-same-zone",
        "alias.example.com.",
        "A",
        "NOERROR",
        _a(
            ("alias.example.com.", "CNAME", "www.example.com."),
            ("www.example.com.", "A", "192.0.2.1"),
        ),
        "CNAME whose target is in the same zone (the server chases it itself).",
    ),
    LabCase(
        "cname-nxdomain",
        "dangling.example.com.",
        "A",
        "NXDOMAIN",
        _a(("dangling.example.com.", "CNAME", "nothing.example.net.")),
        "CNAME to a name that does not exist in another zone: NXDOMAIN, CNAME kept.",
    ),
    LabCase(
        "nxdomain",
        "doesnotexist.example.com.",
        "A",
        "NXDOMAIN",
        NONE,
        "Name does not exist (SOA in authority).",
    ),
    LabCase(
        "nodata",
        "www.example.com.",
        "MX",
        "NOERROR",
        NONE,
        "Name exists, type does not (NODATA: NOERROR, empty answer, SOA in authority).",
    ),
    LabCase(
        "nodata-ent",
        "wild.example.com.",
        "A",
        "NOERROR",
        NONE,
        "Empty non-terminal (exists only because *.wild.example.com does): NODATA.",
    ),
    LabCase(
        "wildcard",
        "anything.wild.example.com.",
        "A",
        "NOERROR",
        _a(("anything.wild.example.com.", "A", "192.0.2.99")),
        "Synthesised from *.wild.example.com, owner is the query name.",
    ),
    LabCase(
        "deep",
        "host.b.a.deep.lab.",
        "A",
        "NOERROR",
        _a(("host.b.a.deep.lab.", "A", "192.0.2.80")),
        "Four cuts below the root (lab, deep.lab, a.deep.lab, b.a.deep.lab), each on "
        "its own server.",
    ),
    LabCase(
        "lame",
        "www.lame.com.",
        "A",
        "NOERROR",
        _a(("www.lame.com.", "A", "203.0.113.10")),
        "ns1.lame.com (127.4.1.1) answers REFUSED to everything; ns2 works.",
    ),
    LabCase(
        "dead-ns",
        "www.dead.com.",
        "A",
        "NOERROR",
        _a(("www.dead.com.", "A", "203.0.113.20")),
        "Nothing listens at ns1.dead.com (127.4.2.1); ns2 works.",
    ),
    LabCase(
        "silent-ns",
        "www.silent.com.",
        "A",
        "NOERROR",
        _a(("www.silent.com.", "A", "203.0.113.30")),
        "ns1.silent.com (127.4.3.1) listens but never answers (timeout); ns2 works.",
    ),
    LabCase(
        "dead-root-hint",
        ".",
        "NS",
        "NOERROR",
        _a(
            (".", "NS", "a.root-servers.net."),
            (".", "NS", "b.root-servers.net."),
            (".", "NS", "c.root-servers.net."),
        ),
        "Priming query; the third hint, c.root-servers.net (127.1.0.3), is dead.",
    ),
    LabCase(
        "tcp",
        "big.example.com.",
        "TXT",
        "NOERROR",
        _a(("big.example.com.", "TXT", BIG_TXT)),
        "Over 3000 bytes: UDP replies come back with TC=1, the resolver must retry over TCP.",
    ),
    LabCase(
        "loop",
        "www.loop1.com.",
        "A",
        "SERVFAIL",
        NONE,
        "loop1.com NS ns.loop2.net, loop2.net NS ns.loop1.com, no glue: unresolvable.",
    ),
    LabCase(
        "poison",
        "www.poison.com.",
        "A",
        "NOERROR",
        _a(("www.poison.com.", "A", "203.0.113.40")),
        "The server adds www.example.com A 203.0.113.66 (answer + additional) and "
        "example.com NS ns1.poison.com (authority): must be ignored, never cached.",
    ),
    LabCase(
        "wrong-first",
        "www.wrongid.com.",
        "A",
        "NOERROR",
        _a(("www.wrongid.com.", "A", "203.0.113.50")),
        "Over UDP the server first replies with a wrong ID, then a wrong question, then correctly.",
    ),
    LabCase(
        "mx",
        "example.com.",
        "MX",
        "NOERROR",
        _a(("example.com.", "MX", "10 mail.example.com.")),
        "MX at the apex.",
    ),
    LabCase(
        "txt",
        "example.com.",
        "TXT",
        "NOERROR",
        _a(("example.com.", "TXT", '"v=spf1 -all"')),
        "TXT at the apex.",
    ),
    LabCase(
        "aaaa",
        "www.example.com.",
        "AAAA",
        "NOERROR",
        _a(("www.example.com.", "AAAA", "2001:db8::1")),
        "AAAA.",
    ),
    LabCase(
        "srv",
        "_sip._udp.example.com.",
        "SRV",
        "NOERROR",
        _a(("_sip._udp.example.com.", "SRV", "10 60 5060 sip.example.com.")),
        "SRV.",
    ),
    LabCase(
        "soa",
        "example.com.",
        "SOA",
        "NOERROR",
        _a(
            (
                "example.com.",
                "SOA",
                "ns1.example.com. hostmaster.example.com. 2024010101 1800 900 604800 60",
            )
        ),
        "SOA at the apex.",
    ),
    LabCase(
        "ptr",
        "1.2.0.192.in-addr.arpa.",
        "PTR",
        "NOERROR",
        _a(("1.2.0.192.in-addr.arpa.", "PTR", "www.example.com.")),
        "arpa -> in-addr.arpa -> 2.0.192.in-addr.arpa (glueless, on ns1.example.net).",
    ),
    LabCase(
        "google-a",
        "www.google.com.",
        "A",
        "NOERROR",
        _a(("www.google.com.", "A", "198.51.100.14")),
        "For README examples: dig @127.0.0.1 -p 2053 www.google.com.",
    ),
    LabCase(
        "google-aaaa",
        "www.google.com.",
        "AAAA",
        "NOERROR",
        _a(("www.google.com.", "AAAA", "2001:db8:4860::14")),
        "For README examples: dig @127.0.0.1 -p 2053 www.google.com AAAA.",
    ),
    LabCase(
        "short-ttl",
        "short.example.com.",
        "A",
        "NOERROR",
        _a(("short.example.com.", "A", "192.0.2.3")),
        "TTL 3 s (also AAAA 2001:db8::3): for cache-expiry tests.",
    ),
    LabCase(
        "ttl0",
        "ttl0.example.com.",
        "A",
        "NOERROR",
        _a(("ttl0.example.com.", "A", "192.0.2.10")),
        "TTL 0: must not be served from cache.",
    ),
]

CASES_BY_ID: dict[str, LabCase] = {case.id: case for case in CASES}
assert len(CASES_BY_ID) == len(CASES), "duplicate LabCase id"
