"""Reply classification and bailiwick scrubbing (resolver.iterate.classify)."""

from __future__ import annotations

from collections.abc import Iterable

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from resolver.iterate.classify import (
    MAX_NS_PER_RRSET,
    Classified,
    Kind,
    classify,
    classify_forwarded,
)
from resolver.wire import Message, RRType, parse_message
from tests.fakes import reply


def message(qname: str, qtype: str, **sections: object) -> Message:
    """An authoritative server's reply (see tests.fakes.reply), parsed by our codec."""
    return parse_message(reply(qname, qtype, **sections).to_wire())  # type: ignore[arg-type]


def run(msg: Message, qname: str, qtype: str, zone: str) -> Classified:
    return classify(msg, qname, RRType.from_text(qtype), zone)


def texts(records: Iterable[object]) -> list[str]:
    return [rr.to_text() for rr in records]  # type: ignore[attr-defined]


SOA = "example.com. 300 SOA ns1.example.com. hostmaster.example.com. 1 1800 900 604800 60"
WWW = "www.example.com. 300 A 192.0.2.1"


# ---------------------------------------------------------------------- each kind


def test_answer() -> None:
    msg = message("www.example.com.", "A", aa=True, answer=[WWW])
    step = run(msg, "www.example.com.", "A", "example.com.")
    assert step.kind == Kind.ANSWER
    assert texts(step.records) == [WWW]
    assert step.name == "www.example.com." and step.authoritative


def test_answer_is_found_case_insensitively() -> None:
    msg = message("WWW.Example.COM.", "A", aa=True, answer=["WWW.Example.COM. 300 A 192.0.2.1"])
    step = run(msg, "www.example.com.", "A", "EXAMPLE.com.")
    assert step.kind == Kind.ANSWER and step.records[0].name == "WWW.Example.COM."


def test_answer_after_a_cname_inside_the_reply() -> None:
    msg = message(
        "alias.example.com.",
        "A",
        aa=True,
        answer=["alias.example.com. 300 CNAME www.example.com.", WWW],
    )
    step = run(msg, "alias.example.com.", "A", "example.com.")
    assert step.kind == Kind.ANSWER
    assert texts(step.records) == ["alias.example.com. 300 CNAME www.example.com.", WWW]
    assert step.name == "www.example.com."


def test_asking_for_the_cname_itself_is_an_answer() -> None:
    msg = message("alias.example.com.", "CNAME", aa=True,
                  answer=["alias.example.com. 300 CNAME www.example.net."])  # fmt: skip
    step = run(msg, "alias.example.com.", "CNAME", "example.com.")
    assert step.kind == Kind.ANSWER


def test_any_takes_every_record_of_the_name() -> None:
    msg = message("www.example.com.", "ANY", aa=True,
                  answer=[WWW, "www.example.com. 300 AAAA 2001:db8::1"])  # fmt: skip
    step = run(msg, "www.example.com.", "ANY", "example.com.")
    assert step.kind == Kind.ANSWER and len(step.records) == 2


def test_cname_leaving_the_zone() -> None:
    msg = message("www.chain.com.", "A", aa=True,
                  answer=["www.chain.com. 300 CNAME a.chain.net."])  # fmt: skip
    step = run(msg, "www.chain.com.", "A", "chain.com.")
    assert step.kind == Kind.CNAME
    assert step.name == "a.chain.net."
    assert texts(step.records) == ["www.chain.com. 300 CNAME a.chain.net."]


def test_cname_with_nxdomain_for_a_target_outside_the_zone_is_followed() -> None:
    msg = message(
        "dangling.example.com.",
        "A",
        rcode=dns.rcode.NXDOMAIN,
        aa=True,
        answer=["dangling.example.com. 300 CNAME nothing.example.net."],
    )
    step = run(msg, "dangling.example.com.", "A", "example.com.")
    assert step.kind == Kind.CNAME and step.name == "nothing.example.net."


