"""The engine's own steps of the pipeline: local zones, the record cache, the judge's word.

Every pipeline has them (:mod:`resolver.iterate.pipeline`); the data path adds its own
around them.

- :class:`LocalData` (before and after): names of local zones are answered from local
  data and never from anywhere else (RFC 6303, RFC 6761, hosts files, zone files); a
  CNAME in local data whose target is outside every local zone becomes the question
  from then on, and its chain is put in front of what the rest of the pipeline finds
  (by the walk, or in the cache).  The walk does not come back to local data: a CNAME
  found upstream that points into a local zone is followed upstream, as Unbound's
  iterator does.
- :class:`RecordCache` (before): with RD=1 the walk is prepared and taken as far as
  the cache takes it (recalled data judged, CNAMEs followed, validated NSEC ranges of
  RFC 8198, the zone cut found); an answer there ends the question, otherwise the walk
  goes on from where it stopped, so the cache is asked once.  With RD=0 the answer is
  what the cache holds (CNAMEs followed inside it), or none: the walk never starts
  (RFC 1034 section 4.3.1).
- :class:`LastWord` (after): the judge's last word on an answer from DNS data (RFC
  8509's key sentinel, when validating).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from resolver.iterate.answer import Answer, FailureKind, servfail
from resolver.iterate.pipeline import Transaction
from resolver.local.zones import LocalAnswer
from resolver.wire import Rcode

if TYPE_CHECKING:
    from resolver.iterate.engine import IterativeEngine


class LocalData:
    """Local zones, before the rest and on what the rest found (see the module)."""

    def __init__(self, engine: IterativeEngine) -> None:
        self.engine = engine  # its local zones: a reload replaces them

    async def before(self, tx: Transaction) -> bool:
        zones = self.engine.local
        local = zones.lookup(tx.name, tx.request.qtype) if zones else None
        if local is None:
            return False
        if local.follow is None:
            tx.answer, tx.local = local_answer(tx.name, local), True
            return True
        tx.prefix, tx.name = local.answer, local.follow
        return False

    async def after(self, tx: Transaction) -> None:
        rest = tx.answer
        if tx.prefix is None or rest is None or rest.rcode == Rcode.SERVFAIL:
            return
        whole = copy.copy(rest)  # the rest may be another question's too (a shared walk)
        whole.answer = tx.prefix + rest.answer
        tx.answer = whole


def local_answer(qname: str, local: LocalAnswer) -> Answer:
    if local.rcode == Rcode.SERVFAIL:
        return servfail(FailureKind.LIMIT, f"CNAME loop in local data at {qname}")
    answer = Answer(local.rcode, local.answer, local.authority)
    answer.from_cache = True  # no upstream work
    return answer


class RecordCache:
    """The record cache, before the walk (see the module)."""

    def __init__(self, engine: IterativeEngine) -> None:
        self.engine = engine

    async def before(self, tx: Transaction) -> bool:
        request = tx.request
        if not request.recursion_desired:
            tx.answer = self.engine.from_cache(tx.name, request.qtype)  # None: nothing here
            return True
        resolution = self.engine.resolution(tx.name, request)
        if resolution.from_cache():
            tx.answer = resolution.answer
            return True
        tx.resolution = resolution
        return False


class LastWord:
    """The judge's last word on an answer from DNS data (not on local data)."""

    def __init__(self, engine: IterativeEngine) -> None:
        self.engine = engine

    async def after(self, tx: Transaction) -> None:
        answer = tx.answer
        if tx.local or tx.prefix is not None or answer is None:
            return
        tx.answer = self.engine.judge.answered(tx.request.name, tx.request.qtype, answer)
