"""Record data of the DNSSEC types: DS, DNSKEY, RRSIG, NSEC (RFC 4034), NSEC3 and NSEC3PARAM
(RFC 5155), with their wire parsers and the type bitmap they share.

Each type is a compact, immutable recordclass value that keeps its fields typed.
The names inside RRSIG (the signer) and NSEC (the next owner) are never
compressed (RFC 4034 sections 3.1.7 and 4.1.1): they are read as they stand, and
a compression pointer there is an error.  The type bitmap of NSEC and NSEC3 is
a sorted tuple of type codes, read and written as the window blocks of RFC 4034
section 4.1.2.  The text forms are the presentation formats of those RFCs
(RFC 4034 sections 2.2, 3.2, 4.2 and 5.3, RFC 5155 sections 3.3 and 4.3);
reading text is :func:`resolver.wire.rdata_text.rdata_from_text`.

:data:`DNSSEC_PARSERS` maps these type codes to their parsers; the registry of
every type, :func:`resolver.wire.rdata.parse_rdata`, includes it.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from datetime import UTC, datetime

from recordclass import dataobject

from resolver.wire.names import MAX_NAME_OCTETS, NameCache, WireError, labels_to_text, name_to_wire
from resolver.wire.rdata_base import NameWriter, expect_end, type_to_text

_DS_FIXED = struct.Struct("!HBB")  # key tag, algorithm, digest type
_DNSKEY_FIXED = struct.Struct("!HBB")  # flags, protocol, algorithm
_RRSIG_FIXED = struct.Struct("!HBBIIIH")  # type covered ... key tag, before the signer
_NSEC3_FIXED = struct.Struct("!BBH")  # hash algorithm, flags, iterations


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


DnssecRdata = DS | DNSKEY | RRSIG | NSEC | NSEC3 | NSEC3PARAM


# ---------------------------------------------------------------- text helpers


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


# ---------------------------------------------------------------- parsers

# Like every parser of resolver.wire.rdata, these take (message, rdata start, rdata end,
# name cache) and must consume exactly that range.


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
    expect_end(pos, end, "NSEC3PARAM")
    return NSEC3PARAM(*_NSEC3_FIXED.unpack_from(data, start), salt)


DNSSEC_PARSERS: dict[int, Callable[[bytes, int, int, NameCache | None], DnssecRdata]] = {
    43: _parse_ds,
    46: _parse_rrsig,
    47: _parse_nsec,
    48: _parse_dnskey,
    50: _parse_nsec3,
    51: _parse_nsec3param,
}