def test_cname_with_nxdomain_for_a_target_inside_the_zone() -> None:
    msg = message(
        "dangling.example.com.",
        "A",
        rcode=dns.rcode.NXDOMAIN,
        aa=True,
        answer=["dangling.example.com. 300 CNAME nothing.example.com."],
        authority=[SOA],
    )
    step = run(msg, "dangling.example.com.", "A", "example.com.")
    assert step.kind == Kind.NXDOMAIN and step.name == "nothing.example.com."
    assert len(step.records) == 1 and step.soa is not None


def test_cname_loop_inside_one_reply_is_handed_back_as_a_cname() -> None:
    """The engine, not the classifier, spots the loop: the chain ends at a name seen before."""
    msg = message(
        "a.example.com.",
        "A",
        aa=True,
        answer=[
            "a.example.com. 300 CNAME b.example.com.",
            "b.example.com. 300 CNAME a.example.com.",
        ],
    )
    step = run(msg, "a.example.com.", "A", "example.com.")
    assert step.kind == Kind.CNAME
    assert step.name == "a.example.com." and len(step.records) == 2


def test_referral() -> None:
    msg = message(
        "www.example.com.",
        "A",
        authority=[
            "example.com. 3600 NS ns1.example.com.",
            "example.com. 3600 NS ns2.example.com.",
        ],
        additional=["ns1.example.com. 3600 A 127.3.1.1", "ns2.example.com. 3600 A 127.3.1.2"],
    )
    step = run(msg, "www.example.com.", "A", "com.")
    assert step.kind == Kind.REFERRAL
    assert step.referral is not None
    assert step.referral.zone == "example.com."
    assert step.referral.nameservers == ["ns1.example.com.", "ns2.example.com."]
    assert texts(step.referral.glue) == [
        "ns1.example.com. 3600 A 127.3.1.1",
        "ns2.example.com. 3600 A 127.3.1.2",
    ]
    assert not step.authoritative


def test_referral_from_the_root() -> None:
    msg = message("www.example.com.", "A", authority=["com. 3600 NS ns1.nic.com."],
                  additional=["ns1.nic.com. 3600 A 127.2.1.1"])  # fmt: skip
    step = run(msg, "www.example.com.", "A", ".")
    assert step.kind == Kind.REFERRAL and step.referral is not None
    assert step.referral.zone == "com." and len(step.referral.glue) == 1


def test_glue_outside_the_asked_zone_and_for_other_names_is_dropped() -> None:
    msg = message(
        "www.example.com.",
        "A",
        authority=["example.com. 3600 NS ns1.example.com.", "example.com. 3600 NS ns.example.net."],
        additional=[
            "ns1.example.com. 3600 A 127.3.1.1",
            "ns1.example.com. 3600 AAAA 2001:db8::53",
            "ns.example.net. 3600 A 127.6.6.6",  # net: com's servers cannot vouch for it
            "www.example.com. 3600 A 127.6.6.7",  # not a name server of the referral
            'ns1.example.com. 3600 TXT "not an address"',
        ],
    )
    step = run(msg, "www.example.com.", "A", "com.")
    assert step.kind == Kind.REFERRAL and step.referral is not None
    assert texts(step.referral.glue) == [
        "ns1.example.com. 3600 A 127.3.1.1",
        "ns1.example.com. 3600 AAAA 2001:db8::53",
    ]
    assert step.referral.nameservers == ["ns1.example.com.", "ns.example.net."]


def test_referral_keeps_only_the_first_child_ns_rrset() -> None:
    msg = message(
        "www.example.com.",
        "A",
        authority=["example.com. 3600 NS ns1.example.com.", "com. 3600 NS ns.evil.net."],
    )
    step = run(msg, "www.example.com.", "A", "com.")
    assert step.referral is not None
    assert [rr.name for rr in step.referral.ns_records] == ["example.com."]


def test_nxdomain_with_soa() -> None:
    msg = message("nx.example.com.", "A", rcode=dns.rcode.NXDOMAIN, aa=True, authority=[SOA])
    step = run(msg, "nx.example.com.", "A", "example.com.")
    assert step.kind == Kind.NXDOMAIN
    assert step.soa is not None and step.soa.to_text() == SOA
    assert step.records == []


