"""The OPT record of a raw message, and the EDNS options read from it or added to it.

The listener answers most queries without parsing them and the transport writes
queries directly, so the options they read or add are handled here on bytes, through
one walk to the OPT record (:func:`opt_at`), never one per option:

- DNS cookies (RFC 7873): :func:`query_cookie` finds the COOKIE option of a raw query
  (``MALFORMED`` for a forbidden length: FORMERR, section 5.2.2); a COOKIE option is a
  Client Cookie of 8 bytes, optionally followed by a Server Cookie of 8 to 32 bytes;
- :func:`add_option` appends options to the OPT record of a message we wrote (where
  :func:`resolver.wire.write_message` and :func:`resolver.wire.write_query` put it:
  last, so nothing after it can hold compression pointers past the insertion point),
  and :func:`add_query_option` does the same for a query whose OPT has no options yet;
- edns-tcp-keepalive (RFC 7828 section 3.1): the idle timeout a server grants, in
  units of 100 ms (:func:`keepalive`);
- EDNS(0) Padding (RFC 7830) with the block lengths of RFC 8467 section 4.1 (128
  octets for queries, 468 for responses): :func:`pad`, :func:`repad`,
  :func:`has_padding`.  A responder pads only when the query carried the option, and
  only over encrypted transports (the caller decides); the padding octets are zeros.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from resolver.wire.header import HEADER_SIZE
from resolver.wire.names import WireError

OPT = 41
COOKIE = 10  # RFC 7873 section 4: the OPTION-CODE of COOKIE
TCP_KEEPALIVE = 11  # RFC 7828 section 3.1
PADDING_OPTION = 12  # RFC 7830 section 4
CLIENT_COOKIE_SIZE = 8
SERVER_COOKIE_MIN, SERVER_COOKIE_MAX = 8, 32
BADCOOKIE = 23  # RFC 7873 section 8: the extended RCODE
QUERY_BLOCK = 128  # RFC 8467 section 4.1: queries padded to a multiple of 128 octets
RESPONSE_BLOCK = 468  # ... and responses to a multiple of 468
MAX_MESSAGE = 65535
MALFORMED = b""  # what query_cookie returns for a COOKIE option of a forbidden length

_U16 = struct.Struct("!H")
_COUNTS = struct.Struct("!HHHH")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, TTL, RDLENGTH
_OPTION = struct.Struct("!HH")
_OPT_TYPE = b"\x00\x29"
_OPT_FIXED = 11  # root owner (1), type, class, TTL, RDLENGTH


# -------------------------------------------------------------------- the walk


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


def opt_at(message: bytes) -> int | None:
    """Where the fixed part (TYPE) of the message's OPT record starts, when the last record
    is an OPT record owned by the root and the message ends with it; None otherwise (no
    EDNS, or an OPT record somewhere we may not write).  WireError if the records run
    past the end."""
    if len(message) < HEADER_SIZE:
        raise WireError("message shorter than a header", 0)
    qdcount, ancount, nscount, arcount = _COUNTS.unpack_from(message, 4)
    if not arcount:
        return None
    limit = len(message)
    pos = HEADER_SIZE
    for _ in range(qdcount):
        pos = skip_name(message, pos) + 4
    start = fixed = pos
    for _ in range(ancount + nscount + arcount):
        start = pos
        fixed = skip_name(message, pos)
        if fixed + _RR_FIXED.size > limit:
            raise WireError("record cut short", fixed)
        pos = fixed + _RR_FIXED.size + (message[fixed + 8] << 8 | message[fixed + 9])
        if pos > limit:
            raise WireError("rdata runs past the end of the message", fixed)
    if pos != limit or fixed != start + 1 or message[start : start + 3] != b"\x00" + _OPT_TYPE:
        return None
    return fixed


def query_opt(packet: bytes, question_end: int) -> int | None:
    """Where the OPTION data of a raw query's OPT record starts, when its only additional
    record is an OPT record right after the question (what every real client sends) and
    its data runs to the end; None otherwise (left to the parser)."""
    rdata = question_end + _OPT_FIXED
    if (
        packet[10:12] != b"\x00\x01"  # ARCOUNT 1
        or len(packet) < rdata
        or packet[question_end : question_end + 3] != b"\x00" + _OPT_TYPE
        or rdata + _U16.unpack_from(packet, rdata - 2)[0] != len(packet)
    ):
        return None
    return rdata


# -------------------------------------------------------------------- options


def option(code: int, value: bytes) -> bytes:
    """One option in wire form: code, length, value (RFC 6891 section 6.1.2)."""
    return _U16.pack(code) + _U16.pack(len(value)) + value


def options_from(message: bytes, start: int) -> Iterator[tuple[int, int, int]]:
    """(code, where its value starts, its length) of each option from ``start`` to the
    end of the message (an OPT record's data, last in the message)."""
    end = len(message)
    pos = start
    while pos + 4 <= end:
        code, length = _OPTION.unpack_from(message, pos)
        pos += 4
        if pos + length > end:
            return
        yield code, pos, length
        pos += length


def query_option(packet: bytes, question_end: int, code: int) -> bytes | None:
    """The value of option ``code`` in a raw query whose question ends at ``question_end``
    and whose only additional record is an OPT record there; None if there is no such
    option (or the query is not of that shape)."""
    pos = query_opt(packet, question_end)
    if pos is None:
        return None
    end = len(packet)
    while pos + 4 <= end:  # options_from, inlined: this is on the fast path of cookie clients
        found, length = _OPTION.unpack_from(packet, pos)
        pos += 4
        if pos + length > end:
            return None
        if found == code:
            return packet[pos : pos + length]
        pos += length
    return None


def add_query_option(query: bytes, value: bytes) -> bytes:
    """A query from ``write_query`` (OPT last, no options) with ``value`` (whole options,
    from :func:`option`) as its OPT record's data."""
    if query[-_OPT_FIXED + 1 : -_OPT_FIXED + 3] != _OPT_TYPE or query[-2:] != b"\x00\x00":
        raise WireError("the query ends with no empty OPT record", len(query))
    return query[:-2] + _U16.pack(len(value)) + value


def add_option(message: bytes, value: bytes) -> bytes:
    """``message`` (one we wrote: its OPT record last) with the option(s) ``value``
    appended to that OPT record; unchanged when it has no OPT record there."""
    fixed = opt_at(message)
    if fixed is None:
        return message
    length_at = fixed + 8
    rdlength = _U16.unpack_from(message, length_at)[0] + len(value)
    return message[:length_at] + _U16.pack(rdlength) + message[length_at + 2 :] + value


# -------------------------------------------------------------------- cookies, keepalive


def cookie_shape_ok(value: bytes) -> bool:
    """A COOKIE option's value has a length RFC 7873 section 4 allows: 8, or 16 to 40."""
    size = len(value)
    return size == CLIENT_COOKIE_SIZE or (
        CLIENT_COOKIE_SIZE + SERVER_COOKIE_MIN <= size <= CLIENT_COOKIE_SIZE + SERVER_COOKIE_MAX
    )


def split_cookie(value: bytes) -> tuple[bytes, bytes]:
    """(Client Cookie, Server Cookie or b"") of a well-formed COOKIE option's value."""
    return value[:CLIENT_COOKIE_SIZE], value[CLIENT_COOKIE_SIZE:]


def query_cookie(packet: bytes) -> bytes | None:
    """The COOKIE option's value in a raw query (``MALFORMED`` for a forbidden length),
    or None when it has none.  Cheap for a query whose OPT record has no options."""
    if len(packet) < 23 or packet[10:12] != b"\x00\x01" or packet[-2:] == b"\x00\x00":
        return None  # no OPT, or (the common case) an OPT record without options last
    pos = HEADER_SIZE
    limit = len(packet)
    while pos < limit:
        length = packet[pos]
        if length == 0 or length > 63:
            break
        pos += length + 1
    if pos >= limit or packet[pos] != 0:
        return None
    value = query_option(packet, pos + 5, COOKIE)
    if value is not None and not cookie_shape_ok(value):
        return MALFORMED
    return value


def keepalive(timeout: float) -> bytes:
    """The edns-tcp-keepalive option a server sends: the idle timeout it grants, in units
    of 100 milliseconds (RFC 7828 section 3.1)."""
    return option(TCP_KEEPALIVE, _U16.pack(min(int(timeout * 10), 0xFFFF)))


# -------------------------------------------------------------------- padding


def has_padding(message: bytes) -> bool:
    """True when the message's OPT record (the last record) holds a Padding option."""
    if len(message) < HEADER_SIZE or message[10:12] == b"\x00\x00":  # no additional record
        return False
    try:
        fixed = opt_at(message)
    except WireError:
        return False
    if fixed is None:
        return False
    return any(code == PADDING_OPTION for code, _, _ in options_from(message, fixed + 10))


def pad(message: bytes, block: int) -> bytes:
    """The message with a Padding option that makes its length a multiple of ``block``
    (no larger than 65535 octets: then as much padding as fits, RFC 7830 section 3);
    unchanged if its last record is not an OPT record (no EDNS: nothing to pad in)."""
    fixed = opt_at(message)
    if fixed is None:
        return message
    wanted = len(message) + _OPTION.size
    length = -wanted % block
    if wanted + length > MAX_MESSAGE:
        length = max(MAX_MESSAGE - wanted, 0)
        if wanted > MAX_MESSAGE:
            return message
    rdlength_at = fixed + 8
    rdlength = _U16.unpack_from(message, rdlength_at)[0]
    if rdlength + _OPTION.size + length > 0xFFFF:
        return message
    grown = _U16.pack(rdlength + _OPTION.size + length)
    padding = _OPTION.pack(PADDING_OPTION, length) + bytes(length)
    return message[:rdlength_at] + grown + message[rdlength_at + 2 :] + padding


def repad(message: bytes, block: int) -> bytes:
    """A padded message padded again, its Padding option last: after another option was
    added behind the first padding (the edns-tcp-keepalive of an answer over TLS), the old
    Padding option is taken out and a new one pads the whole to ``block``."""
    fixed = opt_at(message)
    if fixed is None:
        return message
    start = fixed + 10
    kept = [
        message[at - 4 : at + length]
        for code, at, length in options_from(message, start)
        if code != PADDING_OPTION
    ]
    options = b"".join(kept)
    unpadded = message[: start - 2] + _U16.pack(len(options)) + options
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
