"""``resolver-control dump``: the cache as zone-file lines, TTLs as they are now.

Record sets are master-file lines (RFC 1035 section 5) with the TTL left, so the
output reads like a zone and other tools parse it.  Negative entries and the
SERVFAILs kept for a few seconds have no record form: they are comment lines,
saying what is cached and for how long.  The wire answer cache holds nothing
else (its answers are made from the records listed), so it is not listed; the
record sets it holds for the record cache (a name asked once is kept once, in
its answer: RecordCache.release) are listed with the record cache's own, after
them.

A large cache is formatted in slices, yielding to the event loop between them,
so that a dump does not stall the queries being answered meanwhile.
"""

from __future__ import annotations

import asyncio

from resolver.cache.answers import AnswerCache
from resolver.cache.records import CachedNegative, CachedRRset, RecordCache
from resolver.wire import RRType

SLICE = 2000  # entries formatted between two yields to the event loop


def _negative_line(entry: CachedNegative, now: float) -> str:
    ttl = max(int(entry.expires - now), 0)
    soa = f" (SOA {entry.soa.name})" if entry.soa is not None else ""
    if entry.nxdomain:
        return f"; NXDOMAIN {entry.name} {ttl}{soa}"
    return f"; NODATA {entry.name} {RRType.text(entry.rrtype)} {ttl}{soa}"


def _rrset_lines(rrset: CachedRRset, now: float) -> list[str]:
    return [
        f"{rr.name} {rr.ttl} IN {RRType.text(rr.rrtype)} {rr.rdata.to_text()}"
        for rr in rrset.records(now)
    ]


async def dump_lines(records: RecordCache, answers: AnswerCache) -> list[str]:
    entries = records.dump()
    held = records.dump_held()
    now = records.clock()
    failures = list(answers.failures())
    negatives = sum(isinstance(e, CachedNegative) for e in entries)
    lines = [
        f"; {len(entries) - negatives + len(held)} record sets, {negatives} negative answers, "
        f"{len(failures)} SERVFAILs kept; TTLs in seconds from now"
    ]
    for start in range(0, len(entries), SLICE):
        for entry in entries[start : start + SLICE]:
            if isinstance(entry, CachedNegative):
                lines.append(_negative_line(entry, now))
            else:
                lines += _rrset_lines(entry, now)
        await asyncio.sleep(0)
    for start in range(0, len(held), SLICE):
        for key in held[start : start + SLICE]:
            rrset = records.held_rrset(key)  # None: gone meanwhile
            if rrset is not None:
                lines += _rrset_lines(rrset, now)
        await asyncio.sleep(0)
    lines += [f"; SERVFAIL {name} {RRType.text(qtype)} {left}" for name, qtype, left in failures]
    return lines
