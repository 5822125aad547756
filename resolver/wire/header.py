"""The 12-byte message header (RFC 1035 section 4.1.1): its fields, its codes, its sizes.

Everything that knows a flag's bit or a size limit lives here, so the listener,
the answer cache and the transport share one definition.  The header is a
bitstruct format compiled once in C that mirrors the RFC's bit diagram; the
byte-level helpers below work on raw packets for the paths that answer without
parsing (the fast path, FORMERR for a packet that cannot be parsed).
"""

from __future__ import annotations

from enum import IntEnum

import bitstruct.c as bitstruct
from recordclass import dataobject

from resolver.wire.names import WireError

#                                 1  1  1  1  1  1
#   0  1  2  3  4  5  6  7  8  9  0  1  2  3  4  5
# |                      ID                       |
# |QR|   Opcode  |AA|TC|RD|RA| Z|AD|CD|   RCODE   |
# |    QDCOUNT    |    ANCOUNT    |    NSCOUNT    |    ARCOUNT    |
# Z, AD and CD are the three bits RFC 1035 called Z; RFC 4035 named two of them.
HEADER_FORMAT = bitstruct.compile("u16u1u4u1u1u1u1u1u1u1u4u16u16u16u16")
HEADER_SIZE = 12

UDP_PLAIN = 512  # RFC 1035 section 4.2.1: a UDP message without EDNS
EDNS_PAYLOAD = 1232  # our EDNS buffer, offered upstream and the most we answer over UDP
# (DNS Flag Day 2020: avoids IP fragmentation; Unbound and Knot use the same)

# Flag bits in the third and fourth bytes of a raw header.
QR, OPCODE_MASK, AA, TC, RD = 0x80, 0x78, 0x04, 0x02, 0x01  # byte 2
RA, AD, CD, RCODE_MASK = 0x80, 0x20, 0x10, 0x0F  # byte 3


class Rcode(IntEnum):
    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5
    YXDOMAIN = 6  # RFC 2136; RFC 6672 section 2.2: a DNAME substitution too long for a name
    BADVERS = 16

    @staticmethod
    def text(value: int) -> str:
        try:
            return Rcode(value).name
        except ValueError:
            return f"RCODE{value}"


class Opcode(IntEnum):
    QUERY = 0
    IQUERY = 1
    STATUS = 2
    NOTIFY = 4
    UPDATE = 5


class Header(dataobject, fast_new=True):
    """The flags of RFC 1035 section 4.1.1; the counts come from the sections."""

    id: int = 0
    qr: int = 0
    opcode: int = 0
    aa: int = 0
    tc: int = 0
    rd: int = 0
    ra: int = 0
    z: int = 0
    ad: int = 0
    cd: int = 0
    rcode: int = 0


def parse_header(data: bytes) -> tuple[Header, tuple[int, int, int, int]]:
    if len(data) < HEADER_SIZE:
        raise WireError("message shorter than a header", len(data))
    fields = HEADER_FORMAT.unpack(data[:HEADER_SIZE])
    return Header(*fields[:11]), fields[11:]


def is_response(packet: bytes) -> bool:
    """QR=1 (a response), read from a raw packet with at least a header."""
    return bool(packet[2] & QR)


def rcode_of(packet: bytes) -> int:
    """The 4-bit RCODE of a raw response header."""
    return packet[3] & RCODE_MASK


def response_from_header(packet: bytes, rcode: int) -> bytes:
    """A bare response (no sections) to a query whose header is all we can read.

    It keeps the ID, the opcode and RD, sets QR and RA, and says ``rcode``: the
    answer to a packet whose body cannot be parsed (FORMERR) or that broke
    something of ours (SERVFAIL).
    """
    flags = (packet[2] & (OPCODE_MASK | RD)) | QR
    return packet[0:2] + bytes((flags, RA | rcode)) + b"\x00" * 8
