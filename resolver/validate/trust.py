"""What the validator knows about each zone's keys: the chain of trust, zone by zone.

For a zone it holds one :class:`ZoneTrust`: secure (its DS RRset validated from
the parent, or a trust anchor; and once fetched, its DNSKEY RRset validated from
those), insecure (a validated proof that the parent has no DS for it, or only
algorithms we cannot check: RFC 4035 section 5.2, RFC 8624), or bogus (the
chain broke: kept briefly, so a broken zone is not asked again for every
question).  Trust anchors (the root KSKs shipped with the package, or a
``--trust-anchor-file``) are permanent entries.  This is Unbound's key cache
(validator/val_kcache.c) in small, bounded like every table here.

Apart from the zones, it remembers names proved *not* to be zone cuts: a validated DS
NODATA or NXDOMAIN whose NSEC/NSEC3 does not show a delegation (no NS bit) proves
nothing about a zone there (RFC 6840 sections 4.1 and 4.4), so an RRSIG naming such a
signer is bogus (RFC 4035 section 5.3.1: the signer is the zone that holds the data).
They are kept apart so that :meth:`TrustCache.closest` never stops at one.

Negative trust anchors (RFC 7646) are here too: zones an operator chose not to
validate, for a while, because their signatures are broken; everything at and below
one is insecure (never AD, never SERVFAIL for being bogus).  Those from the
configuration last as long as it lists them; those added with ``resolver-control`` end
at their expiry (section 2: an NTA is temporary).
"""

from __future__ import annotations

from collections.abc import Callable

from recordclass import dataobject

from resolver.cache.lru import LruDict
from resolver.cache.records import BOGUS_TTL, Security
from resolver.dnssec import TrustAnchors
from resolver.wire import ResourceRecord
from resolver.wire.ede import EdeCode
from resolver.wire.names import ancestors, is_subdomain, name_key

NEVER = float("inf")
INSECURE_TTL = 3600  # how long a zone found insecure (no DS, no supported algorithm) is kept


class ZoneTrust(dataobject, fast_new=True):
    zone: str
    security: Security  # SECURE, INSECURE or BOGUS
    ds: tuple[ResourceRecord, ...]  # what the keys must match: DS records, or anchors
    keys: tuple[ResourceRecord, ...] | None  # the validated DNSKEY RRset, once fetched
    expires: float
    reason: str = ""  # why insecure or bogus, for logs and EDE text
    info_code: EdeCode | None = None  # RFC 8914 INFO-CODE when bogus


class NegativeAnchor(dataobject, fast_new=True):
    zone: str
    expires: float  # NEVER for one from the configuration
    configured: bool


