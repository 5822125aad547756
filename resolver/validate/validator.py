"""DNSSEC validation of classified replies (RFC 4033, 4034, 4035, 5155; RFC 6840).

The step between "reply classified" and "records cached": :meth:`Validator.judge`
looks at what a reply (or data recalled from the cache) says and answers with
a :class:`Verdict` (secure, insecure or bogus, with the reason and the RFC 8914
INFO-CODE for a bogus one), or with what it still needs to know first:

- :class:`NeedKeys`: the validated DNSKEY RRset of a signer zone;
- :class:`NeedDS`: whether a zone has a DS RRset at its parent (is it signed?).

The lookup then runs a sub-lookup for ``zone DNSKEY`` or ``zone DS`` (they are
visible steps of the plan, counted in the question's budget) and asks again; the
lookup knows only the :class:`~resolver.iterate.judge.Judge` protocol, which this
class implements.
Those sub-lookups are judged the same way, so the chain of trust is built from
the trust anchor down, zone by zone, only as far as an answer needs it; the
:class:`~resolver.validate.trust.TrustCache` remembers each zone's state.

What is judged: every RRset of an answer (its RRSIGs checked with the signer's
keys; one expanded from a wildcard also needs the proof that the name itself
does not exist), the SOA and NSEC/NSEC3 records of a negative answer and the
proof they make (NXDOMAIN, NODATA, no DS).  Unsigned data below a secure zone
is bogus; below a zone proved insecure (no DS at its parent) it is insecure;
outside every trust anchor it is not validated at all.  Unsupported algorithms
make data insecure, not bogus (RFC 8624).  Referrals are not judged: their DS
RRset or its NSEC proof is cached unchecked and judged when the child's trust
is needed.
"""

from __future__ import annotations

from collections.abc import Callable

from resolver.cache.records import Security
from resolver.dnssec import (
    DenialReason,
    DenialResult,
    DenialStatus,
    KeyStatus,
    SigStatus,
    TrustAnchors,
    prove_no_ds,
    prove_nodata,
    prove_nxdomain,
    prove_wildcard_answer,
    validate_dnskeys,
    verify_rrset,
)
from resolver.dnssec.budget import MAX_NSEC3_RECORDS, MAX_SIGNATURES_PER_RRSET, ValidationBudget
from resolver.iterate.answer import Answer
from resolver.iterate.classify import Classified, Kind, synthesised
from resolver.iterate.judge import Judgement, NeedDS, NeedKeys, Verdict
from resolver.iterate.remember import rrsets
from resolver.validate.aggressive import AggressiveNsec
from resolver.validate.learn import learn
from resolver.validate.sentinel import sentinel
from resolver.validate.trust import INSECURE_TTL, TrustCache
from resolver.wire import ResourceRecord, RRType
from resolver.wire.dnssec_rdata import RRSIG
from resolver.wire.ede import EdeCode
from resolver.wire.names import is_subdomain, name_key

# RFC 8914 section 4 INFO-CODEs for what went wrong.
INFO_CODES = {
    SigStatus.EXPIRED: EdeCode.SIGNATURE_EXPIRED,
    SigStatus.NOT_YET_VALID: EdeCode.SIGNATURE_NOT_YET_VALID,
    SigStatus.NO_MATCHING_KEY: EdeCode.DNSKEY_MISSING,
    SigStatus.NO_SIGNATURE: EdeCode.RRSIGS_MISSING,
}


SECURE = Verdict(Security.SECURE)
INSECURE = Verdict(Security.INSECURE)


def bogus(reason: str, info_code: EdeCode = EdeCode.DNSSEC_BOGUS) -> Verdict:
    return Verdict(Security.BOGUS, reason, info_code)


def too_much_work(what: str, budget: ValidationBudget | None) -> Verdict:
    """Bogus, and final: the question spent its validation budget (or one RRset its share)."""
    spent = budget.exhausted if budget is not None and budget.exhausted else ""
    spent = spent or f"more than {MAX_SIGNATURES_PER_RRSET} signature checks for one RRset"
    verdict = bogus(f"{what}: {spent} (validation work is bounded: CVE-2023-50387, 50868)")
    verdict.final = True
    return verdict


