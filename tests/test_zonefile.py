"""The master-file reader: RFC 1035 section 5 syntax, errors with file and line, and
agreement with dnspython's zone reader on the lab's zones, named.root and a signed zone."""

from __future__ import annotations

import base64
from pathlib import Path

import dns.dnssec
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resolver.iterate.hints import parse_root_hints
from resolver.wire import ResourceRecord, RRType
from resolver.wire.dnssec_rdata import DNSKEY, DS
from resolver.wire.names import labels_to_text, name_key, name_to_wire
from resolver.wire.rdata import NS, SOA, TXT, A, Opaque
from resolver.wire.rdata_text import absolute_name, parse_ttl
from resolver.wire.zonefile import ZoneFileError, entries, load_zone, parse_zone

ROOT = Path(__file__).resolve().parent.parent
LAB_ZONES = sorted((ROOT / "resolver" / "lab" / "zones").glob("*.zone"))
BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
IN = 1


class PlainWriter:
    def __init__(self) -> None:
        self.buf = bytearray()

    def write_name(self, name: str, compress: bool) -> None:
        self.buf += name_to_wire(name)


def plain(record: ResourceRecord) -> tuple[bytes, int, int, int, bytes]:
    out = PlainWriter()
    record.rdata.write(out)
    owner = name_to_wire(record.name).lower()
    return (owner, record.rrtype, record.rrclass, record.ttl, bytes(out.buf))


def dnspython_view(zone: dns.zone.Zone) -> list[tuple[bytes, int, int, int, bytes]]:
    view = []
    for name, rdataset in zone.iterate_rdatasets():
        absolute = name.derelativize(zone.origin)
        for rdata in rdataset:
            wire = rdata.to_wire(origin=zone.origin)
            view.append(
                (absolute.to_wire().lower(), rdataset.rdtype, rdataset.rdclass, rdataset.ttl, wire)
            )
    return sorted(view)


# ---------------------------------------------------------------- syntax


def test_directives_relative_names_and_inheritance() -> None:
    text = """\
$ORIGIN example.
$TTL 1h
@        IN SOA ns hostmaster ( 1 ; serial
                                 2h 30m 1w 5m )
         NS     ns            ; owner, TTL and class inherited
ns    60 A      192.0.2.1     ; TTL before class...
www   IN 120 A  192.0.2.2     ; ...or after
$ORIGIN sub                   ; relative to the origin before
host     A      192.0.2.3
*        TXT    "semi;colon" "quote\\"d" plain \\065\\; "(parens)"
"""
    records = parse_zone(text, source="t.zone")
    assert [(r.name, RRType.text(r.rrtype), r.ttl) for r in records] == [
        ("example.", "SOA", 3600),
        ("example.", "NS", 3600),
        ("ns.example.", "A", 60),
        ("www.example.", "A", 120),
        ("host.sub.example.", "A", 3600),
        ("*.sub.example.", "TXT", 3600),
    ]
    assert records[0].rdata == SOA("ns.example.", "hostmaster.example.", 1, 7200, 1800, 604800, 300)
    assert records[1].rdata == NS("ns.example.")
    assert records[5].rdata == TXT((b"semi;colon", b'quote"d', b"plain", b"A;", b"(parens)"))


TTL_CASES = [
    "a. 10 A 192.0.2.1\nb. A 192.0.2.2\n. SOA m. r. 1 2 3 4 77\nd. A 192.0.2.4\n"
    "e. 5 A 192.0.2.5\n$TTL 9\nf. A 192.0.2.6\ng. 3 A 192.0.2.7\nh. A 192.0.2.8\n",
    ". SOA m. r. 1 2 3 4 77\nd. A 192.0.2.4\ne. 5 A 192.0.2.5\nf. A 192.0.2.6\n",
    "$TTL 1d\n. SOA m. r. 1 2 3 4 77\nd. 7 A 192.0.2.4\ne. A 192.0.2.5\n",
]


