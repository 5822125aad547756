"""The DNSSEC record types on the wire and in text, against dnspython both ways."""

from __future__ import annotations

import struct

import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.NSEC
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resolver.wire import (
    Header,
    Message,
    Question,
    ResourceRecord,
    RRType,
    WireError,
    parse_message,
    write_message,
)
from resolver.wire.dnssec_rdata import (
    DNSKEY,
    DS,
    NSEC,
    NSEC3,
    NSEC3PARAM,
    RRSIG,
    decode_type_bitmap,
    encode_type_bitmap,
)
from resolver.wire.names import labels_to_text, name_to_wire
from resolver.wire.rdata import Rdata, parse_rdata
from resolver.wire.rdata_base import type_from_text, type_to_text
from resolver.wire.rdata_text import rdata_from_text
from resolver.wire.zonefile import entries

BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
IN = 1


class PlainWriter:
    def __init__(self) -> None:
        self.buf = bytearray()

    def write_name(self, name: str, compress: bool) -> None:
        self.buf += name_to_wire(name)


def wire_of(rdata: Rdata) -> bytes:
    out = PlainWriter()
    rdata.write(out)
    return bytes(out.buf)


def from_text(rrtype: int, text: str, origin: str = ".") -> Rdata:
    """Our text reader on one line of fields, tokenized as a master file would be."""
    (entry,) = entries(" " + text)
    return rdata_from_text(rrtype, entry.tokens, origin)


# RFC 4034's own examples (sections 2.3, 3.3, 4.3, 5.4) and RFC 5155 appendix A records.
EXAMPLES = [
    ("DNSKEY", "256 3 5 AQPSKmynfzW4kyBv015MUG2DeIQ3Cbl+BBZH4b/0PY1kxkmvHjcZc8no"
               "kfzj31GajIQKY+5CptLr3buXA10hWqTkF7H6RfoRqXQeogmMHfpftf6zMv1LyBUgia7za6"
               "ZEzOJBOztyvhjL742iU/TpPSEDhm2SNKLijfUppn1UaNvv4w=="),
    ("RRSIG", "A 5 3 86400 20030322173103 20030220173103 2642 example.com. oJB1W6WNGv+ldvQ3WDG0"
              "MQkg5IEhjRip8WTrPYGv07h108dUKGMeDPKijVCHX3DDKdfb+v6oB9wfuh3DTJXUAfI/M0zmO/z"
              "z8bW0Rznl8O3tGNazPwQKkRN20XPXV6nwwfoXmJQbsLNrLfkGJ5D6fwFm8nN+6pBzeDQfsS3Ap3o="),
    ("NSEC", "host.example.com. A MX RRSIG NSEC TYPE1234"),
    ("DS", "60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118"),
    ("DS", "20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"),
    ("NSEC3", "1 1 12 aabbccdd 2vptu5timamqttgl4luu9kg21e0aor3s A RRSIG"),
    ("NSEC3", "1 0 0 - 2vptu5timamqttgl4luu9kg21e0aor3s"),
    ("NSEC3", "1 1 12 aabbccdd kohar7mbb8dc2ce8a9qvl8hon4k53uhi MX DNSKEY NS SOA NSEC3PARAM RRSIG"),
    ("NSEC3PARAM", "1 0 12 aabbccdd"),
    ("NSEC3PARAM", "1 0 0 -"),
    ("NSEC", "\\000.example. NS DS RRSIG NSEC TYPE65534"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "text"), EXAMPLES)
def test_published_examples_agree_with_dnspython(kind: str, text: str) -> None:
    theirs = dns.rdata.from_text(IN, kind, text)
    wire = theirs.to_wire()
    rrtype = dns.rdatatype.from_text(kind)
    ours = parse_rdata(rrtype, wire, 0, len(wire))
    assert type(ours).__name__ == kind
    assert wire_of(ours) == wire
    assert from_text(rrtype, text) == ours  # our text reader agrees with dnspython's
    assert dns.rdata.from_text(IN, kind, ours.to_text()) == theirs  # and so does our writer
    assert from_text(rrtype, ours.to_text()) == ours


def test_fields_of_the_rfc_4034_rrsig_example() -> None:
    rrsig = from_text(46, EXAMPLES[1][1])
    assert isinstance(rrsig, RRSIG)
    assert (rrsig.type_covered, rrsig.algorithm, rrsig.labels, rrsig.original_ttl) == (
        1,
        5,
        3,
        86400,
    )
    assert (rrsig.expiration, rrsig.inception) == (1048354263, 1045762263)
    assert (rrsig.key_tag, rrsig.signer, len(rrsig.signature)) == (2642, "example.com.", 128)
    assert from_text(46, "A 5 3 86400 1048354263 1045762263 2642 example.com. AAAA") == RRSIG(
        1, 5, 3, 86400, 1048354263, 1045762263, 2642, "example.com.", b"\x00\x00\x00"
    )


