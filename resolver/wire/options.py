"""EDNS options on raw messages: DNS cookies (RFC 7873) and TCP keepalive (RFC 7828).

The listener answers most queries without parsing them (the wire cache's fast
path) and the transport writes queries directly, so the options they add or read
are handled here on bytes:

- :func:`query_option` finds one option of a raw *query* whose additional section
  is a single OPT record right after the question (what every real client sends;
  anything else is left to the parser);
- :func:`add_option` appends an option to the OPT record of a message we wrote
  ourselves, where the OPT record is always the last record
  (:func:`resolver.wire.message.write_message` writes it last), and
  :func:`add_query_option` does the same for a query from ``write_query``, whose
  OPT record has no options yet.

A COOKIE option (RFC 7873 section 4) is a Client Cookie of 8 bytes, optionally
followed by a Server Cookie of 8 to 32 bytes; any other length is malformed
(section 5.2.2: FORMERR).  An edns-tcp-keepalive option (RFC 7828 section 3.1)
sent by a server holds the idle timeout it grants, in units of 100 ms.
"""

from __future__ import annotations

import struct

from resolver.wire.header import HEADER_SIZE
from resolver.wire.names import WireError

COOKIE = 10  # RFC 7873 section 4: the OPTION-CODE of COOKIE
TCP_KEEPALIVE = 11  # RFC 7828 section 3.1
CLIENT_COOKIE_SIZE = 8
SERVER_COOKIE_MIN, SERVER_COOKIE_MAX = 8, 32
BADCOOKIE = 23  # RFC 7873 section 8: the extended RCODE

_U16 = struct.Struct("!H")
_OPT_TYPE = b"\x00\x29"
_OPT_FIXED = 11  # root owner (1), type, class, TTL, RDLENGTH
MALFORMED = b""  # what query_option returns for a COOKIE option of a forbidden length


def option(code: int, value: bytes) -> bytes:
    """One option in wire form: code, length, value (RFC 6891 section 6.1.2)."""
    return _U16.pack(code) + _U16.pack(len(value)) + value


def cookie_shape_ok(value: bytes) -> bool:
    """A COOKIE option's value has a length RFC 7873 section 4 allows: 8, or 16 to 40."""
    size = len(value)
    return size == CLIENT_COOKIE_SIZE or (
        CLIENT_COOKIE_SIZE + SERVER_COOKIE_MIN <= size <= CLIENT_COOKIE_SIZE + SERVER_COOKIE_MAX
    )


def query_option(packet: bytes, question_end: int, code: int) -> bytes | None:
    """The value of option ``code`` in a raw query whose question ends at ``question_end``
    and whose only additional record is an OPT record there; None if there is no such
    option (or the query is not of that shape)."""
    rdata = question_end + _OPT_FIXED
    if (
        packet[10:12] != b"\x00\x01"  # ARCOUNT 1
        or len(packet) < rdata
        or packet[question_end : question_end + 3] != b"\x00" + _OPT_TYPE
    ):
        return None
    end = rdata + _U16.unpack_from(packet, rdata - 2)[0]
    if end != len(packet):
        return None
    pos = rdata
    while pos + 4 <= end:
        found, length = _U16.unpack_from(packet, pos)[0], _U16.unpack_from(packet, pos + 2)[0]
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
    appended to that OPT record; unchanged when it has no OPT record."""
    counts = struct.unpack_from("!HHHH", message, 4)
    records = counts[1] + counts[2] + counts[3]
    if not counts[3]:
        return message
    pos = HEADER_SIZE
    for _ in range(counts[0]):
        pos = _skip_name(message, pos) + 4
    last = pos
    for _ in range(records):
        last = pos
        pos = _skip_name(message, pos)
        pos += 10 + _U16.unpack_from(message, pos + 8)[0]
    if message[last : last + 3] != b"\x00" + _OPT_TYPE or pos != len(message):
        return message
    length_at = last + 9
    rdlength = _U16.unpack_from(message, length_at)[0] + len(value)
    return message[:length_at] + _U16.pack(rdlength) + message[length_at + 2 :] + value


def _skip_name(message: bytes, pos: int) -> int:
    """Just past the name at ``pos`` (labels, or a pointer that ends it)."""
    while True:
        length = message[pos]
        if length >= 0xC0:
            return pos + 2
        pos += length + 1
        if length == 0:
            return pos


def split_cookie(value: bytes) -> tuple[bytes, bytes]:
    """(Client Cookie, Server Cookie or b"") of a well-formed COOKIE option's value."""
    return value[:CLIENT_COOKIE_SIZE], value[CLIENT_COOKIE_SIZE:]


def keepalive(timeout: float) -> bytes:
    """The edns-tcp-keepalive option a server sends: the idle timeout it grants, in units
    of 100 milliseconds (RFC 7828 section 3.1)."""
    return option(TCP_KEEPALIVE, _U16.pack(min(int(timeout * 10), 0xFFFF)))
