"""Per-client query rate limits (UDP, DoT, DoH), as Unbound's ``ip-ratelimit`` and Knot's RRL.

A UDP query's source address can be forged, and a resolver that answers every
packet is a tool for reflection floods; a single client sending without pause can
also take the whole service for itself.  Over the limit, a client gets either a
truncated answer (TC=1, no records, no larger than its query: a real client
retries over TCP, which proves its address and is never limited here) or
nothing at all.

What is counted, and where (Knot DNS's ``mod-rrl`` and Knot Resolver's
``rate-limiting``, whose prefixes and multipliers these are):

- the client's address and its networks, each with its own limit:
  IPv4 /32 at ``rate``, /24 at 32 times ``rate``; IPv6 /128 at ``rate``,
  /64 at 2 times, /56 at 3 times.  A query is answered only if every level
  has room, and only an answered query is charged (to every level), so a
  flooder's dropped packets do not hold its neighbours down further;
- each level is a GCRA bucket (the "virtual scheduling" form of a token bucket,
  RFC 2698's idea with one number per bucket): a *theoretical arrival time*
  that moves ``1/limit`` seconds later with every answered query.  A query is
  over the limit when answering it would put that time more than one second
  ahead of now (the burst: ``limit`` queries at once);
- the buckets live in one fixed array of ``TABLE_SIZE`` doubles (1 MiB),
  whatever the number of clients: a key is hashed to two slots and its time is
  the earlier of the two (a count-min sketch, as Knot's KRU), so a well-behaved
  client that shares one slot with a flooder is still answered unless both of
  its slots are shared.  Python's string hash is salted per process, so an
  attacker cannot choose addresses that collide with a victim's.

Over an encrypted connection too (issue 25: DoH gets "the same access control and
rate limits as UDP"): a client over DNS over TLS or DNS over HTTPS cannot forge its
address, but it can flood us with nothing else to slow it than the connection caps.
Its queries count against the same per-address account as its UDP queries (one
table, one key per address whatever the transport), and over the limit it is
answered at once, never dropped: a dropped query on a connection holds the client's
pipelining slot, or HTTP/2 stream, until it gives up, and tells it nothing.  DNS over
TLS gets REFUSED with an Extended DNS Error (:func:`refused`), DNS over HTTPS an HTTP
429 with ``Retry-After: 1`` (RFC 6585 section 4; :mod:`resolver.serve.doh`), neither
with any DNS work done.  A valid DNS cookie exempts only UDP: it proves an address,
which a connection has proven already, so on a connection it would be a way around
the limit and nothing else.  Plain TCP is never counted: it is where a truncated
answer sends a UDP client over its limit, and it must stay open to it.

Checked before the cache (as Unbound: "IP ratelimiting happens before looking in
the cache"), so a flood of one cached name is limited as well.  The truncated
answers are themselves limited to ``rate`` a second per address (see
:meth:`ClientRateLimit.refusal`): beyond that a flood's packets are dropped, the
cheapest thing to do with them.  The rate is
``ip-ratelimit`` (0, the default, turns it off) and the action
``ip-ratelimit-mode`` (``truncate`` or ``drop``); both change at a reload.
"""

from __future__ import annotations

import ipaddress
from array import array

from resolver.serve.stats import ServiceStats
from resolver.wire import Rcode, response_from_header
from resolver.wire.ede import EdeCode, ExtendedError, ede_option
from resolver.wire.header import TC
from resolver.wire.raw import add_option, option, truncated

MODES = ("truncate", "drop")
TABLE_SIZE = 1 << 17  # slots (doubles): 1 MiB, shared by every prefix level
_MASK = TABLE_SIZE - 1
BURST_SECONDS = 1.0  # a level may run this far ahead of its rate: `limit` queries at once

# (prefix length, multiple of the rate) per family; Knot's values, its widest levels left out.
IPV4_LEVELS = ((32, 1), (24, 32))
IPV6_LEVELS = ((128, 1), (64, 2), (56, 3))

