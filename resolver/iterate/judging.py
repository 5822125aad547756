"""A lookup's side of DNSSEC validation: the JUDGE step, talking to the engine's judge.

A :class:`~resolver.iterate.lookup.Lookup` hands every usable reply (and data recalled
unchecked from the cache) here before acting on it: :meth:`Judging._accept` decides
whether it must be judged, :meth:`Judging._judge` asks the
:class:`~resolver.iterate.judge.Judge` and starts the DNSKEY or DS sub-lookup it needs,
:meth:`Judging._bogus` tries another server or a fresh fetch when data does not
validate, and :meth:`Judging._note_security` keeps the answer's state and RRSIGs.  The
judge itself (a validator, or nothing when validation is off) is given to the engine;
this module knows only its protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from resolver.cache.records import Security
from resolver.dnssec.budget import ValidationBudget
from resolver.iterate.answer import FailureKind
from resolver.iterate.classify import Classified, Kind
from resolver.iterate.events import Judged
from resolver.iterate.judge import NeedDS, NeedKeys, Verdict
from resolver.iterate.plan import Environment, Pending, Purpose, Step, Waiting
from resolver.iterate.remember import covering, once
from resolver.iterate.zonecut import ZoneCut
from resolver.wire import ResourceRecord, RRType
from resolver.wire.ede import EdeCode
from resolver.wire.names import name_key

if TYPE_CHECKING:
    from resolver.iterate.lookup import Lookup


class Judging:
    """The validation state of one lookup and its JUDGE step (a part of :class:`Lookup`)."""

    env: Environment
    name: str
    qtype: int
    depth: int
    purpose: Purpose
    for_zone: str
    cut: ZoneCut | None
    step: Step
    waiting: Waiting | None

    def _start_judging(
        self, validating: bool, crypto: ValidationBudget | None, judged: bool
    ) -> None:
        """``validating``: replies are judged (not for CD=1, nor priming's); ``judged``:
        validation is on at all (RRSIGs are kept even for CD=1)."""
        self.validating = validating
        self.judged = judged
        self.pending: Pending | None = None  # what JUDGE judges
        # The question's validation work, shared with its sub-lookups (dnssec.budget).
        self.crypto = crypto if crypto is not None or not validating else ValidationBudget()
        self.security = Security.SECURE if validating else Security.UNCHECKED
        self.sigs: list[ResourceRecord] = []  # RRSIGs of the chain, for DO=1 clients
        self.bogus: tuple[str, EdeCode | None] | None = None  # why a server's data was bogus
        self.refetched = False  # bogus data from the cache sent us to the servers once
        # (zone, DNSKEY or DS) whose sub-lookup was refused because a lookup above this
        # one is fetching it (a loop): nothing is learnt about the zone from that.
        self.unavailable: set[tuple[str, int]] = set()

    # What the lookup does with a verdict (lookup.py).
    def _move(self, step: Step) -> None:
        raise NotImplementedError

    def _act(self, pending: Pending) -> None:
        raise NotImplementedError

    def _fail(self, kind: FailureKind, text: str, info_code: EdeCode | None = None) -> None:
        raise NotImplementedError

    def _sub_lookup(self, zone: str, rrtype: int, purpose: Purpose) -> Lookup:
        raise NotImplementedError

    # ------------------------------------------------------------ the step

    def _accept(self, pending: Pending) -> None:
        """A usable reply or recalled data: judged first when it must be (DNSSEC), then
        cached and acted on.  Referrals are not judged (their DS waits in the cache)."""
        step = pending.step
        if self.validating and step.referral is None:
            if step.security == Security.UNCHECKED:
                self.pending = pending
                self._move(Step.JUDGE)
                return
            if step.security == Security.BOGUS and not self._walk_may_use(step):
                # judged bogus a moment ago: not again
                self._fail(FailureKind.DNSSEC_BOGUS, f"{step.name}: cached as bogus (DNSSEC)")
                return
        self._act(pending)

    def _judge(self) -> Lookup | None:
        """JUDGE: validate what waits, or start the sub-lookup that validation needs."""
        pending = self.pending
        assert pending is not None
        judged = self.env.judge.judge(pending.step, pending.qname, pending.qtype, pending.zone,
                                      self.crypto)  # fmt: skip
        if isinstance(judged, NeedKeys | NeedDS):
            purpose = Purpose.KEYS if isinstance(judged, NeedKeys) else Purpose.DS
            rrtype = RRType.DNSKEY if purpose is Purpose.KEYS else RRType.DS
            if (name_key(judged.zone), rrtype) in self.unavailable:
                self._judged_in_a_loop(pending, judged.zone, rrtype)
                return None
            self.waiting = Waiting(purpose, judged.zone, rrtype)
            self._move(Step.WAIT_LOOKUP)
            return self._sub_lookup(judged.zone, rrtype, purpose)
        step = pending.step
        if (
            judged.security == Security.BOGUS
            and step.kind in (Kind.NXDOMAIN, Kind.NODATA)
            and step.records
        ):
            # A chain whose end the same reply denies, with a denial that does not hold:
            # follow the chain instead, and let the target's own answer decide.
            step.kind, step.soa, step.proof = Kind.CNAME, None, None
            return None
        self.pending = None
        step.security = judged.security
        if self.env.report_hops:  # resolver-trace shows each judgement
            self.env.observer(Judged(self.depth, step.name or pending.qname, pending.qtype,
                                     pending.zone, judged.security, judged.reason))  # fmt: skip
        if judged.security == Security.BOGUS:
            self._bogus(pending, judged)
            return None
        if not pending.fresh:  # recalled unchecked: keep what the judgement found
            self.env.remember(step, pending.qtype)
        self._act(pending)
        return None

    def _judged_in_a_loop(self, pending: Pending, zone: str, rrtype: int) -> None:
        """The judgement needs ``zone``'s keys (or DS), which a lookup above this one is
        fetching: say the zone's DNSKEY lookup needs the address of a name server inside
        the zone.  That says nothing about the zone (the lookup above judges its keys), so
        nothing is learnt from it (it once left the zone bogus for a minute, every
        question below it SERVFAIL: seed 3's hierarchy 42018744449162).  A name server's
        address goes on unchecked for the walk, whose answers are validated anyway
        (:meth:`_walk_may_use`), and stays unchecked in the cache, judged when a client
        asks for it; anything else fails this lookup only."""
        self.pending = None
        if self._walk_may_use(pending.step):
            self._act(pending)
            return
        self._fail(FailureKind.DNSSEC_BOGUS,
                   f"{zone} {RRType.text(rrtype)}: already being looked up for this question "
                   f"(a loop in the chain of trust)", EdeCode.DNSKEY_MISSING)  # fmt: skip

    def _walk_may_use(self, step: Classified) -> bool:
        """A name server's address that did not validate may still take the walk to the
        server, when what that server says will be validated anyway (its zone has a DS:
        CutFinder.answers_validated), so a forged address buys nothing but a failure
        (Unbound asks for such addresses with CD=1, iterator.c generate_target_query).
        The address stays bogus in the cache: no client gets it as an answer, and no
        cut of a zone without a DS is built from it (zonecut.py)."""
        if self.purpose is not Purpose.NS_ADDRESS or step.kind != Kind.ANSWER:
            return False
        return self.env.finder.answers_validated(self.for_zone)

    def _bogus(self, pending: Pending, judged: Verdict) -> None:
        """Data that did not validate: another server, a fresh fetch, SERVFAIL, or (a name
        server's address, :meth:`_walk_may_use`) used for the walk all the same."""
        if self._walk_may_use(pending.step):
            self._act(pending)  # cached as bogus, answered to the lookup that needs it
            return
        if pending.fresh:
            for rrset in judged.secure or []:  # its parts that did validate
                self.env.remember_secure(rrset, pending.step)
        if judged.final:  # the question's validation budget is spent: asking again pays again
            self._fail(FailureKind.DNSSEC_BOGUS, judged.reason, judged.info_code)
        elif pending.fresh and self.cut is not None:
            # Another server of the zone may have good data (a broken or spoofing one
            # gave this): it is lame for the zone now, as Unbound blacklists it.
            self.env.selection.mark_lame(pending.address, pending.zone)
            self.bogus = (judged.reason, judged.info_code)
            self._move(Step.ASK)
        elif not pending.fresh and not self.refetched:
            # Cached unchecked (say, a referral's DS from one bad server): ask afresh.
            self.refetched = True
            self._move(Step.FIND_CUT)
        else:
            self._fail(FailureKind.DNSSEC_BOGUS, judged.reason, judged.info_code)

    def _note_security(self, step: Classified) -> None:
        """The answer is as secure as its least secure part; keep the RRSIGs for DO=1
        (validation on: servers were asked with DO=1, even for CD=1)."""
        if not self.judged:
            return
        if not self.validating:
            pass  # checking disabled: the answer stays unchecked
        elif step.security == Security.BOGUS or self.security == Security.BOGUS:
            self.security = Security.BOGUS
        elif step.security != Security.SECURE:
            self.security = Security.INSECURE
        self.sigs += step.sigs or []

    def _signatures(
        self,
        chain: list[ResourceRecord],
        step: Classified,
        soa: list[ResourceRecord],
        chain_proof: list[ResourceRecord],
    ) -> tuple[list[ResourceRecord] | None, list[ResourceRecord] | None]:
        """The RRSIGs and the proof an answer carries for DO=1 clients: none when
        validation is off.  Negative answers carry their proof; a wildcard expansion its
        proof that the name itself does not exist (RFC 4035 section 3.1.3.3)."""
        if not self.judged:
            return None, None
        proof = chain_proof + list(step.proof or []) + covering(step.sigs or [], soa)
        return covering(self.sigs, chain), once(proof) if chain_proof else proof
