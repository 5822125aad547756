"""RRsets the answer cache holds for the record cache (resolver/cache/held.py): one copy of
a name asked once, rebuilt from the wire answer when the engine asks for it."""

from __future__ import annotations

import asyncio

import dns.flags
import dns.message
import pytest

from resolver.cache.answers import AnswerCache
from resolver.cache.records import RecordCache, Security, Trust
from resolver.iterate.stale import StalePolicy
from resolver.ops.dump import dump_lines
from resolver.serve.listener import ResolverService
from resolver.serve.responses import make_response
from resolver.wire import CLASS_IN, Rcode, ResourceRecord, RRType, parse_message, write_message
from resolver.wire.dnssec_rdata import RRSIG
from resolver.wire.raw import question_key
from resolver.wire.rdata import SOA, A
from tests.fakes import EXAMPLE, EXAMPLE2, FakeClock, make_engine
from tests.test_engine import example_world

WWW = "www.example.com."


def a(name: str = WWW, address: str = "192.0.2.1", ttl: int = 300) -> ResourceRecord:
    return ResourceRecord(name, RRType.A, CLASS_IN, ttl, A(address))


def rrsig(name: str = WWW, ttl: int = 300, covered: int = RRType.A) -> ResourceRecord:
    rdata = RRSIG(covered, 13, 3, ttl, 2_000_000_000, 1_000_000_000, 12345, "example.com.",
                  b"\x01" * 64)  # fmt: skip
    return ResourceRecord(name, RRType.RRSIG, CLASS_IN, ttl, rdata)


def soa(zone: str = "example.com.") -> ResourceRecord:
    rdata = SOA(f"ns1.{zone}", f"hostmaster.{zone}", 1, 1800, 900, 604800, 60)
    return ResourceRecord(zone, RRType.SOA, CLASS_IN, 300, rdata)


class Caches:
    """A record cache and the answer cache holding RRsets for it, on one clock."""

    def __init__(self, max_answers: int = 1000, stale_window: float = 0.0) -> None:
        self.clock = FakeClock()
        self.records = RecordCache(clock=self.clock, stale_window=stale_window)
        self.answers = AnswerCache(max_answers, clock=self.clock)
        self.records.attach(self.answers)

    @staticmethod
    def packet(name: str = WWW, rdtype: str = "A", **flags: bool) -> bytes:
        query = dns.message.make_query(
            name, rdtype, use_edns=flags.get("edns", flags.get("do", False)),
            want_dnssec=flags.get("do", False),
        )  # fmt: skip
        query.flags = dns.flags.RD | (dns.flags.CD if flags.get("cd") else 0)
        return query.to_wire()

    def answer(self, answer: list[ResourceRecord], name: str = WWW, **flags: bool) -> bytes:
        """Store the listener's response to a query for (name, A) with these records, then
        release as the listener does; the answer cache's key."""
        packet = self.packet(name, **flags)
        key = question_key(packet)
        assert key is not None
        query = parse_message(packet)
        wire = write_message(make_response(query, Rcode.NOERROR, answer))
        kept = self.answers.store(key, wire)
        self.released = kept and self.records.release(name, RRType.A, key.key, answer)
        return key.key

    def ask(self, name: str = WWW, **flags: bool) -> dns.message.Message | None:
        """A client's query answered by the fast path (None: not answered there)."""
        packet = self.packet(name, **flags)
        key = question_key(packet)
        assert key is not None
        wire = self.answers.answer(key, packet)
        return None if wire is None else dns.message.from_wire(wire)

    def addresses(self, name: str = WWW, stale: bool = False) -> list[str] | None:
        rrset = self.records.get_rrset(name, RRType.A, stale=stale)
        return None if rrset is None else [r.to_text() for r in rrset.rdatas]


@pytest.fixture
def caches() -> Caches:
    return Caches()


def held(caches: Caches, key: bytes) -> bool:
    return caches.answers.held(key) is not None


# ---------------------------------------------------------------------- release and rebuild


