"""Building the responses the service sends: header rules, EDNS, Extended DNS Errors, size.

- Responses copy the client's ID, opcode, RD and CD, set QR and RA, never AA,
  echo the question as written, and carry EDNS only if the query did (RFC 1035
  section 4.1.1, RFC 6891 section 7).
- Every SERVFAIL and REFUSED to a client that used EDNS says why in an Extended
  DNS Error (RFC 8914): an INFO-CODE, and words for people as EXTRA-TEXT.
- A UDP answer larger than the client takes (512, or its EDNS size capped at
  ``max-udp-size``, 1232 by default) is sent with TC=1 and no records (RFC 1035
  section 4.2.1, RFC 6891 section 6.2.5), so the client asks again over TCP.
- RRSIGs and NSEC/NSEC3 proofs go only to clients that set DO, and AD only to
  those that set DO or AD, for answers that validated (RFC 4035 section 3.2,
  RFC 6840 section 5.7).
"""

from __future__ import annotations

from collections.abc import Sequence

from resolver.cache.records import Security
from resolver.iterate.answer import Answer, Failure, FailureKind
from resolver.wire import (
    EDNS_PAYLOAD,
    UDP_PLAIN,
    Edns,
    Header,
    Message,
    ResourceRecord,
    RRType,
    write_message,
)
from resolver.wire.dnssec_rdata import RRSIG
from resolver.wire.ede import EdeCode, ExtendedError, ede_option
from resolver.wire.names import name_key

# Why a resolution failed -> the INFO-CODE of its SERVFAIL.
#  - NO_REACHABLE_AUTHORITY: every server of a zone failed, was lame or unusable: 4.23 says
#    exactly that ("could not reach any of the authoritative name servers (or they
#    potentially refused to reply)").
#  - NETWORK_ERROR: the servers could not be reached at all (unreachable, no route): 4.24.
#  - TIME_BUDGET: no authoritative answer came within the question's time budget, which in
#    practice means servers that do not answer: 4.23 again, the text saying "time budget".
#  - LIMIT: a bound of ours (upstream queries, referrals, a delegation or CNAME loop) ended
#    the walk; no code says "the data forms a loop", so 4.1 Other, with the limit as text,
#    which RFC 8914 asks for with Other.
#  - OVERLOADED: the question was never started (too many in flight): 4.15 Not Ready, the
#    server is not able to take it now; a retry later may work.
# A kind added later and not listed here is sent as Other with its text.
FAILURE_CODES: dict[FailureKind, EdeCode] = {
    FailureKind.NO_REACHABLE_AUTHORITY: EdeCode.NO_REACHABLE_AUTHORITY,
    FailureKind.NETWORK_ERROR: EdeCode.NETWORK_ERROR,
    FailureKind.TIME_BUDGET: EdeCode.NO_REACHABLE_AUTHORITY,
    FailureKind.LIMIT: EdeCode.OTHER,
    FailureKind.OVERLOADED: EdeCode.NOT_READY,
    FailureKind.DNSSEC_BOGUS: EdeCode.DNSSEC_BOGUS,
}


def failure_error(failure: Failure | None) -> ExtendedError:
    if failure is None:  # a SERVFAIL without a reason should not happen; still say so
        return EdeCode.OTHER, "no reason given"
    if failure.info_code is not None:  # the engine knew better (Signature Expired...)
        return failure.info_code, failure.text
    return FAILURE_CODES.get(failure.kind, EdeCode.OTHER), failure.text


