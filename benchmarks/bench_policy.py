"""Response policy at scale: a 1,000,000-record RPZ zone and a 1,000,000-name blocklist, ours
and Unbound with the same data, in the same run.

Not a test: a measurement.  It needs root, nsd, unbound and dnsperf (Debian packages nsd
unbound dnsperf) and must run in a network namespace with only loopback (the lab's
servers are NSD on 127.x.y.z port 53):

    ../shared/tools/offline python benchmarks/bench_policy.py --runs 3

What it measures, each resolver pinned to CPU 1 and dnsperf to CPU 0 (as
benchmarks/bench_resolvers.py):

- the data: ``--names`` (default 1,000,000) names ``hostN.badM.example.`` as an RPZ
  master file (``CNAME .`` each) and as a hosts-file blocklist;
- compile time and memory of our policy alone, in a fresh Python process
  (``load_file_source``): seconds, resident growth, peak resident size;
- for each resolver configuration, from a fresh start: the seconds until it answers
  (the load, for the ones with a policy) and its resident size once it does, then two
  hot runs of ``--hot-seconds`` with 100 outstanding queries: ``pass`` (200 names,
  cached, that no rule matches: the cost of the policy on every query) and ``blocked``
  (200 names of the zone: the cost of answering by policy).  Configurations: ours
  without policy, ours with the RPZ zone (``[[policy-zone]]`` file, ``log = false``),
  ours with the blocklist (``[[blocklist]]``), Unbound without, Unbound with the RPZ
  zone (``rpz:`` ``zonefile:``, ``module-config: "respip iterator"``, ``rpz-log: no``),
  and Unbound with the blocklist as what people feed it (one ``local-zone: NAME
  always_nxdomain`` line per name).

Ratios are within one run (policy on / off, ours / Unbound); the machine is shared, so
the ranges over ``--runs`` are what to read.
"""

from __future__ import annotations

import argparse
import json
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
from benchmarks.bench_resolvers import PORT, dnsperf, machine, pinned, rss_kib, span
from resolver.lab.nsd import NsdLab
from resolver.lab.rpz_servers import RpzUnbound, rpz_clause
from resolver.lab.unbound import OurResolver, ServerProcess, UnboundProcess

