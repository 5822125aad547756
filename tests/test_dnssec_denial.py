"""Proofs of non-existence: NSEC chains made by dnspython's signer, the NSEC3 example zone
of RFC 5155 (appendix A) with the responses of its appendix B, and generated zones."""

from __future__ import annotations

import base64

import dns.dnssec
import dns.name
import dns.rdatatype
import dns.zone
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resolver.dnssec import (
    MAX_ITERATIONS,
    DenialReason,
    DenialResult,
    DenialStatus,
    nsec3_hash,
    prove_no_ds,
    prove_nodata,
    prove_nxdomain,
    prove_wildcard_answer,
)
from resolver.dnssec.nsec import covers
from resolver.wire import ResourceRecord
from resolver.wire.dnssec_rdata import NSEC, NSEC3
from resolver.wire.names import ancestors, is_subdomain, name_key
from resolver.wire.rdata import parse_rdata
from resolver.wire.zonefile import parse_zone

BOUNDED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
IN = 1
A, NS, SOA, MX, AAAA, DS, CNAME = 1, 2, 6, 15, 28, 43, 5
PROVED, NOT_PROVED = DenialStatus.PROVED, DenialStatus.NOT_PROVED
INSECURE, UNSUPPORTED = DenialStatus.INSECURE, DenialStatus.UNSUPPORTED
R = DenialReason
OK = (PROVED, R.NONE)
OPT_OUT = (INSECURE, R.OPT_OUT)


def no(reason: DenialReason) -> tuple[DenialStatus, DenialReason]:
    return NOT_PROVED, reason


def outcome(result: DenialResult) -> tuple[DenialStatus, DenialReason]:
    return result.status, result.reason


# ---------------------------------------------------------------- NSEC

# RFC 4035 appendix A's example zone, trimmed to the names the proofs need, plus a DNAME.
NSEC_ZONE = """\
$ORIGIN example.
$TTL 3600
@ SOA ns1 bugs.x.w 1 3600 300 3600000 3600
@ NS ns1
@ NS ns2
@ MX 1 xx
a NS ns1.a
a DS 57855 5 1 B6DCD485719ADCA18E5F3D48A2331627FDD3636B
ns1.a A 192.0.2.5
ai A 192.0.2.9
b NS ns1.b
ns1.b A 192.0.2.7
d DNAME x.example.
ns1 A 192.0.2.1
ns2 A 192.0.2.2
*.w MX 1 ai
x.w MX 1 xx
x.y.w MX 1 xx
xx A 192.0.2.10
"""


@pytest.fixture(scope="module")
def nsecs() -> list[ResourceRecord]:
    """The zone's NSEC chain as dnspython's zone signer builds it (glue left out)."""
    zone = dns.zone.from_text(NSEC_ZONE, relativize=False)
    private = ed25519.Ed25519PrivateKey.generate()
    key = dns.dnssec.make_dnskey(private.public_key(), 15, flags=257)
    with zone.writer() as txn:
        dns.dnssec.sign_zone(zone, txn, keys=[(private, key)], inception=0, expiration=2**31)
    records = []
    for name, rdataset in zone.iterate_rdatasets(dns.rdatatype.NSEC):
        for rdata in rdataset:
            wire = rdata.to_wire()
            parsed = parse_rdata(47, wire, 0, len(wire))
            records.append(ResourceRecord(name.to_text(), 47, IN, rdataset.ttl, parsed))
    assert len(records) == 11
    return records


def only(records: list[ResourceRecord], *owners: str) -> list[ResourceRecord]:
    return [r for r in records if r.name in owners]


def test_nsec_covers_with_the_wrap_at_the_end() -> None:
    assert covers("a.example.", "c.example.", "b.example.")
    assert covers("a.example.", "c.example.", "B.EXAMPLE.")
    assert not covers("a.example.", "c.example.", "a.example.")
    assert not covers("a.example.", "c.example.", "c.example.")
    assert covers("a.example.", "c.example.", "x.b.example.")
    assert covers("xx.example.", "example.", "zz.example.")  # the last NSEC of the zone
    assert not covers("xx.example.", "example.", "example.")
    assert covers("example.", "example.", "a.example.")  # a zone with one name
    assert not covers("example.", "example.", "example.")


