"""Response policy at scale: a 1,000,000-record RPZ zone and a 1,000,000-name blocklist, ours
and Unbound with the same data, in the same run.

Not a test: a measurement.  It needs root, nsd, unbound and dnsperf (Debian packages nsd
unbound dnsperf) and must run in a network namespace with only loopback (the lab's
servers are NSD on 127.x.y.z port 53):

    ../shared/tools/offline python benchmarks/bench_policy.py --rounds 5

What it measures, the resolvers pinned to CPU 1 and dnsperf to CPU 0 (as
benchmarks/bench_resolvers.py):

- the data: ``--names`` (default 1,000,000) names ``hostN.badM.wild.example.com.``
  (the lab's wildcard answers them: NXDOMAIN says the policy is in force) as an RPZ
  master file (``CNAME .`` each, one in ten as a wildcard ``*.NAME``), as a blocklist of
  ``||NAME^`` rules (the name and every name below), and as Unbound ``local-zone:
  NAME always_nxdomain`` lines (which cover the subtree too);
- compile time and memory of our policy alone, in a fresh Python process
  (``load_file_source``): seconds, resident growth, peak resident size (VmHWM), what the
  fast path's check costs a query no rule matches (``Policy.early``, microseconds), and a
  whole cache hit (``ResolverService.take`` on a stored answer) without and with the
  policy, in the same process (the least noisy figure of all);
- six resolvers started one after the other, each timed until it answers with its
  policy in force (the load) and its resident size read then: ours without policy, ours
  with the RPZ zone (``[[policy-zone]]`` file, ``log = false``), ours with the blocklist
  (``[[blocklist]]``), Unbound without, Unbound with the RPZ zone (``rpz:``
  ``zonefile:``, ``module-config: "respip iterator"``, ``rpz-log: no``), and Unbound
  with the blocklist as people feed it (one ``local-zone: NAME always_nxdomain`` line
  per name);
- then, all six running (idle but the one measured), ``--rounds`` rounds in which each
  in turn gets two hot runs of ``--hot-seconds`` with 100 outstanding queries: ``pass``
  (200 cached names no rule matches: the cost of the policy on every query) and
  ``blocked`` (200 names of the zone: the cost of answering by policy);
- the RPZ zone served by NSD and transferred (AXFR) by ours and by Unbound: seconds from
  each one's start until the zone is in force (``--parts`` picks the measurements).

Ratios are taken within one round (policy on / off, ours / Unbound), so that the drift
of a shared machine falls on both sides; the range and the median over the rounds are
what to read.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dns.exception
import dns.message
import dns.query
import dns.rcode

import resolver.lab.unbound
from benchmarks.bench_resolvers import CLIENT_CPU, machine, pinned, rss_kib, span
from resolver.lab.nsd import NsdLab
from resolver.lab.rpz_servers import NsdPrimary, RpzUnbound, rpz_clause
from resolver.lab.unbound import OurResolver, ServerProcess, UnboundProcess, free_port

ZONE = "rpz.bench."
# A million names take our resolver (and Unbound) seconds to load before the first answer.
resolver.lab.unbound.READY_TIMEOUT = 600.0
PASS_NAMES = [f"n{i}.wild.example.com." for i in range(200)]  # the lab's wildcard: cached
CONFIGS = ("ours", "ours-rpz", "ours-list", "unbound", "unbound-rpz", "unbound-local")
LOAD_SNIPPET = """
import gc, json, sys, time
from resolver.ops.policy_config import PolicySource
from resolver.ops.policy_files import load_file_source
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
kind, name, path = sys.argv[1:4]
gc.collect()
before = rss()
started = time.perf_counter()
zone = load_file_source(PolicySource(kind, name, file=path, max_entries=10_000_000))
seconds = time.perf_counter() - started
gc.collect()
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
# What the fast path adds to each query: Policy.early on the wire cache's key of a name no
# rule matches (200 names of the lab's wildcard, as the hot run asks), in microseconds.
from resolver.policy import Policy, PolicySlot, name_wire
policy = Policy([PolicySlot(name, zone)])
keys = [name_wire(f"n{i}.wild.example.com.") for i in range(200)]
started = time.perf_counter()
for _ in range(500):
    for key in keys:
        policy.early(key, "127.0.0.1")
