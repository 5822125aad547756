"""Record data (RDATA) of the types the resolver understands, and opaque data for the rest.

Each type is a compact, immutable recordclass value.  Names inside NS, CNAME,
SOA, PTR and MX data are decompressed on read and may be compressed on write:
those are the RFC 1035 types, the only ones RFC 3597 section 4 allows that for.
SRV's target is never compressed (RFC 2782), nor are the names inside RRSIG and
NSEC (RFC 4034 sections 3.1.7 and 4.1.1): those are read as they stand, and a
compression pointer there is an error.  Any other type is kept as opaque bytes
and written back byte for byte (RFC 3597).

The DNSSEC types (DS, RRSIG, NSEC, DNSKEY of RFC 4034, NSEC3 and NSEC3PARAM of
RFC 5155) keep their fields typed; the type bitmap of NSEC and NSEC3 is a sorted
tuple of type codes.  Their text form is the presentation format of those RFCs;
reading text is :func:`resolver.wire.zonefile.rdata_from_text`.
"""

from __future__ import annotations

import base64
import socket
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from recordclass import dataobject

from resolver.wire.names import (
    MAX_NAME_OCTETS,
    NameCache,
    WireError,
    labels_to_text,
    name_to_wire,
    read_name,
)

_U16 = struct.Struct("!H")
_SOA_TIMERS = struct.Struct("!IIIII")
_SRV_FIXED = struct.Struct("!HHH")
_DS_FIXED = struct.Struct("!HBB")  # key tag, algorithm, digest type
_DNSKEY_FIXED = struct.Struct("!HBB")  # flags, protocol, algorithm
_RRSIG_FIXED = struct.Struct("!HBBIIIH")  # type covered ... key tag, before the signer
_NSEC3_FIXED = struct.Struct("!BBH")  # hash algorithm, flags, iterations


class NameWriter(Protocol):
    """What rdata needs from the message writer: the buffer and name output."""

    buf: bytearray

    def write_name(self, name: str, compress: bool) -> None: ...


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


class DS(dataobject, readonly=True, hashable=True, fast_new=True):
    """Delegation signer (RFC 4034 section 5): a digest of a child zone's DNSKEY."""

    key_tag: int
    algorithm: int
    digest_type: int
    digest: bytes

    def write(self, out: NameWriter) -> None:
        out.buf += _DS_FIXED.pack(self.key_tag, self.algorithm, self.digest_type)
        out.buf += self.digest

    def to_text(self) -> str:
        if not self.digest:
            return _generic_text(self)  # no presentation form for an empty digest
        return f"{self.key_tag} {self.algorithm} {self.digest_type} {self.digest.hex().upper()}"


class DNSKEY(dataobject, readonly=True, hashable=True, fast_new=True):
    """A zone's public key (RFC 4034 section 2)."""

    flags: int
    protocol: int
    algorithm: int
    key: bytes

    def write(self, out: NameWriter) -> None:
        out.buf += _DNSKEY_FIXED.pack(self.flags, self.protocol, self.algorithm)
        out.buf += self.key

    def to_text(self) -> str:
        if not self.key:
            return _generic_text(self)
        return f"{self.flags} {self.protocol} {self.algorithm} {_b64(self.key)}"


class RRSIG(dataobject, readonly=True, hashable=True, fast_new=True):
    """A signature over one RRset (RFC 4034 section 3).  Times are 32-bit serials."""

    type_covered: int
    algorithm: int
    labels: int
    original_ttl: int
    expiration: int
    inception: int
    key_tag: int
    signer: str
    signature: bytes

    def write(self, out: NameWriter) -> None:
        out.buf += _RRSIG_FIXED.pack(
            self.type_covered, self.algorithm, self.labels, self.original_ttl,
            self.expiration, self.inception, self.key_tag,
        )  # fmt: skip
        out.write_name(self.signer, False)  # RFC 4034 section 3.1.7: never compressed
        out.buf += self.signature

    def to_text(self) -> str:
        if not self.signature:
            return _generic_text(self)
        return (
            f"{type_to_text(self.type_covered)} {self.algorithm} {self.labels} "
            f"{self.original_ttl} {time_to_text(self.expiration)} "
            f"{time_to_text(self.inception)} {self.key_tag} {self.signer} {_b64(self.signature)}"
        )