@pytest.mark.parametrize(
    ("qname", "expected", "encloser"),
    [
        ("ml.example.", (PROVED, R.NONE), "example."),
        ("zz.example.", (PROVED, R.NONE), "example."),  # after the last name: the wrap
        ("a.b.c.example.", (PROVED, R.NONE), "example."),
        ("ML.Example.", (PROVED, R.NONE), "example."),
        ("ns1.example.", (NOT_PROVED, R.NAME_EXISTS), None),
        ("y.w.example.", (NOT_PROVED, R.EMPTY_NON_TERMINAL), None),  # x.y.w exists below
        ("w.example.", (NOT_PROVED, R.EMPTY_NON_TERMINAL), None),
        ("q.w.example.", (NOT_PROVED, R.WILDCARD_EXISTS), None),  # *.w.example answers it
        ("foo.b.example.", (NOT_PROVED, R.NAME_NOT_COVERED), None),  # below a delegation
        ("foo.d.example.", (NOT_PROVED, R.NAME_NOT_COVERED), None),  # below a DNAME
        ("other.org.", (NOT_PROVED, R.OUT_OF_ZONE), None),
    ],
)
def test_nsec_nxdomain(
    nsecs: list[ResourceRecord],
    qname: str,
    expected: tuple[DenialStatus, DenialReason],
    encloser: str | None,
) -> None:
    result = prove_nxdomain(qname, nsecs, "example.")
    assert outcome(result) == expected
    found = result.closest_encloser
    assert (found and name_key(found)) == encloser  # spelt as in the query name


def test_nsec_nxdomain_needs_the_wildcard_denied(nsecs: list[ResourceRecord]) -> None:
    # ml.example falls between d.example and ns1.example; *.example after the apex.
    both = only(nsecs, "d.example.", "example.")
    assert prove_nxdomain("ml.example.", both, "example.").proved
    assert outcome(prove_nxdomain("ml.example.", only(nsecs, "d.example."), "example.")) == (
        NOT_PROVED,
        R.WILDCARD_NOT_DENIED,
    )
    assert outcome(prove_nxdomain("ml.example.", [], "example.")) == (NOT_PROVED, R.NO_RECORDS)
    # NSEC records of another zone are not looked at.
    assert outcome(prove_nxdomain("ml.example.", nsecs, "org.")) == (NOT_PROVED, R.OUT_OF_ZONE)


@pytest.mark.parametrize(
    ("qname", "qtype", "expected"),
    [
        ("ns1.example.", MX, (PROVED, R.NONE)),
        ("ns1.example.", A, (NOT_PROVED, R.TYPE_EXISTS)),
        ("NS1.example.", AAAA, (PROVED, R.NONE)),
        ("y.w.example.", A, (PROVED, R.NONE)),  # an empty non-terminal
        ("w.example.", MX, (PROVED, R.NONE)),
        ("a.z.w.example.", AAAA, (PROVED, R.NONE)),  # from *.w.example, which has no AAAA
        ("a.z.w.example.", MX, (NOT_PROVED, R.TYPE_EXISTS)),
        ("b.example.", A, (INSECURE, R.INSECURE_DELEGATION)),  # the parent side of b
        ("a.example.", A, (NOT_PROVED, R.DELEGATION)),  # a is signed: ask the child
        ("b.example.", DS, (PROVED, R.NONE)),
        ("ns1.example.", DS, (PROVED, R.NONE)),
        ("example.", DS, (NOT_PROVED, R.CHILD_SIDE)),  # the apex NSEC says nothing of DS
        ("a.example.", DS, (NOT_PROVED, R.TYPE_EXISTS)),
        ("d.example.", A, (PROVED, R.NONE)),  # a DNAME redirects below its owner, not at it
        ("ml.example.", A, (NOT_PROVED, R.NO_MATCHING_RECORD)),  # a name error is no NODATA
    ],
)
def test_nsec_nodata(
    nsecs: list[ResourceRecord], qname: str, qtype: int, expected: tuple[DenialStatus, DenialReason]
) -> None:
    assert outcome(prove_nodata(qname, qtype, nsecs, "example.")) == expected


