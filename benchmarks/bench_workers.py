"""Hot-cache queries per second with 1 and 2 ``--workers`` (SO_REUSEPORT), same hierarchy.

Not a test: a measurement, run as root in a namespace with only loopback:

    ../shared/tools/offline python benchmarks/bench_workers.py

With one worker the resolver is pinned to CPU 1 and dnsperf to CPU 0, as in
bench_resolvers.py.  With two workers on this two-core machine nothing is pinned:
the workers and dnsperf share both cores, so dnsperf gets what is left.  Each
worker has its own cache, so every worker is warmed (the 200 names are asked
from many source ports until every worker has answered them) before the run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_resolvers import PORT, dnsperf, machine, pinned
from resolver.lab import bulk_zones
from resolver.lab.nsd import NsdLab
from resolver.lab.unbound import OurResolver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    for line in machine():
        print(line)
    workdir = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    bulk_zones.write_zones(200, workdir / "zones")
    hints = workdir / "bench.root"
    hints.write_text(bulk_zones.hints_text())
    names = bulk_zones.question_names(200)
    rates = {}
    with NsdLab(workdir / "nsd", bulk_zones.roles(200), workdir / "zones",
                hints=bulk_zones.hints_text()):  # fmt: skip
        for workers in (1, 2):
            resolver = OurResolver(workdir / f"w{workers}", hints, PORT,
                                   "--log-level", "warning", "--workers", str(workers))  # fmt: skip
            cpus = "0"
            if workers == 1:
                resolver = pinned(resolver)  # type: ignore[assignment]
            else:
                cpus = "0,1"  # dnsperf shares both cores with the two workers
            with resolver:
                for _ in range(3):  # warm every worker's cache: many source ports
                    dnsperf(names, workdir, ["-n", "1", "-q", "20", "-c", "16", "-t", "10"], cpus)
                client = ["-l", str(args.seconds), "-q", "100", "-c", "8"]
                run = dnsperf(names, workdir, client, cpus)
                rates[workers] = run
                print(f"workers={workers}: {run.qps:,.0f} q/s, p50 {run.percentile(0.5):.3f} ms, "
                      f"p99 {run.percentile(0.99):.3f} ms, lost {run.lost}")  # fmt: skip
    print(f"scaling 1 -> 2 workers: {rates[2].qps / rates[1].qps:.2f}x")


if __name__ == "__main__":
    main()
