"""The parsers of record data: RDATA in a message to the values of :mod:`resolver.wire.rdata`.

Compiled where the core is (``COMPILED`` in setup.py); the classes they build stay
Python, in :mod:`resolver.wire.rdata` (which says why), and the DNSSEC types' parsers in
:mod:`resolver.wire.dnssec_rdata`.  RFC 1035 section 3.3 for the basic types, RFC 2782 for
SRV, RFC 6672 for DNAME; any other type is kept as opaque bytes (RFC 3597).
"""

from __future__ import annotations

import socket
import struct

from resolver.wire.dnssec_rdata import DNSSEC_PARSERS
from resolver.wire.names import NameCache, WireError, read_name
from resolver.wire.rdata import (
    AAAA,
    CNAME,
    DNAME,
    MX,
    NS,
    PTR,
    SOA,
    SOA_TIMERS,
    SRV,
    SRV_FIXED,
    TXT,
    A,
    Opaque,
    Parser,
    Rdata,
)
from resolver.wire.rdata_base import expect_end

_U16 = struct.Struct("!H")

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
    expect_end(pos, end - SOA_TIMERS.size, "SOA")
    return SOA(mname, rname, *SOA_TIMERS.unpack_from(data, pos))


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
    priority, weight, port = SRV_FIXED.unpack_from(data, start)
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
