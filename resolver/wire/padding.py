"""EDNS(0) Padding (RFC 7830) with the block-length policy of RFC 8467, on raw messages.

Over an encrypted transport the length of a message says a lot about what it holds
(a name, an answer); padding makes lengths a multiple of a block.  RFC 8467 section
4.1 recommends 128-octet blocks for queries and 468-octet blocks for responses.
RFC 7830 section 3: a responder pads its response only when the query carried the
Padding option (and only over encrypted transports: the caller decides that), and the
padding octets are zeros.

These functions work on the bytes of a finished message (the listener's answers may
come from the wire cache and are never rebuilt): they walk the sections to the OPT
record, which must be the last record (where :func:`resolver.wire.write_message` and
:func:`resolver.wire.write_query` put it; anything after it could hold compression
pointers past the insertion point), and grow its RDATA by one option.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from resolver.wire.header import HEADER_SIZE
from resolver.wire.names import WireError

PADDING_OPTION = 12  # RFC 7830 section 4: the Padding option's OPTION-CODE
QUERY_BLOCK = 128  # RFC 8467 section 4.1: queries padded to a multiple of 128 octets
RESPONSE_BLOCK = 468  # ... and responses to a multiple of 468
MAX_MESSAGE = 65535
OPT = 41

_COUNTS = struct.Struct("!HHHH")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, TTL, RDLENGTH
_OPTION = struct.Struct("!HH")


def skip_name(data: bytes, offset: int) -> int:
    """The offset just past the (possibly compressed) name at ``offset``."""
    limit = len(data)
    while offset < limit:
        length = data[offset]
        if length == 0:
            return offset + 1
        if length >= 0xC0:
            if offset + 2 > limit:
                break
            return offset + 2
        if length >= 0x40:
            raise WireError(f"reserved label type 0x{length:02x}", offset)
        offset += length + 1
    raise WireError("name runs past the end of the message", offset)


def records(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """Every resource record of a message: (section, where it starts, its type, where
    its fixed part starts); sections 1, 2, 3 are answer, authority and additional."""
    if len(data) < HEADER_SIZE:
        raise WireError("message shorter than a header", 0)
    qdcount, ancount, nscount, arcount = _COUNTS.unpack_from(data, 4)
    pos = HEADER_SIZE
    for _ in range(qdcount):
        pos = skip_name(data, pos) + 4
    for section, count in ((1, ancount), (2, nscount), (3, arcount)):
        for _ in range(count):
            start = pos
            fixed = skip_name(data, pos)
            if fixed + _RR_FIXED.size > len(data):
                raise WireError("record cut short", fixed)
            rrtype, _rrclass, _ttl, rdlength = _RR_FIXED.unpack_from(data, fixed)
            pos = fixed + _RR_FIXED.size + rdlength
            if pos > len(data):
                raise WireError("rdata runs past the end of the message", fixed)
            yield section, start, rrtype, fixed


def _last_opt(data: bytes) -> int | None:
    """Where the fixed part of the OPT record starts, if it is the message's last record."""
    found = None
    for section, _start, rrtype, fixed in records(data):
        found = fixed if section == 3 and rrtype == OPT else None
    return found


def has_padding(message: bytes) -> bool:
    """True when the message's OPT record (the last record) holds a Padding option."""
    if len(message) < HEADER_SIZE or message[10:12] == b"\x00\x00":  # no additional record
        return False
    try:
        fixed = _last_opt(message)
    except WireError:
        return False
    if fixed is None:
        return False
    pos = fixed + _RR_FIXED.size
    while pos + _OPTION.size <= len(message):
        code, length = _OPTION.unpack_from(message, pos)
        if code == PADDING_OPTION:
            return True
        pos += _OPTION.size + length
    return False


def pad(message: bytes, block: int) -> bytes:
    """The message with a Padding option that makes its length a multiple of ``block``
    (no larger than 65535 octets: then as much padding as fits, RFC 7830 section 3);
    unchanged if its last record is not an OPT record (no EDNS: nothing to pad in)."""
    fixed = _last_opt(message)
    if fixed is None:
        return message
    wanted = len(message) + _OPTION.size
    length = -wanted % block
    if wanted + length > MAX_MESSAGE:
        length = max(MAX_MESSAGE - wanted, 0)
        if wanted > MAX_MESSAGE:
            return message
    rdlength_at = fixed + _RR_FIXED.size - 2
    rdlength = int.from_bytes(message[rdlength_at : rdlength_at + 2], "big")
    if rdlength + _OPTION.size + length > 0xFFFF:
        return message
    grown = (rdlength + _OPTION.size + length).to_bytes(2, "big")
    option = _OPTION.pack(PADDING_OPTION, length) + bytes(length)
    return message[:rdlength_at] + grown + message[rdlength_at + 2 :] + option


def repad(message: bytes, block: int) -> bytes:
    """A padded message padded again, its Padding option last: after another option was
    added behind the first padding (the edns-tcp-keepalive of an answer over TLS), the old
    Padding option is taken out and a new one pads the whole to ``block``."""
    fixed = _last_opt(message)
    if fixed is None:
        return message
    start = fixed + _RR_FIXED.size
    kept, pos = [], start
    while pos + _OPTION.size <= len(message):
        code, length = _OPTION.unpack_from(message, pos)
        end = pos + _OPTION.size + length
        if code != PADDING_OPTION:
            kept.append(message[pos:end])
        pos = end
    options = b"".join(kept)
    unpadded = message[: start - 2] + len(options).to_bytes(2, "big") + options
    return pad(unpadded, block)


def smallest_ttl(message: bytes) -> int | None:
    """The smallest TTL of the answer and authority records (None: there are none), what
    an HTTP cache may keep a DNS response for (RFC 8484 section 5.1)."""
    smallest: int | None = None
    for section, _start, _rrtype, fixed in records(message):
        if section == 3:
            break
        ttl = int.from_bytes(message[fixed + 4 : fixed + 8], "big")
        smallest = ttl if smallest is None else min(smallest, ttl)
    return smallest
