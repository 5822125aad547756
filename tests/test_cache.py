"""The record cache (resolver.cache): LRU bound, TTLs, trust ranking, negative answers."""

from __future__ import annotations

import pytest

from resolver.cache.records import BOGUS_TTL, NXDOMAIN_TYPE, RecordCache, Security, Trust
from resolver.wire import CLASS_IN, ResourceRecord, RRType
from resolver.wire.rdata import AAAA, CNAME, SOA, A
from tests.fakes import FakeClock


def a(name: str, address: str, ttl: int = 300) -> ResourceRecord:
    return ResourceRecord(name, RRType.A, CLASS_IN, ttl, A(address))


def soa(zone: str = "example.com.", ttl: int = 300, minimum: int = 60) -> ResourceRecord:
    rdata = SOA(f"ns1.{zone}", f"hostmaster.{zone}", 1, 1800, 900, 604800, minimum)
    return ResourceRecord(zone, RRType.SOA, CLASS_IN, ttl, rdata)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> RecordCache:
    return RecordCache(clock=clock)


def addresses(cache: RecordCache, name: str) -> list[str] | None:
    rrset = cache.get_rrset(name, RRType.A)
    return None if rrset is None else [r.to_text() for r in rrset.rdatas]


# ---------------------------------------------------------------------- positive data


def test_store_and_get(cache: RecordCache) -> None:
    records = [a("www.example.com.", "192.0.2.1"), a("www.example.com.", "192.0.2.2")]
    assert cache.store_rrset(records, Trust.ANSWER)
    assert addresses(cache, "www.example.com.") == ["192.0.2.1", "192.0.2.2"]
    assert cache.get_rrset("www.example.com.", RRType.AAAA) is None
    assert len(cache) == 1


def test_duplicate_records_are_stored_once(cache: RecordCache) -> None:
    cache.store_rrset([a("x.example.", "192.0.2.1"), a("x.example.", "192.0.2.1")], Trust.ANSWER)
    assert addresses(cache, "x.example.") == ["192.0.2.1"]


def test_rrset_ttl_is_the_smallest_and_counts_down(cache: RecordCache, clock: FakeClock) -> None:
    records = [a("x.example.", "192.0.2.1", 300), a("x.example.", "192.0.2.2", 100)]
    cache.store_rrset(records, Trust.ANSWER)
    clock.advance(40)
    rrset = cache.get_rrset("x.example.", RRType.A)
    assert rrset is not None
    assert [rr.ttl for rr in rrset.records(clock())] == [60, 60]


def test_expired_entry_is_never_served(cache: RecordCache, clock: FakeClock) -> None:
    cache.store_rrset([a("x.example.", "192.0.2.1", 10)], Trust.ANSWER)
    clock.advance(9.5)
    assert cache.get_rrset("x.example.", RRType.A) is not None
    clock.advance(0.5)  # exactly at expiry: gone
    assert cache.get_rrset("x.example.", RRType.A) is None
    assert len(cache) == 0  # and removed


def test_ttl_zero_is_not_stored(cache: RecordCache) -> None:
    assert not cache.store_rrset([a("x.example.", "192.0.2.1", 0)], Trust.AUTHORITATIVE)
    assert not cache.store_rrset(
        [a("y.example.", "192.0.2.1", 300), a("y.example.", "192.0.2.2", 0)], Trust.ANSWER
    )
    assert len(cache) == 0


def test_ttl_zero_is_not_stored_even_with_a_min_ttl(clock: FakeClock) -> None:
    cache = RecordCache(min_ttl=60, clock=clock)
    assert not cache.store_rrset([a("x.example.", "192.0.2.1", 0)], Trust.ANSWER)


def test_min_and_max_ttl_clamp(clock: FakeClock) -> None:
    cache = RecordCache(min_ttl=30, max_ttl=3600, clock=clock)
    cache.store_rrset([a("short.example.", "192.0.2.1", 5)], Trust.ANSWER)
    cache.store_rrset([a("long.example.", "192.0.2.2", 604800)], Trust.ANSWER)
    short = cache.get_rrset("short.example.", RRType.A)
    long = cache.get_rrset("long.example.", RRType.A)
    assert short is not None and long is not None
    assert short.records(clock())[0].ttl == 30
    assert long.records(clock())[0].ttl == 3600
    clock.advance(3600)
    assert cache.get_rrset("long.example.", RRType.A) is None


def test_class_other_than_in_is_not_stored(cache: RecordCache) -> None:
    rr = ResourceRecord("x.example.", RRType.A, 3, 300, A("192.0.2.1"))  # CH
    assert not cache.store_rrset([rr], Trust.ANSWER)


