"""DNS over TLS and DNS over HTTPS: our resolver and Unbound, one after the other, on the
same NSD-served hierarchy, measured with dnsperf's own DoT and DoH modes.

Not a test: a measurement.  It needs root, nsd, unbound and dnsperf 2.10 or later
(``-m dot``, ``-m doh``; Debian 12's is 2.10.0), in a network namespace with only
loopback (the hierarchy of benchmarks/bench_resolvers.py, on 127.9.x.y):

    ../shared/tools/offline python benchmarks/bench_encrypted.py --runs 3

For each run, each transport (``dot``; ``doh``, HTTP/2, GET; and ``udp`` as the
reference the encrypted figures are read against) and each resolver, from a fresh
start, pinned to CPU 1 (dnsperf and NSD on CPU 0):

- cold: ``--zones`` names (default 1,000), each in its own zone, asked once with 20
  outstanding on one connection (pipelined);
- hot: the first 200 of them, now cached, replayed for ``--hot-seconds`` with 100
  outstanding over 4 connections (``-c 4``), each kept for the whole run: the steady
  state of a stub with a long-lived connection, which is how DoT and DoH are used;
- handshakes: the same hot names with ``num-queries-per-conn=10``: a new connection
  (and a full TLS handshake: dnsperf keeps no session) every 10 queries, the cost of
  clients that do not keep connections.

For the hot runs the resolver's CPU time is read too (/proc): how busy it was (near 1:
it was the bottleneck) and its CPU per answered query, which compares the two resolvers
whoever the bottleneck was (dnsperf's DoH client tops out at a few thousand queries a
second on this machine, below what either server can answer).

DoH is asked with GET (dnsperf's default): with POST, dnsperf writes the HEADERS and the
DATA frame of a request separately on a socket without TCP_NODELAY, so Nagle's algorithm
holds the DATA until the server's delayed ACK (about 40 ms) whenever the server has
nothing to send in between: a query alone then takes 48 ms from Unbound and from us
alike (measured with ``-q 1``), which says nothing about either server.

Each figure is also given as ours/Unbound in the same run and transport; the machine is
shared and noisy: the ratios are what to compare.  Unbound runs as in the lab (one
thread, iterator only, minimal responses), with ``tls-port``, ``https-port`` and the
same certificate as ours.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_resolvers import (
    CLIENT_CPU,
    RESOLVER_CPU,
    cpu_seconds,
    machine,
    pin_nsd,
)
from resolver.lab import bulk_zones
from resolver.lab.nsd import NsdLab
from resolver.lab.unbound import OurResolver, ServerProcess, free_port
from scripts.reliability.tls_lab import CertificateFiles, EncryptedUnbound, make_certificates

KINDS = ("ours", "unbound")
TRANSPORTS = ("udp", "dot", "doh")
VERBOSE_LINE = re.compile(r"^> (\S+) \S+ \S+ ([0-9.]+)$")


@dataclass
class Run:
    """What one dnsperf run measured."""

    completed: int = 0
    lost: int = 0
    seconds: float = 0.0
    qps: float = 0.0
    rcodes: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    cpu: float = 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)] * 1000


class Served:
    """A resolver with its three ports: plain, DoT, DoH."""

    def __init__(self, process: ServerProcess, tls_port: int, https_port: int) -> None:
        self.process, self.tls_port, self.https_port = process, tls_port, https_port

    def target(self, transport: str) -> list[str]:
        """dnsperf's options to reach it over ``transport``."""
        if transport == "udp":
            return ["-p", str(self.process.port)]
        if transport == "dot":
            return ["-m", "dot", "-p", str(self.tls_port)]
        uri = f"https://127.0.0.1:{self.https_port}/dns-query"
        return ["-m", "doh", "-p", str(self.https_port), "-O", f"doh-uri={uri}",
                "-O", "doh-method=GET"]  # fmt: skip


