"""The iteration engine: resolve one question by walking down from the closest known zone cut.

This is RFC 1034 section 5.3.3 as Unbound's iterator and Knot Resolver do it:

1. answer from the cache if possible (positive, negative, or a CNAME to follow);
2. find the closest zone cut the cache knows for the name (the root hints at worst);
3. ask that cut's servers, best measured round-trip time first, until one gives
   a usable reply; NS names without glue are resolved by sub-lookups through
   this same engine, likeliest first;
4. an answer or a negative answer ends the walk; a referral moves the cut down
   and goes back to 3; a CNAME restarts at 1 for its target, keeping the chain.

The engine does no I/O of its own: it is handed a network (anything with the
``exchange`` coroutine of :class:`resolver.net.transport.UpstreamTransport`) and a
clock, so tests drive it with canned replies and a fake clock.  Every client
question gets one :class:`AnswerBudget`; running out of it is SERVFAIL,
quickly (the NXNSAttack limits, CVE-2020-12667).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from resolver.cache.records import NXDOMAIN_TYPE, RecordCache, Trust
from resolver.iterate.answer import Answer, FailureKind, servfail
from resolver.iterate.classify import Classified, Kind, Referral, classify
from resolver.iterate.events import LogObserver, Observer, wants_every_hop
from resolver.iterate.hints import RootHints
from resolver.iterate.servers import ServerSelection
from resolver.net.contract import ExchangeFailed, Network
from resolver.net.contract import Failure as ExchangeFailure
from resolver.wire import Rcode, ResourceRecord, RRType
from resolver.wire.names import ROOT, ancestors, is_subdomain, label_count, name_key, parent
from resolver.wire.rdata import AAAA, CNAME, NS, A


@dataclass(frozen=True)
class Limits:
    """Per-question bounds.  Unbound: 200 queries, 11 restarts; Knot: 100 iterations, 13 CNAMEs."""

    max_upstream_queries: int = 100  # every exchange with a server, sub-lookups included
    max_referrals: int = 30  # zone cuts walked in one iteration
    max_cname_chain: int = 11  # Unbound's max-query-restarts
    max_sublookup_depth: int = 3  # NS name lookups nested inside NS name lookups
    max_glueless_per_cut: int = 4  # NS names without glue resolved for one zone cut
    time_budget: float = 10.0  # seconds per client question


class LimitExceeded(Exception):
    def __init__(self, limit: str) -> None:
        super().__init__(limit)
        self.limit = limit


class AnswerBudget:
    """The work one client question may still cause."""

    def __init__(self, limits: Limits, deadline: float, clock: Callable[[], float]) -> None:
        self.limits = limits
        self.deadline = deadline
        self.clock = clock
        self.queries = 0
        self.in_progress: set[tuple[str, int]] = set()  # sub-lookups running, for loops
        self.limits_hit: list[str] = []  # limits that cut a sub-lookup short, for the reason

    def spend_query(self) -> None:
        if self.queries >= self.limits.max_upstream_queries:
            raise LimitExceeded("upstream queries")
        if self.clock() >= self.deadline:
            raise LimitExceeded("time budget")
        self.queries += 1


class ZoneCut:
    """A zone and its name servers, with the addresses known for each."""

    def __init__(self, zone: str, nameservers: list[str], source: str) -> None:
        self.zone = zone
        self.nameservers = nameservers
        self.source = source  # "hints", "cache" or "referral"
        self.addresses: dict[str, list[str]] = {}

    def known(self) -> list[tuple[str, str]]:
        """(address, server name) for every address known, in NS order."""
        return [(a, ns) for ns in self.nameservers for a in self.addresses.get(name_key(ns), [])]

    def glueless(self) -> list[str]:
        return [ns for ns in self.nameservers if not self.addresses.get(name_key(ns))]


class NoReachableServer(Exception):
    """Every server of a zone cut failed or none could be found."""


class IterativeEngine:
    def __init__(
        self,
        network: Network,
        cache: RecordCache,
        hints: RootHints,
        *,
        selection: ServerSelection | None = None,
        limits: Limits | None = None,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.time,
        ipv6: bool = False,
    ) -> None:
        self.network = network
        self.cache = cache
        self.hints = hints
        self.selection = selection or ServerSelection()
        self.limits = limits or Limits()
        self.observer: Observer = observer or LogObserver()
        self.report_hops = wants_every_hop(self.observer)
        self.clock = clock
        self.ipv6 = ipv6

    # ---------------------------------------------------------------- entry point

    async def resolve(self, qname: str, qtype: int) -> Answer:
        """Resolve (qname, qtype, IN); never raises for DNS reasons: failures are SERVFAIL."""
        budget = AnswerBudget(self.limits, self.clock() + self.limits.time_budget, self.clock)
        try:
            async with asyncio.timeout(self.limits.time_budget):
                result = await self._lookup(qname, qtype, budget, 0)
        except LimitExceeded as error:
            self.observer("limit", qname=qname, qtype=RRType.text(qtype), limit=error.limit)
            result = servfail(FailureKind.LIMIT, f"limit: {error.limit}")
        except TimeoutError:
            self.observer("limit", qname=qname, qtype=RRType.text(qtype), limit="time budget")
            result = servfail(FailureKind.TIME_BUDGET, "limit: time budget")
        result.upstream_queries = budget.queries
        return result

    def answer_from_cache(self, qname: str, qtype: int) -> Answer | None:
        """The answer the cache alone gives (CNAMEs followed inside it), or None.

        For queries with RD=0, which never start upstream work.
        """
        chain: list[ResourceRecord] = []
        name = qname
        for _ in range(self.limits.max_cname_chain + 1):
            step = self._from_cache(name, qtype)
            if step is None:
                return None
            chain += step.records
            if step.kind != Kind.CNAME:
                answer = self._finish(step, self._clamped(chain))
                answer.from_cache = True
                return answer
            name = step.name
        return None

    # ---------------------------------------------------------------- the walk

    async def _lookup(self, qname: str, qtype: int, budget: AnswerBudget, depth: int) -> Answer:
        """Steps 1 to 4 for one name, following CNAMEs across zones."""
        chain: list[ResourceRecord] = []
        name = qname
        seen = {name_key(qname)}
        for _ in range(self.limits.max_cname_chain + 1):
            step = self._from_cache(name, qtype)
            if step is None:
                try:
                    step = await self._iterate(name, qtype, budget, depth)
                except NoReachableServer as error:
                    return servfail(FailureKind.NO_REACHABLE_AUTHORITY, str(error))
            chain += step.records
            if step.kind != Kind.CNAME:
                return self._finish(step, self._clamped(chain))
            name = step.name
            if name_key(name) in seen:
                raise LimitExceeded("CNAME loop")
            seen.add(name_key(name))
        raise LimitExceeded("CNAME chain length")

    def _clamped(self, records: list[ResourceRecord]) -> list[ResourceRecord]:
        """Records with TTLs within the cache's bounds, so that clients are never told
        to keep data longer than --max-ttl (nor, if asked, shorter than --min-ttl);
        TTL 0 stays 0: it means do not cache (RFC 1035 section 3.2.1)."""
        clamp = self.cache.clamp_ttl
        return [
            rr if rr.ttl == 0 or clamp(rr.ttl) == rr.ttl
            else ResourceRecord(rr.name, rr.rrtype, rr.rrclass, clamp(rr.ttl), rr.rdata)
            for rr in records
        ]  # fmt: skip

    @staticmethod
    def _finish(step: Classified, chain: list[ResourceRecord]) -> Answer:
        soa = [step.soa] if step.soa is not None else []
        if step.kind == Kind.NXDOMAIN:
            return Answer(Rcode.NXDOMAIN, chain, soa)
        if step.kind == Kind.NODATA:
            return Answer(Rcode.NOERROR, chain, soa)
        return Answer(Rcode.NOERROR, chain, [])

    def _from_cache(self, name: str, qtype: int) -> Classified | None:
        now = self.clock()
        rrset = self.cache.get_rrset(name, qtype)
        if rrset is not None and rrset.trust >= Trust.ANSWER:
            return Classified(Kind.ANSWER, rrset.records(now), name)
        negative = self.cache.get_negative(name, qtype)
        if negative is not None:
            kind = Kind.NXDOMAIN if negative.nxdomain else Kind.NODATA
            soa = negative.soa_record(now)
            return Classified(kind, [], name, soa[0] if soa else None)
        if qtype != RRType.CNAME:
            cname = self.cache.get_rrset(name, RRType.CNAME)
            if cname is not None and cname.trust >= Trust.ANSWER:
                target = cname.rdatas[0]
                assert isinstance(target, CNAME)
                return Classified(Kind.CNAME, cname.records(now), target.target)
        return None

    async def _iterate(self, name: str, qtype: int, budget: AnswerBudget, depth: int) -> Classified:
        """Walk referrals from the closest known cut until a final reply (or a CNAME)."""
        # DS records live on the parent side of a zone cut (RFC 4035 section 3.1.4.1):
        # start above the name, so the parent's servers are asked, not the child's.
        above = parent(name) if qtype == RRType.DS and name != ROOT else name
        cut = self.closest_cut(above)
        for _ in range(self.limits.max_referrals):
            try:
                step = await self._ask_cut(cut, name, qtype, budget, depth)
            except NoReachableServer:
                if cut.source != "cache":
                    raise
                # The cached cut is unusable (say, its glue expired): start above it.
                cut = self.closest_cut(parent(cut.zone))
                continue
            if step.kind != Kind.REFERRAL:
                return step
            assert step.referral is not None
            cut = self._cut_from_referral(step.referral)
        raise LimitExceeded("referral depth")

    def closest_cut(self, name: str) -> ZoneCut:
        """The deepest zone cut above ``name`` that the cache knows, or the root hints."""
        for zone in ancestors(name):
            ns_rrset = self.cache.get_rrset(zone, RRType.NS)
            if ns_rrset is None:
                continue
            targets = [r.target for r in ns_rrset.rdatas if isinstance(r, NS)]
            cut = ZoneCut(zone, targets, "cache")
            for ns in targets:
                cut.addresses[name_key(ns)] = self._cached_addresses(ns)
            return cut
        cut = ZoneCut(ROOT, [s.name for s in self.hints.servers], "hints")
        for server in self.hints.servers:
            addresses = server.ipv4 + (server.ipv6 if self.ipv6 else [])
            cut.addresses[name_key(server.name)] = list(addresses)
        return cut

    def _cached_addresses(self, ns: str) -> list[str]:
        found = []
        for rrtype in (RRType.A, RRType.AAAA) if self.ipv6 else (RRType.A,):
            rrset = self.cache.get_rrset(ns, rrtype)
            if rrset is not None:
                found += [r.address for r in rrset.rdatas if isinstance(r, A | AAAA)]
        return found

    def _cut_from_referral(self, referral: Referral) -> ZoneCut:
        cut = ZoneCut(referral.zone, referral.nameservers, "referral")
        for ns in cut.nameservers:
            glue = [
                rr.rdata.address
                for rr in referral.glue
                if name_key(rr.name) == name_key(ns)
                and (isinstance(rr.rdata, A) or (self.ipv6 and isinstance(rr.rdata, AAAA)))
            ]
            cut.addresses[name_key(ns)] = glue or self._cached_addresses(ns)
        return cut

    # ---------------------------------------------------------------- one zone cut

    async def _ask_cut(
        self, cut: ZoneCut, name: str, qtype: int, budget: AnswerBudget, depth: int
    ) -> Classified:
        """Ask the cut's servers in order of expected RTT until one gives a usable reply.

        Each address is asked once; NS names without glue are looked up when the
        known addresses run out; servers that timed out get one more chance at the
        end (a lost packet is not a dead server).  The budget bounds all of it.
        """
        tried: set[str] = set()
        timed_out: set[str] = set()
        retried = False
        glueless = self._glueless_order(cut)
        lookups = 0
        limits_before = len(budget.limits_hit)
        while True:
            for address, server in self._candidates(cut, tried):
                tried.add(address)
                step = await self._exchange(cut, server, address, name, qtype, budget, depth)
                if isinstance(step, Classified):
                    return step
                if step is ExchangeFailure.TIMEOUT:
                    timed_out.add(address)
            if glueless and lookups < self.limits.max_glueless_per_cut:
                ns = glueless.pop(0)
                lookups += 1
                found = await self._resolve_server(ns, cut.zone, budget, depth)
                cut.addresses[name_key(ns)] = found
                continue
            if timed_out and not retried:
                retried = True
                tried -= timed_out
                continue
            limits = ", ".join(dict.fromkeys(budget.limits_hit[limits_before:]))
            why = f" (limit: {limits})" if limits else ""
            raise NoReachableServer(f"no server of {cut.zone} answered{why}")

    def _candidates(self, cut: ZoneCut, tried: set[str]) -> list[tuple[str, str]]:
        """Untried addresses, best first; servers known to be lame for the zone go last."""
        known = [(a, ns) for a, ns in cut.known() if a not in tried]
        server_of = dict(reversed(known))  # first NS name listed for each address
        ordered = self.selection.order(dict.fromkeys(a for a, _ in known))
        ordered.sort(key=lambda address: self.selection.is_lame(address, cut.zone))
        return [(address, server_of[address]) for address in ordered]

    def _glueless_order(self, cut: ZoneCut) -> list[str]:
        """NS names to look up, likeliest to answer first.

        A name inside the cut's own zone cannot be found without the glue we lack,
        so it goes last; names whose own zone cut we already know come first,
        since their lookup is short.
        """

        def cost(ns: str) -> tuple[bool, int]:
            inside = is_subdomain(ns, cut.zone)
            known_cut = self.closest_cut(ns) if not inside else None
            depth = label_count(known_cut.zone) if known_cut else 0
            return inside, -depth

        return sorted(cut.glueless(), key=cost)

    async def _resolve_server(
        self, ns: str, zone: str, budget: AnswerBudget, depth: int
    ) -> list[str]:
        """Addresses of a name server found without glue: a sub-lookup through this engine."""
        if depth + 1 > self.limits.max_sublookup_depth:
            self.observer("limit", qname=ns, limit="sub-lookup depth", depth=depth + 1)
            budget.limits_hit.append("sub-lookup depth")
            return []
        addresses: list[str] = []
        for qtype in (RRType.A, RRType.AAAA) if self.ipv6 else (RRType.A,):
            key = (name_key(ns), qtype)
            if key in budget.in_progress:
                self.observer(
                    "limit", qname=ns, limit="delegation loop", zone=zone, depth=depth + 1
                )
                budget.limits_hit.append("delegation loop")
                return []
            budget.in_progress.add(key)
            self.observer(
                "sublookup", depth=depth + 1, qname=ns, qtype=RRType.text(qtype), zone=zone
            )
            try:
                result = await self._lookup(ns, qtype, budget, depth + 1)
            finally:
                budget.in_progress.discard(key)
            found = [rr.rdata.address for rr in result.answer if isinstance(rr.rdata, A | AAAA)]
            self.observer(
                "sublookup_done", depth=depth + 1, qname=ns, qtype=RRType.text(qtype),
                rcode=Rcode.text(result.rcode), addresses=found,
            )  # fmt: skip
            addresses += found
        return addresses

    async def _exchange(
        self,
        cut: ZoneCut,
        server: str,
        address: str,
        name: str,
        qtype: int,
        budget: AnswerBudget,
        depth: int,
    ) -> Classified | ExchangeFailure | None:
        """One query to one server: the classified reply, or why to try the next server."""
        budget.spend_query()
        where = (depth, cut.zone, server, address, name, qtype)
        try:
            reply = await self.network.exchange(
                address, name, qtype, self.selection.timeout(address)
            )
        except ExchangeFailed as error:
            self.selection.record_failure(address)
            if self.report_hops:
                self._report_hop(where, outcome=error.failure.value, rtt_ms=None)
            return error.failure
        self.selection.record_success(address, reply.rtt)
        step = classify(reply.message, name, qtype, cut.zone)
        if self.report_hops or step.kind == Kind.LAME:
            self._report_hop(where, outcome=Kind(step.kind).name.lower(),
                             rtt_ms=round(reply.rtt * 1000, 1), tcp=reply.tcp,
                             **_details(step))  # fmt: skip
        if step.kind == Kind.LAME:
            # Lame for this zone only (Unbound's infra cache keeps lameness per zone too).
            self.selection.mark_lame(address, cut.zone)
            return None
        self._store(step, qtype)
        return step

    def _report_hop(self, where: tuple[int, str, str, str, str, int], **fields: object) -> None:
        depth, zone, server, address, name, qtype = where
        self.observer("hop", depth=depth, zone=zone, server=server, address=address,
                      qname=name, qtype=RRType.text(qtype), **fields)  # fmt: skip

    def _store(self, step: Classified, qtype: int) -> None:
        """Cache what a usable reply taught us (already scrubbed by classify)."""
        cache = self.cache
        trust = Trust.AUTHORITATIVE if step.authoritative else Trust.ANSWER
        for rrset in _rrsets(step.records):
            cache.store_rrset(rrset, trust)
        if step.kind == Kind.NXDOMAIN:
            cache.store_negative(step.name, NXDOMAIN_TYPE, step.soa)
        elif step.kind == Kind.NODATA:
            cache.store_negative(step.name, qtype, step.soa)
        elif step.referral is not None:
            cache.store_rrset(step.referral.ns_records, Trust.REFERRAL)
            for rrset in _rrsets(step.referral.glue):
                cache.store_rrset(rrset, Trust.GLUE)


def _rrsets(records: list[ResourceRecord]) -> list[list[ResourceRecord]]:
    groups: dict[tuple[str, int], list[ResourceRecord]] = {}
    for rr in records:
        groups.setdefault((name_key(rr.name), rr.rrtype), []).append(rr)
    return list(groups.values())


def _details(step: Classified) -> dict[str, object]:
    """The part of a hop event that says what came back."""
    if step.referral is not None:
        glued = {name_key(rr.name) for rr in step.referral.glue}
        return {
            "referral": step.referral.zone,
            "ns": step.referral.nameservers,
            "glue": [ns for ns in step.referral.nameservers if name_key(ns) in glued],
        }
    if step.kind == Kind.LAME:
        return {"reason": step.reason}
    details: dict[str, object] = {"records": [rr.to_text() for rr in step.records]}
    if step.kind == Kind.CNAME:
        details["target"] = step.name
    return details