def test_nxdomain_without_soa() -> None:
    msg = message("nx.example.com.", "A", rcode=dns.rcode.NXDOMAIN, aa=True)
    step = run(msg, "nx.example.com.", "A", "example.com.")
    assert step.kind == Kind.NXDOMAIN and step.soa is None


def test_nodata_with_soa() -> None:
    msg = message("www.example.com.", "MX", aa=True, authority=[SOA])
    step = run(msg, "www.example.com.", "MX", "example.com.")
    assert step.kind == Kind.NODATA and step.soa is not None


def test_nodata_without_proof_from_an_authoritative_server() -> None:
    msg = message("www.example.com.", "MX", aa=True)
    step = run(msg, "www.example.com.", "MX", "example.com.")
    assert step.kind == Kind.NODATA and step.soa is None and step.authoritative


def test_nodata_soa_of_a_parent_zone_when_asked_at_the_parent() -> None:
    """An SOA above the name is fine; one for another branch is not a proof."""
    msg = message("www.example.com.", "MX", aa=True,
                  authority=["com. 300 SOA a.gtld. nstld. 1 1800 900 604800 60"])  # fmt: skip
    step = run(msg, "www.example.com.", "MX", "com.")
    assert step.kind == Kind.NODATA and step.soa is not None
    msg = message("www.example.com.", "MX", aa=True,
                  authority=["other.com. 300 SOA a.gtld. nstld. 1 1800 900 604800 60"])  # fmt: skip
    step = run(msg, "www.example.com.", "MX", "com.")
    assert step.soa is None


# ---------------------------------------------------------------------- lame


@pytest.mark.parametrize(
    ("rcode", "reason"),
    [
        (dns.rcode.REFUSED, "REFUSED"),
        (dns.rcode.SERVFAIL, "SERVFAIL"),
        (dns.rcode.FORMERR, "FORMERR"),
        (dns.rcode.NOTIMP, "NOTIMP"),
    ],
)
def test_error_rcodes_are_lame(rcode: int, reason: str) -> None:
    msg = message("www.example.com.", "A", rcode=rcode, answer=[WWW])
    step = run(msg, "www.example.com.", "A", "example.com.")
    assert step.kind == Kind.LAME and step.reason == reason
    assert step.records == []


@pytest.mark.parametrize(
    ("child", "why"),
    [
        ("example.com.", "does not get closer"),  # the zone we asked
        ("com.", "does not contain the name"),  # upward
        (".", "does not contain the name"),  # upward to the root
        ("other.com.", "does not contain the name"),  # a sibling
        ("le.com.", "does not contain the name"),  # a string suffix, not a parent
    ],
)
def test_referral_that_does_not_get_closer_is_lame(child: str, why: str) -> None:
    ns = "a.root-servers.net." if child == "." else f"ns1.{child}"
    msg = message("www.example.com.", "A", authority=[f"{child} 3600 NS {ns}"])
    step = run(msg, "www.example.com.", "A", "example.com.")
    assert step.kind == Kind.LAME and why in step.reason


def test_non_authoritative_empty_reply_is_lame() -> None:
    msg = message("www.example.com.", "A")
    step = run(msg, "www.example.com.", "A", "example.com.")
    assert step.kind == Kind.LAME
    assert "no answer" in step.reason


# ---------------------------------------------------------------------- bailiwick


def test_le_com_is_not_a_parent_of_example_com() -> None:
    """A server asked as ``le.com.`` cannot speak for ``example.com.``."""
    msg = message("www.example.com.", "A", aa=True, answer=[WWW])
    assert run(msg, "www.example.com.", "A", "le.com.").kind == Kind.LAME
    msg = message(
        "www.example.com.",
        "A",
        rcode=dns.rcode.NXDOMAIN,
        aa=True,
        authority=["le.com. 300 SOA ns.le.com. h.le.com. 1 1800 900 604800 60"],
    )
    step = run(msg, "www.example.com.", "A", "le.com.")
    assert step.kind == Kind.LAME and "outside" in step.reason
    assert step.soa is None  # no SOA of le.com proves anything about example.com
    msg = message("www.example.com.", "A", authority=["example.com. 3600 NS ns1.le.com."])
    assert run(msg, "www.example.com.", "A", "le.com.").kind == Kind.LAME


