"""How much work one client question may cause (the NXNSAttack limits, CVE-2020-12667).

Every client question gets one :class:`ResolutionBudget`, shared by all the
lookups it needs (its own, and the sub-lookups for name servers without glue or
for priming): the queries it may still send and its deadline, on one monotonic
clock (the engine cuts each exchange's timeout to what is left of it).  Running
out of it ends the question with SERVFAIL, quickly.  How the question was asked
(CD, a prefetch's refresh) is the :class:`~resolver.iterate.request.Request`'s,
not the budget's.
The numbers follow Unbound (200 queries, 11 restarts) and Knot Resolver (100
iterations, 13 CNAMEs, 5 NS names per cut), leaning towards the smaller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Limits:
    """Per-question bounds."""

    max_upstream_queries: int = 100  # every exchange with a server, sub-lookups included
    max_referrals: int = 30  # zone cuts walked by one lookup
    max_cname_chain: int = 11  # Unbound's max-query-restarts
    max_sublookup_depth: int = 3  # NS name lookups nested inside NS name lookups
    max_glueless_per_cut: int = 4  # NS names without glue resolved for one zone cut
    # Name server lookups that may end in NXDOMAIN per question before no more are tried
    # (Unbound's MAX_TARGET_NX): names that do not exist are the NXNSAttack's currency.
    max_nxdomain_targets: int = 5
    time_budget: float = 10.0  # seconds per client question
    # QNAME minimisation (RFC 9156 section 2.3, Unbound's MAX_MINIMISE_COUNT and
    # MINIMISE_ONE_LAB): at most this many minimised queries per lookup, the first
    # few one label at a time, then in larger steps.
    max_minimised_queries: int = 10
    minimise_one_label: int = 4


class Limit(Enum):
    """Which bound was hit (its value is what logs and SERVFAIL reasons say)."""

    UPSTREAM_QUERIES = "upstream queries"
    TIME_BUDGET = "time budget"
    REFERRAL_DEPTH = "referral depth"
    CNAME_CHAIN = "CNAME chain length"
    CNAME_LOOP = "CNAME loop"
    SUBLOOKUP_DEPTH = "sub-lookup depth"
    DELEGATION_LOOP = "delegation loop"
    NXDOMAIN_TARGETS = "name servers that do not exist"
    ZONE_RATE = "zone rate limit"  # the zone's servers were asked too often this second


class LimitExceeded(Exception):
    """A bound that ends the whole question."""

    def __init__(self, limit: Limit) -> None:
        super().__init__(limit.value)
        self.limit = limit


class ResolutionBudget:
    """The work one client question may still cause, and until when."""

    def __init__(self, limits: Limits, timer: Callable[[], float]) -> None:
        """``timer``: a monotonic clock in seconds (the engine's; tests give a fake one)."""
        self.limits = limits
        self.timer = timer
        self.deadline = timer() + limits.time_budget
        self.queries = 0
        self.limits_hit: list[Limit] = []  # bounds that cut a sub-lookup short, for the reason
        self.primed = False  # priming is done at most once per question (RFC 8109)
        self.nxdomain_targets = 0  # name server lookups that ended in NXDOMAIN
        # The walk stops before its first question to a server (and spends nothing):
        # the record cache step, which the shared tier may follow (Resolution.from_cache).
        self.holding = False

    def left(self) -> float:
        """Seconds left until the deadline (zero or less: spent)."""
        return self.deadline - self.timer()

    def spend_query(self) -> None:
        if self.queries >= self.limits.max_upstream_queries:
            raise LimitExceeded(Limit.UPSTREAM_QUERIES)
        if self.timer() >= self.deadline:
            raise LimitExceeded(Limit.TIME_BUDGET)
        self.queries += 1

    def note(self, limit: Limit) -> None:
        """A bound that stopped one sub-lookup, not the question: remembered for the reason."""
        self.limits_hit.append(limit)
