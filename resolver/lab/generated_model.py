"""Generated DNS hierarchies for differential testing: the model, its JSON form, the seeds.

A :class:`Hierarchy` is everything needed to serve one random hierarchy and ask it questions
again, byte for byte: the zone files (master-file text, absolute names), which server
serves which zones on which 127.50.S.N addresses, the misbehaving fronts
(:class:`Front`: slow, dropping, or stripping the SOA from negative answers, on
127.51.F.1), the addresses nothing listens on (127.52.D.1), how it is signed
(:class:`SigningPlan`), a delegation that changes half-way (:class:`Change`), and the
questions, each with the tags of what it exercises.  :func:`resolver.lab.generated.generate`
makes one from a seed; :meth:`Hierarchy.to_json` /
:meth:`Hierarchy.from_json` are the replay format of ``scripts/differential.py``.

Address plan (nothing here overlaps the lab's 127.1-127.9 or the benchmarks' 127.9):

============  =====================================================================
127.50.S.N    NSD server S (S = 0 is the root: a.root-servers. 127.50.0.1 and
              b.root-servers. 127.50.0.2)
127.51.F.1    front F: a dnspython relay to one NSD that delays, drops or strips
127.52.D.1    dead: in zone data, nothing bound (ICMP port unreachable)
============  =====================================================================
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ROOT_SERVERS = (("a.root-servers.", "127.50.0.1"), ("b.root-servers.", "127.50.0.2"))
HINTS_TTL = 3600000

FrontKind = Literal["slow", "drop", "strip-soa"]
FRONT_KINDS: dict[FrontKind, str] = {
    "slow": "every reply delayed by delay_ms",
    "drop": "the first UDP query of each question is dropped (a retry is answered)",
    "strip-soa": "NXDOMAIN and NODATA replies lose their authority section (no SOA, no proof)",
}

NsecKind = Literal["nsec", "nsec3", "nsec3-optout"]
ZoneFlaw = Literal["expired", "not-yet-valid", "ds-without-key", "missing-signatures", "insecure"]


@dataclass(frozen=True)
class Server:
    """One NSD: the zones it serves, in one variant ("" the main one, else a
    :attr:`Hierarchy.variants` key: the same origin with other contents)."""

    name: str
    addresses: tuple[str, ...]
    zones: tuple[str, ...]
    variant: str = ""


@dataclass(frozen=True)
class Front:
    """A misbehaving relay on ``address`` in front of the NSD at ``backend``."""

    address: str
    backend: str
    kind: FrontKind
    delay_ms: int = 0


@dataclass(frozen=True)
class SigningPlan:
    """How the hierarchy is signed (nothing signed when ``signed`` is false).

    ``denial``      origin -> NSEC, NSEC3, or NSEC3 with opt-out (default NSEC);
    ``flaws``       origin -> a zone-wide flaw (resolver/lab/signing.py's FLAWS);
    ``broken``      (owner, type) pairs whose signature has a byte flipped after signing.
    """

    signed: bool = False
    denial: dict[str, NsecKind] = field(default_factory=dict)
    flaws: dict[str, ZoneFlaw] = field(default_factory=dict)
    broken: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Question:
    qname: str
    qtype: str
    tags: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.qname} {self.qtype}"


@dataclass(frozen=True)
class Change:
    """A delegation changed at the parent while the old servers keep answering.

    ``parent_text`` replaces the parent's zone (``zone`` now delegated to new servers,
    which serve ``zone`` in the "new" variant); ``questions`` are asked before the change,
    then ``after`` seconds after those first questions (their answers expired, the old
    delegation still cached), and again at ``settle`` seconds (the parent's NS TTL
    expired too; the old servers still up)."""

    parent: str
    zone: str
    parent_text: str
    questions: tuple[Question, ...]
    settle: float
    after: float = 0.0


@dataclass
class Hierarchy:
    seed: int
    zones: dict[str, str]
    """Origin -> master-file text (absolute names), the main variant."""
    servers: tuple[Server, ...]
    fronts: tuple[Front, ...] = ()
    dead: tuple[str, ...] = ()
    signing: SigningPlan = field(default_factory=SigningPlan)
    variants: dict[str, dict[str, str]] = field(default_factory=dict)
    """Variant name -> origin -> text, for servers that serve another version of a zone."""
    change: Change | None = None
    questions: tuple[Question, ...] = ()
    zone_tags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Origin -> what its delegation and contents exercise (for reports and matching)."""

    def zone_text(self, origin: str, variant: str = "") -> str:
        if variant:
            return self.variants[variant][origin]
        return self.zones[origin]

    def hints_text(self) -> str:
        lines = [f". {HINTS_TTL} IN NS {name}" for name, _ in ROOT_SERVERS]
        lines += [f"{name} {HINTS_TTL} IN A {address}" for name, address in ROOT_SERVERS]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Hierarchy:
        signing = data.get("signing") or {}
        change = data.get("change")
        return cls(
            seed=int(data["seed"]),
            zones=dict(data["zones"]),
            servers=tuple(
                Server(s["name"], tuple(s["addresses"]), tuple(s["zones"]), s.get("variant", ""))
                for s in data["servers"]
            ),
            fronts=tuple(Front(**front) for front in data.get("fronts", ())),
            dead=tuple(data.get("dead", ())),
            signing=SigningPlan(
                signed=bool(signing.get("signed", False)),
                denial=dict(signing.get("denial", {})),
                flaws=dict(signing.get("flaws", {})),
                broken=tuple((owner, rtype) for owner, rtype in signing.get("broken", ())),
            ),
            variants={k: dict(v) for k, v in data.get("variants", {}).items()},
            change=None
            if change is None
            else Change(
                change["parent"],
                change["zone"],
                change["parent_text"],
                tuple(question_from_json(q) for q in change["questions"]),
                float(change["settle"]),
                float(change.get("after", 0.0)),
            ),
            questions=tuple(question_from_json(q) for q in data.get("questions", ())),
            zone_tags={k: tuple(v) for k, v in data.get("zone_tags", {}).items()},
        )


def question_from_json(data: dict[str, Any]) -> Question:
    return Question(data["qname"], data["qtype"], tuple(data.get("tags", ())))


def hierarchy_seed(run_seed: int, index: int) -> int:
    """The seed of the ``index``-th hierarchy of a run: runs with different seeds never
    share a hierarchy, and one hierarchy can be made again without the ones before it."""
    return random.Random(f"differential:{run_seed}:{index}").getrandbits(48)
