"""Amplification through the running resolver (scripts/reliability/amplify.py, small):
NXNSAttack delegations, ANY, a random-subdomain flood.  Counted at the lab's servers.

Binds port 53 on 127.8.x.y (root in the offline namespace, as scripts/test.sh gives);
without that it is skipped saying so, except in CI, where that fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from resolver.iterate.limits import Limits
from scripts.reliability.amplify import any_query, nxns, roles, torture, torture_rounds
from scripts.reliability.common import Resolver, port_53_problem
from scripts.reliability.upstreams import BrokenLab

CACHE_SIZE = 300


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrokenLab, Resolver]]:
    problem = port_53_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(problem + " (run the suite with scripts/test.sh)")
        pytest.skip(problem)
    directory: Path = tmp_path_factory.mktemp("amplify")
    with BrokenLab(directory / "lab", roles(100)) as lab:
        hints = lab.write_hints(directory / "hints")
        with Resolver(directory / "ours", hints, 53, "--cache-size", str(CACHE_SIZE)) as ours:
            yield lab, ours


def test_nxns_plain_delegation_is_bounded(setup: tuple[BrokenLab, Resolver]) -> None:
    """100 name servers without glue, all NXDOMAIN in the victim's zone: SERVFAIL, and the
    victim sees at most the per-cut limit's lookups (A and AAAA each) per question."""
    lab, ours = setup
    result = nxns(ours.port, lab.counts, "p", 5)
    assert result["rcodes"] == {"SERVFAIL": 5}
    assert result["victim_per_question"] <= 2 * Limits().max_glueless_per_cut
    assert result["upstream_per_question"] <= Limits().max_upstream_queries


def test_nxns_nested_delegation_costs_no_more_than_unbound(
    setup: tuple[BrokenLab, Resolver],
) -> None:
    lab, ours = setup
    result = nxns(ours.port, lab.counts, "n", 5)
    assert result["rcodes"] == {"SERVFAIL": 5}
    assert result["victim_per_question"] <= 12, result  # Unbound 1.17: 7.6 on the same zones


def test_any_is_answered_with_one_rrset(setup: tuple[BrokenLab, Resolver]) -> None:
    """RFC 8482 section 4.1: the server has five RRsets at the name; a client asking ANY
    gets one of them, over UDP and TCP alike (so the wire cache holds one answer)."""
    _lab, ours = setup
    result = any_query(ours.port)
    for transport in ("udp", "tcp"):
        assert result[transport]["rcode"] == "NOERROR"
        (rrset,) = result[transport]["rrsets"]
        assert rrset in ("A", "AAAA", "HINFO", "MX", "TXT")
        assert not result[transport]["tc"]


def test_random_subdomain_flood(setup: tuple[BrokenLab, Resolver]) -> None:
    """1500 never-seen names under one zone with a cache of 300: every one answered, one
    upstream query each, the cache at its bound."""
    lab, ours = setup
    result = torture(ours.port, lab.counts, 1500, ours.pid)
    assert result["answered"] == 1500 and result["lost"] == 0
    assert result["popular_asked"] > 0
    assert result["victim_queries_per_name"] <= 1.2, result  # one query each, some minimised
    stats = ours.stats()
    assert stats["cache_entries.cache.records"] <= CACHE_SIZE
    assert stats["cache_entries.cache.answers"] <= CACHE_SIZE
    assert stats["cache_evictions.total"] > 0


def test_popular_names_survive_a_flood_larger_than_the_cache(
    setup: tuple[BrokenLab, Resolver],
) -> None:
    lab, ours = setup
    result = torture_rounds(ours.port, lab.counts, 3, 2 * CACHE_SIZE)
    assert result["lost"] == 0
    assert result["popular_hit_rate"] >= 0.9, result