def test_nsec_nodata_at_a_dname_or_cname(nsecs: list[ResourceRecord]) -> None:
    d = next(r for r in nsecs if r.name == "d.example.")
    assert isinstance(d.rdata, NSEC) and 39 in d.rdata.types
    # A name with a CNAME must answer with it, not with NODATA.
    cname = ResourceRecord("ns2.example.", 47, IN, 60, NSEC("*.w.example.", (CNAME, 46, 47)))
    assert outcome(prove_nodata("ns2.example.", A, [cname], "example.")) == (
        NOT_PROVED,
        R.CNAME_EXISTS,
    )


@pytest.mark.parametrize(
    ("child", "expected"),
    [
        ("b.example.", (PROVED, R.NONE)),
        ("B.Example.", (PROVED, R.NONE)),
        ("a.example.", (NOT_PROVED, R.DS_EXISTS)),
        ("ns1.example.", (NOT_PROVED, R.NOT_A_DELEGATION)),
        ("example.", (NOT_PROVED, R.CHILD_SIDE)),
        ("y.w.example.", (NOT_PROVED, R.NO_MATCHING_RECORD)),
        ("ml.example.", (NOT_PROVED, R.NO_MATCHING_RECORD)),
    ],
)
def test_nsec_no_ds(
    nsecs: list[ResourceRecord], child: str, expected: tuple[DenialStatus, DenialReason]
) -> None:
    assert outcome(prove_no_ds(child, nsecs, "example.")) == expected


@pytest.mark.parametrize(
    ("qname", "labels", "expected"),
    [
        ("a.z.w.example.", 2, (PROVED, R.NONE)),
        ("z.w.example.", 2, (PROVED, R.NONE)),
        ("a.z.w.example.", 1, (NOT_PROVED, R.WRONG_WILDCARD)),  # *.example is not the source
        ("a.z.w.example.", 4, (NOT_PROVED, R.WRONG_WILDCARD)),
        ("x.w.example.", 2, (NOT_PROVED, R.NAME_NOT_COVERED)),  # it exists
        ("a.x.y.w.example.", 3, (NOT_PROVED, R.WRONG_WILDCARD)),  # no *.y.w.example
        ("a.y.w.example.", 2, (NOT_PROVED, R.WRONG_WILDCARD)),  # y.w.example exists
        ("a.b.example.", 1, (NOT_PROVED, R.NAME_NOT_COVERED)),  # below a delegation
    ],
)
def test_nsec_wildcard_answer(
    nsecs: list[ResourceRecord],
    qname: str,
    labels: int,
    expected: tuple[DenialStatus, DenialReason],
) -> None:
    result = prove_wildcard_answer(qname, labels, nsecs, "example.")
    assert outcome(result) == expected
    if result.proved:
        assert result.closest_encloser == "w.example."


# ---------------------------------------------------------------- NSEC3: RFC 5155 appendix A

RFC5155_HASHES = {
    "example.": "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom",
    "a.example.": "35mthgpgcu1qg68fab165klnsnk3dpvl",
    "ai.example.": "gjeqe526plbf1g8mklp59enfd789njgi",
    "ns1.example.": "2t7b4g4vsa5smi47k61mv5bv1a22bojr",
    "ns2.example.": "q04jkcevqvmu85r014c7dkba38o0ji5r",
    "w.example.": "k8udemvp1j2f7eg6jebps17vp3n8i58h",
    "*.w.example.": "r53bq7cc2uvmubfu5ocmm6pers9tk9en",
    "x.w.example.": "b4um86eghhds6nea196smvmlo4ors995",
    "y.w.example.": "ji6neoaepv8b5o6k4ev33abha8ht9fgc",
    "x.y.w.example.": "2vptu5timamqttgl4luu9kg21e0aor3s",
    "xx.example.": "t644ebqk9bibcna874givr6joj62mlhv",
    "2t7b4g4vsa5smi47k61mv5bv1a22bojr.example.": "kohar7mbb8dc2ce8a9qvl8hon4k53uhi",
}
SALT = bytes.fromhex("aabbccdd")


@pytest.mark.parametrize(("name", "digest"), sorted(RFC5155_HASHES.items()))
def test_the_hashes_of_rfc_5155_appendix_a(name: str, digest: str) -> None:
    ours = nsec3_hash(name, SALT, 12)
    assert base64.b32hexencode(ours).decode().lower() == digest
    assert dns.dnssec.nsec3_hash(name, SALT, 12, 1).lower() == digest
    assert nsec3_hash(name.upper(), SALT, 12) == ours