early = (time.perf_counter() - started) / (500 * len(keys)) * 1e6
# And a whole cache hit (ResolverService.take on a stored answer), with and without it.
import dns.message, dns.rrset
from resolver.wire.raw import question_key
from resolver.iterate.hints import parse_root_hints
from resolver.ops.config import Settings
from resolver.serve.policy_step import PolicyStep
from resolver.ops.runtime import build_service
from resolver.iterate.request import Transport
hints = parse_root_hints(chr(10).join([". 3600 NS a.root.", "a.root. 3600 A 127.0.0.1"]))
runtime = build_service(Settings(), hints)
packets = []
for i in range(200):
    query = dns.message.make_query(f"n{i}.wild.example.com.", "A", use_edns=False)
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text(query.question[0].name, 300, "IN", "A", "192.0.2.99"))
    packets.append(query.to_wire())
    runtime.answers.store(question_key(packets[-1]), reply.to_wire())
step = PolicyStep(policy, runtime.stats, runtime.engine, runtime.records)
gc.collect(); gc.freeze(); gc.set_threshold(10000, 10, 10)  # as the service runs
take_us = {}
for label, attached in [("off", None), ("on", step)] * 10:  # the least of ten tries each
    runtime.service.configure(policy=attached)
    started = time.perf_counter()
    for _ in range(100):
        for packet in packets:
            runtime.service.take(packet, "127.0.0.1", Transport.UDP)
    spent = (time.perf_counter() - started) / (100 * len(packets)) * 1e6
    take_us[label] = min(take_us.get(label, spent), spent)
print(json.dumps({"entries": len(zone), "seconds": seconds, "rss": rss() - before,
                  "peak": int(hwm[0].split()[1]) * 1024, "early_us": early,
                  "take_off_us": take_us["off"], "take_on_us": take_us["on"]}))
