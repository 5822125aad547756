"""The response policy as a step of the pipeline: before resolving, and on the answer.

The service (:class:`~resolver.serve.listener.ResolverService`) asks one thing of
policy on the fast path, and the pipeline (:mod:`resolver.iterate.pipeline`, placed by
:mod:`resolver.serve.steps`) two:

- :meth:`PolicyStep.early` on the fast path, with the wire cache's key: whether a
  rule matches the query name or the client.  Such a query is not answered from
  the wire cache, nor is its answer kept there (the policy decides it each time);
  every other query costs one dictionary lookup per zone here (more with
  wildcards: one per label).
- :meth:`PolicyStep.before`, the first before-step: the client-IP or QNAME rule
  that applies (:meth:`resolver.policy.Policy.before`), answered at once (the
  transaction is decided), unless an earlier zone has rules on answers, which then
  wait for the answer.
- :meth:`PolicyStep.after`, the last after-step, on the answer: QNAME rules on the
  names of its CNAME chain, response-IP rules on its addresses, NSDNAME and NSIP rules on the name
  servers of the zones it came from (:func:`servers_of`: read from the record
  cache once the resolution is done, the NS RRsets of the query name's zones and
  of every CNAME target's, root excepted, and their addresses).  An answer a rule
  touched is not kept in the wire cache.

What an action answers (RPZ section 4): NXDOMAIN and NODATA with the policy
zone's SOA in the authority section (its TTL the SOA's minimum at most; a
blocklist has none); local data with the query name as owner (a CNAME among it
is followed by resolving its target, whose answer the policy looks at again, as
at a CNAME (a rule there wins, the redirect kept before it; a second redirect is
followed without policy: no loops);
DROP nothing; TCP-only a truncated answer over UDP, the answer as it is over
TCP; PASSTHRU the answer as it is, no later rule tried.  A rule on a CNAME
target keeps the chain up to that target.  Every answer a rule changed carries
an Extended DNS Error (15 Blocked, 16 Censored or 17 Filtered, as the zone says)
naming the zone, never AD; each applied rule is one ``policy`` log line (when
the zone logs) and one count in ``policy_actions{zone,action}``.  The resolver's own
questions (a redirect's target, say) are not looked at: only clients' are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import structlog
from recordclass import dataobject

from resolver.cache.records import RecordCache
from resolver.iterate.answer import Answer
from resolver.iterate.engine import IterativeEngine
from resolver.iterate.pipeline import Transaction
from resolver.iterate.request import Transport
from resolver.policy import Action, Match, Policy, name_wire
from resolver.policy.decide import Servers
from resolver.serve.responses import make_response
from resolver.serve.stats import ServiceStats
from resolver.wire import Message, Rcode, ResourceRecord, RRType
from resolver.wire.names import BadName, ancestors, name_key
from resolver.wire.raw import key_name_wire
from resolver.wire.rdata import AAAA, CNAME, NS, A

log = structlog.get_logger("resolver.serve.policy")

MAX_NAME = 255


class Ruled(dataobject, fast_new=True):
    """What policy made of a query so far."""

    final: bool  # the response is decided: ``response``, or nothing at all (DROP)
    response: Message | None = None
    waiting: Match | None = None  # applied on the answer unless an earlier zone's rule wins
    stop: bool = False  # PASSTHRU (or TCP-only over TCP): no rule looked at any more


PASSED = Ruled(False, None, None, True)


class Notifier(Protocol):
    """Who answers a NOTIFY for the policy's sources (resolver.ops: the feeds)."""

    def notify(self, query: Message, client: str) -> Message: ...


