#!/usr/bin/env python3
"""Differential testing of this resolver against Unbound on generated DNS hierarchies.

    scripts/differential.py --seed 1 --hierarchies 200 --questions 50 --out /tmp/diff
    scripts/differential.py --replay /tmp/diff/replays/new-123-0.json
    scripts/differential.py --hierarchy-seed 123 --show      # the zones of one hierarchy

Each hierarchy is made from a seed (resolver/lab/generated.py), served with NSD on
127.50-52.x.y port 53, and asked the same questions by this resolver and by Unbound, set up
alike (resolver/lab/referees.py); what is compared and what is normalised is in
resolver/lab/differences.py, and docs/differential.md says it all in one place.

It needs root for port 53 and a network namespace with only loopback: run as an ordinary
user, it starts itself again under ``unshare --user --map-root-user --net`` (as
scripts/test.sh does); Debian's nsd, unbound and ldnsutils must be installed.  Exit
status: 0 when every confirmed difference is in the known-differences file
(tests/differential/known-differences by default), 1 when a new one was found (or, with
--replay, when the difference is still there), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resolver.lab.cli import routes_off_loopback  # noqa: E402
from resolver.lab.differences import differing, load_known  # noqa: E402
from resolver.lab.differential import (  # noqa: E402
    STAGES,
    record_replay,
    replay,
    run,
    summarise,
)
from resolver.lab.generated import generate  # noqa: E402
from resolver.lab.generated_model import Hierarchy  # noqa: E402

KNOWN = ROOT / "tests" / "differential" / "known-differences"
INSIDE = "RESOLVER_DIFFERENTIAL_NAMESPACE"


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1, help="the run's seed (default 1)")
    parser.add_argument("--hierarchies", type=int, default=10, help="how many (default 10)")
    parser.add_argument("--first", type=int, default=0,
                        help="index of the first hierarchy of the run (to resume one)")
    parser.add_argument("--questions", type=int, default=50, help="per hierarchy (default 50)")
    parser.add_argument("--stages", default="cold,sequence,change,cd",
                        help="what to ask: cold (each question cold, then warm), sequence, "
                        "change, cd (in a signed hierarchy, CD=1 then CD=0; default all four)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="start no new hierarchy after this long")
    parser.add_argument("--out", type=Path, help="directory for differences.jsonl, "
                        "summary.json and replays/ (default: print only)")
    parser.add_argument("--known", type=Path, default=KNOWN,
                        help=f"known-differences file (default {KNOWN.relative_to(ROOT)})")
    parser.add_argument("--replay", type=Path, metavar="FILE",
                        help="serve the hierarchy of a replay file and ask its question again")
    parser.add_argument("--record", action="store_true",
                        help="with --replay: write both answers of now into the file")
    parser.add_argument("--hierarchy-seed", type=int, metavar="SEED",
                        help="with --show: the hierarchy of this seed")
    parser.add_argument("--summarise", type=Path, nargs="+", metavar="DIR",
                        help="the --out directories of one or more runs (shards) as one "
                        "summary, classified with --known as it is now")
    parser.add_argument("--show", action="store_true",
                        help="print the hierarchy (--hierarchy-seed, or --replay's) as JSON")
    return parser.parse_args(argv)


def enter_namespace() -> None:
    """Run again inside a new user and network namespace with only loopback, unless this
    one is already that (and we are root in it)."""
    if os.environ.get(INSIDE) or (os.geteuid() == 0 and not routes_off_loopback()):
        return
    unshare = shutil.which("unshare")
    if unshare is None:
        sys.exit("differential.py: needs unshare (util-linux) or root in an offline namespace")
    inner = 'ip link set lo up && exec "$0" "$@"'
    command = [unshare, "--user", "--map-root-user", "--net", "--", "sh", "-c", inner,
               sys.executable, *sys.argv]  # fmt: skip
    child = subprocess.Popen(command, env={**os.environ, INSIDE: "1"})
    try:
        sys.exit(child.wait())
    except KeyboardInterrupt:  # let the run inside stop its servers before it exits
        child.send_signal(signal.SIGTERM)
        sys.exit(child.wait())


def show(args: argparse.Namespace) -> int:
    if args.replay is not None:
        hierarchy = Hierarchy.from_json(json.loads(args.replay.read_text())["hierarchy"])
    elif args.hierarchy_seed is not None:
        hierarchy = generate(args.hierarchy_seed, args.questions)
    else:
        print("differential.py: --show needs --hierarchy-seed or --replay", file=sys.stderr)
        return 2
    print(hierarchy.dumps())
    return 0


def replay_one(path: Path, record: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="differential-replay-") as workdir:
        recorded, (mine, theirs) = replay(path, Path(workdir))
    if record:
        record_replay(path, mine, theirs)
    print(f"recorded: {recorded.summary()}")
    fields = differing(mine, theirs)
    print(f"now: {'differ in ' + ','.join(fields) if fields else 'the same'}")
    for who, answer in (("ours", mine), ("unbound", theirs)):
        print(f"--- {who}\n{answer.text or answer.rcode}")
    return 1 if fields else 0


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP end the run as Ctrl-C does: every NSD, front and resolver
    started for the current hierarchy is stopped on the way out."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


def summarise_runs(directories: list[Path], known_file: Path) -> int:
    for directory in directories:
        if not (directory / "summary.json").exists():
            print(f"differential.py: {directory} has no summary.json (not a run's --out)",
                  file=sys.stderr)  # fmt: skip
            return 2
    summary = summarise(directories, load_known(known_file))
    print(json.dumps(summary.counts(), indent=1))
    for difference in summary.new():
        print(difference.summary())
    return 1 if summary.new() else 0


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if args.show:
        return show(args)
    if args.summarise:
        return summarise_runs(args.summarise, args.known)
    stop_on_signals()
    enter_namespace()
    if args.replay is not None:
        return replay_one(args.replay, args.record)
    known = load_known(args.known)
    stages = frozenset(args.stages.split(","))
    if not stages or not stages <= STAGES:
        print(f"differential.py: --stages takes {','.join(sorted(STAGES))}", file=sys.stderr)
        return 2
    summary = run(args.seed, args.hierarchies, args.questions, known, args.out,
                  args.max_seconds, first=args.first, stages=stages)  # fmt: skip
    print(json.dumps(summary.counts(), indent=1))
    return 1 if summary.new() else 0


if __name__ == "__main__":
    sys.exit(main())