def test_a_released_rrset_is_kept_once_and_rebuilt_with_its_ttl_counted_down(
    caches: Caches,
) -> None:
    caches.records.store_rrset([a(), a(address="192.0.2.2")], Trust.AUTHORITATIVE)
    key = caches.answer([a(), a(address="192.0.2.2")])
    assert caches.released and len(caches.records) == 0 and held(caches, key)
    caches.clock.advance(100.5)
    rrset = caches.records.get_rrset("WWW.Example.COM.", RRType.A)
    assert rrset is not None
    assert [rr.to_text() for rr in rrset.records(caches.clock())] == [
        f"{WWW} 199 A 192.0.2.1",
        f"{WWW} 199 A 192.0.2.2",
    ]  # fmt: skip
    assert (rrset.trust, rrset.security, rrset.sigs) == (Trust.AUTHORITATIVE, 0, None)
    assert (caches.records.hits, caches.records.misses) == (1, 0)
    # The engine wanted it beyond the client's answer: the record cache keeps it again
    # (the next lookups parse nothing), and the answer, still there for clients, lets go.
    assert len(caches.records) == 1 and not held(caches, key)
    assert caches.ask() is not None
    again = caches.records.get_rrset(WWW, RRType.A)
    assert again is not None and again.expires == rrset.expires


def test_the_rebuilt_rrset_expires_with_the_answer(caches: Caches) -> None:
    caches.records.store_rrset([a(ttl=60)], Trust.ANSWER)
    caches.answer([a(ttl=60)])
    caches.clock.advance(60)
    assert caches.addresses() is None
    assert caches.records.misses == 1 and caches.records.hits == 0


def test_a_signed_rrset_is_held_by_a_do_answer_with_its_signatures_and_state(
    caches: Caches,
) -> None:
    caches.records.store_rrset([a()], Trust.AUTHORITATIVE, Security.SECURE, [rrsig()])
    plain = caches.answer([a()])  # a client without DO: no RRSIG in its answer
    assert not caches.released and not held(caches, plain)
    signed = caches.answer([a(), rrsig()], do=True)
    assert caches.released and held(caches, signed)
    rrset = caches.records.get_rrset(WWW, RRType.A)
    assert rrset is not None
    assert (rrset.trust, rrset.security) == (Trust.AUTHORITATIVE, Security.SECURE)
    assert rrset.sigs == (rrsig().rdata,)


def _entry(caches: Caches, case: str) -> list[ResourceRecord]:
    """Store the record cache's entry for a case of test_what_is_not_released; the answer
    the client gets."""
    store = caches.records.store_rrset
    if case == "other data":
        store([a()], Trust.AUTHORITATIVE)
        return [a(address="192.0.2.9")]
    if case == "another record too":
        store([a()], Trust.AUTHORITATIVE)
        return [a(), a("mail.example.com.")]
    if case == "glue":
        store([a()], Trust.GLUE)
    elif case == "bogus":
        store([a()], Trust.AUTHORITATIVE, Security.BOGUS)
    elif case == "wildcard proof":
        store([a()], Trust.AUTHORITATIVE, proof=[soa()])
    elif case == "owner case kept":
        store([a("Www.Example.Com.")], Trust.AUTHORITATIVE)
    elif case == "answer outlives it":
        store([a(ttl=100)], Trust.AUTHORITATIVE)
    elif case == "nothing cached":
        pass
    else:
        store([a()], Trust.AUTHORITATIVE)  # "cd": CD=1 answers never hold
    return [a()]


@pytest.mark.parametrize(
    "case",
    ["other data", "another record too", "glue", "bogus", "wildcard proof", "owner case kept",
     "answer outlives it", "nothing cached", "cd"],
)  # fmt: skip
def test_what_is_not_released(caches: Caches, case: str) -> None:
    answer = _entry(caches, case)
    key = caches.answer(answer, cd=case == "cd")
    assert not caches.released and not held(caches, key)
    assert len(caches.records) == (0 if case == "nothing cached" else 1)