class Validator:
    """The judge of a validating engine (:class:`resolver.iterate.judge.Judge`): the chain
    of trust it builds (:class:`TrustCache`), the ranges of RFC 8198 beside it."""

    enabled = True

    def __init__(
        self, trust: TrustCache, clock: Callable[[], float], aggressive: bool = True
    ) -> None:
        self.trust = trust
        self.clock = clock
        # RFC 8198: the NSEC/NSEC3 ranges of secure proofs, answering questions that fall
        # in them (on by default, as in Unbound and Knot Resolver; None: off).
        self.aggressive: AggressiveNsec | None = AggressiveNsec(clock) if aggressive else None

    def reconfigure(self, *, aggressive: bool | None = None) -> None:
        """Aggressive use of NSEC (RFC 8198) turned on (an empty index) or off."""
        if aggressive is not None and aggressive != (self.aggressive is not None):
            self.aggressive = AggressiveNsec(self.clock) if aggressive else None

    def set_anchors(self, anchors: TrustAnchors) -> None:
        """New trust anchors (RFC 5011): what the old ones' keys proved is judged anew."""
        self.trust.set_anchors(anchors)

    def learn(self, zone: str, rrtype: int, answer: Answer | None) -> None:
        learn(self.trust, zone, rrtype, answer)

    def answered(self, qname: str, qtype: int, answer: Answer) -> Answer:
        return sentinel(qname, qtype, answer, self.trust.anchors)

    def flush(self, zone: str | None = None) -> None:
        """The chain of trust and the RFC 8198 ranges at and below ``zone`` (None: all)
        forgotten: they are judged afresh from the data fetched again."""
        if zone is None:
            self.trust.clear()
            if self.aggressive is not None:
                self.aggressive.clear()
            return
        self.trust.forget(zone)
        if self.aggressive is not None:
            self.aggressive.forget(zone)

    def judge(
        self,
        step: Classified,
        qname: str,
        qtype: int,
        zone: str,
        budget: ValidationBudget | None = None,
    ) -> Judgement:
        """What ``step`` (a reply to (qname, qtype) from a server of ``zone``) is worth;
        ``budget`` bounds the cryptographic work (one per client question)."""
        if self.trust.anchor_above(step.name) is None and self.trust.anchor_above(qname) is None:
            return INSECURE  # no trust anchor above it: nothing to validate against
        trust = self.trust
        if trust.negative and (trust.negative_anchor(step.name) or trust.negative_anchor(qname)):
            return INSECURE  # RFC 7646: an operator's negative trust anchor
        sigs = step.sigs or []
        worst = SECURE
        records = [rr for rr in step.records if rr.rrtype != RRType.RRSIG]
        dnames = [rr for rr in records if rr.rrtype == RRType.DNAME]
        if dnames:  # synthesised CNAMEs are unsigned: the DNAME's signature speaks for them
            records = [rr for rr in records if not synthesised(rr, dnames)]
        secure: list[list[ResourceRecord]] = []
        for rrset in rrsets(records):
            judged = self._rrset(rrset, sigs, zone, step, qtype, budget)
            if not isinstance(judged, Verdict):
                return judged
            if judged.security == Security.BOGUS:
                judged.secure = secure
                return judged
            if judged.security == Security.SECURE:
                secure.append(rrset)
            worst = _worse(worst, judged)
        if step.kind in (Kind.NXDOMAIN, Kind.NODATA):
            judged = self._denial(step, qtype, zone, budget)
            if not isinstance(judged, Verdict) or judged.security == Security.BOGUS:
                return judged
            worst = _worse(worst, judged)
        return worst

    def synthesise(
        self, name: str, qtype: int, budget: ValidationBudget | None = None
    ) -> Classified | None:
        """RFC 8198: an answer made from validated NSEC/NSEC3 ranges, if they cover it
        (never under a negative trust anchor, where nothing is secure: RFC 7646)."""
        if self.aggressive is None or (self.trust.negative and self.trust.negative_anchor(name)):
            return None
        return self.aggressive.synthesise(name, qtype, budget)

    # ------------------------------------------------------------ one RRset

    def _rrset(
        self,
        rrset: list[ResourceRecord],
        sigs: list[ResourceRecord],
        zone: str,
        step: Classified,
        qtype: int,
        budget: ValidationBudget | None = None,
    ) -> Judgement:
        owner, rrtype = rrset[0].name, rrset[0].rrtype
        covering = [
            sig for sig in sigs
            if name_key(sig.name) == name_key(owner)
            and isinstance(sig.rdata, RRSIG) and sig.rdata.type_covered == rrtype
        ]  # fmt: skip
        if rrtype == RRType.DNSKEY and qtype == RRType.DNSKEY:
            return self._dnskeys(owner, rrset, covering, budget)
        if not covering:
            return self._unsigned(owner, zone)
        signer = _signer(covering, owner, zone)
        if signer is None:
            return bogus(f"{owner} {RRType.text(rrtype)}: no RRSIG from {zone} or a zone "
                         f"between it and the name")  # fmt: skip
        known = self._signer_state(signer, zone)
        if not isinstance(known, Verdict):
            return known
        entry = self.trust.get(signer)
        if known.security != Security.SECURE or entry is None:
            return known
        if entry.keys is None:
            return NeedKeys(signer)
        checked = verify_rrset(rrset, covering, entry.keys, int(self.clock()), budget=budget)
        name = f"{owner} {RRType.text(rrtype)}"
        if checked.status == SigStatus.UNSUPPORTED_ALGORITHM:
            # The zone's keys validated with an algorithm we support: an RRset signed only
            # with others lost its signatures on the way (RFC 6840 5.11: a downgrade).
            return bogus(f"{name}: signed only with algorithms not supported, in a zone "
                         f"signed with one that is", EdeCode.RRSIGS_MISSING)  # fmt: skip
        if checked.status == SigStatus.TOO_MUCH_WORK:
            return too_much_work(name, budget)
        if not checked.valid:
            return bogus(f"{name}: {checked.status.value}",
                         INFO_CODES.get(checked.status, EdeCode.DNSSEC_BOGUS))  # fmt: skip
        if checked.wildcard is not None and checked.rrsig is not None:
            expanded = self._wildcard(owner, checked.rrsig.labels, step, signer, zone, budget)
            if expanded.security != Security.SECURE:
                return expanded
            if self.aggressive is not None:  # RFC 8198 section 5.3: expand it again later
                self.aggressive.learn_wildcard(checked.wildcard, rrset, covering,
                                               checked.ttl or 0)  # fmt: skip
        if rrtype == RRType.DS:
            self.trust.secure_ds(owner, rrset, checked.ttl or 0)
        return Verdict(Security.SECURE, ttl=checked.ttl)

    def _signer_state(self, signer: str, zone: str) -> Judgement:
        """Whether ``signer`` may sign data that came from the zone cut ``zone``, and how
        far the chain of trust reaches it (RFC 4035 section 5.3.1: the signer is the zone
        that holds the data).  A signer below the cut must be proved a zone first: its DS
        is asked for (NeedDS), which the parent's signed answer settles."""
        if zone and not is_subdomain(signer, zone):
            return bogus(f"signed by {signer}, above the zone {zone} the data came from")
        if not zone or name_key(signer) == name_key(zone) or self.trust.get(signer):
            return self._state(signer)
        why = self.trust.not_a_zone_reason(signer)
        if why is not None:
            return bogus(f"signed by {signer}, which is no zone: {why}")
        above = self.trust.closest(signer)
        if above is None:
            return INSECURE
        if above.security != Security.SECURE:
            return Verdict(above.security, above.reason, above.info_code)
        return NeedDS(signer)

    def _state(self, zone: str) -> Judgement:
        """How far the chain of trust reaches ``zone``: SECURE (known, keys maybe not yet
        fetched), INSECURE, BOGUS, or NeedKeys when only a zone above it is known."""
        entry = self.trust.get(zone)
        if entry is not None:
            return Verdict(entry.security, entry.reason, entry.info_code)
        why = self.trust.not_a_zone_reason(zone)
        if why is not None:
            return bogus(f"{zone} has keys, and is no zone: {why}")
        above = self.trust.closest(zone)
        if above is None:
            return INSECURE
        if above.security != Security.SECURE:
            return Verdict(above.security, above.reason, above.info_code)
        return NeedKeys(zone)

    def _unsigned(self, owner: str, zone: str) -> Judgement:
        """Data without an RRSIG: fine below an insecure zone, bogus in a signed one."""
        deepest = self.trust.closest(owner)
        if deepest is None:
            return INSECURE
        if deepest.security != Security.SECURE:
            return Verdict(deepest.security, deepest.reason, deepest.info_code)
        below = is_subdomain(zone, deepest.zone) and name_key(zone) != name_key(deepest.zone)
        if below and self.trust.not_a_zone_reason(zone) is None:
            return NeedDS(zone)  # is the zone that gave it signed at all?
        return bogus(f"{owner}: no RRSIG in the signed zone {deepest.zone}", EdeCode.RRSIGS_MISSING)

    def _dnskeys(
        self,
        zone: str,
        keys: list[ResourceRecord],
        sigs: list[ResourceRecord],
        budget: ValidationBudget | None = None,
    ) -> Judgement:
        """A zone's DNSKEY RRset, checked against its DS records or trust anchor."""
        entry = self.trust.get(zone)
        if entry is None:
            state = self._state(zone)
            return NeedDS(zone) if isinstance(state, NeedKeys) else state
        if entry.security != Security.SECURE:
            return Verdict(entry.security, entry.reason, entry.info_code)
        verdict = validate_dnskeys(zone, keys, sigs, entry.ds, int(self.clock()), budget=budget)
        if verdict.reason == SigStatus.TOO_MUCH_WORK:
            return too_much_work(f"{zone} DNSKEY", budget)
        if verdict.status == KeyStatus.INSECURE:
            self.trust.insecure(zone, INSECURE_TTL, "no supported DS algorithm or digest")
            return INSECURE
        if verdict.status == KeyStatus.BOGUS:
            # Not written to the trust cache: another server may give good keys.  If none
            # does, the lookup that fetched them marks the zone bogus (see learn).
            reason = verdict.reason or SigStatus.NO_MATCHING_KEY
            return bogus(
                f"{zone} DNSKEY: {reason.value}", INFO_CODES.get(reason, EdeCode.DNSSEC_BOGUS)
            )
        ttl = verdict.verification.ttl if verdict.verification else None
        self.trust.secure_keys(zone, list(verdict.keys), ttl or min(k.ttl for k in keys))
        return Verdict(Security.SECURE, ttl=ttl)

    # ------------------------------------------------------------ denial of existence

    def _denial(
        self, step: Classified, qtype: int, zone: str, budget: ValidationBudget | None = None
    ) -> Judgement:
        """The SOA and NSEC/NSEC3 records of a negative answer, and what they prove."""
        sigs = step.sigs or []
        soa_judged: Judgement = SECURE
        if step.soa is not None:
            soa_judged = self._rrset([step.soa], sigs, zone, step, qtype, budget)
            if not isinstance(soa_judged, Verdict) or soa_judged.security != Security.SECURE:
                return soa_judged
        records = [rr for rr in step.proof or [] if rr.rrtype != RRType.RRSIG]
        if not records:
            if step.soa is None:
                return self._unsigned(step.name, zone)  # no SOA, no proof: signed at all?
            return bogus(f"{step.name}: no NSEC or NSEC3 proof", EdeCode.NSEC_MISSING)
        if _too_many_nsec3(records):  # checked before any signature (CVE-2023-50868)
            return too_much_work(f"{step.name}: {len(records)} proof records", budget)
        all_sigs = sigs + list(step.proof or [])
        signers = set()
        for rrset in rrsets(records):
            judged = self._rrset(rrset, all_sigs, zone, step, qtype, budget)
            if not isinstance(judged, Verdict) or judged.security != Security.SECURE:
                return judged
            signers.add(name_key(_signer_of(rrset, all_sigs, zone) or zone))
        signer = signers.pop() if len(signers) == 1 else ""
        if not signer or (step.soa is not None and signer != name_key(step.soa.name)):
            return bogus(f"{step.name}: denial signed by another zone than its SOA's",
                         EdeCode.NSEC_MISSING)  # fmt: skip
        result = self._prove(step, qtype, records, signer, budget)
        if result.proved and self.aggressive is not None:  # RFC 8198: secure ranges only
            self.aggressive.learn_denial(signer, records, all_sigs, step.soa)
        return _proved(result, step.name, budget)

    def _prove(
        self,
        step: Classified,
        qtype: int,
        records: list[ResourceRecord],
        zone: str,
        budget: ValidationBudget | None = None,
    ) -> DenialResult:
        if step.kind == Kind.NXDOMAIN:
            return prove_nxdomain(step.name, records, zone, budget=budget)
        if qtype == RRType.DS:
            # A delegation without DS, or no delegation at all (an empty non-terminal,
            # a name with other data): either way there is no DS (RFC 4035 section 5.4).
            # Which one it is matters for the chain of trust only (see learn).
            no_ds = prove_no_ds(step.name, records, zone, budget=budget)
            if no_ds.status == DenialStatus.PROVED or no_ds.insecure:
                return no_ds
        return prove_nodata(step.name, qtype, records, zone, budget=budget)

    def _wildcard(
        self,
        owner: str,
        labels: int,
        step: Classified,
        signer: str,
        zone: str,
        budget: ValidationBudget | None = None,
    ) -> Verdict:
        """An answer expanded from a wildcard: the name itself must not exist (RFC 4035
        section 5.3.4), proved by NSEC/NSEC3 records of the same zone."""
        sigs = list(step.sigs or []) + list(step.proof or [])
        records = [rr for rr in step.proof or [] if rr.rrtype != RRType.RRSIG]
        if _too_many_nsec3(records):
            return too_much_work(f"{owner}: {len(records)} proof records", budget)
        for rrset in rrsets(records):
            judged = self._rrset(rrset, sigs, zone, step, 0, budget)
            if not isinstance(judged, Verdict) or judged.security != Security.SECURE:
                return bogus(f"{owner}: wildcard proof not validated", EdeCode.NSEC_MISSING)
            if name_key(_signer_of(rrset, sigs, zone) or "") != name_key(signer):
                return bogus(f"{owner}: wildcard proof from another zone", EdeCode.NSEC_MISSING)
        result = prove_wildcard_answer(owner, labels, records, signer, budget=budget)
        if result.proved and self.aggressive is not None:
            self.aggressive.learn_denial(signer, records, sigs, None)
        return _proved(result, owner, budget)