def test_keys_are_case_insensitive_and_case_is_kept(cache: RecordCache, clock: FakeClock) -> None:
    cache.store_rrset([a("WWW.Example.COM.", "192.0.2.1")], Trust.ANSWER)
    rrset = cache.get_rrset("www.example.com.", RRType.A)
    assert rrset is not None and rrset.name == "WWW.Example.COM."
    assert rrset.records(clock())[0].name == "WWW.Example.COM."
    assert cache.get_rrset("www.EXAMPLE.com.", RRType.A) == rrset
    cache.store_rrset([a("www.example.com.", "192.0.2.2")], Trust.ANSWER)  # same key
    assert len(cache) == 1
    assert addresses(cache, "WWW.EXAMPLE.COM.") == ["192.0.2.2"]


def test_types_are_separate_entries(cache: RecordCache) -> None:
    cache.store_rrset([a("x.example.", "192.0.2.1")], Trust.ANSWER)
    six = ResourceRecord("x.example.", RRType.AAAA, CLASS_IN, 300, AAAA("2001:db8::1"))
    cache.store_rrset([six], Trust.ANSWER)
    assert len(cache) == 2


# ---------------------------------------------------------------------- trust


def test_lower_trust_does_not_replace_higher(cache: RecordCache) -> None:
    assert cache.store_rrset([a("ns1.example.com.", "127.3.1.1")], Trust.AUTHORITATIVE)
    assert not cache.store_rrset([a("ns1.example.com.", "127.6.6.6")], Trust.GLUE)
    assert not cache.store_rrset([a("ns1.example.com.", "127.6.6.6")], Trust.ANSWER)
    rrset = cache.get_rrset("ns1.example.com.", RRType.A)
    assert rrset is not None and rrset.trust == Trust.AUTHORITATIVE
    assert addresses(cache, "ns1.example.com.") == ["127.3.1.1"]


def test_higher_or_equal_trust_replaces(cache: RecordCache) -> None:
    assert cache.store_rrset([a("ns1.example.com.", "127.3.1.1")], Trust.GLUE)
    assert cache.store_rrset([a("ns1.example.com.", "127.3.1.2")], Trust.GLUE)
    assert addresses(cache, "ns1.example.com.") == ["127.3.1.2"]
    assert cache.store_rrset([a("ns1.example.com.", "127.3.1.3")], Trust.AUTHORITATIVE)
    rrset = cache.get_rrset("ns1.example.com.", RRType.A)
    assert rrset is not None and rrset.trust == Trust.AUTHORITATIVE
    assert addresses(cache, "ns1.example.com.") == ["127.3.1.3"]


def test_lower_trust_replaces_an_expired_entry(cache: RecordCache, clock: FakeClock) -> None:
    cache.store_rrset([a("ns1.example.com.", "127.3.1.1", 10)], Trust.AUTHORITATIVE)
    clock.advance(10)
    assert cache.store_rrset([a("ns1.example.com.", "127.3.1.9")], Trust.GLUE)
    assert addresses(cache, "ns1.example.com.") == ["127.3.1.9"]


def test_trust_order_follows_rfc_2181() -> None:
    assert Trust.GLUE < Trust.REFERRAL < Trust.ANSWER < Trust.AUTHORITY < Trust.AUTHORITATIVE


# ---------------------------------------------------------------------- LRU bound


def test_lru_eviction_at_the_bound(clock: FakeClock) -> None:
    cache = RecordCache(max_entries=3, clock=clock)
    for i in range(3):
        cache.store_rrset([a(f"n{i}.example.", f"192.0.2.{i}")], Trust.ANSWER)
    assert cache.get_rrset("n0.example.", RRType.A) is not None  # n0 is now the most recent
    cache.store_rrset([a("n3.example.", "192.0.2.3")], Trust.ANSWER)  # evicts n1
    assert len(cache) == 3 and cache.evictions == 1
    assert cache.get_rrset("n1.example.", RRType.A) is None
    for name in ("n0.example.", "n2.example.", "n3.example."):
        assert cache.get_rrset(name, RRType.A) is not None, name


def test_replacing_an_entry_does_not_evict(clock: FakeClock) -> None:
    cache = RecordCache(max_entries=2, clock=clock)
    cache.store_rrset([a("n0.example.", "192.0.2.0")], Trust.ANSWER)
    cache.store_rrset([a("n1.example.", "192.0.2.1")], Trust.ANSWER)
    cache.store_rrset([a("n0.example.", "192.0.2.9")], Trust.ANSWER)
    assert len(cache) == 2 and cache.evictions == 0