def test_answer_records_outside_the_zone_are_scrubbed() -> None:
    msg = message(
        "www.poison.com.",
        "A",
        aa=True,
        answer=["www.poison.com. 300 A 203.0.113.40", "www.example.com. 300 A 203.0.113.66"],
        authority=["example.com. 300 NS ns1.poison.com."],
        additional=["www.example.com. 300 A 203.0.113.66"],
    )
    step = run(msg, "www.poison.com.", "A", "poison.com.")
    assert step.kind == Kind.ANSWER
    assert texts(step.records) == ["www.poison.com. 300 A 203.0.113.40"]
    assert step.referral is None


def test_out_of_zone_cname_target_data_is_not_taken_from_the_reply() -> None:
    """The chain stops at the zone's edge: the target's data is asked of its own servers."""
    msg = message(
        "www.chain.com.",
        "A",
        aa=True,
        answer=["www.chain.com. 300 CNAME a.chain.net.", "a.chain.net. 300 A 203.0.113.66"],
    )
    step = run(msg, "www.chain.com.", "A", "chain.com.")
    assert step.kind == Kind.CNAME and step.name == "a.chain.net."
    assert texts(step.records) == ["www.chain.com. 300 CNAME a.chain.net."]


def test_root_zone_servers_may_answer_for_anything() -> None:
    msg = message(".", "NS", aa=True, answer=[". 3600 NS a.root-servers.net."])
    step = run(msg, ".", "NS", ".")
    assert step.kind == Kind.ANSWER and len(step.records) == 1


# ---------------------------------------------------------------------- issue 10's cases


def test_recursion_lame_is_lame_with_what_it_would_have_meant() -> None:
    """AA=0 and RA=1 with data: a recursive server, not an authority (Unbound's rule)."""
    msg = message("www.example.com.", "A", ra=True, answer=[WWW])
    step = run(msg, "www.example.com.", "A", "example.com.")
    assert step.kind == Kind.LAME and "recursion lame" in step.reason
    assert step.fallback is not None and step.fallback.kind == Kind.ANSWER


def test_a_referral_with_ra_set_is_still_a_referral() -> None:
    msg = message("www.example.com.", "A", ra=True,
                  authority=["example.com. 300 NS ns1.example.com."])  # fmt: skip
    assert run(msg, "www.example.com.", "A", "com.").kind == Kind.REFERRAL


def test_aa_empty_answer_with_only_the_zone_ns_is_nodata() -> None:
    msg = message("www.example.com.", "AAAA", aa=True,
                  authority=["example.com. 300 NS ns1.example.com."])  # fmt: skip
    step = run(msg, "www.example.com.", "AAAA", "example.com.")
    assert step.kind == Kind.NODATA and step.soa is None


def test_only_another_type_at_the_name_is_nodata() -> None:
    msg = message("www.example.com.", "AAAA", answer=["www.example.com. 0 A 192.0.2.2"])
    step = run(msg, "www.example.com.", "AAAA", "example.com.")
    assert step.kind == Kind.NODATA and step.records == []


def test_an_ns_answer_carries_the_in_zone_addresses_of_its_servers() -> None:
    msg = message(".", "NS", aa=True, answer=[". 518400 NS a.root-servers.net."],
                  additional=["a.root-servers.net. 518400 A 127.1.0.1"])  # fmt: skip
    step = run(msg, ".", "NS", ".")
    assert step.kind == Kind.ANSWER and texts(step.glue or []) == [
        "a.root-servers.net. 518400 A 127.1.0.1"
    ]


# ---------------------------------------------------------------------- per-zone bailiwick
# (MaginotDNS: forward and stub zones are bailiwicks of their own)


