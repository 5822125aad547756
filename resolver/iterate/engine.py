"""The iteration engine: resolves questions by walking down from the closest known zone cut.

This is RFC 1034 section 5.3.3 as Unbound's iterator and Knot Resolver do it.
The walk itself is a state machine without I/O (:mod:`resolver.iterate.lookup`
for one name, :mod:`resolver.iterate.resolution` for the plan of lookups one
question needs); this module drives it: it asks a :class:`Resolution` what to
send, sends it through a :class:`~resolver.net.contract.Network` (the transport,
or canned replies in tests), hands back the reply, and keeps the question
within its time budget.

Local zones (:mod:`resolver.local`: the default zones, hosts files, zone
files) are asked first, by :meth:`IterativeEngine.resolve` and
:meth:`IterativeEngine.answer_from_cache` alike; a CNAME in local data whose
target is outside every local zone is answered with the rest of the chain found
the usual way (by the walk, or in the cache).  The walk does not come back to
local data: a CNAME found upstream that points into a local zone is followed
upstream, as Unbound's iterator does.

With serve-stale (:mod:`resolver.iterate.stale`, RFC 8767), a question whose
servers fail, or do not answer within the client timeout, is answered from the
cache's expired data, and its resolution goes on in the background.

Identical exchanges in flight at the same moment (same server, name and type,
say many questions needing the same TLD's referral) are sent once and shared,
as RFC 5452 section 9.3 asks ("do not have many identical queries
outstanding"); that also makes a cold start prime the root once, not once per
question.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable

from resolver.cache.records import RecordCache, Security
from resolver.iterate.answer import Answer, FailureKind, servfail
from resolver.iterate.classify import Kind
from resolver.iterate.events import LogObserver, Observer, wants_every_hop
from resolver.iterate.forwarding import ConfiguredZones
from resolver.iterate.hints import RootHints
from resolver.iterate.judge import Judge
from resolver.iterate.limits import Limit, Limits
from resolver.iterate.plan import Environment, Exchange
from resolver.iterate.remember import clamped, recall
from resolver.iterate.request import Request
from resolver.iterate.resolution import Resolution
from resolver.iterate.servers import ServerSelection
from resolver.iterate.stale import StalePolicy, StaleState, as_stale, may_replace
from resolver.iterate.zonecut import AddressPolicy, CutFinder
from resolver.iterate.zonelimit import ZoneRateLimit
from resolver.local.zones import LocalAnswer, LocalZones
from resolver.net.contract import ExchangeFailed, Failure, Network, Query, Reply
from resolver.wire import Rcode, ResourceRecord
from resolver.wire.names import name_key

ExchangeKey = tuple[str, int | None, str, int]
TIMEOUT = Failure.TIMEOUT


def hints_on_loopback(hints: RootHints) -> bool:
    """A lab: root servers on loopback addresses, where every server will be."""
    return any(ipaddress.ip_address(address).is_loopback for address in hints.addresses())


class _InFlight:
    """An exchange being sent, and the future that identical ones wait on (made by the
    first of them: most exchanges are never shared)."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: asyncio.Future[Reply | ExchangeFailed] | None = None


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
        addresses: AddressPolicy | None = None,
        qname_minimisation: bool = True,
        zones: ConfiguredZones | None = None,
        local: LocalZones | None = None,
        judge: Judge | None = None,
        priming: bool = True,
        stale: StalePolicy | None = None,
        zone_limit: ZoneRateLimit | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        """``addresses`` says which upstream addresses may be used (default: IPv4, and
        loopback only when the root hints are on loopback, that is, in a lab).  ``local``
        holds the zones answered without asking anyone; a reload replaces the attribute.
        ``judge`` validates (DNSSEC: :func:`resolver.validate.validator`; None: no
        validation).  ``stale``
        turns serve-stale on (None: expired data is never used).  ``zone_limit`` bounds
        the queries a second to any one zone's servers (None: no bound)."""
        self.network = network
        self.local = local or LocalZones()
        self.cache = cache
        self.hints = hints
        self.observer: Observer = observer or LogObserver()
        self.clock = clock
        policy = addresses or AddressPolicy(loopback=hints_on_loopback(hints))
        self.env = Environment(
            cache,
            CutFinder(cache, hints, policy, zones),
            selection or ServerSelection(),
            limits or Limits(),
            self.observer,
            wants_every_hop(self.observer),
            clock,
            qname_minimisation,
            judge,
            priming,
            zone_limit,
            timer,
        )
        self._in_flight: dict[ExchangeKey, _InFlight] = {}
        self.stale = StaleState(stale) if stale is not None else None
        cache.stale_window = stale.window if stale is not None else 0.0
        self._background: set[asyncio.Task[Answer]] = set()  # refreshes behind stale answers

    @property
    def selection(self) -> ServerSelection:
        return self.env.selection

    @property
    def limits(self) -> Limits:
        return self.env.limits

    def reconfigure(self, *, limits: Limits | None = None) -> None:
        """Settings that change while questions are answered; each applies to the
        questions that start from then on."""
        if limits is not None:
            self.env.limits = limits

    @property
    def validating(self) -> bool:
        return self.env.judge.enabled

    @property
    def judge(self) -> Judge:
        return self.env.judge

    async def resolve(
        self, qname: str, qtype: int, *, checking_disabled: bool = False, refresh: bool = False
    ) -> Answer:
        """Resolve (qname, qtype, IN); never raises for DNS reasons: failures are SERVFAIL.

        ``checking_disabled`` (a client's CD=1, RFC 4035 section 3.2.2): the data as it
        comes, not validated, never SERVFAIL for being bogus.  ``refresh`` (a prefetch):
        the question's data is fetched from its servers even if it is cached.
        """
        request = Request(qname, qtype, checking_disabled=checking_disabled, refresh=refresh)
        local = self.local.lookup(qname, qtype) if self.local else None
        if local is None:
            answer = await self._upstream(qname, qtype, request)
            return self.env.judge.answered(qname, qtype, answer)
        if local.follow is None:
            return _local_answer(qname, local)
        rest = await self._upstream(local.follow, qtype, request)
        return _after_local(local, rest)

    async def _upstream(self, qname: str, qtype: int, request: Request) -> Answer:
        """The walk, or stale data when the walk fails or is slow (RFC 8767 section 5)."""
        stale = self.stale
        fallback = None
        if stale is not None and not request.refresh:
            fallback = self._from_cache(qname, qtype, True)
        if stale is None or fallback is None:
            return await self._walk(qname, qtype, request)
        key = (name_key(qname), qtype)
        if stale.failed_lately(key, self.clock()):
            return self._stale(fallback, stale)  # RFC 8767 section 4: no retry for 30 s
        walk = asyncio.ensure_future(self._walk(qname, qtype, request))
        done, _ = await asyncio.wait((walk,), timeout=stale.policy.client_timeout)
        if not done:  # the client gets stale data now; the walk goes on, and refreshes
            self._background.add(walk)
            walk.add_done_callback(lambda task: self._refreshed(task, key))
            return self._stale(fallback, stale)
        answer = walk.result()
        stale.note(key, answer, self.clock())
        return self._stale(fallback, stale) if may_replace(answer) else answer

    def _stale(self, fallback: Answer, stale: StaleState) -> Answer:
        stale.served += 1
        return as_stale(fallback, stale.policy.answer_ttl)

    def _refreshed(self, task: asyncio.Task[Answer], key: tuple[str, int]) -> None:
        """A walk that outlived its client's patience has ended."""
        self._background.discard(task)
        if self.stale is not None and not task.cancelled() and task.exception() is None:
            self.stale.note(key, task.result(), self.clock())

    async def _walk(self, qname: str, qtype: int, request: Request) -> Answer:
        """Resolve by iteration (or forwarding), from the cache or the closest zone cut.

        The time budget is a deadline on the monotonic clock, checked before each
        exchange, and each exchange's timeout is cut to what is left of it: no
        ``asyncio.timeout`` per question (a Timeout object and a timer rescheduled and
        cancelled each time), since every exchange has its own timer already."""
        # Asked per question: a reload may have changed the log level (hop events are
        # built only when an observer wants them).
        self.env.report_hops = wants_every_hop(self.observer)
        resolution = Resolution(qname, qtype, self.env, request)
        budget = resolution.budget
        exchange = resolution.next_exchange()
        while exchange is not None:
            left = budget.left()
            if left <= 0.0:
                break
            capped = exchange.timeout >= left
            if capped:
                exchange.timeout = left
            try:
                outcome = await self._send(exchange, left)
            except TimeoutError:  # waited on another question's exchange past the budget
                break
            if capped and isinstance(outcome, ExchangeFailed) and outcome.failure is TIMEOUT:
                break  # the budget ran out while waiting: no fault of the server's
            resolution.take_reply(exchange, outcome)
            exchange = resolution.next_exchange()
        if exchange is not None:
            resolution.give_up(FailureKind.TIME_BUDGET, Limit.TIME_BUDGET)
        assert resolution.answer is not None
        return resolution.answer

    async def _send(self, exchange: Exchange, left: float) -> Reply | ExchangeFailed:
        """One exchange, shared with any identical one already in flight; ``left`` is
        what remains of the question's time budget (TimeoutError past it, when waiting
        on another question's exchange).

        The common case is alone: no future is made for it, and no failure is built in
        advance; a second identical exchange makes the future it waits on."""
        key = (exchange.address, exchange.port, name_key(exchange.qname), exchange.qtype)
        in_flight = self._in_flight
        sharing = in_flight.get(key)
        if sharing is not None:
            exchange.shared = True
            waiting = sharing.future
            if waiting is None:
                waiting = sharing.future = asyncio.get_running_loop().create_future()
            return await asyncio.wait_for(asyncio.shield(waiting), left)
        sharing = in_flight[key] = _InFlight()
        outcome: Reply | ExchangeFailed | None = None
        try:
            outcome = await self.network.exchange(
                Query(exchange.address, exchange.qname, exchange.qtype, exchange.timeout,
                      exchange.port, exchange.forwarded, exchange.dnssec_ok)
            )  # fmt: skip
        except ExchangeFailed as failed:
            outcome = failed
        finally:
            del in_flight[key]
            if sharing.future is not None:  # others wait: they get what came, or a failure
                if outcome is None:  # cancelled (the question ended): the others go on
                    outcome = ExchangeFailed(Failure.TIMEOUT, exchange.address,
                                             "abandoned by the question that sent it")  # fmt: skip
                sharing.future.set_result(outcome)
        return outcome

    def answer_from_cache(self, qname: str, qtype: int) -> Answer | None:
        """The answer the cache alone gives (CNAMEs followed inside it), or None.

        For queries with RD=0, which never start upstream work.  Local zones answer too.
        """
        local = self.local.lookup(qname, qtype) if self.local else None
        if local is None:
            return self._from_cache(qname, qtype)
        if local.follow is None:
            return _local_answer(qname, local)
        rest = self._from_cache(local.follow, qtype)
        return _after_local(local, rest) if rest is not None else None

    def _from_cache(self, qname: str, qtype: int, stale: bool = False) -> Answer | None:
        """The cache's answer, CNAMEs followed; None if it has none, or bogus data.
        ``stale``: expired data kept for serve-stale counts too."""
        chain: list[ResourceRecord] = []
        sigs: list[ResourceRecord] = []
        security = Security.SECURE
        name = qname
        now = self.clock()
        for _ in range(self.limits.max_cname_chain + 1):
            step = recall(self.cache, name, qtype, now, stale=stale)
            if step is None or step.security == Security.BOGUS:
                return None  # bogus data is answered by a walk (SERVFAIL), never as such
            chain += step.records
            sigs += step.sigs or ()
            security = min(security, Security(step.security))
            if step.kind != Kind.CNAME:
                soa = [step.soa] if step.soa is not None else []
                rcode = Rcode.NXDOMAIN if step.kind == Kind.NXDOMAIN else Rcode.NOERROR
                answer = Answer(rcode, clamped(self.cache, chain), soa)
                answer.from_cache = True
                answer.security = security
                answer.sigs = sigs or None
                answer.proof = step.proof
                return answer
            name = step.name
        return None


def _local_answer(qname: str, local: LocalAnswer) -> Answer:
    if local.rcode == Rcode.SERVFAIL:
        return servfail(FailureKind.LIMIT, f"CNAME loop in local data at {qname}")
    answer = Answer(local.rcode, local.answer, local.authority)
    answer.from_cache = True  # no upstream work
    return answer


def _after_local(local: LocalAnswer, rest: Answer) -> Answer:
    """A CNAME chain from local data, completed by what the walk or the cache found."""
    if rest.rcode == Rcode.SERVFAIL:
        return rest
    rest.answer = local.answer + rest.answer
    return rest
