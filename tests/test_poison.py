"""Poisoning through the data itself, against the running resolver on a hostile hierarchy
(scripts/reliability/ghost.py and poison.py, short; the scripts run Unbound on the same
attacks, docs/reliability.md has both): ghost and Phoenix domains, MaginotDNS, the
bailiwick rules.  Each asserts what the attacker gets: nothing.

Binds port 53 on 127.8.x.y (root in the offline namespace, as scripts/test.sh gives);
without that it is skipped saying so, except in CI, where that fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from scripts.reliability import ghost, poison
from scripts.reliability.common import port_53_problem
from scripts.reliability.peers import running
from scripts.reliability.upstreams import BrokenLab

TTL = 2  # the parent's NS TTL in the ghost attacks, seconds


def needs_port_53() -> None:
    problem = port_53_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(problem + " (run the suite with scripts/test.sh)")
        pytest.skip(problem)


@pytest.fixture(scope="module")
def poison_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrokenLab, Path]]:
    needs_port_53()
    directory = tmp_path_factory.mktemp("poison")
    with BrokenLab(directory / "lab", poison.roles()) as lab:
        yield lab, lab.write_hints(directory / "hints")


def test_a_removed_delegation_dies_with_the_parents_ttl(tmp_path: Path) -> None:
    """Every ghost and Phoenix variant at once, each on its zone: after the registry
    removed the delegation (or moved it to its sinkhole), new names stop reaching the
    attacker's server within the parent's TTL, though it kept refreshing its NS RRset,
    renamed, for a day, directly, in every authority section, late, and below it."""
    needs_port_53()
    registry = ghost.Registry(TTL)
    variants = list(ghost.VARIANTS)
    with BrokenLab(tmp_path / "lab", ghost.roles(registry)) as lab:
        hints = lab.write_hints(tmp_path / "hints")
        with (
            running("ours", tmp_path / "ours", hints) as peer,
            ThreadPoolExecutor(len(variants)) as pool,
        ):
            outcomes = pool.map(lambda v: ghost.attack(peer, registry, v, TTL), variants)
            results = dict(zip(variants, outcomes, strict=True))
        refreshed = lab.counts.by_name[(ghost.CHILD, ghost.VARIANTS["ns-answer"])]
        below = lab.counts.by_address[ghost.SUB] + lab.counts.by_address[ghost.DEEP]
    assert refreshed > 0 and below > 0  # the attacker's refreshing did reach its servers
    for variant, result in results.items():
        assert result["warm"] == f"NOERROR {ghost.GHOST_ADDRESS}", (variant, result)
        assert result["survived"], (variant, result)
        assert result["attacker_gets"] == [], (variant, result)
        expected = "192.0.2.32" if variant == "sinkhole" else "NXDOMAIN"
        assert all(got.endswith(expected) for got in result["final"].values()), result


def test_a_forwarder_and_iteration_stay_in_their_own_zones(
    poison_lab: tuple[BrokenLab, Path], tmp_path: Path
) -> None:
    """MaginotDNS: the hostile forwarder of ``fwd.`` plants a CNAME target's address, NS
    RRsets for ``victim.`` and ``pub.`` and addresses; ``pub.``'s server plants an
    address in the forward zone ``corp.pub.``.  Every name keeps its own source."""
    lab, hints = poison_lab
    with running("ours", tmp_path / "ours", hints, config=poison.CONFIG) as peer:
        result = poison.maginot(peer, lab)
    assert result["attack"]["chain.fwd."] == "NOERROR 192.0.2.42", result  # followed by us
    assert result["attack"]["www.pub."] == "NOERROR 192.0.2.43", result
    assert result["attacker_gets"] == [], result
    assert all(check["got"].endswith(check["expected"]) for check in result["checks"]), result


def test_glue_referrals_and_ns_rrsets_outside_their_place_are_ignored(
    poison_lab: tuple[BrokenLab, Path], tmp_path: Path
) -> None:
    """Sibling and out-of-bailiwick glue, upward referrals (to the parent, to the root),
    records for a sibling in every section of an answer, and an NS RRset for a zone
    pointing at the attacker in replies about other names (authority, answer section,
    NXDOMAIN, NODATA): each check still gets the real server's answer."""
    lab, hints = poison_lab
    with running("ours", tmp_path / "ours", hints, config=poison.CONFIG) as peer:
        result = poison.bailiwick(peer, lab)
    assert result["attacker_gets"] == [], result
    assert all(check["got"].endswith(check["expected"]) for check in result["checks"]), result
    assert result["attack"]["x.up.evil.shared."] == "SERVFAIL"  # lame: nothing to follow