@pytest.mark.parametrize("text", TTL_CASES)
def test_ttl_rules_of_rfc_1035_and_rfc_2308_as_dnspython_applies_them(text: str) -> None:
    ours = [rr.ttl for rr in parse_zone(text)]
    zone = dns.zone.from_text(text, origin=".", relativize=False, check_origin=False)
    theirs = {n.to_text(): rds.ttl for n, rds in zone.iterate_rdatasets()}
    assert ours == [theirs[rr.name] for rr in parse_zone(text)]


def test_ttl_defaults_and_units() -> None:
    assert [r.ttl for r in parse_zone(TTL_CASES[0])] == [10, 10, 10, 10, 5, 9, 3, 9]
    assert [r.ttl for r in parse_zone(TTL_CASES[1])] == [77, 77, 5, 5]
    assert parse_zone("x. A 192.0.2.1", default_ttl=3600)[0].ttl == 3600
    with pytest.raises(ZoneFileError, match="no TTL"):
        parse_zone("x. A 192.0.2.1")
    assert [parse_ttl(t) for t in ("0", "1w2d3h4m5s", "90M", "4294967295")] == [
        0, 788645, 5400, 4294967295,
    ]  # fmt: skip
    for bad in ("1x", "h", "1h2", "4294967296", "-1"):
        with pytest.raises(ValueError):
            parse_ttl(bad)


def test_classes_and_types_by_number_and_generic_rdata() -> None:
    records = parse_zone(
        "a. 1 CLASS1 TYPE1 192.0.2.1\n"
        "b. 1 CH TXT hello\n"
        "c. 1 IN TYPE65280 \\# 3 abcdef\n"
        "d. 1 IN A \\# 4 C0000201\n"
        "e. 1 IN TYPE65281 \\# 0\n"
    )
    assert [(r.rrclass, r.rrtype) for r in records] == [
        (1, 1),
        (3, 16),
        (1, 65280),
        (1, 1),
        (1, 65281),
    ]
    assert records[0].rdata == records[3].rdata == A("192.0.2.1")  # \# of a known type is typed
    assert records[2].rdata == Opaque(bytes.fromhex("abcdef"))
    assert records[4].rdata == Opaque(b"")


def test_names_with_escapes_and_at() -> None:
    assert absolute_name("@", "example.") == "example."
    assert absolute_name("a\\.b", "example.") == "a\\.b.example."  # an escaped dot is not a root
    assert absolute_name("a\\\\.", "example.") == "a\\\\."  # an escaped backslash, then the root
    assert absolute_name("\\065bc", ".") == "Abc."
    assert absolute_name(".", "example.") == "."
    with pytest.raises(ValueError, match="bad name"):
        absolute_name("a" * 64, ".")
    with pytest.raises(ValueError, match="bad name"):
        absolute_name("a..b.", ".")


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("a. 1 A 192.0.2.1\n$INCLUDE other.zone\n", 2, "\\$INCLUDE is not supported"),
        ("$GENERATE 1-2 a$ A 192.0.2.$\n", 1, "unknown directive"),
        ("$TTL\n", 1, "exactly one"),
        ("a. 1 A 192.0.2.1\nb. 1 A (\n 192.0.2.2\n", 2, "never closed"),
        ("a. 1 A 192.0.2.1 )\n", 1, "without '\\('"),
        ('a. 1 TXT "open\n', 1, "not closed"),
        ("a. 1 BOGUS x\n", 1, "unknown record type"),
        ("a. 1 A 192.0.2\n", 1, "4 octets"),
        ("a. 1 AAAA fe80::1%eth0\n", 1, "scope"),
        ("a. 1 MX 10\n", 1, "MX takes 2 fields"),
        (" 1 A 192.0.2.1\n", 1, "without an owner"),
        ("a. 1 IN\n", 1, "without a type"),
        ("a. 1 HINFO cpu os\n", 1, "no text form known for HINFO"),
        ("a. 1 TYPE1 \\# 3 c00002\n", 1, "A rdata is not 4 octets"),
        ("a. 1 TYPE1 \\# 4 c00002\n", 1, "says 4 octets"),
        ('a. 1 TXT "' + "x" * 256 + '"\n', 1, "longer than 255"),
        ("a. 1 TXT \\300\n", 1, "not a byte"),
        ("\n\n; comment\nx. 1 A 192.0.2.1\ny. 1 A ::1\n", 5, "4 octets"),
    ],
)
def test_errors_name_the_file_and_line(text: str, line: int, reason: str) -> None:
    with pytest.raises(ZoneFileError, match=f"^z.zone:{line}: .*{reason}") as caught:
        parse_zone(text, source="z.zone")
    assert caught.value.line == line


