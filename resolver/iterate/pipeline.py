"""One pipeline every question runs through: steps before the walk, the walk, steps after.

A question (a client's, or one the resolver asks itself) is a :class:`Transaction`:
its :class:`~resolver.iterate.request.Request` and what the steps make of it.  The
:class:`Pipeline` runs its before-steps in order until one answers (or decides the
response itself: a response policy's), then the walk if none did, then its
after-steps on the answer, as Knot Resolver's layers and Unbound's module stack do::

    before:  response policy (QNAME, client IP)   serve/policy_step.py
             local zones                          iterate/steps.py
             record cache (the walk prepared)     iterate/steps.py
             shared tier, read                    serve/shared.py
    walk:    the engine (shared by identical questions, raced against serve-stale)
    after:   local CNAME chain, put in front      iterate/steps.py
             the judge's last word (key sentinel) iterate/steps.py
             shared tier, write                   serve/shared.py
             response policy on the answer        serve/policy_step.py

The engine's own steps are in every pipeline (:meth:`IterativeEngine.core`); the data
path adds its own around them in one place (:func:`resolver.serve.steps.data_path`).
RD=0 is the same pipeline: the record cache step answers from what the cache holds,
or says there is nothing, and the walk never starts.  A step that concerns client
queries only (policy, the shared tier) passes over the resolver's own questions
(:attr:`Request.internal`).  Nothing here does I/O; a step may (the shared tier asks
Redis).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from recordclass import dataobject

from resolver.iterate.answer import Answer
from resolver.iterate.request import Request
from resolver.wire import Message, ResourceRecord

if TYPE_CHECKING:
    from resolver.iterate.plan import Exchange
    from resolver.iterate.resolution import Resolution


class Transaction(dataobject, fast_new=True):
    """One question on its way through the pipeline: what the steps read and write."""

    request: Request
    name: str  # the name resolved now: the request's, or where a local CNAME chain leads
    query: Message | None = None  # the client's parsed query (None: the resolver's own)
    answer: Answer | None = None  # what resolving gave (None: nothing, for RD=0)
    # Local records in front of ``name`` (a local CNAME chain that leaves local data).
    prefix: list[ResourceRecord] | None = None
    local: bool = False  # answered from local data (configuration, not DNS data)
    decided: bool = False  # a step made the response itself: ``response`` (None: drop)
    response: Message | None = None
    cacheable: bool = True  # the answer may be kept in the wire cache
    walked: bool = False  # this transaction's walk ran (not one it shared with another)
    # The walk the record cache step prepared, stopped before its first question to a
    # server; the walk goes on from there.
    resolution: Resolution | None = None
    exchange: Exchange | None = None
    notes: dict[object, object] | None = None  # what a step keeps between its hooks


def transaction(request: Request, query: Message | None = None) -> Transaction:
    return Transaction(request, request.name, query)


class BeforeStep(Protocol):
    async def before(self, tx: Transaction) -> bool:
        """True when the transaction is answered (``tx.answer``) or decided (``tx.decided``):
        no later step, nor the walk, runs."""
        ...


class AfterStep(Protocol):
    async def after(self, tx: Transaction) -> None:
        """Look at (or replace) ``tx.answer``; set ``tx.decided`` to end the pipeline."""
        ...


class Walk(Protocol):
    async def walk(self, tx: Transaction) -> Answer:
        """The answer from the servers (never raises for DNS reasons: SERVFAIL)."""
        ...


class Pipeline:
    """Before-steps, the walk, after-steps (see the module's description)."""

    __slots__ = ("after", "before", "walk")

    def __init__(
        self, before: Sequence[BeforeStep], walk: Walk, after: Sequence[AfterStep]
    ) -> None:
        self.before = tuple(before)
        self.walk = walk
        self.after = tuple(after)

    async def run(self, tx: Transaction) -> Transaction:
        for step in self.before:
            if await step.before(tx):
                break
        else:
            tx.answer = await self.walk.walk(tx)
        if tx.decided or tx.answer is None:
            return tx
        for after in self.after:
            await after.after(tx)
            if decided(tx):  # (a function: the step may have changed it)
                break
        return tx


def decided(tx: Transaction) -> bool:
    return tx.decided
