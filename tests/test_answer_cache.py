"""The wire-level answer cache of the listener's fast path (resolver/answer_cache.py).

Queries and responses are built with dnspython, so the cache is checked against an
independent encoder: what it sends back must parse and say what the stored answer said,
patched for the new query (ID, RD, CD, question case, TTLs counted down).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from resolver.cache.answers import AnswerCache
from resolver.lab.cases import answer_of
from resolver.wire import EDNS_PAYLOAD as UDP_MAX
from resolver.wire import UDP_PLAIN
from resolver.wire.raw import question_key
from tests.fakes import FakeClock


def query(
    name: str = "www.example.com.",
    rdtype: str = "A",
    *,
    qid: int = 0x1234,
    rd: bool = True,
    cd: bool = False,
    ad: bool = False,
    edns: int | bool = False,
    payload: int = 1232,
    options: list[dns.edns.Option] | None = None,
    want_dnssec: bool = False,
) -> bytes:
    message = dns.message.make_query(name, rdtype, use_edns=edns, payload=payload,
                                     options=options, want_dnssec=want_dnssec)  # fmt: skip
    message.id = qid
    message.flags = (
        (dns.flags.RD if rd else 0) | (dns.flags.CD if cd else 0) | (dns.flags.AD if ad else 0)
    )
    return message.to_wire()


def _rrset(line: str) -> dns.rrset.RRset:
    """``owner ttl type rdata`` (class IN) as an RRset."""
    owner, ttl, rdtype, rdata = line.split(maxsplit=3)
    return dns.rrset.from_text(owner, int(ttl), "IN", rdtype, rdata)


def response(
    packet: bytes,
    answer: Sequence[str] = (),
    authority: Sequence[str] = (),
    rcode: int = dns.rcode.NOERROR,
) -> bytes:
    """A resolver response to ``packet`` (QR, RA, no AA) with the given records as text."""
    q = dns.message.from_wire(packet)
    r = dns.message.make_response(q)
    r.flags = dns.flags.QR | dns.flags.RA | (q.flags & (dns.flags.RD | dns.flags.CD))
    r.set_rcode(rcode)
    r.answer = [_rrset(line) for line in answer]
    r.authority = [_rrset(line) for line in authority]
    if q.edns >= 0:
        r.use_edns(0, payload=UDP_MAX)
    return r.to_wire()


def stored(
    cache: AnswerCache,
    packet: bytes,
    answer: Sequence[str],
    authority: Sequence[str] = (),
    rcode: int = dns.rcode.NOERROR,
) -> dns.message.Message:
    """Store the response to ``packet`` in ``cache``, as the listener does; return it parsed."""
    key = question_key(packet)
    assert key is not None
    wire = response(packet, answer, authority, rcode)
    cache.store(key, wire)
    return dns.message.from_wire(wire)


def ask(cache: AnswerCache, packet: bytes) -> dns.message.Message | None:
    key = question_key(packet)
    assert key is not None
    wire = cache.answer(key, packet)
    return None if wire is None else dns.message.from_wire(wire)


def ttls(message: dns.message.Message) -> dict[str, int]:
    sections = message.answer + message.authority
    return {f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}": rrset.ttl for rrset in sections}


WWW_A = ["www.example.com. 300 A 192.0.2.1"]


# -- question_key ------------------------------------------------------------------------


def test_plain_query_key_and_udp_size() -> None:
    key = question_key(query())
    assert key is not None
    assert key.udp_size == UDP_PLAIN
    assert key.end == len(query())
    assert key.key.endswith(b"\x00")  # no EDNS, no DO, no AD


def test_do_ad_and_cd_make_keys_of_their_own() -> None:
    keys = [question_key(query(edns=0)), question_key(query(edns=0, want_dnssec=True)),
            question_key(query(ad=True)), question_key(query(cd=True))]  # fmt: skip
    assert all(key is not None for key in keys)
    assert len({key.key for key in keys if key is not None}) == 4


@pytest.mark.parametrize(("payload", "size"), [(4096, UDP_MAX), (1232, 1232), (1000, 1000),
                                                (100, UDP_PLAIN)])  # fmt: skip
def test_edns_query_key_takes_the_clients_size_within_bounds(payload: int, size: int) -> None:
    key = question_key(query(edns=0, payload=payload))
    assert key is not None
    assert key.udp_size == size
    assert key.key.endswith(b"\x01")  # EDNS, no DO, no AD
    assert key.end == len(query())  # the question ends where it does without EDNS


def test_key_folds_the_name_case_only() -> None:
    lower, mixed = question_key(query("www.example.com.")), question_key(query("WwW.ExAmple.COM."))
    assert lower is not None and mixed is not None
    assert lower.key == mixed.key
    a, aaaa = question_key(query(rdtype="A")), question_key(query(rdtype="AAAA"))
    assert a is not None and aaaa is not None and a.key != aaaa.key
    plain, edns = question_key(query()), question_key(query(edns=0))
    assert plain is not None and edns is not None and plain.key != edns.key


def test_key_does_not_fold_qtype_bytes_that_look_like_letters() -> None:
    """Type 65 (HTTPS, byte 0x41 'A') and type 97 (0x61 'a') are different questions."""
    https, other = question_key(query(rdtype="TYPE65")), question_key(query(rdtype="TYPE97"))
    assert https is not None and other is not None
    assert https.key != other.key
    cache = AnswerCache(clock=FakeClock())
    stored(cache, query(rdtype="TYPE65"), ["www.example.com. 300 TYPE65 \\# 3 000100"])
    assert ask(cache, query(rdtype="TYPE97")) is None


def test_key_accepts_opt_with_a_cookie_option() -> None:
    cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"\x01" * 8)
    key = question_key(query(edns=0, options=[cookie]))
    plain = question_key(query(edns=0))
    assert key is not None and plain is not None
    assert key.key == plain.key  # options are ignored, as the normal path ignores them


def _header(flags: int, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", 0x4242, flags, qd, an, ns, ar)


QUESTION = b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"


@pytest.mark.parametrize(
    "packet",
    [
        pytest.param(_header(0x0100) + b"\x03www\xc0\x0c\x00\x01\x00\x01", id="pointer"),
        pytest.param(_header(0x0100) + b"\x03www\x40abc\x00\x00\x01\x00\x01", id="label-type"),
        pytest.param(_header(0x8180) + QUESTION, id="qr"),
        pytest.param(_header(0x0300) + QUESTION, id="tc"),
        pytest.param(_header(0x2100) + QUESTION, id="opcode-notify"),
        pytest.param(_header(0x0100, qd=2) + QUESTION + QUESTION, id="two-questions"),
        pytest.param(_header(0x0100, qd=0), id="no-question"),
        pytest.param(_header(0x0100, an=1) + QUESTION, id="answer-count"),
        pytest.param(_header(0x0100) + QUESTION[:-2], id="cut-short"),
        pytest.param(_header(0x0100) + QUESTION + b"\x00", id="trailing-byte"),
        pytest.param(_header(0x0100) + b"\x03www", id="name-cut-short"),
        pytest.param(query(edns=1), id="edns-version-1"),
        pytest.param(
            _header(0x0100, ar=1) + QUESTION + b"\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00\x00",
            id="additional-not-opt",
        ),
        pytest.param(
            _header(0x0100, ar=1) + QUESTION + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x04",
            id="opt-rdlength-past-end",
        ),
    ],
)
def test_key_sends_anything_unusual_to_the_normal_path(packet: bytes) -> None:
    assert question_key(packet) is None


def test_key_rejects_a_pointer_even_in_an_otherwise_plain_query() -> None:
    plain = _header(0x0100) + QUESTION
    assert question_key(plain) is not None
    assert question_key(plain.replace(b"\x03com\x00", b"\xc0\x0c")) is None


# -- AnswerCache -----------------------------------------------------------------------


def test_hit_returns_the_stored_answer() -> None:
    cache = AnswerCache(clock=FakeClock())
    original = stored(cache, query(), WWW_A)
    hit = ask(cache, query())
    assert hit is not None
    assert answer_of(hit) == answer_of(original)
    assert hit.rcode() == dns.rcode.NOERROR
    assert len(cache) == 1


def test_miss_for_another_question() -> None:
    cache = AnswerCache(clock=FakeClock())
    stored(cache, query(), WWW_A)
    assert ask(cache, query("mail.example.com.")) is None
    assert ask(cache, query(rdtype="AAAA")) is None
    assert ask(cache, query(edns=0)) is None  # EDNS answers carry an OPT: another entry


def test_ttls_count_down_with_the_clock() -> None:
    clock = FakeClock()
    cache = AnswerCache(clock=clock)
    stored(
        cache,
        query(),
        ["www.example.com. 300 CNAME web.example.com.", "web.example.com. 60 A 192.0.2.1"],
    )
    clock.now += 10.7  # whole seconds only
    hit = ask(cache, query())
    assert hit is not None
    assert ttls(hit) == {"www.example.com. CNAME": 290,
                         "web.example.com. A": 50}  # fmt: skip
    clock.now += 0.5
    hit = ask(cache, query())
    assert hit is not None
    assert sorted(ttls(hit).values()) == [49, 289]


def test_ttls_count_down_exactly_over_many_hits() -> None:
    """A hit a second or more after the last rewrite counts the TTLs down in the stored
    entry; the TTL a client sees is still the original less the whole seconds elapsed."""
    clock = FakeClock()
    cache = AnswerCache(clock=clock)
    stored(cache, query(), ["www.example.com. 300 A 192.0.2.1"])
    start = clock.now
    for step in (0.3, 0.9, 0.05, 1.7, 0.6, 2.25, 0.99, 0.01, 3.4):
        clock.now += step
        hit = ask(cache, query())
        assert hit is not None
        assert ttls(hit) == {"www.example.com. A": 300 - int(clock.now - start)}
    clock.now = start + 299.999
    assert ask(cache, query()) is not None
    clock.now = start + 300
    assert ask(cache, query()) is None


def test_negative_answer_soa_ttl_counts_down() -> None:
    clock = FakeClock()
    cache = AnswerCache(clock=clock)
    soa = "example.com. 60 SOA ns1.example.com. hostmaster.example.com. 1 1800 900 604800 60"
    packet = query("nope.example.com.")
    stored(cache, packet, [], authority=[soa], rcode=dns.rcode.NXDOMAIN)
    clock.now += 20
    hit = ask(cache, packet)
    assert hit is not None
    assert hit.rcode() == dns.rcode.NXDOMAIN
    assert hit.answer == []
    assert [rrset.ttl for rrset in hit.authority] == [40]


def test_opt_record_is_not_counted_down() -> None:
    """The OPT "TTL" is extended RCODE, version and flags: it must come back untouched."""
    clock = FakeClock()
    cache = AnswerCache(clock=clock)
    packet = query(edns=0)
    stored(cache, packet, WWW_A)
    clock.now += 100
    hit = ask(cache, packet)
    assert hit is not None
    assert hit.edns == 0
    assert hit.payload == UDP_MAX
    assert hit.ednsflags == 0
    assert hit.rcode() == dns.rcode.NOERROR
    assert ttls(hit) == {"www.example.com. A": 200}


def test_entry_expires_with_its_smallest_ttl() -> None:
    clock = FakeClock()
    cache = AnswerCache(clock=clock)
    stored(cache, query(), ["www.example.com. 300 CNAME web.example.com.",
                            "web.example.com. 5 A 192.0.2.1"])  # fmt: skip
    clock.now += 4.9
    hit = ask(cache, query())
    assert hit is not None
    assert min(ttls(hit).values()) == 1  # never 0 from the cache
    clock.now += 0.1
    assert ask(cache, query()) is None
    assert len(cache) == 0  # dropped, not just skipped


def test_id_rd_and_question_case_come_from_the_new_query() -> None:
    clock = FakeClock()
    cache = AnswerCache(clock=clock)
    stored(cache, query("www.example.com.", qid=1, rd=True, cd=False), WWW_A)
    # CD=1 (the client validates itself) has a key of its own: its answer is not validated.
    cd_key = question_key(query("www.example.com.", qid=2, rd=True, cd=True))
    assert cd_key is not None and cache.answer(cd_key, query(qid=2, cd=True)) is None
    packet = query("WwW.ExAmple.COM.", qid=0xBEEF, rd=False, cd=False)
    key = question_key(packet)
    assert key is not None
    wire = cache.answer(key, packet)
    assert wire is not None
    hit = dns.message.from_wire(wire)
    assert hit.id == 0xBEEF
    assert hit.flags & dns.flags.QR
    assert hit.flags & dns.flags.RA
    assert not hit.flags & dns.flags.RD
    assert not hit.flags & dns.flags.CD
    assert not hit.flags & dns.flags.AA
    assert hit.question[0].name.to_text() == "WwW.ExAmple.COM."
    assert wire[12 : key.end] == packet[12 : key.end]  # the question byte for byte
    assert answer_of(hit) == {("www.example.com.", "A", "192.0.2.1")}
    # And back: RD set.
    hit = ask(cache, query(qid=7, rd=True, cd=False))
    assert hit is not None
    assert hit.id == 7
    assert hit.flags & dns.flags.RD


def test_answer_too_large_for_the_client_falls_back() -> None:
    cache = AnswerCache(clock=FakeClock())
    many = [f"big.example.com. 300 A 192.0.2.{i}" for i in range(1, 41)]  # > 512 bytes
    stored(cache, query("big.example.com.", edns=0), many)
    stored(cache, query("big.example.com."), many)
    assert ask(cache, query("big.example.com.")) is None  # plain DNS: 512 bytes at most
    assert ask(cache, query("big.example.com.", edns=0, payload=512)) is None
    hit = ask(cache, query("big.example.com.", edns=0, payload=1232))
    assert hit is not None
    assert len(answer_of(hit)) == 40
    assert len(cache) == 2  # too large is not a reason to drop the entry
    tcp = question_key(query("big.example.com."))
    assert tcp is not None
    tcp.udp_size = 65535  # as the listener does for TCP
    assert cache.answer(tcp, query("big.example.com.")) is not None


def test_lru_bound() -> None:
    clock = FakeClock()
    cache = AnswerCache(max_entries=2, clock=clock)
    names = ["a.example.com.", "b.example.com.", "c.example.com."]
    stored(cache, query(names[0]), [f"{names[0]} 300 A 192.0.2.1"])
    stored(cache, query(names[1]), [f"{names[1]} 300 A 192.0.2.2"])
    assert ask(cache, query(names[0])) is not None  # a is now the most recently used
    stored(cache, query(names[2]), [f"{names[2]} 300 A 192.0.2.3"])
    assert len(cache) == 2
    assert ask(cache, query(names[1])) is None  # b was the least recently used
    assert ask(cache, query(names[0])) is not None
    assert ask(cache, query(names[2])) is not None


def test_storing_again_replaces_the_entry() -> None:
    clock = FakeClock()
    cache = AnswerCache(clock=clock)
    stored(cache, query(), WWW_A)
    clock.now += 100
    stored(cache, query(), ["www.example.com. 300 A 192.0.2.9"])
    hit = ask(cache, query())
    assert hit is not None
    assert answer_of(hit) == {("www.example.com.", "A", "192.0.2.9")}
    assert ttls(hit) == {"www.example.com. A": 300}
    assert len(cache) == 1


def test_ttl_zero_is_never_stored() -> None:
    cache = AnswerCache(clock=FakeClock())
    stored(cache, query("ttl0.example.com."), ["ttl0.example.com. 0 A 192.0.2.10"])
    stored(cache, query("mixed.example.com."), ["mixed.example.com. 300 CNAME ttl0.example.com.",
                                                "ttl0.example.com. 0 A 192.0.2.10"])  # fmt: skip
    assert len(cache) == 0
    assert ask(cache, query("ttl0.example.com.")) is None


def test_answer_without_records_is_not_stored() -> None:
    """NODATA without an SOA has no TTL to live by."""
    cache = AnswerCache(clock=FakeClock())
    stored(cache, query(rdtype="MX"), [])
    assert len(cache) == 0


def test_clear() -> None:
    cache = AnswerCache(clock=FakeClock())
    stored(cache, query(), WWW_A)
    cache.clear()
    assert len(cache) == 0
    assert ask(cache, query()) is None


def test_a_response_without_records_is_kept_for_the_lifetime_given() -> None:
    """A SERVFAIL (RFC 2308 section 7.1) has no TTL of its own: the listener gives one."""
    clock = FakeClock()
    cache = AnswerCache(clock=clock)
    packet = query("broken.example.")
    key = question_key(packet)
    assert key is not None
    cache.store(key, response(packet, rcode=dns.rcode.SERVFAIL))  # no lifetime: not kept
    assert cache.answer(key, packet) is None
    cache.store(key, response(packet, rcode=dns.rcode.SERVFAIL), lifetime=5)
    clock.now += 4.9
    hit = cache.answer(key, query("broken.example.", qid=7))
    assert hit is not None and dns.message.from_wire(hit).rcode() == dns.rcode.SERVFAIL
    assert dns.message.from_wire(hit).id == 7
    clock.now += 0.2
    assert cache.answer(key, packet) is None


# -- counters and the operator's commands ------------------------------------------------


def test_hits_misses_and_evictions_are_counted() -> None:
    clock = FakeClock()
    cache = AnswerCache(max_entries=1, clock=clock)
    assert ask(cache, query()) is None  # nothing stored: a miss
    stored(cache, query(), ["www.example.com. 10 A 192.0.2.1"])
    assert ask(cache, query()) is not None
    clock.now += 11
    assert ask(cache, query()) is None  # expired: a miss
    stored(cache, query("a.example.com."), ["a.example.com. 300 A 192.0.2.1"])
    stored(cache, query("b.example.com."), ["b.example.com. 300 A 192.0.2.2"])
    assert (cache.hits, cache.misses, cache.evictions) == (1, 2, 1)


def _store_with_names(cache: AnswerCache, packet: bytes, answer: list[str]) -> None:
    """As the listener stores a CNAME chain: with the other owners named."""
    key = question_key(packet)
    assert key is not None
    asked = dns.message.from_wire(packet).question[0].name.to_text().lower()
    owners = {line.split()[0].lower() for line in answer} - {asked}
    cache.store(key, response(packet, answer), names=owners)


def test_flush_name_drops_every_type_and_chains_through_it() -> None:
    cache = AnswerCache(clock=FakeClock())
    stored(cache, query("www.example.com.", "A"), WWW_A)
    stored(cache, query("WWW.example.com.", "AAAA", edns=0), ["www.example.com. 300 AAAA ::1"])
    _store_with_names(cache, query("alias.example.net."),
                      ["alias.example.net. 300 CNAME www.example.com.", *WWW_A])  # fmt: skip
    stored(cache, query("mail.example.com."), ["mail.example.com. 300 A 192.0.2.25"])
    stored(cache, query("sub.www.example.com."), ["sub.www.example.com. 300 A 192.0.2.26"])
    assert cache.flush_name("WWW.Example.com") == 3  # A, AAAA (EDNS), the alias's chain
    assert ask(cache, query("www.example.com.")) is None
    assert ask(cache, query("alias.example.net.")) is None
    assert ask(cache, query("mail.example.com.")) is not None
    assert ask(cache, query("sub.www.example.com.")) is not None  # below it: not the name
    assert cache.flush_name("nothing.example.") == 0


def test_flush_zone_is_label_by_label() -> None:
    cache = AnswerCache(clock=FakeClock())
    for name in ("example.com.", "www.example.com.", "a.b.example.com.", "myexample.com.",
                 "www.example.org."):  # fmt: skip
        stored(cache, query(name), [f"{name} 300 A 192.0.2.1"])
    # A label that holds the zone's wire bytes (\x07example\x03com\x00) is not below it.
    tricky = "a\\007example.com."
    stored(cache, query(tricky), [f"{tricky} 300 A 192.0.2.2"])
    _store_with_names(cache, query("alias.example.org."),
                      ["alias.example.org. 300 CNAME x.example.com.",
                       "x.example.com. 300 A 192.0.2.3"])  # fmt: skip
    assert cache.flush_zone("example.com.") == 4
    left = {name for name in ("myexample.com.", "www.example.org.", tricky)
            if ask(cache, query(name)) is not None}  # fmt: skip
    assert left == {"myexample.com.", "www.example.org.", tricky}
    assert ask(cache, query("alias.example.org.")) is None
    assert cache.flush_zone(".") == 3
    assert len(cache) == 0


def test_flush_negative_drops_nxdomain_nodata_and_servfail() -> None:
    cache = AnswerCache(clock=FakeClock())
    soa = "example.com. 60 SOA ns1.example.com. hostmaster.example.com. 1 1800 900 604800 60"
    stored(cache, query("nx.example.com."), [], authority=[soa], rcode=dns.rcode.NXDOMAIN)
    stored(cache, query("www.example.com.", "MX"), [], authority=[soa])
    failing = query("broken.example.")
    key = question_key(failing)
    assert key is not None
    cache.store(key, response(failing, rcode=dns.rcode.SERVFAIL), lifetime=5)
    stored(cache, query(), WWW_A)
    assert [(name, qtype) for name, qtype, _left in cache.failures()] == [("broken.example.", 1)]
    assert cache.flush_negative() == 3
    assert len(cache) == 1 and ask(cache, query()) is not None
    assert list(cache.failures()) == []


def test_resize_evicts_the_least_recently_used() -> None:
    cache = AnswerCache(max_entries=10, clock=FakeClock())
    names = [f"n{i}.example.com." for i in range(5)]
    for name in names:
        stored(cache, query(name), [f"{name} 300 A 192.0.2.1"])
    assert ask(cache, query(names[0])) is not None  # n0 is now the most recently used
    assert cache.resize(2) == 3
    assert {n for n in names if ask(cache, query(n)) is not None} == {names[0], names[4]}
    assert cache.evictions == 3
    assert cache.resize(100) == 0 and len(cache) == 2


# -- prefetch ------------------------------------------------------------------------------


def test_a_hit_in_the_last_tenth_of_the_lifetime_is_reported() -> None:
    clock = FakeClock()
    cache = AnswerCache(clock=clock)
    reports: list[tuple[bytes, float]] = []
    cache.expiring = lambda key, left: reports.append((key.key, left))
    packet = query()
    stored(cache, packet, WWW_A)
    clock.advance(269)  # 31 s left of 300: not yet
    assert ask(cache, packet) is not None and reports == []
    clock.advance(2)  # 29 s left
    assert ask(cache, packet) is not None
    key = question_key(packet)
    assert key is not None and reports == [(key.key, 29.0)]


def test_a_servfail_kept_for_a_while_is_not_reported() -> None:
    clock = FakeClock()
    cache = AnswerCache(clock=clock)
    reports: list[float] = []
    cache.expiring = lambda _key, left: reports.append(left)
    packet = query()
    key = question_key(packet)
    assert key is not None
    cache.store(key, response(packet, rcode=dns.rcode.SERVFAIL), lifetime=5)
    clock.advance(4.9)
    assert ask(cache, packet) is not None and reports == []


def test_forget_drops_the_answers_of_a_question_for_every_clients_flags() -> None:
    cache = AnswerCache()
    plain, with_do, other = query(), query(edns=True, want_dnssec=True), query("x.example.")
    for packet in (plain, with_do):
        stored(cache, packet, WWW_A)
    stored(cache, other, ["x.example. 300 A 192.0.2.2"])
    key = question_key(plain)
    assert key is not None
    cache.forget(key.key[:-1])
    assert ask(cache, plain) is None and ask(cache, with_do) is None
    assert ask(cache, other) is not None


# -- holding a record cache's RRset (resolver/cache/held.py drives these) ------------------


def _holding(max_entries: int = 100) -> tuple[AnswerCache, FakeClock, list[int], bytes]:
    """An answer cache whose answer to query() holds an RRset of tag 7; the tags it reports
    unheld are collected."""
    clock = FakeClock()
    cache = AnswerCache(max_entries, clock=clock)
    told: list[int] = []
    cache.unheld = told.append
    stored(cache, query(), WWW_A)
    key = question_key(query())
    assert key is not None
    assert cache.hold(key.key, 5, 7, within=300)
    return cache, clock, told, key.key


def test_a_held_answer_keeps_its_rank_and_is_found_by_its_question() -> None:
    cache, clock, told, key = _holding()
    assert cache.held(key) == (5, 300.0)
    assert cache.holder(key[:-1]) == key and cache.holders() == [key]
    clock.advance(10.5)
    assert ask(cache, query()) is not None  # TTLs counted down in the entry: still held
    assert cache.held(key) == (5, 289.5)
    records = cache.held_records(key)
    assert records is not None and [rr.to_text() for rr in records] == [
        "www.example.com. 290 A 192.0.2.1"
    ]
    assert told == []


def test_hold_refuses_what_cannot_hold() -> None:
    cache, _clock, told, key = _holding()
    assert not cache.hold(key, 5, 7, within=300)  # holds already
    stored(cache, query("x.example."), ["x.example. 300 A 192.0.2.2"])
    other = question_key(query("x.example."))
    assert other is not None
    assert not cache.hold(other.key, 5, 8, within=200)  # would outlive the RRset
    assert not cache.hold(other.key[:-1] + b"\x00\x00", 5, 8, within=300)  # no such answer
    stored(cache, query("x.example.", cd=True), ["x.example. 300 A 192.0.2.2"])
    checking_disabled = question_key(query("x.example.", cd=True))
    assert checking_disabled is not None
    assert not cache.hold(checking_disabled.key, 5, 8, within=300)  # CD=1: not validated
    assert cache.hold(other.key, 5, 8, within=299.5)  # within the second: the same TTL
    assert told == []


@pytest.mark.parametrize("how", ["unhold", "forget", "evict", "expire", "flush", "clear"])
def test_every_way_an_answer_stops_holding_is_told(how: str) -> None:
    cache, clock, told, key = _holding(max_entries=1)
    if how == "unhold":
        cache.unhold(key)
        assert ask(cache, query()) is not None  # it stays for clients
    elif how == "forget":
        cache.forget(key[:-1])
    elif how == "evict":
        stored(cache, query("x.example."), ["x.example. 300 A 192.0.2.2"])
    elif how == "expire":
        clock.advance(300)
        assert ask(cache, query()) is None
    elif how == "flush":
        assert cache.flush_zone("example.com.") == 1
    else:
        cache.clear()
    assert told == [7] and cache.holder(key[:-1]) is None


def test_an_expired_held_answer_is_kept_for_the_stale_window_then_replaced() -> None:
    cache, clock, told, key = _holding()
    cache.stale_window = 100
    clock.advance(350)
    assert ask(cache, query()) is None and cache.held(key) == (5, -50.0)
    stored(cache, query(), ["www.example.com. 300 A 192.0.2.9"])  # fresh data replaces it
    assert told == [7] and cache.held(key) is None
    hit = ask(cache, query())
    assert hit is not None and "192.0.2.9" in hit.to_text()


def test_a_live_held_answer_is_not_replaced() -> None:
    cache, _clock, told, key = _holding()
    stored(cache, query(), ["www.example.com. 300 A 192.0.2.9"])
    hit = ask(cache, query())
    assert hit is not None and "192.0.2.1" in hit.to_text() and cache.held(key) is not None
    assert told == []