"""


def bad_name(i: int) -> str:
    """A name of the policy: under the lab's wildcard, so that without the policy it is
    answered (A 192.0.2.99) and NXDOMAIN shows the policy in force."""
    return f"host{i}.bad{i % 5000}.wild.example.com"


def write_data(directory: Path, count: int) -> dict[str, Path]:
    """The RPZ zone, the blocklist, and the blocklist as Unbound local-zone lines."""
    paths = {"rpz": directory / "bench.rpz", "list": directory / "bench.list",
             "local": directory / "bench.local.conf"}  # fmt: skip
    with paths["rpz"].open("w") as rpz, paths["list"].open("w") as listed, \
            paths["local"].open("w") as local:  # fmt: skip
        rpz.write("$TTL 60\n@ SOA localhost. hostmaster.localhost. 1 3600 600 86400 30\n"
                  "@ NS localhost.\n")  # fmt: skip
        for i in range(count):
            name = bad_name(i)
            # One rule in ten a wildcard, as feeds have them: every check then walks the
            # query name's parents too.
            rpz.write(f"*.{name} CNAME .\n" if i % 10 == 0 else f"{name} CNAME .\n")
            # ||name^: the name and below, as Unbound's local-zone covers its subtree.
            listed.write(f"||{name}^\n")
            local.write(f'    local-zone: "{name}." always_nxdomain\n')
    return paths


@dataclass
class Load:
    kind: str
    entries: int
    seconds: float
    rss: int
    peak: int
    early_us: float  # Policy.early on a name no rule matches
    take_off_us: float  # a whole cache hit (ResolverService.take) without the policy
    take_on_us: float  # and with it


def compile_alone(kind: str, path: Path) -> Load:
    """Our compile time and memory for one source, in a fresh process."""
    done = subprocess.run([sys.executable, "-c", LOAD_SNIPPET, kind, ZONE if kind == "rpz"
                           else "bench", str(path)], capture_output=True, text=True,
                          check=True, timeout=1800)  # fmt: skip
    print(f"  {kind}: {done.stdout.strip()}", flush=True)
    return Load(kind, **json.loads(done.stdout))


@dataclass
class Served:
    """One configuration: how long until it answered, its size then, its hot rounds."""

    ready_seconds: float = 0.0
    rss_kib: int = 0
    qps: dict[str, list[float]] = field(default_factory=lambda: {"pass": [], "blocked": []})
    lost: int = 0


def process_for(config: str, workdir: Path, hints: Path, data: dict[str, Path],
                port: int) -> ServerProcess:  # fmt: skip
    workdir.mkdir(parents=True, exist_ok=True)
    if config.startswith("ours"):
        extra: list[str] = ["--log-level", "warning", "--control-socket", "none"]
        if config != "ours":
            table = (f'[[policy-zone]]\nname = "{ZONE}"\nfile = "{data["rpz"]}"\n'
                     if config == "ours-rpz" else f'[[blocklist]]\nfile = "{data["list"]}"\n')
            conf = workdir / "policy.toml"
            conf.write_text(table + "log = false\nmax-entries = 10000000\n")
            extra += ["--config", str(conf)]
        return pinned(OurResolver(workdir, hints, port, *extra))
    if config == "unbound":
        return pinned(UnboundProcess(workdir, hints, port))
    clauses = [rpz_clause(ZONE, zonefile=data["rpz"], log=False)] if config == "unbound-rpz" else []
    server = data["local"].read_text() if config == "unbound-local" else ""
    return pinned(RpzUnbound(workdir, hints, port, clauses, modules="respip iterator",
                             server=server))  # fmt: skip


def answers(port: int, name: str, rcode: int) -> bool:
    query = dns.message.make_query(name, "A")
    try:
        return dns.query.udp(query, "127.0.0.1", port=port, timeout=1).rcode() == rcode
    except dns.exception.Timeout:
        return False


def hot(port: int, names: list[str], workdir: Path, extra: list[str]) -> tuple[float, int]:
    """dnsperf against one resolver: (q/s, queries lost)."""
    data = workdir / "queries.txt"
    data.write_text("".join(f"{name} A\n" for name in names))
    command = ["taskset", "-c", CLIENT_CPU, "dnsperf", "-s", "127.0.0.1", "-p", str(port),
               "-d", str(data), *extra]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True,
                            timeout=600).stdout  # fmt: skip
    qps = re.search(r"Queries per second:\s+([0-9.]+)", output)
    lost = re.search(r"Queries lost:\s+(\d+)", output)
    return (float(qps[1]) if qps else 0.0), (int(lost[1]) if lost else 0)


def start(config: str, workdir: Path, hints: Path, data: dict[str, Path],
          blocked: list[str]) -> tuple[ServerProcess, Served]:  # fmt: skip
    """One configuration started; ready once it answers (and applies its policy)."""
    process = process_for(config, workdir, hints, data, free_port())
    served = Served()
    started = time.monotonic()
    process.start()  # it answers a CHAOS question: ours once its policy is loaded
    if config not in ("ours", "unbound"):  # Unbound answers before its zone is in
        while not answers(process.port, blocked[0], dns.rcode.NXDOMAIN):
            time.sleep(0.05)
    served.ready_seconds = time.monotonic() - started
    assert process.process is not None
    served.rss_kib = rss_kib(process.process.pid)
    for names in (PASS_NAMES, blocked):  # resolved once: then every answer is cached
        hot(process.port, names, workdir, ["-n", "1", "-q", "50"])
    return process, served


def serve_all(workdir: Path, hints: Path, data: dict[str, Path], blocked: list[str],
              rounds: int, seconds: int) -> dict[str, Served]:  # fmt: skip
    """Every configuration running at once (each idle but when measured), measured in
    turn, ``rounds`` times: the machine's drift falls on all of them alike."""
    running: dict[str, tuple[ServerProcess, Served]] = {}
    try:
        for config in CONFIGS:
            print(f"# starting {config}", flush=True)
            running[config] = start(config, workdir / config, hints, data, blocked)
            print(f"  ready in {running[config][1].ready_seconds:.1f} s, "
                  f"{running[config][1].rss_kib / 1024:.0f} MB", flush=True)  # fmt: skip
        for number in range(rounds):
            for config, (process, served) in running.items():
                for kind, names in (("pass", PASS_NAMES), ("blocked", blocked)):
                    qps, lost = hot(process.port, names, workdir / config,
                                    ["-l", str(seconds), "-q", "100", "-c", "4"])  # fmt: skip
                    served.qps[kind].append(qps)
                    served.lost += lost
            print(f"# round {number + 1}: " + ", ".join(
                f"{c} {s.qps['pass'][-1]:,.0f}/{s.qps['blocked'][-1]:,.0f}"
                for c, (_, s) in running.items()), flush=True)  # fmt: skip
    finally:
        for process, _ in running.values():
            process.stop()
    return {config: served for config, (_, served) in running.items()}


