"""resolver-trace on the signed lab (NSD, ldns-signzone): each DNSSEC step is shown.

The trace validates as the service does: here from the lab's root KSK
(``--trust-anchor-file``).  Run as a user would (scripts/trace.py), on port 53.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from resolver.lab.nsd import NsdLab

pytestmark = pytest.mark.interop

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "trace.py"


def trace(lab: NsdLab, hints: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(SCRIPT), *args, "--root-hints", str(hints),
               "--trust-anchor-file", str(lab.trust_anchor)]  # fmt: skip
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)


def summary(stdout: str) -> str:
    """The summary line: ``;; RCODE  (time, queries, DNSSEC state)``."""
    return next(line for line in stdout.splitlines() if line.startswith(";; NOERROR"))


def test_a_secure_answer_shows_keys_and_judgements(signed_lab: NsdLab, signed_hints: Path) -> None:
    run = trace(signed_lab, signed_hints, "www.example.com")
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "> sub-lookup example.com. DNSKEY (the keys of example.com., to validate" in out
    assert "= DNSSEC www.example.com. A: secure" in out
    assert summary(out).endswith("DNSSEC secure)"), out


def test_an_unsigned_zone_is_insecure(signed_lab: NsdLab, signed_hints: Path) -> None:
    run = trace(signed_lab, signed_hints, "www.insecure.lab")
    assert run.returncode == 0, run.stderr
    assert summary(run.stdout).endswith("DNSSEC insecure)"), run.stdout


def test_a_bogus_answer_says_why_and_exits_1(signed_lab: NsdLab, signed_hints: Path) -> None:
    run = trace(signed_lab, signed_hints, "www.badsig.lab")
    assert run.returncode == 1, run.stdout
    judged = [line for line in run.stdout.splitlines() if "= DNSSEC www.badsig.lab. A" in line]
    assert judged and all(": bogus: " in line for line in judged), run.stdout
    assert run.stdout.splitlines()[-1].startswith(";; SERVFAIL"), run.stdout


def test_json_carries_the_judgements(signed_lab: NsdLab, signed_hints: Path) -> None:
    run = trace(signed_lab, signed_hints, "www.example.com", "--json")
    events = [json.loads(line) for line in run.stdout.splitlines()]
    judged = [event for event in events if event["event"] == "judged"]
    assert {"name", "qtype", "zone", "security"} <= set(judged[-1])
    assert events[-1]["event"] == "summary" and events[-1]["security"] == "secure"


def test_no_dnssec_validates_nothing(signed_lab: NsdLab, signed_hints: Path) -> None:
    run = trace(signed_lab, signed_hints, "www.badsig.lab", "--no-dnssec")
    assert run.returncode == 0, run.stdout  # the bad signature is not looked at
    assert "= DNSSEC" not in run.stdout and "DNSKEY" not in run.stdout
