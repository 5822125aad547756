"""Broken upstreams: every client question gets a correct answer or SERVFAIL within the
time budget, and afterwards the resolver's sockets, tasks and in-flight entries are back
where they were when it was idle.

    /work/shared/tools/offline python -m scripts.reliability.broken [--names 40] [--json]

One zone per behaviour (:mod:`scripts.reliability.upstreams`), each ``<behaviour>.``
delegated from the root with glue to one server (``half.`` has two: one silent, one
good) whose wildcard answers ``192.0.2.N``.  The resolver runs as a process on port
53 upstream (needs root: run it in the offline namespace); the client asks ``--names``
distinct names per zone, all at once from 64 threads, and waits up to the time budget
plus two seconds for each answer.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.rcode

from resolver.lab.unbound import UnboundProcess, unbound_binary
from scripts.reliability.common import POOL_SETTLE, Resolver, free_port, query, udp_ask
from scripts.reliability.upstreams import Behaviour, BrokenLab, Role, leaf_zone, root_role

TIME_BUDGET = 10.0  # resolver.iterate.limits.Limits.time_budget
BEHAVIOURS: dict[str, Behaviour] = {
    "good": Behaviour(),
    "drop": Behaviour(drop=0.3),
    "delay": Behaviour(delay=0.5),
    "slow": Behaviour(delay=2.5),
    "garbage": Behaviour(garbage=0.5),
    "otherport": Behaviour(other_port=True),
    "otheraddr": Behaviour(other_address="127.8.99.1"),
    "truncate": Behaviour(truncate=True),
    "tcpclose": Behaviour(tcp_close=True),
    "flap": Behaviour(flap=1.0),
    "silent": Behaviour(silent=True),
    "half": Behaviour(),  # its partner below is silent
}
# Zones whose every server is unusable: SERVFAIL is the only right answer.
HOPELESS = {"otherport", "otheraddr", "truncate", "tcpclose", "silent"}


def roles() -> list[Role]:
    delegations: dict[str, list[tuple[str, str]]] = {}
    out = []
    for i, (name, behaviour) in enumerate(BEHAVIOURS.items(), start=1):
        zone, address = f"{name}.", f"127.8.{i}.1"
        server = f"ns.{zone}"
        delegations[zone] = [(server, address)]
        body = f"* A 192.0.2.{i}\n"
        out.append(Role(name, (address,), {zone: leaf_zone(zone, server, address, body)},
                        behaviour))  # fmt: skip
        if name == "half":
            silent = f"127.8.{i}.2"
            delegations[zone].append((f"ns2.{zone}", silent))
            text = leaf_zone(zone, server, address, body + f"ns2 A {silent}\n@ NS ns2\n")
            out[-1].zones[zone] = text
            out.append(Role("half-silent", (silent,), {zone: text}, Behaviour(silent=True)))
    return [root_role(delegations), *out]


def expected_address(zone: str) -> str:
    return f"192.0.2.{list(BEHAVIOURS).index(zone) + 1}"


@dataclass
class Outcome:
    zone: str
    rcode: str  # NOERROR, SERVFAIL, ..., or LOST
    correct: bool
    seconds: float


def ask(port: int, zone: str, n: int) -> Outcome:
    name = f"q{n}.{zone}."
    started = time.monotonic()
    reply = udp_ask(port, query(name, qid=n & 0xFFFF), timeout=TIME_BUDGET + 2)
    elapsed = time.monotonic() - started
    if reply is None:
        return Outcome(zone, "LOST", False, elapsed)
    message = dns.message.from_wire(reply)
    rcode = dns.rcode.to_text(message.rcode())
    answers = {r.to_text() for rrset in message.answer for r in rrset}
    correct = rcode == "SERVFAIL" or (
        rcode == "NOERROR" and answers == {expected_address(zone)} and zone not in HOPELESS
    )
    return Outcome(zone, rcode, correct, elapsed)


def resources(resolver: Resolver) -> dict[str, float]:
    stats = resolver.stats()
    return {
        "descriptors": resolver.descriptors(),
        "sockets": resolver.sockets(),
        "tasks": stats.get("tasks", -1),
        "in_flight": stats.get("resolutions_in_flight", -1),
        "rss_kib": resolver.rss_kib(),
    }


def peak(resolver: Resolver, running: Callable[[], bool], every: float = 0.3) -> dict[str, float]:
    """The highest value of each resource seen while ``running()`` (sampled)."""
    highest: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            now = resources(resolver)
        except (RuntimeError, OSError):
            break
        for key, value in now.items():
            highest[key] = max(highest.get(key, value), value)
        if not running():
            break
        time.sleep(every)
    return highest


def settle(resolver: Resolver, timeout: float = 20.0) -> None:
    """Wait until no resolution is in flight (bounded), then one more second."""
    deadline = time.monotonic() + timeout
    while resolver.stats().get("resolutions_in_flight", 0) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(POOL_SETTLE)  # the upstream socket pool's idle sockets closed


def outcomes_table(outcomes: list[Outcome]) -> dict[str, dict[str, float]]:
    table = {}
    for zone in BEHAVIOURS:
        mine = [o for o in outcomes if o.zone == zone]
        table[zone] = {
            "asked": len(mine),
            "noerror_correct": sum(o.rcode == "NOERROR" and o.correct for o in mine),
            "servfail": sum(o.rcode == "SERVFAIL" for o in mine),
            "wrong": sum(not o.correct and o.rcode != "LOST" for o in mine),
            "lost": sum(o.rcode == "LOST" for o in mine),
            "max_seconds": round(max(o.seconds for o in mine), 2),
        }
    return table


def ask_all(port: int, names: int) -> list[Outcome]:
    jobs = [(zone, n) for n in range(names) for zone in BEHAVIOURS]
    with ThreadPoolExecutor(64) as pool:
        return list(pool.map(lambda job: ask(port, *job), jobs))


def unbound_run(names: int, directory: Path) -> dict[str, object] | None:
    """The same questions to Unbound on the same servers (no resource counts)."""
    if unbound_binary() is None:
        return None
    with BrokenLab(directory / "lab-unbound", roles()) as lab:
        hints = lab.write_hints(directory / "hints-unbound")
        process = UnboundProcess(directory / "unbound", hints, free_port())
        process.start()
        try:
            return {"zones": outcomes_table(ask_all(process.port, names))}
        finally:
            process.stop()


def run(names: int, directory: Path) -> dict[str, object]:
    with BrokenLab(directory / "lab", roles()) as lab:
        hints = lab.write_hints(directory / "hints")
        with Resolver(directory / "resolver", hints, 53) as resolver:
            assert udp_ask(resolver.port, query("warm.good.", qid=1)) is not None
            settle(resolver)
            idle = resources(resolver)
            lab.counts.reset()
            jobs = [(zone, n) for n in range(names) for zone in BEHAVIOURS]
            started = time.monotonic()
            with ThreadPoolExecutor(64) as pool:
                futures = [pool.submit(ask, resolver.port, *job) for job in jobs]
                busy = peak(resolver, lambda: not all(f.done() for f in futures))
                outcomes = [f.result() for f in futures]
            duration = time.monotonic() - started
            settle(resolver)
            after = resources(resolver)
            upstream = lab.counts.total()
            status = resolver.stop()
    return {"zones": outcomes_table(outcomes), "idle": idle, "busy": busy, "after": after,
            "duration": round(duration, 1), "upstream_queries": upstream,
            "exit_status": status}  # fmt: skip


def markdown(result: dict[str, object]) -> str:
    zones = result["zones"]
    assert isinstance(zones, dict)
    lines = ["| zone | behaviour | asked | correct answer | SERVFAIL | wrong | lost | slowest s |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for zone, row in zones.items():
        behaviour = BEHAVIOURS[zone]
        what = ", ".join(f"{k}={v}" for k, v in vars(behaviour).items() if v) or "normal"
        if zone == "half":
            what = "one silent server, one normal"
        lines.append(f"| `{zone}.` | {what} | {row['asked']} | {row['noerror_correct']} | "
                     f"{row['servfail']} | {row['wrong']} | {row['lost']} | "
                     f"{row['max_seconds']} |")  # fmt: skip
    lines.append("")
    lines.append("| | descriptors | sockets | tasks | in flight | RSS (KiB) |")
    lines.append("|---|---|---|---|---|---|")
    for when in ("idle", "busy", "after"):  # busy: the highest seen during the run
        r = result[when]
        assert isinstance(r, dict)
        lines.append(f"| {when} | {r['descriptors']} | {r['sockets']} | {r['tasks']:.0f} | "
                     f"{r['in_flight']:.0f} | {r['rss_kib']} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--names", type=int, default=40, help="questions per zone")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--unbound", action="store_true", help="then ask Unbound the same")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="broken-") as tmp:
        result = run(args.names, Path(tmp))
        if args.unbound:
            result["unbound"] = unbound_run(args.names, Path(tmp))
    print(json.dumps(result, indent=1) if args.json else markdown(result))
    zones = result["zones"]
    assert isinstance(zones, dict)
    bad = sum(row["wrong"] + row["lost"] for row in zones.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