class NSEC(dataobject, readonly=True, hashable=True, fast_new=True):
    """The next owner name in the zone and the types at this one (RFC 4034 section 4)."""

    next_name: str
    types: tuple[int, ...]  # sorted, no duplicates

    def write(self, out: NameWriter) -> None:
        out.write_name(self.next_name, False)  # RFC 4034 section 4.1.1: never compressed
        out.buf += encode_type_bitmap(self.types)

    def has_type(self, rrtype: int) -> bool:
        return rrtype in self.types

    def to_text(self) -> str:
        return " ".join([self.next_name, *map(type_to_text, self.types)])


class NSEC3(dataobject, readonly=True, hashable=True, fast_new=True):
    """Hashed next owner and the types at this one (RFC 5155 section 3)."""

    algorithm: int
    flags: int
    iterations: int
    salt: bytes
    next_hashed: bytes
    types: tuple[int, ...]  # sorted, no duplicates

    def write(self, out: NameWriter) -> None:
        out.buf += _NSEC3_FIXED.pack(self.algorithm, self.flags, self.iterations)
        out.buf.append(len(self.salt))
        out.buf += self.salt
        out.buf.append(len(self.next_hashed))
        out.buf += self.next_hashed
        out.buf += encode_type_bitmap(self.types)

    def has_type(self, rrtype: int) -> bool:
        return rrtype in self.types

    @property
    def opt_out(self) -> bool:
        return bool(self.flags & 1)  # RFC 5155 section 3.1.2.1

    def to_text(self) -> str:
        return " ".join(
            [
                f"{self.algorithm} {self.flags} {self.iterations} {_salt_text(self.salt)}",
                base32hex_text(self.next_hashed),
                *map(type_to_text, self.types),
            ]
        )


class NSEC3PARAM(dataobject, readonly=True, hashable=True, fast_new=True):
    """The NSEC3 parameters of a zone, at its apex (RFC 5155 section 4)."""

    algorithm: int
    flags: int
    iterations: int
    salt: bytes

    def write(self, out: NameWriter) -> None:
        out.buf += _NSEC3_FIXED.pack(self.algorithm, self.flags, self.iterations)
        out.buf.append(len(self.salt))
        out.buf += self.salt

    def to_text(self) -> str:
        return f"{self.algorithm} {self.flags} {self.iterations} {_salt_text(self.salt)}"


Rdata = (
    A | AAAA | NS | CNAME | PTR | DNAME | MX | SOA | TXT | SRV
    | DS | DNSKEY | RRSIG | NSEC | NSEC3 | NSEC3PARAM | Opaque
)  # fmt: skip
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
        _expect_end(pos, end, kind.__name__)
        return kind(target)

    return parse


def _parse_mx(data: bytes, start: int, end: int, cache: NameCache | None) -> MX:
    if end - start < 3:
        raise WireError("MX rdata too short", start)
    exchange, pos = read_name(data, start + 2, cache)
    _expect_end(pos, end, "MX")
    return MX(_U16.unpack_from(data, start)[0], exchange)


def _parse_soa(data: bytes, start: int, end: int, cache: NameCache | None) -> SOA:
    mname, pos = read_name(data, start, cache)
    rname, pos = read_name(data, pos, cache)
    _expect_end(pos, end - _SOA_TIMERS.size, "SOA")
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
    _expect_end(pos, end, "SRV")
    return SRV(priority, weight, port, target)


def _expect_end(pos: int, end: int, kind: str) -> None:
    if pos != end:
        raise WireError(f"{kind} rdata length does not match its content", pos)


# ---------------------------------------------------------------- text helpers

