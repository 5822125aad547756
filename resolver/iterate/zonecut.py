"""Zone cuts: which servers to ask for a name, and at which addresses.

A :class:`ZoneCut` is a zone with its name servers and the addresses known for
each: first the child's own address records from the cache, then the parent's
glue (kept apart by the cache), so a server whose child-side address does not
work is still tried at the address its parent gave (Deckard's iter_pcdiff).

:class:`CutFinder.closest` is RFC 1034 section 5.3.3 step 2: the deepest zone
above a name whose NS RRset the cache holds, or the root hints at worst.  A cut
that cannot be used (no address, and every name server inside the zone itself,
so no lookup can find one) is passed over for the one above it; at the root, a
cached NS set without usable addresses gives way to the hints, which stay the
last resort (RFC 8109 section 3).

A cut built from the cache is kept a moment (:data:`CUT_REUSE` seconds at most,
never past the TTL of any RRset it was built from) and given again to the next
lookups of the zone: building it costs a cache lookup per server and address
type, on every question.  It is dropped as soon as the zone's NS RRset in the
cache is another (stored again, or gone), or when an address record of one of
its servers is learned (:meth:`CutFinder.learned`).

A cut runs out when the delegation it stands on does (:attr:`ZoneCut.expires`:
its NS RRset's TTL, bounded in turn by the cut that gave it): what its servers
teach about delegations is kept no longer, so a zone its parent removed cannot
be kept alive from below (ghost and Phoenix domains).  A delegation none of
whose servers could be found is remembered as unusable for a while
(:class:`UnusableDelegations`, RFC 9520), so that a cycle of delegations costs
its parents a few queries, not several per question (TsuNAME).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from enum import Enum

from resolver.cache.lru import LruDict
from resolver.cache.records import CachedRRset, RecordCache, Security, Trust
from resolver.iterate.classify import Classified, Referral
from resolver.iterate.forwarding import ConfiguredZone, ConfiguredZones, ZoneKind
from resolver.iterate.hints import RootHints
from resolver.wire import ResourceRecord, RRType
from resolver.wire.names import ROOT, ancestors, is_subdomain, label_count, name_key
from resolver.wire.rdata import AAAA, NS, A


class CutSource(Enum):
    HINTS = "hints"  # the root hints file
    CACHE = "cache"  # NS records cached from earlier replies
    REFERRAL = "referral"  # the delegation in the reply just received
    STUB = "stub"  # a stub zone's configured authoritative servers
    FORWARD = "forward"  # a forward zone's configured resolvers (asked with RD=1)


class AddressPolicy:
    """Which upstream addresses may be asked: address families, and never loopback,
    "this network", broadcast or multicast (Unbound's do-not-query-localhost and
    do-not-query-address defaults) unless loopback is allowed for a lab."""

    def __init__(self, ipv4: bool = True, ipv6: bool = False, loopback: bool = False) -> None:
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.loopback = loopback
        # The record types that give a server's addresses, A first (one place for
        # "A, and AAAA when IPv6").
        self.types: tuple[int, ...] = tuple(
            rrtype for rrtype, on in ((RRType.A, ipv4), (RRType.AAAA, ipv6)) if on
        )
        self._decided: dict[str, bool] = {}

    def usable(self, address: str) -> bool:
        decided = self._decided.get(address)
        if decided is None:
            decided = self._decide(address)
            if len(self._decided) > 65536:
                self._decided.clear()
            self._decided[address] = decided
        return decided

    def usable_configured(self, address: str) -> bool:
        """A server the operator listed (a forwarder, a stub zone's server): loopback is
        fine there (a local resolver is a common forwarder); the family must be usable."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return (self.ipv4 if ip.version == 4 else self.ipv6) or ip.is_loopback

    def _decide(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if (ip.version == 4 and not self.ipv4) or (ip.version == 6 and not self.ipv6):
            return False
        if ip.is_loopback:
            return self.loopback
        if ip.is_multicast or ip.is_unspecified:
            return False
        if ip.version == 4:
            return ip not in _THIS_NETWORK and ip != _BROADCAST
        return True


NEVER = float("inf")
CUT_REUSE = 1.0  # seconds a cut built from the cache is given again without a look
MAX_KEPT_CUTS = 4096  # cuts kept at once (all are dropped when more are wanted)
_ADDRESS_TYPES = frozenset((RRType.A, RRType.AAAA))

_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_BROADCAST = ipaddress.ip_address("255.255.255.255")


class ZoneCut:
    """A zone and its name servers, with the addresses known for each."""

    def __init__(
        self, zone: str, nameservers: list[str], source: CutSource, expires: float = NEVER
    ) -> None:
        self.zone = zone
        self.nameservers = nameservers
        self.source = source
        self.addresses: dict[str, list[str]] = {}  # NS name key -> addresses
        self.ports: dict[str, int] = {}  # address -> port, for configured servers only
        # When the delegation this cut stands on runs out (its NS RRset's TTL, itself no
        # later than the parent's): what its servers teach about delegations lives no
        # longer (ghost and Phoenix domains).  The root, the hints and configured zones
        # never run out.
        self.expires = expires if zone != ROOT else NEVER

    def known(self) -> list[tuple[str, str]]:
        """(address, server name) for every address known, in NS order."""
        return [(a, ns) for ns in self.nameservers for a in self.addresses.get(name_key(ns), [])]

    def glueless(self) -> list[str]:
        """Name servers with no usable address yet."""
        return [ns for ns in self.nameservers if not self.addresses.get(name_key(ns))]

    def add_addresses(self, ns: str, addresses: list[str]) -> None:
        # A new list, never one changed in place: a kept cut's copies share the lists.
        key = name_key(ns)
        have = self.addresses.get(key, [])
        self.addresses[key] = have + [a for a in addresses if a not in have]

    def usable(self) -> bool:
        """Some server has an address, or one outside the zone could be looked up."""
        return bool(self.known()) or any(not is_subdomain(ns, self.zone) for ns in self.glueless())


UNUSABLE_FIRST = 5.0  # seconds a delegation without a findable server is given up on
UNUSABLE_LONGEST = 300.0  # doubled on each failure in a row, up to this (RFC 9520)
MAX_UNUSABLE = 10_000


class UnusableDelegations:
    """Zone cuts none of whose name servers could be found lately (their addresses do not
    resolve: names in a cycle of delegations, or that do not exist).  RFC 9520 section 3
    asks for resolution failures to be cached, with a back-off, instead of asking the
    parents again for every question: so a TsuNAME cycle (``a. NS ns.b.``, ``b. NS
    ns.a.``, Moura et al. 2021) costs its parents a few queries a TTL, not several per
    client question.  A failure remembered for ``UNUSABLE_FIRST`` seconds, doubled each
    time it happens again within ``UNUSABLE_LONGEST`` of the last, up to that."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._failed: LruDict[str, tuple[float, float]] = LruDict(MAX_UNUSABLE)  # until, for

    def failed(self, zone: str) -> None:
        now = self.clock()
        key = name_key(zone)
        last = self._failed.peek(key)
        seconds = UNUSABLE_FIRST
        if last is not None:
            if last[0] > now:
                return  # remembered already (one question may meet the cut twice)
            if now - last[0] < UNUSABLE_LONGEST:
                seconds = min(2 * last[1], UNUSABLE_LONGEST)
        self._failed.put(key, (now + seconds, seconds))

    def unusable(self, zone: str) -> bool:
        entry = self._failed.peek(name_key(zone))
        return entry is not None and entry[0] > self.clock()

    def clear(self) -> None:
        self._failed.clear()


class _KeptCut:
    """A cut built from the cache, the NS RRset it came from, and until when it holds."""

    __slots__ = ("addresses", "nameservers", "ns_data", "ns_expires", "until", "zone")

    def __init__(self, cut: ZoneCut, ns_rrset: CachedRRset, until: float) -> None:
        self.zone = cut.zone
        self.nameservers = cut.nameservers
        self.addresses = dict(cut.addresses)
        self.ns_data = ns_rrset.data  # the cached RRset's own data: another object if stored again
        self.ns_expires = ns_rrset.expires
        self.until = until

    def holds(self, ns_rrset: CachedRRset, now: float) -> bool:
        same = ns_rrset.data is self.ns_data and ns_rrset.expires == self.ns_expires
        return same and now < self.until

    def cut(self) -> ZoneCut:
        cut = ZoneCut(self.zone, self.nameservers, CutSource.CACHE, self.ns_expires)
        cut.addresses = dict(self.addresses)  # the lists are shared, never changed in place
        return cut


class CutFinder:
    """Builds zone cuts from the cache, referrals and the root hints."""

    def __init__(
        self,
        cache: RecordCache,
        hints: RootHints,
        policy: AddressPolicy,
        configured: ConfiguredZones | None = None,
    ) -> None:
        self.cache = cache
        self.hints = hints
        self.policy = policy
        self.configured = configured or ConfiguredZones()
        self._kept: dict[str, _KeptCut] = {}  # zone key -> the cut last built from the cache
        self._servers: dict[str, set[str]] = {}  # NS name key -> keys of kept zones it serves
        self.unusable = UnusableDelegations(cache.clock)

    def closest(
        self,
        name: str,
        passed_over: set[str] | frozenset[str] = frozenset(),
        forwarding: bool = True,
    ) -> ZoneCut:
        """The deepest usable cut at or above ``name``: a configured zone, a cut the cache
        knows, else the hints.  A forward zone covers every name below it; a stub zone
        only up to the deeper cuts its servers taught us.  ``passed_over`` holds zones
        already found unusable by this lookup; ``forwarding`` False iterates instead.
        """
        configured = self.configured.closest(name)
        if configured is not None and configured.kind is ZoneKind.FORWARD and not forwarding:
            configured = None
        for zone in ancestors(name):
            key = name_key(zone)
            if key in passed_over:
                continue
            if configured is not None:
                if key == name_key(configured.zone):
                    return self.configured_cut(configured)
                if configured.kind is ZoneKind.FORWARD:
                    continue  # below a forward zone: the forwarders, not the cache
            ns_rrset = self.cache.get_rrset(zone, RRType.NS)
            if ns_rrset is None:
                continue
            cut = self._cached_cut(zone, key, ns_rrset)
            if cut is not None:
                return cut
            if zone == ROOT:
                break  # the root without addresses: the hints (and priming) instead
        return self.hints_cut()

    def _cached_cut(self, zone: str, key: str, ns_rrset: CachedRRset) -> ZoneCut | None:
        """The cut of ``zone`` from its cached NS RRset, if usable: the one kept, while
        it holds, else built from the cache (and kept)."""
        now = self.cache.clock()
        kept = self._kept.get(key)
        if kept is not None and kept.holds(ns_rrset, now):
            return kept.cut()
        cut = ZoneCut(zone, [r.target for r in ns_rrset.rdatas if isinstance(r, NS)],
                      CutSource.CACHE, ns_rrset.expires)  # fmt: skip
        until = min(ns_rrset.expires, now + CUT_REUSE)
        for ns in cut.nameservers:
            addresses, expires = self._cached_addresses(ns, zone)
            cut.add_addresses(ns, addresses)
            until = min(until, expires)
        if not cut.usable():
            return None
        if len(self._kept) >= MAX_KEPT_CUTS:
            self.forget()
        self._kept[key] = _KeptCut(cut, ns_rrset, until)
        for ns in cut.nameservers:
            self._servers.setdefault(name_key(ns), set()).add(key)
        return cut

    def learned(self, step: Classified) -> None:
        """A reply's records were just cached: kept cuts that one of its address records
        is about (the answer's, the glue's, the referral's glue) are dropped."""
        self._drop_served_by(step.records)
        if step.glue:
            self._drop_served_by(step.glue)
        if step.referral is not None:
            self._drop_served_by(step.referral.glue)

    def learned_records(self, records: Iterable[ResourceRecord]) -> None:
        """Records were just cached (outside a whole reply): as :meth:`learned`."""
        self._drop_served_by(records)

    def _drop_served_by(self, records: Iterable[ResourceRecord]) -> None:
        if not self._servers:
            return
        for rr in records:
            if rr.rrtype in _ADDRESS_TYPES:
                zones = self._servers.pop(name_key(rr.name), None)
                for zone in zones or ():
                    self._kept.pop(zone, None)

    def forget(self) -> None:
        """Drop every kept cut and remembered failure (the cache was flushed, say)."""
        self._kept.clear()
        self._servers.clear()
        self.unusable.clear()

    def retry_above(self, cut: ZoneCut, asked: bool) -> bool:
        """Every server of ``cut`` failed (``asked``: some were asked; else no address of
        any could be found): whether to try the cut above.  A cut from the cache may be
        stale (its glue expired, its servers moved): yes, unless it is known unusable.
        One just learned from a referral whose servers could not be found is remembered
        as unusable (RFC 9520), and the lookup ends, as after any referral or the hints."""
        if cut.source is CutSource.REFERRAL and not asked:
            self.unusable.failed(cut.zone)
        return cut.source is CutSource.CACHE and not self.unusable.unusable(cut.zone)

    def glueless_order(self, cut: ZoneCut) -> list[str]:
        """The cut's name servers without addresses, likeliest to answer first.

        A name inside the cut's own zone cannot be found without the glue we lack,
        so it goes last; names whose own zone cut we already know come first,
        since their lookup is short.
        """

        def cost(ns: str) -> tuple[bool, int]:
            inside = is_subdomain(ns, cut.zone)
            known = self.closest(ns) if not inside else None
            return inside, -(label_count(known.zone) if known else 0)

        if self.unusable.unusable(cut.zone):
            return []  # no use looking for them again so soon
        return sorted(cut.glueless(), key=cost)

    def configured_cut(self, zone: ConfiguredZone) -> ZoneCut:
        source = CutSource.FORWARD if zone.kind is ZoneKind.FORWARD else CutSource.STUB
        names = [f"{server.address}@{server.port}" if server.port else server.address
                 for server in zone.servers]  # fmt: skip
        cut = ZoneCut(zone.zone, names, source)
        for name, server in zip(names, zone.servers, strict=True):
            if self.policy.usable_configured(server.address):
                cut.add_addresses(name, [server.address])
                if server.port:
                    cut.ports[server.address] = server.port
        return cut

    def hints_cut(self) -> ZoneCut:
        cut = ZoneCut(ROOT, [s.name for s in self.hints.servers], CutSource.HINTS)
        for server in self.hints.servers:
            addresses = server.ipv4 + server.ipv6
            cut.add_addresses(server.name, [a for a in addresses if self.policy.usable(a)])
        return cut

    def from_referral(self, referral: Referral, above: ZoneCut | None = None) -> ZoneCut:
        """The cut a delegation points to: its glue first, then what the cache knows.  It
        runs out with its NS RRset's TTL, or with the cut ``above`` whose server gave it,
        whichever comes first (what the cache keeps of it is bounded the same way)."""
        ttl = min((rr.ttl for rr in referral.ns_records), default=0)
        expires = self.cache.clock() + self.cache.clamp_ttl(ttl) if ttl > 0 else 0.0
        if above is not None:
            expires = min(expires, above.expires)
        cut = ZoneCut(referral.zone, referral.nameservers, CutSource.REFERRAL, expires)
        for ns in cut.nameservers:
            key = name_key(ns)
            glue = [
                rr.rdata.address
                for rr in referral.glue
                if name_key(rr.name) == key and isinstance(rr.rdata, A | AAAA)
            ]
            cut.add_addresses(ns, [a for a in glue if self.policy.usable(a)])
            cut.add_addresses(ns, self.addresses_of(ns, cut.zone))
        return cut

    def addresses_of(self, ns: str, zone: str) -> list[str]:
        """Usable cached addresses of a name server of ``zone``: the child's own first,
        then glue."""
        return self._cached_addresses(ns, zone)[0]

    def answers_validated(self, zone: str) -> bool:
        """Whether what ``zone``'s servers say will be validated whoever they are: the
        zone has a DS at its parent (cached, checked when the chain of trust needs it; a
        forged one fails that check).  Then even an address that failed validation may
        take the walk to its server (RFC 4035 section 2.2: glue is not signed either;
        Unbound asks for name server addresses with CD=1); without a DS, nothing would
        check the server's word, and such an address is not used."""
        ds = self.cache.get_rrset(zone, RRType.DS)
        return ds is not None and ds.trust >= Trust.AUTHORITY

    def _cached_addresses(self, ns: str, zone: str) -> tuple[list[str], float]:
        """:meth:`addresses_of`, and when the first of the RRsets they came from expires."""
        found: list[str] = []
        expires = float("inf")
        cache = self.cache
        bogus_too: bool | None = None  # asked once, only when there is a bogus address
        for rrtype in self.policy.types:
            for rrset in (cache.get_rrset(ns, rrtype), cache.get_glue(ns, rrtype)):
                if rrset is not None and rrset.security == Security.BOGUS:
                    if bogus_too is None:
                        bogus_too = self.answers_validated(zone)
                    if not bogus_too:
                        continue
                if rrset is not None:
                    expires = min(expires, rrset.expires)
                    found += [
                        r.address
                        for r in rrset.rdatas
                        if isinstance(r, A | AAAA) and r.address not in found
                    ]
        usable = self.policy.usable
        return [a for a in found if usable(a)], expires
