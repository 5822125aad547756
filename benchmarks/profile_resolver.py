"""Where our resolver's time goes on the benchmark's workloads: py-spy on the running service.

Not a test: a measurement, run as root in a namespace with only loopback (py-spy in
the same virtual environment: ``pip install py-spy``):

    ../shared/tools/offline python benchmarks/profile_resolver.py --workload cold
    ../shared/tools/offline python benchmarks/profile_resolver.py --workload wildcard

It serves the hierarchy of ``bench_resolvers.py`` with NSD, starts our resolver
pinned to CPU 1 as the benchmark does, attaches py-spy (sampling, so the service
runs at nearly full speed) while dnsperf sends the workload from CPU 0, and prints
the functions with the most samples, by own time and by inclusive time, plus the
collapsed stacks file for a flame graph (``--keep``).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_resolvers import CLIENT_CPU, cpu_seconds, dnsperf, make, pin_nsd
from resolver.lab import bulk_zones
from resolver.lab.nsd import NsdLab


def summarise(collapsed: Path, top: int) -> None:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    # py-spy writes one stack per \n; a frame's text may hold characters that
    # str.splitlines() also takes for line breaks (\x0b, \x1c, \u2028...).
    for line in collapsed.read_text().split("\n"):
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        frames = stack.split(";")
        own[_short(frames[-1])] += samples
        for frame in dict.fromkeys(_short(f) for f in frames):
            inclusive[frame] += samples
    print(f"\n{total} samples")
    for title, counter in (("own", own), ("inclusive", inclusive)):
        print(f"\n## by {title} time")
        for frame, samples in counter.most_common(top):
            print(f"{100 * samples / total:5.1f}%  {frame}")


# The layers of the per-layer table (docs/performance.md), by the package under resolver/.
LAYERS = {
    "wire": "codec",
    "iterate": "engine",
    "dnssec": "validation",
    "validate": "validation",
    "cache": "caches",
    "net": "transport",
    "serve": "listener",
    "local": "listener",
    "policy": "listener",
}
OUTSIDE = "event loop and system (no function of ours)"
LAYER_ORDER = ["codec", "engine", "validation", "caches", "transport", "listener", OUTSIDE]
PACKAGE = Path(__file__).resolve().parent.parent / "resolver"
PYTHON_FRAME = re.compile(r"\((?:.*/)?resolver/(\w+)/[\w/]*\.py(?::\d+)?\)$")


def mypyc_names() -> dict[str, str]:
    """The names mypyc gives the package's modules in C symbols (``engine``, or
    ``net___cookies`` where a last part is not unique), each with its package.  A
    function's symbol is the module's name, three underscores, then its own
    (``CPyDef_engine___IterativeEngine___resolve``)."""
    modules = [path.relative_to(PACKAGE).with_suffix("").parts for path in PACKAGE.rglob("*.py")]
    names: dict[str, set[str]] = collections.defaultdict(set)
    for parts in modules:
        for start in range(len(parts)):
            names["___".join(parts[start:])].add(parts[0])
    return {name: packages.pop() for name, packages in names.items() if len(packages) == 1}


def layer_of(frame: str, native: dict[str, str]) -> str | None:
    """The layer a frame belongs to, None if it is not ours."""
    python = PYTHON_FRAME.search(frame)
    if python is not None:  # ops/cli.py runs the event loop: under every stack
        return None if "ops/cli.py" in frame else LAYERS.get(python[1])
    if not frame.startswith("CPy"):
        return None
    symbol = frame.partition(" ")[0]
    found = [(symbol.find(name + "___"), -len(name), name) for name in native]
    found = [item for item in found if item[0] > 0]
    return LAYERS.get(native[min(found)[2]]) if found else None


def summarise_layers(collapsed: Path, cpu_per_name: float | None) -> None:
    native = mypyc_names()
    samples: collections.Counter[str] = collections.Counter()
    for line in collapsed.read_text().split("\n"):
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        layer = next(
            (found for frame in reversed(stack.split(";")) if (found := layer_of(frame, native))),
            OUTSIDE,
        )
        samples[layer] += int(count)
    total = sum(samples.values())
    per_name = f"CPU per name {cpu_per_name * 1e6:.0f} us" if cpu_per_name else "no CPU figure"
    print(f"\n## by layer ({total} samples; {per_name})")
    print("| layer | share | us of CPU per name |\n|---|---:|---:|")
    for layer in LAYER_ORDER:
        share = samples[layer] / total if total else 0.0
        micros = f"{share * cpu_per_name * 1e6:.1f}" if cpu_per_name else ""
        print(f"| {layer} | {100 * share:.1f}% | {micros} |")


def _short(frame: str) -> str:
    """'function (path/to/module.py:line)' -> 'function (module.py)'."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if parts else path
    return f"{name} ({short})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("cold", "wildcard", "hot"), default="cold")
    parser.add_argument("--zones", type=int, default=2000)
    parser.add_argument("--names", type=int, default=20_000, help="wildcard names")
    parser.add_argument("--qmin", choices=("on", "off"), default="on")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--keep", type=Path, help="copy the collapsed stacks there")
    parser.add_argument("--native", action="store_true", help="py-spy --native")
    parser.add_argument("--layers", action="store_true", help="the per-layer table too")
    parser.add_argument("--summarise", type=Path, help="only summarise these kept stacks")
    parser.add_argument("--cpu-per-name", type=float, help="with --summarise: seconds")
    args = parser.parse_args()
    if args.summarise:
        summarise(args.summarise, args.top)
        summarise_layers(args.summarise, args.cpu_per_name)
        return
    workdir = Path(tempfile.mkdtemp(prefix="profile-resolver-"))
    bulk_zones.write_zones(args.zones, workdir / "zones")
    hints = workdir / "bench.root"
    hints.write_text(bulk_zones.hints_text())
    if args.workload == "wildcard":
        names = bulk_zones.memory_names(args.names)
    else:
        names = bulk_zones.question_names(args.zones)
    collapsed = workdir / "stacks.txt"
    with (
        NsdLab(workdir / "nsd", bulk_zones.roles(args.zones), workdir / "zones",
               hints=bulk_zones.hints_text()) as lab,
        make("ours", workdir / "ours", hints, 2 * len(names) + 1000, args.qmin == "on") as ours,
    ):  # fmt: skip
        assert ours.process is not None
        pin_nsd(lab, CLIENT_CPU)
        if args.workload != "cold":  # the cut and the code paths first
            dnsperf([f"warm{i}.{bulk_zones.MEMORY_ZONE}" for i in range(10)] + names[:200],
                    workdir, ["-n", "1", "-q", "10"])  # fmt: skip
        spy = [shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
               "record", "--pid", str(ours.process.pid), "--rate", str(args.rate),
               "--format", "raw", "--output", str(collapsed),
               *([] if args.native else ["--nonblocking"]),
               *(["--native"] if args.native else [])]  # fmt: skip
        profiler = subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # py-spy attached
        cpu_before = cpu_seconds(ours.process.pid)
        if args.workload == "hot":
            run = dnsperf(names[:200], workdir, ["-l", "10", "-q", "100", "-c", "4"])
        else:
            run = dnsperf(names, workdir, ["-n", "1", "-q", "20" if args.workload == "cold"
                                           else "50", "-t", "10"])  # fmt: skip
        cpu = cpu_seconds(ours.process.pid) - cpu_before
        profiler.send_signal(2)  # SIGINT: py-spy writes what it has
        _, errors = profiler.communicate(timeout=60)
    print(f"{run.completed} answered in {run.seconds:.2f} s ({run.qps:,.0f} q/s), "
          f"rcodes {run.rcodes}")  # fmt: skip
    if not collapsed.exists():
        print(errors.decode(errors="replace"))
        raise SystemExit(1)
    summarise(collapsed, args.top)
    if args.layers:
        print(f"\nour CPU during the workload: {cpu:.2f} s for {len(names)} names")
        summarise_layers(collapsed, cpu / len(names) if args.workload != "hot" else None)
    if args.keep:
        shutil.copy(collapsed, args.keep)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
