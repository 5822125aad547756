"""A short soak (scripts/reliability/soak.py): 15 s of mixed load (hot names, new names,
NXDOMAIN, a silent zone's SERVFAILs, TCP, and in a signed zone hot names, wildcard names
and NXDOMAIN, each validated) at 150 queries a second with a 100-entry cache, so it
evicts all the time, DNSSEC validation on from the signed root's key.  Nothing is lost,
every kind gets its one right RCODE, every signed answer comes with AD, and the
descriptors, tasks and in-flight count end where they started.  The 10-minute run at half
the saturation rate, with RSS every 10 s, is in docs/reliability.md.

Binds port 53 on 127.8.x.y (root in the offline namespace, as scripts/test.sh gives) and
needs NSD and ldns-signzone (Debian's nsd, ldnsutils); without them it is skipped saying
so, except in CI, where that fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from resolver.lab.nsd import nsd_binary
from resolver.lab.signing import missing_tools
from scripts.reliability.common import port_53_problem
from scripts.reliability.soak import SIGNED, SIGNED_MIX, run

EXPECTED = {"hot": "NOERROR", "new": "NOERROR", "nx": "NXDOMAIN", "timeout": "SERVFAIL",
            "tcp": "NOERROR", "signed-hot": "NOERROR", "signed-new": "NOERROR",
            "signed-nx": "NXDOMAIN"}  # fmt: skip


def test_short_soak(tmp_path: Path) -> None:
    problem = port_53_problem()
    missing = missing_tools() + ([] if nsd_binary() else ["nsd"])
    if missing:
        problem = f"missing {', '.join(missing)} (apt-get install nsd ldnsutils)"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(problem + " (run the suite with scripts/test.sh)")
        pytest.skip(problem)
    result = run(15.0, 150.0, 100, tmp_path)
    assert set(result["sent"]) == set(SIGNED_MIX) == set(EXPECTED)
    assert result["lost"] == dict.fromkeys(SIGNED_MIX, 0), result["lost"]
    for kind, rcode in EXPECTED.items():
        assert result["rcodes"][kind] == {rcode: result["sent"][kind]}, (kind, result["rcodes"])
    for kind in SIGNED:  # validated, every one
        assert result["validated"][kind] == result["sent"][kind] > 0, result["validated"]
    assert sum(result["sent"].values()) >= 150 * 15 * 0.9
    end = result["end"]
    assert end["descriptors"] == result["descriptors_start"]
    assert end["tasks"] == result["tasks_start"] and end["in_flight"] == 0
    assert max(s["evictions"] for s in result["samples"]) > 0  # the cache was evicting
    assert result["exit_status"] == 0
