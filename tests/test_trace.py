"""scripts/trace.py run as a user would, against the lab (run inside /work/shared/tools/offline)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from resolver.lab import Lab

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "trace.py"


def trace(
    *args: str, hints: Path | None, port: int = 5300, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(SCRIPT), *args]
    if hints is not None:
        command += ["--root-hints", str(hints), "--upstream-port", str(port)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60)


def hop_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.strip() and not _is_note(line)]


def _is_note(line: str) -> bool:
    return line.lstrip().startswith((";;", ">", "<", "!!"))


def test_glueless_trace_shows_hops_and_the_nested_sublookup(lab: Lab, lab_hints: Path) -> None:
    run = trace("www.noglue.org", hints=lab_hints, port=lab.port)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    lines = run.stdout.splitlines()
    assert lines[0].startswith(";; tracing www.noglue.org. A from the root hints")
    assert lines[2] == "> sub-lookup . NS (priming the root, RFC 8109)"
    hops = hop_lines(run.stdout)
    # priming: the root's NS set from the first hint (RFC 8109)
    assert hops[0].split()[:3] == [".", "a.root-servers.net.", "127.1.0.1"]
    assert hops[0].split()[5:8] == [".", "NS", "answer:"]
    # from the root: zone cut, server, address, rtt, question, result in columns; with
    # QNAME minimisation each server is asked for one more label only
    assert hops[1].split()[0] == "."
    assert hops[1].split()[5:7] == ["org.", "NS"] and "referral to org." in hops[1]
    assert hops[2].split()[0] == "org."
    assert hops[2].split()[5:7] == ["noglue.org.", "NS"]
    assert "referral to noglue.org." in hops[2] and "ns1.provider.net. (no glue)" in hops[2]
    # the sub-lookup, indented under the hop that needed it
    start = next(i for i, line in enumerate(lines) if "> sub-lookup ns1" in line)
    end = next(i for i, line in enumerate(lines) if "< ns1.provider.net." in line)
    assert lines[start] == (
        "  > sub-lookup ns1.provider.net. A (a name server of noglue.org. without glue)"
    )
    assert "referral to noglue.org." in lines[start - 1]
    nested = lines[start + 1 : end]
    assert nested and all(line.startswith("  ") for line in nested)
    assert [line.split()[0] for line in nested] == [".", "net.", "provider.net."]
    assert "answer: ns1.provider.net. 300 A 127.3.5.1" in nested[-1]
    assert lines[end] == "  < ns1.provider.net. A: NOERROR, 127.3.5.1"
    # then the question itself, at the top level, and the summary
    final = hops[-1]
    assert final.split()[:3] == ["noglue.org.", "ns1.provider.net.", "127.3.5.1"]
    assert final.split()[5:7] == ["www.noglue.org.", "A"]
    assert "answer: www.noglue.org. 300 A 198.51.100.20" in final
    assert ";; NOERROR" in lines[-2] and "7 upstream queries" in lines[-2]
    assert lines[-1] == ";;   www.noglue.org. 300 A 198.51.100.20"


def test_columns_are_aligned(lab: Lab, lab_hints: Path) -> None:
    run = trace("www.example.com", hints=lab_hints, port=lab.port)
    hops = hop_lines(run.stdout)
    results = {line.index("  referral") if "referral" in line else line.index("  answer")
                for line in hops}  # fmt: skip
    assert len(results) == 1  # the result column starts at the same place on every line


def test_glue_case_is_priming_and_three_hops_and_exit_0(lab: Lab, lab_hints: Path) -> None:
    run = trace("www.example.com.", "A", hints=lab_hints, port=lab.port)
    assert run.returncode == 0, run.stderr
    hops = hop_lines(run.stdout)
    assert [line.split()[0] for line in hops] == [".", ".", "com.", "example.com."]
    assert "4 upstream queries" in run.stdout
    assert ";;   www.example.com. 300 A 192.0.2.1" in run.stdout


def test_json_is_one_object_per_line(lab: Lab, lab_hints: Path) -> None:
    run = trace("www.noglue.org", "--json", hints=lab_hints, port=lab.port)
    assert run.returncode == 0, run.stderr
    events: list[dict[str, Any]] = [json.loads(line) for line in run.stdout.splitlines()]
    kinds = [event["event"] for event in events]
    assert kinds[0] == "start" and kinds[-1] == "summary"
    assert kinds.count("sublookup") == 2 and kinds.count("sublookup_done") == 2
    priming, sub = [event for event in events if event["event"] == "sublookup"]
    assert priming["purpose"] == "priming" and priming["qname"] == "." and priming["qtype"] == "NS"
    hops = [event for event in events if event["event"] == "hop"]
    assert hops[0]["qname"] == "." and hops[0]["outcome"] == "answer"
    assert hops[1]["zone"] == "." and hops[1]["address"] == "127.1.0.1"
    assert hops[1]["outcome"] == "referral" and hops[1]["referral"] == "org."
    assert hops[2]["glue"] == [] and hops[2]["ns"] == ["ns1.provider.net."]
    assert sub == {
        "event": "sublookup",
        "depth": 1,
        "qname": "ns1.provider.net.",
        "qtype": "A",
        "zone": "noglue.org.",
        "purpose": "glueless",
    }
    assert [hop["depth"] for hop in hops] == [0, 0, 0, 1, 1, 1, 0]
    assert all(isinstance(hop["rtt_ms"], float) for hop in hops)
    summary = events[-1]
    assert summary["rcode"] == "NOERROR"
    assert summary["answer"] == ["www.noglue.org. 300 A 198.51.100.20"]
    assert summary["upstream_queries"] == len(hops) == 7


def test_loop_case_hits_its_limit_and_exits_1(lab: Lab, lab_hints: Path) -> None:
    run = trace("www.loop1.com", hints=lab_hints, port=lab.port)
    assert run.returncode == 1
    assert "!! limit: delegation loop at ns.loop2.net." in run.stdout
    summary = run.stdout.splitlines()[-1]
    assert summary.startswith(";; SERVFAIL: ") and "delegation loop" in summary

    run = trace("www.loop1.com", "--json", hints=lab_hints, port=lab.port)
    assert run.returncode == 1
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert any(e["event"] == "limit" and e["limit"] == "delegation loop" for e in events)
    assert events[-1]["rcode"] == "SERVFAIL"


@pytest.mark.parametrize(
    ("args", "rcode_text"),
    [
        (("doesnotexist.example.com",), ";; NXDOMAIN"),
        (("www.example.com", "MX"), ";; NODATA"),
    ],
)
def test_negative_answers_count_as_resolved(
    lab: Lab, lab_hints: Path, args: tuple[str, ...], rcode_text: str
) -> None:
    run = trace(*args, hints=lab_hints, port=lab.port)
    assert run.returncode == 0
    assert rcode_text in run.stdout
    assert " SOA " in run.stdout.splitlines()[-1]


def test_dead_server_and_tcp_are_shown(lab: Lab, lab_hints: Path) -> None:
    run = trace("big.example.com", "TXT", hints=lab_hints, port=lab.port)
    assert run.returncode == 0
    assert hop_lines(run.stdout)[-1].endswith("(tcp)")
    assert "... (" in hop_lines(run.stdout)[-1]  # a long record is shortened in hop lines
    run = trace("www.silent.com", "--timeout", "0.2", hints=lab_hints, port=lab.port)
    assert run.returncode == 0
    outcomes = [line.split("  ")[-1] for line in hop_lines(run.stdout)]
    assert outcomes[-1].startswith("answer:")


def test_engine_logs_stay_off_stdout(lab: Lab, lab_hints: Path) -> None:
    run = trace("www.wrongid.com", hints=lab_hints, port=lab.port)
    assert run.returncode == 0
    assert "reply_ignored" not in run.stdout
    assert "reply_ignored" in run.stderr  # a warning, on stderr


def test_runs_from_another_directory(lab: Lab, lab_hints: Path, tmp_path: Path) -> None:
    run = trace("www.example.com", hints=lab_hints, port=lab.port, cwd=tmp_path)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("www.example.com", "NOTATYPE"),
        ("www..example.com",),
        ("www.example.com", "--upstream-port", "70000"),
        ("www.example.com", "--timeout", "0"),
        ("www.example.com", "--upstream-port", "0"),
        ("www.example.com", "A", "stray"),
    ],
)
def test_bad_usage_exits_2(args: tuple[str, ...], tmp_path: Path) -> None:
    hints = tmp_path / "root.hints"
    hints.write_text(". 3600 NS a.root-servers.net.\na.root-servers.net. 3600 A 127.1.0.1\n")
    run = trace(*args, "--root-hints", str(hints), hints=None)
    assert run.returncode == 2
    assert run.stderr.startswith("resolver-trace: ") and run.stderr.count("\n") == 1, run.stderr
    assert "usage:" not in run.stderr  # one line, not the whole usage block
    assert run.stdout == ""


def test_version() -> None:
    from importlib.metadata import version

    run = trace("--version", hints=None)
    assert run.returncode == 0
    assert run.stdout == f"resolver-trace {version('resolver')}\n"


def test_unusable_hints_exit_2(tmp_path: Path) -> None:
    run = trace("www.example.com", hints=tmp_path / "missing.hints")
    assert run.returncode == 2
    assert "cannot read root hints" in run.stderr
    bad = tmp_path / "bad.hints"
    bad.write_text(". 3600 NS a.root-servers.net.\na.root-servers.net. 3600 A nope\n")
    run = trace("www.example.com", hints=bad)
    assert run.returncode == 2
    assert "line 2" in run.stderr


def test_help_documents_the_exit_status() -> None:
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0
    assert "exit status" in run.stdout
    assert "NXDOMAIN" in run.stdout and "SERVFAIL" in run.stdout
