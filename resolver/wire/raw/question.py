"""A raw query's question and the wire cache's key made from it, read without parsing.

The listener answers most queries from whole answers kept in wire form
(:mod:`resolver.cache.answers`) without building a single object: this module
scans a raw query's question once (:func:`question_key`), lays out the key those
answers are kept under, and reads that layout back (:func:`key_qtype`,
:func:`key_name`, :func:`key_question`) wherever a key is met again (the query log,
prefetch, the record cache's held RRsets, the response policy's early look).  It also
writes the two raw answers that are made from a query's bytes alone: the flags of an
answer patched for a query (:func:`answer_flags`) and the truncated answer a
rate-limited query gets (:func:`truncated`).

The key is the question in wire form with ASCII case folded (name, QTYPE, QCLASS),
then one byte saying what else shapes the answer: whether the client used EDNS (its
answer carries an OPT record), set DO (its answer carries RRSIGs and proofs, RFC 4035
section 3.2.1), set AD (it gets AD=1 for a validated answer, RFC 6840 section 5.7) or
set CD (its answer is not validated, RFC 4035 section 3.2.2).
"""

from __future__ import annotations

import struct

from recordclass import dataobject

from resolver.wire.header import (
    AA,
    AD,
    CD,
    EDNS_PAYLOAD,
    HEADER_SIZE,
    OPCODE_MASK,
    QR,
    RA,
    RD,
    TC,
    UDP_PLAIN,
)
from resolver.wire.names import name_to_wire, read_name

_U16 = struct.Struct("!H")
_QUERY_COUNTS = b"\x00\x01\x00\x00\x00\x00"  # QDCOUNT 1, ANCOUNT 0, NSCOUNT 0
MAX_NAME = 255  # octets of a name in wire form, RFC 1035 section 3.1
# An OPT record (RFC 6891 section 6.1.2): root owner, type 41, our payload size, no options.
PLAIN_OPT = struct.pack("!BHHIH", 0, 41, EDNS_PAYLOAD, 0, 0)

EDNS_KEY, DO_KEY, AD_KEY, CD_KEY = 1, 2, 4, 8  # the bits of a key's last byte
FLAGS_SIZE = 1  # a key's flags byte
TYPE_CLASS_SIZE = 4  # QTYPE and QCLASS after the name


class QuestionKey(dataobject, fast_new=True):
    """Where the question of a raw query ends, and the cache key made from it."""

    key: bytes
    end: int  # offset just past QTYPE/QCLASS
    udp_size: int  # the largest UDP answer this client takes


def question_key(packet: bytes) -> QuestionKey | None:
    """The fast-path key of a plain query, or None to take the normal path.

    Anything unusual (compression in the question, a second record besides one OPT,
    an OPT record whose options are not exactly its data) is left to the parser.
    """
    if (
        len(packet) < HEADER_SIZE + 5
        or packet[2] & (QR | OPCODE_MASK | TC)
        or packet[4:10] != _QUERY_COUNTS
    ):
        return None  # QR, opcode or TC set; or not exactly one question alone
    flags = (AD_KEY if packet[3] & AD else 0) | (CD_KEY if packet[3] & CD else 0)
    arcount = packet[10] << 8 | packet[11]
    pos = HEADER_SIZE
    limit = len(packet)
    while pos < limit:
        length = packet[pos]
        if length == 0:
            break
        if length > 63:
            return None  # a pointer or a reserved label type
        pos += length + 1
    end = pos + 5
    if end > limit:
        return None
    rest = limit - end
    # Fold the case of the name only: QTYPE and QCLASS bytes in 0x41-0x5A are not letters
    # (type 65, HTTPS, must not share a key with type 97).
    question = packet[HEADER_SIZE : pos + 1].lower() + packet[pos + 1 : end]
    if arcount == 0 and rest == 0:
        return QuestionKey(question + bytes((flags,)), end, UDP_PLAIN)
    if arcount == 1 and rest >= 11 and packet[end : end + 3] == b"\x00\x00\x29":
        # One OPT record.  Its options (a DNS cookie, RFC 7873, say) are ignored, as the
        # normal path does: we implement none of them.  Version above 0 gets BADVERS there.
        if packet[end + 6] != 0 or rest != 11 + (packet[end + 9] << 8 | packet[end + 10]):
            return None
        payload = _U16.unpack_from(packet, end + 3)[0]
        size = min(max(payload, UDP_PLAIN), EDNS_PAYLOAD)
        dnssec_ok = DO_KEY if packet[end + 7] & 0x80 else 0  # RFC 3225: the OPT TTL's DO
        return QuestionKey(question + bytes((EDNS_KEY | dnssec_ok | flags,)), end, size)
    return None


