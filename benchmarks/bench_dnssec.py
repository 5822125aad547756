"""The cost of DNSSEC validation: our resolver and Unbound on the same generated hierarchy,
unsigned (neither validates) and signed (both validate), in the same run.

Not a test: a measurement, with the set-up of benchmarks/bench_resolvers.py (root, nsd,
unbound, dnsperf, nft, ldns-signzone; Debian packages nsd unbound dnsperf nftables
ldnsutils) in a network namespace with only loopback:

    ../shared/tools/offline python benchmarks/bench_dnssec.py --runs 3

The hierarchy is ``resolver/lab/bulk_zones.py`` (``--zones`` zones, half glueless), once
as written and once signed at start-up with ``ldns-signzone`` (a KSK and a ZSK per zone,
ECDSA P-256, NSEC; each DS in its parent; the root's KSK as both resolvers' trust
anchor).  The two are served by NSD one after the other on the same addresses.  For each
run, each hierarchy and each resolver, from a fresh start, QNAME minimisation on (both
resolvers' default):

- cold: each zone's ``www`` A once, 20 outstanding; upstream queries counted with
  nftables (with validation, the DNSKEY of each zone is asked too);
- hot: the first 200 names, cached, for ``--hot-seconds`` with 100 outstanding from 4
  sockets, by clients without DO (the answer alone), then with DO (``dnsperf -D``: the
  answer and its RRSIG, AD set).

Unsigned, neither resolver validates (custom root hints, no trust anchor: ours does
not validate, Unbound runs the iterator module only); signed, ours runs with
``--trust-anchor-file`` and Unbound with ``module-config: "validator iterator"``.  Each
figure is given as ours/Unbound in the same run, and as the cost of validation for each
resolver (signed/unsigned in the same run); with several runs, the range over the runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_resolvers import (
    KINDS,
    PORT,
    Run,
    UpstreamCounter,
    cpu_seconds,
    dnsperf,
    machine,
    make,
    pin_nsd,
    span,
    started_loop,
)
from resolver.lab import bulk_zones
from resolver.lab.nsd import NsdLab
from resolver.lab.signing import Signing

HIERARCHIES = ("unsigned", "signed")


def check_answer(name: str, signed: bool) -> None:
    """The resolver really validates (AD on a signed answer) or really does not."""
    query = dns.message.make_query(name, "A", want_dnssec=True)
    reply = dns.query.udp(query, "127.0.0.1", port=PORT, timeout=5)
    validated = bool(reply.flags & dns.flags.AD)
    if reply.rcode() != dns.rcode.NOERROR or validated != signed:
        raise SystemExit(f"{name}: {dns.rcode.to_text(reply.rcode())}, AD={validated}, "
                         f"expected AD={signed}: not measuring what this says")  # fmt: skip


def measure(kind: str, names: list[str], hot_seconds: int, workdir: Path, hints: Path,
            anchor: Path | None) -> dict[str, Run]:  # fmt: skip
    counter = UpstreamCounter()
    with make(kind, workdir, hints, 100_000, True, anchor) as process:
        assert process.process is not None
        pid = process.process.pid
        counter.reset()
        cpu = cpu_seconds(pid)
        cold = dnsperf(names, workdir.parent, ["-n", "1", "-q", "20", "-t", "10"])
        cold.cpu = cpu_seconds(pid) - cpu
        cold.upstream = counter.read()
        check_answer(names[0], anchor is not None)
        hot_args = ["-l", str(hot_seconds), "-q", "100", "-c", "4"]
        hot = dnsperf(names[:200], workdir.parent, hot_args)
        hot_do = dnsperf(names[:200], workdir.parent, [*hot_args, "-D"])
    if kind == "ours":
        print(f"  (our event loop: {started_loop(workdir)})", flush=True)
    return {"cold": cold, "hot": hot, "hot_do": hot_do}


@dataclass
class Figures:
    cold_seconds: float
    cold_cpu: float
    cold_answered: int
    cold_servfail: int
    cold_p50: float
    cold_p99: float
    cold_upstream_per_name: float
    hot_qps: float
    hot_do_qps: float
    hot_lost: int


def figures(result: dict[str, Run], zones: int) -> Figures:
    cold, hot, hot_do = result["cold"], result["hot"], result["hot_do"]
    return Figures(
        cold.seconds, cold.cpu, cold.rcodes.get("NOERROR", 0), cold.rcodes.get("SERVFAIL", 0),
        cold.percentile(0.5), cold.percentile(0.99), cold.upstream / zones, hot.qps, hot_do.qps,
        hot.lost + hot_do.lost,
    )  # fmt: skip


ROWS = (  # (label, field, format, ratio?)
    ("cold seconds", "cold_seconds", "{:.2f}", True),
    ("cold CPU seconds", "cold_cpu", "{:.2f}", True),
    ("cold answered", "cold_answered", "{:.0f}", False),
    ("cold SERVFAIL", "cold_servfail", "{:.0f}", False),
    ("cold p50 ms", "cold_p50", "{:.2f}", False),
    ("cold p99 ms", "cold_p99", "{:.2f}", False),
    ("cold upstream/name", "cold_upstream_per_name", "{:.2f}", True),
    ("hot q/s (DO=0)", "hot_qps", "{:,.0f}", True),
    ("hot q/s (DO=1)", "hot_do_qps", "{:,.0f}", True),
    ("hot lost", "hot_lost", "{:.0f}", False),
)

Table = list[dict[str, dict[str, Figures]]]  # per run: hierarchy -> kind -> figures


def ratios(a: list[float], b: list[float]) -> str:
    return span([x / y if y else float("inf") for x, y in zip(a, b, strict=True)], "{:.2f}") + "x"


def report(table: Table, runs: int) -> None:
    for hierarchy in HIERARCHIES:
        validating = "both validating" if hierarchy == "signed" else "neither validating"
        print(f"\n## {hierarchy} hierarchy, {validating}: {runs} run(s); ranges over the runs")
        print("| figure | ours | Unbound | ours/Unbound |")
        print("|---|---:|---:|---:|")
        for label, name, fmt, ratio in ROWS:
            ours = [getattr(run[hierarchy]["ours"], name) for run in table]
            theirs = [getattr(run[hierarchy]["unbound"], name) for run in table]
            shown = ratios(ours, theirs) if ratio else ""
            print(f"| {label} | {span(ours, fmt)} | {span(theirs, fmt)} | {shown} |")
    print(f"\n## the cost of validation (signed/unsigned, same run): {runs} run(s)")
    print("| figure | ours | Unbound |")
    print("|---|---:|---:|")
    for label, name, _, ratio in ROWS:
        if not ratio:
            continue
        cells = []
        for kind in KINDS:
            signed = [getattr(run["signed"][kind], name) for run in table]
            unsigned = [getattr(run["unsigned"][kind], name) for run in table]
            cells.append(ratios(signed, unsigned))
        print(f"| {label} | {cells[0]} | {cells[1]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--zones", type=int, default=2000)
    parser.add_argument("--hot-seconds", type=int, default=10)
    parser.add_argument("--json", type=Path, help="write every figure there too")
    parser.add_argument("--nsd-cpu", default="0", help="CPUs for NSD; '' lets it float")
    args = parser.parse_args()
    for line in machine():
        print(line, flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-dnssec-"))
    bulk_zones.write_zones(args.zones, workdir / "zones")
    hints = workdir / "bench.root"
    hints.write_text(bulk_zones.hints_text())
    names = bulk_zones.question_names(args.zones)
    roles = bulk_zones.roles(args.zones)
    labs = {
        signed: NsdLab(workdir / f"nsd-{signed}", roles, workdir / "zones",
                       hints=bulk_zones.hints_text(), signed=Signing() if signed else False)
        for signed in (False, True)
    }  # fmt: skip
    started = time.monotonic()
    signed_hierarchy = labs[True].sign()
    anchor = signed_hierarchy.trust_anchor
    print(f"signed {len(signed_hierarchy.zone_paths)} zones with ldns-signzone in "
          f"{time.monotonic() - started:.1f} s; trust anchor {anchor}", flush=True)  # fmt: skip
    table: Table = []
    for run in range(args.runs):
        row: dict[str, dict[str, Figures]] = {}
        for hierarchy in HIERARCHIES:
            signed = hierarchy == "signed"
            with labs[signed] as lab:
                if args.nsd_cpu:
                    pin_nsd(lab, args.nsd_cpu)
                for kind in KINDS:
                    tag = f"run {run + 1} {hierarchy} {kind}"
                    print(f"# {tag}", flush=True)
                    result = measure(kind, names, args.hot_seconds,
                                     workdir / f"{kind}-{run}-{hierarchy}", hints,
                                     anchor if signed else None)  # fmt: skip
                    row.setdefault(hierarchy, {})[kind] = figures(result, args.zones)
                    print(f"  {tag}: {row[hierarchy][kind]}", flush=True)
        table.append(row)
    report(table, args.runs)
    if args.json:
        args.json.write_text(json.dumps(
            [{h: {k: asdict(f) for k, f in kinds.items()} for h, kinds in row.items()}
             for row in table], indent=1))  # fmt: skip
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
