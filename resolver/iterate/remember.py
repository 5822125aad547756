"""What the engine recalls from the cache, and what it remembers of a reply.

:func:`recall` is RFC 1034 section 5.3.3 step 1 (an answer, a negative answer or
a CNAME, from the cache, in the same shape as a classified reply);
:func:`remember` stores what a usable reply taught, at the rank of where it
came from (RFC 2181 section 5.4.1): answers, negative answers (RFC 2308),
delegations and their glue (kept apart as the parent's side).
"""

from __future__ import annotations

from resolver.cache.records import NXDOMAIN_TYPE, CachedRRset, RecordCache, Security, Trust
from resolver.iterate.classify import Classified, Kind, synthesised, synthesize
from resolver.wire import ResourceRecord, RRType
from resolver.wire.dnssec_rdata import NSEC, RRSIG
from resolver.wire.names import ancestors, name_key
from resolver.wire.rdata import CNAME

NEVER = float("inf")


def recall(
    cache: RecordCache,
    name: str,
    qtype: int,
    now: float,
    *,
    for_client: bool = True,
    stale: bool = False,
) -> Classified | None:
    """Step 1: what the cache says about (name, qtype), as a classified reply would, with
    the validation state and the signatures or proof kept with it.

    A negative answer without its SOA (a DS denial learned from a referral's NSEC
    records) serves validation, not clients (``for_client``): they get the SOA too.
    ``stale``: expired data kept for serve-stale counts too (RFC 8767).
    """
    rrset = cache.get_rrset(name, qtype, stale=stale)
    if rrset is not None and rrset.trust >= Trust.ANSWER:
        return _recalled(Classified(Kind.ANSWER, rrset.records(now), name), rrset, now)
    negative = cache.get_negative(name, qtype, stale=stale)
    if negative is not None and (negative.soa is not None or not for_client):
        kind = Kind.NXDOMAIN if negative.nxdomain else Kind.NODATA
        soa = negative.soa_record(now)
        step = Classified(kind, [], name, soa[0] if soa else None)
        proof = negative.proof_records(now)
        step.sigs = [rr for rr in proof if rr.rrtype == RRType.RRSIG] or None
        step.proof = proof or None
        step.security = negative.security
        return step
    if qtype != RRType.CNAME:
        cname = cache.get_rrset(name, RRType.CNAME, stale=stale)
        if cname is not None and cname.trust >= Trust.ANSWER:
            target = cname.rdatas[0]
            assert isinstance(target, CNAME)
            step = Classified(Kind.CNAME, cname.records(now), target.target)
            return _recalled(step, cname, now)
    if cache.holds_dnames and qtype != RRType.DNAME:
        return _dname_recall(cache, name, qtype, now, stale)
    return None


def _dname_recall(
    cache: RecordCache, name: str, qtype: int, now: float, stale: bool
) -> Classified | None:
    """A cached DNAME above ``name`` redirects it: the DNAME and the CNAME synthesised from
    it, as a server would send them (RFC 6672 section 3.2)."""
    for zone in ancestors(name)[1:]:
        dname = cache.get_rrset(zone, RRType.DNAME, stale=stale)
        if dname is None or dname.trust < Trust.ANSWER:
            continue
        record = dname.records(now)[0]
        target = synthesize(name, record)
        if target is None:
            return None
        cname = ResourceRecord(name, RRType.CNAME, record.rrclass, record.ttl, CNAME(target))
        if qtype == RRType.CNAME:
            step = Classified(Kind.ANSWER, [record, cname], name)
        else:
            step = Classified(Kind.CNAME, [record, cname], target)
        return _recalled(step, dname, now)
    return None


def _recalled(step: Classified, rrset: CachedRRset, now: float) -> Classified:
    step.sigs = rrset.signature_records(now) or None
    step.security = rrset.security
    if rrset.proof:
        step.proof = list(rrset.proof)
    return step


