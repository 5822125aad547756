"""One client question as a plan of lookups, with no I/O (like Knot Resolver's ``kr_rplan``).

The plan is a stack: the client's :class:`~resolver.iterate.lookup.Lookup` at
the bottom, the sub-lookups it needs above it (a name server's address, the
root's NS set for priming), and the top one is the one moving.  A driver asks
:meth:`Resolution.next_exchange` what to send, sends it however it likes, and
hands the reply (or the failure) to :meth:`Resolution.take_reply`; when
``next_exchange`` returns None, :attr:`Resolution.answer` is the result.  This
is dnspython's ``_Resolution`` (``next_request`` / ``query_result``): the engine
is one such driver, the tests are another.

Sub-lookups are bounded here, where the whole plan is visible: nested at most
``max_sublookup_depth`` deep, and never for a question already in the plan (a
delegation loop).  Either refusal is not the end of the question: the lookup
below goes on with its other servers, and the failure's reason names the limit.
"""

from __future__ import annotations

from resolver.iterate.answer import Answer, FailureKind, servfail
from resolver.iterate.events import LimitHit, SubLookup, SubLookupDone
from resolver.iterate.limits import Limit, LimitExceeded, ResolutionBudget
from resolver.iterate.lookup import Lookup
from resolver.iterate.plan import HELD, Environment, Exchange, Purpose
from resolver.iterate.request import Request
from resolver.net.contract import ExchangeFailed, Reply
from resolver.wire.names import name_key


class Resolution:
    """The plan for one question and the budget it shares."""

    def __init__(
        self, qname: str, qtype: int, env: Environment, request: Request | None = None
    ) -> None:
        """The plan for (qname, qtype): the request's question, or where a local CNAME
        of it leads.  The request says how it was asked (CD; a prefetch's refresh)."""
        self.qname = qname
        self.qtype = qtype
        self.env = env
        self.request = request if request is not None else Request(qname, qtype)
        self.budget = ResolutionBudget(env.limits, env.timer)
        self.plan: list[Lookup] = [Lookup(qname, qtype, env, self.request, self.budget)]
        self.answer: Answer | None = None

    def next_exchange(self) -> Exchange | None:
        """What to send next; None once the question has its answer."""
        try:
            return self._advance()
        except LimitExceeded as error:
            self.give_up(FailureKind.LIMIT, error.limit)
            return None

    def from_cache(self) -> bool:
        """Go as far as the cache takes the plan (recalled data judged, CNAMEs followed,
        RFC 8198 ranges, the cut found), stopping before the first question to a server,
        which spends nothing yet; True when that answers the question.  The walk goes
        on from there with :meth:`next_exchange`."""
        self.budget.holding = True
        try:
            self.next_exchange()
        finally:
            self.budget.holding = False
        return self.answer is not None

    def take_reply(self, exchange: Exchange, outcome: Reply | ExchangeFailed) -> None:
        """The reply (or the failure) to the exchange ``next_exchange`` gave last."""
        try:
            self.plan[-1].take_reply(exchange, outcome)
        except LimitExceeded as error:
            self.give_up(FailureKind.LIMIT, error.limit)

    def give_up(self, kind: FailureKind, limit: Limit) -> None:
        """End the question now with SERVFAIL (a limit, or the driver's time budget)."""
        self.env.observer(LimitHit(self.qname, self.qtype, limit))
        self.plan.clear()
        self.answer = servfail(kind, f"limit: {limit.value}")
        self.answer.upstream_queries = self.budget.queries

    def _advance(self) -> Exchange | None:
        plan = self.plan
        while plan:
            top = plan[-1]
            action = top.advance()
            if isinstance(action, Exchange):
                return action
            if isinstance(action, Lookup):
                self._start(top, action)
                continue
            if action is HELD:
                return None
            plan.pop()  # the top lookup is done
            if plan:
                if self.env.report_hops:
                    self._report_done(top)
                plan[-1].take_sublookup(top)
            else:
                self.answer = top.answer
        if self.answer is not None:
            self.answer.upstream_queries = self.budget.queries
            self.answer.from_cache = self.budget.queries == 0
        return None

    def _start(self, below: Lookup, sub: Lookup) -> None:
        refusal = self._refusal(sub)
        observer = self.env.observer
        if refusal is not None:
            self.budget.note(refusal)
            observer(LimitHit(sub.qname, sub.qtype, refusal, sub.for_zone, sub.depth))
            below.take_sublookup(None)
            return
        if self.env.report_hops:  # routine, as hops: built only for an observer that wants them
            observer(SubLookup(sub.depth, sub.qname, sub.qtype, sub.for_zone, sub.purpose))
        self.plan.append(sub)

    def _refusal(self, sub: Lookup) -> Limit | None:
        if sub.purpose is Purpose.PRIMING:
            return None
        if sub.glueless_depth > self.env.limits.max_sublookup_depth:
            # Validation sub-lookups nest once per zone of the chain of trust: the plan
            # (no question twice) and the budget bound them instead.
            return Limit.SUBLOOKUP_DEPTH
        key = (name_key(sub.qname), sub.qtype)
        if any((name_key(lookup.name), lookup.qtype) == key for lookup in self.plan):
            return Limit.DELEGATION_LOOP
        return None

    def _report_done(self, sub: Lookup) -> None:
        answer = sub.answer
        assert answer is not None
        addresses = [rr.rdata.to_text() for rr in answer.answer if rr.rrtype == sub.qtype]
        self.env.observer(SubLookupDone(sub.depth, sub.qname, sub.qtype, answer.rcode,
                                        addresses, sub.purpose))  # fmt: skip