# The NSEC3 records of appendix A, every one with the opt-out flag (flags 1).
RFC5155_CHAIN = """\
0p9mhaveqvm6t7vbl5lop2u3t2rp3tom 2t7b4g4vsa5smi47k61mv5bv1a22bojr MX DNSKEY NS SOA NSEC3PARAM RRSIG
2t7b4g4vsa5smi47k61mv5bv1a22bojr 2vptu5timamqttgl4luu9kg21e0aor3s A RRSIG
2vptu5timamqttgl4luu9kg21e0aor3s 35mthgpgcu1qg68fab165klnsnk3dpvl MX RRSIG
35mthgpgcu1qg68fab165klnsnk3dpvl b4um86eghhds6nea196smvmlo4ors995 NS DS RRSIG
b4um86eghhds6nea196smvmlo4ors995 gjeqe526plbf1g8mklp59enfd789njgi MX RRSIG
gjeqe526plbf1g8mklp59enfd789njgi ji6neoaepv8b5o6k4ev33abha8ht9fgc A HINFO AAAA RRSIG
ji6neoaepv8b5o6k4ev33abha8ht9fgc k8udemvp1j2f7eg6jebps17vp3n8i58h
k8udemvp1j2f7eg6jebps17vp3n8i58h kohar7mbb8dc2ce8a9qvl8hon4k53uhi
kohar7mbb8dc2ce8a9qvl8hon4k53uhi q04jkcevqvmu85r014c7dkba38o0ji5r A RRSIG
q04jkcevqvmu85r014c7dkba38o0ji5r r53bq7cc2uvmubfu5ocmm6pers9tk9en A RRSIG
r53bq7cc2uvmubfu5ocmm6pers9tk9en t644ebqk9bibcna874givr6joj62mlhv MX RRSIG
t644ebqk9bibcna874givr6joj62mlhv 0p9mhaveqvm6t7vbl5lop2u3t2rp3tom A HINFO AAAA RRSIG
"""


def chain(flags: int = 1, *keys: str, types: dict[str, str] | None = None) -> list[ResourceRecord]:
    """Records of the appendix A chain, those whose owner hash starts with one of ``keys``
    (all when none), with ``types`` replacing the bitmap of some."""
    lines = []
    for line in RFC5155_CHAIN.splitlines():
        owner, following, *bitmap = line.split()
        if keys and not owner.startswith(keys):
            continue
        for prefix, replaced in (types or {}).items():
            if owner.startswith(prefix):
                bitmap = replaced.split()
        lines.append(
            f"{owner}.example. 3600 IN NSEC3 1 {flags} 12 aabbccdd {following} {' '.join(bitmap)}"
        )
    return parse_zone("\n".join(lines).replace(" HINFO", " TYPE13"))


def test_the_chain_is_the_zone_of_appendix_a() -> None:
    records = chain()
    owners = {r.name.split(".")[0] for r in records}
    assert owners == set(RFC5155_HASHES.values())
    assert all(isinstance(r.rdata, NSEC3) and r.rdata.opt_out for r in records)


B1 = ("a.c.x.w.example.", ("0p9m", "b4um", "35mt"))  # x.w is the closest encloser
B5 = ("k8ud", "q04j", "r53b")  # w.example, the cover of z.w.example, and *.w.example


@pytest.mark.parametrize(
    ("keys", "types", "with_opt_out", "without"),
    [
        # B.1 as published; without opt-out the same records prove the name error.
        (B1[1], None, OPT_OUT, OK),
        # Without b4um the apex is the only encloser found, and w.example is not covered.
        (("0p9m", "35mt"), None, no(R.NEXT_CLOSER_NOT_COVERED), None),
        (("35mt",), None, no(R.NO_CLOSEST_ENCLOSER), None),
        (("b4um", "35mt"), None, no(R.NEXT_CLOSER_NOT_COVERED), None),
        (("0p9m", "b4um"), None, no(R.WILDCARD_NOT_DENIED), None),
        (B1[1], {"b4um": "DNAME RRSIG"}, no(R.DNAME), None),
        (B1[1], {"b4um": "NS"}, (INSECURE, R.INSECURE_DELEGATION), None),
        (B1[1], {"b4um": "NS DS RRSIG"}, no(R.DELEGATION), None),
    ],
)
def test_appendix_b1_name_error(
    keys: tuple[str, ...],
    types: dict[str, str] | None,
    with_opt_out: tuple[DenialStatus, DenialReason],
    without: tuple[DenialStatus, DenialReason] | None,
) -> None:
    for flags, expected in ((1, with_opt_out), (0, without or with_opt_out)):
        result = prove_nxdomain(B1[0], chain(flags, *keys, types=types), "example.")
        assert outcome(result) == expected
        if result.status in (PROVED, INSECURE) and expected[1] is not R.INSECURE_DELEGATION:
            assert result.closest_encloser == "x.w.example."


