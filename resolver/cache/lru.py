"""A dictionary bounded in entries that forgets what was used least, and once only, first.

One implementation for every bounded table of the resolver (whole answers,
records, server statistics, lameness).  It is a segmented LRU (SLRU, the
simplified 2Q of Johnson and Shasha, and what Unbound's and Knot Resolver's
caches approximate in their own ways): an entry enters *probation*; a hit there
moves it to *protected*, which holds at most 80 % of the bound; the least
recently used protected entry goes back to probation when that part is full, and
eviction takes probation's least recently used first.  So a flood of names asked
once (random subdomains, a scan) churns through probation and cannot push out
the names clients keep asking, which a plain LRU would lose as soon as the flood
outgrew the cache between two uses of them.

Each part is a plain dict kept in use order, since dicts keep insertion order: a
hit moves the key to the end, and the first key is the least recently used.
That is faster and smaller than an OrderedDict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

PROTECTED_SHARE = 0.8  # of the bound; probation keeps the rest at least


class LruDict(Generic[K, V]):
    def __init__(self, max_entries: int, on_evict: Callable[[K, V], None] | None = None) -> None:
        self._probation: dict[K, V] = {}
        self._protected: dict[K, V] = {}
        self._on_evict = on_evict  # told each entry evicted (not popped or cleared)
        self.evictions = 0
        self.max_entries = 1
        self._protected_max = 0
        self.resize(max_entries)

    def __len__(self) -> int:
        return len(self._probation) + len(self._protected)

    def __contains__(self, key: object) -> bool:
        return key in self._protected or key in self._probation

    def __iter__(self) -> Iterator[K]:
        """Least recently used first: probation, then protected."""
        yield from self._probation
        yield from self._protected

    def get(self, key: K) -> V | None:
        """The value, counted as a hit (so now protected); None when absent."""
        protected = self._protected
        value = protected.pop(key, None)
        if value is not None:
            protected[key] = value
            return value
        value = self._probation.pop(key, None)
        if value is not None:
            self._protect(key, value)
        return value

    def peek(self, key: K) -> V | None:
        """The value without counting a hit or touching the order."""
        value = self._protected.get(key)
        return self._probation.get(key) if value is None else value

    def hit(self, key: K, value: V) -> None:
        """Count a hit on ``key`` found with :meth:`peek`, storing ``value`` for it
        (an answer cache's entry rewritten as its TTLs count down)."""
        protected = self._protected
        if protected.pop(key, None) is not None:
            protected[key] = value
        elif self._probation.pop(key, None) is not None:
            self._protect(key, value)

    def put(self, key: K, value: V) -> None:
        """Store a value.  A new key starts on probation; replacing a protected key's
        value keeps it protected (a refresh of a name in use)."""
        protected = self._protected
        if protected.pop(key, None) is not None:
            protected[key] = value
            return
        probation = self._probation
        probation.pop(key, None)
        probation[key] = value
        if len(probation) + len(protected) > self.max_entries:
            self._evict()

    def replace(self, key: K, value: V) -> None:
        """A new value for a key already held, its place in the use order kept (no hit, no
        eviction); nothing when the key is absent."""
        if key in self._protected:
            self._protected[key] = value
        elif key in self._probation:
            self._probation[key] = value

    def pop(self, key: K) -> V | None:
        value = self._protected.pop(key, None)
        return self._probation.pop(key, None) if value is None else value

    def items(self) -> list[tuple[K, V]]:
        """A snapshot, least recently used first (for dumps and flushes)."""
        return [*self._probation.items(), *self._protected.items()]

    def resize(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("an LRU table needs room for at least one entry")
        self.max_entries = max_entries
        self._protected_max = int(max_entries * PROTECTED_SHARE)
        protected = self._protected
        while len(protected) > self._protected_max:
            self._demote()
        self._evict()

    def clear(self) -> None:
        self._probation.clear()
        self._protected.clear()

    def _protect(self, key: K, value: V) -> None:
        protected = self._protected
        protected[key] = value
        if len(protected) > self._protected_max:
            self._demote()

    def _demote(self) -> None:
        """The least recently used protected entry goes back to probation, as its most
        recently used: it gets a second chance there before it can be evicted."""
        protected = self._protected
        key = next(iter(protected))
        self._probation[key] = protected.pop(key)

    def _evict(self) -> None:
        probation, protected = self._probation, self._protected
        while len(probation) + len(protected) > self.max_entries:
            part = probation if probation else protected
            key = next(iter(part))
            value = part.pop(key)
            self.evictions += 1
            if self._on_evict is not None:
                self._on_evict(key, value)