def test_negative_entries_count_towards_the_bound(clock: FakeClock) -> None:
    cache = RecordCache(max_entries=2, clock=clock)
    cache.store_rrset([a("n0.example.", "192.0.2.0")], Trust.ANSWER)
    cache.store_negative("nx1.example.com.", NXDOMAIN_TYPE, soa())
    cache.store_negative("nx2.example.com.", NXDOMAIN_TYPE, soa())
    assert len(cache) == 2
    assert cache.get_rrset("n0.example.", RRType.A) is None


def test_a_cache_needs_room() -> None:
    with pytest.raises(ValueError):
        RecordCache(max_entries=0)


def test_hits_and_misses_are_counted(cache: RecordCache) -> None:
    cache.store_rrset([a("x.example.", "192.0.2.1")], Trust.ANSWER)
    cache.get_rrset("x.example.", RRType.A)
    cache.get_rrset("y.example.", RRType.A)
    assert (cache.hits, cache.misses) == (1, 1)


# ---------------------------------------------------------------------- negative data


@pytest.mark.parametrize(
    ("soa_ttl", "minimum", "cap", "expected"),
    [
        (300, 60, 3600, 60),  # SOA MINIMUM
        (30, 600, 3600, 30),  # the SOA record's own TTL
        (7200, 7200, 3600, 3600),  # max_negative_ttl
    ],
)
def test_negative_ttl(
    clock: FakeClock, soa_ttl: int, minimum: int, cap: int, expected: int
) -> None:
    cache = RecordCache(max_negative_ttl=cap, clock=clock)
    assert cache.store_negative("nx.example.com.", NXDOMAIN_TYPE, soa(ttl=soa_ttl, minimum=minimum))
    entry = cache.get_negative("nx.example.com.", RRType.A)
    assert entry is not None
    assert [rr.ttl for rr in entry.soa_record(clock())] == [expected]
    clock.advance(expected - 1)
    assert cache.get_negative("nx.example.com.", RRType.A) is not None
    clock.advance(1)
    assert cache.get_negative("nx.example.com.", RRType.A) is None


def test_nxdomain_covers_every_type(cache: RecordCache) -> None:
    cache.store_negative("nx.example.com.", NXDOMAIN_TYPE, soa())
    for rrtype in (RRType.A, RRType.AAAA, RRType.MX, RRType.TXT, RRType.CNAME, 999):
        entry = cache.get_negative("NX.example.com.", rrtype)
        assert entry is not None and entry.nxdomain, rrtype
    assert cache.get_negative("other.example.com.", RRType.A) is None


def test_nodata_covers_one_type(cache: RecordCache) -> None:
    cache.store_negative("www.example.com.", RRType.MX, soa())
    entry = cache.get_negative("www.example.com.", RRType.MX)
    assert entry is not None and not entry.nxdomain
    assert cache.get_negative("www.example.com.", RRType.TXT) is None


def test_negative_soa_ttl_counts_down(cache: RecordCache, clock: FakeClock) -> None:
    cache.store_negative("nx.example.com.", NXDOMAIN_TYPE, soa(ttl=300, minimum=100))
    clock.advance(30)
    entry = cache.get_negative("nx.example.com.", RRType.A)
    assert entry is not None
    (record,) = entry.soa_record(clock())
    assert record.ttl == 70 and record.name == "example.com." and record.rrtype == RRType.SOA


def test_negative_without_soa_or_with_zero_ttl_is_not_stored(cache: RecordCache) -> None:
    assert not cache.store_negative("nx.example.com.", NXDOMAIN_TYPE, None)
    assert not cache.store_negative("nx.example.com.", NXDOMAIN_TYPE, soa(minimum=0))
    assert not cache.store_negative("nx.example.com.", NXDOMAIN_TYPE, soa(ttl=0))
    not_soa = a("example.com.", "192.0.2.1")
    assert not cache.store_negative("nx.example.com.", NXDOMAIN_TYPE, not_soa)
    assert len(cache) == 0