def test_appendix_b1_with_a_record_for_the_name_itself() -> None:
    digest = base64.b32hexencode(nsec3_hash(B1[0], SALT, 12)).decode().lower()
    extra = parse_zone(
        f"{digest}.example. 3600 IN NSEC3 1 1 12 aabbccdd {digest} A RRSIG", "example."
    )
    result = prove_nxdomain(B1[0], chain(1, *B1[1]) + extra, "example.")
    assert outcome(result) == no(R.NAME_EXISTS)


@pytest.mark.parametrize(
    ("qname", "qtype", "keys", "types", "with_opt_out", "without"),
    [
        # B.2: ns1.example has no MX.
        ("ns1.example.", MX, ("2t7b",), None, OK, OK),
        ("ns1.example.", A, ("2t7b",), None, no(R.TYPE_EXISTS), None),
        ("ns1.example.", MX, ("2t7b",), {"2t7b": "CNAME RRSIG"}, no(R.CNAME_EXISTS), None),
        ("ns1.example.", MX, ("2t7b",), {"2t7b": "NS"}, (INSECURE, R.INSECURE_DELEGATION), None),
        ("ns1.example.", MX, ("2t7b",), {"2t7b": "NS DS"}, no(R.DELEGATION), None),
        ("ns1.example.", DS, ("2t7b",), {"2t7b": "NS"}, OK, None),
        ("ns1.example.", MX, (), None, no(R.NO_RECORDS), None),
        # B.2.1: y.w.example is an empty non-terminal.
        ("y.w.example.", A, ("ji6n",), None, OK, None),
        ("y.w.example.", A, ("35mt",), None, no(R.NO_CLOSEST_ENCLOSER), None),
        # B.5: a.z.w.example has no AAAA: *.w.example matches and has none.
        ("a.z.w.example.", AAAA, ("k8ud", "q04j", "r53b"), None, OPT_OUT, OK),
        ("a.z.w.example.", AAAA, ("q04j", "r53b"), None, no(R.NO_CLOSEST_ENCLOSER), None),
        ("a.z.w.example.", AAAA, ("k8ud", "r53b"), None, no(R.NEXT_CLOSER_NOT_COVERED), None),
        ("a.z.w.example.", AAAA, ("k8ud", "q04j"), None, OPT_OUT, no(R.NO_MATCHING_RECORD)),
        ("a.z.w.example.", MX, B5, None, no(R.TYPE_EXISTS), None),
        ("a.z.w.example.", AAAA, B5, {"r53b": "CNAME"}, no(R.CNAME_EXISTS), None),
        # B.3's delegation: c.example sits in an opt-out span, so its DS is not proved absent.
        ("c.example.", DS, ("0p9m", "35mt"), None, OPT_OUT, no(R.NO_MATCHING_RECORD)),
        # B.6: DS of example asked of example itself: the apex NSEC3 must not deny a DS
        # (RFC 6840 section 4.4, as Unbound reads it).
        ("example.", DS, ("0p9m",), None, no(R.CHILD_SIDE), None),
    ],
)  # fmt: skip
def test_appendix_b_no_data(
    qname: str,
    qtype: int,
    keys: tuple[str, ...],
    types: dict[str, str] | None,
    with_opt_out: tuple[DenialStatus, DenialReason],
    without: tuple[DenialStatus, DenialReason] | None,
) -> None:
    for flags, expected in ((1, with_opt_out), (0, without or with_opt_out)):
        records = chain(flags, *keys, types=types) if keys else []
        assert outcome(prove_nodata(qname, qtype, records, "example.")) == expected