# RFC 8914 has no code for "rate limited"; 0 (Other) is the honest one, with EXTRA-TEXT
# saying what happened (section 4.1: it SHOULD have one).  Not 18 (Prohibited): that
# says the client is not allowed at all, and it is, a second later.
OVER_LIMIT: ExtendedError = (EdeCode.OTHER, "rate limited (ip-ratelimit): retry in a second")
_OVER_LIMIT_OPTION = option(*ede_option(OVER_LIMIT))


class ClientRateLimit:
    """Queries per second per client address and network; ``rate`` 0 turns it off."""

    def __init__(
        self, rate: int = 0, mode: str = "truncate", stats: ServiceStats | None = None
    ) -> None:
        self.table = array("d", bytes(8 * TABLE_SIZE))  # theoretical arrival times
        self.rate = 0
        self.mode = mode
        self.stats = stats or ServiceStats()  # counts the queries it limits
        self.configure(rate, mode)

    def configure(self, rate: int, mode: str) -> None:
        """A new rate and mode (a reload); the table is kept."""
        if rate < 0 or mode not in MODES:
            raise ValueError(f"rate {rate} / mode {mode!r}: a rate >= 0 and one of {MODES}")
        self.rate, self.mode = rate, mode

    def limited(self, client: str, now: float) -> bool:
        """True when ``client`` is over its limit at ``now`` (monotonic seconds); an
        answered query is charged.  Off (rate 0) is always False."""
        if not self.rate:
            return False
        keys = _keys(client)
        if keys is None:
            return False
        if not self._room(keys, now):
            self.stats.ratelimited += 1
            return True
        return False

    def refusal(self, packet: bytes, client: str, now: float) -> bytes | None:
        """What a limited query gets: a truncated answer, or None (dropped).

        In ``truncate`` mode the truncated answers are limited too, at the same rate per
        address: a real client over its limit gets one and retries over TCP, while a
        flood (from a forged address, most likely) gets at most ``rate`` of them a
        second and the rest are dropped, so answering it costs little (Knot's ``slip``
        does this with a fixed share)."""
        if self.mode != "truncate" or not self._room([(("TC", client), 1)], now):
            return None
        return truncated(packet)

    def _room(self, keys: list[tuple[object, int]], now: float) -> bool:
        """Whether every key has room for one more at ``now``; if so, each is charged."""
        table = self.table
        rate = self.rate
        slots = []
        for key, multiple in keys:
            h = hash(key)
            first, second = h & _MASK, (h >> 20) & _MASK
            step = 1.0 / (rate * multiple)
            # Room for one more if it would not end beyond the burst (half a step of slack
            # against rounding: exactly `limit` queries fit in an idle bucket).
            if min(table[first], table[second]) - now > BURST_SECONDS - step / 2:
                return False
            slots.append((first, second, step))
        for first, second, step in slots:
            table[first] = max(table[first], now) + step
            table[second] = max(table[second], now) + step
        return True


def refused(packet: bytes) -> bytes:
    """What a query over a connection (DNS over TLS) gets over the limit: REFUSED with
    the question and, if the query had EDNS, the Extended DNS Error :data:`OVER_LIMIT`;
    made from the query's bytes, without parsing it (a header only, when its question
    cannot be read that way)."""
    bare = truncated(packet)  # the question, and an OPT record if the query had one
    if bare is None:
        return response_from_header(packet, Rcode.REFUSED)
    flags = bytes((bare[2] & ~TC & 0xFF, bare[3] | Rcode.REFUSED))
    return add_option(bare[:2] + flags + bare[4:], _OVER_LIMIT_OPTION)


