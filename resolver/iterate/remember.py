"""What the engine recalls from the cache, and what it remembers of a reply.

:func:`recall` is RFC 1034 section 5.3.3 step 1 (an answer, a negative answer or
a CNAME, from the cache, in the same shape as a classified reply);
:func:`remember` stores what a usable reply taught, at the rank of where it
came from (RFC 2181 section 5.4.1): answers, negative answers (RFC 2308),
delegations and their glue (kept apart as the parent's side).
"""

from __future__ import annotations

from resolver.cache.records import NXDOMAIN_TYPE, RecordCache, Trust
from resolver.iterate.classify import Classified, Kind
from resolver.wire import ResourceRecord, RRType
from resolver.wire.names import name_key
from resolver.wire.rdata import CNAME


def recall(cache: RecordCache, name: str, qtype: int, now: float) -> Classified | None:
    """Step 1: what the cache says about (name, qtype), as a classified reply would."""
    rrset = cache.get_rrset(name, qtype)
    if rrset is not None and rrset.trust >= Trust.ANSWER:
        return Classified(Kind.ANSWER, rrset.records(now), name)
    negative = cache.get_negative(name, qtype)
    if negative is not None:
        kind = Kind.NXDOMAIN if negative.nxdomain else Kind.NODATA
        soa = negative.soa_record(now)
        return Classified(kind, [], name, soa[0] if soa else None)
    if qtype != RRType.CNAME:
        cname = cache.get_rrset(name, RRType.CNAME)
        if cname is not None and cname.trust >= Trust.ANSWER:
            target = cname.rdatas[0]
            assert isinstance(target, CNAME)
            return Classified(Kind.CNAME, cname.records(now), target.target)
    return None


def remember(cache: RecordCache, step: Classified, qtype: int) -> None:
    """Cache what a usable reply taught us (already scrubbed by classify)."""
    trust = Trust.AUTHORITATIVE if step.authoritative else Trust.ANSWER
    for rrset in rrsets(step.records):
        cache.store_rrset(rrset, trust)
    if step.kind == Kind.NXDOMAIN:
        cache.store_negative(step.name, NXDOMAIN_TYPE, step.soa)
    elif step.kind == Kind.NODATA:
        cache.store_negative(step.name, qtype, step.soa)
    elif step.referral is not None:
        cache.store_rrset(step.referral.ns_records, Trust.REFERRAL)
        for rrset in rrsets(step.referral.glue):
            cache.store_glue(rrset)
    for rrset in rrsets(step.glue or []):
        # The addresses an NS answer gave for its servers (a priming reply's root
        # server addresses, RFC 8109 section 3): the lowest rank, replaced by any answer.
        cache.store_rrset(rrset, Trust.GLUE)
        cache.store_glue(rrset)


def rrsets(records: list[ResourceRecord]) -> list[list[ResourceRecord]]:
    groups: dict[tuple[str, int], list[ResourceRecord]] = {}
    for rr in records:
        groups.setdefault((name_key(rr.name), rr.rrtype), []).append(rr)
    return list(groups.values())


def clamped(cache: RecordCache, records: list[ResourceRecord]) -> list[ResourceRecord]:
    """Records with TTLs within the cache's bounds, so that clients are never told to keep
    data longer than --max-ttl (nor, if asked, shorter than --min-ttl); TTL 0 stays 0:
    it means do not cache (RFC 1035 section 3.2.1)."""
    clamp = cache.clamp_ttl
    return [
        rr if rr.ttl == 0 or clamp(rr.ttl) == rr.ttl
        else ResourceRecord(rr.name, rr.rrtype, rr.rrclass, clamp(rr.ttl), rr.rdata)
        for rr in records
    ]  # fmt: skip


def hop_details(step: Classified) -> dict[str, object]:
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
