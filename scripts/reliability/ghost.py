"""Ghost domains (NDSS 2012) and Phoenix domains (NDSS 2023): a delegation the parent has
removed (or moved to a sinkhole) must stop resolving once the parent's NS TTL has run out,
whatever the child's servers keep answering.  Ours and Unbound on the same hierarchy.

    /work/shared/tools/offline python -m scripts.reliability.ghost [--ttl 4] [--no-unbound]
        [--only classic,ns-answer,phoenix-t1,phoenix-t2,sinkhole]

The registry ``parent.`` (127.8.30.1, an answering function whose data the script
changes) delegates ``ghost1.parent.`` ... ``ghost5.parent.`` to the attacker's server
(127.8.31.1) with an NS TTL of ``--ttl`` seconds.  The attacker's server answers every
name with 192.0.2.31 (TTL 1, so that only the delegation can keep a name alive), and
tries everything the papers list to keep its delegation in the resolver's cache:

- ``classic`` (Jiang et al., NDSS 2012): the zone's NS RRset renamed (``ns1``) with a TTL
  of a day in the authority section of every answer, and the new server's address asked
  for (its answer carries them too);
- ``ns-answer``: the zone's NS RRset asked for directly: the child's authoritative answer,
  a day;
- ``phoenix-t1`` (Li et al., NDSS 2023, CVE-2022-30699): as ``classic``, each answer
  delayed 30 ms and asked for every 50 ms, so that replies to questions sent under the
  old delegation arrive after it expired;
- ``phoenix-t2`` (CVE-2022-30698): sub-delegations learned while the parent's delegation
  lived: ``sub.<zone>`` with a TTL of a day, on a server of its own (127.8.31.2,
  192.0.2.33), and ``deep.sub.<zone>`` below it (127.8.31.3, 192.0.2.33);
- ``sinkhole``: the registry moves ``ghost4.parent.`` to its sinkhole (127.8.32.1,
  192.0.2.32) instead of deleting it, and the attacker tries all of the above.

Every variant at once, each on its own zone, in one fresh resolver: it learns the
delegation (``www`` answered), the attacker's refreshing starts, half a TTL later the
registry removes the delegation, and from then on a new name is asked every 0.2 s for
two TTLs and a second.  What the attacker gets:
how long after the removal new names were still answered by its server (a resolver that
honours the parent's TTL stops within one TTL), and the answers to the last probes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from scripts.reliability.peers import Outcome, Peer, ask, peer_names, running
from scripts.reliability.upstreams import (
    BrokenLab,
    Delayed,
    Role,
    leaf_zone,
    respond,
    root_role,
    soa,
)

PARENT, CHILD, SUB, DEEP, SINKHOLE = (
    "127.8.30.1", "127.8.31.1", "127.8.31.2", "127.8.31.3", "127.8.32.1",
)  # fmt: skip
GHOST_ADDRESS, SUB_ADDRESS, SINKHOLE_ADDRESS = "192.0.2.31", "192.0.2.33", "192.0.2.32"
ATTACKER = {GHOST_ADDRESS, SUB_ADDRESS}  # answers only the attacker's servers give
DAY = 86400
VARIANTS = {"classic": "ghost1.parent.", "ns-answer": "ghost5.parent.",
            "phoenix-t1": "ghost2.parent.", "phoenix-t2": "ghost3.parent.",
            "sinkhole": "ghost4.parent."}  # fmt: skip
T1_DELAY = 0.03  # seconds: under both resolvers' smallest timeout (50 ms)


class Registry:
    """The parent zone's delegations of the ghost zones, changed while the lab runs."""

    def __init__(self, ttl: int) -> None:
        self.ttl = ttl
        self.lock = threading.Lock()
        self.removed: dict[str, str] = {}  # zone -> "deleted" or "sinkhole"

    def remove(self, zone: str, how: str) -> None:
        with self.lock:
            self.removed[zone] = how

    def reset(self) -> None:
        with self.lock:
            self.removed.clear()

    def answer(self, query: dns.message.Message) -> dns.message.Message | None:
        """``parent.``'s server: a referral for each ghost zone, NXDOMAIN once deleted,
        a referral to the sinkhole once moved there."""
        qname = query.question[0].name
        parent = dns.name.from_text("parent.")
        for zone in VARIANTS.values():
            if not qname.is_subdomain(dns.name.from_text(zone)):
                continue
            with self.lock:
                how = self.removed.get(zone)
            if how == "deleted":
                return respond(query, rcode=dns.rcode.NXDOMAIN,
                               authority=["parent. 60 SOA ns.parent. host.parent. 2 3600 "
                                          "900 604800 60"])  # fmt: skip
            server, address = ((f"ns.sinkhole.{zone}", SINKHOLE) if how == "sinkhole"
                               else (f"ns.{zone}", CHILD))  # fmt: skip
            return respond(query, aa=False, authority=[f"{zone} {self.ttl} NS {server}"],
                           additional=[f"{server} {self.ttl} A {address}"])  # fmt: skip
        return None if qname.is_subdomain(parent) else respond(query, rcode=dns.rcode.REFUSED)