class TrustCache:
    """Zone -> :class:`ZoneTrust`, with the trust anchors as permanent entries."""

    def __init__(
        self,
        anchors: TrustAnchors,
        clock: Callable[[], float],
        max_entries: int = 10_000,
    ) -> None:
        self.anchors = anchors
        self.clock = clock
        self._zones: LruDict[str, ZoneTrust] = LruDict(max_entries)
        self._not_zones: LruDict[str, tuple[float, str]] = LruDict(max_entries)
        self.negative: dict[str, NegativeAnchor] = {}  # name_key -> NTA (RFC 7646)
        self._anchored: dict[str, ZoneTrust] = {}
        for zone in anchors.zones:
            records = tuple(anchors.for_zone(zone))
            self._anchored[name_key(zone)] = ZoneTrust(zone, Security.SECURE, records, None, NEVER)

    def anchor_above(self, name: str) -> str | None:
        """The closest trust anchor at or above ``name``: without one, no validation."""
        return self.anchors.closest(name)

    def get(self, zone: str) -> ZoneTrust | None:
        key = name_key(zone)
        entry = self._zones.get(key)
        if entry is not None and entry.expires <= self.clock():
            self._zones.pop(key)
            entry = None
        if entry is None:
            # A trust anchor is where trust starts; what its keys proved replaces it
            # until that expires.
            return self._anchored.get(key)
        return entry

    def closest(self, name: str) -> ZoneTrust | None:
        """The deepest zone at or above ``name`` the validator knows anything about."""
        for zone in ancestors(name):
            entry = self.get(zone)
            if entry is not None:
                return entry
        return None

    def secure_ds(self, zone: str, ds: list[ResourceRecord], ttl: int) -> None:
        """The zone's DS RRset, validated from its parent: its keys must match it."""
        self._put(ZoneTrust(zone, Security.SECURE, tuple(ds), None, self.clock() + ttl))

    def secure_keys(self, zone: str, keys: list[ResourceRecord], ttl: int) -> None:
        """The zone's DNSKEY RRset, validated from its DS records or a trust anchor."""
        known = self.get(zone)
        ds = known.ds if known is not None else ()
        expires = self.clock() + ttl
        if known is not None:
            expires = min(expires, known.expires)
        self._put(ZoneTrust(zone, Security.SECURE, ds, tuple(keys), expires))

    def insecure(self, zone: str, ttl: int, reason: str) -> None:
        """Everything at and below ``zone`` is unsigned as far as the chain goes."""
        self._put(ZoneTrust(zone, Security.INSECURE, (), None, self.clock() + ttl, reason))

    def bogus(self, zone: str, reason: str, info_code: EdeCode) -> None:
        entry = ZoneTrust(zone, Security.BOGUS, (), None, self.clock() + BOGUS_TTL, reason,
                          info_code)  # fmt: skip
        self._put(entry)

    def _put(self, entry: ZoneTrust) -> None:
        self._zones.put(name_key(entry.zone), entry)

    def not_a_zone(self, name: str, ttl: float, reason: str) -> None:
        """``name`` is proved to be no zone cut (its parent's signed DS denial says so)."""
        self._not_zones.put(name_key(name), (self.clock() + ttl, reason))

    def not_a_zone_reason(self, name: str) -> str | None:
        """Why ``name`` is known to be no zone cut, or None."""
        key = name_key(name)
        found = self._not_zones.get(key)
        if found is None:
            return None
        if found[0] <= self.clock():
            self._not_zones.pop(key)
            return None
        return found[1]

    def clear(self) -> None:
        self._zones.clear()
        self._not_zones.clear()

    def forget(self, zone: str) -> None:
        """Drop what was learnt at and below ``zone`` (a negative anchor added or removed:
        its zones are judged afresh)."""
        for table in (self._zones, self._not_zones):
            for key, _ in table.items():
                if is_subdomain(key, zone):
                    table.pop(key)

    def set_anchors(self, anchors: TrustAnchors) -> None:
        """New trust anchors (RFC 5011 updates): what their zones' old keys proved goes."""
        changed = set(self._anchored) ^ {name_key(zone) for zone in anchors.zones}
        changed |= {
            name_key(z) for z in anchors.zones if anchors.for_zone(z) != self.anchors.for_zone(z)
        }
        self.anchors = anchors
        self._anchored = {
            name_key(zone): ZoneTrust(zone, Security.SECURE, tuple(anchors.for_zone(zone)), None,
                                      NEVER)
            for zone in anchors.zones
        }  # fmt: skip
        for key in changed:
            self._zones.pop(key)

    # ------------------------------------------------------------ negative trust anchors

    def negative_anchor(self, name: str) -> str | None:
        """The negative trust anchor at or above ``name``, if one is in force."""
        if not self.negative:
            return None
        now = self.clock()
        for zone in ancestors(name):
            found = self.negative.get(name_key(zone))
            if found is not None:
                if found.expires > now:
                    return found.zone
                del self.negative[name_key(zone)]
        return None

    def add_negative(self, zone: str, expires: float = NEVER, configured: bool = False) -> None:
        self.negative[name_key(zone)] = NegativeAnchor(zone, expires, configured)

    def remove_negative(self, zone: str) -> bool:
        return self.negative.pop(name_key(zone), None) is not None

    def negative_anchors(self) -> list[NegativeAnchor]:
        """Those in force, by zone name."""
        now = self.clock()
        live = [nta for nta in self.negative.values() if nta.expires > now]
        return sorted(live, key=lambda nta: name_key(nta.zone))