# ---------------------------------------------------------------------- rank (RFC 2181 5.4.1)


def test_lower_ranked_data_never_replaces_a_held_rrset(caches: Caches) -> None:
    caches.records.store_rrset([a()], Trust.AUTHORITATIVE)
    key = caches.answer([a()])
    assert not caches.records.store_rrset([a(address="192.0.2.66")], Trust.ANSWER)
    assert held(caches, key) and caches.addresses() == ["192.0.2.1"]


def test_data_of_equal_rank_replaces_it_and_the_old_copy_never_comes_back() -> None:
    caches = Caches()
    caches.records.resize(1)
    caches.records.store_rrset([a()], Trust.AUTHORITATIVE)
    key = caches.answer([a()])
    assert caches.records.store_rrset([a(address="192.0.2.7")], Trust.AUTHORITATIVE)
    assert not held(caches, key)  # the answer stays for clients, but is no copy of ours
    assert caches.ask() is not None
    assert caches.addresses() == ["192.0.2.7"]
    caches.records.store_rrset([a("other.example.com.")], Trust.ANSWER)  # evicts it
    assert caches.addresses() is None  # a miss, not the older data


def test_lower_ranked_data_replaces_an_expired_held_rrset() -> None:
    caches = Caches(stale_window=3600)
    caches.records.store_rrset([a(ttl=60)], Trust.AUTHORITATIVE)
    key = caches.answer([a(ttl=60)])
    caches.clock.advance(61)
    assert caches.records.store_rrset([a(address="192.0.2.8")], Trust.ANSWER)
    assert not held(caches, key) and caches.addresses() == ["192.0.2.8"]
    assert caches.addresses(stale=True) == ["192.0.2.8"]


def test_a_nodata_answer_supersedes_a_held_rrset(caches: Caches) -> None:
    caches.records.store_rrset([a()], Trust.AUTHORITATIVE)
    key = caches.answer([a()])
    assert caches.records.store_negative(WWW, RRType.A, soa())
    assert not held(caches, key) and caches.addresses() is None
    assert caches.records.flush_negative() == 1
    assert caches.addresses() is None  # the older RRset does not come back


# ---------------------------------------------------------------------- stale, eviction


def test_an_expired_held_rrset_is_kept_for_stale_lookups_only() -> None:
    caches = Caches()
    caches.records.stale_window = 1000  # as the engine sets it, after the caches are linked
    caches.records.store_rrset([a(ttl=60)], Trust.AUTHORITATIVE)
    key = caches.answer([a(ttl=60)])
    caches.clock.advance(70)
    assert caches.ask() is None  # never to clients
    assert caches.addresses() is None
    rrset = caches.records.get_rrset(WWW, RRType.A, stale=True)
    assert rrset is not None and rrset.expires < caches.clock()
    assert rrset.trust == Trust.AUTHORITATIVE and held(caches, key)  # still only there
    caches.clock.advance(1000)
    assert caches.addresses(stale=True) is None
    assert caches.ask() is None and len(caches.answers) == 0  # dropped when found


def test_without_serve_stale_an_expired_holder_goes_at_once(caches: Caches) -> None:
    caches.records.store_rrset([a(ttl=60)], Trust.AUTHORITATIVE)
    caches.answer([a(ttl=60)])
    caches.clock.advance(60)
    assert caches.ask() is None and len(caches.answers) == 0
    assert caches.addresses(stale=True) is None


def test_an_evicted_holding_answer_is_a_miss_and_ranks_nothing() -> None:
    caches = Caches(max_answers=1)
    caches.records.store_rrset([a()], Trust.AUTHORITATIVE)
    caches.answer([a()])
    caches.records.store_rrset([a("mail.example.com.")], Trust.AUTHORITATIVE)
    caches.answer([a("mail.example.com.")], name="mail.example.com.")  # evicts www's
    assert caches.addresses() is None and len(caches.records) == 0
    assert caches.records.store_rrset([a(address="192.0.2.5")], Trust.GLUE)
    assert caches.addresses() == ["192.0.2.5"]
    assert caches.addresses("mail.example.com.") == ["192.0.2.1"]


