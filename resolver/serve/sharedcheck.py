"""A value of the shared tier validated again by the node that reads it (issue 20, hole 2).

Whoever can write to Redis can write a value that says "secure".  A validating node
without ``hmac-keys`` (:mod:`resolver.serve.shared`) therefore takes no state from a
value: it judges the value as its engine judges an answer, with its own chain of trust
(the engine's :class:`~resolver.iterate.judge.Judge`): the value's records grouped by the
zone cut the node knows for each owner, each group judged as an answer from that zone,
a negative answer's SOA and NSEC/NSEC3 proof as one more step; the DNSKEY and DS RRsets
the judgement needs are looked up as for the node's own answers (from its caches
mostly).  The state written in the value is never read by a validating node.
"""

from __future__ import annotations

from resolver.cache.records import Security
from resolver.dnssec.budget import ValidationBudget
from resolver.iterate.answer import Answer
from resolver.iterate.classify import Classified, Kind
from resolver.iterate.engine import IterativeEngine
from resolver.iterate.judge import NeedKeys, Verdict
from resolver.iterate.remember import rrsets
from resolver.wire import Rcode, ResourceRecord, RRType
from resolver.wire.names import ROOT, name_key, parent
from resolver.wire.rdata import CNAME

MAX_CHAIN_STEPS = 16  # key and DS lookups one value's validation may need


async def revalidate(engine: IterativeEngine, qname: str, qtype: int, answer: Answer) -> int | None:
    """The DNSSEC state this node gives a value, validating it with its own chain of
    trust (the state written in it is ignored): SECURE or INSECURE, or None when it is
    bogus or cannot be validated within bounds.  The chain's DNSKEY and DS RRsets are
    looked up as the engine does for its own answers (usually from its caches)."""
    judge = engine.judge
    budget = ValidationBudget()
    worst: int = Security.SECURE
    for step, zone in _steps(engine, qname, qtype, answer):
        for _ in range(MAX_CHAIN_STEPS):
            judged = judge.judge(step, qname, qtype, zone, budget)
            if isinstance(judged, Verdict):
                break
            rrtype = RRType.DNSKEY if isinstance(judged, NeedKeys) else RRType.DS
            needed = await engine.resolve(judged.zone, rrtype)
            judge.learn(judged.zone, rrtype, needed)
        else:
            return None
        if judged.security not in (Security.SECURE, Security.INSECURE):
            return None
        worst = min(worst, judged.security)
    return worst


def _steps(
    engine: IterativeEngine, qname: str, qtype: int, answer: Answer
) -> list[tuple[Classified, str]]:
    """A shared answer as the engine would have seen it: its records grouped by the zone
    cut this node knows for each owner (a DS by its parent's), each group judged as an
    answer from that zone; a negative answer's SOA and proof as one more step."""
    proof = list(answer.proof or [])
    sigs = list(answer.sigs or []) + [rr for rr in proof if rr.rrtype == RRType.RRSIG]
    groups: dict[str, list[ResourceRecord]] = {}
    for rrset in rrsets(answer.answer):
        owner = rrset[0].name
        target = parent(owner) if rrset[0].rrtype == RRType.DS and owner != ROOT else owner
        groups.setdefault(engine.cut_zone(target), []).extend(rrset)
    steps = []
    for zone, records in groups.items():
        step = Classified(Kind.ANSWER, records, records[-1].name)
        step.sigs, step.proof = sigs, proof or None
        steps.append((step, zone))
    if answer.rcode == Rcode.NXDOMAIN or answer.authority:
        name = _chain_end(qname, answer.answer)
        kind = Kind.NXDOMAIN if answer.rcode == Rcode.NXDOMAIN else Kind.NODATA
        soa = answer.authority[0] if answer.authority else None
        step = Classified(kind, [], name, soa)
        step.sigs, step.proof = sigs, proof or None
        target = parent(name) if qtype == RRType.DS and name != ROOT else name
        steps.append((step, engine.cut_zone(target)))
    return steps


def _chain_end(qname: str, records: list[ResourceRecord]) -> str:
    """Where the CNAMEs of an answer lead from ``qname``."""
    name = qname
    for _ in range(len(records) + 1):
        cname = next((rr.rdata for rr in records if rr.rrtype == RRType.CNAME
                      and name_key(rr.name) == name_key(name)), None)  # fmt: skip
        if not isinstance(cname, CNAME):
            break
        name = cname.target
    return name
