"""How many queries a second one zone's servers get from us: Unbound's ``ratelimit``.

A flood of never-seen names under one zone (a random-subdomain or "water torture"
attack) makes a resolver ask that zone's servers once per name: the resolver
becomes the attacker's amplifier against them, and nothing a per-client limit
does helps when the names come from many clients.  Like Unbound's ``ratelimit``
(iterator/iter_utils.c, services/cache/infra.c), the count is kept per zone
cut whose servers are asked (the delegation point), for each query a lookup
puts to them: a question answered from the cache costs nothing.  Forwarders are
not counted (they are the operator's own choice of servers).

Over the limit the query is not sent and the lookup that wanted it fails (a
``limit`` warning): the client's question gets SERVFAIL, while a sub-lookup's
failure only costs the lookup that needed it that way (another name server is
tried), as an Unbound ratelimit fails one query and not the question.  Except
one query in ``factor`` (Unbound's ``ratelimit-factor``, 10 by default),
so that the zone stays resolvable for the names clients really use; those then
sit in the cache.  The table is bounded: at most ``max_zones`` zones counted at
once, the least recently used forgotten first.
"""

from __future__ import annotations

from recordclass import dataobject

from resolver.cache.lru import LruDict
from resolver.wire.names import name_key

MAX_ZONES = 65536
DEFAULT_FACTOR = 10


class ZoneCount(dataobject, fast_new=True):
    second: int  # the whole second of the clock these counts are for
    sent: int  # queries sent to the zone's servers in that second
    refused: int  # queries not sent because the zone was over its limit


class ZoneRateLimit:
    """At most ``per_second`` queries a second to each zone's servers, plus one in
    ``factor`` of those over it (0: none over it)."""

    def __init__(
        self, per_second: int, factor: int = DEFAULT_FACTOR, max_zones: int = MAX_ZONES
    ) -> None:
        if per_second < 1:
            raise ValueError("a zone rate limit is at least one query a second")
        self.per_second = per_second
        self.factor = factor
        self._zones: LruDict[str, ZoneCount] = LruDict(max_zones)

    def allows(self, zone: str, now: float) -> bool:
        """Whether a query to ``zone``'s servers may be sent at ``now``; counts it if so."""
        key = name_key(zone)
        second = int(now)
        count = self._zones.get(key)
        if count is None:
            self._zones.put(key, ZoneCount(second, 1, 0))
            return True
        if count.second != second:
            count.second, count.sent, count.refused = second, 0, 0
        if count.sent < self.per_second:
            count.sent += 1
            return True
        count.refused += 1
        if self.factor and count.refused % self.factor == 0:
            count.sent += 1
            return True
        return False

    def __len__(self) -> int:
        return len(self._zones)
