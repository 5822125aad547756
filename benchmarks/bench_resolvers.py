"""Our resolver and Unbound, one after the other, on the same NSD-served hierarchy.

Not a test: a measurement.  It needs root, nsd, unbound, dnsperf and nft (Debian
packages nsd unbound dnsperf nftables), and it must run in a network namespace
with only loopback, where every server of the hierarchy lives on 127.9.x.y:

    ../shared/tools/offline python benchmarks/bench_resolvers.py --runs 3

Each resolver is pinned to CPU 1 (``taskset -c 1``) and dnsperf to CPU 0; NSD
runs wherever the scheduler puts it.  For each run, each QNAME minimisation
setting (ours ``--[no-]qname-minimisation``, Unbound ``qname-minimisation:
yes|no``) and each resolver, from a fresh start:

- cold: ``--zones`` names (default 2,000), each in its own zone, half of them
  delegated with glue and half to name servers that need a sub-lookup, each asked
  once with 20 outstanding; upstream queries counted with nftables counters on
  packets to port 53 (UDP queries plus TCP connections): the same count for both;
- hot: the first 200 of those names, now cached, replayed for ``--hot-seconds``
  with 100 outstanding from 4 client sockets;
- wildcard: in a fresh process, ``--wildcard-names`` distinct names (default
  100,000) under one wildcard, each asked once with 50 outstanding: the time, the
  names lost, the upstream queries, and the growth of the resident set per name
  (what one more cached name costs the whole process).

Every figure is also given as ours/Unbound measured in the same run and setting;
with several runs the summary gives the range of each over the runs.  The machine
is shared and noisy: the ratios are what to compare, not the absolute rates.
Latency percentiles come from dnsperf's per-query output (``-v``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resolver.lab import bulk_zones
from resolver.lab.nsd import NsdLab
from resolver.lab.unbound import OurResolver, ServerProcess, UnboundProcess

RESOLVER_CPU = "1"
CLIENT_CPU = "0"
PORT = 5353
VERBOSE_LINE = re.compile(r"^> (\S+) \S+ \S+ ([0-9.]+)$")
KINDS = ("ours", "unbound")


@dataclass
class Run:
    """What one dnsperf run measured."""

    sent: int = 0
    completed: int = 0
    lost: int = 0
    seconds: float = 0.0
    qps: float = 0.0
    rcodes: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    upstream: int = 0
    cpu: float = 0.0  # CPU seconds the resolver used (user + system) during the run

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)] * 1000


def dnsperf(names: list[str], workdir: Path, extra: list[str], cpus: str = CLIENT_CPU) -> Run:
    data = workdir / "queries.txt"
    data.write_text("".join(f"{name} A\n" for name in names))
    command = ["taskset", "-c", cpus, "dnsperf", "-s", "127.0.0.1", "-p", str(PORT),
               "-d", str(data), "-v", *extra]  # fmt: skip
    print("  $", " ".join(command), flush=True)
    output = subprocess.run(command, capture_output=True, text=True, check=True,
                            timeout=900).stdout  # fmt: skip
    run = Run()
    for line in output.splitlines():
        match = VERBOSE_LINE.match(line)
        if match:
            run.rcodes[match.group(1)] = run.rcodes.get(match.group(1), 0) + 1
            run.latencies.append(float(match.group(2)))
        elif "Queries sent:" in line:
            run.sent = int(line.split()[2])
        elif "Queries completed:" in line:
            run.completed = int(line.split()[2])
        elif "Queries lost:" in line:
            run.lost = int(line.split()[2])
        elif "Run time (s):" in line:
            run.seconds = float(line.split()[3])
        elif "Queries per second:" in line:
            run.qps = float(line.split()[3])
    return run


class UpstreamCounter:
    """nftables counters on packets to port 53: UDP queries and TCP connections; with
    ``to`` (a network), only those to it (bench_cluster: the hierarchy, not dnsdist's
    queries to the nodes, which are port 53 too)."""

    def __init__(self, table: str = "bench", to: str | None = None) -> None:
        self.table = table
        self.match = f"ip daddr {to} " if to else ""

    def reset(self) -> None:
        table, match = self.table, self.match
        subprocess.run(["nft", "delete", "table", "inet", table], capture_output=True)
        rules = (
            f"add table inet {table}\n"
            f"add chain inet {table} out {{ type filter hook output priority 0; }}\n"
            f"add rule inet {table} out {match}udp dport 53 counter\n"
            f"add rule inet {table} out {match}tcp dport 53 tcp flags syn counter\n"
        )
        subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)

    def read(self) -> int:
        listing = subprocess.run(
            ["nft", "-j", "list", "table", "inet", self.table], capture_output=True, text=True,
            check=True,
        ).stdout  # fmt: skip
        return sum(
            expression["counter"]["packets"]
            for item in json.loads(listing)["nftables"]
            for expression in item.get("rule", {}).get("expr", [])
            if "counter" in expression
        )


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin_group(leader: int, cpus: str) -> None:
    """Pin every process of ``leader``'s process group (an NSD and its server child)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == leader:  # the process group ID
            subprocess.run(["taskset", "-a", "-p", "-c", cpus, stat.parent.name],
                           capture_output=True, check=False)  # fmt: skip


