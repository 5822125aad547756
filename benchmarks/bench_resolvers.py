"""Our resolver and Unbound, one after the other, on the same NSD-served hierarchy.

Not a test: a measurement.  It needs root, nsd, unbound, dnsperf and nft (Debian
packages nsd unbound dnsperf nftables), and it must run in a network namespace
with only loopback, where every server of the hierarchy lives on 127.9.x.y:

    ../shared/tools/offline python benchmarks/bench_resolvers.py

Each resolver is pinned to CPU 1 (``taskset -c 1``) and dnsperf to CPU 0; NSD
runs wherever the scheduler puts it.  For each resolver, from a fresh start:

- cold: ``--zones`` names (default 2,000), each in its own zone, half of them
  delegated with glue and half to name servers that need a sub-lookup, each asked
  once with 20 outstanding; upstream queries counted with nftables counters on
  packets to port 53 (UDP queries plus TCP connections): the same count for both;
- hot: the first 200 of those names, now cached, replayed for ``--hot-seconds``
  with 100 outstanding from 4 client sockets;
- memory: in a fresh process, ``--memory-names`` distinct names (a wildcard
  zone) resolved once; resident memory growth per name.

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
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resolver.lab import bulk_zones
from resolver.lab.nsd import NsdLab
from resolver.lab.unbound import OurResolver, ServerProcess, UnboundProcess

RESOLVER_CPU = "1"
CLIENT_CPU = "0"
PORT = 5353
VERBOSE_LINE = re.compile(r"^> (\S+) \S+ \S+ ([0-9.]+)$")


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
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
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
    """nftables counters on packets to port 53: UDP queries and TCP connections."""

    def reset(self) -> None:
        subprocess.run(["nft", "delete", "table", "inet", "bench"], capture_output=True)
        rules = (
            "add table inet bench\n"
            "add chain inet bench out { type filter hook output priority 0; }\n"
            "add rule inet bench out udp dport 53 counter\n"
            "add rule inet bench out tcp dport 53 tcp flags syn counter\n"
        )
        subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)

    def read(self) -> int:
        listing = subprocess.run(
            ["nft", "-j", "list", "table", "inet", "bench"], capture_output=True, text=True,
            check=True,
        ).stdout  # fmt: skip
        total = 0
        for item in json.loads(listing)["nftables"]:
            for expression in item.get("rule", {}).get("expr", []):
                if "counter" in expression:
                    total += expression["counter"]["packets"]
        return total


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def pinned(process: ServerProcess) -> ServerProcess:
    original = process.command
    process.command = lambda: ["taskset", "-c", RESOLVER_CPU, *original()]  # type: ignore[method-assign]
    return process


def make(kind: str, workdir: Path, hints: Path, cache: int) -> ServerProcess:
    if kind == "unbound":
        return pinned(UnboundProcess(workdir, hints, PORT, cache_entries=cache))
    return pinned(OurResolver(workdir, hints, PORT, "--log-level", "warning",
                              "--cache-size", str(cache)))  # fmt: skip


def measure(kind: str, names: list[str], hot_seconds: int, workdir: Path, hints: Path) -> dict:
    counter = UpstreamCounter()
    result: dict = {}
    with make(kind, workdir / kind, hints, 100_000):
        counter.reset()
        cold = dnsperf(names, workdir, ["-n", "1", "-q", "20", "-t", "10"])
        cold.upstream = counter.read()
        result["cold"] = cold
        hot = dnsperf(names[:200], workdir, ["-l", str(hot_seconds), "-q", "100", "-c", "4"])
        result["hot"] = hot
    return result


def measure_memory(kind: str, count: int, workdir: Path, hints: Path) -> float:
    names = bulk_zones.memory_names(count)
    with make(kind, workdir / f"{kind}-memory", hints, 2 * count + 1000) as process:
        assert process.process is not None
        pid = process.process.pid
        dnsperf(names[:10], workdir, ["-n", "1", "-q", "10"])  # warm: the cut and the code paths
        time.sleep(0.5)
        before = rss_kib(pid)
        run = dnsperf(names, workdir, ["-n", "1", "-q", "50", "-t", "10"])
        time.sleep(0.5)
        after = rss_kib(pid)
        if run.rcodes.get("NOERROR", 0) < count * 0.99:
            print(f"  ! only {run.rcodes} of {count} answered", flush=True)
    return (after - before) * 1024 / count


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
        f"uvloop: {'yes' if shutil.which('python3') and _has_uvloop() else 'no'}",
        "command: " + " ".join([sys.executable, *sys.argv]),
    ]


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def report(results: dict[str, dict], memory: dict[str, float], zones: int) -> None:
    ours, theirs = results["ours"], results["unbound"]
    print(f"\n## cold: {zones} names in {zones} zones, 20 outstanding")
    print("| resolver | seconds | answered | lost | SERVFAIL | p50 ms | p99 ms | upstream/name |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind, data in (("ours", ours), ("unbound", theirs)):
        cold: Run = data["cold"]
        answered = cold.rcodes.get("NOERROR", 0)
        print(f"| {kind} | {cold.seconds:.2f} | {answered} | {cold.lost} | "
              f"{cold.rcodes.get('SERVFAIL', 0)} | {cold.percentile(0.5):.2f} | "
              f"{cold.percentile(0.99):.2f} | {cold.upstream / zones:.2f} |")  # fmt: skip
    ratio = ours["cold"].seconds / theirs["cold"].seconds
    print(f"cold time ours/unbound: {ratio:.2f}x (target <= 2x)")
    print("\n## hot: 200 cached names, 100 outstanding")
    print("| resolver | queries/s | p50 ms | p99 ms | lost |")
    print("|---|---:|---:|---:|---:|")
    for kind, data in (("ours", ours), ("unbound", theirs)):
        hot: Run = data["hot"]
        print(f"| {kind} | {hot.qps:,.0f} | {hot.percentile(0.5):.3f} | "
              f"{hot.percentile(0.99):.3f} | {hot.lost} |")  # fmt: skip
    print(f"hot qps ours/unbound: {ours['hot'].qps / theirs['hot'].qps:.2f} (target >= 0.33)")
    if memory:
        print("\n## memory: resident growth per name resolved once (RRset + answer caches)")
        for kind, per in memory.items():
            print(f"{kind}: {per:.0f} bytes per name")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zones", type=int, default=2000)
    parser.add_argument("--hot-seconds", type=int, default=10)
    parser.add_argument("--memory-names", type=int, default=100_000, help="0 to skip")
    args = parser.parse_args()
    for line in machine():
        print(line)
    workdir = Path(tempfile.mkdtemp(prefix="bench-resolvers-"))
    bulk_zones.write_zones(args.zones, workdir / "zones")
    hints = workdir / "bench.root"
    hints.write_text(bulk_zones.hints_text())
    names = bulk_zones.question_names(args.zones)
    results: dict[str, dict] = {}
    memory: dict[str, float] = {}
    with NsdLab(workdir / "nsd", bulk_zones.roles(args.zones), workdir / "zones",
                hints=bulk_zones.hints_text()):  # fmt: skip
        for kind in ("ours", "unbound"):
            print(f"# {kind}", flush=True)
            results[kind] = measure(kind, names, args.hot_seconds, workdir, hints)
        if args.memory_names:
            for kind in ("ours", "unbound"):
                print(f"# {kind} memory", flush=True)
                memory[kind] = measure_memory(kind, args.memory_names, workdir, hints)
    report(results, memory, args.zones)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