def test_load_zone_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.zone"
    path.write_text("$ORIGIN x.\n@ 5 A 192.0.2.1\nbad 5 A nope\n")
    with pytest.raises(ZoneFileError, match=f"^{path}:3: "):
        load_zone(path)
    with pytest.raises(ZoneFileError, match="cannot read"):
        load_zone(tmp_path / "missing.zone")
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ZoneFileError, match="not UTF-8"):
        load_zone(path)


# ---------------------------------------------------------------- against dnspython


@pytest.mark.parametrize("path", LAB_ZONES, ids=lambda p: p.name)
def test_lab_zones_read_as_dnspython_reads_them(path: Path) -> None:
    text = path.read_text()
    origin = "." if path.name == "root.zone" else path.name.removesuffix(".zone") + "."
    ours = sorted(plain(rr) for rr in parse_zone(text, origin, str(path)))
    theirs = dnspython_view(dns.zone.from_text(text, origin=origin, relativize=False))
    assert ours == theirs


def test_named_root_reads_as_dnspython_and_the_hints_parser_read_it() -> None:
    text = (ROOT / "named.root").read_text()
    records = parse_zone(text, source="named.root")
    theirs = dnspython_view(
        dns.zone.from_text(text, origin=".", relativize=False, check_origin=False)
    )
    assert sorted(plain(rr) for rr in records) == theirs
    hints = parse_root_hints(text)
    assert [name_key(s.name) for s in hints.servers] == [
        name_key(rr.rdata.target) for rr in records if isinstance(rr.rdata, NS)
    ]
    addresses = {(name_key(rr.name), rr.rdata.to_text()) for rr in records if rr.rrtype in (1, 28)}
    by_server = {(name_key(s.name), a) for s in hints.servers for a in s.ipv4 + s.ipv6}
    assert by_server == addresses


def test_a_signed_zone_reads_as_dnspython_reads_it() -> None:
    text = (ROOT / "resolver" / "lab" / "zones" / "example.com.zone").read_text()
    zone = dns.zone.from_text(text, origin="example.com.", relativize=False)
    private = ed25519.Ed25519PrivateKey.generate()
    dnskey = dns.dnssec.make_dnskey(private.public_key(), 15, flags=257)
    with zone.writer() as txn:
        dns.dnssec.sign_zone(
            zone, txn, keys=[(private, dnskey)], inception=1700000000, expiration=1800000000
        )
    signed = zone.to_text()  # relative names, RRSIG and NSEC and DNSKEY in dnspython's style
    ours = parse_zone(signed, "example.com.")
    kinds = {RRType.text(r.rrtype) for r in ours}
    assert {"RRSIG", "NSEC", "DNSKEY"} <= kinds
    assert sorted(plain(rr) for rr in ours) == dnspython_view(zone)


# ---------------------------------------------------------------- trust anchors


