"""Differential testing against Unbound on generated hierarchies (``scripts/differential.py``).

For each hierarchy (resolver/lab/generated.py, from a seed): serve it
(resolver/lab/generated_serve.py), start both resolvers afresh
(resolver/lab/referees.py), and ask:

``cold``      each question after flushing both caches;
``warm``      the same question again at once (from the caches);
``sequence``  every question again in a shuffled order, caches kept between them (what
              one answer leaves in a cache must not spoil another);
``change-*``  for a hierarchy whose delegation changes: its questions before the
              change (``change-before``), after it once their answers have expired but
              not the old delegation (``change-after``: the old servers, still up, are
              asked), and once the delegation's TTL has run out too (``change-settled``).

Each pair of answers is compared (resolver/lab/differences.py).  A difference is asked
again at once (flushed, for cold and warm ones): *confirmed* when it comes back the same,
*flaky* when it does not (timing: which server answered first).  Each is then matched
against the known-differences file.  Every difference is written to
``OUT/differences.jsonl``; each confirmed one not known, and the first of each known
kind, also to ``OUT/replays/`` as a file that :func:`replay` serves and asks again.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resolver.lab.differences import (
    KnownDifference,
    Outcome,
    TtlBounds,
    classify,
    differing,
)
from resolver.lab.generated import generate
from resolver.lab.generated_model import Hierarchy, Question, hierarchy_seed, question_from_json
from resolver.lab.generated_serve import ServedHierarchy
from resolver.lab.referees import Referees

AFTER_WINDOW = 1.0  # seconds the change's first questions may take for "after" to be asked
HIERARCHY_BUDGET = 600.0  # seconds one hierarchy may take before its remaining questions go
MODES = (
    "cold",
    "warm",
    "sequence",
    "change-before",
    "change-after",
    "change-settled",
    "cd",
    "cd-then-checked",
)


@dataclass
class Difference:
    hierarchy: int  # the hierarchy's seed
    mode: str
    question: Question
    fields: tuple[str, ...]
    ours: Outcome
    unbound: Outcome
    confirmed: bool
    known: str | None = None
    kind: str | None = None
    history: tuple[Question, ...] = ()
    """Sequence mode: the questions asked before this one since the caches were flushed."""
    after_bug: str | None = None
    """An unknown difference found after a known bug of ours showed in the same hierarchy
    (the bug may have left state behind: a zone's keys judged bogus, a server marked lame):
    reported, not counted as new until that bug is fixed."""

    @property
    def new(self) -> bool:
        return self.confirmed and self.known is None and self.after_bug is None

    def summary(self) -> str:
        state = "confirmed" if self.confirmed else "flaky"
        label = f"known {self.known} ({self.kind})" if self.known else "NEW"
        if self.known is None and self.after_bug:
            label = f"after bug {self.after_bug}"
        return (f"{label} {state} {self.mode} {self.question} [{','.join(self.fields)}] "
                f"ours {self.ours.rcode} {list(self.ours.answer)[:3]} ad={self.ours.ad} "
                f"soa={list(self.ours.soa)} | unbound {self.unbound.rcode} "
                f"{list(self.unbound.answer)[:3]} ad={self.unbound.ad} "
                f"soa={list(self.unbound.soa)} (hierarchy {self.hierarchy})")  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {
            "hierarchy_seed": self.hierarchy, "mode": self.mode,
            "question": _question(self.question),
            "fields": list(self.fields), "ours": self.ours.to_json(),
            "unbound": self.unbound.to_json(), "confirmed": self.confirmed, "known": self.known,
            "kind": self.kind, "history": [_question(q) for q in self.history],
            "after_bug": self.after_bug,
        }  # fmt: skip


def _question(question: Question) -> dict[str, Any]:
    return {"qname": question.qname, "qtype": question.qtype, "tags": list(question.tags)}


@dataclass
class HierarchyResult:
    seed: int
    questions: int = 0
    asked: int = 0  # answers compared (each question cold, warm, in sequence; the change's)
    differences: list[Difference] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None


class Session:
    """One hierarchy served, both resolvers on it, and the comparisons made so far."""

    def __init__(self, hierarchy: Hierarchy, served: ServedHierarchy, referees: Referees,
                 known: list[KnownDifference]) -> None:  # fmt: skip
        self.hierarchy = hierarchy
        self.served = served
        self.referees = referees
        self.known = known
        self.result = HierarchyResult(hierarchy.seed, len(hierarchy.questions))

    def compare(self, mode: str, question: Question, mine: Outcome, theirs: Outcome,
                again: Callable[[], tuple[Outcome, Outcome]] | None,
                history: tuple[Question, ...] = ()) -> None:  # fmt: skip
        self.result.asked += 1
        fields = differing(mine, theirs)
        if not fields:
            return
        confirmed = True
        if again is not None:  # the same difference, the same answers (timing aside)?
            mine2, theirs2 = again()
            confirmed = differing(mine2, theirs2) == fields
            confirmed = confirmed and _same_class(mine, mine2) and _same_class(theirs, theirs2)
        entry = classify(self.known, question, mode, fields, mine, theirs)
        bugs = [d.known for d in self.result.differences if d.kind == "bug"]
        self.result.differences.append(Difference(
            self.hierarchy.seed, mode, question, fields, mine, theirs, confirmed,
            entry.id if entry else None, entry.kind if entry else None, history,
            bugs[0] if bugs and entry is None else None,
        ))  # fmt: skip

    def cold_and_warm(self, question: Question) -> None:
        referees = self.referees

        def cold() -> tuple[Outcome, Outcome]:
            referees.flush()
            return referees.ask(question)

        def warm() -> tuple[Outcome, Outcome]:
            cold()
            return referees.ask(question)

        self.compare("cold", question, *cold(), cold)
        self.compare("warm", question, *referees.ask(question), warm)

    def checking_disabled(self, question: Question) -> None:
        """CD=1 from a cold cache, then the same question with CD=0: a stub that validates
        on its own gets the data unchecked (RFC 4035 section 3.2.2), and what that left
        in the cache must not reach a client that wants it checked (section 4.7: data
        cached unchecked is validated before it is answered with CD=0)."""
        referees = self.referees

        def unchecked() -> tuple[Outcome, Outcome]:
            referees.flush()
            return referees.ask(question, checking_disabled=True)

        def then_checked() -> tuple[Outcome, Outcome]:
            unchecked()
            return referees.ask(question)

        self.compare("cd", question, *unchecked(), unchecked)
        self.compare("cd-then-checked", question, *referees.ask(question), then_checked)

    def sequence(self, questions: list[Question], deadline: float) -> None:
        self.referees.flush()
        for number, question in enumerate(questions):
            if time.monotonic() > deadline:
                return
            mine, theirs = self.referees.ask(question)
            self.compare("sequence", question, mine, theirs,
                         lambda q=question: self.referees.ask(q),  # type: ignore[misc]
                         tuple(questions[:number]))  # fmt: skip

    def change(self) -> None:
        for mode, question, mine, theirs in change_protocol(self.served, self.referees):
            self.compare(mode, question, mine, theirs, None)


def _same_class(first: Outcome, second: Outcome) -> bool:
    """The same answer apart from what timing may change (the reply text, TTLs, and
    between two failures whether it was SERVFAIL or no answer in time)."""
    if first.failed or second.failed:
        return first.failed and second.failed
    return (first.rcode, first.answer, first.ad, first.soa) == (
        second.rcode, second.answer, second.ad, second.soa)  # fmt: skip


def change_protocol(
    served: ServedHierarchy, referees: Referees
) -> Iterator[tuple[str, Question, Outcome, Outcome]]:
    """The change's questions before it, after it, and once it has settled.  Answers
    (TTL 1) and the old delegation (TTL 5) were cached while the first questions were
    asked: "after" comes when every answer has expired and the delegation surely has not,
    which needs the first questions to have taken at most ``AFTER_WINDOW`` s (slow or dead
    servers can take longer: then "after" is not asked, rather than asked at a moment when
    either resolver may rightly have either state); "settled" comes once the delegation
    has expired whenever in the first questions it was cached."""
    change = served.hierarchy.change
    assert change is not None
    referees.flush()
    started = time.monotonic()
    for question in change.questions:
        yield ("change-before", question, *referees.ask(question))
    asked = time.monotonic() - started
    served.apply_change()
    stages = [("change-settled", change.settle + asked)]
    if asked <= AFTER_WINDOW:
        stages.insert(0, ("change-after", change.after))
    for mode, wait in stages:
        time.sleep(max(wait - (time.monotonic() - started), 0))
        for question in change.questions:
            yield (mode, question, *referees.ask(question))


STAGES = frozenset({"cold", "sequence", "change", "cd"})
"""What a run asks: each question cold then warm, all in sequence, the change, and in a
signed hierarchy some questions with CD=1 then CD=0 (:func:`checking_disabled_questions`)."""

CD_OTHERS = 10  # questions with CD=1 per signed hierarchy besides those about its flaws


def checking_disabled_questions(hierarchy: Hierarchy) -> list[Question]:
    """Where CD makes a difference: every question about data that will not validate
    (a zone's flaw, a broken signature, name servers in a bogus zone), and the first
    ``CD_OTHERS`` of the rest; none in an unsigned hierarchy."""
    if not hierarchy.signing.signed:
        return []
    flawed: list[Question] = []
    others: list[Question] = []
    for question in hierarchy.questions:
        bogus = any(tag.startswith("flaw-") or tag in ("broken-signature", "ns-in-bogus-zone")
                    for tag in question.tags)  # fmt: skip
        (flawed if bogus else others).append(question)
    return flawed + others[:CD_OTHERS]


def run_hierarchy(hierarchy: Hierarchy, workdir: Path, known: list[KnownDifference],
                  budget: float = HIERARCHY_BUDGET,
                  stages: frozenset[str] = STAGES) -> HierarchyResult:  # fmt: skip
    """Serve one hierarchy, ask every question in every mode, compare."""
    started = time.monotonic()
    deadline = started + budget
    served = ServedHierarchy(hierarchy, workdir / "served")
    try:
        with served:
            hints = served.write_hints(workdir / "root.hints")
            bounds = TtlBounds(hierarchy)
            with Referees(workdir, hints, served.trust_anchor, bounds) as referees:
                session = Session(hierarchy, served, referees, known)
                _ask_all(session, deadline, stages)
                result = session.result
                result.error = referees.alive()
    except Exception as error:  # reported with the seed: the run goes on
        result = HierarchyResult(hierarchy.seed, len(hierarchy.questions))
        result.error = f"{type(error).__name__}: {error}"
    result.seconds = time.monotonic() - started
    return result


def _ask_all(session: Session, deadline: float, stages: frozenset[str]) -> None:
    questions = list(session.hierarchy.questions)
    for question in questions if "cold" in stages else ():
        if time.monotonic() > deadline:
            break
        session.cold_and_warm(question)
    shuffled = list(questions)
    random.Random(session.hierarchy.seed).shuffle(shuffled)
    if "sequence" in stages:
        session.sequence(shuffled, deadline)
    changes = "change" in stages and session.hierarchy.change is not None
    if changes and time.monotonic() < deadline:
        session.change()
    for question in checking_disabled_questions(session.hierarchy) if "cd" in stages else ():
        if time.monotonic() > deadline:
            break
        session.checking_disabled(question)


# -- a run ---------------------------------------------------------------------------------------


@dataclass
class RunSummary:
    seed: int
    hierarchies: int = 0
    questions: int = 0
    asked: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)

    def new(self) -> list[Difference]:
        """Confirmed differences no line of the known-differences file explains (and
        no known bug of ours found before them in their hierarchy)."""
        return [d for d in self.differences if d.new]

    def counts(self) -> dict[str, Any]:
        by_known: dict[str, int] = {}
        for difference in self.differences:
            key = difference.known or ("new" if difference.confirmed else "flaky-new")
            if difference.known is None and difference.after_bug:
                key = f"after-bug-{difference.after_bug}"
            by_known[key] = by_known.get(key, 0) + 1
        return {
            "seed": self.seed, "hierarchies": self.hierarchies, "questions": self.questions,
            "compared": self.asked, "seconds": round(self.seconds, 1),
            "differences": len(self.differences),
            "confirmed": sum(d.confirmed for d in self.differences),
            "flaky": sum(not d.confirmed for d in self.differences),
            "new": len(self.new()), "by_known": dict(sorted(by_known.items())),
            "errors": self.errors,
        }  # fmt: skip


def run(seed: int, hierarchies: int, questions: int, known: list[KnownDifference],
        out: Path | None = None, max_seconds: float | None = None,
        progress: Callable[[str], None] = print, first: int = 0,
        stages: frozenset[str] = STAGES) -> RunSummary:  # fmt: skip
    """``hierarchies`` hierarchies of ``questions`` questions from ``seed``; stops starting
    new ones after ``max_seconds``."""
    summary = RunSummary(seed)
    started = time.monotonic()
    replays_written: set[str] = set()
    if out is not None:
        (out / "replays").mkdir(parents=True, exist_ok=True)
    for index in range(first, first + hierarchies):
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            progress(f"time is up after {summary.hierarchies} hierarchies")
            break
        hierarchy = generate(hierarchy_seed(seed, index), questions)
        with tempfile.TemporaryDirectory(prefix="differential-") as workdir:
            result = run_hierarchy(hierarchy, Path(workdir), known, stages=stages)
        summary.hierarchies += 1
        summary.questions += result.questions
        summary.asked += result.asked
        summary.differences += result.differences
        if result.error:
            summary.errors.append(f"hierarchy {hierarchy.seed}: {result.error}")
        new = sum(d.new for d in result.differences)
        progress(f"[{index}] hierarchy {hierarchy.seed}: {result.asked} compared, "
                 f"{len(result.differences)} differences ({new} new) in {result.seconds:.1f} s"
                 + (f"; ERROR {result.error}" if result.error else ""))  # fmt: skip
        for difference in result.differences:
            if difference.new:
                progress("  " + difference.summary())
        summary.seconds = time.monotonic() - started
        if out is not None:  # after each hierarchy: a run stopped half-way still has one
            _write(out, hierarchy, result, replays_written)
            (out / "summary.json").write_text(json.dumps(summary.counts(), indent=1) + "\n")
    summary.seconds = time.monotonic() - started
    return summary


def summarise(directories: list[Path], known: list[KnownDifference]) -> RunSummary:
    """Several runs' output directories (shards of one run, say) as one summary, each
    difference classified again with ``known`` (a file edited since the run), with the
    tags this version of the generator gives its question (when it makes the same
    questions from the seed)."""
    total = RunSummary(seed=-1)
    tags = _TagsNow()
    for directory in directories:
        counts = json.loads((directory / "summary.json").read_text())
        total.seed = counts["seed"] if total.seed in (-1, counts["seed"]) else -2
        total.hierarchies += counts["hierarchies"]
        total.questions += counts["questions"]
        total.asked += counts["compared"]
        total.seconds += counts["seconds"]
        total.errors += counts["errors"]
        bugs: dict[int, str] = {}  # hierarchy seed -> its first known bug of ours
        for line in (directory / "differences.jsonl").read_text().splitlines():
            data = json.loads(line)
            difference = Difference(
                data["hierarchy_seed"], data["mode"],
                tags.of(data["hierarchy_seed"], question_from_json(data["question"])),
                tuple(data["fields"]), Outcome.from_json(data["ours"]),
                Outcome.from_json(data["unbound"]), bool(data["confirmed"]),
            )  # fmt: skip
            entry = classify(known, difference.question, difference.mode, difference.fields,
                             difference.ours, difference.unbound)  # fmt: skip
            if entry is not None:
                difference.known, difference.kind = entry.id, entry.kind
                if entry.kind == "bug":
                    bugs.setdefault(difference.hierarchy, entry.id)
            else:
                difference.after_bug = bugs.get(difference.hierarchy)
            total.differences.append(difference)
    return total


class _TagsNow:
    """A question's tags as the generator gives them now (by the hierarchy's seed)."""

    def __init__(self) -> None:
        self.questions: dict[int, dict[tuple[str, str], Question]] = {}

    def of(self, seed: int, question: Question) -> Question:
        if seed not in self.questions:
            hierarchy = generate(seed)
            asked = [
                *hierarchy.questions,
                *(hierarchy.change.questions if hierarchy.change else ()),
            ]
            self.questions[seed] = {(q.qname, q.qtype): q for q in asked}
        return self.questions[seed].get((question.qname, question.qtype), question)


def _write(out: Path, hierarchy: Hierarchy, result: HierarchyResult, written: set[str]) -> None:
    with (out / "differences.jsonl").open("a") as file:
        for difference in result.differences:
            file.write(json.dumps(difference.to_json()) + "\n")
    for number, difference in enumerate(result.differences):
        shadowed = difference.after_bug and f"after-bug-{difference.after_bug}"
        key = difference.known or shadowed or f"new-{hierarchy.seed}-{number}"
        if difference.confirmed and key not in written:  # each new one, one of each known
            written.add(key)
            write_replay(out / "replays" / f"{key}.json", hierarchy, difference)


def write_replay(path: Path, hierarchy: Hierarchy, difference: Difference) -> None:
    path.write_text(json.dumps({"hierarchy": hierarchy.to_json(), **difference.to_json()},
                               indent=1) + "\n")  # fmt: skip


# -- replaying one difference --------------------------------------------------------------------


def replay(path: Path, workdir: Path) -> tuple[Difference, tuple[Outcome, Outcome]]:
    """Serve the hierarchy of a replay file and ask its question as it was asked (mode,
    and in sequence mode the questions before it); returns the recorded difference and
    what both resolvers answer now."""
    hierarchy, recorded = load_replay(path)
    with ServedHierarchy(hierarchy, workdir / "served") as served:
        hints = served.write_hints(workdir / "root.hints")
        with Referees(workdir, hints, served.trust_anchor, TtlBounds(hierarchy)) as referees:
            return recorded, ask_as_recorded(served, referees, recorded)


def load_replay(path: Path) -> tuple[Hierarchy, Difference]:
    """A replay file: the hierarchy, and the difference as recorded (outcomes not yet
    recorded, in a hand-written case, read as ``UNRECORDED``)."""
    data = json.loads(path.read_text())
    unrecorded = Outcome("UNRECORDED")

    def recorded_outcome(key: str) -> Outcome:
        return Outcome.from_json(data[key]) if data.get(key) else unrecorded

    return Hierarchy.from_json(data["hierarchy"]), Difference(
        data.get("hierarchy_seed", 0), data["mode"], question_from_json(data["question"]),
        tuple(data.get("fields", ())), recorded_outcome("ours"), recorded_outcome("unbound"),
        bool(data.get("confirmed", True)), data.get("known"), data.get("kind"),
        tuple(question_from_json(q) for q in data.get("history", ())),
    )  # fmt: skip


def record_replay(path: Path, mine: Outcome, theirs: Outcome) -> None:
    """Write what both resolvers answer now into the replay file (for a new case, or
    once a difference has changed)."""
    data = json.loads(path.read_text())
    data.update(ours=mine.to_json(), unbound=theirs.to_json(),
                fields=list(differing(mine, theirs)))  # fmt: skip
    path.write_text(json.dumps(data, indent=1) + "\n")


def ask_as_recorded(served: ServedHierarchy, referees: Referees,
                    recorded: Difference) -> tuple[Outcome, Outcome]:  # fmt: skip
    mode, question = recorded.mode, recorded.question
    if mode.startswith("change-"):
        for step, asked, mine, theirs in change_protocol(served, referees):
            if (step, asked.qname, asked.qtype) == (mode, question.qname, question.qtype):
                return mine, theirs
        raise ValueError(f"{question} is not one of the change's questions")
    referees.flush()
    for earlier in recorded.history if mode == "sequence" else ():
        referees.ask(earlier)
    answers = referees.ask(question, checking_disabled=mode.startswith("cd"))
    return referees.ask(question) if mode in ("warm", "cd-then-checked") else answers
