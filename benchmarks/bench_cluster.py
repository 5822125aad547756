"""Resolver nodes behind dnsdist: hot and cold throughput with 1, 2 and 4 nodes, and upstream
queries per name with and without the shared Redis tier, against Unbound nodes.

Not a test: a measurement, run as root in a namespace with only loopback (needs nsd,
unbound, dnsdist, redis-server, dnsperf and nft):

    ../shared/tools/offline python benchmarks/bench_cluster.py --zones 1000

The hierarchy is the benchmark's (resolver.lab.bulk_zones served by NSD on 127.9.x.y):
``--zones`` names, each in its own zone, half of them behind glueless delegations.  For
each kind of node (ours with ``[shared-cache]``, ours without, Unbound: Debian's build has
no cachedb module, so its nodes share nothing), each node count (1, 2, 4) and each dnsdist
policy (``chashed``: a name always goes to one node; ``roundrobin``: the nodes take turns,
so every node meets every name), from fresh processes and an empty Redis:

- cold: every name asked ``nodes`` times through dnsdist (the list of names ``nodes``
  times over, 20 outstanding: a name's second ask comes after its first answer, and with
  round robin from another node), the queries per second,
  and the queries sent to the hierarchy per name (nftables counters on packets to
  127.9.0.0/16 port 53: UDP queries and TCP connections), the same count for both kinds;
- hot: the first 200 names, now cached, for ``--hot-seconds`` (100 outstanding, 4 sockets).

Both kinds ask the full question at every server (ours ``--no-qname-minimisation``, the
lab's Unbound ``qname-minimisation: no``): the same walk, so the counts compare.  This is
one two-core machine: dnsperf, dnsdist and every node share both cores, so more nodes do
not mean more CPU here; the figures show what the tier costs and saves, not how a cluster
of machines scales.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_resolvers import Run, UpstreamCounter, machine, version
from resolver.lab import bulk_zones
from resolver.lab.nsd import NsdLab
from scripts.cluster import FRONT, PORT, Cluster

KINDS = ("shared", "alone", "unbound")  # ours with the tier, ours without, Unbound
NODES = (1, 2, 4)
POLICIES = ("chashed", "roundrobin")


def dnsperf(names: list[str], workdir: Path, extra: list[str]) -> Run:
    data = workdir / "queries.txt"
    data.write_text("".join(f"{name} A\n" for name in names))
    command = ["dnsperf", "-s", FRONT, "-p", str(PORT), "-d", str(data), *extra]
    output = subprocess.run(command, capture_output=True, text=True, check=True,
                            timeout=600).stdout  # fmt: skip
    run = Run()
    for line in output.splitlines():
        words = line.split()
        if "Queries completed:" in line:
            run.completed = int(words[2])
        elif "Queries lost:" in line:
            run.lost = int(words[2])
        elif "Queries per second:" in line:
            run.qps = float(words[3])
        elif "Run time (s):" in line:
            run.seconds = float(words[3])
    return run


def once_per_node(names: list[str], nodes: int) -> list[str]:
    """The cold run's questions: the names in the same order ``nodes`` times over, as many
    names as leave one over a multiple of ``nodes`` (so that with round robin the k-th ask of
    a name goes to the k-th node after the first, not to the same one again)."""
    count = 1 + nodes * ((len(names) - 1) // nodes)
    return names[:count] * nodes


def measure(kind: str, nodes: int, policy: str, names: list[str], hot_seconds: int,
            workdir: Path, hints: Path) -> dict[str, float]:  # fmt: skip
    counter = UpstreamCounter("cluster", to="127.9.0.0/16")  # the hierarchy's queries only
    cluster = Cluster(workdir / f"{kind}-{nodes}-{policy}", hints, 53, nodes,
                      shared=kind == "shared", policy=policy,
                      kind="unbound" if kind == "unbound" else "ours",
                      node_args=("--no-qname-minimisation", "--log-level", "warning"))  # fmt: skip
    with cluster:
        counter.reset()
        cold = dnsperf(once_per_node(names, nodes), workdir, ["-q", "20", "-t", "10"])
        upstream = counter.read()
        hot = dnsperf(names[:200], workdir, ["-l", str(hot_seconds), "-q", "100", "-c", "4"])
    result = {"cold_qps": cold.qps, "cold_lost": cold.lost, "cold_seconds": cold.seconds,
              "upstream_per_name": upstream / len(set(once_per_node(names, nodes))),
              "hot_qps": hot.qps,
              "hot_lost": hot.lost}  # fmt: skip
    print(f"  {kind:7} nodes={nodes} {policy:10}  cold {cold.qps:7,.0f} q/s "
          f"({cold.completed} answered, {cold.lost} lost, {cold.seconds:.1f} s)  "
          f"upstream/name {result['upstream_per_name']:.2f}  hot {hot.qps:7,.0f} q/s "
          f"(lost {hot.lost})", flush=True)  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zones", type=int, default=1000)
    parser.add_argument("--hot-seconds", type=int, default=8)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--nodes", default=",".join(map(str, NODES)))
    parser.add_argument("--policies", default=",".join(POLICIES))
    args = parser.parse_args()
    for line in machine():
        print(line)
    for command in (["dnsdist", "--version"], ["redis-server", "--version"]):
        print(f"{command[0]}: {version(command)}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    bulk_zones.write_zones(args.zones, workdir / "zones")
    hints = workdir / "bench.root"
    hints.write_text(bulk_zones.hints_text())
    names = bulk_zones.question_names(args.zones)
    results: dict[tuple[str, int, str], dict[str, float]] = {}
    with NsdLab(workdir / "nsd", bulk_zones.roles(args.zones), workdir / "zones",
                hints=bulk_zones.hints_text()):  # fmt: skip
        for policy in args.policies.split(","):
            for nodes in map(int, args.nodes.split(",")):
                for kind in args.kinds.split(","):
                    results[(kind, nodes, policy)] = measure(
                        kind, nodes, policy, names, args.hot_seconds, workdir, hints
                    )
    print(f"\n## {args.zones} names, each asked once per node; hot: 200 names, "
          f"{args.hot_seconds} s")  # fmt: skip
    print("| policy | nodes | kind | cold q/s | upstream queries per name | hot q/s |")
    print("|---|---:|---|---:|---:|---:|")
    for (kind, nodes, policy), r in results.items():
        print(f"| {policy} | {nodes} | {kind} | {r['cold_qps']:,.0f} | "
              f"{r['upstream_per_name']:.2f} | {r['hot_qps']:,.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
