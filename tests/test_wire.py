"""The message codec: round trips, agreement with dnspython both ways, hostile input."""

from __future__ import annotations

import socket
import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resolver.wire import (
    Edns,
    Header,
    Message,
    MessageWriter,
    Question,
    Rcode,
    ResourceRecord,
    RRType,
    WireError,
    parse_message,
    write_message,
    write_query,
)
from resolver.wire.dnssec_rdata import DS
from resolver.wire.names import labels_to_text, name_key, name_to_wire
from resolver.wire.rdata import AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT, A, Opaque, Rdata

# Bounded so these two files stay well under 20 s: 300 examples for the fuzzing, 200 for
# the round trips of generated messages (each example is a whole message, slow to draw).
BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MESSAGES = settings(BOUNDED, max_examples=200)
IN = 1

# The compressed two-question packet of /work/shared/seeds/003 (Rust DNS tutorial, part 2).
SEED_003 = bytes.fromhex(
    "43e6 0100 0002 0000 0000 0000"
    "03 777777 0b 727573742d7472656e6473 03 636f6d 00 0001 0001"
    "03 646576 c010 0001 0001"
)


class PlainWriter:
    """A writer that never compresses: the uncompressed form of rdata and messages."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def write_name(self, name: str, compress: bool) -> None:
        self.buf += name_to_wire(name)


def plain_rdata(rdata: Rdata) -> bytes:
    out = PlainWriter()
    rdata.write(out)
    return bytes(out.buf)


def uncompressed_size(message: Message) -> int:
    size = 12 + sum(len(name_to_wire(q.name)) + 4 for q in message.question)
    for rr in message.answer + message.authority + message.additional:
        size += len(name_to_wire(rr.name)) + 10 + len(plain_rdata(rr.rdata))
    if message.edns is not None:
        size += 11 + sum(4 + len(value) for _, value in message.edns.options)
    return size


def rr(name: str, rdata: Rdata, rrtype: int | None = None, ttl: int = 3600) -> ResourceRecord:
    if rrtype is None:
        rrtype = {
            A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33
        }[type(rdata)]  # fmt: skip
    return ResourceRecord(name, rrtype, IN, ttl, rdata)


def message(*answer: ResourceRecord, edns: Edns | None = None, qname: str = "") -> Message:
    question = [Question(qname or answer[0].name, answer[0].rrtype)] if answer else []
    return Message(Header(0x1234, 1, 0, 1), question, list(answer), [], [], edns)


# ---------------------------------------------------------------- the seed packet


def test_seed_003_two_questions() -> None:
    msg = parse_message(SEED_003)
    assert msg.header.id == 0x43E6
    assert (msg.header.qr, msg.header.opcode, msg.header.rd) == (0, 0, 1)
    assert msg.question == [
        Question("www.rust-trends.com.", RRType.A, IN),
        Question("dev.rust-trends.com.", RRType.A, IN),
    ]
    assert msg.answer == msg.authority == msg.additional == []
    assert msg.edns is None
    # dnspython agrees, and our own writer produces the very same bytes.
    theirs = dns.message.from_wire(SEED_003)
    assert [q.name.to_text() for q in theirs.question] == [q.name for q in msg.question]
    assert write_message(msg) == SEED_003


# ---------------------------------------------------------------- every type

EVERY_TYPE = [
    rr("a.example.", A("192.0.2.1")),
    rr("a.example.", AAAA("2001:db8::1")),
    rr("example.", NS("ns1.example.")),
    rr("www.example.", CNAME("host.example.")),
    rr("1.2.0.192.in-addr.arpa.", PTR("a.example.")),
    rr("example.", MX(10, "mail.example.")),
    rr(
        "example.",
        SOA("ns1.example.", "host\\.master.example.", 2024010101, 7200, 900, 1209600, 300),
    ),
    rr("example.", TXT((b"v=spf1 -all", b"", b'quote" back\\slash \x00\xff'))),
    rr("_sip._tcp.example.", SRV(10, 60, 5060, "sip.example.")),
    rr("example.", Opaque(bytes.fromhex("0001 0203 0405")), rrtype=65280),
    rr("example.", Opaque(b""), rrtype=65281),
    rr("example.", DS(0xE3A3, 13, 2, b"\x12" * 32), rrtype=RRType.DS),
]


@pytest.mark.parametrize("record", EVERY_TYPE, ids=lambda r: RRType.text(r.rrtype))
def test_round_trip_every_type(record: ResourceRecord) -> None:
    msg = message(record, edns=Edns(1232))
    wire = write_message(msg)
    assert parse_message(wire) == msg
    # dnspython reads the same rdata (compared in uncompressed wire form, case kept).
    theirs = dns.message.from_wire(wire)
    (rrset,) = theirs.answer
    assert rrset.name.to_wire() == name_to_wire(record.name)
    assert (rrset.rdtype, rrset.rdclass, rrset.ttl) == (record.rrtype, IN, record.ttl)
    assert [rdata.to_wire() for rdata in rrset] == [plain_rdata(record.rdata)]


def test_text_of_records() -> None:
    texts = [record.to_text() for record in EVERY_TYPE]
    assert texts[0] == "a.example. 3600 A 192.0.2.1"
    assert texts[5] == "example. 3600 MX 10 mail.example."
    assert texts[7] == 'example. 3600 TXT "v=spf1 -all" "" "quote\\" back\\\\slash \\000\\255"'
    assert texts[9] == "example. 3600 TYPE65280 \\# 6 000102030405"
    assert texts[10] == "example. 3600 TYPE65281 \\# 0"


def test_unknown_type_is_opaque_and_never_compressed() -> None:
    """RFC 3597: unknown rdata that looks like a name comes back byte for byte."""
    looks_like_a_name = name_to_wire("www.example.com.") + b"\xc0\x0c" + b"\x03WWW\x00"
    record = rr("www.example.com.", Opaque(looks_like_a_name), rrtype=65280)
    msg = message(record, record, qname="www.example.com.")
    wire = write_message(msg)
    # The owner names were compressed, the rdata was not touched.
    assert wire.count(looks_like_a_name) == 2
    assert wire.count(b"\xc0\x0c") == 2 + 2  # two owners, and the two copies of the rdata
    back = parse_message(wire)
    assert back == msg
    assert back.answer[0].rdata.data == looks_like_a_name  # type: ignore[union-attr]
    theirs = dns.message.from_wire(wire)
    assert [r.to_wire() for r in theirs.answer[0]] == [looks_like_a_name]


def test_srv_target_is_not_compressed() -> None:
    record = rr("_x._tcp.example.", SRV(0, 0, 1, "_x._tcp.example."))
    wire = write_message(message(record))
    assert wire.endswith(struct.pack("!HHH", 0, 0, 1) + name_to_wire("_x._tcp.example."))


# ---------------------------------------------------------------- EDNS


def test_edns_round_trip_against_dnspython() -> None:
    cookie = bytes(range(8))
    edns = Edns(4096, 1, 0, 1, ((10, cookie), (65001, b"\xc0\x0c\x00"), (65002, b"")))
    msg = message(rr("a.example.", A("192.0.2.1")), edns=edns)
    msg.set_rcode(Rcode.BADVERS)
    assert (msg.header.rcode, msg.edns.ext_rcode, msg.rcode) == (0, 1, 16)  # type: ignore[union-attr]
    wire = write_message(msg)
    back = parse_message(wire)
    assert back == msg
    assert back.rcode == Rcode.BADVERS

    theirs = dns.message.from_wire(wire)
    assert theirs.rcode() == dns.rcode.BADVERS
    assert theirs.edns == 0
    assert theirs.payload == 4096
    assert theirs.ednsflags & dns.flags.DO
    assert [(o.otype, o.to_wire()) for o in theirs.options] == list(edns.options)


def test_edns_version_and_flags_from_dnspython() -> None:
    query = dns.message.make_query("Example.ORG.", "AAAA", use_edns=1, payload=1400,
                                   want_dnssec=True,
                                   options=[dns.edns.GenericOption(65000, b"hi")])  # fmt: skip
    query.set_rcode(0xABC)  # a 12-bit RCODE: 0xC in the header, 0xAB in EDNS
    msg = parse_message(query.to_wire())
    assert msg.edns == Edns(1400, 0xAB, 1, 1, ((65000, b"hi"),))
    assert msg.header.rcode == 0xC
    assert msg.rcode == 0xABC
    assert msg.additional == []
    assert msg.question == [Question("Example.ORG.", RRType.AAAA, IN)]


def test_small_payload_means_512() -> None:
    wire = write_message(message(rr("a.", A("192.0.2.1")), edns=Edns(100)))
    assert parse_message(wire).edns == Edns(512)


def test_write_query() -> None:
    wire = write_query("www.Example.com.", RRType.A, 7)
    theirs = dns.message.from_wire(wire)
    assert theirs.id == 7
    assert not theirs.flags & dns.flags.RD
    assert theirs.payload == 1232
    assert theirs.question[0].name.to_text() == "www.Example.com."
    assert parse_message(write_query("a.", 1, 1, rd=True, edns_payload=None)) == (
        Message(Header(1, rd=1), [Question("a.", 1)], [], [], [], None)
    )


# ---------------------------------------------------------------- dnspython -> ours


def dnspython_response() -> dns.message.Message:
    """A response using every type, mixed case, and names that compress."""
    query = dns.message.make_query("WwW.ExAmple.COM.", "A", want_dnssec=True)
    msg = dns.message.make_response(query)
    msg.flags |= dns.flags.AA | dns.flags.AD
    msg.use_edns(0, dns.flags.DO, 1232, options=[dns.edns.GenericOption(65001, b"\x01\x02")])
    add = dns.rrset.from_text
    msg.answer += [
        add("www.example.com.", 300, "IN", "CNAME", "Web.EXAMPLE.com."),
        dns.rrset.from_text_list("web.example.com.", 300, "IN", "A", ["192.0.2.1", "192.0.2.2"]),
        add("web.example.com.", 300, "IN", "AAAA", "2001:db8::53"),
        add("example.com.", 300, "IN", "MX", "10 mx.example.com."),
        add("example.com.", 300, "IN", "TXT", '"hello world" "semi;colon"'),
        add("_sip._udp.example.com.", 300, "IN", "SRV", "1 2 5060 sip.example.com."),
        add("2.0.192.in-addr.arpa.", 300, "IN", "PTR", "web.example.com."),
        add("example.com.", 300, "IN", "TYPE65280", "\\# 4 c00c0000"),
        add("example.com.", 300, "IN", "DS", "12345 13 2 " + "ab" * 32),
    ]
    msg.authority += [
        dns.rrset.from_text_list("example.com.", 86400, "IN", "NS",
                                 ["NS1.example.com.", "ns2.example.net."]),
        add("example.com.", 3600, "IN", "SOA", "ns1.example.com. hostmaster.example.com. "
                                               "2024010101 7200 900 1209600 300"),
    ]  # fmt: skip
    msg.additional += [
        add("ns1.example.com.", 86400, "IN", "A", "192.0.2.53"),
        add("ns2.example.net.", 86400, "IN", "AAAA", "2001:db8::35"),
    ]
    return msg


def dnspython_view(msg: dns.message.Message) -> list[list[tuple[bytes, int, int, int, bytes]]]:
    """Each section as (owner wire form, type, class, TTL, uncompressed rdata), per record."""
    return [
        [
            (rrset.name.to_wire(), rrset.rdtype, rrset.rdclass, rrset.ttl, rdata.to_wire())
            for rrset in section
            for rdata in rrset
        ]
        for section in (msg.answer, msg.authority, msg.additional)
    ]


def our_view(msg: Message) -> list[list[tuple[bytes, int, int, int, bytes]]]:
    return [
        [(name_to_wire(r.name), r.rrtype, r.rrclass, r.ttl, plain_rdata(r.rdata)) for r in section]
        for section in (msg.answer, msg.authority, msg.additional)
    ]


def lower_view(view: list[list[tuple[bytes, int, int, int, bytes]]]) -> object:
    """The view with names case-folded, in rdata too (DNSSEC canonical form, RFC 4034)."""

    def canonical(rrclass: int, rrtype: int, rdata: bytes) -> bytes:
        return dns.rdata.from_wire(rrclass, rrtype, rdata, 0, len(rdata)).to_digestable()

    return [
        [(name.lower(), t, c, ttl, canonical(c, t, rdata)) for name, t, c, ttl, rdata in section]
        for section in view
    ]


def test_dnspython_message_parses_to_the_same_fields() -> None:
    built = dnspython_response()
    wire = built.to_wire(want_shuffle=False)
    ours = parse_message(wire)
    arrived = dns.message.from_wire(wire)

    assert ours.header.id == built.id
    assert (ours.header.qr, ours.header.aa, ours.header.ad, ours.header.rd) == (1, 1, 1, 1)
    assert ours.edns == Edns(1232, 0, 0, 1, ((65001, b"\x01\x02"),))
    assert ours.rcode == built.rcode() == 0
    # Exactly what arrived, case included, compared with dnspython's own reading of the bytes.
    assert our_view(ours) == dnspython_view(arrived)
    # And the same as what was built, names compared as DNS compares them.
    assert lower_view(our_view(ours)) == lower_view(dnspython_view(built))
    # Case arrived where the writer could not compress it away: the question, the first
    # spelling of each suffix, and names inside rdata the writer met first.
    assert ours.question == [Question("WwW.ExAmple.COM.", RRType.A, IN)]
    assert ours.answer[0].name == "WwW.ExAmple.COM."  # pointer to the question
    assert ours.answer[0].rdata == CNAME("Web.ExAmple.COM.")
    assert ours.authority[0].rdata == NS("NS1.ExAmple.COM.")
    assert ours.additional[0].name == "NS1.ExAmple.COM."
    assert [name_key(r.name) for r in ours.answer[1:3]] == ["web.example.com."] * 2
    assert ours.answer[8].rdata == Opaque(bytes.fromhex("c00c0000"))
    # Writing it back gives dnspython the same content.
    assert dns.message.from_wire(write_message(ours)) == built


# ---------------------------------------------------------------- ours -> dnspython


def our_response() -> Message:
    records = [
        rr("WWW.Example.org.", CNAME("host.example.org.")),
        rr("host.example.org.", A("198.51.100.7")),
        rr("host.example.org.", A("198.51.100.8")),
        rr("host.example.org.", AAAA("2001:db8:0:1::7")),
    ]
    authority = [
        rr("example.org.", NS("ns.example.org."), ttl=86400),
        rr("example.org.", NS("ns.example.net."), ttl=86400),
        rr("example.org.", SOA("ns.example.org.", "root.example.org.", 1, 2, 3, 4, 5)),
    ]
    additional = [
        rr("ns.example.org.", A("198.51.100.53")),
        rr("example.org.", MX(5, "mx.example.org.")),
        rr("example.org.", TXT((b"a", b"b c"))),
        rr("_imap._tcp.example.org.", SRV(0, 1, 143, "mx.example.org.")),
        rr("7.100.51.198.in-addr.arpa.", PTR("host.example.org.")),
        rr("example.org.", Opaque(b"\x07example\x03org\x00"), rrtype=65534),
    ]
    return Message(
        Header(0xBEEF, 1, 0, 1, 0, 1, 1, 0, 1, 0, Rcode.NXDOMAIN),
        [Question("www.example.org.", RRType.A, IN)],
        records,
        authority,
        additional,
        Edns(1232, 0, 0, 1, ((12, b"\x00" * 4),)),
    )


def test_our_message_parses_in_dnspython() -> None:
    ours = our_response()
    wire = write_message(ours)
    theirs = dns.message.from_wire(wire)
    assert theirs.id == 0xBEEF
    assert theirs.flags & ~0xF == (
        dns.flags.QR | dns.flags.AA | dns.flags.RD | dns.flags.RA | dns.flags.AD
    )
    assert theirs.rcode() == dns.rcode.NXDOMAIN
    assert theirs.payload == 1232 and theirs.ednsflags & dns.flags.DO
    assert [(o.otype, o.to_wire()) for o in theirs.options] == [(12, b"\x00" * 4)]
    assert theirs.question[0].name.to_wire() == name_to_wire("www.example.org.")
    # The question spelled www in lower case first, so the answer owner points at it.
    expected = our_view(ours)
    expected[0][0] = (name_to_wire("www.example.org."), *expected[0][0][1:])
    assert dnspython_view(theirs) == expected
    assert parse_message(wire).answer[0].name == "www.example.org."


def test_our_output_is_compressed() -> None:
    ours = our_response()
    wire = write_message(ours)
    assert len(wire) < uncompressed_size(ours) - 100
    # The answer owner is a bare pointer to the question name at offset 12.
    qlen = len(name_to_wire("www.example.org."))
    assert wire[12 + qlen + 4 : 12 + qlen + 6] == b"\xc0\x0c"
    # As small as dnspython's own compression of the same content.
    theirs = dns.message.from_wire(wire)
    assert len(wire) <= len(theirs.to_wire(want_shuffle=False))


def test_referral_compresses_like_dnspython() -> None:
    query = dns.message.make_query("www.example.com.", "A")
    ref = dns.message.make_response(query)
    servers = [f"{c}.gtld-servers.net." for c in "abcdefghijklm"]
    ref.authority.append(dns.rrset.from_text_list("com.", 172800, "IN", "NS", servers))
    for i, host in enumerate(servers):
        ref.additional.append(dns.rrset.from_text(host, 172800, "IN", "A", f"192.0.2.{i}"))
    wire = ref.to_wire(want_shuffle=False)
    ours = parse_message(wire)
    assert [r.rdata for r in ours.authority] == [NS(s) for s in servers]
    again = write_message(ours)
    assert again == wire
    assert len(again) < uncompressed_size(ours)


def test_writer_compresses_case_insensitively() -> None:
    out = MessageWriter()
    out.write_name("Example.COM.", True)
    out.write_name("www.example.com.", True)
    assert bytes(out.buf) == b"\x07Example\x03COM\x00\x03www\xc0\x00"
    out.write_name("other.", False)
    out.write_name("OTHER.", True)
    assert bytes(out.buf).endswith(b"\x05other\x00\xc0\x13")


# ---------------------------------------------------------------- malformed input


def header(qd: int = 0, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!6H", 0x0102, 0x8000, qd, an, ns, ar)


def record(owner: bytes, rrtype: int, rdata: bytes, rdlength: int | None = None) -> bytes:
    length = len(rdata) if rdlength is None else rdlength
    return owner + struct.pack("!HHIH", rrtype, IN, 60, length) + rdata


ROOT = b"\x00"
EX = name_to_wire("example.")
OPT_OK = record(ROOT, 41, b"")


def q(name: bytes = EX) -> bytes:
    return name + b"\x00\x01\x00\x01"


MALFORMED = [
    # (packet, reason fragment, offset of the error)
    pytest.param(b"\x00" * 11, "shorter than a header", 11, id="short-header"),
    pytest.param(header(1), "name runs past the end", 12, id="missing-question"),
    pytest.param(header(1) + EX + b"\x00\x01", "question cut short", 21, id="question-cut"),
    pytest.param(header(1, 1) + q(), "name runs past the end", 25, id="short-answer"),
    pytest.param(header(0, 0, 2) + record(EX, 1, b"\x01\x02\x03\x04"),
                 "name runs past the end", 35, id="short-authority"),
    pytest.param(header(0, 0, 0, 1) + EX + b"\x00\x01\x00", "record header cut short", 21,
                 id="record-header-cut"),
    pytest.param(header(0, 1) + record(EX, 1, b"\x01\x02\x03", rdlength=4),
                 "rdata runs past the end", 31, id="truncated-rdata"),
    pytest.param(header(0, 1) + record(EX, 1, b"\x01\x02\x03\x04\x05"),
                 "A rdata is not 4 octets", 31, id="a-with-5-bytes"),
    pytest.param(header(0, 1) + record(EX, 28, b"\x00" * 4),
                 "AAAA rdata is not 16 octets", 31, id="aaaa-with-4-bytes"),
    pytest.param(header(0, 1) + record(EX, 2, EX + b"\xff"),
                 "NS rdata length does not match", 40, id="ns-name-ends-before-rdlength"),
    pytest.param(header(0, 1) + record(EX, 2, EX, rdlength=5),
                 "NS rdata length does not match", 40, id="ns-name-ends-after-rdlength"),
    pytest.param(header(0, 1) + record(EX, 5, EX[:-1], rdlength=8),
                 "name runs past the end", 39, id="cname-name-cut"),
    pytest.param(header(0, 1) + record(EX, 15, b"\x00\x01"), "MX rdata too short", 31,
                 id="mx-short"),
    pytest.param(header(0, 1) + record(EX, 33, b"\x00" * 6), "SRV rdata too short", 31,
                 id="srv-short"),
    pytest.param(header(0, 1) + record(EX, 6, ROOT + ROOT + b"\x00" * 19),
                 "SOA rdata length does not match", 33, id="soa-short"),
    pytest.param(header(0, 1) + record(EX, 16, b"\x05abc"), "TXT string runs past", 31,
                 id="txt-string-past-rdata"),
    pytest.param(header(0, 1) + record(EX, 16, b""), "TXT rdata is empty", 31, id="txt-empty"),
    pytest.param(header(0, 1) + record(EX, 1, b"\x01\x02\x03\x04") + b"\x00",
                 "trailing bytes", 35, id="trailing-garbage"),
    pytest.param(header(0, 0, 0, 2) + OPT_OK + OPT_OK, "more than one OPT", 23,
                 id="two-opt"),
    pytest.param(header(0, 0, 0, 1) + record(EX, 41, b""), "OPT record not owned by the root",
                 12, id="opt-not-root"),
    pytest.param(header(0, 0, 0, 1) + record(ROOT, 41, b"\x00\x0a\x00"),
                 "EDNS option header cut short", 23, id="edns-option-header-cut"),
    pytest.param(header(0, 0, 0, 1) + record(ROOT, 41, b"\x00\x0a\x00\x05abc"),
                 "EDNS option runs past", 27, id="edns-option-past-record"),
    pytest.param(header(1) + b"\xc0\x0c\x00\x01\x00\x01", "does not point backwards", 12,
                 id="pointer-to-itself"),
    pytest.param(header(1) + b"\x01a\xc0\x0c\x00\x01\x00\x01", "does not point backwards",
                 14, id="pointer-to-own-start"),
    # Loops hide in rdata we do not parse; an owner name then points into them.
    pytest.param(header(0, 2) + record(ROOT, 65280, b"\xc0\x19\xc0\x17")
                 + record(b"\xc0\x17", 1, b"\x01\x02\x03\x04"),
                 "does not point backwards", 23, id="pointer-loop"),
    pytest.param(header(0, 2) + record(ROOT, 65280, b"\xc0\x17")
                 + record(b"\xc0\x17", 1, b"\x01\x02\x03\x04"),
                 "does not point backwards", 23, id="pointer-loop-to-itself"),
    pytest.param(header(1) + b"\xc0\x0e\x00\x00\x01\x00\x01", "does not point backwards", 12,
                 id="forward-pointer"),
    pytest.param(header(1) + b"\xff\xff\x00\x01\x00\x01", "does not point backwards", 12,
                 id="pointer-past-end"),
    pytest.param(header(1) + b"\x01a\xc0", "compression pointer cut short", 14,
                 id="pointer-cut"),
    pytest.param(header(1) + b"\x40" + b"a" * 64 + q(ROOT), "reserved label type 0x40", 12,
                 id="label-type-01"),
    pytest.param(header(1) + b"\x80" + q(ROOT), "reserved label type 0x80", 12,
                 id="label-type-10"),
    pytest.param(header(1) + (b"\x3f" + b"a" * 63) * 4 + q(ROOT), "longer than 255 octets",
                 12 + 3 * 64, id="name-over-255"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "reason", "at"), MALFORMED)
def test_malformed_messages(data: bytes, reason: str, at: int) -> None:
    with pytest.raises(WireError) as caught:
        parse_message(data)
    assert reason in caught.value.reason
    assert caught.value.offset == at, caught.value


def test_name_over_255_through_pointers_in_a_message() -> None:
    piece = b"\x3f" + b"a" * 63
    data = header(3) + q(piece + piece + ROOT)  # 129 octets at 12
    data += q(piece + b"\xc0\x0c")  # 193 octets at 12 + 133
    data += q(piece + (0xC000 | (12 + 133)).to_bytes(2, "big"))
    with pytest.raises(WireError, match="longer than 255"):
        parse_message(data)


def test_top_bit_ttl_means_zero() -> None:
    data = header(0, 1) + EX + struct.pack("!HHIH", 1, IN, 0x80000001, 4) + b"\x01\x02\x03\x04"
    assert parse_message(data).answer[0].ttl == 0


def test_writer_refuses_what_cannot_be_sent() -> None:
    with pytest.raises(WireError, match="label longer than 63"):
        write_message(message(rr("a" * 64 + ".", A("192.0.2.1"))))
    with pytest.raises(WireError, match="rdata longer than 65535"):
        write_message(message(rr("a.", Opaque(b"\x00" * 65536), rrtype=65280)))
    big = rr("a.", Opaque(b"\x00" * 60000), rrtype=65280)
    with pytest.raises(WireError, match="message longer than 65535"):
        write_message(message(big, big))


# ---------------------------------------------------------------- linear time


class CountingBytes(bytes):
    """Bytes that count how often the parser indexes or slices them, and stop it
    (failing fast rather than slowly) once it goes over its budget."""

    reads = 0
    budget = 0

    def __getitem__(self, key):  # type: ignore[no-untyped-def, override]
        CountingBytes.reads += 1
        if CountingBytes.reads > CountingBytes.budget:
            raise AssertionError(f"more than {CountingBytes.budget} reads: not linear")
        return super().__getitem__(key)


def pointer_chain_message(chain: int, names: int) -> bytes:
    """One record hides a chain of ``chain`` backward pointers in unknown rdata; then
    ``names`` records are owned by a pointer to the top of the chain (so each owner is
    the root name, reached through ``chain`` pointers)."""
    rdata_at = 12 + 1 + 10
    rdata = bytearray(b"\x00")
    top = rdata_at
    for _ in range(chain):
        rdata += (0xC000 | top).to_bytes(2, "big")
        top = rdata_at + len(rdata) - 2
    data = header(0, 1 + names) + record(ROOT, 65280, bytes(rdata))
    data += record((0xC000 | top).to_bytes(2, "big"), 65281, b"") * names
    return data


def test_long_pointer_chains_parse_in_linear_work() -> None:
    """Not timed: counts the parser's reads of the message instead.  Following every
    chain from scratch would need names x chain (12 million) reads; the per-message
    name cache makes it a few per byte."""
    data = pointer_chain_message(chain=6000, names=3000)
    assert len(data) < 0x4000 + 40000
    CountingBytes.reads, CountingBytes.budget = 0, 4 * len(data)
    msg = parse_message(CountingBytes(data))
    assert len(msg.answer) == 3001
    assert {r.name for r in msg.answer} == {"."}
    # dnspython caps chains at 16 pointers (MAX_COMPRESSION_POINTER_CHAIN) instead.
    small = pointer_chain_message(chain=10, names=20)
    assert {rrset.name for rrset in dns.message.from_wire(small).answer} == {dns.name.root}
    assert {r.name for r in parse_message(small).answer} == {"."}


# ---------------------------------------------------------------- property tests

ODD = b'.\\\x00\xff "();@$09aZ'
label_st = st.one_of(
    st.sampled_from([b"www", b"mail", b"example", b"com", b"org", b"ns1", b"a"]),
    st.binary(min_size=1, max_size=63),
    st.lists(st.sampled_from(list(ODD)), min_size=1, max_size=6).map(bytes),
)


def random_case(draw: st.DrawFn, label: bytes) -> bytes:
    flips = draw(st.integers(0, (1 << len(label)) - 1))
    return bytes(
        b ^ 0x20 if flips >> i & 1 and (65 <= b <= 90 or 97 <= b <= 122) else b
        for i, b in enumerate(label)
    )


@st.composite
def names_st(draw: st.DrawFn) -> list[list[bytes]]:
    """A pool of names sharing suffixes (so compression has work to do), as labels."""
    bases = draw(st.lists(st.lists(label_st, max_size=3), min_size=1, max_size=3))
    pool = []
    for _ in range(draw(st.integers(1, 8))):
        base = draw(st.sampled_from(bases))
        prefix = draw(st.lists(label_st, max_size=2))
        labels = [random_case(draw, label) for label in prefix + base]
        if sum(len(label) + 1 for label in labels) + 1 <= 255:
            pool.append(labels)
    return pool or [[]]


def one_case_per_suffix(pool: list[list[bytes]]) -> list[str]:
    """Respell the names so that every suffix has one spelling across the pool.

    Our writer (like dnspython's) compresses case-insensitively: a later name whose
    suffix matches an earlier one but for case comes back spelled like the earlier one.
    With a single spelling per suffix that cannot happen, so written-then-parsed
    messages must be *exactly* equal.  The free-case variant of the test compares
    names with name_key instead.
    """
    spelling: dict[bytes, bytes] = {}
    texts = []
    for labels in pool:
        fixed: list[bytes] = []
        for i in range(len(labels) - 1, -1, -1):
            key = b".".join(label.lower() for label in labels[i:])
            fixed.insert(0, spelling.setdefault(key, labels[i]))
        texts.append(labels_to_text(fixed))
    return texts


@st.composite
def rdata_st(draw: st.DrawFn, names: list[str], interop: bool = False) -> tuple[int, Rdata]:
    name = st.sampled_from(names)
    u16, u32 = st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
    kind = draw(st.sampled_from(["A", "AAAA", "NS", "CNAME", "PTR", "MX", "SOA", "TXT", "SRV",
                                 "opaque"]))  # fmt: skip
    if kind == "A":
        return 1, A(socket.inet_ntoa(draw(st.binary(min_size=4, max_size=4))))
    if kind == "AAAA":
        raw = draw(st.binary(min_size=16, max_size=16))
        return 28, AAAA(socket.inet_ntop(socket.AF_INET6, raw))
    if kind in ("NS", "CNAME", "PTR"):
        cls = {"NS": NS, "CNAME": CNAME, "PTR": PTR}[kind]
        return int(RRType[kind]), cls(draw(name))
    if kind == "MX":
        return 15, MX(draw(u16), draw(name))
    if kind == "SOA":
        return 6, SOA(draw(name), draw(name), *(draw(u32) for _ in range(5)))
    if kind == "TXT":
        strings = draw(st.lists(st.binary(max_size=255), min_size=1, max_size=3))
        return 16, TXT(tuple(strings))
    if kind == "SRV":
        return 33, SRV(draw(u16), draw(u16), draw(u16), draw(name))
    # Any type we do not parse; for dnspython only the private range, which it cannot
    # parse either (it would read, say, TYPE46 as RRSIG and choke on random bytes).
    parsed = (1, 2, 5, 6, 12, 15, 16, 28, 33, 41, 43, 46, 47, 48, 50, 51)
    rrtype = draw(st.integers(65280, 65534) if interop else st.integers(0, 0xFFFF).filter(
        lambda t: t not in parsed))  # fmt: skip
    payload = draw(st.one_of(st.binary(max_size=40), name.map(name_to_wire)))
    return rrtype, Opaque(payload)


@st.composite
def messages_st(draw: st.DrawFn, exact_case: bool = True, interop: bool = False) -> Message:
    """Random messages.  ``interop`` keeps to what dnspython reads the same way: class IN
    (its A in class CH is another format), opcode QUERY (UPDATE has other sections),
    private types and EDNS option codes (it parses known ones, and rejects bad ones)."""
    pool = draw(names_st())
    names = one_case_per_suffix(pool) if exact_case else [labels_to_text(p) for p in pool]
    name = st.sampled_from(names)

    def records() -> list[ResourceRecord]:
        out = []
        for _ in range(draw(st.integers(0, 4))):
            rrtype, rdata = draw(rdata_st(names, interop))
            ttl = draw(st.integers(0, 0x7FFFFFFF))
            out.append(ResourceRecord(draw(name), rrtype, draw(classes), ttl, rdata))
        return out

    u16 = st.integers(0, 0xFFFF)
    classes = st.just(IN) if interop else st.sampled_from([IN, 3, 255, 0xFFFF])
    bit = st.integers(0, 1)
    opcode = st.just(0) if interop else st.integers(0, 15)
    head = Header(draw(u16), draw(bit), draw(opcode), draw(bit),
                  draw(bit), draw(bit), draw(bit), draw(bit), draw(bit), draw(bit),
                  draw(st.integers(0, 15)))  # fmt: skip
    qtypes = st.sampled_from([1, 2, 28, 255, 65280]) if interop else u16
    questions = [Question(draw(name), draw(qtypes), draw(st.just(IN) if interop else u16))
                 for _ in range(draw(st.integers(0, 2)))]  # fmt: skip
    edns = None
    if draw(st.booleans()):
        codes = st.integers(65001, 65534) if interop else u16
        options = draw(st.lists(st.tuples(codes, st.binary(max_size=12)), max_size=3))
        edns = Edns(draw(st.integers(512, 0xFFFF)), draw(st.integers(0, 255)),
                    draw(st.integers(0, 255)), draw(bit), tuple(options))  # fmt: skip
    return Message(head, questions, records(), records(), records(), edns)


@MESSAGES
@given(messages_st())
def test_generated_messages_round_trip_exactly(msg: Message) -> None:
    wire = write_message(msg)
    assert parse_message(wire) == msg
    assert write_message(parse_message(wire)) == wire


def keyed(msg: Message) -> Message:
    """The message with every name (owners, questions, names in rdata) case-folded."""

    def fold(rdata: Rdata) -> Rdata:
        if isinstance(rdata, NS):  # also CNAME and PTR
            return type(rdata)(name_key(rdata.target))
        if isinstance(rdata, MX):
            return MX(rdata.preference, name_key(rdata.exchange))
        if isinstance(rdata, SOA):
            return SOA(name_key(rdata.mname), name_key(rdata.rname), rdata.serial,
                       rdata.refresh, rdata.retry, rdata.expire, rdata.minimum)  # fmt: skip
        if isinstance(rdata, SRV):
            return SRV(rdata.priority, rdata.weight, rdata.port, name_key(rdata.target))
        return rdata

    def section(records: list[ResourceRecord]) -> list[ResourceRecord]:
        return [ResourceRecord(name_key(r.name), r.rrtype, r.rrclass, r.ttl, fold(r.rdata))
                for r in records]  # fmt: skip

    return Message(
        msg.header,
        [Question(name_key(x.name), x.rrtype, x.rrclass) for x in msg.question],
        section(msg.answer),
        section(msg.authority),
        section(msg.additional),
        msg.edns,
    )


@MESSAGES
@given(messages_st(exact_case=False))
def test_generated_messages_round_trip_any_case(msg: Message) -> None:
    wire = write_message(msg)
    back = parse_message(wire)
    assert keyed(back) == keyed(msg)
    # The first name written always keeps its case.
    if msg.question:
        assert back.question[0].name == msg.question[0].name


@MESSAGES
@given(messages_st(interop=True))
def test_generated_messages_agree_with_dnspython(msg: Message) -> None:
    wire = write_message(msg)
    theirs = dns.message.from_wire(wire, one_rr_per_rrset=True)
    assert theirs.id == msg.header.id
    assert [(x.name.to_wire(), x.rdtype, x.rdclass) for x in theirs.question] == [
        (name_to_wire(x.name), x.rrtype, x.rrclass) for x in msg.question
    ]
    assert dnspython_view(theirs) == our_view(msg)
    assert theirs.rcode() == msg.rcode
    if msg.edns is not None:
        assert (theirs.edns, theirs.payload) == (msg.edns.version, msg.edns.payload)
        assert [(o.otype, o.to_wire()) for o in theirs.options] == list(msg.edns.options)


def fuzz_ok(data: bytes) -> None:
    """Only WireError may escape parse_message."""
    try:
        parse_message(data)
    except WireError as error:
        assert 0 <= error.offset <= len(data)
        assert error.reason


@BOUNDED
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    fuzz_ok(data)


@BOUNDED
@given(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3),
       st.binary(max_size=400))  # fmt: skip
def test_random_bytes_after_a_plausible_header(
    qd: int, an: int, ns: int, ar: int, body: bytes
) -> None:
    fuzz_ok(header(qd, an, ns, ar) + body)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(write_message(draw(messages_st())))
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "truncate", "loop", "pointer", "insert", "count"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if how == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "truncate":
            del data[at:]
        elif how == "loop" and len(data) >= 2:
            # A pointer to itself, or to a spot that points back here.
            data[at : at + 2] = (0xC000 | (at & 0x3FFF)).to_bytes(2, "big")
        elif how == "pointer":
            target = draw(st.integers(0, 0x3FFF))
            data[at:at] = (0xC000 | target).to_bytes(2, "big")
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif how == "count" and len(data) >= 12:
            which = draw(st.integers(2, 5))
            struct.pack_into("!H", data, which * 2, draw(st.integers(0, 0xFFFF)))
    return bytes(data)


@BOUNDED
@given(mutated())
def test_mutated_messages(data: bytes) -> None:
    fuzz_ok(data)


@pytest.mark.parametrize("edns", [1232, None])
@pytest.mark.parametrize("rd", [False, True])
def test_write_query_is_write_message_of_a_query(rd: bool, edns: int | None) -> None:
    """The direct query writer the transport uses gives the same bytes as the general one."""
    for name, rrtype in [("www.Example.com.", RRType.A), (".", RRType.NS), ("a\\.b.c.", 65)]:
        query = Message(
            Header(0xBEEF, rd=int(rd)), [Question(name, rrtype)], [], [], [],
            Edns(edns) if edns else None,
        )  # fmt: skip
        general = write_message(query)
        assert write_query(name, rrtype, 0xBEEF, rd=rd, edns_payload=edns) == general