def test_an_answer_not_stored_holds_nothing(caches: Caches) -> None:
    """The listener releases only after a store: an older answer left in place by a
    response that was not kept (TTL 0) never becomes the holder of newer data."""
    caches.answer([a(address="192.0.2.66")])  # an older answer, holding nothing
    caches.records.store_rrset([a()], Trust.AUTHORITATIVE)
    key = caches.answer([a(ttl=0)])
    assert not caches.released and not held(caches, key) and len(caches.records) == 1


def test_a_live_holding_answer_is_not_replaced_by_another_response(caches: Caches) -> None:
    caches.records.store_rrset([a()], Trust.AUTHORITATIVE)
    caches.answer([a()])
    caches.answer([a(address="192.0.2.66")])  # say, an answer ranked below it
    message = caches.ask()
    assert message is not None and [str(r) for r in message.answer[0]] == ["192.0.2.1"]
    assert caches.addresses() == ["192.0.2.1"]


def test_a_refresh_then_forget_leaves_the_fresh_data(caches: Caches) -> None:
    """Prefetch: the refresh stores fresh data (the answer lets go), then the question's
    answers are forgotten."""
    caches.records.store_rrset([a()], Trust.AUTHORITATIVE)
    key = caches.answer([a()])
    caches.clock.advance(280)
    assert caches.records.store_rrset([a(address="192.0.2.7")], Trust.AUTHORITATIVE)
    caches.answers.forget(key[:-1])
    assert caches.ask() is None and caches.addresses() == ["192.0.2.7"]


def test_forgetting_a_holding_answer_forgets_the_rrset(caches: Caches) -> None:
    caches.records.store_rrset([a()], Trust.AUTHORITATIVE)
    key = caches.answer([a()])
    caches.answers.forget(key[:-1])
    assert caches.addresses() is None
    assert caches.records.store_rrset([a(address="192.0.2.3")], Trust.GLUE)  # nothing ranks


# ---------------------------------------------------------------------- the operator's commands


def test_flushes_reach_the_held_rrsets(caches: Caches) -> None:
    for name in (WWW, "mail.example.com.", "www.example.org."):
        caches.records.store_rrset([a(name)], Trust.AUTHORITATIVE)
        caches.answer([a(name)], name=name)
    assert len(caches.records) == 0
    assert caches.records.flush_name("WWW.example.com") == 1
    assert caches.addresses() is None
    assert caches.ask() is not None  # the answer itself is the answer cache's to flush
    assert caches.records.flush_zone("example.com.") == 1
    assert caches.addresses("mail.example.com.") is None
    caches.records.clear()
    assert caches.addresses("www.example.org.") is None


def test_dump_lists_the_held_rrsets_with_the_record_caches_own(caches: Caches) -> None:
    caches.records.store_rrset([a()], Trust.AUTHORITATIVE)
    caches.answer([a()])
    caches.records.store_rrset([a("mail.example.com.")], Trust.AUTHORITATIVE)
    caches.clock.advance(10)
    lines = asyncio.run(dump_lines(caches.records, caches.answers))
    assert lines[0].startswith("; 2 record sets, 0 negative answers")
    assert lines[1:] == [
        "mail.example.com. 290 IN A 192.0.2.1",
        f"{WWW} 290 IN A 192.0.2.1",
    ]  # fmt: skip
    assert len(caches.records) == 1  # the dump kept nothing again


# ---------------------------------------------------------------------- through the service


