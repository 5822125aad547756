"""Record data (RDATA) of the basic types, opaque data for the rest, and the parser registry.

Each type is a compact, immutable recordclass value.  Names inside NS, CNAME,
SOA, PTR and MX data are decompressed on read and may be compressed on write:
those are the RFC 1035 types, the only ones RFC 3597 section 4 allows that for.
SRV's target is never compressed (RFC 2782), nor is DNAME's (RFC 6672 section
2.5).  Any other type is kept as opaque bytes and written back byte for byte
(RFC 3597).

The DNSSEC types (DS, RRSIG, NSEC, DNSKEY of RFC 4034, NSEC3 and NSEC3PARAM of
RFC 5155) are :mod:`resolver.wire.dnssec_rdata`; :data:`Rdata` is the union of
every type, and :func:`parse_rdata` reads any of them through :data:`PARSERS`.
Reading the text form is :func:`resolver.wire.rdata_text.rdata_from_text`.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

from recordclass import dataobject

from resolver.wire.dnssec_rdata import DNSSEC_PARSERS, DnssecRdata
from resolver.wire.names import NameCache, WireError, read_name
from resolver.wire.rdata_base import NameWriter, expect_end

_U16 = struct.Struct("!H")
_SOA_TIMERS = struct.Struct("!IIIII")
_SRV_FIXED = struct.Struct("!HHH")


class A(dataobject, readonly=True, hashable=True, fast_new=True):
    address: str

    def write(self, out: NameWriter) -> None:
        out.buf += socket.inet_aton(self.address)

    def to_text(self) -> str:
        return self.address


class AAAA(dataobject, readonly=True, hashable=True, fast_new=True):
    address: str

    def write(self, out: NameWriter) -> None:
        out.buf += socket.inet_pton(socket.AF_INET6, self.address)

    def to_text(self) -> str:
        return self.address


class NS(dataobject, readonly=True, hashable=True, fast_new=True):
    target: str

    def write(self, out: NameWriter) -> None:
        out.write_name(self.target, True)

    def to_text(self) -> str:
        return self.target


class CNAME(NS):
    """Same shape as NS: one name (RFC 1035 section 3.3.1)."""


class PTR(NS):
    """Same shape as NS: one name (RFC 1035 section 3.3.12)."""


class DNAME(NS):
    """One name, the target of a subtree's redirection (RFC 6672).  Not an RFC 1035 type:
    its name is never compressed on write (RFC 3597 section 4, RFC 6672 section 2.5)."""

    def write(self, out: NameWriter) -> None:
        out.write_name(self.target, False)


class MX(dataobject, readonly=True, hashable=True, fast_new=True):
    preference: int
    exchange: str

    def write(self, out: NameWriter) -> None:
        out.buf += _U16.pack(self.preference)
        out.write_name(self.exchange, True)

    def to_text(self) -> str:
        return f"{self.preference} {self.exchange}"


class SOA(dataobject, readonly=True, hashable=True, fast_new=True):
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int

    def write(self, out: NameWriter) -> None:
        out.write_name(self.mname, True)
        out.write_name(self.rname, True)
        out.buf += _SOA_TIMERS.pack(
            self.serial, self.refresh, self.retry, self.expire, self.minimum
        )

    def to_text(self) -> str:
        return (
            f"{self.mname} {self.rname} {self.serial} {self.refresh} "
            f"{self.retry} {self.expire} {self.minimum}"
        )


class TXT(dataobject, readonly=True, hashable=True, fast_new=True):
    strings: tuple[bytes, ...]

    def write(self, out: NameWriter) -> None:
        for string in self.strings:
            out.buf.append(len(string))
            out.buf += string

    def to_text(self) -> str:
        return " ".join(_quote(s) for s in self.strings)


class SRV(dataobject, readonly=True, hashable=True, fast_new=True):
    priority: int
    weight: int
    port: int
    target: str

    def write(self, out: NameWriter) -> None:
        out.buf += _SRV_FIXED.pack(self.priority, self.weight, self.port)
        out.write_name(self.target, False)

    def to_text(self) -> str:
        return f"{self.priority} {self.weight} {self.port} {self.target}"


class Opaque(dataobject, readonly=True, hashable=True, fast_new=True):
    """RDATA of a type we do not interpret, kept exactly as received (RFC 3597)."""

    data: bytes

    def write(self, out: NameWriter) -> None:
        out.buf += self.data

    def to_text(self) -> str:
        return f"\\# {len(self.data)} {self.data.hex()}".rstrip()


Rdata = A | AAAA | NS | CNAME | PTR | DNAME | MX | SOA | TXT | SRV | DnssecRdata | Opaque
Parser = Callable[[bytes, int, int, NameCache | None], Rdata]


def _quote(string: bytes) -> str:
    out = []
    for byte in string:
        if byte in b'"\\':
            out.append("\\" + chr(byte))
        elif 0x20 <= byte <= 0x7E:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


# Parsers take (message, rdata start, rdata end, name cache) and must consume exactly that range.


def _parse_a(data: bytes, start: int, end: int, cache: NameCache | None) -> A:
    if end - start != 4:
        raise WireError("A rdata is not 4 octets", start)
    return A(socket.inet_ntoa(data[start:end]))


def _parse_aaaa(data: bytes, start: int, end: int, cache: NameCache | None) -> AAAA:
    if end - start != 16:
        raise WireError("AAAA rdata is not 16 octets", start)
    return AAAA(socket.inet_ntop(socket.AF_INET6, data[start:end]))


def _name_rdata(kind: type[NS]) -> Parser:
    def parse(data: bytes, start: int, end: int, cache: NameCache | None) -> NS:
        target, pos = read_name(data, start, cache)
        expect_end(pos, end, kind.__name__)
        return kind(target)

    return parse


def _parse_mx(data: bytes, start: int, end: int, cache: NameCache | None) -> MX:
    if end - start < 3:
        raise WireError("MX rdata too short", start)
    exchange, pos = read_name(data, start + 2, cache)
    expect_end(pos, end, "MX")
    return MX(_U16.unpack_from(data, start)[0], exchange)


def _parse_soa(data: bytes, start: int, end: int, cache: NameCache | None) -> SOA:
    mname, pos = read_name(data, start, cache)
    rname, pos = read_name(data, pos, cache)
    expect_end(pos, end - _SOA_TIMERS.size, "SOA")
    return SOA(mname, rname, *_SOA_TIMERS.unpack_from(data, pos))


def _parse_txt(data: bytes, start: int, end: int, cache: NameCache | None) -> TXT:
    strings = []
    pos = start
    while pos < end:
        length = data[pos]
        pos += 1 + length
        if pos > end:
            raise WireError("TXT string runs past its rdata", pos - length - 1)
        strings.append(data[pos - length : pos])
    if not strings:
        raise WireError("TXT rdata is empty", start)
    return TXT(tuple(strings))


def _parse_srv(data: bytes, start: int, end: int, cache: NameCache | None) -> SRV:
    if end - start < 7:
        raise WireError("SRV rdata too short", start)
    priority, weight, port = _SRV_FIXED.unpack_from(data, start)
    target, pos = read_name(data, start + 6, cache)
    expect_end(pos, end, "SRV")
    return SRV(priority, weight, port, target)


PARSERS: dict[int, Parser] = {
    1: _parse_a,
    2: _name_rdata(NS),
    5: _name_rdata(CNAME),
    6: _parse_soa,
    12: _name_rdata(PTR),
    15: _parse_mx,
    16: _parse_txt,
    28: _parse_aaaa,
    33: _parse_srv,
    39: _name_rdata(DNAME),
    **DNSSEC_PARSERS,  # 43 DS, 46 RRSIG, 47 NSEC, 48 DNSKEY, 50 NSEC3, 51 NSEC3PARAM
}


def parse_rdata(
    rrtype: int, data: bytes, start: int, end: int, cache: NameCache | None = None
) -> Rdata:
    """Parse one RDATA of ``rrtype`` occupying ``data[start:end]``.

    ``cache`` is the message's :data:`~resolver.wire.names.NameCache`, if any.
    """
    parser = PARSERS.get(rrtype)
    if parser is None:
        return Opaque(data[start:end])
    return parser(data, start, end, cache)
