"""Resource exhaustion through the data: NRDelegation (a referral to 1,500 name servers
that never answer) and TsuNAME (two zones whose name servers are in each other); what one
client question costs, ours and Unbound on the same hierarchy.

    /work/shared/tools/offline python -m scripts.reliability.exhaust [--only nrdelegation,tsuname]
        [--ns-names 1500] [--questions 10] [--tsuname-queries 100] [--no-unbound]

``nrdelegation`` (Afek et al., USENIX Security 2023; BIND's CVE-2022-2795, Unbound's
CVE-2022-3204): ``x<N>.nrd.`` (127.8.60.1, made up per question) is delegated to
``--ns-names`` name servers.  Without glue (``ns<J>.x<N>.names.``): ``names.``
(127.8.61.1) answers each with one of 64 addresses that read queries and never answer
(127.8.62.1-64).  With glue (``ns<J>.x<N>.nrd.``): the referral itself gives those
addresses.  The referral is some 30-55 KB, so it comes over TCP after TC=1.  Counted for
each question (a new one each time): queries to each server, how long until the answer,
and the resolver's CPU time (``/proc/PID/stat``), against a benign question (a new name
in ``benign.``, 127.8.63.1) for scale.

``tsuname`` (Moura et al., 2021): ``a.cyc1. NS ns.b.cyc2.`` and ``b.cyc2. NS ns.a.cyc1.``
(127.8.70.1, 127.8.71.1), no glue: nothing below either can be resolved.  A client asks
``--tsuname-queries`` questions over ten seconds, the same name each time (a client
retrying), then on a fresh resolver a new name each time; counted: the queries the
parents (and the root) receive.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from scripts.reliability.peers import Peer, ask, peer_names, running
from scripts.reliability.upstreams import (
    ROOT_ADDRESS,
    Behaviour,
    BrokenLab,
    Role,
    leaf_zone,
    respond,
    root_role,
)

NRD, NAMES, BENIGN = "127.8.60.1", "127.8.61.1", "127.8.63.1"
SILENT = tuple(f"127.8.62.{i}" for i in range(1, 65))
CYC1, CYC2 = "127.8.70.1", "127.8.71.1"


def silent_address(j: int) -> str:
    return SILENT[j % len(SILENT)]


def nrd_server(ns_names: int) -> Any:
    """``nrd.``: ``g<N>.nrd.`` delegated with glue, ``n<N>.nrd.`` without, to
    ``ns_names`` name servers each."""

    def answer(query: dns.message.Message) -> dns.message.Message | None:
        qname = query.question[0].name
        zone = dns.name.from_text("nrd.")
        if not qname.is_subdomain(zone) or qname == zone:
            return None
        child = f"{qname.relativize(zone).labels[-1].decode().lower()}.nrd."
        if child.startswith("g"):
            targets = [f"ns{j}.{child}" for j in range(ns_names)]
            glue = [f"ns{j}.{child} 300 A {silent_address(j)}" for j in range(ns_names)]
        else:
            targets = [f"ns{j}.{child.removesuffix('nrd.')}names." for j in range(ns_names)]
            glue = []
        return respond(query, aa=False, authority=[f"{child} 300 NS {t}" for t in targets],
                       additional=glue)  # fmt: skip

    return answer


def names_server(query: dns.message.Message) -> dns.message.Message:
    """``names.``: ``ns<J>.<anything>.names.`` is one of the silent addresses."""
    question = query.question[0]
    first = question.name.labels[0].decode().lower()
    if question.rdtype == dns.rdatatype.A and first.startswith("ns") and first[2:].isdigit():
        return respond(query, answer=[f"{question.name} 300 A {silent_address(int(first[2:]))}"])
    return respond(query, authority=["names. 60 SOA ns.names. h.names. 1 2 3 4 60"])


def roles(ns_names: int) -> list[Role]:
    tlds = {"nrd.": NRD, "names.": NAMES, "benign.": BENIGN, "cyc1.": CYC1, "cyc2.": CYC2}
    delegations = {zone: [(f"ns.{zone}", address)] for zone, address in tlds.items()}
    return [
        root_role(delegations),
        Role("nrd", (NRD,), {"nrd.": leaf_zone("nrd.", "ns.nrd.", NRD)},
             generator=nrd_server(ns_names)),
        Role("names", (NAMES,), generator=names_server),
        Role("silent", SILENT, behaviour=Behaviour(silent=True)),
        Role("benign", (BENIGN,), {"benign.": leaf_zone("benign.", "ns.benign.", BENIGN,
                                                        "* A 192.0.2.63\n")}),
        Role("cyc1", (CYC1,), {"cyc1.": leaf_zone("cyc1.", "ns.cyc1.", CYC1,
                                                  "a NS ns.b.cyc2.\n")}),
        Role("cyc2", (CYC2,), {"cyc2.": leaf_zone("cyc2.", "ns.cyc2.", CYC2,
                                                  "b NS ns.a.cyc1.\n")}),
    ]  # fmt: skip


# -------------------------------------------------------------------- NRDelegation


def nrdelegation(
    peer: Peer, lab: BrokenLab, questions: int, at_once: int = 1, benign: int = 1000
) -> dict[str, Any]:
    """``questions`` new names under each kind of delegation, ``at_once`` at a time, and
    ``benign`` new names in an ordinary zone for scale."""
    ordinary = [f"b{i}.benign." for i in range(benign)]
    out: dict[str, Any] = {"benign": _per_question(peer, lab, ordinary, at_once)}
    for variant, prefix in (("without glue", "n"), ("with glue", "g")):
        names = [f"www.{prefix}{i}.nrd." for i in range(questions)]
        out[variant] = _per_question(peer, lab, names, at_once)
    scale = out["benign"]["cpu_ms_per_question"]
    for variant in ("without glue", "with glue"):
        cpu = out[variant]["cpu_ms_per_question"]
        out[variant]["cpu_vs_benign"] = round(cpu / scale, 1) if scale else None
    return out


def _per_question(peer: Peer, lab: BrokenLab, names: list[str], at_once: int) -> dict[str, Any]:
    """Ask the names, ``at_once`` at a time; what each cost on average, and the worst."""
    lab.counts.reset()
    cpu = peer.cpu()
    rcodes: dict[str, int] = {}
    with ThreadPoolExecutor(at_once) as pool:
        outcomes = list(pool.map(lambda name: ask(peer.port, name, timeout=15), names))
    seconds = [outcome.seconds for outcome in outcomes]
    for outcome in outcomes:
        rcodes[outcome.rcode] = rcodes.get(outcome.rcode, 0) + 1
    time.sleep(1.0)  # work still going on after the answer counts too
    cpu = peer.cpu() - cpu
    n = len(names)
    with lab.counts.lock:
        by_address = dict(lab.counts.by_address)
    silent = sum(by_address.get(a, 0) for a in SILENT)
    return {"questions": n, "rcodes": rcodes,
            "upstream_per_question": round(sum(by_address.values()) / n, 1),
            "silent_servers_per_question": round(silent / n, 1),
            "name_lookups_per_question": round(by_address.get(NAMES, 0) / n, 1),
            "seconds_per_question": round(sum(seconds) / n, 2),
            "slowest_s": round(max(seconds), 2),
            "cpu_ms_per_question": round(1000 * cpu / n, 1)}  # fmt: skip


# -------------------------------------------------------------------- TsuNAME


TSUNAME_MODES = ("same name", "new names")


def tsuname(
    peer: Peer, lab: BrokenLab, queries: int, mode: str, seconds: float = 10.0
) -> dict[str, Any]:
    """``queries`` client questions spread over ``seconds``, the same name each time (a
    client retrying) or a new name each time; what the parents (and the root) received."""
    lab.counts.reset()
    started = time.monotonic()
    rcodes: dict[str, int] = {}
    for i in range(queries):
        name = "www.a.cyc1." if mode == "same name" else f"w{i}.a.cyc1."
        outcome = ask(peer.port, name, timeout=12)
        rcodes[outcome.rcode] = rcodes.get(outcome.rcode, 0) + 1
        time.sleep(max(started + (i + 1) * seconds / queries - time.monotonic(), 0))
    time.sleep(1.0)
    with lab.counts.lock:
        counts = {"cyc1": lab.counts.by_address[CYC1], "cyc2": lab.counts.by_address[CYC2],
                  "root": lab.counts.by_address[ROOT_ADDRESS]}  # fmt: skip
    parents = counts["cyc1"] + counts["cyc2"]
    return {"client_queries": queries, "rcodes": rcodes, "upstream": counts,
            "parents_per_client_query": round(parents / queries, 2)}  # fmt: skip


# -------------------------------------------------------------------- running


def run(scenarios: list[str], ns_names: int, questions: int, tsuname_queries: int,
        unbound: bool, directory: Path) -> dict[str, Any]:  # fmt: skip
    results: dict[str, Any] = {"ns_names": ns_names}
    with BrokenLab(directory / "lab", roles(ns_names)) as lab:
        hints = lab.write_hints(directory / "hints")
        for name in peer_names(unbound):
            if "nrdelegation" in scenarios:
                with running(name, directory / f"{name}-nrd", hints) as peer:
                    results.setdefault("nrdelegation", {})[name] = nrdelegation(
                        peer, lab, questions)  # fmt: skip
            if "tsuname" in scenarios:
                for mode in TSUNAME_MODES:  # each on a fresh resolver
                    with running(name, directory / f"{name}-{mode[:3]}", hints) as peer:
                        result = tsuname(peer, lab, tsuname_queries, mode)
                    results.setdefault("tsuname", {}).setdefault(name, {})[mode] = result
    return results


SCENARIOS = ("nrdelegation", "tsuname")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated")
    parser.add_argument("--ns-names", type=int, default=1500)
    parser.add_argument("--questions", type=int, default=10, help="NRDelegation questions")
    parser.add_argument("--tsuname-queries", type=int, default=100)
    parser.add_argument("--no-unbound", action="store_true")
    args = parser.parse_args(argv)
    scenarios = [s for s in args.only.split(",") if s]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    with tempfile.TemporaryDirectory(prefix="exhaust-") as tmp:
        result = run(scenarios, args.ns_names, args.questions, args.tsuname_queries,
                     not args.no_unbound, Path(tmp))  # fmt: skip
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
