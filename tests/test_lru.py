"""The segmented LRU every bounded table uses (resolver/cache/lru.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolver.cache.lru import LruDict


def test_a_new_key_is_evicted_before_one_that_was_hit() -> None:
    table: LruDict[str, int] = LruDict(10)
    table.put("popular", 1)
    assert table.get("popular") == 1  # a hit: now protected
    for n in range(1000):  # a flood of keys used once
        table.put(f"once{n}", n)
    assert table.peek("popular") == 1
    assert len(table) == 10
    assert table.evictions == 991


def test_a_plain_lru_order_holds_among_keys_used_once() -> None:
    table: LruDict[str, int] = LruDict(3)
    for key in "abc":
        table.put(key, 0)
    table.put("d", 0)
    assert "a" not in table
    assert list(table) == ["b", "c", "d"]


def test_protected_keys_overflow_back_to_probation_not_out() -> None:
    table: LruDict[int, int] = LruDict(10)  # at most 8 protected
    for n in range(9):
        table.put(n, n)
        table.get(n)
    # 0 was the least recently used protected key: it went back to probation,
    # where it is the most recently used, so the next eviction takes another.
    assert 0 in table
    assert next(iter(table)) == 0
    table.put(100, 100)
    table.put(101, 101)
    assert 0 not in table  # no hit since its demotion: it goes first after all
    assert all(n in table for n in range(1, 9))


def test_peek_counts_no_hit_and_hit_stores_a_new_value() -> None:
    table: LruDict[str, int] = LruDict(2)
    table.put("a", 1)
    assert table.peek("a") == 1
    table.put("b", 2)
    table.put("c", 3)
    assert "a" not in table  # peeking did not protect it
    table.hit("b", 20)
    table.put("d", 4)
    table.put("e", 5)
    assert table.peek("b") == 20


def test_replacing_a_protected_value_keeps_it_protected() -> None:
    table: LruDict[str, int] = LruDict(5)
    table.put("a", 1)
    table.get("a")
    table.put("a", 2)
    for n in range(20):
        table.put(str(n), n)
    assert table.peek("a") == 2


def test_evictions_are_reported_but_pops_and_clears_are_not() -> None:
    evicted: list[tuple[str, int]] = []
    table: LruDict[str, int] = LruDict(2, lambda key, value: evicted.append((key, value)))
    table.put("a", 1)
    table.put("b", 2)
    table.pop("b")
    table.put("c", 3)
    table.put("d", 4)
    table.clear()
    assert evicted == [("a", 1)]  # the value too: the answer cache reads what it held


def test_replace_keeps_the_use_order_and_counts_no_hit() -> None:
    table: LruDict[str, int] = LruDict(3)
    for key in "abc":
        table.put(key, 0)
    table.replace("a", 1)
    table.replace("z", 9)  # absent: nothing
    assert list(table) == ["a", "b", "c"] and table.peek("a") == 1 and "z" not in table
    table.put("d", 0)  # "a" is still the least recently used
    assert "a" not in table and table.evictions == 1


def test_resize_evicts_down_to_the_new_bound() -> None:
    table: LruDict[int, int] = LruDict(100)
    for n in range(100):
        table.put(n, n)
        if n % 2:
            table.get(n)
    table.resize(10)
    assert len(table) == 10
    assert table.evictions == 90
    assert all(n % 2 for n in table)  # the keys hit were kept
    with pytest.raises(ValueError):
        table.resize(0)


@given(
    st.integers(min_value=1, max_value=20),
    st.lists(st.tuples(st.sampled_from(["put", "get", "pop", "peek"]), st.integers(0, 40))),
)
def test_it_behaves_as_a_bounded_dictionary(size: int, operations: list[tuple[str, int]]) -> None:
    """Whatever the operations: never more than the bound, every key present has the
    value last put, and the evictions count what went missing without a pop."""
    table: LruDict[int, int] = LruDict(size)
    model: dict[int, int] = {}
    for step, (operation, key) in enumerate(operations, 1):
        if operation == "put":
            table.put(key, step)
            model[key] = step
        elif operation == "get":
            assert table.get(key) in (None, model.get(key))
        elif operation == "peek":
            assert table.peek(key) in (None, model.get(key))
        else:
            table.pop(key)
            model.pop(key, None)
        assert len(table) <= size
        assert len(list(table)) == len(table) == len(table.items())
        for present, value in table.items():
            assert model[present] == value
    assert len(model) - len(table) <= table.evictions