ZONE = "rpz.bench."
# A million names take our resolver (and Unbound) seconds to load before the first answer.
resolver.lab.unbound.READY_TIMEOUT = 600.0
PASS_NAMES = [f"n{i}.wild.example.com." for i in range(200)]  # the lab's wildcard: cached
CONFIGS = ("ours", "ours-rpz", "ours-list", "unbound", "unbound-rpz", "unbound-local")
LOAD_SNIPPET = """
import gc, json, resource, sys, time
from resolver.serve.policy_config import PolicySource
from resolver.serve.policy_files import load_file_source
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
kind, name, path = sys.argv[1:4]
gc.collect()
before = rss()
started = time.perf_counter()
zone = load_file_source(PolicySource(kind, name, file=path, max_entries=10_000_000))
seconds = time.perf_counter() - started
gc.collect()
print(json.dumps({"entries": len(zone), "seconds": seconds, "rss": rss() - before,
                  "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def bad_name(i: int) -> str:
    return f"host{i}.bad{i % 5000}.example"


def write_data(directory: Path, count: int) -> dict[str, Path]:
    """The RPZ zone, the blocklist, and the blocklist as Unbound local-zone lines."""
    paths = {"rpz": directory / "bench.rpz", "list": directory / "bench.hosts",
             "local": directory / "bench.local.conf"}  # fmt: skip
    with paths["rpz"].open("w") as rpz, paths["list"].open("w") as hosts, \
            paths["local"].open("w") as local:  # fmt: skip
        rpz.write("$TTL 60\n@ SOA localhost. hostmaster.localhost. 1 3600 600 86400 30\n"
                  "@ NS localhost.\n")  # fmt: skip
        for i in range(count):
            name = bad_name(i)
            rpz.write(f"{name} CNAME .\n")
            hosts.write(f"0.0.0.0 {name}\n")
            local.write(f'    local-zone: "{name}." always_nxdomain\n')
    return paths


@dataclass
class Load:
    entries: int
    seconds: float
    rss: int
    peak: int


def compile_alone(kind: str, path: Path) -> Load:
    """Our compile time and memory for one source, in a fresh process."""
    done = subprocess.run([sys.executable, "-c", LOAD_SNIPPET, kind, ZONE if kind == "rpz"
                           else "bench", str(path)], capture_output=True, text=True,
                          check=True, timeout=1800)  # fmt: skip
    return Load(**json.loads(done.stdout))


@dataclass
class Served:
    """One configuration: how long until it answered, its size then, its hot runs."""

    ready_seconds: float = 0.0
    rss_kib: int = 0
    qps: dict[str, float] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)


def process_for(config: str, workdir: Path, hints: Path, data: dict[str, Path]) -> ServerProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    if config.startswith("ours"):
        extra: list[str] = ["--log-level", "warning"]
        if config != "ours":
            table = (f'[[policy-zone]]\nname = "{ZONE}"\nfile = "{data["rpz"]}"\n'
                     if config == "ours-rpz" else f'[[blocklist]]\nfile = "{data["list"]}"\n')
            conf = workdir / "policy.toml"
            conf.write_text(table + "log = false\nmax-entries = 10000000\n")
            extra += ["--config", str(conf)]
        return pinned(OurResolver(workdir, hints, PORT, *extra))
    if config == "unbound":
        return pinned(UnboundProcess(workdir, hints, PORT))
    clauses = [rpz_clause(ZONE, zonefile=data["rpz"], log=False)] if config == "unbound-rpz" else []
    server = data["local"].read_text() if config == "unbound-local" else ""
    return pinned(RpzUnbound(workdir, hints, PORT, clauses, modules="respip iterator",
                             server=server))  # fmt: skip


def answers(name: str, rcode: int) -> bool:
    query = dns.message.make_query(name, "A")
    try:
        return dns.query.udp(query, "127.0.0.1", port=PORT, timeout=1).rcode() == rcode
    except dns.exception.Timeout:
        return False


def serve(config: str, workdir: Path, hints: Path, data: dict[str, Path], seconds: int,
          blocked: list[str]) -> Served:  # fmt: skip
    process = process_for(config, workdir, hints, data)
    served = Served()
    started = time.monotonic()
    process.start()  # ready: it answers a CHAOS question (ours: after its policy loaded)
    try:
        if config != "ours" and config != "unbound":  # Unbound answers before its zone loads
            while not answers(blocked[0], dns.rcode.NXDOMAIN):
                time.sleep(0.05)
        served.ready_seconds = time.monotonic() - started
        assert process.process is not None
        served.rss_kib = rss_kib(process.process.pid)
        for kind, names in (("pass", PASS_NAMES), ("blocked", blocked)):
            dnsperf(names, workdir, ["-n", "1", "-q", "50"])  # warm: resolved, cached
            run = dnsperf(names, workdir, ["-l", str(seconds), "-q", "100", "-c", "4"])
            served.qps[kind], served.lost[kind] = run.qps, run.lost
    finally:
        process.stop()
    return served


def report(loads: list[dict[str, Load]], runs: list[dict[str, Served]], count: int) -> None:
    print(f"\n## Compiling {count:,} entries alone (ours); ranges over {len(loads)} run(s)")
    print("| source | seconds | resident growth | bytes/entry | peak resident |")
    print("|---|---:|---:|---:|---:|")
    for kind in ("rpz", "list"):
        rows = [load[kind] for load in loads]
        print(f"| {kind} | {span([r.seconds for r in rows], '{:.1f}')} | "
              f"{span([r.rss / 1e6 for r in rows], '{:.0f}')} MB | "
              f"{span([r.rss / r.entries for r in rows], '{:.0f}')} | "
              f"{span([r.peak / 1e6 for r in rows], '{:.0f}')} MB |")  # fmt: skip
    print(f"\n## Serving: ready, resident size, hot q/s; ranges over {len(runs)} run(s)")
    print("| configuration | ready s | resident MB | pass q/s | blocked q/s |")
    print("|---|---:|---:|---:|---:|")
    for config in CONFIGS:
        rows = [run[config] for run in runs]
        print(f"| {config} | {span([r.ready_seconds for r in rows], '{:.1f}')} | "
              f"{span([r.rss_kib / 1024 for r in rows], '{:.0f}')} | "
              f"{span([r.qps['pass'] for r in rows], '{:,.0f}')} | "
              f"{span([r.qps['blocked'] for r in rows], '{:,.0f}')} |")  # fmt: skip
    print("\n## Ratios within each run")
    pairs = [("ours-rpz / ours", "ours-rpz", "ours", "pass"),
             ("ours-list / ours", "ours-list", "ours", "pass"),
             ("unbound-rpz / unbound", "unbound-rpz", "unbound", "pass"),
             ("ours-rpz / unbound-rpz", "ours-rpz", "unbound-rpz", "pass"),
             ("ours-rpz / unbound-rpz", "ours-rpz", "unbound-rpz", "blocked"),
             ("ours-list / unbound-local", "ours-list", "unbound-local", "blocked")]  # fmt: skip
    for label, a, b, kind in pairs:
        ratios = [run[a].qps[kind] / run[b].qps[kind] for run in runs if run[b].qps[kind]]
        print(f"- {kind} q/s {label}: {span(ratios, '{:.2f}')}x")
    for label, a, b in (("RPZ zone", "ours-rpz", "unbound-rpz"),
                        ("blocklist", "ours-list", "unbound-local")):  # fmt: skip
        grown = [(run[a].rss_kib - run["ours"].rss_kib)
                 / max(run[b].rss_kib - run["unbound"].rss_kib, 1) for run in runs]  # fmt: skip
        print(f"- resident growth for the {label}, ours / Unbound: {span(grown, '{:.2f}')}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--hot-seconds", type=int, default=10)
    parser.add_argument("--json", type=Path, help="write every figure there too")
    args = parser.parse_args()
    for line in machine():
        print(line, flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-policy-"))
    data = write_data(workdir, args.names)
    blocked = [bad_name(i) + "." for i in range(0, args.names, max(args.names // 200, 1))][:200]
    loads: list[dict[str, Load]] = []
    runs: list[dict[str, Served]] = []
    with NsdLab(workdir / "nsd") as lab:
        hints = lab.write_hints(workdir / "lab.root")
        for run in range(args.runs):
            print(f"# run {run + 1}: compiling alone", flush=True)
            loads.append({kind: compile_alone(kind if kind == "rpz" else "blocklist", data[kind])
                          for kind in ("rpz", "list")})  # fmt: skip
            print(f"  {loads[-1]}", flush=True)
            row: dict[str, Served] = {}
            for config in CONFIGS:
                print(f"# run {run + 1}: {config}", flush=True)
                row[config] = serve(config, workdir / f"{config}-{run}", hints, data,
                                    args.hot_seconds, blocked)  # fmt: skip
                print(f"  {row[config]}", flush=True)
            runs.append(row)
    report(loads, runs, args.names)
    if args.json:
        args.json.write_text(json.dumps({"loads": [{k: asdict(v) for k, v in r.items()}
                                                   for r in loads],
                                         "runs": [{k: asdict(v) for k, v in r.items()}
                                                  for r in runs]}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