class Service:
    """The listener's service on the engine, walking canned replies (tests/fakes.py)."""

    def __init__(self, max_answers: int = 1000, stale: StalePolicy | None = None) -> None:
        self.clock = FakeClock()
        self.net = example_world(self.clock)
        self.engine, self.records, _ = make_engine(self.net, stale=stale)
        self.answers = AnswerCache(max_answers, clock=self.clock)
        self.service = ResolverService(self.engine, self.answers, query_log=False)

    def ask(self, name: str = WWW, **flags: bool) -> dns.message.Message:
        packet = Caches.packet(name, **flags)
        wire = asyncio.run(self.service.respond(packet, "127.0.0.1"))
        assert wire is not None
        return dns.message.from_wire(wire)

    def upstream(self, name: str = WWW) -> int:
        """Queries sent to example.com's servers for (name, A) so far."""
        servers = (EXAMPLE, EXAMPLE2)
        return sum(1 for address, qname, qtype in self.net.log
                   if address in servers and qname == name and qtype == RRType.A)  # fmt: skip


def answer_texts(message: dns.message.Message) -> list[str]:
    return [line for rrset in message.answer for line in rrset.to_text().splitlines()]


def test_the_service_keeps_an_answered_name_once() -> None:
    svc = Service()
    assert answer_texts(svc.ask()) == [f"{WWW} 300 IN A 192.0.2.1"]
    assert all(entry.name != WWW for entry in svc.records.dump())  # not in the records
    assert len(svc.records.dump_held()) == 1  # but held for them by the answer
    assert svc.records.get_rrset(WWW, RRType.A) is not None


def test_another_clients_flags_are_answered_from_the_held_rrset_without_a_walk() -> None:
    svc = Service()
    svc.ask()
    svc.clock.advance(10)
    message = svc.ask(edns=True)
    assert answer_texts(message) == [f"{WWW} 290 IN A 192.0.2.1"]
    assert svc.upstream() == 1  # rebuilt from the first client's answer
    assert all(entry.name != WWW for entry in svc.records.dump())  # and held again


def test_an_evicted_holding_answer_means_a_new_walk_not_wrong_data() -> None:
    svc = Service(max_answers=1)
    svc.ask()
    svc.net.answers(EXAMPLE, "mail.example.com.", "A", "mail.example.com. 300 A 192.0.2.25")
    svc.ask("mail.example.com.")  # evicts www's answer, and with it the only copy
    assert svc.records.get_rrset(WWW, RRType.A) is None
    svc.net.answers(EXAMPLE, WWW, "A", f"{WWW} 300 A 192.0.2.2")
    assert answer_texts(svc.ask()) == [f"{WWW} 300 IN A 192.0.2.2"]
    assert svc.upstream() == 2


def test_serve_stale_answers_from_a_held_rrset() -> None:
    svc = Service(stale=StalePolicy())
    svc.ask(edns=True)
    svc.clock.advance(400)  # the client's own question finds its answer expired first
    svc.net.dead |= {EXAMPLE, EXAMPLE2}
    message = svc.ask(edns=True)
    assert answer_texts(message) == [f"{WWW} 30 IN A 192.0.2.1"]  # RFC 8767 section 4
    assert [option.otype for option in message.options] == [15]  # EDE 3, Stale Answer
    assert svc.upstream() > 1  # the servers were tried first


def test_a_prefetch_refreshes_a_held_rrset() -> None:
    svc = Service()
    svc.service.prefetch.enable(True)
    svc.ask()
    svc.net.answers(EXAMPLE, WWW, "A", f"{WWW} 300 A 192.0.2.7")
    svc.net.answers(EXAMPLE2, WWW, "A", f"{WWW} 300 A 192.0.2.7")
    svc.clock.advance(280)  # the last tenth of 300 s: the hit asks for a refresh

    async def hit_then_wait() -> bytes | None:
        answer = await svc.service.respond(Caches.packet(), "127.0.0.1")
        while svc.service.prefetch.running:
            await asyncio.sleep(0)
        return answer

    stale_hit = asyncio.run(hit_then_wait())
    assert stale_hit is not None and "192.0.2.1" in dns.message.from_wire(stale_hit).to_text()
    assert svc.service.prefetch.refreshed == 1
    assert answer_texts(svc.ask()) == [f"{WWW} 300 IN A 192.0.2.7"]
    assert svc.upstream() == 2
