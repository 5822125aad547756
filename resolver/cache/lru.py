"""A dictionary bounded in entries that forgets the least recently used first.

One implementation for every bounded table of the resolver (records, server
statistics, lameness): a plain dict kept in use order is the LRU list, since
dicts keep insertion order; a hit moves the key to the end, and the first key
is the least recently used.  That is faster and smaller than an OrderedDict.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LruDict(Generic[K, V]):
    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("an LRU table needs room for at least one entry")
        self.max_entries = max_entries
        self._entries: dict[K, V] = {}
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        return iter(self._entries)

    def get(self, key: K) -> V | None:
        """The value, now the most recently used; None when absent."""
        entries = self._entries
        value = entries.pop(key, None)
        if value is not None:
            entries[key] = value
        return value

    def peek(self, key: K) -> V | None:
        """The value without touching its place in the LRU order."""
        return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        """Store as the most recently used, evicting the least recently used beyond the bound."""
        entries = self._entries
        entries.pop(key, None)
        entries[key] = value
        if len(entries) > self.max_entries:
            self._evict()

    def pop(self, key: K) -> V | None:
        return self._entries.pop(key, None)

    def items(self) -> list[tuple[K, V]]:
        """A snapshot, least recently used first (for dumps and flushes)."""
        return list(self._entries.items())

    def resize(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("an LRU table needs room for at least one entry")
        self.max_entries = max_entries
        self._evict()

    def clear(self) -> None:
        self._entries.clear()

    def _evict(self) -> None:
        entries = self._entries
        while len(entries) > self.max_entries:
            del entries[next(iter(entries))]
            self.evictions += 1
