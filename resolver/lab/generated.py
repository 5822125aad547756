"""Random but valid DNS hierarchies, the same for the same seed: :func:`generate`.

The layout: a root on 127.50.0.1-2, two or three TLDs, three to seven second-level zones
(``d{i}.{tld}.``), some with children (``s{j}.d{i}.{tld}.``, a few below an empty
non-terminal of the parent).  Each zone is served by one or two NSD servers, some of
them serving several zones.  Each delegation draws its name servers from the ways the
Internet has them:

- ``ns{k}.{zone}``, in the zone: glue in the parent (sometimes missing, sometimes
  pointing elsewhere than the zone's own address record);
- ``ns{k}-{label}.{parent}``: the parent's own data;
- ``ns{k}-{label}.{sibling}``, in another zone the same parent delegates: with sibling
  glue or without;
- ``ns{k}-{label}.{other}``, in an unrelated zone: glueless, a sub-lookup;
- an IPv6-only name server (AAAA only: both resolvers here ask over IPv4 only);

and each name server address is the zone's server, a lame one (an NSD that does not
serve the zone: REFUSED, or a referral when it serves the parent), a dead address, or a
front that is slow, drops a first query or strips the SOA from negative answers.  The
child's own NS set sometimes differs from the parent's, two zones sometimes depend on
each other's name servers (a cycle that resolves through a glued third server), and a
delegation may change half-way (:class:`~resolver.lab.generated_model.Change`).  What
each zone holds is resolver/lab/generated_content.py's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from resolver.lab.generated_content import (
    ANSWER_TTLS,
    SOA_MINIMUMS,
    SOA_TTLS,
    Candidate,
    Draft,
    add_contents,
    question_tags,
    sample_questions,
)
from resolver.lab.generated_model import (
    FRONT_KINDS,
    ROOT_SERVERS,
    Change,
    Front,
    FrontKind,
    Hierarchy,
    Question,
    Server,
    SigningPlan,
)
from resolver.lab.generated_signing import plan_signing, tag_name_server_dependencies

TIMING_FRONTS: tuple[FrontKind, ...] = ("slow", "drop")  # fronts that change no answer
TLD_POOL = ("com", "net", "org", "lab", "example", "test")
# A delegation that will change: its NS and glue TTL at the parent, and when (seconds
# after the first questions) it is asked about again: once its answers (TTL 1) have
# expired but not the delegation, then once the delegation has too.  Whole seconds apart,
# with margins, because Unbound counts TTLs in whole seconds.
CHANGE_TTL = 5
CHANGE_AFTER = 2.5
CHANGE_SETTLE = CHANGE_TTL + 3.0


@dataclass
class Delegation:
    """A zone's NS names at its parent, the glue the parent holds, its own apex NS set."""

    names: list[str] = field(default_factory=list)
    glue: list[tuple[str, str, str]] = field(default_factory=list)  # (owner, type, address)
    apex: list[str] = field(default_factory=list)
    ttl: int | None = None  # the parent's NS and glue TTL (None: the parent's default)
    apex_ttl: int | None = None


@dataclass
class ServerDraft:
    name: str
    addresses: tuple[str, ...]
    zones: list[str] = field(default_factory=list)


def generate(seed: int, questions: int = 50) -> Hierarchy:
    """A random but valid hierarchy and ``questions`` questions about it, the same for the
    same seed (and the same version of this generator)."""
    return HierarchyBuilder(random.Random(seed), seed).build(questions)


