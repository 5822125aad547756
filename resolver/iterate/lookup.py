"""One lookup of (name, type) as an explicit state machine: RFC 1034 section 5.3.3, step by step.

A client question is resolved by a plan of lookups (:mod:`resolver.iterate.resolution`):
its own, and the sub-lookups it needs (a name server's address when a
delegation came without glue; the root's NS set when the hints need priming).
A lookup never does I/O: :meth:`Lookup.advance` says what it needs next (an
:class:`Exchange` with one server, or a sub-lookup) and the replies come back
through :meth:`Lookup.take_reply` and :meth:`Lookup.take_sublookup`.

Its states (:class:`Step`):

    CHECK_CACHE  step 1: an answer, a negative answer or a CNAME to follow, from the cache
    FIND_CUT     step 2: the closest known zone cut (priming the root first if needed)
    ASK          step 3: the best untried server of the cut, or a sub-lookup for the
                 address of a name server without glue; when all fail, the cut above
    WAIT_REPLY   an exchange is out; its reply is classified, then judged, cached and acted
                 on (step 4): an answer ends the lookup, a referral moves the cut down, a
                 CNAME goes back to CHECK_CACHE for its target
    JUDGE        DNSSEC validation of a reply or of data recalled from the cache; it may
                 need a zone's DNSKEY or DS RRset first: a sub-lookup (validation.py)
    WAIT_LOOKUP  a sub-lookup is running
    DONE         ``answer`` holds the result

QNAME minimisation (RFC 9156) happens in ASK: a server is asked only for the
next label below its zone (type NS, as Knot Resolver does), until the name is
reached; the replies to those questions steer the walk the same way.
"""

from __future__ import annotations

from resolver.dnssec.budget import ValidationBudget
from resolver.iterate.answer import Answer, FailureKind, servfail
from resolver.iterate.classify import Classified, Kind, Referral, classify, classify_forwarded
from resolver.iterate.events import LimitHit, hop
from resolver.iterate.judge import expanded
from resolver.iterate.judging import Judging
from resolver.iterate.limits import Limit, LimitExceeded, ResolutionBudget
from resolver.iterate.minimise import Minimiser
from resolver.iterate.plan import (
    HELD,
    MOVES,
    Environment,
    Exchange,
    Held,
    ImpossibleStep,
    Pending,
    Purpose,
    Step,
    Waiting,
)
from resolver.iterate.remember import clamped, holds_dname, once, recall
from resolver.iterate.request import Request
from resolver.iterate.servers import ServerRound
from resolver.iterate.zonecut import CutSource, ZoneCut
from resolver.net.contract import ExchangeFailed, Failure, Reply
from resolver.wire import Rcode, ResourceRecord, RRType
from resolver.wire.ede import EdeCode
from resolver.wire.names import ROOT, is_subdomain, name_key, parent
from resolver.wire.rdata import AAAA, A