def test_names_of_a_zone_sent_elsewhere_are_scrubbed_from_the_server_above_it() -> None:
    msg = message("www.example.com.", "A", aa=True,
                  answer=["www.example.com. 300 CNAME www.corp.example.com.",
                          "www.corp.example.com. 300 A 203.0.113.66"])  # fmt: skip
    whole = run(msg, "www.example.com.", "A", "example.com.")
    assert whole.kind == Kind.ANSWER  # the server's zone holds corp.example.com.
    fenced = classify(msg, "www.example.com.", RRType.A, "example.com.",
                      ("corp.example.com.",))  # fmt: skip
    assert fenced.kind == Kind.CNAME and fenced.name == "www.corp.example.com."
    assert texts(fenced.records) == ["www.example.com. 300 CNAME www.corp.example.com."]


def test_a_forwarder_speaks_for_its_zone_only() -> None:
    msg = parse_message(reply("a.corp.example.", "A", ra=True, rcode=dns.rcode.NXDOMAIN,
                              answer=["a.corp.example. 300 CNAME b.example.org."],
                              authority=["example.org. 300 SOA ns.example.org. h.example.org. "
                                         "1 2 3 4 300"]).to_wire())  # fmt: skip
    step = classify_forwarded(msg, "a.corp.example.", RRType.A, "corp.example.")
    assert step.kind == Kind.CNAME and step.name == "b.example.org."  # not its NXDOMAIN
    assert step.soa is None
    everything = classify_forwarded(msg, "a.corp.example.", RRType.A)  # a forward zone "."
    assert everything.kind == Kind.NXDOMAIN and everything.soa is not None


# ---------------------------------------------------------------------- NRDelegation


def test_a_referral_to_1500_name_servers_keeps_twenty_and_their_glue_only() -> None:
    """CVE-2022-2795 (BIND's NS_PROCESSING_LIMIT, Unbound's iter-scrub-ns): the first 20
    NS records of a huge delegation, and the glue of those alone."""
    servers = [f"ns{j}.big.example.com." for j in range(1500)]
    msg = message("www.big.example.com.", "A",
                  authority=[f"big.example.com. 300 NS {ns}" for ns in servers],
                  additional=[f"{ns} 300 A 127.66.{j // 250}.{j % 250 + 1}"
                              for j, ns in enumerate(servers)])  # fmt: skip
    step = run(msg, "www.big.example.com.", "A", "example.com.")
    assert step.kind == Kind.REFERRAL and step.referral is not None
    assert step.referral.nameservers == servers[:MAX_NS_PER_RRSET]
    assert sorted(rr.name for rr in step.referral.glue) == sorted(servers[:MAX_NS_PER_RRSET])


def test_an_ns_answer_of_1500_records_keeps_twenty() -> None:
    records = [f"big.example.com. 300 NS ns{j}.example.net." for j in range(1500)]
    msg = message("big.example.com.", "NS", aa=True, answer=records)
    step = run(msg, "big.example.com.", "NS", "big.example.com.")
    assert step.kind == Kind.ANSWER and len(step.records) == MAX_NS_PER_RRSET


# ---------------------------------------------------------------------- DNAME questions


def test_a_dname_question_below_a_dname_is_redirected_and_keeps_the_dname() -> None:
    """``www.dn.example.com. DNAME`` below ``dn.example.com. DNAME x.example.com.``: the
    DNAME redirects every name below its owner whatever the type (RFC 6672 section 2) and
    belongs in the answer with the CNAME made from it (section 3.1); the chain then ends
    in a NODATA for ``www.x.example.com. DNAME``."""
    dname = "dn.example.com. 300 DNAME x.example.com."
    cname = "www.dn.example.com. 300 CNAME www.x.example.com."
    msg = message("www.dn.example.com.", "DNAME", aa=True, answer=[dname, cname],
                  authority=[SOA])  # fmt: skip
    step = run(msg, "www.dn.example.com.", "DNAME", "example.com.")
    assert step.kind == Kind.NODATA
    assert texts(step.records) == [dname, cname]
    assert step.name == "www.x.example.com."
    owner = run(message("dn.example.com.", "DNAME", aa=True, answer=[dname]),
                "dn.example.com.", "DNAME", "example.com.")  # fmt: skip
    assert owner.kind == Kind.ANSWER and texts(owner.records) == [dname]  # the owner's own
