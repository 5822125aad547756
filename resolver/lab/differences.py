"""What is compared between two resolvers' answers, after normalising, and which
differences are already known.

An answer becomes an :class:`Outcome`:

- ``rcode``: the RCODE's name, or ``TIMEOUT`` when no reply came in the client's time;
  SERVFAIL and TIMEOUT are one class (a resolver that gives up and one that is still
  trying both failed the client), and of a failure nothing else is compared;
- ``answer``: the answer section as a sorted tuple of ``owner TYPE rdata`` lines, owner
  and data in lower case, TTLs left out (they depend on when each cached what), RRSIGs
  reduced to ``owner RRSIG covered-type`` (the signatures are the zone's; which
  resolver carries which is what matters);
- ``ad``: the AD bit (both are asked with DO=1, RFC 4035 section 3.2.3);
- ``soa``: for a negative answer (NXDOMAIN, or NOERROR without the asked type), the
  owners of the SOA records in the authority section (RFC 2308 section 3);
- ``ttls``: TTLs above what the zone allows (the record's TTL in its zone file, capped
  at both resolvers' max-ttl of 86400; a negative answer's SOA at min(SOA TTL, MINIMUM),
  RFC 2308 section 5): checked on each side, and a difference when the two sides break
  the bounds differently.

A difference is *known* when a line of the known-differences file matches it
(:class:`KnownDifference`): ``ID KIND CONDITIONS WHY``, where KIND is ``rfc`` (ours is
right, the RFC section is in WHY), ``bug`` (ours is wrong: a regression test marked
xfail until fixed), or ``unbound`` (Unbound's own behaviour, neither wrong); CONDITIONS
are comma-separated ``key=value`` pairs that must all hold, ``+`` separating
alternatives: ``tag`` (in the question's tags), ``fields`` (every differing field is
one of these), ``mode``, ``qtype``, ``ours`` and ``unbound`` (the RCODEs; SERVFAIL
also matches TIMEOUT, TIMEOUT only a timeout), ``ours-ede`` and ``unbound-ede`` (an
Extended DNS Error INFO-CODE in the answer).  A key given twice must hold both times
(``tag=a,tag=b``: both tags).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.zone

from resolver.lab.generated_model import Hierarchy, Question

MAX_TTL = 86400  # both resolvers' cache ceiling (ours --max-ttl, Unbound cache-max-ttl)
FAILURES = frozenset({"SERVFAIL", "TIMEOUT"})
FIELDS = ("rcode", "answer", "ad", "soa", "ttls")
KINDS = ("rfc", "bug", "unbound")


@dataclass(frozen=True)
class Outcome:
    rcode: str
    answer: tuple[str, ...] = ()
    ad: bool = False
    soa: tuple[str, ...] = ()
    ttls: tuple[str, ...] = ()
    ede: tuple[int, ...] = ()
    """Extended DNS Error INFO-CODEs (RFC 8914): reported and matched, not compared."""
    text: str = ""
    """The whole reply as dig would show it (reported, not compared)."""

    @property
    def failed(self) -> bool:
        return self.rcode in FAILURES

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        return cls(data["rcode"], tuple(data["answer"]), bool(data["ad"]), tuple(data["soa"]),
                   tuple(data["ttls"]), tuple(data.get("ede", ())),
                   data.get("text", ""))  # fmt: skip


class TtlBounds:
    """The largest TTL each (owner, type) of a hierarchy may be given, from its zone files
    (every variant, and the changed parent: the largest wins)."""

    def __init__(self, hierarchy: Hierarchy) -> None:
        self.bounds: dict[tuple[str, int], int] = {}
        self.negative: dict[str, int] = {}
        texts = list(hierarchy.zones.items())
        texts += [item for zones in hierarchy.variants.values() for item in zones.items()]
        if hierarchy.change is not None:
            texts.append((hierarchy.change.parent, hierarchy.change.parent_text))
        for origin, text in texts:
            zone = dns.zone.from_text(text, origin, relativize=False, check_origin=False)
            for name, rdataset in zone.iterate_rdatasets():
                key = (name.to_text().lower(), rdataset.rdtype)
                self.bounds[key] = max(self.bounds.get(key, 0), rdataset.ttl)
                if rdataset.rdtype == dns.rdatatype.SOA:
                    minimum = min(rdataset.ttl, rdataset[0].minimum)
                    self.negative[origin] = max(self.negative.get(origin, 0), minimum)

    def bound(self, owner: str, rdtype: int) -> int | None:
        owner = owner.lower()
        if rdtype == dns.rdatatype.RRSIG:
            return None  # checked through the RRset it covers
        found = self.bounds.get((owner, rdtype))
        labels = owner.split(".")
        for cut in range(1, len(labels) - 1):  # a wildcard that may have made it
            if found is not None:
                break
            found = self.bounds.get(("*." + ".".join(labels[cut:]), rdtype))
        return None if found is None else min(found, MAX_TTL)


def _rdata_text(rrset: Any, rdata: Any) -> str:
    if rrset.rdtype == dns.rdatatype.RRSIG:
        return dns.rdatatype.to_text(rdata.type_covered)
    return str(rdata.to_text()).lower()


def outcome(reply: dns.message.Message | None, question: Question, bounds: TtlBounds) -> Outcome:
    if reply is None:
        return Outcome("TIMEOUT")
    rcode = dns.rcode.to_text(reply.rcode())
    answer = tuple(sorted(
        f"{rrset.name.to_text().lower()} {dns.rdatatype.to_text(rrset.rdtype)} "
        f"{_rdata_text(rrset, rdata)}"
        for rrset in reply.answer for rdata in rrset
    ))  # fmt: skip
    qtype = dns.rdatatype.from_text(question.qtype)
    negative = rcode == "NXDOMAIN" or (
        rcode == "NOERROR" and not any(rrset.rdtype == qtype for rrset in reply.answer)
    )
    soas = [rrset for rrset in reply.authority if rrset.rdtype == dns.rdatatype.SOA]
    soa = tuple(sorted({rrset.name.to_text().lower() for rrset in soas})) if negative else ()
    problems = []
    for rrset in reply.answer:
        limit = bounds.bound(rrset.name.to_text(), rrset.rdtype)
        if limit is not None and rrset.ttl > limit:
            problems.append(f"{rrset.name.to_text().lower()} "
                            f"{dns.rdatatype.to_text(rrset.rdtype)} above {limit}")  # fmt: skip
    for rrset in soas if negative else ():
        limit = bounds.negative.get(rrset.name.to_text().lower())
        if limit is not None and rrset.ttl > min(limit, MAX_TTL):
            problems.append(f"{rrset.name.to_text().lower()} SOA above {limit} (negative TTL)")
    ad = bool(reply.flags & dns.flags.AD)
    ede = tuple(int(error.code) for error in reply.extended_errors())
    return Outcome(rcode, answer, ad, soa, tuple(sorted(problems)), ede, reply.to_text())


def differing(ours: Outcome, theirs: Outcome) -> tuple[str, ...]:
    """The fields in which two outcomes differ (nothing when both failed)."""
    if ours.failed and theirs.failed:
        return ()
    if ours.failed != theirs.failed:
        return ("rcode",)
    return tuple(name for name in FIELDS if getattr(ours, name) != getattr(theirs, name))


def rcode_class(outcome: Outcome) -> str:
    return "SERVFAIL" if outcome.failed else outcome.rcode


# -- known differences -------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownDifference:
    id: str
    kind: str
    conditions: tuple[tuple[str, frozenset[str]], ...]
    why: str

    def matches(self, question: Question, mode: str, fields: Iterable[str], ours: Outcome,
                theirs: Outcome) -> bool:  # fmt: skip
        facts: dict[str, set[str]] = {
            "tag": set(question.tags),
            "mode": {mode},
            "qtype": {question.qtype},
            "ours": {ours.rcode, rcode_class(ours)},
            "unbound": {theirs.rcode, rcode_class(theirs)},
            "ours-ede": {str(code) for code in ours.ede},
            "unbound-ede": {str(code) for code in theirs.ede},
        }
        for key, allowed in self.conditions:
            if key == "fields":
                if not set(fields) <= allowed:
                    return False
            elif not facts[key] & allowed:
                return False
        return True


CONDITION_KEYS = ("tag", "fields", "mode", "qtype", "ours", "unbound", "ours-ede", "unbound-ede")


class KnownDifferencesError(ValueError):
    pass


def parse_known(text: str, source: str = "known-differences") -> list[KnownDifference]:
    known = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(None, 3)
        if len(parts) < 4:
            raise KnownDifferencesError(f"{source}:{number}: expected ID KIND CONDITIONS WHY")
        ident, kind, conditions, why = parts
        if kind not in KINDS:
            raise KnownDifferencesError(f"{source}:{number}: kind {kind!r} is not one of {KINDS}")
        parsed = []
        for condition in conditions.split(","):
            key, _, values = condition.partition("=")
            if key not in CONDITION_KEYS or not values:
                raise KnownDifferencesError(f"{source}:{number}: bad condition {condition!r}")
            if key == "fields" and not set(values.split("+")) <= set(FIELDS):
                raise KnownDifferencesError(f"{source}:{number}: fields are {FIELDS}")
            parsed.append((key, frozenset(values.split("+"))))
        known.append(KnownDifference(ident, kind, tuple(parsed), why.strip()))
    return known


def load_known(path: Path) -> list[KnownDifference]:
    return parse_known(path.read_text(), str(path))


def classify(
    known: list[KnownDifference],
    question: Question,
    mode: str,
    fields: tuple[str, ...],
    ours: Outcome,
    theirs: Outcome,
) -> KnownDifference | None:
    """The first line of the known-differences file that explains this difference."""
    for entry in known:
        if entry.matches(question, mode, fields, ours, theirs):
            return entry
    return None