def _zone_of(qname: dns.name.Name) -> str | None:
    for zone in VARIANTS.values():
        if qname.is_subdomain(dns.name.from_text(zone)):
            return zone
    return None


def attacker(query: dns.message.Message) -> dns.message.Message | Delayed:
    """The attacker's server for every ghost zone: the zone's NS set renamed ``ns1`` with
    a TTL of a day, as the answer to NS and in the authority section of every answer
    (with its address), ``sub.ghost3.parent.`` delegated for a day, 192.0.2.31 for the
    rest (TTL 1)."""
    question = query.question[0]
    zone = _zone_of(question.name)
    if zone is None:
        return respond(query, rcode=dns.rcode.REFUSED)
    qname = question.name.to_text()
    ns = [f"{zone} {DAY} NS ns1.{zone}", f"{zone} {DAY} NS ns.{zone}"]
    glue = [f"ns1.{zone} {DAY} A {CHILD}", f"ns.{zone} {DAY} A {CHILD}"]
    sub = f"sub.{zone}"
    if zone in (VARIANTS["phoenix-t2"], VARIANTS["sinkhole"]) and question.name.is_subdomain(
        dns.name.from_text(sub)
    ):
        reply = respond(query, aa=False, authority=[f"{sub} {DAY} NS ns.{sub}"],
                        additional=[f"ns.{sub} {DAY} A {SUB}"])  # fmt: skip
    elif question.rdtype == dns.rdatatype.NS and qname.lower() == zone:
        reply = respond(query, answer=ns, additional=glue)
    elif question.rdtype == dns.rdatatype.A and qname.lower().startswith(("ns.", "ns1.")):
        reply = respond(query, answer=[f"{qname} {DAY} A {CHILD}"], authority=ns,
                        additional=glue)  # fmt: skip
    elif question.rdtype == dns.rdatatype.A:
        reply = respond(query, answer=[f"{qname} 1 A {GHOST_ADDRESS}"], authority=ns,
                        additional=glue)  # fmt: skip
    else:
        reply = respond(query, authority=[f"{zone} 1 SOA ns.{zone} h.{zone} 1 2 3 4 1", *ns],
                        additional=glue)  # fmt: skip
    return Delayed(reply, T1_DELAY) if zone == VARIANTS["phoenix-t1"] else reply


def sub_server(query: dns.message.Message) -> dns.message.Message:
    """``sub.`` of a ghost zone: delegates ``deep.`` below it for a day; 192.0.2.33 else."""
    question = query.question[0]
    zone = _zone_of(question.name)
    if zone is None:
        return respond(query, rcode=dns.rcode.REFUSED)
    sub = dns.name.from_text(f"sub.{zone}")
    if not question.name.is_subdomain(sub):
        return respond(query, rcode=dns.rcode.REFUSED)
    deep = dns.name.from_text("deep", sub).to_text()
    if question.name.is_subdomain(dns.name.from_text(deep)):
        return respond(query, aa=False, authority=[f"{deep} {DAY} NS ns.{deep}"],
                       additional=[f"ns.{deep} {DAY} A {DEEP}"])  # fmt: skip
    return respond(query, answer=[f"{question.name} 1 A {SUB_ADDRESS}"])


def deep_server(query: dns.message.Message) -> dns.message.Message:
    return respond(query, answer=[f"{query.question[0].name} 1 A {SUB_ADDRESS}"])


def roles(registry: Registry) -> list[Role]:
    zone = VARIANTS["sinkhole"]
    sinkhole = (f"$ORIGIN {zone}\n{soa(zone)}@ NS ns.sinkhole\nns.sinkhole A {SINKHOLE}\n"
                f"* 1 A {SINKHOLE_ADDRESS}\n")  # fmt: skip
    return [
        root_role({"parent.": [("ns.parent.", PARENT)]}),
        Role("parent", (PARENT,), {"parent.": leaf_zone("parent.", "ns.parent.", PARENT)},
             generator=registry.answer),
        Role("attacker", (CHILD,), generator=attacker),
        Role("sub", (SUB,), generator=sub_server),
        Role("deep", (DEEP,), generator=deep_server),
        Role("sinkhole", (SINKHOLE,), {zone: sinkhole}),  # 192.0.2.32 for every name
    ]  # fmt: skip


