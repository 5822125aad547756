"""Hot-cache queries per second with 1 and 2 ``--workers``, and Unbound with 1 and 2 threads.

Not a test: a measurement, run as root in a namespace with only loopback:

    ../shared/tools/offline python benchmarks/bench_workers.py --runs 3

With one worker (one Unbound thread) the resolver is pinned to CPU 1 and dnsperf
to CPU 0, as in bench_resolvers.py.  With two on this two-core machine nothing is
pinned: the resolver's two processes (Unbound's two threads) and dnsperf share
both cores, so dnsperf gets what is left; on a machine with cores to spare each
worker adds about one core's worth.  Our workers (SO_REUSEPORT) each have their
own cache, so every worker is warmed (the 200 names are asked from many source
ports until every worker has answered them) before the run; Unbound's threads
share theirs.  Each figure is also given against Unbound measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_resolvers import PORT, Run, Unbound, dnsperf, machine, pinned, span
from resolver.lab import bulk_zones
from resolver.lab.nsd import NsdLab
from resolver.lab.unbound import OurResolver, ServerProcess


class ThreadedUnbound(Unbound):
    """The benchmark's Unbound with ``num-threads`` threads."""

    def __init__(self, workdir: Path, hints: Path, threads: int) -> None:
        super().__init__(workdir, hints, PORT, 0, qmin=True)
        self.threads = threads

    def command(self) -> list[str]:
        command = super().command()
        conf = self.workdir / "unbound.conf"
        text = conf.read_text()
        assert "num-threads: 1\n" in text
        conf.write_text(text.replace("num-threads: 1\n", f"num-threads: {self.threads}\n"))
        return command


def server(kind: str, workers: int, workdir: Path, hints: Path) -> ServerProcess:
    process: ServerProcess
    if kind == "unbound":
        process = ThreadedUnbound(workdir, hints, workers)
    else:
        process = OurResolver(workdir, hints, PORT, "--log-level", "warning",
                              "--workers", str(workers))  # fmt: skip
    return pinned(process) if workers == 1 else process


def measure(kind: str, workers: int, names: list[str], seconds: int, workdir: Path,
            hints: Path) -> Run:  # fmt: skip
    cpus = "0" if workers == 1 else "0,1"  # with two, dnsperf shares both cores
    with server(kind, workers, workdir / f"{kind}-{workers}", hints):
        for _ in range(3):  # warm every worker's cache: many source ports
            dnsperf(names, workdir, ["-n", "1", "-q", "20", "-c", "16", "-t", "10"], cpus)
        run = dnsperf(names, workdir, ["-l", str(seconds), "-q", "100", "-c", "8"], cpus)
    print(f"  {kind} workers={workers}: {run.qps:,.0f} q/s, p50 {run.percentile(0.5):.3f} ms, "
          f"p99 {run.percentile(0.99):.3f} ms, lost {run.lost}", flush=True)  # fmt: skip
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    for line in machine():
        print(line)
    workdir = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    bulk_zones.write_zones(200, workdir / "zones")
    hints = workdir / "bench.root"
    hints.write_text(bulk_zones.hints_text())
    names = bulk_zones.question_names(200)
    rates: dict[tuple[str, int], list[float]] = {}
    with NsdLab(workdir / "nsd", bulk_zones.roles(200), workdir / "zones",
                hints=bulk_zones.hints_text()):  # fmt: skip
        for number in range(args.runs):
            print(f"# run {number + 1}", flush=True)
            for workers in (1, 2):
                for kind in ("ours", "unbound"):
                    run = measure(kind, workers, names, args.seconds, workdir, hints)
                    rates.setdefault((kind, workers), []).append(run.qps)
    print(f"\n## hot q/s, {args.runs} run(s); ranges over the runs")
    print("| workers / threads | ours q/s | Unbound q/s | ours/Unbound |")
    print("|---:|---:|---:|---:|")
    for workers in (1, 2):
        ours, theirs = rates[("ours", workers)], rates[("unbound", workers)]
        ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
        print(f"| {workers} | {span(ours, '{:,.0f}')} | {span(theirs, '{:,.0f}')} | "
              f"{span(ratios, '{:.2f}')}x |")  # fmt: skip
    for kind in ("ours", "unbound"):
        scaling = [b / a for a, b in zip(rates[(kind, 1)], rates[(kind, 2)], strict=True)]
        print(f"{kind}: 1 -> 2 scaling {span(scaling, '{:.2f}')}x")


if __name__ == "__main__":
    main()