# Mnemonics of types (RFC 3597 section 5 gives TYPEnnn for the rest).  Types the
# resolver does not parse still get their name in NSEC bitmaps and RRSIGs.
TYPE_MNEMONICS: dict[str, int] = {
    "A": 1, "NS": 2, "MD": 3, "MF": 4, "CNAME": 5, "SOA": 6, "MB": 7, "MG": 8, "MR": 9,
    "NULL": 10, "WKS": 11, "PTR": 12, "HINFO": 13, "MINFO": 14, "MX": 15, "TXT": 16,
    "RP": 17, "AFSDB": 18, "X25": 19, "ISDN": 20, "RT": 21, "NSAP": 22, "SIG": 24,
    "KEY": 25, "PX": 26, "GPOS": 27, "AAAA": 28, "LOC": 29, "NXT": 30, "SRV": 33,
    "NAPTR": 35, "KX": 36, "CERT": 37, "A6": 38, "DNAME": 39, "OPT": 41, "APL": 42,
    "DS": 43, "SSHFP": 44, "IPSECKEY": 45, "RRSIG": 46, "NSEC": 47, "DNSKEY": 48,
    "DHCID": 49, "NSEC3": 50, "NSEC3PARAM": 51, "TLSA": 52, "SMIMEA": 53, "HIP": 55,
    "CDS": 59, "CDNSKEY": 60, "OPENPGPKEY": 61, "CSYNC": 62, "ZONEMD": 63, "SVCB": 64,
    "HTTPS": 65, "SPF": 99, "EUI48": 108, "EUI64": 109, "TKEY": 249, "TSIG": 250,
    "IXFR": 251, "AXFR": 252, "ANY": 255, "URI": 256, "CAA": 257, "DLV": 32769,
}  # fmt: skip
_TYPE_NAMES = {value: name for name, value in TYPE_MNEMONICS.items()}


def type_to_text(rrtype: int) -> str:
    """Mnemonic of a type, or ``TYPEnnn`` (RFC 3597 section 5)."""
    return _TYPE_NAMES.get(rrtype) or f"TYPE{rrtype}"


def type_from_text(text: str) -> int:
    """Type code of a mnemonic or ``TYPEnnn``; ``ValueError`` for anything else."""
    upper = text.upper()
    value = TYPE_MNEMONICS.get(upper)
    if value is not None:
        return value
    if upper.startswith("TYPE") and upper[4:].isdigit() and int(upper[4:]) <= 0xFFFF:
        return int(upper[4:])
    raise ValueError(f"unknown record type {text!r}")


def time_to_text(serial: int) -> str:
    """RRSIG time as YYYYMMDDHHmmSS in UTC (RFC 4034 section 3.2)."""
    return datetime.fromtimestamp(serial, UTC).strftime("%Y%m%d%H%M%S")


def base32hex_text(data: bytes) -> str:
    """Base 32 with the extended hex alphabet, lower case, unpadded (RFC 5155 section 3.3)."""
    return base64.b32hexencode(data).decode("ascii").rstrip("=").lower()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _salt_text(salt: bytes) -> str:
    return salt.hex().upper() if salt else "-"  # RFC 5155 section 3.3: "-" is no salt


def _generic_text(rdata: DS | DNSKEY | RRSIG) -> str:
    """RFC 3597 section 5 form, for values the type's own form cannot show."""
    out = _PlainBuffer()
    rdata.write(out)
    return f"\\# {len(out.buf)} {bytes(out.buf).hex()}".rstrip()


