"""The iteration engine: answers questions through its pipeline, walking down from the
closest known zone cut when nothing before the walk answers.

This is RFC 1034 section 5.3.3 as Unbound's iterator and Knot Resolver do it.
Every question runs through one :class:`~resolver.iterate.pipeline.Pipeline`: local
zones, the record cache and whatever the data path adds before the walk, the walk,
and the steps after it (:mod:`resolver.iterate.steps` holds the engine's own).  The
walk itself is a state machine without I/O (:mod:`resolver.iterate.lookup` for one
name, :mod:`resolver.iterate.resolution` for the plan of lookups one question needs);
this module drives it: it asks a :class:`Resolution` what to send, sends it through a
:class:`~resolver.net.contract.Network` (the transport, or canned replies in tests),
hands back the reply, and keeps the question within its budget.

Clients asking the same question while it is walked share one walk (at most
``max_in_flight`` distinct questions at once; beyond, SERVFAIL), and identical
exchanges in flight at the same moment (same server, name and type, say many
questions needing the same TLD's referral) are sent once and shared, as RFC 5452
section 9.3 asks ("do not have many identical queries outstanding"); that also makes
a cold start prime the root once, not once per question.

With serve-stale (:mod:`resolver.iterate.stale`, RFC 8767), a question whose
servers fail, or do not answer within the client timeout, is answered from the
cache's expired data, and its walk goes on in the background.

What the engine derives from the cache (zone cuts, unusable delegations, the judge's
chain of trust and ranges, serve-stale's failures) goes with it: :meth:`flush` drops
them all, with the record cache's and the wire cache's entries; settings that a reload
changes go through :meth:`reconfigure`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable

import structlog

from resolver.cache.answers import AnswerCache
from resolver.cache.records import RecordCache, Security
from resolver.iterate.answer import Answer, FailureKind, servfail
from resolver.iterate.classify import Kind
from resolver.iterate.events import LogObserver, Observer, wants_every_hop
from resolver.iterate.forwarding import ConfiguredZones
from resolver.iterate.hints import RootHints
from resolver.iterate.judge import Judge
from resolver.iterate.limits import Limit, Limits
from resolver.iterate.pipeline import Pipeline, Transaction, transaction
from resolver.iterate.plan import Environment, Exchange
from resolver.iterate.remember import clamped, recall
from resolver.iterate.request import Request
from resolver.iterate.resolution import Resolution
from resolver.iterate.servers import ServerSelection
from resolver.iterate.stale import StalePolicy, StaleState, as_stale, may_replace
from resolver.iterate.steps import LastWord, LocalData
from resolver.iterate.steps import RecordCache as RecordCacheStep
from resolver.iterate.zonecut import AddressPolicy, CutFinder
from resolver.iterate.zonelimit import ZoneRateLimit
from resolver.local.zones import LocalZones
from resolver.net.contract import ExchangeFailed, Failure, Network, Query, Reply
from resolver.wire import Rcode, ResourceRecord
from resolver.wire.names import name_key

log = structlog.get_logger("resolver.iterate.engine")

ExchangeKey = tuple[str, int | None, str, int]
TIMEOUT = Failure.TIMEOUT
MAX_IN_FLIGHT = 4096  # distinct client questions walked at once; beyond: SERVFAIL


class Keep:
    """``reconfigure``'s default for a setting whose None means off: leave it as it is."""


KEEP = Keep()


def hints_on_loopback(hints: RootHints) -> bool:
    """A lab: root servers on loopback addresses, where every server will be."""
    return any(ipaddress.ip_address(address).is_loopback for address in hints.addresses())