def start(kind: str, workdir: Path, hints: Path, certificates: CertificateFiles) -> Served:
    pin = ["taskset", "-c", RESOLVER_CPU]
    if kind == "unbound":
        unbound = EncryptedUnbound(workdir, hints, free_port(), certificates,
                                   cache_entries=100_000)  # fmt: skip
        original = unbound.command
        unbound.command = lambda: [*pin, *original()]  # type: ignore[method-assign]
        unbound.start()
        return Served(unbound, unbound.tls_port, unbound.https_port)
    tls_port, https_port = free_port(), free_port()
    files = ["--tls-certificate", str(certificates.certificate), "--tls-key", str(certificates.key)]
    ours = OurResolver(workdir, hints, free_port(), "--log-level", "warning",
                       "--cache-size", "100000", "--tls-port", str(tls_port),
                       "--https-port", str(https_port), *files)  # fmt: skip
    original_command = ours.command
    ours.command = lambda: [*pin, *original_command()]  # type: ignore[method-assign]
    ours.start()
    return Served(ours, tls_port, https_port)


def dnsperf(names: list[str], workdir: Path, extra: list[str]) -> Run:
    data = workdir / "queries.txt"
    data.write_text("".join(f"{name} A\n" for name in names))
    command = ["taskset", "-c", CLIENT_CPU, "dnsperf", "-s", "127.0.0.1", "-d", str(data),
               "-v", *extra]  # fmt: skip
    print("  $", " ".join(command), flush=True)
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    run = Run()
    for line in done.stdout.splitlines():
        match = VERBOSE_LINE.match(line)
        if match:
            run.rcodes[match.group(1)] = run.rcodes.get(match.group(1), 0) + 1
            run.latencies.append(float(match.group(2)))
        elif "Queries completed:" in line:
            run.completed = int(line.split()[2])
        elif "Queries lost:" in line:
            run.lost = int(line.split()[2])
        elif "Run time (s):" in line:
            run.seconds = float(line.split()[3])
        elif "Queries per second:" in line:
            run.qps = float(line.split()[3])
    if done.returncode != 0 or not run.completed:
        print(f"  dnsperf failed ({done.returncode}): {done.stderr.strip()[-500:]}", flush=True)
    return run


@dataclass
class Figures:
    cold_seconds: float
    cold_cpu: float
    cold_answered: int
    cold_p50: float
    cold_p99: float
    hot_qps: float
    hot_lost: int
    hot_p50: float
    hot_busy: float
    hot_cpu_us: float
    handshake_qps: float
    handshake_busy: float
    handshake_cpu_us: float


def measure(kind: str, transport: str, names: list[str], hot_seconds: int, workdir: Path,
            hints: Path, certificates: CertificateFiles) -> Figures:  # fmt: skip
    served = start(kind, workdir, hints, certificates)
    try:
        assert served.process.process is not None
        pid = served.process.process.pid
        target = served.target(transport)
        cpu = cpu_seconds(pid)
        cold = dnsperf(names, workdir, [*target, "-n", "1", "-q", "20", "-t", "10"])
        cold.cpu = cpu_seconds(pid) - cpu
        cpu = cpu_seconds(pid)
        hot = dnsperf(names[:200], workdir,
                      [*target, "-l", str(hot_seconds), "-q", "100", "-c", "4"])  # fmt: skip
        hot.cpu = cpu_seconds(pid) - cpu
        handshakes = Run()
        if transport != "udp":
            cpu = cpu_seconds(pid)
            handshakes = dnsperf(names[:200], workdir,
                                 [*target, "-l", str(hot_seconds), "-q", "20", "-c", "4",
                                  "-O", "num-queries-per-conn=10"])  # fmt: skip
            handshakes.cpu = cpu_seconds(pid) - cpu
    finally:
        served.process.stop()
    return Figures(cold.seconds, cold.cpu, cold.rcodes.get("NOERROR", 0),
                   cold.percentile(0.5), cold.percentile(0.99), hot.qps, hot.lost,
                   hot.percentile(0.5), busy(hot), per_query(hot), handshakes.qps,
                   busy(handshakes), per_query(handshakes))  # fmt: skip


def busy(run: Run) -> float:
    """The share of its CPU the resolver used: near 1, it is the bottleneck; well below,
    the client is (dnsperf's DoH client is, at a few thousand queries a second)."""
    return run.cpu / run.seconds if run.seconds else float("nan")


