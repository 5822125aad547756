"""The DNS message format (RFC 1035 section 4): parse and write whole messages.

The header is a bitstruct format that mirrors the bit diagram of RFC 1035
section 4.1.1, compiled once in C (``bitstruct.c``), and header, question,
record and message are compact recordclass types.  Every section is read and
written, names are compressed on write, unknown types survive byte for byte
(RFC 3597), and any malformed input raises :class:`WireError` and nothing else.

EDNS (RFC 6891) is not kept as a record: the OPT pseudo-record of the
additional section becomes :attr:`Message.edns`, and is written back last.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from functools import lru_cache

from recordclass import dataobject

from resolver.wire.header import (
    EDNS_PAYLOAD,
    HEADER_FORMAT,
    HEADER_SIZE,
    UDP_PLAIN,
    Header,
    parse_header,
)
from resolver.wire.names import BadName, NameCache, WireError, name_to_wire, read_name
from resolver.wire.rdata import PARSERS, Opaque, Rdata

_RR_FIXED = struct.Struct("!HHIH")  # type, class, TTL, RDLENGTH
_QUESTION_FIXED = struct.Struct("!HH")
_OPTION = struct.Struct("!HH")

CLASS_IN = 1
MAX_MESSAGE = 65535


class RRType(IntEnum):
    A = 1
    NS = 2
    CNAME = 5
    SOA = 6
    PTR = 12
    MX = 15
    TXT = 16
    AAAA = 28
    SRV = 33
    DNAME = 39
    OPT = 41
    DS = 43
    RRSIG = 46
    NSEC = 47
    DNSKEY = 48
    NSEC3 = 50
    NSEC3PARAM = 51
    IXFR = 251
    AXFR = 252
    ANY = 255

    @staticmethod
    def text(value: int) -> str:
        """Mnemonic of a type, or ``TYPEnnn`` (RFC 3597 section 5) when unknown."""
        try:
            return RRType(value).name
        except ValueError:
            return f"TYPE{value}"

    @staticmethod
    def from_text(text: str) -> int:
        upper = text.upper()
        if upper in RRType.__members__:
            return int(RRType[upper])
        if upper.startswith("TYPE") and upper[4:].isdigit() and int(upper[4:]) < 65536:
            return int(upper[4:])
        raise ValueError(f"unknown record type {text!r}")


class Question(dataobject, readonly=True, hashable=True, fast_new=True):
    name: str
    rrtype: int
    rrclass: int = CLASS_IN


class ResourceRecord(dataobject, readonly=True, hashable=True, fast_new=True):
    name: str
    rrtype: int
    rrclass: int
    ttl: int
    rdata: Rdata

    def to_text(self) -> str:
        return f"{self.name} {self.ttl} {RRType.text(self.rrtype)} {self.rdata.to_text()}"


class Edns(dataobject, fast_new=True):
    """The OPT pseudo-record of RFC 6891 section 6.1."""

    payload: int = EDNS_PAYLOAD
    ext_rcode: int = 0  # upper 8 bits of the 12-bit RCODE
    version: int = 0
    dnssec_ok: int = 0
    options: tuple[tuple[int, bytes], ...] = ()


class Message(dataobject, fast_new=True):
    header: Header
    question: list[Question]
    answer: list[ResourceRecord]
    authority: list[ResourceRecord]
    additional: list[ResourceRecord]
    edns: Edns | None = None

    @property
    def rcode(self) -> int:
        """The full RCODE: 4 bits in the header, 8 more in EDNS (RFC 6891 section 6.1.3)."""
        if self.edns is None:
            return int(self.header.rcode)
        return int(self.header.rcode) | (int(self.edns.ext_rcode) << 4)

    def set_rcode(self, rcode: int) -> None:
        self.header.rcode = rcode & 0xF
        if self.edns is not None:
            self.edns.ext_rcode = rcode >> 4


_QUERY_HEADER = struct.Struct("!HHHHHH")


def write_query(
    name: str,
    rrtype: int,
    msg_id: int,
    *,
    rd: bool = False,
    edns_payload: int | None = EDNS_PAYLOAD,
    dnssec_ok: bool = False,
) -> bytes:
    """A query in wire form, built directly (every upstream query is one).

    RD is off by default: we ask authoritative servers (RFC 1035 section 4.1.1), and
    set it only for forwarders, which are recursive resolvers themselves.
    """
    try:
        qname = name_to_wire(name)
    except BadName as error:
        raise WireError(str(error), HEADER_SIZE) from None
    header = _QUERY_HEADER.pack(msg_id, 0x0100 if rd else 0, 1, 0, 0, 1 if edns_payload else 0)
    opt = _opt_record(edns_payload, dnssec_ok) if edns_payload else b""
    return b"".join((header, qname, _QUESTION_FIXED.pack(rrtype, CLASS_IN), opt))


@lru_cache(maxsize=64)
def _opt_record(payload: int, dnssec_ok: bool) -> bytes:
    """The OPT record of a query (RFC 6891 section 6.1.2), no options."""
    # RFC 3225: the DO bit is the top bit of the OPT record's TTL field's lower half.
    return b"\x00" + _RR_FIXED.pack(RRType.OPT, payload, 0x8000 if dnssec_ok else 0, 0)


# ---------------------------------------------------------------------- reading


def parse_message(data: bytes) -> Message:
    """Parse a whole message.  Trailing bytes and short sections are errors."""
    header, (qdcount, ancount, nscount, arcount) = parse_header(data)
    pos = HEADER_SIZE
    limit = len(data)
    cache: NameCache = {}
    question = []
    for _ in range(qdcount):
        name, pos = read_name(data, pos, cache)
        if pos + 4 > limit:
            raise WireError("question cut short", pos)
        rrtype, rrclass = _QUESTION_FIXED.unpack_from(data, pos)
        pos += 4
        question.append(Question(name, rrtype, rrclass))
    answer: list[ResourceRecord] = []
    authority: list[ResourceRecord] = []
    additional: list[ResourceRecord] = []
    opt: list[int] = []  # where the OPT record is: [record offset, rdata offset, rdata end]
    if ancount:
        pos = _parse_records(data, pos, ancount, cache, answer, None)
    if nscount:
        pos = _parse_records(data, pos, nscount, cache, authority, None)
    if arcount:
        pos = _parse_records(data, pos, arcount, cache, additional, opt)
    if pos != limit:
        raise WireError("trailing bytes after the last record", pos)
    edns = _edns(data, opt) if opt else None
    return Message(header, question, answer, authority, additional, edns)


def _parse_records(
    data: bytes,
    pos: int,
    count: int,
    cache: NameCache,
    records: list[ResourceRecord],
    opt: list[int] | None,
) -> int:
    """Append ``count`` records read from ``pos`` to ``records``; the offset past them.

    In the additional section (``opt`` given) the OPT pseudo-record is not a record:
    where it is goes into ``opt`` (RFC 6891 section 6.1.1).
    """
    limit = len(data)
    unpack = _RR_FIXED.unpack_from
    parsers = PARSERS
    append = records.append
    for _ in range(count):
        record_at = pos
        name, pos = read_name(data, pos, cache)
        if pos + 10 > limit:
            raise WireError("record header cut short", pos)
        rrtype, rrclass, ttl, rdlength = unpack(data, pos)
        pos += 10
        end = pos + rdlength
        if end > limit:
            raise WireError("rdata runs past the end of the message", pos)
        if rrtype == 41:  # OPT: its TTL field holds flags, not a TTL
            if opt is not None:
                if opt:
                    raise WireError("more than one OPT record", record_at)
                if name != ".":
                    raise WireError("OPT record not owned by the root", record_at)
                opt += (rrclass, ttl, pos, end)
                pos = end
                continue
        elif ttl & 0x80000000:
            ttl = 0  # RFC 2181 section 8: a TTL with the top bit set means zero
        parser = parsers.get(rrtype)
        rdata = Opaque(data[pos:end]) if parser is None else parser(data, pos, end, cache)
        append(ResourceRecord(name, rrtype, rrclass, ttl, rdata))
        pos = end
    return pos


def _edns(data: bytes, opt: list[int]) -> Edns:
    """The OPT record's fields (RFC 6891 section 6.1.3) as :class:`Edns`."""
    payload, ttl, start, end = opt
    return Edns(
        max(payload, UDP_PLAIN),  # RFC 6891 section 6.2.3: values below 512 mean 512
        ttl >> 24,
        (ttl >> 16) & 0xFF,
        (ttl >> 15) & 1,
        _parse_options(data[start:end], start),
    )