@pytest.mark.parametrize(
    ("child", "keys", "types", "with_opt_out", "without"),
    [
        # B.3: mc.c.example is referred to the unsigned zone c.example.
        ("c.example.", ("0p9m", "35mt"), None, OPT_OUT, no(R.NOT_OPT_OUT)),
        ("c.example.", ("0p9m",), None, no(R.NEXT_CLOSER_NOT_COVERED), None),
        # A delegation with its own NSEC3: NS, no DS.
        ("ns1.example.", ("2t7b",), {"2t7b": "NS"}, OK, None),
        ("ns1.example.", ("2t7b",), {"2t7b": "NS DS RRSIG"}, no(R.DS_EXISTS), None),
        ("ns1.example.", ("2t7b",), None, no(R.NOT_A_DELEGATION), None),
        ("ns1.example.", ("2t7b",), {"2t7b": "NS SOA"}, no(R.CHILD_SIDE), None),
        # Below the insecure delegation a.example (made so): it proves nothing about b.a.
        ("b.a.example.", ("0p9m", "35mt"), {"35mt": "NS"}, no(R.INSECURE_DELEGATION), None),
        ("example.", ("0p9m",), None, no(R.OUT_OF_ZONE), None),
    ],
)  # fmt: skip
def test_appendix_b_no_ds(
    child: str,
    keys: tuple[str, ...],
    types: dict[str, str] | None,
    with_opt_out: tuple[DenialStatus, DenialReason],
    without: tuple[DenialStatus, DenialReason] | None,
) -> None:
    for flags, expected in ((1, with_opt_out), (0, without or with_opt_out)):
        result = prove_no_ds(child, chain(flags, *keys, types=types), "example.")
        assert outcome(result) == expected


@pytest.mark.parametrize(
    ("labels", "keys", "with_opt_out", "without"),
    [
        # B.4: a.z.w.example MX comes from *.w.example; z.w.example must not exist.
        (2, ("q04j",), OPT_OUT, OK),
        (2, ("r53b",), no(R.NEXT_CLOSER_NOT_COVERED), None),
        (4, ("q04j",), no(R.WRONG_WILDCARD), None),
        (0, ("q04j",), no(R.OUT_OF_ZONE), None),
    ],
)
def test_appendix_b4_wildcard_answer(
    labels: int,
    keys: tuple[str, ...],
    with_opt_out: tuple[DenialStatus, DenialReason],
    without: tuple[DenialStatus, DenialReason] | None,
) -> None:
    for flags, expected in ((1, with_opt_out), (0, without or with_opt_out)):
        result = prove_wildcard_answer("a.z.w.example.", labels, chain(flags, *keys), "example.")
        assert outcome(result) == expected


def test_nsec3_records_that_do_not_count() -> None:
    good = chain(0, "2t7b")
    assert prove_nodata("ns1.example.", MX, good, "example.").proved
    (record,) = good
    rdata = record.rdata
    assert isinstance(rdata, NSEC3)

    def changed(name: str = record.name, **fields: object) -> list[ResourceRecord]:
        values = {f: getattr(rdata, f) for f in NSEC3.__fields__} | fields
        return [ResourceRecord(name, 50, IN, 60, NSEC3(**values))]

    for records in (
        changed(flags=2),  # an unknown flag (RFC 5155 section 8.2)
        changed(next_hashed=rdata.next_hashed[:19]),
        changed("wt7b4g4vsa5smi47k61mv5bv1a22bojr.example."),  # not base32hex
        changed("2t7b4g4vsa5smi47k61mv5bv1a22boj.example."),  # too short
        changed("2t7b4g4vsa5smi47k61mv5bv1a22bojr.sub.example."),  # not right below the zone
    ):
        assert outcome(prove_nodata("ns1.example.", MX, records, "example.")) == (
            NOT_PROVED,
            R.NO_RECORDS,
        )
    # An unknown hash algorithm: insecure-ish, not bogus.
    assert outcome(prove_nodata("ns1.example.", MX, changed(algorithm=2), "example.")) == (
        UNSUPPORTED,
        R.UNKNOWN_HASH,
    )
    # RFC 9276: above the limit the answer is insecure, and nothing is hashed.
    many = changed(iterations=MAX_ITERATIONS + 1)
    assert outcome(prove_nodata("ns1.example.", MX, many, "example.")) == (
        UNSUPPORTED,
        R.TOO_MANY_ITERATIONS,
    )
    assert prove_nodata("ns1.example.", MX, many, "example.", max_iterations=200).status is (
        NOT_PROVED  # hashed with 151 iterations, the name no longer matches the owner
    )
    assert prove_nodata("ns1.example.", MX, many, "example.").insecure


