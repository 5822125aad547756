"""The shared cache tier's values: an engine :class:`Answer` in wire form, and back, checked.

A value in Redis is a small envelope around a DNS response in wire form (RFC 1035
section 4.1), the question being the one asked:

====== ======= ===========================================================
offset  bytes  what
====== ======= ===========================================================
0       4      ``RSC1``: the format (another format is another magic: a miss)
4       1      the answer's DNSSEC state (:class:`Security`: unchecked, insecure, secure)
5       4      its lifetime, seconds: the Redis expiry it was written with
9       2      how many answer-section records are the answer (the rest: its RRSIGs)
11      2      how many authority records are the authority (its SOA; the rest: the
               NSEC/NSEC3 proof and its RRSIGs)
13      ...    the response: QR=1, the RCODE, the question, the records with their
               TTLs as they were at the write
====== ======= ===========================================================

One value serves every client of the question: the node shapes it for each
(RRSIGs and proofs for DO=1, AD, CD) as it does for an answer of its own engine,
so the key is the question alone (see :mod:`resolver.serve.shared`).

Redis is a trust boundary, as an upstream server is: anyone who can write to it
can put bytes there.  :func:`decode` parses the response with the same parser as
upstream replies and checks everything a client would see: the question (name,
type, class IN), the RCODE (NOERROR or NXDOMAIN), the sections (the answer's
records reachable from the question by its CNAMEs, RRSIGs over those records, one
SOA above the name for a negative answer, only NSEC/NSEC3/RRSIG as proof), every
TTL within the configured maximum and no shorter than the lifetime, the state one
the node accepts, the Redis expiry no longer than the lifetime.  Anything else is
:class:`BadValue`, counted and logged by the tier, never answered.

TTLs count down across nodes without trusting their clocks: the time a value has
spent in Redis is its lifetime less the expiry Redis has left for it (Redis's own
clock), and every TTL is lowered by that many whole seconds.

Checking the shape does not make the DNSSEC state in a value true: whoever writes to
Redis writes that byte too.  With ``hmac-keys`` configured, values are authenticated
(:func:`seal` and :func:`unseal`): ``RSH1``, then HMAC-SHA256 (RFC 2104) under the
first key over the Redis key and the rest of the value, then the value as above; a
value is accepted under any configured key (two during a rotation), and without a
valid tag it is refused.  Without keys, a value is unauthenticated and a validating
node validates it again before using it (:mod:`resolver.serve.shared`).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Collection, Iterable, Sequence

from resolver.cache.records import Security
from resolver.iterate.answer import Answer
from resolver.wire import (
    CLASS_IN,
    Header,
    Message,
    Opcode,
    Question,
    Rcode,
    ResourceRecord,
    RRType,
    WireError,
    parse_message,
    write_message,
)
from resolver.wire.dnssec_rdata import RRSIG
from resolver.wire.names import is_subdomain, name_key
from resolver.wire.rdata import CNAME

MAGIC = b"RSC1"
SEALED = b"RSH1"  # an authenticated value: SEALED, the HMAC tag, then a value as above
TAG_SIZE = 32  # HMAC-SHA256
_ENVELOPE = struct.Struct("!4sBIHH")  # magic, security, lifetime, answer count, authority count
ENVELOPE_SIZE = _ENVELOPE.size
SHARED_RCODES = frozenset({Rcode.NOERROR, Rcode.NXDOMAIN})
_PROOF_TYPES = frozenset({RRType.RRSIG, RRType.NSEC, RRType.NSEC3})


class BadValue(ValueError):
    """A value from Redis that must not reach a client: the reason, for the log."""


def _tag(key: bytes, redis_key: str, value: bytes) -> bytes:
    return hmac.new(key, redis_key.encode() + b"\x00" + value, hashlib.sha256).digest()


def seal(value: bytes, redis_key: str, keys: Sequence[bytes]) -> bytes:
    """The value authenticated under the first key (unchanged without keys); the Redis
    key is in the tag, so a value moved to another key is refused too."""
    if not keys:
        return value
    return SEALED + _tag(keys[0], redis_key, value) + value


def unseal(value: bytes, redis_key: str, keys: Sequence[bytes]) -> tuple[bytes, bool]:
    """(the value inside, whether it is authenticated).  With keys, a value without a
    tag valid under one of them is BadValue; without keys, a sealed value is taken
    unauthenticated (this node cannot tell)."""
    sealed = value.startswith(SEALED) and len(value) > len(SEALED) + TAG_SIZE
    inner = value[len(SEALED) + TAG_SIZE :] if sealed else value
    if not keys:
        return inner, False
    if not sealed:
        raise BadValue("not authenticated (hmac-keys are configured)")
    tag = value[len(SEALED) : len(SEALED) + TAG_SIZE]
    if not any(hmac.compare_digest(tag, _tag(key, redis_key, inner)) for key in keys):
        raise BadValue("bad authentication tag (no configured hmac key made it)")
    return inner, True


def accepted_states(validating: bool) -> frozenset[int]:
    """The DNSSEC states a node takes from the tier, and writes to it: a validating node
    only validated-secure or provably insecure data (RFC 4035 section 4.3), never bogus
    nor unchecked; a node that does not validate also its unchecked data."""
    if validating:
        return frozenset({Security.SECURE, Security.INSECURE})
    return frozenset({Security.SECURE, Security.INSECURE, Security.UNCHECKED})


def _records(answer: Answer) -> list[ResourceRecord]:
    return [*answer.answer, *(answer.sigs or []), *answer.authority, *(answer.proof or [])]


def lifetime_of(answer: Answer) -> int:
    """Seconds the answer stays good: its smallest TTL (0 when it has no record)."""
    return min((rr.ttl for rr in _records(answer)), default=0)


def shareable(answer: Answer, validating: bool) -> bool:
    """Whether a resolved answer may be written: NOERROR or NXDOMAIN (never a SERVFAIL),
    in a state the tier holds, with records to count down; never stale data (RFC 8767)."""
    return (
        answer.failure is None
        and not answer.stale
        and answer.rcode in SHARED_RCODES
        and answer.security in accepted_states(validating)
        and lifetime_of(answer) > 0
    )


def encode(qname: str, qtype: int, answer: Answer, max_ttl: int) -> tuple[bytes, int]:
    """(the value, its lifetime in seconds) for a shareable answer; TTLs above ``max_ttl``
    are lowered to it, so that every node reading it accepts it."""
    records = [*answer.answer, *(answer.sigs or [])]
    authority = [*answer.authority, *(answer.proof or [])]

    def capped(section: list[ResourceRecord]) -> list[ResourceRecord]:
        return [
            rr if rr.ttl <= max_ttl else ResourceRecord(rr.name, rr.rrtype, rr.rrclass,
                                                        max_ttl, rr.rdata)
            for rr in section
        ]  # fmt: skip

    records, authority = capped(records), capped(authority)
    lifetime = min(rr.ttl for rr in (*records, *authority))
    header = Header(0, 1, Opcode.QUERY, 0, 0, 0, 1, 0, 0, 0, answer.rcode)
    message = Message(header, [Question(qname, qtype, CLASS_IN)], records, authority, [], None)
    envelope = _ENVELOPE.pack(MAGIC, answer.security, lifetime, len(answer.answer),
                              len(answer.authority))  # fmt: skip
    return envelope + write_message(message), lifetime


def decode(
    value: bytes,
    qname: str,
    qtype: int,
    remaining: float,
    *,
    max_ttl: int,
    states: Collection[int],
) -> Answer:
    """The answer a value holds, its TTLs counted down to ``remaining`` (the seconds Redis
    has left on the key), checked as described above; BadValue otherwise."""
    if len(value) < ENVELOPE_SIZE:
        raise BadValue(f"{len(value)} bytes: shorter than the envelope")
    magic, security, lifetime, answer_count, authority_count = _ENVELOPE.unpack_from(value)
    if magic != MAGIC:
        raise BadValue(f"not a value of this format ({magic!r})")
    if security not in states:
        raise BadValue(f"DNSSEC state {security} is not one this node accepts")
    if not 1 <= lifetime <= max_ttl:
        raise BadValue(f"lifetime {lifetime} outside 1..{max_ttl}")
    if remaining > lifetime:
        raise BadValue(f"Redis expiry {remaining:.0f} s is longer than the lifetime {lifetime}")
    try:
        message = parse_message(value[ENVELOPE_SIZE:])
    except WireError as error:
        raise BadValue(f"not a DNS message: {error}") from None
    rcode = _check_message(message, qname, qtype)
    if answer_count > len(message.answer) or authority_count > len(message.authority):
        raise BadValue("section counts larger than the sections")
    records, sigs = message.answer[:answer_count], message.answer[answer_count:]
    authority, proof = message.authority[:authority_count], message.authority[authority_count:]
    _check_ttls(message, lifetime, max_ttl)
    chain = _check_answer(records, qname, qtype)
    _check_sigs(sigs, records)
    _check_negative(authority, proof, chain, rcode)
    if not records and not authority:
        raise BadValue("no record to answer with")
    elapsed = int(lifetime - remaining)  # whole seconds spent in Redis, by Redis's clock
    return Answer(
        rcode, _aged(records, elapsed), _aged(authority, elapsed), 0, None, True, security,
        _aged(sigs, elapsed) or None, _aged(proof, elapsed) or None,
    )  # fmt: skip


def _aged(records: Iterable[ResourceRecord], elapsed: int) -> list[ResourceRecord]:
    if elapsed <= 0:
        return list(records)
    return [ResourceRecord(rr.name, rr.rrtype, rr.rrclass, rr.ttl - elapsed, rr.rdata)
            for rr in records]  # fmt: skip


def _check_message(message: Message, qname: str, qtype: int) -> int:
    """The header and question are those of a response to this question; its RCODE."""
    header = message.header
    if not header.qr or header.opcode != Opcode.QUERY or header.tc:
        raise BadValue("not a complete response to a query (QR, opcode, TC)")
    rcode = message.rcode
    if rcode not in SHARED_RCODES:
        raise BadValue(f"RCODE {Rcode.text(rcode)} is never shared")
    if message.edns is not None or message.additional:
        raise BadValue("an additional section (the tier keeps none)")
    if len(message.question) != 1:
        raise BadValue(f"{len(message.question)} questions")
    question = message.question[0]
    if (name_key(question.name), question.rrtype, question.rrclass) != (
        name_key(qname), qtype, CLASS_IN,
    ):  # fmt: skip
        raise BadValue(f"the question is {question.name} type {question.rrtype}, "
                       f"not the one asked")  # fmt: skip
    return rcode


def _check_ttls(message: Message, lifetime: int, max_ttl: int) -> None:
    for rr in (*message.answer, *message.authority):
        if rr.rrclass != CLASS_IN:
            raise BadValue(f"{rr.name} has class {rr.rrclass}, not IN")
        if not lifetime <= rr.ttl <= max_ttl:
            raise BadValue(f"{rr.name} TTL {rr.ttl} outside {lifetime}..{max_ttl}")


def _check_answer(records: list[ResourceRecord], qname: str, qtype: int) -> set[str]:
    """The answer's records all belong to the question: owned by the name or a name its
    CNAMEs lead to (a DNAME by a name above one of them), of the type asked (or CNAME,
    DNAME).  Returns the chain's names, folded."""
    chain = {name_key(qname)}
    grown = True
    while grown:  # the CNAME closure, whatever the records' order
        grown = False
        for rr in records:
            if rr.rrtype == RRType.CNAME and name_key(rr.name) in chain:
                assert isinstance(rr.rdata, CNAME)
                target = name_key(rr.rdata.target)
                if target not in chain:
                    chain.add(target)
                    grown = True
    for rr in records:
        owner = name_key(rr.name)
        if rr.rrtype == RRType.DNAME:
            if not any(name != owner and is_subdomain(name, owner) for name in chain):
                raise BadValue(f"DNAME at {rr.name} is above no name of the answer")
            continue
        if owner not in chain:
            raise BadValue(f"{rr.name} is not the name asked nor a CNAME target")
        if rr.rrtype != RRType.CNAME and qtype != RRType.ANY and rr.rrtype != qtype:
            raise BadValue(f"{rr.name} type {rr.rrtype} in an answer to type {qtype}")
    return chain


