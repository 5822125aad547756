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

from resolver.lab.signing import ALGORITHM_ZONES, www_address

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


# -- the signed lab (resolver.lab.signing, NsdLab(signed=True)) ---------------------------

Security = str
"""``secure`` (AD set for DO or AD clients), ``insecure`` (never AD) or ``bogus`` (SERVFAIL)."""


@dataclass(frozen=True)
class SignedCase(LabCase):
    """A question on the signed lab: what a validating resolver returns and why.

    ``security``    secure, insecure or bogus;
    ``info_code``   for a bogus answer, the RFC 8914 INFO-CODE that says why;
    ``unchecked``   for a bogus answer, what a CD=1 client gets (the data unvalidated).
    """

    security: Security = "secure"
    info_code: int | None = None
    unchecked: Answer = NONE


def _signed(case: LabCase) -> SignedCase:
    """A lab case on the signed lab: the same answer, secure (the loop stays SERVFAIL)."""
    security = "secure" if case.rcode != "SERVFAIL" else "insecure"
    return SignedCase(case.id, case.qname, case.qtype, case.rcode, case.answer,
                      case.note, security)  # fmt: skip


def _bogus(zone: str, address: str, info_code: int, note: str) -> SignedCase:
    qname = f"www.{zone}"
    return SignedCase(
        zone.split(".")[0], qname, "A", "SERVFAIL", NONE, note, "bogus", info_code,
        _a((qname, "A", address)),
    )  # fmt: skip


# RFC 8914 section 4 INFO-CODEs
DNSSEC_BOGUS, SIGNATURE_EXPIRED, SIGNATURE_NOT_YET_VALID, DNSKEY_MISSING = 6, 7, 8, 9
RRSIGS_MISSING = 10

SIGNED_CASES: list[SignedCase] = [
    *(_signed(case) for case in CASES),
    _bogus(
        "expired.lab.",
        "192.0.2.160",
        SIGNATURE_EXPIRED,
        "Every signature of expired.lab expired a day ago; its DS at lab. is right.",
    ),
    _bogus(
        "notyet.lab.",
        "192.0.2.161",
        SIGNATURE_NOT_YET_VALID,
        "Every signature of notyet.lab becomes valid in ten days.",
    ),
    _bogus(
        "nokey.lab.",
        "192.0.2.162",
        DNSKEY_MISSING,
        "lab.'s DS for nokey.lab names a KSK that nokey.lab does not publish.",
    ),
    _bogus(
        "nosigs.lab.",
        "192.0.2.163",
        DNSKEY_MISSING,
        "lab. has a DS for nosigs.lab, which is served unsigned (no DNSKEY, no RRSIG).",
    ),
    _bogus(
        "badsig.lab.",
        "192.0.2.164",
        DNSSEC_BOGUS,
        "The signature over www.badsig.lab A has one byte flipped.",
    ),
    SignedCase(
        "badsig-aaaa",
        "www.badsig.lab.",
        "AAAA",
        "NOERROR",
        _a(("www.badsig.lab.", "AAAA", "2001:db8::a4")),
        "Only the A RRset's signature is wrong: the AAAA beside it is secure.",
    ),
    SignedCase(
        "insecure",
        "www.insecure.lab.",
        "A",
        "NOERROR",
        _a(("www.insecure.lab.", "A", "192.0.2.165")),
        "An unsigned zone with no DS at lab. (proved by lab.'s NSEC): insecure.",
        "insecure",
    ),
    SignedCase(
        "insecure-nxdomain",
        "nothing.insecure.lab.",
        "A",
        "NXDOMAIN",
        NONE,
        "NXDOMAIN from the unsigned zone: insecure, no proof.",
        "insecure",
    ),
    SignedCase(
        "insecure-no-ds",
        "insecure.lab.",
        "DS",
        "NOERROR",
        NONE,
        "lab.'s NSEC proves that insecure.lab has no DS: a secure NODATA.",
    ),
    SignedCase(
        "nsec3",
        "www.nsec3.lab.",
        "A",
        "NOERROR",
        _a(("www.nsec3.lab.", "A", "192.0.2.166")),
        "A zone signed with NSEC3.",
    ),
    SignedCase(
        "nsec3-nxdomain",
        "nothing.nsec3.lab.",
        "A",
        "NXDOMAIN",
        NONE,
        "NXDOMAIN proved by NSEC3 (closest encloser, next closer, no wildcard).",
    ),
    SignedCase(
        "nsec3-nodata",
        "www.nsec3.lab.",
        "MX",
        "NOERROR",
        NONE,
        "NODATA proved by the NSEC3 matching www.nsec3.lab.",
    ),
    SignedCase(
        "nsec3-ent",
        "wild.nsec3.lab.",
        "TXT",
        "NOERROR",
        NONE,
        "An empty non-terminal under NSEC3: NODATA.",
    ),
    SignedCase(
        "nsec3-wildcard",
        "a.wild.nsec3.lab.",
        "TXT",
        "NOERROR",
        _a(("a.wild.nsec3.lab.", "TXT", '"wildcard of nsec3.lab."')),
        "Expanded from *.wild.nsec3.lab: the NSEC3 proving a.wild does not exist.",
    ),
    SignedCase(
        "nsec3-cname",
        "alias.nsec3.lab.",
        "A",
        "NOERROR",
        _a(("alias.nsec3.lab.", "CNAME", "www.nsec3.lab."), ("www.nsec3.lab.", "A", "192.0.2.166")),
        "A CNAME and its target, both signed, NSEC3 zone.",
    ),
]


def _www(origin: str, case_id: str, note: str, security: Security = "secure") -> SignedCase:
    qname = f"www.{origin}"
    answer = _a((qname, "A", www_address(origin)))
    return SignedCase(case_id, qname, "A", "NOERROR", answer, note, security)


SIGNED_CASES += [
    *(
        _www(origin, f"alg-{algorithm.lower()}", f"A zone signed with {algorithm} keys.")
        for origin, algorithm in ALGORITHM_ZONES.items()
    ),
    _www("nsec3-iter.lab.", "nsec3-iter", "NSEC3 with 200 iterations: answers stay secure."),
    SignedCase(
        "nsec3-iter-nxdomain",
        "nothing.nsec3-iter.lab.",
        "A",
        "NXDOMAIN",
        NONE,
        "NSEC3 with 200 iterations, above RFC 9276's limit of 150: the proof is insecure.",
        "insecure",
    ),
    _www("optout.lab.", "optout", "An NSEC3 opt-out zone's own data is secure."),
    _www(
        "child.optout.lab.",
        "optout-child",
        "An unsigned child of an NSEC3 opt-out zone: the NSEC3 matching it proves it has "
        "no DS (ldns keeps the delegation in the chain), so it is insecure.",
        "insecure",
    ),
    SignedCase(
        "optout-nxdomain",
        "nothing.optout.lab.",
        "A",
        "NXDOMAIN",
        NONE,
        "The NSEC3 covering the next closer name has opt-out set: an unsigned delegation "
        "could hide there (RFC 5155 section 6), so the NXDOMAIN is insecure.",
        "insecure",
    ),
]

SIGNED_CASES_BY_ID: dict[str, SignedCase] = {case.id: case for case in SIGNED_CASES}
assert len(SIGNED_CASES_BY_ID) == len(SIGNED_CASES), "duplicate SignedCase id"
