"""Broken upstreams (scripts/reliability/broken.py), short: three questions per broken
behaviour, each answered correctly or SERVFAIL within the time budget, and the resolver
back to its idle descriptors, sockets, tasks and in-flight count afterwards.

Binds port 53 on 127.8.x.y (root in the offline namespace, as scripts/test.sh gives);
without that it is skipped saying so, except in CI, where that fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scripts.reliability.broken import BEHAVIOURS, HOPELESS, run
from scripts.reliability.common import port_53_problem


def port_53_or_skip() -> None:
    problem = port_53_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(problem + " (run the suite with scripts/test.sh)")
        pytest.skip(problem)


def test_broken_upstreams_answer_or_servfail_and_leak_nothing(tmp_path: Path) -> None:
    port_53_or_skip()
    result = run(3, tmp_path)
    zones = result["zones"]
    assert isinstance(zones, dict) and set(zones) == set(BEHAVIOURS)
    for zone, row in zones.items():
        assert row["wrong"] == row["lost"] == 0, (zone, row)
        assert row["max_seconds"] <= 10.0 + 1.0, (zone, row)  # within the time budget
        if zone in HOPELESS:
            assert row["servfail"] == row["asked"], (zone, row)
    for zone in ("good", "delay", "half"):
        assert zones[zone]["noerror_correct"] == zones[zone]["asked"], zones[zone]
    idle, busy, after = result["idle"], result["busy"], result["after"]
    assert isinstance(idle, dict) and isinstance(busy, dict) and isinstance(after, dict)
    assert busy["in_flight"] > 0  # the run did keep it busy
    for key in ("descriptors", "sockets", "tasks", "in_flight"):
        assert after[key] == idle[key], (key, idle, after)
    assert result["exit_status"] == 0