def _too_many_nsec3(records: list[ResourceRecord]) -> bool:
    return sum(1 for rr in records if rr.rrtype == RRType.NSEC3) > MAX_NSEC3_RECORDS


def _proved(result: DenialResult, name: str, budget: ValidationBudget | None = None) -> Verdict:
    if result.status == DenialStatus.PROVED:
        return SECURE
    if result.insecure:
        return INSECURE  # NSEC3 opt-out, or an NSEC3 we may not check (RFC 9276)
    if result.reason == DenialReason.BUDGET:
        return too_much_work(f"{name}: denial ({result.reason.value})", budget)
    return bogus(f"{name}: denial not proved ({result.reason.value})", EdeCode.NSEC_MISSING)


def _signer(covering: list[ResourceRecord], owner: str, zone: str = "") -> str | None:
    """The zone that signed an RRset: an RRSIG's signer, at or above the owner; the zone
    cut ``zone`` itself when an RRSIG names it, else the deepest at or below it (a zone
    the chain of trust must then prove), else any (judged above the cut: bogus)."""
    signers = [
        sig.rdata.signer
        for sig in covering
        if isinstance(sig.rdata, RRSIG) and is_subdomain(owner, sig.rdata.signer)
    ]
    if not signers:
        return None
    if zone:
        if any(name_key(s) == name_key(zone) for s in signers):
            return zone
        below = [s for s in signers if is_subdomain(s, zone)]
        if below:
            return max(below, key=lambda s: len(name_key(s)))
    return signers[0]


def _signer_of(
    rrset: list[ResourceRecord], sigs: list[ResourceRecord], zone: str = ""
) -> str | None:
    owner, rrtype = rrset[0].name, rrset[0].rrtype
    covering = [s for s in sigs if name_key(s.name) == name_key(owner)
                and isinstance(s.rdata, RRSIG) and s.rdata.type_covered == rrtype]  # fmt: skip
    return _signer(covering, owner, zone)


_BADNESS = {Security.SECURE: 0, Security.UNCHECKED: 1, Security.INSECURE: 1, Security.BOGUS: 2}


def _worse(a: Verdict, b: Verdict) -> Verdict:
    """BOGUS beats INSECURE beats SECURE; of two secure parts, the shorter lifetime."""
    rank_a, rank_b = _BADNESS[Security(a.security)], _BADNESS[Security(b.security)]
    if rank_a != rank_b:
        return a if rank_a > rank_b else b
    if a.security == Security.SECURE:
        ttls = [t for t in (a.ttl, b.ttl) if t is not None]
        return Verdict(Security.SECURE, ttl=min(ttls) if ttls else None)
    return a