def edns_size(packet: bytes, question_end: int, ceiling: int) -> int:
    """The largest UDP answer for a plain query (one :func:`question_key` accepted): its
    EDNS size (the OPT record right after the question) within [512, ``ceiling``]; 512
    without EDNS."""
    if len(packet) < question_end + 11:
        return UDP_PLAIN
    payload = packet[question_end + 3] << 8 | packet[question_end + 4]
    return min(max(payload, UDP_PLAIN), ceiling)


# -------------------------------------------------------------------- the key's layout


def question_of(name: str, rrtype: int) -> bytes:
    """A key less its flags byte: the question (class IN) in wire form, case folded."""
    return name_to_wire(name).lower() + _U16.pack(rrtype) + b"\x00\x01"


def key_question(key: bytes) -> bytes:
    """The question of a key (name, QTYPE, QCLASS): every client's flags alike."""
    return key[:-FLAGS_SIZE]


def key_name_wire(key: bytes) -> bytes:
    """The name of a key in wire form, case folded."""
    return key[: -(TYPE_CLASS_SIZE + FLAGS_SIZE)]


def question_name_wire(question: bytes) -> bytes:
    """The name of a key's question (:func:`key_question`, :func:`question_of`)."""
    return question[:-TYPE_CLASS_SIZE]


def key_qtype(key: bytes) -> int:
    """The QTYPE of a key."""
    at = len(key) - TYPE_CLASS_SIZE - FLAGS_SIZE
    return key[at] << 8 | key[at + 1]


def key_name(key: bytes) -> str:
    """The name of a key (or of its question) as text (WireError if it is no name)."""
    return read_name(key, 0)[0]


def query_qtype(packet: bytes, question_end: int) -> int:
    """The QTYPE of a raw query whose question ends at ``question_end``."""
    return packet[question_end - 4] << 8 | packet[question_end - 3]


# -------------------------------------------------------------------- answers made raw


def answer_flags(stored: bytes | bytearray, at: int, packet: bytes) -> bytes:
    """The two flag bytes of a stored answer (at ``at`` in ``stored``) patched for the
    query ``packet``: QR, the stored opcode, AA, TC and RCODE, the client's RD and CD."""
    return bytes((
        QR | (stored[at] & (OPCODE_MASK | AA | TC)) | (packet[2] & RD),
        (stored[at + 1] & ~CD & 0xFF) | (packet[3] & CD),
    ))  # fmt: skip


def truncated(packet: bytes) -> bytes | None:
    """TC=1 with the question and nothing else (an OPT record if the query had one), or
    None when the question cannot be read without parsing (such a packet is dropped)."""
    key = question_key(packet)
    if key is None or key.end - TYPE_CLASS_SIZE - HEADER_SIZE > MAX_NAME:
        return None  # question_key reads labels only: a name over 255 octets is not one
    flags = QR | TC | (packet[2] & (OPCODE_MASK | RD))
    header = packet[0:2] + bytes((flags, RA | (packet[3] & CD)))
    question = packet[HEADER_SIZE : key.end]
    if key.key[-1] & EDNS_KEY:
        return header + b"\x00\x01\x00\x00\x00\x00\x00\x01" + question + PLAIN_OPT
    return header + b"\x00\x01\x00\x00\x00\x00\x00\x00" + question