class _Walk:
    """A client question being walked, by the task of the client that asked it first, and
    the future that later askers of the same question wait on (made by the first of them:
    most questions are asked once at a time)."""

    __slots__ = ("deadline", "future", "handed_over")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline  # the walk's time budget, kept if it is handed over
        self.future: asyncio.Future[Answer] | None = None
        self.handed_over = False  # at most once: a handed-over walk ends with the service


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
        holds the zones answered without asking anyone.  ``judge`` validates (DNSSEC:
        :func:`resolver.validate.validator`; None: no validation).  ``stale`` turns
        serve-stale on (None: expired data is never used).  ``zone_limit`` bounds the
        queries a second to any one zone's servers (None: no bound).  ``clock`` is the
        time of TTLs (Unix seconds), ``timer`` the monotonic one of budgets."""
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
        self.answers: AnswerCache | None = None  # the wire cache fed from our answers
        self.max_in_flight = MAX_IN_FLIGHT
        self._questions: dict[tuple[str, int, bool], _Walk] = {}
        self._in_flight: dict[ExchangeKey, _InFlight] = {}
        self.stale = StaleState(stale) if stale is not None else None
        cache.stale_window = stale.window if stale is not None else 0.0
        # Walks that outlived their client: refreshes behind stale answers, walks handed over
        self._background: set[asyncio.Task[Answer]] = set()
        local_data = LocalData(self)
        self._core = (local_data, RecordCacheStep(self), LastWord(self))
        self.pipeline = self.core()

    # ---------------------------------------------------------------- what it is made of

    @property
    def selection(self) -> ServerSelection:
        return self.env.selection

    @property
    def limits(self) -> Limits:
        return self.env.limits

    @property
    def judge(self) -> Judge:
        return self.env.judge

    @property
    def validating(self) -> bool:
        return self.env.judge.enabled

    @property
    def in_flight(self) -> int:
        """Distinct client questions being walked now."""
        return len(self._questions)

    def busy(self) -> bool:
        """Too busy for background work (prefetch): half the in-flight bound taken."""
        return len(self._questions) >= self.max_in_flight // 2

    def core(self) -> Pipeline:
        """The engine's own pipeline: local zones and the record cache before the walk,
        the local chain and the judge's last word after it."""
        local, cache, last_word = self._core
        return Pipeline((local, cache), self, (local, last_word))

    def attach(self, answers: AnswerCache) -> None:
        """The wire cache kept from our answers: it holds the record cache's RRsets for
        questions asked once (RecordCache.release), and is flushed with it."""
        self.answers = answers
        self.cache.attach(answers)

    def reconfigure(
        self,
        *,
        limits: Limits | None = None,
        local: LocalZones | None = None,
        zones: ConfiguredZones | None = None,
        qname_minimisation: bool | None = None,
        zone_limit: ZoneRateLimit | Keep | None = KEEP,
        max_in_flight: int | None = None,
        pipeline: Pipeline | None = None,
        network: Network | None = None,
        ttl_bounds: tuple[int, int] | None = None,
        cache_size: int | None = None,
    ) -> None:
        """Settings that change while questions are answered (a reload); each applies to
        the questions that start from then on.  New forward or stub zones drop the zone
        cuts learnt from the cache (what was learnt below them is the caller's to
        flush: :meth:`flush`)."""
        env = self.env
        if limits is not None:
            env.limits = limits
        if local is not None:
            self.local = local
        if zones is not None:
            env.finder.configured = zones
            env.finder.forget()
        if qname_minimisation is not None:
            env.qname_minimisation = qname_minimisation
        if not isinstance(zone_limit, Keep):
            env.zone_limit = zone_limit  # its counts start again
        if max_in_flight is not None:
            self.max_in_flight = max_in_flight
        if pipeline is not None:
            self.pipeline = pipeline
        if network is not None:
            self.network = network
        answers = self.answers
        if ttl_bounds is not None and ttl_bounds != (self.cache.min_ttl, self.cache.max_ttl):
            self.cache.min_ttl, self.cache.max_ttl = ttl_bounds  # for data stored from now on
            if answers is not None:
                answers.clear()  # its TTLs were clamped with the old bounds
        if cache_size is not None:  # shrinking evicts the least recently used
            self.cache.resize(cache_size)
            if answers is not None:
                answers.resize(cache_size)

    def flush(self, name: str | None = None, *, below: bool = True) -> tuple[int, int]:
        """Drop what is known of ``name`` (``below``: and every name under it; None:
        everything) from every table derived from the servers' data: the record cache,
        the wire cache, the zone cuts and unusable delegations, the judge's chain of trust
        and RFC 8198 ranges, serve-stale's failures.  Returns (records, answers) removed."""
        answers = self.answers
        if name is None:
            records, removed = len(self.cache), len(answers) if answers is not None else 0
            self.cache.clear()
            if answers is not None:
                answers.clear()
        elif below:
            records = self.cache.flush_zone(name)
            removed = answers.flush_zone(name) if answers is not None else 0
        else:
            records = self.cache.flush_name(name)
            removed = answers.flush_name(name) if answers is not None else 0
        self.env.finder.forget()
        self.env.judge.flush(name)
        if self.stale is not None:
            self.stale.forget(name)
        return records, removed

    def flush_negative(self) -> tuple[int, int]:
        """Drop every NXDOMAIN, NODATA and SERVFAIL entry; (records, answers) removed."""
        answers = self.answers
        return self.cache.flush_negative(), answers.flush_negative() if answers else 0

    def cut_zone(self, name: str) -> str:
        """The zone of the closest zone cut known for ``name`` (the cache's, the
        configuration's, or the root)."""
        return self.env.finder.closest(name).zone

    # ---------------------------------------------------------------- answering

    async def answer(self, tx: Transaction) -> Transaction:
        """Run a question through the pipeline (see :mod:`resolver.iterate.pipeline`)."""
        return await self.pipeline.run(tx)

    async def resolve(
        self, qname: str, qtype: int, *, checking_disabled: bool = False, refresh: bool = False
    ) -> Answer:
        """Resolve (qname, qtype, IN), a question of the resolver's own; never raises for
        DNS reasons: failures are SERVFAIL.

        ``checking_disabled`` (as a client's CD=1, RFC 4035 section 3.2.2): the data as
        it comes, not validated, never SERVFAIL for being bogus.  ``refresh`` (a
        prefetch): the question's data is fetched from its servers even if it is cached.
        """
        request = Request(qname, qtype, checking_disabled=checking_disabled, refresh=refresh)
        tx = await self.answer(transaction(request))
        assert tx.answer is not None  # RD=1, and no client step decides for us
        return tx.answer

    def resolution(self, qname: str, request: Request) -> Resolution:
        """A fresh plan for (qname, the request's type), as the record cache step makes it."""
        # Asked per question: a reload may have changed the log level (hop events are
        # built only when an observer wants them).
        self.env.report_hops = wants_every_hop(self.observer)
        return Resolution(qname, request.qtype, self.env, request)

    def walking(self, tx: Transaction) -> bool:
        """Whether this client question is being walked already (the next one joins it)."""
        request = tx.request
        return (name_key(tx.name), request.qtype, request.checking_disabled) in self._questions

    async def walk(self, tx: Transaction) -> Answer:
        """The walk for a question nothing before it answered: one walk for every client
        asking the same question at once (the first starts it, ``tx.walked``).

        The first asker walks in its own task (no task per walk): later askers wait on a
        future it answers (shielded: one that goes away cancels nothing of the others').
        If the first asker is cancelled while others wait, its walk is handed to a task of
        its own, which starts again from what the cache learnt, within the same deadline."""
        request = tx.request
        if request.internal:
            return await self._stale_or_walk(tx)
        key = (name_key(tx.name), request.qtype, request.checking_disabled)
        questions = self._questions
        walk = questions.get(key)
        if walk is not None:
            future = walk.future
            if future is None:
                future = walk.future = asyncio.get_running_loop().create_future()
            return await asyncio.shield(future)
        if len(questions) >= self.max_in_flight:
            log.warning("overloaded", in_flight=len(questions))
            return servfail(FailureKind.OVERLOADED, "too many questions in flight")
        walk = questions[key] = _Walk(self.env.timer() + self.env.limits.time_budget)
        tx.walked = True
        return await self._shared_walk(key, walk, tx)

    async def _shared_walk(
        self, key: tuple[str, int, bool], walk: _Walk, tx: Transaction
    ) -> Answer:
        """Walk for everyone waiting on ``walk``, then tell them (and forget it)."""
        try:
            answer = await self._stale_or_walk(tx)
        except asyncio.CancelledError:
            self._questions.pop(key, None)
            future = walk.future
            if future is not None and not future.done():
                if walk.handed_over:  # the service is stopping: as a cancelled task would
                    future.cancel()
                else:  # its client went away, others wait: the walk goes on for them
                    self._hand_over(key, walk, tx)
            raise
        except BaseException as error:  # a bug: every asker gets it (the listener's SERVFAIL)
            self._questions.pop(key, None)
            if walk.future is not None and not walk.future.done():
                walk.future.set_exception(error)
            raise
        self._questions.pop(key, None)
        if walk.future is not None and not walk.future.done():
            walk.future.set_result(answer)
        return answer

    def _hand_over(self, key: tuple[str, int, bool], walk: _Walk, tx: Transaction) -> None:
        """The first asker of a shared walk was cancelled (its client went away): a task
        walks again for the others, from what the cache holds now, and new askers join it;
        the deadline stays the first walk's."""
        resolution = self.resolution(tx.name, tx.request)
        resolution.budget.deadline = walk.deadline
        tx.resolution = resolution
        walk.handed_over = True
        self._questions[key] = walk
        task = asyncio.ensure_future(self._shared_walk(key, walk, tx))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _stale_or_walk(self, tx: Transaction) -> Answer:
        """The walk, or stale data when the walk fails or is slow (RFC 8767 section 5)."""
        stale = self.stale
        request = tx.request
        fallback = None
        if stale is not None and not request.refresh:
            fallback = self.from_cache(tx.name, request.qtype, True)
        if stale is None or fallback is None:
            return await self._walk(tx)
        key = (name_key(tx.name), request.qtype)
        if stale.failed_lately(key, self.clock()):
            return self._stale(fallback, stale)  # RFC 8767 section 4: no retry for 30 s
        walk = asyncio.ensure_future(self._walk(tx))
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

    async def _walk(self, tx: Transaction) -> Answer:
        """Resolve by iteration (or forwarding), from where the record cache step left the
        plan (the closest zone cut, its first question to a server).

        The time budget is a deadline on the monotonic clock, checked before each
        exchange, and each exchange's timeout is cut to what is left of it: no
        ``asyncio.timeout`` per question (a Timeout object and a timer rescheduled and
        cancelled each time), since every exchange has its own timer already."""
        resolution = tx.resolution or self.resolution(tx.name, tx.request)
        tx.resolution = None
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

    def from_cache(self, qname: str, qtype: int, stale: bool = False) -> Answer | None:
        """The cache's answer as it is, CNAMEs followed inside it; None if it has none, or
        bogus data (RD=0 questions; serve-stale's fallback).  ``stale``: expired data
        kept for serve-stale counts too."""
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