class PolicyStep:
    """The policy of one service, and the answers its rules give."""

    def __init__(
        self,
        policy: Policy,
        stats: ServiceStats,
        engine: IterativeEngine,
        records: RecordCache | None,
    ) -> None:
        self.policy = policy
        self.stats = stats
        self.engine = engine
        self.records = records
        self.feeds: Notifier | None = None  # the sources and their loading, set by them

    def install(self, policy: Policy) -> None:
        """The rules in force from now on (the sources loaded again)."""
        self.policy = policy

    # ---------------------------------------------------------------- the service's calls

    def notify(self, query: Message, client: str) -> Message:
        """The answer to a NOTIFY (RFC 1996), from the sources (REFUSED without them)."""
        if self.feeds is None:
            return make_response(query, Rcode.REFUSED)
        return self.feeds.notify(query, client)

    def early(self, key: bytes, client: str) -> bool:
        """Whether a rule matches the name of a wire-cache key, or the client."""
        return self.policy.early(key_name_wire(key), client)

    async def before(self, tx: Transaction) -> bool:
        """The pipeline's first step: a rule on the query name or the client decides the
        response now, or waits for the answer (kept in the transaction's notes)."""
        query = tx.query
        if query is None:  # the resolver's own question: no client, no policy
            return False
        ruled = await self._before(query, tx)
        if ruled is None:
            return False
        if ruled.final:
            tx.decided, tx.response = True, ruled.response
            return True
        if tx.notes is None:
            tx.notes = {}
        tx.notes[self] = ruled
        return False

    async def after(self, tx: Transaction) -> None:
        """The pipeline's last step: rules on the answer (and one that waited for it)."""
        query, answer = tx.query, tx.answer
        if query is None or answer is None:
            return
        ruled = tx.notes.get(self) if tx.notes is not None else None
        after = await self._after(query, tx, answer, ruled if isinstance(ruled, Ruled) else None)
        if after is not None and after.final:
            tx.decided, tx.response = True, after.response

    async def _before(self, query: Message, tx: Transaction) -> Ruled | None:
        policy = self.policy
        if not policy.slots:
            return None
        question = query.question[0]
        try:
            wire = name_wire(question.name)
        except BadName:
            return None
        match, disabled = policy.before(wire, question.name, tx.request.client)
        self._disabled(disabled, query, tx)
        if match is None:
            return None
        tx.cacheable = False  # decided by policy each time: never from, nor into, the wire cache
        if policy.waits(match):
            return Ruled(False, None, match)
        return await self._apply(match, query, tx, None)

    async def _after(
        self, query: Message, tx: Transaction, resolution: Answer, ruled: Ruled | None
    ) -> Ruled | None:
        policy = self.policy
        if (ruled is not None and ruled.stop) or not policy.slots:
            return None
        waiting = ruled.waiting if ruled is not None else None
        chain = _chain(resolution.answer)
        if chain and policy.qname:
            # Not kept in the wire cache: a QNAME rule added later for a name of its chain
            # would not be seen there (the fast path looks at the query name only).
            tx.cacheable = False
        if policy.on_answers or (chain and policy.qname):
            addresses = [rr.rdata.address for rr in resolution.answer
                         if isinstance(rr.rdata, (A, AAAA))]  # fmt: skip
            names = [query.question[0].name, *(target for target, _ in chain)]
            limit = waiting.position if waiting is not None else None
            match, disabled = policy.after(chain, addresses, lambda: self.servers(names), limit)
            self._disabled(disabled, query, tx)
            if match is not None:
                waiting = match
        if waiting is None:
            return None
        tx.cacheable = False
        return await self._apply(waiting, query, tx, resolution)

    def servers(self, names: Iterable[str]) -> Servers:
        """The name servers of the zones of ``names`` (NSDNAME and NSIP triggers)."""
        return servers_of(self.records, names) if self.records is not None else []

    # ---------------------------------------------------------------- actions

    async def _apply(
        self,
        match: Match,
        query: Message,
        tx: Transaction,
        resolution: Answer | None,
        depth: int = 0,
    ) -> Ruled:
        action = match.rule.action
        self._applied(match, action.value, query, tx)
        datagram = tx.request.transport is Transport.UDP
        if action is Action.PASSTHRU or (action is Action.TCP_ONLY and not datagram):
            return PASSED
        if action is Action.DROP:
            return Ruled(True)
        qname = query.question[0].name
        name = match.name or qname
        prefix = (
            _prefix(resolution.answer, name) if resolution is not None and name != qname else []
        )
        if action is Action.TCP_ONLY:
            response = self._response(match, query, Rcode.NOERROR, [], [])
            response.header.tc = 1
        elif action is Action.LOCAL_DATA:
            local = await self._local(match, query, tx, name, prefix, depth)
            if isinstance(local, Ruled):
                return local
            response = local
        else:
            rcode = Rcode.NXDOMAIN if action is Action.NXDOMAIN else Rcode.NOERROR
            response = self._response(match, query, rcode, prefix, self._soa(match))
        return Ruled(True, response)

    async def _local(
        self,
        match: Match,
        query: Message,
        tx: Transaction,
        name: str,
        prefix: list[ResourceRecord],
        depth: int,
    ) -> Message | Ruled:
        """Local data for ``name``: the records of the type asked (all for ANY); a CNAME,
        followed; none of the type: NODATA."""
        qtype = query.question[0].rrtype
        records = match.rule.records
        cname = next((rr for rr in records if isinstance(rr.rdata, CNAME)), None)
        if cname is None:
            answer = [_owned(rr, name) for rr in records if qtype in (rr.rrtype, RRType.ANY)]
            authority = [] if answer else self._soa(match)
            return self._response(match, query, Rcode.NOERROR, prefix + answer, authority)
        assert isinstance(cname.rdata, CNAME)
        target = cname.rdata.target
        if target.startswith("*."):  # a wildcard's redirect: the query name before the rest
            target = name + target[2:] if name != "." else target[2:]
            if len(target) > MAX_NAME:
                return self._response(match, query, Rcode.NXDOMAIN, prefix, self._soa(match))
        redirect = ResourceRecord(name, RRType.CNAME, cname.rrclass, cname.ttl, CNAME(target))
        if qtype in (RRType.CNAME, RRType.ANY):
            return self._response(match, query, Rcode.NOERROR, [*prefix, redirect], [])
        followed = await self.engine.resolve(target, qtype, checking_disabled=bool(query.header.cd))
        answer = [*prefix, redirect, *followed.answer]
        if depth == 0:  # the redirect's target is looked at as a CNAME target would be
            ruled = await self._followed(query, tx, target, answer, followed)
            if ruled is not None:
                return ruled
        return self._response(match, query, followed.rcode, answer, followed.authority)

    async def _followed(
        self,
        query: Message,
        tx: Transaction,
        target: str,
        answer: list[ResourceRecord],
        followed: Answer,
    ) -> Ruled | None:
        """A rule on the answer a redirect led to, applied (the redirect kept before it)."""
        try:
            chain = [(target, name_wire(target)), *_chain(followed.answer)]
        except BadName:
            return None
        addresses = [rr.rdata.address for rr in followed.answer if isinstance(rr.rdata, (A, AAAA))]
        names = [name for name, _ in chain]
        match, disabled = self.policy.after(chain, addresses, lambda: self.servers(names))
        self._disabled(disabled, query, tx)
        if match is None:
            return None
        match.name = match.name or target  # a rule on the target's answer: the redirect stays
        combined = Answer(followed.rcode, answer, followed.authority)
        ruled = await self._apply(match, query, tx, combined, depth=1)
        return ruled if ruled.final else None  # PASSTHRU there: the redirect's answer as it is

    @staticmethod
    def _soa(match: Match) -> list[ResourceRecord]:
        return list(match.slot.zone.negative_soa)

    @staticmethod
    def _response(
        match: Match,
        query: Message,
        rcode: int,
        answer: list[ResourceRecord],
        authority: list[ResourceRecord],
    ) -> Message:
        code = match.slot.options.ede
        error = (code, f"response policy {match.slot.name}") if code is not None else None
        return make_response(query, rcode, answer, authority, error=error)

    # ---------------------------------------------------------------- log and counters

    def _applied(self, match: Match, action: str, query: Message, tx: Transaction) -> None:
        slot = match.slot
        key = (slot.name, action)
        counts = self.stats.policy_actions
        counts[key] = counts.get(key, 0) + 1
        if slot.options.log:
            question = query.question[0]
            log.info("policy", zone=slot.name, trigger=match.trigger.value, action=action,
                     matched=match.matched, client=tx.request.client, name=question.name,
                     type=RRType.text(question.rrtype),
                     transport=tx.request.transport.value)  # fmt: skip

    def _disabled(self, matches: list[Match], query: Message, tx: Transaction) -> None:
        """A DISABLED zone's matches: logged and counted, each time (so never cached)."""
        for match in matches:
            tx.cacheable = False
            self._applied(match, "disabled", query, tx)