def pin_nsd(lab: NsdLab, cpus: str) -> None:
    """NSD on the client's CPU, so that the resolver's CPU runs nothing but the resolver
    (otherwise an NSD woken by a query on the resolver's CPU preempts it there)."""
    for process in lab.processes.values():
        pin_group(process.pid, cpus)


def pinned(process: ServerProcess) -> ServerProcess:
    original = process.command
    process.command = lambda: ["taskset", "-c", RESOLVER_CPU, *original()]  # type: ignore[method-assign]
    return process


class Unbound(UnboundProcess):
    """The lab's Unbound, with QNAME minimisation on or off (validating from
    ``trust_anchor`` if one is given: benchmarks/bench_dnssec.py)."""

    def __init__(self, workdir: Path, hints: Path, port: int, cache: int, qmin: bool,
                 trust_anchor: Path | None = None) -> None:  # fmt: skip
        super().__init__(workdir, hints, port, cache_entries=cache, trust_anchor=trust_anchor)
        self.qmin = qmin

    def command(self) -> list[str]:
        command = super().command()
        conf = self.workdir / "unbound.conf"
        text = conf.read_text()
        assert "qname-minimisation: no\n" in text
        setting = f"qname-minimisation: {'yes' if self.qmin else 'no'}\n"
        conf.write_text(text.replace("qname-minimisation: no\n", setting))
        return command


def make(kind: str, workdir: Path, hints: Path, cache: int, qmin: bool,
         trust_anchor: Path | None = None) -> ServerProcess:  # fmt: skip
    """A resolver on ``hints``; validating from ``trust_anchor`` if one is given (without
    one, on these custom hints, neither validates)."""
    if kind == "unbound":
        return pinned(Unbound(workdir, hints, PORT, cache, qmin, trust_anchor))
    flag = "--qname-minimisation" if qmin else "--no-qname-minimisation"
    anchor = ["--trust-anchor-file", str(trust_anchor)] if trust_anchor else []
    return pinned(OurResolver(workdir, hints, PORT, "--log-level", "info",
                              "--cache-size", str(cache), flag, *anchor))  # fmt: skip


def started_loop(workdir: Path) -> str:
    """The event loop our resolver said it runs, and whether its core is compiled (its
    start-up log line)."""
    for line in (workdir / "stderr.log").read_text().splitlines():
        if '"started"' in line:
            started = json.loads(line)
            return f"{started.get('loop', '?')}, core={started.get('core', '?')}"
    return "?"


def measure(kind: str, names: list[str], hot_seconds: int, workdir: Path, hints: Path,
            qmin: bool) -> dict[str, Run]:  # fmt: skip
    counter = UpstreamCounter()
    with make(kind, workdir, hints, 100_000, qmin) as process:
        assert process.process is not None
        pid = process.process.pid
        counter.reset()
        cpu = cpu_seconds(pid)
        cold = dnsperf(names, workdir.parent, ["-n", "1", "-q", "20", "-t", "10"])
        cold.cpu = cpu_seconds(pid) - cpu
        cold.upstream = counter.read()
        hot = dnsperf(names[:200], workdir.parent,
                      ["-l", str(hot_seconds), "-q", "100", "-c", "4"])  # fmt: skip
    if kind == "ours":
        print(f"  (our event loop: {started_loop(workdir)})", flush=True)
    return {"cold": cold, "hot": hot}


