"""Differential testing against Unbound (scripts/differential.py) in the suite.

- a short fixed-seed run: a few generated hierarchies served by NSD, the same questions to
  this resolver and to Unbound, cold, warm and in sequence; any confirmed difference that
  tests/differential/known-differences does not explain fails the test, with its replay;
- every minimal case of tests/differential/cases/ replayed: for a difference where ours
  is right (``rfc``) or that is Unbound's (``unbound``), the difference must still be
  there and still match its line; for a bug of ours (``bug``) the answers must be the same,
  which they are not until the engine is fixed (``xfail(strict=True)``: the day it is
  fixed the test passes and strict makes that a failure: then delete the bug's line in
  the known-differences file, and its case, whose id no line names any more, is an
  ordinary regression test from then on).

Needs what the interop tier needs (root for port 53, nsd, unbound) and ldnsutils.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resolver.lab.differences import classify, differing, load_known
from resolver.lab.differential import replay, run

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
KNOWN_FILE = ROOT / "tests" / "differential" / "known-differences"
KNOWN = load_known(KNOWN_FILE)
KINDS = {entry.id: entry.kind for entry in KNOWN}
CASES = sorted((ROOT / "tests" / "differential" / "cases").glob("*.json"))

SHORT_RUN_SEED = 23
CHANCE_ATTEMPTS = 3
"""Unbound picks among a zone's servers at random: where most are dead (the case
stripping-and-dead-servers), it may reach the live one in time and answer as ours does.
Ours must answer as recorded every time; the difference must show within three replays."""
SHORT_RUN_HIERARCHIES = 3
SHORT_RUN_QUESTIONS = 35


def _case_id(path: Path) -> str:
    return path.stem


def _known(path: Path) -> str:
    return str(json.loads(path.read_text())["known"])


BUG_CASES = [
    pytest.param(path, id=_case_id(path), marks=pytest.mark.xfail(
        strict=True, reason=f"differential: {_known(path)}, fixed after merge"))
    if KINDS.get(_known(path)) == "bug" else pytest.param(path, id=_case_id(path))
    for path in CASES if KINDS.get(_known(path)) in ("bug", None)
]  # fmt: skip
"""Bugs of ours (xfail until fixed), and fixed ones (their line deleted): the same test."""
EXPLAINED_CASES = [pytest.param(path, id=_case_id(path)) for path in CASES
                   if KINDS.get(_known(path)) in ("rfc", "unbound")]  # fmt: skip


def test_short_run_finds_nothing_new(signing_ready: None, tmp_path: Path) -> None:
    """A fixed seed: the same hierarchies and questions every time (about a minute)."""
    summary = run(SHORT_RUN_SEED, SHORT_RUN_HIERARCHIES, SHORT_RUN_QUESTIONS, KNOWN,
                  out=tmp_path, progress=lambda line: None)  # fmt: skip
    assert summary.hierarchies == SHORT_RUN_HIERARCHIES and not summary.errors, summary.errors
    assert summary.asked >= 3 * SHORT_RUN_HIERARCHIES * SHORT_RUN_QUESTIONS
    new = "\n".join(d.summary() for d in summary.new())
    replays = sorted(p.name for p in (tmp_path / "replays").glob("new-*.json"))
    assert not new, f"new differences (replays: {replays}, in {tmp_path}):\n{new}"


@pytest.mark.parametrize("path", BUG_CASES)
def test_bug_of_ours_is_fixed(path: Path, signing_ready: None, tmp_path: Path) -> None:
    """The minimal case of a bug of ours: ours answers as Unbound does."""
    _recorded, (mine, theirs) = replay(path, tmp_path)
    assert differing(mine, theirs) == (), f"ours {mine.text}\n--- unbound {theirs.text}"


@pytest.mark.parametrize("path", EXPLAINED_CASES)
def test_explained_difference_is_still_there(
    path: Path, signing_ready: None, tmp_path: Path
) -> None:
    """The minimal case of a difference where ours is right (or Unbound has its own way):
    still different, the same way, and still matched by its line."""
    for attempt in range(CHANCE_ATTEMPTS):
        (workdir := tmp_path / str(attempt)).mkdir()
        recorded, (mine, theirs) = replay(path, workdir)
        assert (mine.rcode, mine.answer) == (recorded.ours.rcode, recorded.ours.answer)
        fields = differing(mine, theirs)
        if fields:
            break
    assert fields == recorded.fields, f"ours {mine.text}\n--- unbound {theirs.text}"
    entry = classify(KNOWN, recorded.question, recorded.mode, fields, mine, theirs)
    assert entry is not None and entry.id == recorded.known
