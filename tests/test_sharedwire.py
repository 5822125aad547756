"""The shared cache tier's values (resolver.serve.sharedwire): an answer written and read back
whole, TTLs counted down by the time spent in Redis, and every kind of bad value refused (a
shared tier is a trust boundary: its bytes are checked as an upstream reply's are)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resolver.cache.records import Security
from resolver.iterate.answer import Answer, Failure, FailureKind
from resolver.serve.sharedwire import (
    ENVELOPE_SIZE,
    MAGIC,
    BadValue,
    accepted_states,
    decode,
    encode,
    lifetime_of,
    shareable,
)
from resolver.wire import CLASS_IN, Rcode, ResourceRecord, RRType, parse_message, write_message
from resolver.wire.dnssec_rdata import NSEC, RRSIG
from resolver.wire.rdata import AAAA, CNAME, DNAME, SOA, A

MAX_TTL = 86400
ANY_STATE = accepted_states(False)


def rr(name: str, rrtype: int, ttl: int, rdata: object) -> ResourceRecord:
    return ResourceRecord(name, rrtype, CLASS_IN, ttl, rdata)


def a(name: str, address: str, ttl: int = 300) -> ResourceRecord:
    return rr(name, RRType.A, ttl, A(address))


def cname(name: str, target: str, ttl: int = 300) -> ResourceRecord:
    return rr(name, RRType.CNAME, ttl, CNAME(target))


def soa(zone: str, ttl: int = 60) -> ResourceRecord:
    return rr(zone, RRType.SOA, ttl, SOA(f"ns1.{zone}", f"admin.{zone}", 1, 1800, 900, 604800, 60))


def rrsig(name: str, covered: int, ttl: int = 300) -> ResourceRecord:
    data = RRSIG(covered, 13, name.count("."), ttl, 2_000_000_000, 1_700_000_000, 12345,
                 "example.com.", b"\x01" * 64)  # fmt: skip
    return rr(name, RRType.RRSIG, ttl, data)


def positive(*records: ResourceRecord, security: int = Security.UNCHECKED) -> Answer:
    return Answer(Rcode.NOERROR, list(records), [], 3, None, False, security)


def round_trip(
    answer: Answer,
    qname: str = "www.example.com.",
    qtype: int = RRType.A,
    remaining: float | None = None,
    states: frozenset[int] = ANY_STATE,
) -> Answer:
    value, lifetime = encode(qname, qtype, answer, MAX_TTL)
    left = lifetime if remaining is None else remaining
    return decode(value, qname, qtype, left, max_ttl=MAX_TTL, states=states)


def test_a_positive_answer_comes_back_whole() -> None:
    answer = positive(a("www.example.com.", "192.0.2.1"), a("www.example.com.", "192.0.2.2"))
    back = round_trip(answer)
    assert back.rcode == Rcode.NOERROR
    assert back.answer == answer.answer
    assert back.authority == [] and back.sigs is None and back.proof is None
    assert back.from_cache and back.upstream_queries == 0 and back.failure is None


def test_a_cname_chain_and_its_signatures_and_state() -> None:
    records = [cname("www.example.com.", "web.example.net."), a("web.example.net.", "192.0.2.9")]
    answer = positive(*records, security=Security.SECURE)
    answer.sigs = [rrsig("www.example.com.", RRType.CNAME), rrsig("web.example.net.", RRType.A)]
    back = round_trip(answer, states=accepted_states(True))
    assert back.answer == records
    assert back.sigs == answer.sigs
    assert back.security == Security.SECURE


def test_a_negative_answer_with_its_proof() -> None:
    proof = [rr("example.com.", RRType.NSEC, 60, NSEC("z.example.com.", (RRType.A, RRType.SOA))),
             rrsig("example.com.", RRType.NSEC, 60)]  # fmt: skip
    answer = Answer(Rcode.NXDOMAIN, [], [soa("example.com.")], 2, None, False, Security.SECURE,
                    None, proof)  # fmt: skip
    back = round_trip(answer, "nothing.example.com.", states=accepted_states(True))
    assert back.rcode == Rcode.NXDOMAIN
    assert back.authority == answer.authority
    assert back.proof == proof


def test_ttls_count_down_by_the_time_spent_in_redis() -> None:
    answer = positive(cname("www.example.com.", "web.example.com.", 600),
                      a("web.example.com.", "192.0.2.1", 300))  # fmt: skip
    # Written with lifetime 300 (the smallest TTL); Redis has 289.6 s left: 10 s have passed.
    back = round_trip(answer, remaining=289.6)
    assert [r.ttl for r in back.answer] == [590, 290]


def test_ttls_above_the_maximum_are_written_capped() -> None:
    huge = positive(a("www.example.com.", "192.0.2.1", 10**6))
    value, lifetime = encode("www.example.com.", RRType.A, huge, MAX_TTL)
    assert lifetime == MAX_TTL
    back = decode(value, "www.example.com.", RRType.A, lifetime, max_ttl=MAX_TTL, states=ANY_STATE)
    assert back.answer[0].ttl == MAX_TTL


def test_what_is_shared_and_what_is_not() -> None:
    good = positive(a("www.example.com.", "192.0.2.1"))
    assert shareable(good, validating=False)
    assert not shareable(good, validating=True)  # unchecked data, with validation on
    good.security = Security.INSECURE
    assert shareable(good, validating=True)
    good.security = Security.BOGUS
    assert not shareable(good, validating=False)
    failed = Answer(Rcode.SERVFAIL, [], [], 5, Failure(FailureKind.LIMIT, "x"))
    assert not shareable(failed, validating=False)
    zero = positive(a("www.example.com.", "192.0.2.1", ttl=0))
    assert lifetime_of(zero) == 0 and not shareable(zero, validating=False)
    nodata_without_soa = positive()
    assert not shareable(nodata_without_soa, validating=False)


# -- bad values ------------------------------------------------------------------------------


def good_value(qname: str = "www.example.com.") -> bytes:
    return encode(qname, RRType.A, positive(a(qname, "192.0.2.1")), MAX_TTL)[0]


def refused(value: bytes, qname: str = "www.example.com.", qtype: int = RRType.A,
            remaining: float = 300, states: frozenset[int] = ANY_STATE) -> str:  # fmt: skip
    with pytest.raises(BadValue) as caught:
        decode(value, qname, qtype, remaining, max_ttl=MAX_TTL, states=states)
    return str(caught.value)


def with_message(value: bytes, edit: object) -> bytes:
    """The value with its DNS message parsed, edited and written again."""
    message = parse_message(value[ENVELOPE_SIZE:])
    assert callable(edit)
    edit(message)
    return value[:ENVELOPE_SIZE] + write_message(message)


def with_envelope(value: bytes, **fields: int) -> bytes:
    magic, security, lifetime, answers, authority = struct.unpack_from("!4sBIHH", value)
    values = {"security": security, "lifetime": lifetime, "answers": answers,
              "authority": authority} | fields  # fmt: skip
    return struct.pack("!4sBIHH", magic, *values.values()) + value[ENVELOPE_SIZE:]


def test_garbage_and_other_formats_are_refused() -> None:
    assert "shorter than the envelope" in refused(b"RSC")
    assert "not a value of this format" in refused(b"XXXX" + good_value()[4:])
    assert "not a DNS message" in refused(good_value()[:-3])
    assert "not a DNS message" in refused(good_value() + b"\x00")


def test_the_question_must_be_the_one_asked() -> None:
    assert "not the one asked" in refused(good_value(), qname="other.example.com.")
    assert "not the one asked" in refused(good_value(), qtype=RRType.AAAA)
    # Letter case does not matter (RFC 4343).
    assert decode(good_value(), "WWW.Example.COM.", RRType.A, 300, max_ttl=MAX_TTL,
                  states=ANY_STATE).answer  # fmt: skip


def test_ttls_over_the_maximum_and_expiries_longer_than_the_lifetime() -> None:
    value = good_value()
    with pytest.raises(BadValue, match=r"lifetime 300 outside 1\.\.100"):
        decode(value, "www.example.com.", RRType.A, 60, max_ttl=100, states=ANY_STATE)
    mixed = encode("www.example.com.", RRType.A, positive(
        a("www.example.com.", "192.0.2.1", 50), a("www.example.com.", "192.0.2.2", 300)),
        MAX_TTL)[0]  # fmt: skip
    with pytest.raises(BadValue, match=r"TTL 300 outside 50\.\.100"):
        decode(mixed, "www.example.com.", RRType.A, 50, max_ttl=100, states=ANY_STATE)
    assert "longer than the lifetime" in refused(value, remaining=301)
    assert "lifetime 0 outside" in refused(with_envelope(value, lifetime=0))
    assert "outside 400.." in refused(with_envelope(value, lifetime=400))


def test_states_a_validating_node_does_not_take() -> None:
    secure_only = accepted_states(True)
    assert "state 0" in refused(good_value(), states=secure_only)  # unchecked
    assert "state 3" in refused(with_envelope(good_value(), security=Security.BOGUS))


def test_rcodes_other_than_noerror_and_nxdomain() -> None:
    value = with_message(good_value(), lambda m: m.set_rcode(Rcode.SERVFAIL))
    assert "never shared" in refused(value)


def test_records_that_do_not_belong_to_the_question() -> None:
    stranger = with_message(good_value(), lambda m: m.answer.append(a("evil.example.", "6.6.6.6")))
    assert "not the name asked" in refused(with_envelope(stranger, answers=2))
    other_type = with_message(good_value(), lambda m: m.answer.append(
        rr("www.example.com.", RRType.AAAA, 300, AAAA("2001:db8::3"))))  # fmt: skip
    assert "type" in refused(with_envelope(other_type, answers=2))
    # A CNAME chain is followed; a DNAME must be above a name of the chain.
    chain = encode("www.example.com.", RRType.A, positive(
        cname("www.example.com.", "www.example.net."), a("www.example.net.", "192.0.2.1")),
        MAX_TTL)[0]  # fmt: skip
    assert decode(chain, "www.example.com.", RRType.A, 300, max_ttl=MAX_TTL, states=ANY_STATE)
    dname = with_message(good_value(), lambda m: m.answer.append(
        rr("elsewhere.org.", RRType.DNAME, 300, DNAME("example.net."))))  # fmt: skip
    assert "DNAME" in refused(with_envelope(dname, answers=2))


def test_signatures_proofs_and_authority_are_checked() -> None:
    lone_sig = with_message(good_value(), lambda m: m.answer.append(
        rrsig("www.example.com.", RRType.AAAA)))  # fmt: skip
    assert "covers nothing" in refused(lone_sig)
    not_a_sig = with_message(
        good_value(), lambda m: m.answer.append(a("www.example.com.", "1.2.3.4"))
    )
    assert "only RRSIGs" in refused(not_a_sig)
    negative = encode("x.example.com.", RRType.A, Answer(
        Rcode.NXDOMAIN, [], [soa("example.com.")], 2), MAX_TTL)[0]  # fmt: skip
    foreign_soa = with_message(negative, lambda m: m.authority.__setitem__(0, soa("other.org.")))
    assert "above no name" in refused(foreign_soa, qname="x.example.com.", remaining=60)
    extra = with_message(negative, lambda m: m.authority.append(a("x.example.com.", "1.2.3.4")))
    assert "in the proof" in refused(extra, qname="x.example.com.", remaining=60)
    two_soas = with_message(negative, lambda m: m.authority.append(soa("example.com.")))
    assert "not one SOA" in refused(
        with_envelope(two_soas, authority=2), qname="x.example.com.", remaining=60
    )
    no_soa = with_message(negative, lambda m: m.authority.clear())
    assert "counts larger" in refused(no_soa, qname="x.example.com.", remaining=60)
    assert "without an SOA" in refused(
        with_envelope(no_soa, authority=0), qname="x.example.com.", remaining=60
    )


def test_counts_larger_than_the_sections() -> None:
    assert "counts larger" in refused(with_envelope(good_value(), answers=5))


def test_an_additional_section_is_refused() -> None:
    value = with_message(
        good_value(), lambda m: m.additional.append(a("www.example.com.", "1.1.1.1"))
    )
    assert "additional" in refused(value)


# -- property: bytes from Redis never do anything but decode or raise BadValue ----------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_are_refused_cleanly(data: bytes) -> None:
    with pytest.raises(BadValue):
        decode(MAGIC + data, "www.example.com.", RRType.A, 300, max_ttl=MAX_TTL, states=ANY_STATE)


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_a_damaged_value_is_refused_or_still_checked(data: st.DataObject) -> None:
    value = bytearray(good_value())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(value) - 1))
        value[at] = data.draw(st.integers(0, 255))
    try:
        answer = decode(bytes(value), "www.example.com.", RRType.A, 300, max_ttl=MAX_TTL,
                        states=ANY_STATE)  # fmt: skip
    except BadValue:
        return
    # What gets through answers this question, within the limits.
    assert answer.rcode in (Rcode.NOERROR, Rcode.NXDOMAIN)
    assert all(r.ttl <= MAX_TTL and r.rrclass == CLASS_IN for r in answer.answer)
    assert all(r.name.lower() == "www.example.com." for r in answer.answer)
