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
"""

from __future__ import annotations

import ipaddress
from enum import Enum

from resolver.cache.records import RecordCache
from resolver.iterate.classify import Referral
from resolver.iterate.forwarding import ConfiguredZone, ConfiguredZones, ZoneKind
from resolver.iterate.hints import RootHints
from resolver.wire import RRType
from resolver.wire.names import ROOT, ancestors, is_subdomain, name_key
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


_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_BROADCAST = ipaddress.ip_address("255.255.255.255")


class ZoneCut:
    """A zone and its name servers, with the addresses known for each."""

    def __init__(self, zone: str, nameservers: list[str], source: CutSource) -> None:
        self.zone = zone
        self.nameservers = nameservers
        self.source = source
        self.addresses: dict[str, list[str]] = {}  # NS name key -> addresses
        self.ports: dict[str, int] = {}  # address -> port, for configured servers only

    def known(self) -> list[tuple[str, str]]:
        """(address, server name) for every address known, in NS order."""
        return [(a, ns) for ns in self.nameservers for a in self.addresses.get(name_key(ns), [])]

    def glueless(self) -> list[str]:
        """Name servers with no usable address yet."""
        return [ns for ns in self.nameservers if not self.addresses.get(name_key(ns))]

    def add_addresses(self, ns: str, addresses: list[str]) -> None:
        have = self.addresses.setdefault(name_key(ns), [])
        have += [a for a in addresses if a not in have]

    def usable(self) -> bool:
        """Some server has an address, or one outside the zone could be looked up."""
        return bool(self.known()) or any(not is_subdomain(ns, self.zone) for ns in self.glueless())


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
            cut = ZoneCut(zone, [r.target for r in ns_rrset.rdatas if isinstance(r, NS)],
                          CutSource.CACHE)  # fmt: skip
            for ns in cut.nameservers:
                cut.add_addresses(ns, self.addresses_of(ns))
            if zone == ROOT and not cut.known():
                break  # the root without addresses: the hints (and priming) instead
            if cut.usable():
                return cut
        return self.hints_cut()

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

    def from_referral(self, referral: Referral) -> ZoneCut:
        """The cut a delegation points to: its glue first, then what the cache knows."""
        cut = ZoneCut(referral.zone, referral.nameservers, CutSource.REFERRAL)
        for ns in cut.nameservers:
            key = name_key(ns)
            glue = [
                rr.rdata.address
                for rr in referral.glue
                if name_key(rr.name) == key and isinstance(rr.rdata, A | AAAA)
            ]
            cut.add_addresses(ns, [a for a in glue if self.policy.usable(a)])
            cut.add_addresses(ns, self.addresses_of(ns))
        return cut

    def addresses_of(self, ns: str) -> list[str]:
        """Usable cached addresses of a name server: the child's own first, then glue."""
        found: list[str] = []
        cache = self.cache
        for rrtype in self.policy.types:
            for rrset in (cache.get_rrset(ns, rrtype), cache.get_glue(ns, rrtype)):
                if rrset is not None:
                    found += [
                        r.address
                        for r in rrset.rdatas
                        if isinstance(r, A | AAAA) and r.address not in found
                    ]
        return [a for a in found if self.policy.usable(a)]
