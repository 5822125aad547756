"""What the chain of trust learns from a DS or DNSKEY sub-lookup (the validator asked for it).

After ``zone DS`` or ``zone DNSKEY`` was looked up for a judgement, :func:`learn` makes
sure the :class:`~resolver.validate.trust.TrustCache` moved on, so the judgement waiting
for it does not ask again: a validated DS RRset or DNSKEY RRset is taken in; a lookup
that failed leaves the zone bogus; a validated DS denial makes the zone insecure only
when its NSEC/NSEC3 shows a delegation without DS (the NS bit set, the SOA and DS bits
clear) or an opt-out span (RFC 6840 sections 4.1 and 4.4).  A denial at a name that is
no delegation proves nothing about a zone there: the name is remembered as no zone cut,
and any RRSIG naming it as signer is bogus (hole 1 of issue 20).
"""

from __future__ import annotations

from resolver.cache.records import Security
from resolver.dnssec import DenialStatus, prove_no_ds
from resolver.iterate.answer import Answer
from resolver.validate.trust import INSECURE_TTL, TrustCache
from resolver.wire import ResourceRecord, RRType
from resolver.wire.dnssec_rdata import RRSIG
from resolver.wire.ede import EdeCode

PROOF_TYPES = (RRType.NSEC, RRType.NSEC3)


def learn(trust: TrustCache, zone: str, rrtype: int, answer: Answer | None) -> None:
    """After a sub-lookup for ``zone`` DNSKEY or DS: make sure the trust cache moved on,
    so the judgement waiting for it does not ask again.  Data that came validated from
    the record cache is taken in; a lookup that failed leaves the zone bogus."""
    entry = trust.get(zone)
    records = [rr for rr in answer.answer if rr.rrtype == rrtype] if answer else []
    secure = answer is not None and answer.security == Security.SECURE
    if rrtype == RRType.DS:
        if entry is not None and entry.zone == zone and entry.expires > trust.clock():
            return  # the judgement of the DS answer already said
        if records and secure:
            trust.secure_ds(zone, records, min(rr.ttl for rr in records))
        elif answer is not None and answer.rcode in (0, 3) and secure:
            not_a_cut = no_delegation(zone, answer)
            if not_a_cut is None:
                trust.insecure(zone, INSECURE_TTL, "no DS at the parent")
            else:
                trust.not_a_zone(zone, _lifetime(answer), not_a_cut)
        elif answer is not None and answer.security == Security.INSECURE:
            trust.insecure(zone, INSECURE_TTL, "the parent zone is insecure")
        else:
            reason = _why(answer, f"{zone} DS could not be validated")
            trust.bogus(zone, reason, _code(answer, EdeCode.DNSSEC_BOGUS))
        return
    if entry is not None and (entry.keys is not None or entry.security != Security.SECURE):
        return
    if records and secure:
        trust.secure_keys(zone, records, min(rr.ttl for rr in records))
    elif answer is not None and answer.security == Security.INSECURE:
        trust.insecure(zone, INSECURE_TTL, "no supported key")
    else:
        reason = _why(answer, f"no validated DNSKEY for {zone}")
        trust.bogus(zone, reason, _code(answer, EdeCode.DNSKEY_MISSING))


def _why(answer: Answer | None, default: str) -> str:
    if answer is not None and answer.failure is not None:
        return f"{default}: {answer.failure.text}"
    return default


def _code(answer: Answer | None, default: EdeCode) -> EdeCode:
    """The INFO-CODE of a failed key lookup: its own when it had one (the DNSKEY RRset's
    signature expired: RFC 8914 section 4.8, not "DNSKEY Missing"), else ``default``."""
    if answer is not None and answer.failure is not None and answer.failure.info_code is not None:
        return answer.failure.info_code
    return default


def no_delegation(zone: str, answer: Answer) -> str | None:
    """None when the validated denial of ``zone`` DS shows an insecure delegation (an
    NSEC/NSEC3 with NS and without SOA and DS, or an opt-out span); otherwise why not."""
    proof = answer.proof or []
    records = [rr for rr in proof if rr.rrtype in PROOF_TYPES]
    signers = [rr.rdata.signer for rr in proof
               if isinstance(rr.rdata, RRSIG) and rr.rdata.type_covered in PROOF_TYPES]  # fmt: skip
    if not records or not signers:
        return f"no NSEC or NSEC3 shows a delegation at {zone}"
    parent = signers[0]
    result = prove_no_ds(zone, records, parent)
    if result.proved or result.status == DenialStatus.INSECURE:
        return None
    return f"{parent} has no delegation at {zone} ({result.reason.value})"


def _lifetime(answer: Answer) -> int:
    records: list[ResourceRecord] = [*answer.authority, *(answer.proof or [])]
    return min([INSECURE_TTL, *(rr.ttl for rr in records)])