def _chain(records: list[ResourceRecord]) -> list[tuple[str, bytes]]:
    """The names an answer's CNAMEs lead to, in order, with their keys."""
    chain = []
    for rr in records:
        if isinstance(rr.rdata, CNAME):
            try:
                chain.append((rr.rdata.target, name_wire(rr.rdata.target)))
            except BadName:
                continue
    return chain


def _prefix(records: list[ResourceRecord], target: str) -> list[ResourceRecord]:
    """The answer's records up to the CNAME whose target is ``target``, that one included."""
    key = name_key(target)
    for i, rr in enumerate(records):
        if isinstance(rr.rdata, CNAME) and name_key(rr.rdata.target) == key:
            return records[: i + 1]
    return []


def _owned(rr: ResourceRecord, name: str) -> ResourceRecord:
    return ResourceRecord(name, rr.rrtype, rr.rrclass, rr.ttl, rr.rdata)


def servers_of(records: RecordCache, names: Iterable[str]) -> Servers:
    """The name servers the record cache knows for the zones of ``names`` (each name and
    the names above it, the root excepted: every name would have its servers), with
    their addresses, the child's and the parent's glue."""
    zones: dict[str, str] = {}
    for name in names:
        for zone in ancestors(name)[:-1]:
            zones.setdefault(name_key(zone), zone)
    found: Servers = []
    seen: set[str] = set()
    for zone in zones.values():
        rrset = records.get_rrset(zone, RRType.NS)
        if rrset is None:
            continue
        for rdata in rrset.rdatas:
            if not isinstance(rdata, NS) or name_key(rdata.target) in seen:
                continue
            seen.add(name_key(rdata.target))
            addresses = [
                data.address
                for rrtype in (RRType.A, RRType.AAAA)
                for cached in (records.get_rrset(rdata.target, rrtype),
                               records.get_glue(rdata.target, rrtype))
                if cached is not None
                for data in cached.rdatas
                if isinstance(data, (A, AAAA))
            ]  # fmt: skip
            try:
                found.append((rdata.target, name_wire(rdata.target), addresses))
            except BadName:
                continue
    return found