def measure_wildcard(kind: str, count: int, workdir: Path, hints: Path, qmin: bool) -> Run:
    """``count`` distinct names under a wildcard, once each: time, losses, RSS per name."""
    names = bulk_zones.memory_names(count)
    counter = UpstreamCounter()
    with make(kind, workdir, hints, 2 * count + 1000, qmin) as process:
        assert process.process is not None
        pid = process.process.pid
        # Warm: the cut of mem.bench. and the code paths; then what is allocated is the names'.
        dnsperf([f"warm{i}.{bulk_zones.MEMORY_ZONE}" for i in range(10)], workdir.parent,
                ["-n", "1", "-q", "10"])  # fmt: skip
        time.sleep(0.5)
        before = rss_kib(pid)
        counter.reset()
        cpu = cpu_seconds(pid)
        run = dnsperf(names, workdir.parent, ["-n", "1", "-q", "50", "-t", "10"])
        run.cpu = cpu_seconds(pid) - cpu
        run.upstream = counter.read()
        time.sleep(0.5)
        after = rss_kib(pid)
    run.latencies = []  # not kept: 100,000 floats per resolver add nothing to the report
    run.qps = (after - before) * 1024 / count  # reused: bytes of resident growth per name
    return run


def version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except OSError:
        return "?"
    text = (done.stdout + done.stderr).strip().splitlines()
    return next((line for line in text if re.search(r"\d+\.\d+", line)), "?")


def machine() -> list[str]:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), "?",
    )  # fmt: skip
    return [
        f"machine: {os.cpu_count()} CPUs (nproc), {model}, {platform.platform()}",
        f"python: {sys.version.split()[0]}; unbound: {version(['unbound', '-V'])}",
        f"nsd: {version(['nsd', '-v'])}; dnsperf: {version(['dnsperf', '-h'])}",
        f"load average at start: {Path('/proc/loadavg').read_text().split()[:3]}",
        "command: " + " ".join([sys.executable, *sys.argv]),
    ]


# ------------------------------------------------------------------------ the report


@dataclass
class Figures:
    """One resolver's figures in one run and setting."""

    cold_seconds: float
    cold_cpu: float
    cold_answered: int
    cold_lost: int
    cold_servfail: int
    cold_p50: float
    cold_p99: float
    cold_upstream_per_name: float
    hot_qps: float
    hot_lost: int
    wild_seconds: float = float("nan")
    wild_cpu: float = float("nan")
    wild_answered: int = 0
    wild_lost: int = 0
    wild_upstream_per_name: float = float("nan")
    bytes_per_name: float = float("nan")


def figures(result: dict[str, Run], zones: int, wild: Run | None, wild_count: int) -> Figures:
    cold, hot = result["cold"], result["hot"]
    out = Figures(
        cold.seconds, cold.cpu, cold.rcodes.get("NOERROR", 0), cold.lost,
        cold.rcodes.get("SERVFAIL", 0), cold.percentile(0.5), cold.percentile(0.99),
        cold.upstream / zones, hot.qps, hot.lost,
    )  # fmt: skip
    if wild is not None:
        out.wild_seconds = wild.seconds
        out.wild_cpu = wild.cpu
        out.wild_answered = wild.rcodes.get("NOERROR", 0)
        out.wild_lost = wild_count - out.wild_answered
        out.wild_upstream_per_name = wild.upstream / wild_count
        out.bytes_per_name = wild.qps
    return out