def _parse_options(data: bytes, base: int = 0) -> tuple[tuple[int, bytes], ...]:
    """Options of an OPT rdata; ``base`` is its offset in the message, for errors."""
    options = []
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise WireError("EDNS option header cut short", base + pos)
        code, length = _OPTION.unpack_from(data, pos)
        pos += 4
        if pos + length > len(data):
            raise WireError("EDNS option runs past its record", base + pos)
        options.append((code, data[pos : pos + length]))
        pos += length
    return tuple(options)


# ---------------------------------------------------------------------- writing


class MessageWriter:
    """Accumulates a message, compressing names against those already written."""

    __slots__ = ("buf", "offsets")

    def __init__(self) -> None:
        self.buf = bytearray()
        # lowercased wire suffix -> offset where it was written
        self.offsets: dict[bytes, int] = {}

    def write_name(self, name: str, compress: bool) -> None:
        try:
            wire = name_to_wire(name)
        except BadName as error:
            raise WireError(str(error), len(self.buf)) from None
        if not compress:
            self._remember(wire, wire.lower(), len(wire) - 1)
            self.buf += wire
            return
        lower = wire.lower()
        offsets = self.offsets
        i = 0
        while wire[i]:
            pointer = offsets.get(lower[i:])
            if pointer is not None:
                self._remember(wire, lower, i)
                self.buf += wire[:i]
                self.buf += (0xC000 | pointer).to_bytes(2, "big")
                return
            i += wire[i] + 1
        self._remember(wire, lower, i)
        self.buf += wire

    def _remember(self, wire: bytes, lower: bytes, stop: int) -> None:
        """Record where each suffix starting before ``stop`` will land."""
        base = len(self.buf)
        i = 0
        while i < stop:
            offset = base + i
            if offset < 0x4000:  # a pointer holds 14 bits
                self.offsets.setdefault(lower[i:], offset)
            i += wire[i] + 1

    def write_record(self, rr: ResourceRecord) -> None:
        self.write_name(rr.name, True)
        self.buf += _RR_FIXED.pack(rr.rrtype, rr.rrclass, rr.ttl, 0)
        length_at = len(self.buf) - 2
        rr.rdata.write(self)
        rdlength = len(self.buf) - length_at - 2
        if rdlength > 0xFFFF:
            raise WireError("rdata longer than 65535 octets", length_at)
        self.buf[length_at : length_at + 2] = rdlength.to_bytes(2, "big")


