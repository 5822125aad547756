"""A traced resolution as its readers take it: the engine's events between a start and a
summary, and the words a person reads for them.

``resolver-trace`` prints the events (:mod:`resolver.ops.trace`), records them for a
drawing (:mod:`resolver.ops.drawing`), and ``--json`` writes each as one object
(:meth:`fields`, with ``"event"`` naming its kind); the web view traces the same way.
Readers dispatch on the event's type, never on its words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from resolver.cache.records import Security
from resolver.iterate.answer import Answer
from resolver.iterate.classify import Kind
from resolver.iterate.events import Event, Hop
from resolver.iterate.plan import Purpose
from resolver.wire import Rcode

# Why a sub-lookup is in the plan, for a person.
SUBLOOKUP_WHY = {
    Purpose.PRIMING: "priming the root, RFC 8109",
    Purpose.NS_ADDRESS: "a name server of {zone} without glue",
    Purpose.KEYS: "the keys of {zone}, to validate its signatures",
    Purpose.DS: "is {zone} signed? its DS RRset at the parent",
}
RECORD_WIDTH = 80  # a longer record is shortened (the summary has it whole)


@dataclass(slots=True)
class Start:
    """What is traced, from where."""

    name: ClassVar[str] = "start"
    qname: str
    qtype: str
    hints: str
    port: int

    def fields(self) -> dict[str, Any]:
        return {"qname": self.qname, "qtype": self.qtype, "hints": self.hints, "port": self.port}


@dataclass(slots=True)
class Summary:
    """How the question ended."""

    name: ClassVar[str] = "summary"
    rcode: str
    answer: list[str]
    authority: list[str]
    reason: str
    elapsed_ms: float | None  # None: not known (a trace cut short)
    upstream_queries: int | None
    security: str  # secure, insecure, bogus or unchecked

    def fields(self) -> dict[str, Any]:
        return {"rcode": self.rcode, "answer": self.answer, "authority": self.authority,
                "reason": self.reason, "elapsed_ms": self.elapsed_ms,
                "upstream_queries": self.upstream_queries, "security": self.security}  # fmt: skip


TraceEvent = Event | Start | Summary


def security_text(security: int) -> str:
    """``secure``, ``insecure``, ``bogus`` or ``unchecked`` (not validated)."""
    return Security(security).name.lower()


def summary_of(result: Answer, elapsed_ms: float) -> Summary:
    return Summary(Rcode.text(result.rcode), [rr.to_text() for rr in result.answer],
                   [rr.to_text() for rr in result.authority],
                   result.failure.text if result.failure else "", round(elapsed_ms, 1),
                   result.upstream_queries, security_text(result.security))  # fmt: skip


def cut_short(reason: str) -> Summary:
    """The summary of a trace that did not end (it ran out of time)."""
    return Summary("SERVFAIL", [], [], reason, None, None, "unchecked")


def as_json(event: TraceEvent) -> dict[str, Any]:
    """An event as ``--json`` prints it: its kind under ``"event"``, then its fields."""
    return {"event": event.name, **event.fields()}


def short_record(record: str) -> str:
    if len(record) <= RECORD_WIDTH:
        return record
    return f"{record[: RECORD_WIDTH - 3]}... ({len(record)} chars)"


def outcome_text(hop: Hop) -> str:
    """What came back from one hop, in a few words."""
    outcome = hop.outcome
    if not isinstance(outcome, Kind):
        return outcome.value  # a transport failure: timeout, port unreachable, ...
    if hop.referral is not None:
        glued = set(hop.glue)
        servers = ", ".join(f"{ns}{'' if ns in glued else ' (no glue)'}" for ns in hop.ns)
        return f"referral to {hop.referral}  NS {servers}"
    if outcome is Kind.LAME:
        return f"lame: {hop.reason}"
    records = [short_record(record) for record in hop.records]
    if outcome is Kind.CNAME:
        return f"CNAME to {hop.target}: " + "; ".join(records)
    if outcome is Kind.ANSWER:
        return "answer: " + "; ".join(records)
    if outcome in (Kind.NXDOMAIN, Kind.NODATA):
        return outcome.name + (": " + "; ".join(records) if records else "")
    return outcome.name.lower()


def why(purpose: Purpose, zone: object) -> str:
    return SUBLOOKUP_WHY.get(purpose, "{zone}").format(zone=zone)