ROWS = (  # (label, field, format, target on ours/unbound: issue 24's)
    ("cold seconds", "cold_seconds", "{:.2f}", ""),
    ("cold CPU seconds", "cold_cpu", "{:.2f}", "<= 2x"),
    ("cold answered", "cold_answered", "{:.0f}", "all"),
    ("cold p50 ms", "cold_p50", "{:.2f}", ""),
    ("cold p99 ms", "cold_p99", "{:.2f}", ""),
    ("cold upstream/name", "cold_upstream_per_name", "{:.2f}", ""),
    ("hot q/s", "hot_qps", "{:,.0f}", ">= 0.75x"),
    ("hot lost", "hot_lost", "{:.0f}", "0"),
    ("wildcard seconds", "wild_seconds", "{:.2f}", ""),
    ("wildcard CPU seconds", "wild_cpu", "{:.2f}", "<= 2x"),
    ("wildcard lost (not NOERROR)", "wild_lost", "{:.0f}", "0"),
    ("wildcard upstream/name", "wild_upstream_per_name", "{:.2f}", ""),
    ("bytes per cached name", "bytes_per_name", "{:.0f}", "<= 0.5x"),
)
RATIO_ROWS = {"cold_seconds", "cold_cpu", "hot_qps", "wild_seconds", "wild_cpu", "bytes_per_name",
              "cold_upstream_per_name", "wild_upstream_per_name"}  # fmt: skip


def span(values: list[float], fmt: str) -> str:
    low, high = min(values), max(values)
    if fmt.format(low) == fmt.format(high):
        return fmt.format(low)
    return f"{fmt.format(low)}–{fmt.format(high)}"


def report(table: dict[str, list[dict[str, Figures]]], runs: int) -> None:
    for setting, per_run in table.items():
        print(f"\n## QNAME minimisation {setting}: {runs} run(s); ranges over the runs")
        print("| figure | ours | Unbound | ours/Unbound | target |")
        print("|---|---:|---:|---:|---|")
        for label, name, fmt, target in ROWS:
            ours = [getattr(r["ours"], name) for r in per_run]
            theirs = [getattr(r["unbound"], name) for r in per_run]
            if any(v != v for v in ours + theirs):  # NaN: not measured
                continue
            ratio = ""
            if name in RATIO_ROWS:
                ratios = [a / b if b else float("inf") for a, b in zip(ours, theirs, strict=True)]
                ratio = span(ratios, "{:.2f}") + "x"
            print(f"| {label} | {span(ours, fmt)} | {span(theirs, fmt)} | {ratio} | {target} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--zones", type=int, default=2000)
    parser.add_argument("--hot-seconds", type=int, default=10)
    parser.add_argument("--wildcard-names", type=int, default=100_000, help="0 to skip")
    parser.add_argument("--qmin", choices=("on", "off", "both"), default="both")
    parser.add_argument("--json", type=Path, help="write every figure there too")
    parser.add_argument("--nsd-cpu", default=CLIENT_CPU,
                        help="CPUs for NSD (default: the client's); '' lets it float")  # fmt: skip
    args = parser.parse_args()
    for line in machine():
        print(line, flush=True)
    settings = {"on": [True], "off": [False], "both": [True, False]}[args.qmin]
    workdir = Path(tempfile.mkdtemp(prefix="bench-resolvers-"))
    bulk_zones.write_zones(args.zones, workdir / "zones")
    hints = workdir / "bench.root"
    hints.write_text(bulk_zones.hints_text())
    names = bulk_zones.question_names(args.zones)
    table: dict[str, list[dict[str, Figures]]] = {}
    with NsdLab(workdir / "nsd", bulk_zones.roles(args.zones), workdir / "zones",
                hints=bulk_zones.hints_text()) as lab:  # fmt: skip
        if args.nsd_cpu:
            pin_nsd(lab, args.nsd_cpu)
        for run in range(args.runs):
            for qmin in settings:
                setting = "on" if qmin else "off"
                row: dict[str, Figures] = {}
                for kind in KINDS:
                    tag = f"run {run + 1} qmin {setting} {kind}"
                    print(f"# {tag}", flush=True)
                    result = measure(kind, names, args.hot_seconds,
                                     workdir / f"{kind}-{run}-{setting}", hints, qmin)  # fmt: skip
                    wild = None
                    if args.wildcard_names:
                        wild = measure_wildcard(kind, args.wildcard_names,
                                                workdir / f"{kind}-{run}-{setting}-wild", hints,
                                                qmin)  # fmt: skip
                    row[kind] = figures(result, args.zones, wild, args.wildcard_names)
                    print(f"  {tag}: {row[kind]}", flush=True)
                table.setdefault(setting, []).append(row)
    report(table, args.runs)
    if args.json:
        args.json.write_text(json.dumps(
            {s: [{k: asdict(f) for k, f in row.items()} for row in rows]
             for s, rows in table.items()}, indent=1))  # fmt: skip
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