def transfer_times(workdir: Path, hints: Path, data: dict[str, Path],
                   blocked: list[str]) -> dict[str, float]:  # fmt: skip
    """Seconds from the start of each resolver until its policy zone, transferred (AXFR)
    from NSD, is in force (a name of it answered NXDOMAIN)."""
    times: dict[str, float] = {}
    with NsdPrimary(workdir / "primary", {ZONE: data["rpz"]}, free_port()) as primary:
        for kind in ("ours", "unbound"):
            directory = workdir / f"transfer-{kind}"
            directory.mkdir(parents=True, exist_ok=True)
            process: ServerProcess
            if kind == "ours":
                conf = directory / "policy.toml"
                conf.write_text(f'[[policy-zone]]\nname = "{ZONE}"\nprimary = "{primary.spec}"\n'
                                "log = false\nmax-entries = 10000000\n")  # fmt: skip
                process = pinned(OurResolver(directory, hints, free_port(), "--config", str(conf),
                                             "--control-socket", "none"))  # fmt: skip
            else:
                clause = rpz_clause(ZONE, primary=primary.spec, log=False)
                process = pinned(RpzUnbound(directory, hints, free_port(), [clause],
                                            modules="respip iterator"))  # fmt: skip
            started = time.monotonic()
            with process:
                while not answers(process.port, blocked[0], dns.rcode.NXDOMAIN):
                    time.sleep(0.05)
                times[kind] = time.monotonic() - started
                time.sleep(1)  # what the transfer left behind is freed
                assert process.process is not None
                times[f"{kind}_rss_kib"] = rss_kib(process.process.pid)
            print(f"  {kind}: in force {times[kind]:.1f} s after its start, "
                  f"{times[f'{kind}_rss_kib'] / 1024:.0f} MB", flush=True)  # fmt: skip
    return times


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def report(loads: list[Load], served: dict[str, Served], count: int, rounds: int) -> None:
    if loads:
        compiled(loads, count)
    if served:
        serving(served, rounds)