def write_message(message: Message) -> bytes:
    """The wire form of a message, with name compression (RFC 1035 section 4.1.4)."""
    header = message.header
    edns = message.edns
    out = MessageWriter()
    out.buf += HEADER_FORMAT.pack(
        header.id, header.qr, header.opcode, header.aa, header.tc, header.rd, header.ra,
        header.z, header.ad, header.cd, header.rcode & 0xF,
        len(message.question), len(message.answer), len(message.authority),
        len(message.additional) + (edns is not None),
    )  # fmt: skip
    for question in message.question:
        out.write_name(question.name, True)
        out.buf += _QUESTION_FIXED.pack(question.rrtype, question.rrclass)
    for section in (message.answer, message.authority, message.additional):
        for rr in section:
            out.write_record(rr)
    if edns is not None:
        _write_opt(out, edns)
    if len(out.buf) > MAX_MESSAGE:
        raise WireError("message longer than 65535 octets", MAX_MESSAGE)
    return bytes(out.buf)


def _write_opt(out: MessageWriter, edns: Edns) -> None:
    options = b"".join(_OPTION.pack(code, len(value)) + value for code, value in edns.options)
    ttl = (edns.ext_rcode << 24) | (edns.version << 16) | (edns.dnssec_ok << 15)
    out.buf += b"\x00" + _RR_FIXED.pack(RRType.OPT, edns.payload, ttl, len(options))
    out.buf += options