def make_response(
    query: Message,
    rcode: int,
    answer: Sequence[ResourceRecord] = (),
    authority: Sequence[ResourceRecord] = (),
    *,
    error: ExtendedError | None = None,
    with_question: bool = True,
    authenticated: bool = False,
) -> Message:
    """The response to a parsed query, with ``rcode`` and the given sections.

    ``authenticated`` sets AD: the answer validated (RFC 4035 section 3.2.3).
    ``error`` is added as an Extended DNS Error when the client used EDNS (a client
    without EDNS cannot receive one).  ``with_question`` is False when the query's
    question section is not one question (FORMERR).
    """
    header = query.header
    edns = None
    if query.edns is not None:
        options = (ede_option(error),) if error is not None else ()
        # RFC 3225 section 3: the DO bit is copied into the response.
        edns = Edns(EDNS_PAYLOAD, dnssec_ok=query.edns.dnssec_ok, options=options)
    ad = int(authenticated)
    response = Message(
        Header(header.id, 1, header.opcode, 0, 0, header.rd, 1, 0, ad, header.cd, 0),
        list(query.question) if with_question else [],
        list(answer), list(authority), [], edns,
    )  # fmt: skip
    response.set_rcode(rcode)
    return response


def udp_limit(query: Message, max_udp_size: int = EDNS_PAYLOAD) -> int:
    """The largest UDP response this client takes: 512 without EDNS, else its size
    within [512, max_udp_size] (``max-udp-size``, 1232 by default)."""
    if query.edns is None:
        return UDP_PLAIN
    return min(max(query.edns.payload, UDP_PLAIN), max_udp_size)


def fit_udp(
    query: Message, response: Message, wire: bytes, max_udp_size: int = EDNS_PAYLOAD,
    reserve: int = 0,
) -> bytes:  # fmt: skip
    """``wire`` if it fits the client's UDP size less ``reserve`` bytes (options added
    afterwards: our COOKIE), else the response truncated: TC=1 and no records (the OPT
    and its Extended DNS Error kept)."""
    if len(wire) <= udp_limit(query, max_udp_size) - reserve:
        return wire
    response.answer, response.authority, response.additional = [], [], []
    response.header.tc = 1
    return write_message(response)


# Types a client without DO gets only when it asks for them (RFC 4035 section 3.2.1).
DNSSEC_TYPES = frozenset({RRType.RRSIG, RRType.NSEC, RRType.NSEC3})


def sections(query: Message, resolution: Answer) -> tuple[list[ResourceRecord], ...]:
    """The answer and authority sections for this client: with DO=1 the RRSIGs and the
    NSEC/NSEC3 proofs too (RFC 4035 section 3.2.1), without it none of them.  An ANY
    question gets one RRset (RFC 8482 section 4.1)."""
    qtype = query.question[0].rrtype
    records = resolution.answer
    if qtype == RRType.ANY:
        records = one_rrset(records)
    edns = query.edns
    if edns is not None and edns.dnssec_ok:
        sigs = resolution.sigs or []
        if qtype == RRType.ANY and records:
            covered = records[0].rrtype
            sigs = [
                rr
                for rr in sigs
                if isinstance(rr.rdata, RRSIG) and rr.rdata.type_covered == covered
            ]
        return records + sigs, resolution.authority + (resolution.proof or [])
    answer = [rr for rr in records if rr.rrtype not in DNSSEC_TYPES or rr.rrtype == qtype]
    return answer, resolution.authority


def one_rrset(records: list[ResourceRecord]) -> list[ResourceRecord]:
    """The first RRset of an ANY answer: RFC 8482 section 4.1 lets a responder give one
    RRset of the name instead of all of them, which takes from ANY its use as an
    amplifier (a small question, every record of a name in reply).  Like BIND's
    ``minimal-any``, but over TCP too: the wire cache then holds one answer per question
    whatever the transport.  The client learns the name exists and gets real data; a
    client that wants a type asks for it."""
    if not records:
        return records
    first = records[0]
    owner, rrtype = name_key(first.name), first.rrtype
    return [rr for rr in records if rr.rrtype == rrtype and name_key(rr.name) == owner]


def authenticated(query: Message, resolution: Answer) -> bool:
    """AD=1: the answer validated, and the client said it understands AD, by DO=1 or by
    setting AD in the query (RFC 4035 section 3.2.3, RFC 6840 section 5.7)."""
    if resolution.security != Security.SECURE:
        return False
    edns = query.edns
    return bool(query.header.ad) or (edns is not None and bool(edns.dnssec_ok))
