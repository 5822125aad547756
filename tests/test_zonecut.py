"""Zone cuts from the cache, referrals and hints (resolver.iterate.zonecut), and the cuts
the finder keeps a moment between lookups."""

from __future__ import annotations

from resolver.cache.records import RecordCache, Trust
from resolver.iterate.classify import Classified, Kind, Referral
from resolver.iterate.zonecut import CUT_REUSE, AddressPolicy, CutFinder, CutSource
from resolver.wire import CLASS_IN, ResourceRecord, RRType
from resolver.wire.rdata import NS, A
from tests.fakes import FakeClock, hints, prime

ZONE = "example."


def ns_set(zone: str, *targets: str, ttl: int = 3600) -> list[ResourceRecord]:
    return [ResourceRecord(zone, RRType.NS, CLASS_IN, ttl, NS(t)) for t in targets]


def a_set(name: str, *addresses: str, ttl: int = 3600) -> list[ResourceRecord]:
    return [ResourceRecord(name, RRType.A, CLASS_IN, ttl, A(a)) for a in addresses]


def world() -> tuple[CutFinder, RecordCache, FakeClock]:
    """A primed root and example. on ns1 (an address of its own) and ns2 (glue only)."""
    clock = FakeClock()
    cache = RecordCache(clock=clock)
    root_hints = hints()
    prime(cache, root_hints)
    cache.store_rrset(ns_set(ZONE, "ns1.example.", "ns2.example."), Trust.REFERRAL)
    cache.store_rrset(a_set("ns1.example.", "127.5.0.1"), Trust.AUTHORITATIVE)
    cache.store_glue(a_set("ns2.example.", "127.5.0.2"))
    return CutFinder(cache, root_hints, AddressPolicy(loopback=True)), cache, clock


def addresses(finder: CutFinder, name: str = "www.example.") -> list[tuple[str, str]]:
    return finder.closest(name).known()


def test_the_closest_cut_comes_from_the_cache_with_child_addresses_then_glue() -> None:
    finder, cache, _ = world()
    cut = finder.closest("www.example.")
    assert (cut.zone, cut.source) == (ZONE, CutSource.CACHE)
    assert cut.known() == [("127.5.0.1", "ns1.example."), ("127.5.0.2", "ns2.example.")]
    cache.store_glue(a_set("ns1.example.", "127.5.0.9"))  # the parent's word, kept apart
    finder.forget()
    assert addresses(finder)[:2] == [("127.5.0.1", "ns1.example."), ("127.5.0.9", "ns1.example.")]
    assert finder.closest("org.").zone == "."  # nothing cached for it: the root


def test_a_kept_cut_is_given_again_without_asking_the_cache() -> None:
    finder, cache, _ = world()
    first = finder.closest("www.example.")
    hits = cache.hits
    again = finder.closest("a.b.example.")
    assert again.known() == first.known() and again is not first
    # Only the NS lookups of the walk up (b.example. missed, example. hit): no addresses.
    assert cache.hits == hits + 1


def test_a_kept_cut_changed_by_its_lookup_stays_as_it_was() -> None:
    finder, _, _ = world()
    cut = finder.closest("www.example.")
    cut.add_addresses("ns2.example.", ["127.5.0.7"])  # a lookup found another address
    cut.add_addresses("ns3.example.", ["127.5.0.8"])
    assert addresses(finder) == [("127.5.0.1", "ns1.example."), ("127.5.0.2", "ns2.example.")]


def test_the_kept_cut_goes_when_the_ns_rrset_is_stored_again_or_gone() -> None:
    finder, cache, clock = world()
    addresses(finder)
    cache.store_rrset(ns_set(ZONE, "ns1.example."), Trust.AUTHORITATIVE)  # the child's own
    assert addresses(finder) == [("127.5.0.1", "ns1.example.")]
    cache.store_rrset(a_set("ns1.example.", "127.5.0.3"), Trust.AUTHORITATIVE)  # not told
    assert addresses(finder) == [("127.5.0.1", "ns1.example.")]  # the kept cut, a moment
    clock.advance(0.5)
    cache.store_rrset(ns_set(ZONE, "ns1.example."), Trust.AUTHORITATIVE)  # the same, again
    assert addresses(finder) == [("127.5.0.3", "ns1.example.")]  # built again
    cache.flush_zone(ZONE)  # the NS RRset is gone: the cut too, at once
    assert finder.closest("www.example.").zone == "."


def test_the_kept_cut_goes_when_a_server_address_is_learned() -> None:
    finder, cache, _ = world()
    cache.store_rrset(ns_set(ZONE, "ns1.example.", "ns.glueless.test."), Trust.REFERRAL)
    assert addresses(finder) == [("127.5.0.1", "ns1.example.")]
    found = a_set("ns.glueless.test.", "127.6.0.1")
    cache.store_rrset(found, Trust.AUTHORITATIVE)  # the answer of a sub-lookup
    finder.learned(Classified(Kind.ANSWER, found, "ns.glueless.test.", authoritative=True))
    assert addresses(finder) == [("127.5.0.1", "ns1.example."),
                                 ("127.6.0.1", "ns.glueless.test.")]  # fmt: skip
    glue = a_set("ns1.example.", "127.5.0.4")
    cache.store_glue(glue)  # a referral's glue for one of its servers
    referral = Referral(ZONE, ns_set(ZONE, "ns1.example."), glue)
    finder.learned(Classified(Kind.REFERRAL, [], "www.example.", referral=referral))
    assert ("127.5.0.4", "ns1.example.") in addresses(finder)
    cache.store_rrset(a_set("ns1.example.", "127.5.0.5"), Trust.AUTHORITATIVE)
    finder.learned_records(a_set("ns1.example.", "127.5.0.5"))
    assert ("127.5.0.5", "ns1.example.") in addresses(finder)


def test_the_kept_cut_lives_a_moment_and_no_longer_than_its_records() -> None:
    finder, cache, clock = world()
    addresses(finder)
    cache.store_rrset(a_set("ns1.example.", "127.5.0.3"), Trust.AUTHORITATIVE)  # not told
    assert addresses(finder)[0] == ("127.5.0.1", "ns1.example.")  # kept a moment
    clock.advance(CUT_REUSE)
    assert addresses(finder)[0] == ("127.5.0.3", "ns1.example.")
    cache.store_glue(a_set("ns2.example.", "127.5.0.2", ttl=int(CUT_REUSE * 10) + 5))
    finder.forget()
    addresses(finder)
    for _ in range(10):
        clock.advance(CUT_REUSE)
        addresses(finder)
    clock.advance(5)  # the glue of ns2 expired: its address with it
    assert addresses(finder) == [("127.5.0.3", "ns1.example.")]


def test_a_cut_without_usable_servers_is_passed_over_and_not_kept() -> None:
    finder, cache, _ = world()
    cache.store_rrset(ns_set("inner.example.", "ns.inner.example."), Trust.REFERRAL)
    assert finder.closest("www.inner.example.").zone == ZONE  # its only server: no address
    cache.store_glue(a_set("ns.inner.example.", "127.5.1.1"))
    assert finder.closest("www.inner.example.").known() == [("127.5.1.1", "ns.inner.example.")]
    assert finder.closest("www.example.", passed_over={ZONE}).zone == "."