# -------------------------------------------------------------------- the attack


def refresh(port: int, variant: str, zone: str) -> None:
    """What the attacker's client asks to keep the delegation alive: the renamed server's
    address (its answer carries the renamed NS RRset in authority), the NS RRset itself,
    names below the sub-delegations; the sinkhole variant tries them all."""
    if variant in ("classic", "phoenix-t1", "sinkhole"):
        ask(port, f"ns1.{zone}", timeout=2)
    if variant in ("ns-answer", "sinkhole"):
        ask(port, zone, "NS", timeout=2)
    if variant in ("phoenix-t2", "sinkhole"):
        ask(port, f"x.sub.{zone}", timeout=2)
        ask(port, f"x.deep.sub.{zone}", timeout=2)


def probes(port: int, zone: str, variant: str, n: int) -> list[tuple[str, Outcome]]:
    names = [f"p{n}.{zone}"]
    if variant in ("phoenix-t2", "sinkhole"):
        names += [f"p{n}.sub.{zone}", f"p{n}.deep.sub.{zone}"]
    return [(name, ask(port, name, timeout=5)) for name in names]


def attack(peer: Peer, registry: Registry, variant: str, ttl: int) -> dict[str, Any]:
    zone = VARIANTS[variant]
    warm = ask(peer.port, f"www.{zone}")
    refresh(peer.port, variant, zone)
    stop = threading.Event()

    def keep_refreshing() -> None:  # the attacker's client, from now to the end
        while not stop.is_set():
            refresh(peer.port, variant, zone)
            stop.wait(0.05 if variant == "phoenix-t1" else 0.5)

    refresher = threading.Thread(target=keep_refreshing)
    refresher.start()
    time.sleep(ttl / 2)
    registry.remove(zone, "sinkhole" if variant == "sinkhole" else "deleted")
    removed = time.monotonic()
    last_ghost: float | None = None
    n = 0
    try:
        while time.monotonic() - removed < 2 * ttl + 1:
            n += 1
            for _name, outcome in probes(peer.port, zone, variant, n):
                if ATTACKER & set(outcome.addresses):
                    last_ghost = time.monotonic() - removed
            time.sleep(0.2)
        final = probes(peer.port, zone, variant, 1000 + n)
    finally:
        stop.set()
        refresher.join()
    ghosts = [name for name, outcome in final if ATTACKER & set(outcome.addresses)]
    survived = not ghosts and (last_ghost is None or last_ghost <= ttl + 1)
    return {"warm": warm.summary(), "ttl": ttl,
            "ghost_answers_until_s": None if last_ghost is None else round(last_ghost, 1),
            "final": {name: outcome.summary() for name, outcome in final},
            "attacker_gets": ghosts or ([] if survived else [f"new names answered "
                                                              f"{last_ghost:.1f} s after removal"]),
            "survived": survived}  # fmt: skip


def run(ttl: int, variants: list[str], unbound: bool, directory: Path) -> dict[str, Any]:
    registry = Registry(ttl)
    results: dict[str, Any] = {}
    with BrokenLab(directory / "lab", roles(registry)) as lab:
        hints = lab.write_hints(directory / "hints")
        for name in peer_names(unbound):
            registry.reset()
            # One resolver for every variant at once: each attacks a zone of its own.
            with (
                running(name, directory / name, hints) as peer,
                ThreadPoolExecutor(len(variants)) as pool,
            ):
                outcomes = pool.map(lambda v: attack(peer, registry, v, ttl), variants)
                for variant, outcome in zip(variants, outcomes, strict=True):
                    results.setdefault(variant, {})[name] = outcome
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ttl", type=int, default=4, help="the parent's NS TTL, seconds")
    parser.add_argument("--only", default=",".join(VARIANTS), help="variants, comma-separated")
    parser.add_argument("--no-unbound", action="store_true")
    args = parser.parse_args(argv)
    variants = [v for v in args.only.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variant {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    with tempfile.TemporaryDirectory(prefix="ghost-") as tmp:
        result = run(args.ttl, variants, not args.no_unbound, Path(tmp))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
