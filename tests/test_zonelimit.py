"""The per-zone upstream rate limit (resolver.iterate.zonelimit), Unbound's ``ratelimit``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolver.iterate.zonelimit import ZoneRateLimit


def test_queries_up_to_the_limit_are_sent_then_refused() -> None:
    limit = ZoneRateLimit(3, factor=0)
    assert [limit.allows("victim.example.", 100.1) for _ in range(5)] == [
        True, True, True, False, False]  # fmt: skip


def test_the_count_starts_again_each_second() -> None:
    limit = ZoneRateLimit(2, factor=0)
    assert [limit.allows("victim.", 7.0) for _ in range(3)] == [True, True, False]
    assert [limit.allows("victim.", 8.5) for _ in range(3)] == [True, True, False]


def test_one_in_factor_over_the_limit_is_let_through() -> None:
    limit = ZoneRateLimit(1, factor=10)
    allowed = [limit.allows("victim.", 0.0) for _ in range(31)]
    assert allowed[0] and sum(allowed) == 1 + 3  # the first, then the 10th, 20th, 30th over


def test_zones_are_counted_apart_and_without_case() -> None:
    limit = ZoneRateLimit(1, factor=0)
    assert limit.allows("Victim.Example.", 1.0)
    assert not limit.allows("victim.example.", 1.0)  # the same zone (RFC 4343)
    assert limit.allows("other.example.", 1.0)


def test_the_table_is_bounded() -> None:
    limit = ZoneRateLimit(1, factor=0, max_zones=100)
    for index in range(1000):
        limit.allows(f"z{index}.example.", 1.0)
    assert len(limit) <= 100


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        ZoneRateLimit(0)


@given(
    per_second=st.integers(1, 50),
    factor=st.integers(0, 20),
    asks=st.lists(st.floats(0, 5, allow_nan=False), max_size=300),
)
def test_never_more_than_the_limit_and_its_share_in_a_second(
    per_second: int, factor: int, asks: list[float]
) -> None:
    limit = ZoneRateLimit(per_second, factor=factor)
    sent: dict[int, int] = {}
    asked: dict[int, int] = {}
    for now in sorted(asks):
        asked[int(now)] = asked.get(int(now), 0) + 1
        if limit.allows("victim.", now):
            sent[int(now)] = sent.get(int(now), 0) + 1
    for second, count in sent.items():
        over = max(0, asked[second] - per_second)
        assert count == min(asked[second], per_second) + (over // factor if factor else 0)