def _check_sigs(sigs: list[ResourceRecord], records: list[ResourceRecord]) -> None:
    """Each RRSIG covers a record set of the answer (same owner, type covered)."""
    present = {(name_key(rr.name), rr.rrtype) for rr in records}
    for rr in sigs:
        if not isinstance(rr.rdata, RRSIG):
            raise BadValue(f"{rr.name} type {rr.rrtype} where only RRSIGs go")
        if (name_key(rr.name), rr.rdata.type_covered) not in present:
            raise BadValue(f"RRSIG at {rr.name} covers nothing in the answer")


def _check_negative(
    authority: list[ResourceRecord], proof: list[ResourceRecord], chain: set[str], rcode: int
) -> None:
    """The authority is one SOA of a zone above a name of the answer (RFC 2308 section 3);
    the proof only NSEC, NSEC3 and RRSIG records, in that zone."""
    if len(authority) > 1 or any(rr.rrtype != RRType.SOA for rr in authority):
        raise BadValue("the authority is not one SOA")
    zone = name_key(authority[0].name) if authority else None
    if zone is not None and not any(is_subdomain(name, zone) for name in chain):
        raise BadValue(f"SOA of {zone} is above no name of the answer")
    if rcode == Rcode.NXDOMAIN and zone is None and len(chain) == 1:
        raise BadValue("NXDOMAIN without an SOA")
    for rr in proof:
        if rr.rrtype not in _PROOF_TYPES:
            raise BadValue(f"{rr.name} type {rr.rrtype} in the proof")
        if zone is not None and not is_subdomain(name_key(rr.name), zone):
            raise BadValue(f"proof record {rr.name} outside {zone}")
