"""Resource exhaustion through the data, against the running resolver on a hostile
hierarchy (scripts/reliability/exhaust.py, short; the script runs Unbound on the same
attacks, docs/reliability.md has both): NRDelegation and TsuNAME.  Counted at the
servers; the resolver's CPU time from /proc.

Binds port 53 on 127.8.x.y (root in the offline namespace, as scripts/test.sh gives);
without that it is skipped saying so, except in CI, where that fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from resolver.iterate.classify import MAX_NS_PER_RRSET
from resolver.iterate.limits import Limits
from scripts.reliability import exhaust
from scripts.reliability.common import port_53_problem
from scripts.reliability.peers import Peer, running
from scripts.reliability.upstreams import BrokenLab

LIMITS = Limits()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrokenLab, Peer]]:
    problem = port_53_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(problem + " (run the suite with scripts/test.sh)")
        pytest.skip(problem)
    directory = tmp_path_factory.mktemp("exhaust")
    with BrokenLab(directory / "lab", exhaust.roles(1500)) as lab:
        hints = lab.write_hints(directory / "hints")
        with running("ours", directory / "ours", hints) as peer:
            yield lab, peer


def test_a_delegation_to_1500_silent_servers_costs_a_bounded_question(
    setup: tuple[BrokenLab, Peer],
) -> None:
    """NRDelegation: a new name under a referral to 1,500 name servers that never answer,
    with glue and without: SERVFAIL within the time budget, the kept 20 servers asked at
    most twice each, four names looked up, and a few milliseconds of CPU, not the tenth
    of a second the whole delegation cost before it was cut to 20."""
    lab, peer = setup
    result = exhaust.nrdelegation(peer, lab, questions=2, at_once=4, benign=50)
    for variant in ("without glue", "with glue"):
        cost = result[variant]
        assert cost["rcodes"] == {"SERVFAIL": 2}, (variant, cost)
        assert cost["slowest_s"] <= LIMITS.time_budget + 1, (variant, cost)
        assert cost["upstream_per_question"] <= LIMITS.max_upstream_queries, (variant, cost)
        assert cost["silent_servers_per_question"] <= 2 * MAX_NS_PER_RRSET, (variant, cost)
        assert cost["name_lookups_per_question"] <= 2 * LIMITS.max_glueless_per_cut, cost
        # A safety bound, not a speed figure (CPU time, not wall time; measured: ~12 ms).
        assert cost["cpu_ms_per_question"] < 80, (variant, cost)
    assert result["benign"]["rcodes"] == {"NOERROR": 50}


def test_new_names_below_a_cycle_cost_the_parents_almost_nothing(
    setup: tuple[BrokenLab, Peer],
) -> None:
    """TsuNAME: 50 questions over 5 s below ``a.cyc1. NS ns.b.cyc2.``, ``b.cyc2. NS
    ns.a.cyc1.``, a new name each time: all SERVFAIL, and the parents asked a handful of
    times in all (the failure is remembered, RFC 9520), not several times per question."""
    lab, peer = setup
    result = exhaust.tsuname(peer, lab, queries=50, mode="new names", seconds=5.0)
    assert result["rcodes"] == {"SERVFAIL": 50}, result
    assert result["parents_per_client_query"] <= 0.2, result