def compiled(loads: list[Load], count: int) -> None:
    print(f"\n## Compiling {count:,} entries alone (ours)")
    print("| source | seconds | resident growth | bytes/entry | peak resident | check/query "
          "| cache hit without / with |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for load in loads:
        print(f"| {load.kind} | {load.seconds:.1f} | {load.rss / 1e6:.0f} MB | "
              f"{load.rss / load.entries:.0f} | {load.peak / 1e6:.0f} MB | "
              f"{load.early_us:.2f} µs | "
              f"{load.take_off_us:.2f} / {load.take_on_us:.2f} µs |")  # fmt: skip


def serving(served: dict[str, Served], rounds: int) -> None:
    print(f"\n## Serving: ready, resident size, hot q/s over {rounds} rounds (range, median)")
    print("| configuration | ready s | resident MB | pass q/s | blocked q/s | lost |")
    print("|---|---:|---:|---:|---:|---:|")
    for config, s in served.items():
        cells = [f"{span(s.qps[k], '{:,.0f}')} ({median(s.qps[k]):,.0f})"
                 for k in ("pass", "blocked")]
        print(f"| {config} | {s.ready_seconds:.1f} | {s.rss_kib / 1024:.0f} | {cells[0]} | "
              f"{cells[1]} | {s.lost} |")  # fmt: skip
    print("\n## Ratios, each within one round (range over the rounds, median)")
    pairs = [("ours-rpz / ours", "ours-rpz", "ours", "pass"),
             ("ours-list / ours", "ours-list", "ours", "pass"),
             ("unbound-rpz / unbound", "unbound-rpz", "unbound", "pass"),
             ("unbound-local / unbound", "unbound-local", "unbound", "pass"),
             ("ours / unbound", "ours", "unbound", "pass"),
             ("ours-rpz / unbound-rpz", "ours-rpz", "unbound-rpz", "pass"),
             ("ours-rpz / unbound-rpz", "ours-rpz", "unbound-rpz", "blocked"),
             ("ours-list / unbound-local", "ours-list", "unbound-local", "blocked")]  # fmt: skip
    for label, a, b, kind in pairs:
        ratios = [x / y for x, y in zip(served[a].qps[kind], served[b].qps[kind], strict=True) if y]
        print(f"- {kind} q/s {label}: {span(ratios, '{:.2f}')}x (median {median(ratios):.2f}x)")
    for label, a, b in (("RPZ zone", "ours-rpz", "unbound-rpz"),
                        ("blocklist", "ours-list", "unbound-local")):  # fmt: skip
        ours = (served[a].rss_kib - served["ours"].rss_kib) / 1024
        theirs = (served[b].rss_kib - served["unbound"].rss_kib) / 1024
        print(f"- resident growth for the {label}: ours {ours:.0f} MB, Unbound {theirs:.0f} MB "
              f"({ours / theirs:.2f}x)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hot-seconds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write every figure there too")
    parser.add_argument("--parts", default="compile,serve,transfer",
                        help="which measurements (default all: compile,serve,transfer)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    for line in machine():
        print(line, flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-policy-"))
    data = write_data(workdir, args.names)
    step = max(args.names // 200, 1)
    blocked = [bad_name(i) + "." for i in range(1, args.names, step)][:200]  # exact names
    loads: list[Load] = []
    if "compile" in parts:
        print("# compiling alone", flush=True)
        sources = (("rpz", "rpz"), ("blocklist", "list"))
        loads = [compile_alone(kind, data[key]) for kind, key in sources]
    served: dict[str, Served] = {}
    transfers: dict[str, float] = {}
    with NsdLab(workdir / "nsd") as lab:
        hints = lab.write_hints(workdir / "lab.root")
        if "serve" in parts:
            served = serve_all(workdir, hints, data, blocked, args.rounds, args.hot_seconds)
        if "transfer" in parts:
            print("# the RPZ zone transferred from NSD (AXFR)", flush=True)
            transfers = transfer_times(workdir, hints, data, blocked)
    report(loads, served, args.names, args.rounds)
    if transfers:
        print(f"\n## The {args.names:,}-record zone transferred from NSD (AXFR), in force after")
        print(f"- ours {transfers['ours']:.1f} s, Unbound {transfers['unbound']:.1f} s "
              f"({transfers['ours'] / transfers['unbound']:.2f}x); resident then: ours "
              f"{transfers['ours_rss_kib'] / 1024:.0f} MB, Unbound "
              f"{transfers['unbound_rss_kib'] / 1024:.0f} MB")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"loads": [asdict(load) for load in loads],
                                         "served": {k: asdict(v) for k, v in served.items()},
                                         "transfers": transfers}, indent=1))  # fmt: skip
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