def _keys(client: str) -> list[tuple[object, int]] | None:
    """(hashable key, rate multiple) for each prefix level of an address; None if it is
    not an address (nothing to limit by)."""
    if ":" not in client:
        cut = client.rfind(".")
        if cut < 0:
            return None
        return [(client, IPV4_LEVELS[0][1]), ((client[:cut], 24), IPV4_LEVELS[1][1])]
    try:
        address = ipaddress.IPv6Address(client.split("%", 1)[0])
    except ValueError:
        return None
    if address.ipv4_mapped is not None:
        return _keys(str(address.ipv4_mapped))
    packed = address.packed
    return [((packed[: bits // 8], bits), multiple) for bits, multiple in IPV6_LEVELS]


# -------------------------------------------------------------------- DNSBomb

PENDING_PER_CLIENT = 256  # UDP queries of one address being resolved at once (default)
PENDING_PREFIX_MULTIPLE = 4  # its /24 (IPv6 /56) may have this many times as many
HELD = 0.5  # seconds: an answer that took this long was held (by a slow server, say)
RELEASE_WINDOW = 0.1  # seconds
RELEASE_BURST = 32  # held answers sent to one address within a window; beyond, dropped
MAX_RELEASING = 65536  # addresses whose window is kept


class PendingLimit:
    """UDP queries of one client address (and of its /24, or IPv6 /56) being resolved at
    once: ``pending-per-client``, 0 for no limit.

    DNSBomb (Li et al., IEEE S&P 2024) sends many queries from a forged address (the
    victim's) for names whose servers hold their answers back, then releases them all
    at once: the resolver's answers reach the victim in one burst, many times the bytes
    the attacker spent.  Queries answered from the cache are never held; for the others
    this bounds the answers one burst can release towards one address (and one network)
    to ``per_client`` (4 times as many), whatever the attacker sends; and answers that
    were held (HELD seconds or more) go to one address at most RELEASE_BURST per
    RELEASE_WINDOW, the rest dropped (:meth:`may_release`), so a burst released by the
    server does not leave as one.  How long a query is held is the engine's time
    budget.  Over TCP the address is proven and each connection has its own bound
    (MAX_PIPELINED)."""

    def __init__(self, per_client: int = PENDING_PER_CLIENT) -> None:
        self.per_client = per_client
        self.counts: dict[object, int] = {}
        self.refused = 0  # queries dropped for being over the limit
        self.windows: dict[str, tuple[float, int]] = {}  # address -> (window start, sent)
        self.withheld = 0  # held answers dropped for coming out in a burst

    def may_release(self, client: str, held: float, now: float) -> bool:
        """Whether an answer that took ``held`` seconds may go to ``client`` now: at most
        RELEASE_BURST such answers per RELEASE_WINDOW to one address (the second half of
        the DNSBomb bound: answers held together by a server are not sent together).
        Quick answers are never counted, nor withheld; off with ``per_client`` 0."""
        if held < HELD or not self.per_client:
            return True
        start, sent = self.windows.get(client, (0.0, 0))
        if now - start >= RELEASE_WINDOW:
            start, sent = now, 0
        if sent >= RELEASE_BURST:
            self.withheld += 1
            return False
        if len(self.windows) >= MAX_RELEASING and client not in self.windows:
            self.windows.clear()
        self.windows[client] = (start, sent + 1)
        return True

    def take(self, client: str) -> tuple[object, ...] | None:
        """Count one more query of ``client`` in progress: its keys (for :meth:`done`), or
        None when it is over the limit (drop the query)."""
        if not self.per_client:
            return ()
        keys = _pending_keys(client)
        counts = self.counts
        if counts.get(keys[0], 0) >= self.per_client or (
            len(keys) > 1 and counts.get(keys[1], 0) >= self.per_client * PENDING_PREFIX_MULTIPLE
        ):
            self.refused += 1
            return None
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
        return keys

    def done(self, keys: tuple[object, ...]) -> None:
        counts = self.counts
        for key in keys:
            left = counts.get(key, 1) - 1
            if left > 0:
                counts[key] = left
            else:
                counts.pop(key, None)


def _pending_keys(client: str) -> tuple[object, ...]:
    """The address, and its /24 (IPv4) or /56 (IPv6) as a second key."""
    if ":" not in client:
        cut = client.rfind(".")
        return (client,) if cut < 0 else (client, (client[:cut], 24))
    try:
        packed = ipaddress.IPv6Address(client.split("%", 1)[0]).packed
    except ValueError:
        return (client,)
    return (client, (packed[:7], 56))