def test_text_forms_the_rfcs_allow() -> None:
    # Base64, hex and base32hex split over several fields; mnemonics for algorithms.
    assert from_text(48, "257 3 RSASHA256 AwEA AQ==") == DNSKEY(257, 3, 8, b"\x03\x01\x00\x01")
    assert from_text(43, "1 ECDSAP256SHA256 2 AB CD") == DS(1, 13, 2, b"\xab\xcd")
    # Relative names are completed with the origin.
    nsec = from_text(47, "host A", origin="example.")
    assert nsec == NSEC("host.example.", (1,))
    # The types of a bitmap come out sorted and once each.
    assert from_text(47, "a. RRSIG A NSEC A").types == (1, 46, 47)  # type: ignore[union-attr]
    assert from_text(50, "1 0 0 - 2vptu5timamqttgl4luu9kg21e0aor3s").types == ()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("rrtype", "text"),
    [
        (43, "1 8 2"),  # no digest
        (43, "1 8 2 ABC"),  # odd hex
        (43, "1 8 2 XY"),
        (43, "65536 8 2 AB"),
        (48, "257 3 8"),  # no key
        (48, "257 3 8 not*base64"),
        (48, "257 3 UNKNOWNALG AQ=="),
        (46, "A 8 2 3600 20240101000000 20230101000000 1 example."),  # no signature
        (46, "BOGUS 8 2 3600 20240101000000 20230101000000 1 example. AA=="),
        (46, "A 8 2 3600 20241301000000 20230101000000 1 example. AA=="),  # month 13
        (46, "A 8 2 3600 4294967296 20230101000000 1 example. AA=="),
        (47, "next. NOT-A-TYPE"),
        (50, "1 0 0 - !!!"),  # not base32hex
        (50, "1 0 0 zz 2vptu5timamqttgl4luu9kg21e0aor3s"),  # bad salt
        (51, "1 0 0"),
        (51, "1 0 65536 -"),
    ],
)
def test_bad_text_is_a_value_error(rrtype: int, text: str) -> None:
    with pytest.raises(ValueError):
        from_text(rrtype, text)


def test_types_by_name_and_number() -> None:
    assert type_from_text("nsec3param") == 51 == RRType.NSEC3PARAM
    assert RRType.NSEC3 == 50 and RRType.text(50) == "NSEC3"
    assert type_from_text("TYPE65534") == 65534
    assert type_to_text(65534) == "TYPE65534" and type_to_text(13) == "HINFO"
    for bad in ("TYPE65536", "TYPE", "NOPE", ""):
        with pytest.raises(ValueError):
            type_from_text(bad)


# ---------------------------------------------------------------- type bitmaps


@BOUNDED
@given(st.sets(st.integers(1, 0xFFFF), max_size=40))  # dnspython drops type 0 from bitmaps
def test_type_bitmap_matches_dnspython_and_reads_back(types: set[int]) -> None:
    ordered = tuple(sorted(types))
    ours = encode_type_bitmap(ordered)
    theirs = dns.rdtypes.ANY.NSEC.Bitmap.from_rdtypes(list(ordered))
    nsec = dns.rdtypes.ANY.NSEC.NSEC(IN, 47, dns.name.root, theirs)
    assert ours == nsec.to_wire()[1:]  # after the root name's one octet
    assert decode_type_bitmap(ours, 0, len(ours)) == ordered


@pytest.mark.parametrize(
    ("bitmap", "why"),
    [
        ("0001 40 0001 40", "out of order"),  # window 0 twice
        ("0101 40 0001 40", "out of order"),
        ("0000", "bad length"),
        ("0021" + "01" * 33, "bad length"),
        ("0002 40", "bad length"),  # says 2 octets, has 1
        ("00", "cut short"),
        ("0002 4000", "trailing zero"),
    ],
)
def test_bad_type_bitmaps_are_refused(bitmap: str, why: str) -> None:
    data = bytes.fromhex(bitmap)
    with pytest.raises(WireError, match=why):
        decode_type_bitmap(data, 0, len(data))


# ---------------------------------------------------------------- wire errors


SIGNER = name_to_wire("example.")
RRSIG_HEAD = struct.pack("!HBBIIIH", 1, 8, 2, 3600, 2, 1, 7)