def test_deckard_trust_anchor_lines() -> None:
    text = (
        ". 3600 IN DS 19036 8 2 49AAC11D7B6F6446702E54A1607371607A1A41855200FD2CE1CDDE32F24E8FB5\n"
        ".\t\t\tIN DS 9352 8 2 14FBAADCF21A64138B28F41424812B0A2BDEEF443F5680D6CF337F72 B556998C \n"
        "example.com.    3600    IN      DS      2854 3 1 "
        "46e4ffc6e9a4793b488954bd3f0cc6af0dfb201b\n"
        "example. DNSKEY  257 3 7 AwEAAcUlFV1vhmqx6NSOUOq2R/dsR7Xm 3upJ ( "
        "j7IommWSpJABVfW8Q0rOvXdM6kzt+TAu92L9 AbsUdblMFin8CVF3n4s= )\n"
    )
    records = parse_zone(text, source="trust-anchors.txt", default_ttl=0)
    assert [(r.name, r.rrtype, r.ttl) for r in records] == [
        # default_ttl acts as a $TTL, which RFC 2308 puts before RFC 1035's "last TTL"
        (".", 43, 3600), (".", 43, 0), ("example.com.", 43, 3600), ("example.", 48, 0),
    ]  # fmt: skip
    assert records[1].rdata == DS(9352, 8, 2, bytes.fromhex(
        "14FBAADCF21A64138B28F41424812B0A2BDEEF443F5680D6CF337F72B556998C"))  # fmt: skip
    key = records[3].rdata
    assert isinstance(key, DNSKEY) and (key.flags, key.protocol, key.algorithm) == (257, 3, 7)
    joined = (
        "AwEAAcUlFV1vhmqx6NSOUOq2R/dsR7Xm3upJj7IommWSpJABVfW8Q0rOvXdM6kzt+TAu92L9"
        "AbsUdblMFin8CVF3n4s="
    )
    assert key.key == base64.b64decode(joined)  # the base64 of all four fields, joined


# ---------------------------------------------------------------- generated text

# Characters that mean something in a master file, to be escaped or quoted.
special = st.sampled_from(list(';()"\\ \t@$.'))
token_chars = st.one_of(st.characters(min_codepoint=0x21, max_codepoint=0x7E), special)


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@BOUNDED
@given(
    st.lists(st.text(token_chars, max_size=8), min_size=1, max_size=6),
    st.lists(st.sampled_from([" ", "\t", " ( ", " )", "\n"]), min_size=6, max_size=6),
    st.booleans(),
)
def test_tokenizer_gives_back_the_quoted_strings(
    values: list[str], separators: list[str], comment: bool
) -> None:
    # Quoted strings separated by blanks, parentheses (balanced below) and line breaks.
    parts, depth = ["owner"], 0
    for value, sep in zip(values, separators, strict=False):
        if sep == " )" and depth == 0:
            sep = " "
        if sep == "\n" and depth == 0:
            sep = "\t"
        depth += {" ( ": 1, " )": -1}.get(sep, 0)
        parts += [sep, quote(value)]
    parts += [" )"] * depth
    text = "".join(parts) + ('  ; a comment (with " and ) inside' if comment else "")
    (entry,) = entries(text)
    assert entry.has_owner and entry.tokens[0] == "owner"
    decoded = [t.replace('\\"', '"').replace("\\\\", "\\") for t in entry.tokens[1:]]
    assert decoded == values


labels = st.binary(min_size=1, max_size=10)
names = st.lists(labels, min_size=1, max_size=3).map(labels_to_text)


@BOUNDED
@given(
    st.lists(
        st.tuples(
            names, st.integers(0, 2**31), st.lists(st.binary(max_size=20), min_size=1, max_size=3)
        ),
        min_size=1,
        max_size=5,
        unique_by=lambda row: name_to_wire(row[0]).lower(),  # dnspython merges an owner's RRset
    )
)
def test_records_written_as_text_read_back(rows: list[tuple[str, int, list[bytes]]]) -> None:
    records = [ResourceRecord(n, 16, IN, ttl, TXT(tuple(s))) for n, ttl, s in rows]
    text = "\n".join(f"{r.name} {r.ttl} IN TXT {r.rdata.to_text()}" for r in records)
    assert parse_zone(text) == records
    theirs = dns.zone.from_text(text, origin=".", relativize=False, check_origin=False)
    assert sorted(set(map(plain, records))) == dnspython_view(theirs)
