"""Canonical form and order (RFC 4034 section 6) and signed data, against dnspython."""

from __future__ import annotations

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataset
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resolver.dnssec.canonical import (
    canonical_name_key,
    canonical_rdata,
    canonical_rrset,
    common_labels,
    signed_data,
    signed_owner,
    strictly_below,
    suffix,
)
from resolver.wire import ResourceRecord
from resolver.wire.dnssec_rdata import NSEC, RRSIG
from resolver.wire.names import labels_to_text
from resolver.wire.rdata import MX, NS, SOA, SRV, A, Opaque, parse_rdata

BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
IN = 1


def ours(rrset: dns.rrset.RRset) -> list[ResourceRecord]:
    """dnspython's RRset as the engine holds one: records parsed from the wire."""
    records = []
    for rdata in rrset:
        wire = rdata.to_wire()
        parsed = parse_rdata(rrset.rdtype, wire, 0, len(wire))
        records.append(ResourceRecord(rrset.name.to_text(), rrset.rdtype, IN, rrset.ttl, parsed))
    return records


def test_the_order_of_rfc_4034_section_6_1() -> None:
    expected = [
        "example.", "a.example.", "yljkjljk.a.example.", "Z.a.example.", "zABC.a.EXAMPLE.",
        "z.example.", "\\001.z.example.", "*.z.example.", "\\200.z.example.",
    ]  # fmt: skip
    assert sorted(reversed(expected), key=canonical_name_key) == expected


names = st.lists(st.binary(min_size=1, max_size=6), max_size=4).map(labels_to_text)
few_byte_names = st.lists(
    st.binary(min_size=1, max_size=3).map(lambda b: bytes(c % 4 + 0x41 + (c & 32) for c in b)),
    max_size=3,
).map(labels_to_text)


@BOUNDED
@given(st.lists(st.one_of(names, few_byte_names), min_size=2, max_size=8))
def test_order_matches_dnspython(pool: list[str]) -> None:
    theirs = sorted(pool, key=dns.name.from_text)
    assert [canonical_name_key(n) for n in sorted(pool, key=canonical_name_key)] == [
        canonical_name_key(n) for n in theirs
    ]


@BOUNDED
@given(names, names)
def test_name_helpers(a: str, b: str) -> None:
    shared = common_labels(a, b)
    assert canonical_name_key(suffix(a, shared)) == canonical_name_key(suffix(b, shared))
    assert strictly_below(a, suffix(a, shared)) == (shared < len(canonical_name_key(a)))
    relation = dns.name.from_text(a).fullcompare(dns.name.from_text(b))[0]
    assert strictly_below(a, b) == (relation == dns.name.NAMERELN_SUBDOMAIN)


def test_names_in_rdata_are_lower_cased_except_nsec() -> None:
    assert canonical_rdata(2, NS("NS1.Example.")) == b"\x03ns1\x07example\x00"
    assert canonical_rdata(15, MX(5, "Mail.EXAMPLE.")) == b"\x00\x05\x04mail\x07example\x00"
    soa = canonical_rdata(6, SOA("A.", "B.", 1, 2, 3, 4, 5))
    assert soa.startswith(b"\x01a\x00\x01b\x00")
    assert canonical_rdata(33, SRV(1, 2, 3, "T.")).endswith(b"\x01t\x00")
    rrsig = RRSIG(1, 8, 1, 60, 2, 1, 5, "EXAMPLE.", b"s")
    assert b"\x07example\x00" in canonical_rdata(46, rrsig)
    # RFC 6840 section 5.1: NSEC's next name keeps its case.
    assert canonical_rdata(47, NSEC("Next.Example.", (1,))).startswith(b"\x04Next\x07Example\x00")
    # Types kept opaque get their names lower-cased when section 6.2 lists them.
    dname = b"\x06Target\x07Example\x00"
    assert canonical_rdata(39, Opaque(dname)) == dname.lower()
    naptr = b"\x00\x01\x00\x02\x01S\x02SI\x00\x04Repl\x00"
    assert canonical_rdata(35, Opaque(naptr)) == naptr[:-6] + b"\x04repl\x00"
    assert canonical_rdata(65280, Opaque(b"ABC")) == b"ABC"
    assert canonical_rdata(39, Opaque(b"\xc0\x0c")) == b"\xc0\x0c"  # a pointer: left alone
    assert canonical_rdata(39, Opaque(b"\x05ab")) == b"\x05ab"  # cut short: left alone


def test_an_rrset_is_sorted_and_duplicates_go() -> None:
    records = [
        ResourceRecord("x.", 1, IN, 60, A(address))
        for address in ("192.0.2.2", "192.0.2.10", "192.0.2.2", "10.0.0.1")
    ]
    assert canonical_rrset(records) == [
        bytes([10, 0, 0, 1]),
        bytes([192, 0, 2, 2]),
        bytes([192, 0, 2, 10]),
    ]


@pytest.mark.parametrize(
    ("owner", "labels", "signed"),
    [
        ("a.b.example.", 3, "a.b.example."),
        ("a.b.example.", 2, "*.b.example."),
        ("a.b.example.", 1, "*.example."),
        ("a.b.example.", 0, "*."),
        ("*.example.", 1, "*.example."),
        ("A\\.b.example.", 1, "*.example."),
    ],
)
def test_signed_owner_of_wildcard_expansions(owner: str, labels: int, signed: str) -> None:
    assert signed_owner(owner, labels) == signed


RRSETS = [
    ("WWW.Example.", "A", ["192.0.2.1", "192.0.2.3", "192.0.2.2"]),
    ("Example.", "NS", ["NS2.Example.", "ns1.example."]),
    ("Example.", "MX", ["10 Mail.Example.", "5 Backup.ELSEWHERE."]),
    ("Example.", "SOA", ["NS1.Example. Host.Example. 1 2 3 4 5"]),
    ("Example.", "TXT", ['"b" "A"', '"a"']),
    ("a.Example.", "NSEC", ["Next.Example. A NS RRSIG"]),
    ("Example.", "DNSKEY", ["257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4="]),
    ("_s._t.Example.", "SRV", ["1 2 3 Target.Example."]),
    ("Example.", "DNAME", ["Target.EXAMPLE."]),
]


@pytest.mark.parametrize(("owner", "kind", "values"), RRSETS)
@pytest.mark.parametrize("labels", [None, 1])
def test_signed_data_is_what_dnspython_signs(
    owner: str, kind: str, values: list[str], labels: int | None
) -> None:
    rrset = dns.rrset.from_text(owner, 3000, "IN", kind, *values)
    count = len(dns.name.from_text(owner)) - 1 if labels is None else labels
    text = f"{kind} 15 {count} 3600 20300101000000 20200101000000 4711 Example. AAAA"
    rrsig = dns.rdata.from_text("IN", "RRSIG", text)
    theirs = dns.dnssec._make_rrsig_signature_data(rrset, rrsig)
    (parsed,) = ours(dns.rrset.from_rdata(owner, 60, rrsig))
    assert isinstance(parsed.rdata, RRSIG)
    assert signed_data(parsed.rdata, ours(rrset)) == theirs