@pytest.mark.parametrize(
    ("rrtype", "rdata", "why"),
    [
        (43, "0001 08", "too short"),
        (48, "0101 03", "too short"),
        (46, RRSIG_HEAD.hex(), "too short"),
        (46, RRSIG_HEAD.hex() + "c00c", "compressed"),
        (46, RRSIG_HEAD.hex() + "07 6578616d706c65", "runs past"),  # no root label
        (46, RRSIG_HEAD.hex() + "09 6578616d706c65", "label runs past"),
        (47, "c00c 0001 40", "compressed"),
        (47, "", "runs past"),
        (47, "00 0001", "bad length"),
        (50, "01 00 00", "too short"),
        (50, "01 00 0000 05 aabb", "salt runs past"),
        (50, "01 00 0000 00", "next hashed owner length missing"),
        (50, "01 00 0000 00 14 00", "next hashed owner runs past"),
        (50, "01 00 0000 00 00", "next hashed owner is empty"),
        (51, "01 00 0000 02 aa", "salt runs past"),
        (51, "01 00 0000 01 aa bb", "length does not match"),
    ],
)
def test_malformed_dnssec_rdata_is_a_wire_error(rrtype: int, rdata: str, why: str) -> None:
    data = bytes.fromhex(rdata)
    with pytest.raises(WireError, match=why):
        parse_rdata(rrtype, data, 0, len(data))


def test_names_in_rrsig_and_nsec_are_never_compressed_on_write() -> None:
    rrsig = RRSIG(1, 8, 2, 3600, 2, 1, 7, "example.", b"sig")
    nsec = NSEC("example.", (1, 2))
    msg = Message(
        Header(1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0),
        [Question("example.", 1, IN)],
        [
            ResourceRecord("example.", 46, IN, 60, rrsig),
            ResourceRecord("example.", 47, IN, 60, nsec),
        ],
        [],
        [],
    )
    wire = write_message(msg)
    assert wire.count(SIGNER) == 3  # question, RRSIG signer, NSEC next name
    assert parse_message(wire) == msg
    assert dns.message.from_wire(wire).answer[0][0].signer == dns.name.from_text("example.")


# ---------------------------------------------------------------- generated values

labels = st.binary(min_size=1, max_size=12)
names = st.lists(labels, max_size=4).map(labels_to_text)
u8, u16, u32 = st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
bitmaps = st.sets(st.integers(1, 0xFFFF), max_size=12).map(lambda s: tuple(sorted(s)))

# dnspython refuses digest type 0 and digests of the wrong size for the types it knows.
DIGEST_SIZES = {1: 20, 2: 32, 4: 48}
digests = st.one_of(
    st.sampled_from(sorted(DIGEST_SIZES)).flatmap(
        lambda t: st.tuples(
            st.just(t), st.binary(min_size=DIGEST_SIZES[t], max_size=DIGEST_SIZES[t])
        )
    ),
    st.tuples(st.integers(5, 255), st.binary(max_size=64)),
)

DNSSEC_VALUES = st.one_of(
    st.builds(lambda tag, alg, d: DS(tag, alg, *d), u16, u8, digests),
    st.builds(DNSKEY, u16, u8, u8, st.binary(max_size=300)),
    st.builds(RRSIG, u16, u8, u8, u32, u32, u32, u16, names, st.binary(max_size=300)),
    st.builds(NSEC, names, bitmaps),
    st.builds(
        NSEC3, u8, u8, u16, st.binary(max_size=255), st.binary(min_size=1, max_size=255), bitmaps
    ),
    st.builds(NSEC3PARAM, u8, u8, u16, st.binary(max_size=255)),
)
CODES = {DS: 43, DNSKEY: 48, RRSIG: 46, NSEC: 47, NSEC3: 50, NSEC3PARAM: 51}


@BOUNDED
@given(DNSSEC_VALUES)
def test_generated_values_round_trip_on_the_wire_and_in_text(rdata: Rdata) -> None:
    rrtype = CODES[type(rdata)]
    wire = wire_of(rdata)
    assert parse_rdata(rrtype, wire, 0, len(wire)) == rdata
    # dnspython reads the same bytes and writes them back unchanged.
    theirs = dns.rdata.from_wire(IN, rrtype, wire, 0, len(wire))
    assert theirs.to_wire() == wire
    # Our text form reads back to the same value (an empty digest, key, signature or
    # has no text of its own and comes out as RFC 3597's \# form).
    text = rdata.to_text()
    assert from_text(rrtype, text) == rdata
    if not text.startswith("\\#"):
        assert dns.rdata.from_text(IN, rrtype, text) == theirs


@BOUNDED
@given(st.lists(DNSSEC_VALUES, min_size=1, max_size=5))
def test_messages_with_dnssec_records_round_trip_and_agree_with_dnspython(
    values: list[Rdata],
) -> None:
    # One owner per record: dnspython keeps a single NSEC per name (a "singleton" type).
    records = [
        ResourceRecord(f"r{i}.example.", CODES[type(v)], IN, 300, v) for i, v in enumerate(values)
    ]
    msg = Message(Header(7, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0), [], records, [], [])
    wire = write_message(msg)
    assert parse_message(wire) == msg
    theirs = dns.message.from_wire(wire)
    assert [(rrset.name.to_text(), rrset.rdtype) for rrset in theirs.answer] == [
        (r.name, r.rrtype) for r in records
    ]
    assert [rrset[0].to_wire() for rrset in theirs.answer] == [wire_of(r.rdata) for r in records]
