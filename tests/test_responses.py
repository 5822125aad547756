"""What a response carries (resolver.serve.responses): DNSSEC records by DO, AD, ANY."""

from __future__ import annotations

import dns.flags
import dns.message

from resolver.cache.records import Security
from resolver.iterate.answer import Answer
from resolver.serve.responses import authenticated, one_rrset, sections
from resolver.wire import Message, ResourceRecord, RRType, parse_message
from resolver.wire.dnssec_rdata import RRSIG
from resolver.wire.rdata import AAAA, MX, A

NAME = "multi.example."


def query(qtype: str, *, do: bool = False, ad: bool = False) -> Message:
    made = dns.message.make_query(NAME, qtype, use_edns=0 if do else None, want_dnssec=do)
    if ad:
        made.flags |= dns.flags.AD
    return parse_message(made.to_wire())


def rrsig(covered: int) -> ResourceRecord:
    sig = RRSIG(covered, 13, 2, 300, 2000000000, 1000000000, 12345, "example.", b"\x01" * 64)
    return ResourceRecord(NAME, RRType.RRSIG, 1, 300, sig)


RECORDS = [
    ResourceRecord(NAME, RRType.A, 1, 300, A("192.0.2.1")),
    ResourceRecord(NAME, RRType.A, 1, 300, A("192.0.2.2")),
    ResourceRecord(NAME, RRType.AAAA, 1, 300, AAAA("2001:db8::1")),
    ResourceRecord(NAME, RRType.MX, 1, 300, MX(10, "mail.example.")),
]
SIGS = [rrsig(RRType.A), rrsig(RRType.AAAA), rrsig(RRType.MX)]


def test_any_gets_the_first_rrset_only() -> None:
    """RFC 8482 section 4.1: one RRset of the name, all of its records."""
    answer, authority = sections(query("ANY"), Answer(0, RECORDS, []))
    assert answer == RECORDS[:2] and authority == []


def test_any_with_do_gets_the_signatures_of_that_rrset_only() -> None:
    resolution = Answer(0, RECORDS, [], security=Security.SECURE, sigs=SIGS)
    answer, _ = sections(query("ANY", do=True), resolution)
    assert answer == [*RECORDS[:2], SIGS[0]]


def test_other_types_keep_every_record() -> None:
    answer, _ = sections(query("A"), Answer(0, RECORDS, []))
    assert answer == RECORDS


def test_rrsigs_go_only_to_do_clients() -> None:
    resolution = Answer(0, RECORDS[:2], [], security=Security.SECURE, sigs=SIGS[:1])
    assert sections(query("A"), resolution)[0] == RECORDS[:2]
    assert sections(query("A", do=True), resolution)[0] == [*RECORDS[:2], SIGS[0]]


def test_one_rrset_of_nothing_is_nothing() -> None:
    assert one_rrset([]) == []


def test_ad_only_for_validated_data_and_a_client_that_understands_it() -> None:
    secure = Answer(0, RECORDS, [], security=Security.SECURE)
    insecure = Answer(0, RECORDS, [], security=Security.INSECURE)
    assert authenticated(query("A", do=True), secure)
    assert authenticated(query("A", ad=True), secure)  # RFC 6840 section 5.7
    assert not authenticated(query("A"), secure)  # RFC 6840 section 5.8
    assert not authenticated(query("A", do=True), insecure)