def remember(cache: RecordCache, step: Classified, qtype: int, until: float = NEVER) -> None:
    """Cache what a usable reply taught us (already scrubbed by classify), with what
    validation made of it and the signatures and proofs DO=1 clients get.

    ``until`` is when the delegation of the servers that sent it runs out: the
    delegations they gave (NS RRsets, whether a referral, an NS answer or its glue) live
    no longer, so a zone its parent removed cannot be kept alive from below: not by its
    own NS RRset with a long TTL, nor by sub-delegations, nor by a late reply (ghost
    domains, NDSS 2012; Phoenix domains, NDSS 2023, CVE-2022-30698 and -30699).  The
    parent is asked again when it runs out (RFC 2181 section 5.4.1 ranks the child's NS
    RRset above the parent's; it replaces it, without outliving it).
    """
    trust = Trust.AUTHORITATIVE if step.authoritative else Trust.ANSWER
    security = Security(step.security)
    sigs = step.sigs or []
    proof = step.proof if step.kind in (Kind.ANSWER, Kind.CNAME) else None
    records = step.records
    dnames = [rr for rr in records if rr.rrtype == RRType.DNAME]
    if dnames:
        records = [rr for rr in records if not synthesised(rr, dnames)]
    for rrset in rrsets(records):
        bound = until if rrset[0].rrtype == RRType.NS else NEVER
        cache.store_rrset(rrset, trust, security, covering(sigs, rrset), proof, bound)
    if step.kind in (Kind.NXDOMAIN, Kind.NODATA):
        slot = NXDOMAIN_TYPE if step.kind == Kind.NXDOMAIN else qtype
        soa = [step.soa] if step.soa is not None else []
        proof = list(step.proof or []) + covering(sigs, soa)
        cache.store_negative(step.name, slot, step.soa, security, proof)
    elif step.referral is not None:
        referral = step.referral
        cache.store_rrset(referral.ns_records, Trust.REFERRAL, until=until)
        for rrset in rrsets(referral.glue):
            cache.store_glue(rrset, until)
        # A signed parent's word on the child's DS, judged when the child's trust is needed.
        ds = [rr for rr in referral.ds or [] if rr.rrtype == RRType.DS]
        if ds:
            cache.store_rrset(ds, Trust.AUTHORITY, Security.UNCHECKED,
                              covering(referral.ds or [], ds))  # fmt: skip
        elif referral.proof:
            cache.store_negative(referral.zone, RRType.DS, None, Security.UNCHECKED,
                                 referral.proof)  # fmt: skip
    for rrset in rrsets(step.glue or []):
        # The addresses an NS answer gave for its servers (a priming reply's root
        # server addresses, RFC 8109 section 3): the lowest rank, replaced by any answer.
        cache.store_rrset(rrset, Trust.GLUE, until=until)
        cache.store_glue(rrset, until)


def remember_secure(cache: RecordCache, rrset: list[ResourceRecord], step: Classified) -> None:
    """Cache one RRset of a reply that validated on its own, the rest of the reply bogus."""
    trust = Trust.AUTHORITATIVE if step.authoritative else Trust.ANSWER
    cache.store_rrset(rrset, trust, Security.SECURE, covering(step.sigs or [], rrset))


def covering(sigs: list[ResourceRecord], records: list[ResourceRecord]) -> list[ResourceRecord]:
    """The RRSIG records among ``sigs`` that cover one of the RRsets of ``records``, each
    once (the same signature may have come in several replies)."""
    if not sigs or not records:
        return []
    wanted = {(name_key(rr.name), rr.rrtype) for rr in records}
    found: dict[tuple[str, object], ResourceRecord] = {}
    for sig in sigs:
        if isinstance(sig.rdata, RRSIG) and (name_key(sig.name), sig.rdata.type_covered) in wanted:
            found.setdefault((name_key(sig.name), sig.rdata), sig)
    return list(found.values())


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


def holds_dname(step: Classified, name: str) -> bool:
    """An NSEC record of the reply says ``name`` owns a DNAME (RFC 6672 section 5.3.4)."""
    return any(
        isinstance(rr.rdata, NSEC) and rr.rdata.has_type(RRType.DNAME)
        and name_key(rr.name) == name_key(name)
        for rr in step.proof or []
    )  # fmt: skip


def once(records: list[ResourceRecord]) -> list[ResourceRecord]:
    """Each record once, in order (a DNAME met again for each name it redirects)."""
    seen: dict[tuple[str, int, object], ResourceRecord] = {}
    for rr in records:
        seen.setdefault((name_key(rr.name), rr.rrtype, rr.rdata), rr)
    return list(seen.values())