# ---------------------------------------------------------------- generated zones

label = st.text(alphabet="abc", min_size=1, max_size=2)
relative = st.lists(label, min_size=1, max_size=3).map(lambda parts: ".".join(parts) + ".zone.")


def existing(data_names: set[str]) -> set[str]:
    """Every name that exists: those with data, and the empty non-terminals above them."""
    return {a for n in data_names for a in ancestors(n) if is_subdomain(a, "zone.")}


def nsec_chain(data_names: set[str]) -> list[ResourceRecord]:
    ordered = sorted(data_names, key=dns.name.from_text)  # dnspython's canonical order
    return [
        ResourceRecord(n, 47, IN, 60, NSEC(ordered[(i + 1) % len(ordered)], (A, 46, 47)))
        for i, n in enumerate(ordered)
    ]


def nsec3_chain(names: set[str], flags: int = 0) -> list[ResourceRecord]:
    hashed = sorted((base64.b32hexdecode(dns.dnssec.nsec3_hash(n, "ab", 2, 1)), n) for n in names)
    records = []
    for i, (digest, _) in enumerate(hashed):
        following = hashed[(i + 1) % len(hashed)][0]
        owner = base64.b32hexencode(digest).decode().lower() + ".zone."
        rdata = NSEC3(1, flags, 2, b"\xab", following, (A, 46))
        records.append(ResourceRecord(owner, 50, IN, 60, rdata))
    return records


def deepest_existing(qname: str, names: set[str]) -> str:
    keys = {name_key(n) for n in names}
    return next(a for a in ancestors(qname) if name_key(a) in keys)


@BOUNDED
@given(st.sets(relative, min_size=1, max_size=8), relative)
def test_generated_nsec_zones(names: set[str], qname: str) -> None:
    data = names | {"zone."}
    records = nsec_chain(data)
    alive = existing(data)
    if qname in alive:
        assert outcome(prove_nxdomain(qname, records, "zone."))[0] is NOT_PROVED
        assert prove_nodata(qname, MX, records, "zone.").proved
        assert outcome(prove_nodata(qname, A, records, "zone.")) == (
            OK if qname not in data else no(R.TYPE_EXISTS)
        )
    else:
        result = prove_nxdomain(qname, records, "zone.")
        assert result.proved
        assert result.closest_encloser == deepest_existing(qname, alive)
        assert not prove_nodata(qname, MX, records, "zone.").proved


@BOUNDED
@given(st.sets(relative, min_size=1, max_size=8), relative)
def test_generated_nsec3_zones(names: set[str], qname: str) -> None:
    alive = existing(names | {"zone."})
    records = nsec3_chain(alive)
    if qname in alive:
        assert outcome(prove_nxdomain(qname, records, "zone.")) == no(R.NAME_EXISTS)
        assert prove_nodata(qname, MX, records, "zone.").proved
    else:
        result = prove_nxdomain(qname, records, "zone.")
        assert outcome(result) == OK
        assert result.closest_encloser == deepest_existing(qname, alive)
        assert not prove_nodata(qname, MX, records, "zone.").proved
        # With opt-out everywhere the same proof only makes the answer insecure.
        assert outcome(prove_nxdomain(qname, nsec3_chain(alive, 1), "zone.")) == (
            INSECURE,
            R.OPT_OUT,
        )


def test_nsec_of_another_zone_does_not_hide_the_nsec3_of_this_one() -> None:
    stray = ResourceRecord("x.other.", 47, IN, 60, NSEC("z.other.", (A,)))
    records = [stray, *chain(0, "2t7b")]
    assert prove_nodata("ns1.example.", MX, records, "example.").proved
    assert outcome(prove_nodata("x.other.", A, records, "other.")) == no(R.TYPE_EXISTS)
