#!/usr/bin/env python3
"""Serve the test lab's zones with NSD (one instance per server role, port 53) until stopped.

Run it inside a network namespace with only loopback, as root, for example:

    unshare --net sh -c 'ip link set lo up; python3 scripts/nsd_lab.py --hints /tmp/nsd.root'

then point a resolver at the hierarchy from the same namespace:

    python3 -m resolver --port 2053 --root-hints /tmp/nsd.root --upstream-port 53
    unbound -d -c <a config with root-hints: /tmp/nsd.root and do-not-query-localhost: no>

SIGINT or SIGTERM stops every NSD it started.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.interop.nsd_lab import NsdError, NsdLab
from tests.interop.unbound import unbound_conf


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--hints", type=Path, help="write the root hints here (default: print)")
    parser.add_argument("--workdir", type=Path, help="NSD configs and logs (default: a temp dir)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="nsd-lab-"))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        with NsdLab(workdir) as lab:
            if args.hints:
                lab.write_hints(args.hints)
                hints = args.hints
            else:
                print(lab.hints_text(), end="")
                hints = workdir / "lab.root"
                lab.write_hints(hints)
            print(f";; {len(lab.processes)} NSD instances up, configs and logs in {workdir}")
            print(
                f";; ours:    python3 -m resolver --port 2053 --root-hints {hints} "
                "--upstream-port 53"
            )
            conf = workdir / "unbound.conf"
            conf.write_text(unbound_conf(workdir / "unbound", hints, 2054))
            (workdir / "unbound").mkdir(exist_ok=True)
            print(f";; unbound: unbound -d -c {conf}   (listens on 127.0.0.1 port 2054)")
            print(";; then: dig @127.0.0.1 -p 2053 www.example.com   (Ctrl-C here to stop)")
            sys.stdout.flush()
            stop.wait()
    except NsdError as error:
        print(f"nsd_lab: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