def per_query(run: Run) -> float:
    """Microseconds of the resolver's CPU per answered query: comparable whoever the
    bottleneck is."""
    return run.cpu / run.completed * 1e6 if run.completed else float("nan")


ROWS = (  # (label, field, format, compare as a ratio)
    ("cold seconds", "cold_seconds", "{:.2f}", True),
    ("cold CPU seconds", "cold_cpu", "{:.2f}", True),
    ("cold answered", "cold_answered", "{:.0f}", False),
    ("cold p50 ms", "cold_p50", "{:.2f}", False),
    ("cold p99 ms", "cold_p99", "{:.2f}", False),
    ("hot q/s (kept connections)", "hot_qps", "{:,.0f}", True),
    ("hot lost", "hot_lost", "{:.0f}", False),
    ("hot p50 ms", "hot_p50", "{:.2f}", False),
    ("hot: resolver CPU busy", "hot_busy", "{:.2f}", False),
    ("hot: resolver CPU µs per query", "hot_cpu_us", "{:.0f}", True),
    ("new connection every 10 queries: q/s", "handshake_qps", "{:,.0f}", True),
    ("new connection every 10 queries: CPU busy", "handshake_busy", "{:.2f}", False),
    ("new connection every 10 queries: CPU µs per query", "handshake_cpu_us", "{:.0f}", True),
)


def span(values: list[float], fmt: str) -> str:
    low, high = min(values), max(values)
    return fmt.format(low) if fmt.format(low) == fmt.format(high) else (
        f"{fmt.format(low)}–{fmt.format(high)}")  # fmt: skip


def report(table: dict[str, list[dict[str, Figures]]], runs: int) -> None:
    for transport, per_run in table.items():
        print(f"\n## {transport}: {runs} run(s); ranges over the runs")
        print("| figure | ours | Unbound | ours/Unbound |")
        print("|---|---:|---:|---:|")
        for label, name, fmt, ratio_row in ROWS:
            ours = [getattr(r["ours"], name) for r in per_run]
            theirs = [getattr(r["unbound"], name) for r in per_run]
            if not any(ours + theirs) or any(v != v for v in ours + theirs):
                continue  # not measured for this transport (NaN or all zero)
            ratio = ""
            if ratio_row:
                ratios = [a / b if b else float("inf") for a, b in zip(ours, theirs, strict=True)]
                ratio = span(ratios, "{:.2f}") + "x"
            print(f"| {label} | {span(ours, fmt)} | {span(theirs, fmt)} | {ratio} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--zones", type=int, default=1000)
    parser.add_argument("--hot-seconds", type=int, default=10)
    parser.add_argument("--transports", default=",".join(TRANSPORTS),
                        help="comma-separated, of udp, dot, doh (default: all three)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="write every figure there too")
    args = parser.parse_args()
    transports = [t for t in args.transports.split(",") if t]
    for line in machine():
        print(line, flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-encrypted-"))
    certificates = make_certificates(workdir / "certificates")
    bulk_zones.write_zones(args.zones, workdir / "zones")
    hints = workdir / "bench.root"
    hints.write_text(bulk_zones.hints_text())
    names = bulk_zones.question_names(args.zones)
    table: dict[str, list[dict[str, Figures]]] = {}
    with NsdLab(workdir / "nsd", bulk_zones.roles(args.zones), workdir / "zones",
                hints=bulk_zones.hints_text()) as lab:  # fmt: skip
        pin_nsd(lab, CLIENT_CPU)
        for run in range(args.runs):
            for transport in transports:
                row: dict[str, Figures] = {}
                for kind in KINDS:
                    tag = f"run {run + 1} {transport} {kind}"
                    print(f"# {tag}", flush=True)
                    row[kind] = measure(kind, transport, names, args.hot_seconds,
                                        workdir / f"{kind}-{run}-{transport}", hints,
                                        certificates)  # fmt: skip
                    print(f"  {tag}: {row[kind]}", flush=True)
                table.setdefault(transport, []).append(row)
    report(table, args.runs)
    if args.json:
        args.json.write_text(json.dumps(
            {t: [{k: asdict(f) for k, f in row.items()} for row in rows]
             for t, rows in table.items()}, indent=1))  # fmt: skip
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