class Lookup(Judging):
    """The walk for one (name, type), following CNAMEs; see the module docstring."""

    def __init__(
        self,
        name: str,
        qtype: int,
        env: Environment,
        request: Request,
        budget: ResolutionBudget,
        *,
        depth: int = 0,
        purpose: Purpose = Purpose.QUESTION,
        for_zone: str = "",
        glueless_depth: int = 0,
        crypto: ValidationBudget | None = None,
    ) -> None:
        self.qname = name
        self.name = name  # the name being resolved now: the end of the CNAME chain
        self.qtype = qtype
        self.env = env
        self.request = request  # how the question was asked: CD, a prefetch's refresh
        self.budget = budget
        self.depth = depth  # in the plan, for the trace's indentation
        # How many name server address lookups this one is nested in (the bound of
        # max_sublookup_depth: validation and priming sub-lookups do not count).
        self.glueless_depth = glueless_depth
        self.purpose = purpose
        self.for_zone = for_zone  # the zone cut a name server address is wanted for
        self.chain: list[ResourceRecord] = []
        self.chain_proof: list[ResourceRecord] = []  # proofs of wildcard CNAMEs in the chain
        self.seen = {name_key(name)}
        self.cut: ZoneCut | None = None
        self.round: ServerRound | None = None
        self.passed_over: set[str] = set()  # zones found unusable by this lookup
        self.minimiser = Minimiser(env.qname_minimisation, env.limits)
        self.forwarding = True  # False once the forwarders failed and a fallback is allowed
        self.referrals = 0
        self.failures: list[Failure] = []
        self.limits_before = len(budget.limits_hit)
        self.waiting: Waiting | None = None  # the sub-lookup asked for
        self.recursion_lame: tuple[Exchange, Classified] | None = None  # a last resort
        # The cut and server round a referral came from: a referral to a zone none of whose
        # servers can be found sends the walk back to that round's other servers.
        self.referred_by: tuple[ZoneCut, ServerRound] | None = None
        # Priming's answer is used as a referral's is, unjudged (judging it would need ". DNSKEY",
        # which a cold ". DNSKEY" question is itself); a question for it judges it.
        judged = env.judge.enabled
        validating = judged and not request.checking_disabled and purpose is not Purpose.PRIMING
        self._start_judging(validating, crypto, judged)
        self.answer: Answer | None = None
        self.step = Step.CHECK_CACHE
        if purpose is Purpose.PRIMING:
            self._enter(env.finder.hints_cut())  # the cache is what priming replaces

    def _sub_lookup(self, zone: str, rrtype: int, purpose: Purpose) -> Lookup:
        """The DNSKEY or DS lookup a judgement needs (JUDGE: judging.py)."""
        return Lookup(zone, rrtype, self.env, self.request, self.budget, depth=self.depth + 1,
                      purpose=purpose, for_zone=zone, glueless_depth=self.glueless_depth,
                      crypto=self.crypto)  # fmt: skip

    def _move(self, step: Step) -> None:
        """The next step, if the step table allows the move (plan.MOVES)."""
        if (self.step, step) not in MOVES:
            raise ImpossibleStep(f"lookup of {self.name} {self.qtype}: {self.step} -> {step}")
        self.step = step

    # ------------------------------------------------------------ what to do next

    def advance(self) -> Exchange | Lookup | Held | None:
        """Move on until an exchange or a sub-lookup is needed; None once DONE; HELD at the
        first question to a server while the budget holds the walk (the cache step)."""
        while True:
            step = self.step
            if step is Step.CHECK_CACHE:
                self._check_cache()
            elif step is Step.FIND_CUT:
                priming = self._find_cut()
                if priming is not None:
                    return priming
            elif step is Step.ASK:
                if self.budget.holding:
                    return HELD
                action = self._ask()
                if action is not None:
                    return action
            elif step is Step.JUDGE:
                needed = self._judge()
                if needed is not None:
                    return needed
            elif step is Step.DONE:
                return None
            else:
                raise RuntimeError(f"lookup of {self.name} advanced while in {step}")

    def _check_cache(self) -> None:
        for_client = self.purpose is Purpose.QUESTION
        refresh = for_client and self.request.refresh
        step = None if refresh else recall(
            self.env.cache, self.name, self.qtype, self.env.clock(), for_client=for_client
        )  # fmt: skip
        if step is None and self.validating and not refresh:
            step = self.env.judge.synthesise(self.name, self.qtype, self.crypto)  # RFC 8198
        if step is None and self.purpose is Purpose.DS:
            step = self._referral_ds_denial()
        if step is None:
            self._move(Step.FIND_CUT)
            return
        # The zone the data is from, as the walk would find it: for DS, the parent's side.
        zone = self.env.finder.closest(self._target()).zone if self.validating else ""
        self._accept(Pending(step, self.name, self.qtype, zone, False))

    def _referral_ds_denial(self) -> Classified | None:
        """The proof that this zone has no DS, as a referral to it in this question
        carried it (unchecked: judged as the parent's data, like a cached one)."""
        proof = self.budget.ds_denials.get(name_key(self.name))
        if proof is None:
            return None
        step = Classified(Kind.NODATA, [], self.name)
        step.sigs = [rr for rr in proof if rr.rrtype == RRType.RRSIG] or None
        step.proof = list(proof)
        return step

    def _find_cut(self) -> Lookup | None:
        cut = self.env.finder.closest(self._target(), self.passed_over, self.forwarding)
        if cut.source is CutSource.HINTS and self.env.priming and not self.budget.primed:
            # RFC 8109: learn the root's NS set and addresses from the root itself before
            # using the hints, then look at the cache again (it may hold the answer now).
            self.budget.primed = True
            self._move(Step.WAIT_LOOKUP)
            self.waiting = Waiting(Purpose.PRIMING)
            return Lookup(ROOT, RRType.NS, self.env, self.request, self.budget, depth=self.depth,
                          purpose=Purpose.PRIMING, glueless_depth=self.glueless_depth,
                          crypto=self.crypto)  # fmt: skip
        self.referred_by = None
        self._enter(cut)
        return None

    def _target(self) -> str:
        """Where the walk goes: the name, or for DS its parent, since DS records live on
        the parent side of a zone cut (RFC 4035 section 3.1.4.1)."""
        if self.qtype == RRType.DS and self.name != ROOT:
            return parent(self.name)
        return self.name

    def _enter(self, cut: ZoneCut) -> None:
        self.cut = cut
        finder = self.env.finder
        self.round = ServerRound(cut, finder.glueless_order(cut), finder.policy.types)
        self.minimiser.enter(cut)
        self._move(Step.ASK)

    def _ask(self) -> Exchange | Lookup | None:
        cut, servers, env = self.cut, self.round, self.env
        assert cut is not None and servers is not None
        chosen = servers.next_server(env.selection)
        if chosen is not None:
            address, server = chosen
            forwarded = cut.source is CutSource.FORWARD
            if forwarded:  # a forwarder resolves the whole question: nothing to minimise
                qname, qtype, minimised = self.name, self.qtype, False
            else:
                qname, qtype, minimised = self.minimiser.question(self.name, self.qtype,
                                                                  self._target())  # fmt: skip
            limit = env.zone_limit  # a zone's servers asked at most so often (Unbound: ratelimit)
            if limit is not None and not forwarded and not limit.allows(cut.zone, env.clock()):
                self._over_zone_rate(cut.zone)
                return None
            self.budget.spend_query()
            servers.tried.add(address)
            self._move(Step.WAIT_REPLY)
            timeout = env.selection.timeout(address)
            return Exchange(address, server, cut.zone, qname, qtype, timeout, self.depth,
                            minimised, cut.ports.get(address), forwarded, False,
                            env.judge.enabled)  # fmt: skip
        wanted = None
        if self.budget.nxdomain_targets < env.limits.max_nxdomain_targets:
            wanted = servers.next_glueless(env.limits.max_glueless_per_cut)
        elif servers.pending:
            self.budget.note(Limit.NXDOMAIN_TARGETS)
        if wanted is not None:
            self._move(Step.WAIT_LOOKUP)
            ns, rrtype = wanted
            self.waiting = Waiting(Purpose.NS_ADDRESS, ns, rrtype)
            return Lookup(ns, rrtype, env, self.request, self.budget, depth=self.depth + 1,
                          purpose=Purpose.NS_ADDRESS, for_zone=cut.zone,
                          glueless_depth=self.glueless_depth + 1,
                          crypto=self.crypto)  # fmt: skip
        if servers.retry_timeouts():
            return None
        self._cut_failed(cut)
        return None

    def _back_to_referrer(self, cut: ZoneCut) -> bool:
        """The referral just taken leads to a zone whose name servers are all inside it and
        came without glue: nothing but a server that serves the zone can give their
        addresses.  Ask the referring zone's servers not yet asked instead: one of them may
        serve the child too and answer (RFC 1034 section 5.3.3 step 4: a reply that cannot
        be used takes the server off the list, and the walk goes on with the others).
        Bounded by the referring round's servers, each asked once; a delegation that fails
        for another reason (a cycle through other zones, a limit) ends as before."""
        referred_by, self.referred_by = self.referred_by, None
        if referred_by is None or not all(is_subdomain(ns, cut.zone) for ns in cut.nameservers):
            return False
        above, servers = referred_by
        if not servers.untried():
            return False
        self.cut, self.round = above, servers
        self._move(Step.ASK)
        return True

    def _over_zone_rate(self, zone: str) -> None:
        """``zone``'s servers had their queries for this second: nothing is sent and this
        lookup fails; the question, or for a sub-lookup the lookup that needed it (another
        name server, say), goes on from there, as Unbound's ratelimit fails one query."""
        self.budget.note(Limit.ZONE_RATE)
        self.env.observer(LimitHit(self.name, self.qtype, Limit.ZONE_RATE, zone, self.depth))
        self._fail(FailureKind.LIMIT, f"limit: {Limit.ZONE_RATE.value}")

    def _cut_failed(self, cut: ZoneCut) -> None:
        """Every server of the cut failed: try the one above it when the cut was from the
        cache (CutFinder.retry_above), else this is the end."""
        if self.recursion_lame is not None:
            # Every server answered like a recursive resolver: better their data than none.
            exchange, step = self.recursion_lame
            self.recursion_lame = None
            self._take(exchange, step)
            return
        if self.bogus is not None:  # every server that answered gave data that did not validate
            reason, info_code = self.bogus
            self._fail(FailureKind.DNSSEC_BOGUS, reason, info_code)
            return
        asked = bool(self.round and self.round.tried)
        if cut.source is CutSource.REFERRAL and not asked and self._back_to_referrer(cut):
            return
        if self.env.finder.retry_above(cut, asked):
            self.passed_over.add(name_key(cut.zone))
            self._move(Step.FIND_CUT)
            return
        configured = self.env.finder.configured.closest(cut.zone)
        if cut.source is CutSource.FORWARD and configured is not None and configured.fallback:
            self.forwarding = False  # forward-first: resolve it ourselves after all
            self._move(Step.FIND_CUT)
            return
        hit = self.budget.limits_hit[self.limits_before :]
        limits = ", ".join(dict.fromkeys(limit.value for limit in hit))
        why = f" (limit: {limits})" if limits else ""
        network = self.failures and all(
            f in (Failure.UNREACHABLE, Failure.LOCAL_ERROR) for f in self.failures
        )
        kind = FailureKind.NETWORK_ERROR if network else FailureKind.NO_REACHABLE_AUTHORITY
        servers = "forwarder" if cut.source is CutSource.FORWARD else "server"
        self._fail(kind, f"no {servers} of {cut.zone} answered{why}")

    # ------------------------------------------------------------ what came back

    def take_reply(self, exchange: Exchange, outcome: Reply | ExchangeFailed) -> None:
        """Step 4: act on the reply to the exchange this lookup asked for."""
        assert self.step is Step.WAIT_REPLY and self.cut is not None and self.round is not None
        # One measurement per exchange sent: a reply shared with other questions (identical
        # exchanges in flight are sent once) must not count once per question.
        selection = self.env.selection if not exchange.shared else None
        self._move(Step.ASK)
        if isinstance(outcome, ExchangeFailed):
            if selection is not None:
                selection.record_failure(exchange.address)
            self.failures.append(outcome.failure)
            if outcome.failure is Failure.TIMEOUT:
                self.round.timed_out.add(exchange.address)
            if self.env.report_hops:
                self.env.observer(hop(exchange, outcome.failure))
            return
        if selection is not None:
            selection.record_success(exchange.address, outcome.rtt)
        # Names of forward and stub zones below the server's are not its to speak for.
        fences = self.env.finder.configured.fences(exchange.zone, exchange.qname)
        meaning = classify_forwarded if exchange.forwarded else classify
        step = meaning(outcome.message, exchange.qname, exchange.qtype, exchange.zone, fences)
        if self.env.report_hops or step.kind == Kind.LAME:
            self.env.observer(hop(exchange, step, outcome))
        if exchange.minimised:
            self._take_minimised(exchange, step)
        else:
            self._take(exchange, step)

    def _take(self, exchange: Exchange, step: Classified) -> None:
        if step.kind == Kind.LAME:
            # Lame for this zone only (Unbound's infra cache keeps lameness per zone too).
            self.env.selection.mark_lame(exchange.address, exchange.zone)
            if step.fallback is not None and self.recursion_lame is None:
                self.recursion_lame = (exchange, step.fallback)
            return
        self._accept(Pending(step, exchange.qname, exchange.qtype, exchange.zone, True,
                             exchange.address))  # fmt: skip

    def _act(self, pending: Pending) -> None:
        step = pending.step
        if pending.fresh:
            self.env.remember(step, pending.qtype, self.cut)
        if step.referral is not None:
            self._descend(step.referral)
            return
        self._note_security(step)
        if step.kind == Kind.CNAME:
            self._follow(step)
        else:
            self._finish(step)

    def _take_minimised(self, exchange: Exchange, step: Classified) -> None:
        """A reply to a minimised question (RFC 9156 section 2.3 for the fallbacks)."""
        assert self.round is not None
        kind = step.kind
        if step.referral is not None:
            self.env.remember(step, exchange.qtype, self.cut)
            self._descend(step.referral)
        elif (
            kind == Kind.ANSWER
            and step.authoritative
            and all(rr.rrtype == RRType.NS for rr in step.records)
        ):
            # The child's own NS records, authoritatively: a zone cut on the same servers.
            self.env.remember(step, exchange.qtype, self.cut)
            self._descend(Referral(exchange.qname, step.records, step.glue or []))
        elif kind in (Kind.NODATA, Kind.ANSWER):
            # The name exists (perhaps an empty non-terminal) and is no cut (NS data
            # without AA proves none either): ask one label more of the same servers;
            # unless its NSEC says it holds a DNAME, which redirects every name below.
            if kind == Kind.NODATA:
                self.env.remember(step, exchange.qtype, self.cut)
            if holds_dname(step, exchange.qname):
                self.minimiser.stop()
            else:
                self.minimiser.deepen(exchange.qname)
            self.round.tried.discard(exchange.address)
            self.round.next_question()
        else:
            # NXDOMAIN (servers that deny empty non-terminals), a CNAME, an error: stop
            # minimising and ask the same servers the whole question, as Unbound's
            # relaxed mode and Knot Resolver do.
            self.minimiser.stop()
            self.round.tried.discard(exchange.address)
            if kind == Kind.LAME:
                # No answer, so nothing moved on; but the question is new: servers that
                # timed out on the minimised one get the whole one, with its own retry.
                self.round.new_question_after_error()
            else:
                self.round.next_question()

    def _descend(self, referral: Referral) -> None:
        self.referrals += 1
        if self.referrals >= self.env.limits.max_referrals:
            raise LimitExceeded(Limit.REFERRAL_DEPTH)
        if referral.proof and not any(rr.rrtype == RRType.DS for rr in referral.ds or ()):
            self.budget.ds_denials[name_key(referral.zone)] = referral.proof
        above = (self.cut, self.round) if self.cut is not None and self.round else None
        self._enter(self.env.finder.from_referral(referral, self.cut))
        self.referred_by = above

    def take_sublookup(self, sub: Lookup | None) -> None:
        """A sub-lookup ended (None: a limit kept it from starting)."""
        assert self.step is Step.WAIT_LOOKUP and self.waiting is not None
        waiting, self.waiting = self.waiting, None
        if waiting.purpose is Purpose.PRIMING:  # the cache may answer now
            self._move(Step.CHECK_CACHE)
        elif waiting.purpose is Purpose.NS_ADDRESS:
            self._move(Step.ASK)
            self._take_address(waiting.name, waiting.rrtype, sub)
        else:
            self._move(Step.JUDGE)
            if sub is None:  # refused: the same lookup is under way above this one
                self.unavailable.add((name_key(waiting.name), waiting.rrtype))
            else:
                self.env.judge.learn(waiting.name, waiting.rrtype, sub.answer)

    def _take_address(self, ns: str, rrtype: int, sub: Lookup | None) -> None:
        assert self.cut is not None and self.round is not None
        finder = self.env.finder
        found = []
        if sub is not None and sub.answer is not None:
            found = [rr.rdata.address for rr in sub.answer.answer if isinstance(rr.rdata, A | AAAA)]
        usable = [a for a in found if finder.policy.usable(a)]
        self.cut.add_addresses(ns, usable + finder.addresses_of(ns, self.cut.zone))
        nxdomain = sub is not None and sub.answer is not None and sub.answer.rcode == Rcode.NXDOMAIN
        if nxdomain:
            self.budget.nxdomain_targets += 1
        if sub is not None and not nxdomain and not self.cut.addresses.get(name_key(ns)):
            self.round.found_nothing(ns, rrtype)  # no A: AAAA next (NXDOMAIN: no type at all)

    # ------------------------------------------------------------ endings

    def _follow(self, step: Classified) -> None:
        """A CNAME: keep the chain and go back to step 1 for its target."""
        self.chain += step.records
        if step.proof and expanded(step):  # RFC 4035 3.1.3.3: a DO client gets its proof
            self.chain_proof += step.proof
        if len(self.seen) > self.env.limits.max_cname_chain:
            raise LimitExceeded(Limit.CNAME_CHAIN)
        target = step.name
        if name_key(target) in self.seen:
            raise LimitExceeded(Limit.CNAME_LOOP)
        self.seen.add(name_key(target))
        self.name = target
        self.cut = self.round = None
        self.passed_over.clear()
        self.minimiser = Minimiser(self.env.qname_minimisation, self.env.limits)
        self._move(Step.CHECK_CACHE)

    def _finish(self, step: Classified) -> None:
        chain = clamped(self.env.cache, once(self.chain + step.records))
        soa = [step.soa] if step.soa is not None else []
        if step.kind == Kind.NXDOMAIN:
            self.answer = Answer(Rcode.NXDOMAIN, chain, soa)
        elif step.kind == Kind.YXDOMAIN:  # relayed as it came (RFC 6672 section 2.2)
            self.answer = Answer(Rcode.YXDOMAIN, chain, [])
        elif step.kind == Kind.NODATA:
            self.answer = Answer(Rcode.NOERROR, chain, soa)
        else:
            self.answer = Answer(Rcode.NOERROR, chain, [])
        self.answer.security = self.security
        self.answer.sigs, self.answer.proof = self._signatures(chain, step, soa, self.chain_proof)
        self._move(Step.DONE)

    def _fail(self, kind: FailureKind, text: str, info_code: EdeCode | None = None) -> None:
        self.answer = servfail(kind, text, info_code)
        self.answer.answer = list(self.chain)
        self._move(Step.DONE)
