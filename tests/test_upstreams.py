"""Broken upstreams (scripts/reliability/broken.py), short: three questions per broken
behaviour, each answered correctly or SERVFAIL within the time budget, and the resolver
back to its idle descriptors, sockets, tasks and in-flight count afterwards.

Binds port 53 on 127.8.x.y (root in the offline namespace, as scripts/test.sh gives);
without that it is skipped saying so, except in CI, where that fails.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from scripts.reliability.broken import BEHAVIOURS, HOPELESS, run


def _port_53_or_skip() -> None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.8.0.1", 53))
    except OSError as error:
        if os.environ.get("CI"):
            pytest.fail(f"cannot bind 127.8.0.1:53 ({error}): run inside scripts/test.sh")
        pytest.skip(f"cannot bind 127.8.0.1:53 ({error}): needs root in a network namespace")


def test_broken_upstreams_answer_or_servfail_and_leak_nothing(tmp_path: Path) -> None:
    _port_53_or_skip()
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
