"""What a generated zone holds, and the questions worth asking about it.

:class:`Draft` is a hierarchy being built (resolver/lab/generated.py lays out the zones,
servers and delegations); :func:`add_contents` fills one zone with ordinary data and a
random choice of the awkward cases (:data:`FEATURES`), each leaving :class:`Candidate`
questions behind; :func:`sample_questions` draws the questions from them.

Every owner name is absolute, and placed in the zone that is authoritative for it (glue
excepted, which the delegation code writes into the parent), so every file loads in NSD:
no CNAME beside other data, nothing below a DNAME, nothing below a zone cut but glue.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from resolver.lab.generated_model import Question

ANSWER_TTLS = (60, 300, 3600, 86400)
SOA_MINIMUMS = (0, 30, 300, 3600)
SOA_TTLS = (0, 60, 300, 3600)
MAX_TTL = 2147483647  # RFC 2181 section 8: the largest TTL a record may have

OTHER_QTYPES = ("A", "AAAA", "TXT", "MX", "NS", "SOA", "CNAME", "DS", "DNSKEY", "SRV", "PTR",
                "CAA", "DNAME", "TYPE65280")  # fmt: skip


@dataclass
class Candidate:
    """A name worth asking, the types that make sense for it, what it exercises, and
    the zones its answer passes through (their tags are added to the question's)."""

    qname: str
    qtypes: tuple[str, ...]
    tags: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    weight: int = 1


@dataclass
class Draft:
    """A hierarchy being built: zones and their records, servers, tags, candidates."""

    rng: random.Random
    order: list[str] = field(default_factory=list)
    """Zone origins, parents before children; a zone only refers to earlier ones (name
    servers, CNAME targets) unless a case says otherwise, so nothing loops by chance."""
    parent: dict[str, str | None] = field(default_factory=dict)
    records: dict[str, list[str]] = field(default_factory=dict)
    ttl: dict[str, int] = field(default_factory=dict)
    tags: dict[str, set[str]] = field(default_factory=dict)
    """Origin -> how the zone is reached and signed: every question below it gets these."""
    features: dict[str, set[str]] = field(default_factory=dict)
    """Origin -> the awkward cases its data holds (their own questions carry the tag)."""
    name_tags: dict[str, set[str]] = field(default_factory=dict)
    """Name -> tags of what is special about that very name (a broken signature)."""
    candidates: list[Candidate] = field(default_factory=list)
    labels: dict[str, set[str]] = field(default_factory=dict)
    """Origin -> the first labels of the names it holds (to keep features apart)."""
    tlds: list[str] = field(default_factory=list)

    def add(self, zone: str, owner: str, rtype: str, rdata: str, ttl: int | None = None) -> None:
        """A record in ``zone``'s file (TTL: the zone's default)."""
        ttl = self.ttl.get(zone, 3600) if ttl is None else ttl
        self.records[zone].append(f"{owner} {ttl} IN {rtype} {rdata}")
        if owner != zone and owner.endswith("." + zone):
            self.labels[zone].add(owner[: -len(zone) - 1].split(".")[-1])

    def tag(self, zone: str, *tags: str) -> None:
        self.tags[zone].update(tags)

    def ask(self, qname: str, qtypes: tuple[str, ...], *tags: str, zones: tuple[str, ...] = (),
            weight: int = 1) -> None:  # fmt: skip
        self.candidates.append(Candidate(qname, qtypes, tags, zones, weight))

    def leaves(self) -> list[str]:
        """Zones below the TLDs (where the data and the awkward cases live)."""
        return [zone for zone in self.order if zone != "." and zone not in self.tlds]

    def earlier(self, zone: str) -> list[str]:
        """Leaf zones made before ``zone`` and not above or below it."""
        before = self.leaves()[: self.leaves().index(zone)] if zone in self.leaves() else []
        return [z for z in before if not _related(z, zone)]

    def free_label(self, zone: str, label: str) -> bool:
        return label not in self.labels[zone]


def _related(a: str, b: str) -> bool:
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def address(rng: random.Random, block: str = "192.0.2") -> str:
    return f"{block}.{rng.randrange(1, 255)}"


# -- the ordinary data every leaf zone has ---------------------------------------------------


def add_basics(draft: Draft, zone: str) -> None:
    rng = draft.rng
    www = f"www.{zone}"
    for host in sorted({address(rng) for _ in range(rng.randint(1, 3))}):
        draft.add(zone, www, "A", host)
    if rng.random() < 0.5:
        draft.add(zone, www, "AAAA", f"2001:db8::{rng.randrange(1, 65535):x}")
    draft.add(zone, f"txt.{zone}", "TXT", f'"generated {zone}"')
    mail = f"mail.{zone}"
    exchange = www if rng.random() < 0.7 else f"www.{rng.choice(draft.earlier(zone) or [zone])}"
    draft.add(zone, mail, "MX", f"10 {exchange}")
    draft.ask(zone, ("SOA", "NS", "DNSKEY", "DS", "A", "MX", "TXT"), "apex")
    draft.ask(www, ("A", "AAAA", "TXT", "MX", "CNAME"), "answer")
    draft.ask(mail, ("MX", "A"), "answer")
    draft.ask(f"txt.{zone}", ("TXT", "A"), "answer")
    draft.ask(f"nx{rng.randrange(100)}.{zone}", ("A", "AAAA", "TXT"), "nxdomain")
    draft.ask(f"x.www.{zone}", ("A",), "nxdomain")


# -- the awkward cases -------------------------------------------------------------------------


def _target_zone(draft: Draft, zone: str) -> str:
    """A zone for a CNAME or DNAME to point into: an earlier one when there is one."""
    return draft.rng.choice(draft.earlier(zone) or [zone])


def _ent(draft: Draft, zone: str) -> None:
    draft.add(zone, f"h.e.ent.{zone}", "A", address(draft.rng))
    draft.ask(f"ent.{zone}", ("A", "TXT"), "ent", "nodata", weight=2)
    draft.ask(f"e.ent.{zone}", ("A",), "ent", "nodata")
    draft.ask(f"h.e.ent.{zone}", ("A", "AAAA"), "ent")
    draft.ask(f"x.ent.{zone}", ("A",), "ent", "nxdomain")


def _wildcard(draft: Draft, zone: str) -> None:
    rng = draft.rng
    draft.add(zone, f"*.wild.{zone}", "A", address(rng))
    draft.add(zone, f"*.wild.{zone}", "TXT", '"wildcard"')
    draft.add(zone, f"host.wild.{zone}", "A", address(rng))
    tags = ("wildcard",)
    draft.ask(f"r{rng.randrange(100)}.wild.{zone}", ("A", "TXT", "AAAA", "MX"), *tags, weight=3)
    draft.ask(f"a.b.wild.{zone}", ("A", "TXT"), *tags)
    draft.ask(f"host.wild.{zone}", ("A", "TXT"), *tags)  # no wildcard for a name that exists
    draft.ask(f"x.host.wild.{zone}", ("A",), *tags, "nxdomain")
    draft.ask(f"wild.{zone}", ("A",), *tags, "ent", "nodata")
    draft.ask(f"*.wild.{zone}", ("A", "TXT"), *tags)


def _wildcard_cname(draft: Draft, zone: str) -> None:
    target = _target_zone(draft, zone)
    name = f"www.{target}" if draft.rng.random() < 0.8 else f"gone.{target}"
    draft.add(zone, f"*.wc.{zone}", "CNAME", name)
    draft.ask(f"q{draft.rng.randrange(100)}.wc.{zone}", ("A", "AAAA", "TXT", "CNAME"),
              "wildcard", "wildcard-cname", "cname", zones=(target,), weight=3)  # fmt: skip


def _wildcard_below_ent(draft: Draft, zone: str) -> None:
    draft.add(zone, f"*.w.went.{zone}", "TXT", '"below an empty non-terminal"')
    tags = ("wildcard", "wildcard-ent")
    draft.ask(f"x.w.went.{zone}", ("TXT", "A"), *tags, weight=3)
    draft.ask(f"w.went.{zone}", ("TXT",), *tags, "ent", "nodata")
    draft.ask(f"went.{zone}", ("A",), *tags, "ent", "nodata")
    draft.ask(f"x.y.went.{zone}", ("TXT",), *tags, "nxdomain")


def _cname_chain(draft: Draft, zone: str) -> None:
    """c1.zone -> c2-zone.Z1 -> ... -> the end: www of a zone, a name that does not exist,
    or a name of the same zone (RFC 1034 section 3.6.2)."""
    rng = draft.rng
    owner, label = f"c1.{zone}", zone.split(".")[0]
    owner_zone, path = zone, [zone]
    for step in range(rng.randint(0, 3)):
        hop_zone = _target_zone(draft, zone)
        hop = f"c{step + 2}-{label}.{hop_zone}"
        if not draft.free_label(hop_zone, hop.split(".")[0]):
            break
        draft.add(owner_zone, owner, "CNAME", hop)
        owner, owner_zone = hop, hop_zone
        path.append(hop_zone)
    end_zone = _target_zone(draft, zone)
    end = rng.choice((f"www.{end_zone}", f"www.{end_zone}", f"gone.{end_zone}", f"txt.{zone}"))
    draft.add(owner_zone, owner, "CNAME", end)
    path.append(end_zone)
    draft.ask(f"c1.{zone}", ("A", "AAAA", "TXT", "CNAME", "MX"), "cname", "cname-chain",
              zones=tuple(path), weight=3)  # fmt: skip


def _cname_loop(draft: Draft, zone: str) -> None:
    other = _target_zone(draft, zone)
    label = f"loop-{zone.split('.')[0]}"
    if other == zone or not draft.free_label(other, label):
        draft.add(zone, f"loop.{zone}", "CNAME", f"loop.{zone}")  # a CNAME to itself
    else:
        draft.add(zone, f"loop.{zone}", "CNAME", f"{label}.{other}")
        draft.add(other, f"{label}.{other}", "CNAME", f"loop.{zone}")
    draft.ask(f"loop.{zone}", ("A", "CNAME", "TXT"), "cname", "cname-loop", zones=(other,),
              weight=2)  # fmt: skip


def _dname(draft: Draft, zone: str) -> None:
    target = _target_zone(draft, zone)
    if target == zone:
        return
    draft.add(zone, f"dn.{zone}", "DNAME", target)
    tags = ("dname",)
    draft.ask(f"www.dn.{zone}", ("A", "AAAA", "TXT", "CNAME"), *tags, zones=(target,), weight=3)
    draft.ask(f"x.y.dn.{zone}", ("A",), *tags, "nxdomain", zones=(target,))
    draft.ask(f"dn.{zone}", ("DNAME", "A", "CNAME"), *tags)
    draft.ask(f"txt.dn.{zone}", ("TXT",), *tags, zones=(target,))


def _dname_chain(draft: Draft, zone: str) -> None:
    """dn2.zone -> dn.Z1 (itself a DNAME, or made one here) -> Z2 (RFC 6672 section 3)."""
    middle = _target_zone(draft, zone)
    if middle == zone:
        return
    if draft.free_label(middle, "dn"):  # only _dname writes a "dn" label
        end = _target_zone(draft, middle)
        if end == middle:
            return
        draft.add(middle, f"dn.{middle}", "DNAME", end)
    else:
        end = _dname_target(draft, middle, f"dn.{middle}")
    draft.add(zone, f"dn2.{zone}", "DNAME", f"dn.{middle}")
    # The question passes through both targets: it carries the tags of both (a stripping
    # parent of the last one decides Unbound's answer: seed 3, hierarchy 225782295152365).
    draft.ask(f"www.dn2.{zone}", ("A", "TXT", "CNAME"), "dname", "dname-chain",
              zones=(middle, end), weight=3)  # fmt: skip


def _dname_target(draft: Draft, zone: str, owner: str) -> str:
    """The zone the DNAME at ``owner`` (in ``zone``'s records) points to."""
    for line in draft.records[zone]:
        fields = line.split()
        if fields[0] == owner and fields[3] == "DNAME":
            return zone_of(draft, fields[4])
    return zone


def _dname_loop(draft: Draft, zone: str) -> None:
    other = _target_zone(draft, zone)
    label = f"dl-{zone.split('.')[0]}"
    if other == zone or not draft.free_label(other, label):
        return
    draft.add(zone, f"dl.{zone}", "DNAME", f"{label}.{other}")
    draft.add(other, f"{label}.{other}", "DNAME", f"dl.{zone}")
    draft.ask(f"x.dl.{zone}", ("A", "CNAME"), "dname", "dname-loop", zones=(other,), weight=2)


def _dname_growing(draft: Draft, zone: str) -> None:
    """dx.zone DNAME sub.dx.zone: each substitution makes the name longer, until it no
    longer fits (RFC 6672 section 2.2: YXDOMAIN) or a resolver gives up."""
    draft.add(zone, f"dx.{zone}", "DNAME", f"sub.dx.{zone}")
    draft.ask(f"a.dx.{zone}", ("A",), "dname", "dname-growing", weight=2)


def _dname_dangling(draft: Draft, zone: str) -> None:
    tld = draft.rng.choice(draft.tlds)
    draft.add(zone, f"dd.{zone}", "DNAME", f"nowhere.{tld}")
    draft.ask(f"x.dd.{zone}", ("A",), "dname", "nxdomain")


def _ttl_zero(draft: Draft, zone: str) -> None:
    draft.add(zone, f"zero.{zone}", "A", address(draft.rng), ttl=0)
    draft.ask(f"zero.{zone}", ("A", "AAAA"), "ttl0", weight=2)


def _ttl_max(draft: Draft, zone: str) -> None:
    draft.add(zone, f"big.{zone}", "A", address(draft.rng), ttl=MAX_TTL)
    draft.ask(f"big.{zone}", ("A",), "ttl-max", weight=2)


def _needs_tcp(draft: Draft, zone: str) -> None:
    """More than the 1232 bytes both resolvers offer over UDP: TC=1, then TCP."""
    rng = draft.rng
    strings = " ".join(f'"{i:02d}{"x" * 200}"' for i in range(rng.randint(7, 12)))
    draft.add(zone, f"large.{zone}", "TXT", strings)
    draft.ask(f"large.{zone}", ("TXT",), "tcp", weight=2)
    if rng.random() < 0.5:
        for n in range(rng.randint(80, 120)):
            draft.add(zone, f"many.{zone}", "A", f"198.51.100.{n + 1}")
        draft.ask(f"many.{zone}", ("A",), "tcp")


FEATURES: dict[str, tuple[float, Callable[[Draft, str], None]]] = {
    "ent": (0.3, _ent),
    "wildcard": (0.35, _wildcard),
    "wildcard-cname": (0.25, _wildcard_cname),
    "wildcard-ent": (0.25, _wildcard_below_ent),
    "cname-chain": (0.4, _cname_chain),
    "cname-loop": (0.15, _cname_loop),
    "dname": (0.3, _dname),
    "dname-chain": (0.2, _dname_chain),
    "dname-loop": (0.12, _dname_loop),
    "dname-growing": (0.08, _dname_growing),
    "dname-dangling": (0.1, _dname_dangling),
    "ttl0": (0.25, _ttl_zero),
    "ttl-max": (0.15, _ttl_max),
    "tcp": (0.15, _needs_tcp),
}
"""Case -> (probability per leaf zone, what adds it)."""


def add_contents(draft: Draft, zone: str) -> None:
    add_basics(draft, zone)
    for name, (probability, add) in FEATURES.items():
        if draft.rng.random() < probability:
            add(draft, zone)
            draft.features[zone].add(name)


# -- questions ---------------------------------------------------------------------------------


def zone_of(draft: Draft, name: str) -> str:
    """The deepest zone of the draft at or above ``name``."""
    best = "."
    for zone in draft.order:
        if (name == zone or name.endswith("." + zone) or zone == ".") and len(zone) > len(best):
            best = zone
    return best


def path_of(draft: Draft, zone: str) -> list[str]:
    path = []
    current: str | None = zone
    while current is not None:
        path.append(current)
        current = draft.parent.get(current)
    return path


def question_tags(draft: Draft, candidate: Candidate) -> tuple[str, ...]:
    tags = set(candidate.tags) | draft.name_tags.get(candidate.qname, set())
    for zone in (zone_of(draft, candidate.qname), *candidate.zones):
        for on_path in path_of(draft, zone):
            tags.update(draft.tags.get(on_path, ()))
    return tuple(sorted(tags))


def sample_questions(draft: Draft, count: int) -> tuple[Question, ...]:
    """``count`` different questions, feature names drawn more often than plain ones."""
    rng = draft.rng
    weights = [c.weight for c in draft.candidates]
    chosen: dict[tuple[str, str], Question] = {}
    for _attempt in range(count * 20):
        if len(chosen) == count:
            break
        candidate = rng.choices(draft.candidates, weights)[0]
        qtype = rng.choice(candidate.qtypes if rng.random() < 0.75 else OTHER_QTYPES)
        key = (candidate.qname.lower(), qtype)
        if key not in chosen:
            chosen[key] = Question(candidate.qname, qtype, question_tags(draft, candidate))
    return tuple(chosen.values())