class _PlainBuffer:
    """A NameWriter that never compresses: rdata on its own, as RFC 3597 shows it."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def write_name(self, name: str, compress: bool) -> None:
        self.buf += name_to_wire(name)


# ---------------------------------------------------------------- type bitmaps


def encode_type_bitmap(types: tuple[int, ...]) -> bytes:
    """Window blocks of RFC 4034 section 4.1.2 for sorted, distinct types."""
    out = bytearray()
    window = -1
    block = bytearray()
    for rrtype in types:
        if rrtype >> 8 != window:
            if block:
                out += bytes((window, len(block))) + block
            window, block = rrtype >> 8, bytearray()
        low = rrtype & 0xFF
        if len(block) <= low >> 3:
            block += bytes((low >> 3) + 1 - len(block))
        block[low >> 3] |= 0x80 >> (low & 7)
    if block:
        out += bytes((window, len(block))) + block
    return bytes(out)


def decode_type_bitmap(data: bytes, start: int, end: int) -> tuple[int, ...]:
    """Types of the window blocks in ``data[start:end]``.

    RFC 4034 section 4.1.2: windows in increasing order, 1 to 32 octets each,
    no trailing zero octets.  Only that form is accepted, so that writing the
    types back gives the very bytes a signature covered.
    """
    types: list[int] = []
    pos = start
    last_window = -1
    while pos < end:
        if pos + 2 > end:
            raise WireError("type bitmap window header cut short", pos)
        window, length = data[pos], data[pos + 1]
        if window <= last_window:
            raise WireError("type bitmap windows out of order", pos)
        if not 1 <= length <= 32 or pos + 2 + length > end:
            raise WireError("type bitmap window of a bad length", pos)
        block = data[pos + 2 : pos + 2 + length]
        if block[-1] == 0:
            raise WireError("type bitmap window with trailing zero octets", pos)
        for index, octet in enumerate(block):
            for bit in range(8):
                if octet & (0x80 >> bit):
                    types.append((window << 8) | (index << 3) | bit)
        last_window = window
        pos += 2 + length
    return tuple(types)


# ---------------------------------------------------------------- DNSSEC parsers


def _read_plain_name(data: bytes, pos: int, end: int, kind: str) -> tuple[str, int]:
    """A name that must not be compressed (RFC 4034): read label by label, up to ``end``."""
    labels: list[bytes] = []
    size = 1
    while True:
        if pos >= end:
            raise WireError(f"{kind} name runs past its rdata", pos)
        length = data[pos]
        if length == 0:
            return labels_to_text(labels), pos + 1
        if length & 0xC0:
            raise WireError(f"{kind} name is compressed or uses a reserved label type", pos)
        size += length + 1
        if size > MAX_NAME_OCTETS:
            raise WireError(f"{kind} name longer than 255 octets", pos)
        if pos + 1 + length > end:
            raise WireError(f"{kind} label runs past its rdata", pos)
        labels.append(data[pos + 1 : pos + 1 + length])
        pos += 1 + length


def _parse_ds(data: bytes, start: int, end: int, cache: NameCache | None) -> DS:
    if end - start < _DS_FIXED.size:
        raise WireError("DS rdata too short", start)
    return DS(*_DS_FIXED.unpack_from(data, start), data[start + _DS_FIXED.size : end])


def _parse_dnskey(data: bytes, start: int, end: int, cache: NameCache | None) -> DNSKEY:
    if end - start < _DNSKEY_FIXED.size:
        raise WireError("DNSKEY rdata too short", start)
    return DNSKEY(*_DNSKEY_FIXED.unpack_from(data, start), data[start + _DNSKEY_FIXED.size : end])


def _parse_rrsig(data: bytes, start: int, end: int, cache: NameCache | None) -> RRSIG:
    if end - start < _RRSIG_FIXED.size + 1:
        raise WireError("RRSIG rdata too short", start)
    fixed = _RRSIG_FIXED.unpack_from(data, start)
    signer, pos = _read_plain_name(data, start + _RRSIG_FIXED.size, end, "RRSIG signer")
    return RRSIG(*fixed, signer, data[pos:end])


def _parse_nsec(data: bytes, start: int, end: int, cache: NameCache | None) -> NSEC:
    next_name, pos = _read_plain_name(data, start, end, "NSEC next")
    return NSEC(next_name, decode_type_bitmap(data, pos, end))


def _read_counted(data: bytes, pos: int, end: int, what: str) -> tuple[bytes, int]:
    if pos >= end:
        raise WireError(f"{what} length missing", pos)
    stop = pos + 1 + data[pos]
    if stop > end:
        raise WireError(f"{what} runs past its rdata", pos)
    return data[pos + 1 : stop], stop


def _parse_nsec3(data: bytes, start: int, end: int, cache: NameCache | None) -> NSEC3:
    if end - start < _NSEC3_FIXED.size:
        raise WireError("NSEC3 rdata too short", start)
    fixed = _NSEC3_FIXED.unpack_from(data, start)
    salt, pos = _read_counted(data, start + _NSEC3_FIXED.size, end, "NSEC3 salt")
    next_hashed, pos = _read_counted(data, pos, end, "NSEC3 next hashed owner")
    if not next_hashed:
        raise WireError("NSEC3 next hashed owner is empty", pos - 1)  # RFC 5155 section 3.2
    return NSEC3(*fixed, salt, next_hashed, decode_type_bitmap(data, pos, end))


def _parse_nsec3param(data: bytes, start: int, end: int, cache: NameCache | None) -> NSEC3PARAM:
    if end - start < _NSEC3_FIXED.size:
        raise WireError("NSEC3PARAM rdata too short", start)
    salt, pos = _read_counted(data, start + _NSEC3_FIXED.size, end, "NSEC3PARAM salt")
    _expect_end(pos, end, "NSEC3PARAM")
    return NSEC3PARAM(*_NSEC3_FIXED.unpack_from(data, start), salt)


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
    43: _parse_ds,
    46: _parse_rrsig,
    47: _parse_nsec,
    48: _parse_dnskey,
    50: _parse_nsec3,
    51: _parse_nsec3param,
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