class HierarchyBuilder:
    def __init__(self, rng: random.Random, seed: int) -> None:
        self.rng = rng
        self.seed = seed
        self.draft = Draft(rng)
        self.servers: list[ServerDraft] = []
        self.home: dict[str, list[str]] = {}
        self.delegations: dict[str, Delegation] = {}
        self.fronts: list[Front] = []
        self.dead: list[str] = []
        self.cycle: tuple[str, str] | None = None
        self.stripped: set[str] = set()  # zones whose servers all strip negative answers
        self.dedicated: set[str] = set()  # servers no other zone may share

    # -- layout -----------------------------------------------------------------------------

    def build(self, questions: int) -> Hierarchy:
        self._layout()
        self._place()
        self._choose_cycle()
        for zone in self.draft.order[1:]:
            self._delegate(zone)
        for zone in self.draft.leaves():
            add_contents(self.draft, zone)
        signing = plan_signing(self.draft)
        names = {zone: delegation.names for zone, delegation in self.delegations.items()}
        tag_name_server_dependencies(self.draft, names, signing)
        change = self._change(signing)
        self._global_candidates()
        asked = sample_questions(self.draft, questions)
        hierarchy = Hierarchy(
            seed=self.seed,
            zones={zone: self.render(zone) for zone in self.draft.order},
            servers=tuple(Server(s.name, s.addresses, tuple(s.zones)) for s in self.servers),
            fronts=tuple(self.fronts),
            dead=tuple(self.dead),
            signing=signing,
            questions=asked,
            zone_tags={
                zone: tuple(sorted(self.draft.tags[zone] | self.draft.features[zone]))
                for zone in self.draft.order
            },
        )
        if change is not None:
            hierarchy.change, variant, server = change
            hierarchy.variants["new"] = variant
            hierarchy.servers = (*hierarchy.servers, server)
        return hierarchy

    def _new_zone(self, zone: str, parent: str | None) -> None:
        draft = self.draft
        draft.order.append(zone)
        draft.parent[zone] = parent
        draft.records[zone] = []
        draft.labels[zone] = set()
        draft.tags[zone] = set()
        draft.features[zone] = set()
        draft.ttl[zone] = self.rng.choice(ANSWER_TTLS)

    def _layout(self) -> None:
        rng = self.rng
        self._new_zone(".", None)
        self.draft.ttl["."] = 86400
        tlds = rng.sample(TLD_POOL, rng.randint(2, 3))
        for tld in tlds:
            self._new_zone(f"{tld}.", ".")
        self.draft.tlds = [f"{tld}." for tld in tlds]
        child = 0
        for i in range(rng.randint(3, 7)):
            sld = f"d{i}.{rng.choice(tlds)}."
            self._new_zone(sld, sld.split(".", 1)[1])
            for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
                below_ent = rng.random() < 0.25
                name = f"s{child}.deep.{sld}" if below_ent else f"s{child}.{sld}"
                self._new_zone(name, sld)
                if below_ent:
                    self.draft.tag(name, "cut-below-ent")
                child += 1

    def _server(self, zone: str, addresses: int = 1) -> ServerDraft:
        slot = len(self.servers)
        server = ServerDraft(f"s{slot}", tuple(f"127.50.{slot}.{n + 1}" for n in range(addresses)))
        self.servers.append(server)
        server.zones.append(zone)
        return server

    def _serve(self, server: ServerDraft, zone: str) -> None:
        parent = self.draft.parent.get(zone)
        if parent is not None and parent in server.zones:
            # The parent's server answers for the child itself (RFC 1034 4.2.1 allows it),
            # whatever the delegation says.
            self.draft.tag(zone, "parent-server")
        if zone not in server.zones:
            server.zones.append(zone)
        self.home.setdefault(zone, [])
        self.home[zone] += [a for a in server.addresses if a not in self.home[zone]]

    def _place(self) -> None:
        """Which NSD serves which zone: the root alone, TLDs mostly alone, the others on a
        new server, a shared one, or their parent's."""
        rng = self.rng
        root = self._server(".", addresses=2)
        self._serve(root, ".")
        for tld in self.draft.tlds:
            shared = self.servers[-1] if len(self.servers) > 1 and rng.random() < 0.3 else None
            self._serve(shared or self._server(tld), tld)
        first_leaf = len(self.servers)
        for zone in self.draft.leaves():
            if rng.random() < 0.12:
                # Its servers leave the SOA out of negative answers: all of them, so the
                # answer does not depend on which one a resolver picks, and on servers of
                # its own, so no other zone's server answers for it unstripped.
                self.stripped.add(zone)
                self.draft.tag(zone, "strip-soa")
                self.dedicated.add(self._server(zone).name)
                self._serve(self.servers[-1], zone)
                continue
            for copy in range(1 if rng.random() < 0.75 else 2):
                leaf_servers = [s for s in self.servers[first_leaf:]
                                if s.name not in self.dedicated]  # fmt: skip
                parent_servers = [s for s in self.servers if self.draft.parent[zone] in s.zones
                                  and s.name not in self.dedicated]  # fmt: skip
                draw = rng.random()
                if draw < 0.35 and leaf_servers:
                    server = rng.choice(leaf_servers)
                elif draw < 0.45 and copy == 0 and parent_servers:
                    server = rng.choice(parent_servers)
                else:
                    server = self._server(zone)
                self._serve(server, zone)

    def _choose_cycle(self) -> None:
        """Two zones whose only or first name servers are in each other (RFC 1034 5.3.3's
        lookups that depend on each other); the second also has a glued server."""
        leaves = self.draft.leaves()
        pairs = [(a, b) for a in leaves for b in leaves
                 if a < b and self.draft.parent[a] != self.draft.parent[b]
                 and not (a.endswith(b) or b.endswith(a))]  # fmt: skip
        if pairs and self.rng.random() < 0.35:
            self.cycle = self.rng.choice(pairs)
            for zone in self.cycle:
                self.draft.tag(zone, "ns-cycle")

    # -- delegations ----------------------------------------------------------------------------

    def _dead_address(self) -> str:
        address = f"127.52.{len(self.dead)}.1"
        self.dead.append(address)
        return address

    def _front(self, backend: str, kind: FrontKind | None = None) -> tuple[str, FrontKind]:
        chosen = self.rng.choice(TIMING_FRONTS) if kind is None else kind
        delay = self.rng.choice((50, 200, 400)) if chosen == "slow" else 0
        address = f"127.51.{len(self.fronts)}.1"
        self.fronts.append(Front(address, backend, chosen, delay))
        return address, chosen

    def _working(self, zone: str) -> str:
        """The address of one of ``zone``'s servers (through its stripping front when the
        zone's answers are stripped)."""
        good = self.rng.choice(self.home[zone])
        return self._front(good, "strip-soa")[0] if zone in self.stripped else good

    def _address_for(self, zone: str) -> tuple[str, str]:
        """An address for one of ``zone``'s name servers, and what kind it is."""
        draw = self.rng.random()
        good = self.rng.choice(self.home[zone])
        if zone in self.stripped and draw >= 0.14:  # lame and dead ones as anywhere else
            return self._front(good, "strip-soa")
        if draw < 0.07:
            others = [s for s in self.servers if zone not in s.zones]
            server = self.rng.choice(others)
            if any(_is_above(origin, zone) for origin in server.zones):
                # It serves a zone above: it answers with a referral back down to the
                # zone it was asked about (a referral that does not get closer).
                self.draft.tag(zone, "lame-referral")
            return self.rng.choice(server.addresses), "lame"
        if draw < 0.14:
            return self._dead_address(), "dead"
        if draw < 0.26:
            address, kind = self._front(good)
            return address, kind
        return good, "good"

    def _delegate(self, zone: str) -> None:
        rng, draft = self.rng, self.draft
        parent = draft.parent[zone]
        assert parent is not None
        delegation = self.delegations[zone] = Delegation()
        label = zone.split(".")[0]
        if zone in draft.tlds:
            name = f"ns1.nic.{zone}"
            self._glued(zone, delegation, name, self.home[zone][0])
            if rng.random() < 0.15:
                self._glued(zone, delegation, f"ns2.nic.{zone}", self._dead_address())
                draft.tag(zone, "dead")
            delegation.apex = list(delegation.names)
            return
        if self.cycle is not None and zone in self.cycle:
            self._cyclic(zone, delegation)
            return
        kinds: list[str] = []
        for k in range(1, rng.choice((1, 1, 2, 2, 3)) + 1):
            if rng.random() < 0.05:
                self._ipv6_only(zone, delegation, k, label)
                continue
            address, kind = self._address_for(zone)
            kinds.append(kind)
            self._name_server(zone, delegation, k, label, address)
            if kind != "good":
                draft.tag(zone, kind)
        if not {"good", *FRONT_KINDS} & set(kinds):
            if rng.random() < 0.3:
                draft.tag(zone, "unreachable")
            else:  # one more that works
                self._glued(zone, delegation, f"ns9.{zone}", self._working(zone))
        delegation.apex = self._apex_set(zone, delegation)

    def _glued(self, zone: str, delegation: Delegation, name: str, address: str) -> None:
        """An in-zone name server: its address record in the zone, glue in the parent."""
        self.draft.add(zone, name, "A", address)
        delegation.names.append(name)
        delegation.glue.append((name, "A", address))

    def _name_server(
        self, zone: str, delegation: Delegation, k: int, label: str, address: str
    ) -> None:
        rng, draft = self.rng, self.draft
        parent = draft.parent[zone]
        assert parent is not None
        earlier = draft.earlier(zone)
        siblings = [z for z in earlier if draft.parent[z] == parent]
        unrelated = [z for z in earlier if draft.parent[z] != parent]
        draw = rng.random()
        if (draw < 0.15 and parent not in draft.tlds) or draw < 0.07:
            name = f"ns{k}-{label}.{parent}"
            draft.add(parent, name, "A", address)
            delegation.names.append(name)
            draft.tag(zone, "ns-in-parent")
        elif draw < 0.3 and siblings:
            sibling = rng.choice(siblings)
            name = f"ns{k}-{label}.{sibling}"
            draft.add(sibling, name, "A", address)
            delegation.names.append(name)
            if rng.random() < 0.5:
                delegation.glue.append((name, "A", address))
                draft.tag(zone, "sibling-glue")
            else:
                draft.tag(zone, "glueless")
        elif draw < 0.55 and unrelated:
            other = rng.choice(unrelated)
            name = f"ns{k}-{label}.{other}"
            draft.add(other, name, "A", address)
            delegation.names.append(name)
            draft.tag(zone, "glueless")
        else:
            name = f"ns{k}.{zone}"
            draft.add(zone, name, "A", address)
            delegation.names.append(name)
            glue = rng.random()
            if glue < 0.04:
                draft.tag(zone, "missing-glue")
            elif glue < 0.09:
                delegation.glue.append((name, "A", self._dead_address()))
                draft.tag(zone, "glue-mismatch")
            else:
                delegation.glue.append((name, "A", address))

    def _ipv6_only(self, zone: str, delegation: Delegation, k: int, label: str) -> None:
        """A name server with an AAAA record only (documentation address): unusable by a
        resolver asking over IPv4 only, as both do here."""
        unrelated = [z for z in self.draft.earlier(zone) if self.draft.parent[z] != zone]
        where = self.rng.choice(unrelated or [zone])
        name = f"ns6-{label}.{where}" if where != zone else f"ns6.{zone}"
        self.draft.add(where, name, "AAAA", f"2001:db8::53:{k}")
        if where == zone:
            delegation.glue.append((name, "AAAA", f"2001:db8::53:{k}"))
        delegation.names.append(name)
        self.draft.tag(zone, "v6only")

    def _cyclic(self, zone: str, delegation: Delegation) -> None:
        assert self.cycle is not None
        first, second = self.cycle
        other = second if zone == first else first
        name = f"ns-cycle.{other}"
        self.draft.add(other, name, "A", self._working(zone))
        delegation.names.append(name)
        if zone == second:
            self._glued(zone, delegation, f"ns1.{zone}", self._working(zone))
        delegation.apex = list(delegation.names)

    def _apex_set(self, zone: str, delegation: Delegation) -> list[str]:
        """The zone's own NS set: the parent's, or (RFC 2181 5.4.1's case) not quite."""
        names = list(delegation.names)
        draw = self.rng.random()
        if draw < 0.1:
            address = self._working(zone) if draw < 0.05 else self._dead_address()
            self.draft.add(zone, f"ns-extra.{zone}", "A", address)
            names.append(f"ns-extra.{zone}")
            self.draft.tag(zone, "ns-differ")
        elif draw < 0.2 and len(names) > 1:
            names.pop(self.rng.randrange(len(names)))
            self.draft.tag(zone, "ns-differ")
        return names

    # -- signing, the change, the questions -----------------------------------------------------

    def _change(self, signing: SigningPlan) -> tuple[Change, dict[str, str], Server] | None:
        draft = self.draft
        choices = [z for z in draft.leaves()
                   if draft.parent[z] in draft.tlds and "ns-cycle" not in draft.tags[z]
                   and "unreachable" not in draft.tags[z] and z not in signing.flaws
                   and signing.flaws.get(draft.parent[z] or ".") in (None, "insecure")
                   and not any(draft.parent[c] == z for c in draft.order)]  # fmt: skip
        if not choices or self.rng.random() < 0.7:
            return None
        zone = self.rng.choice(choices)
        parent = draft.parent[zone]
        assert parent is not None
        old = self.delegations[zone]
        old.ttl = CHANGE_TTL
        long_lived = self.rng.random() < 0.5
        old.apex_ttl = 3600 if long_lived else CHANGE_TTL
        www = f"www.{zone}"
        draft.records[zone] = [_with_ttl(line, 1) if line.startswith(www + " ") else line
                               for line in draft.records[zone]]  # fmt: skip
        slot = len(self.servers)  # the next free one
        server = Server(f"s{slot}", (f"127.50.{slot}.1",), (zone,), "new")
        new_ns = f"ns-new.{zone}"
        new = Delegation([new_ns], [(new_ns, "A", server.addresses[0])], [new_ns], CHANGE_TTL,
                         CHANGE_TTL)  # fmt: skip
        variant = self._variant(zone, new, server.addresses[0])
        tags = ("change", "change-child-ns-long" if long_lived else "change-child-ns-short")
        draft.tag(zone, *tags)
        questions = tuple(  # with the tags of the zone and those above it, as any question
            Question(name, qtype, question_tags(draft, Candidate(name, (qtype,), tags)))
            for name, qtype in ((www, "A"), (zone, "NS"), (f"txt.{zone}", "TXT"))
        )
        parent_text = self.render(parent, {zone: new}, serial=2)
        change = Change(parent, zone, parent_text, questions, CHANGE_SETTLE, CHANGE_AFTER)
        return change, variant, server

    def _variant(self, zone: str, new: Delegation, address: str) -> dict[str, str]:
        """The zone as its new servers serve it: other addresses for www, its new NS set."""
        lines = []
        for n, line in enumerate(self.draft.records[zone]):
            owner, ttl, _class, rtype, *_ = line.split()
            if owner == f"www.{zone}" and rtype == "A":
                line = f"{owner} {ttl} IN A 198.51.100.{200 + n % 50}"
            lines.append(line)
        lines.append(f"ns-new.{zone} {CHANGE_TTL} IN A {address}")
        return {zone: self.render(zone, {}, serial=2, apex=new, records=lines)}

    def _global_candidates(self) -> None:
        draft = self.draft
        draft.ask(".", ("NS", "SOA", "DNSKEY"), "root")
        draft.ask(f"nope{self.rng.randrange(100)}.", ("A", "DS"), "nxdomain", "root")
        draft.ask(ROOT_SERVERS[0][0], ("A", "AAAA"), "root")
        for tld in draft.tlds:
            draft.ask(tld, ("NS", "SOA", "DS", "DNSKEY"), "apex")
            draft.ask(f"nope.{tld}", ("A", "NS"), "nxdomain")
            draft.ask(f"ns1.nic.{tld}", ("A", "AAAA"), "ns-name")
        for delegation in self.delegations.values():
            for name in delegation.names[:2]:
                draft.ask(name, ("A", "AAAA"), "ns-name")

    # -- zone files ------------------------------------------------------------------------------

    def render(
        self,
        zone: str,
        overrides: dict[str, Delegation] | None = None,
        serial: int = 1,
        apex: Delegation | None = None,
        records: list[str] | None = None,
    ) -> str:
        """The zone's master file: SOA, apex NS, data, then each child's NS and glue."""
        draft, rng = self.draft, random.Random(f"{self.seed}:{zone}")
        overrides = overrides or {}
        if zone == ".":
            names = [name for name, _ in ROOT_SERVERS]
            lines = [f"{name} 3600000 IN A {address}" for name, address in ROOT_SERVERS]
            apex_ttl = 86400
        else:
            delegation = apex or self.delegations[zone]
            names, lines = delegation.apex, []
            apex_ttl = delegation.apex_ttl or draft.ttl[zone]
        soa = (f"{zone} {rng.choice(SOA_TTLS)} IN SOA {names[0]} hostmaster.{zone.lstrip('.')} "
               f"{serial} 1800 900 604800 {rng.choice(SOA_MINIMUMS)}")  # fmt: skip
        lines = [soa, *(f"{zone} {apex_ttl} IN NS {name}" for name in names), *lines]
        lines += draft.records[zone] if records is None else records
        for child in draft.order:
            if draft.parent.get(child) != zone:
                continue
            delegation = overrides.get(child) or self.delegations[child]
            ttl = delegation.ttl or draft.ttl[zone]
            lines += [f"{child} {ttl} IN NS {name}" for name in delegation.names]
            lines += [f"{owner} {ttl} IN {rtype} {value}"
                      for owner, rtype, value in delegation.glue]  # fmt: skip
        return f"$ORIGIN {zone}\n" + "\n".join(dict.fromkeys(lines)) + "\n"


def _is_above(origin: str, zone: str) -> bool:
    return origin == "." or zone.endswith("." + origin)


def _with_ttl(line: str, ttl: int) -> str:
    owner, _ttl, rest = line.split(" ", 2)
    return f"{owner} {ttl} {rest}"