@pytest.mark.parametrize("ttl", [0, 1])
def test_bogus_data_is_kept_at_least_a_second(
    cache: RecordCache, clock: FakeClock, ttl: int
) -> None:
    """RFC 9520 section 3.2: a failure is cached at least 1 s, so bogus data with TTL 0
    is not fetched (and judged) again for every query; data that validated, at TTL 0, is
    not kept at all (RFC 1035 section 3.2.1)."""
    bogus = [a("bogus.example.com.", "192.0.2.1", ttl=ttl)]
    assert cache.store_rrset(bogus, Trust.ANSWER, security=Security.BOGUS)
    assert not cache.store_rrset([a("good.example.com.", "192.0.2.2", ttl=0)], Trust.ANSWER,
                                 security=Security.SECURE)  # fmt: skip
    assert cache.store_negative("nx.example.com.", NXDOMAIN_TYPE, soa(ttl=ttl, minimum=ttl),
                                Security.BOGUS)  # fmt: skip
    kept = cache.get_rrset("bogus.example.com.", RRType.A)
    assert kept is not None and kept.security == Security.BOGUS
    negative = cache.get_negative("nx.example.com.", RRType.A)
    assert negative is not None and negative.security == Security.BOGUS
    clock.advance(1)
    assert cache.get_rrset("bogus.example.com.", RRType.A) is None
    assert cache.get_negative("nx.example.com.", RRType.A) is None


def test_bogus_data_is_kept_no_longer_than_bogus_ttl(cache: RecordCache, clock: FakeClock) -> None:
    assert cache.store_rrset([a("bogus.example.com.", "192.0.2.1", ttl=86400)], Trust.ANSWER,
                             security=Security.BOGUS)  # fmt: skip
    clock.advance(BOGUS_TTL - 0.5)
    assert cache.get_rrset("bogus.example.com.", RRType.A) is not None
    clock.advance(0.5)
    assert cache.get_rrset("bogus.example.com.", RRType.A) is None


def test_positive_and_negative_entries_do_not_mix(cache: RecordCache) -> None:
    cache.store_negative("x.example.com.", RRType.A, soa())
    assert cache.get_rrset("x.example.com.", RRType.A) is None
    cname = ResourceRecord("x.example.com.", RRType.CNAME, CLASS_IN, 300, CNAME("y.example."))
    cache.store_rrset([cname], Trust.ANSWER)
    assert cache.get_negative("x.example.com.", RRType.CNAME) is None
    assert cache.get_negative("x.example.com.", RRType.A) is not None


def test_clear(cache: RecordCache) -> None:
    cache.store_rrset([a("x.example.", "192.0.2.1")], Trust.ANSWER)
    cache.store_negative("nx.example.com.", NXDOMAIN_TYPE, soa())
    cache.clear()
    assert len(cache) == 0


# ---------------------------------------------------------------------- serve-stale


def test_expired_entries_stay_for_stale_lookups_within_the_window(clock: FakeClock) -> None:
    cache = RecordCache(clock=clock, stale_window=100)
    cache.store_rrset([a("www.example.com.", "192.0.2.1", ttl=10)], Trust.AUTHORITATIVE)
    cache.store_negative("gone.example.com.", NXDOMAIN_TYPE, soa(minimum=10))
    clock.advance(50)
    assert cache.get_rrset("www.example.com.", RRType.A) is None  # never for the walk
    stale = cache.get_rrset("www.example.com.", RRType.A, stale=True)
    assert stale is not None and stale.records(clock())[0].ttl == 0
    assert cache.get_negative("gone.example.com.", RRType.A) is None
    assert cache.get_negative("gone.example.com.", RRType.A, stale=True) is not None
    assert len(cache) == 2  # one entry each, as when they were live
    clock.advance(61)  # expired 101 s ago: beyond the window
    assert cache.get_rrset("www.example.com.", RRType.A) is None
    assert cache.get_rrset("www.example.com.", RRType.A, stale=True) is None
    assert len(cache) == 1  # dropped when found too old; the negative one when looked at


def test_fresh_data_replaces_stale_data_whatever_its_rank(clock: FakeClock) -> None:
    cache = RecordCache(clock=clock, stale_window=1000)
    cache.store_rrset([a("ns.example.com.", "192.0.2.1", ttl=10)], Trust.AUTHORITATIVE)
    clock.advance(20)
    assert cache.store_rrset([a("ns.example.com.", "192.0.2.2")], Trust.GLUE)
    assert addresses(cache, "ns.example.com.") == ["192.0.2.2"]


def test_stale_lookups_count_no_hits(clock: FakeClock) -> None:
    cache = RecordCache(clock=clock, stale_window=100)
    cache.store_rrset([a("www.example.com.", "192.0.2.1", ttl=10)], Trust.AUTHORITATIVE)
    clock.advance(20)
    cache.get_rrset("www.example.com.", RRType.A, stale=True)
    assert (cache.hits, cache.misses) == (0, 0)
