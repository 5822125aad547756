#!/usr/bin/env python3
"""Run the loopback DNS test lab (tests/lab) in the foreground.

    /work/shared/tools/offline python scripts/lab.py [--port 5300] [--hints FILE]

Starts every lab server on its 127.x.y.z addresses, writes the root hints to FILE (or prints
them), shows how to point the resolver at the lab, and runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from resolver.lab import CASES, Lab, LabError  # noqa: E402
from resolver.lab.unbound import nodefault_flags  # noqa: E402

RESOLVER_PORT = 2053
EXAMPLE_CASES = ("glue", "cname-chain", "glueless", "nxdomain", "tcp", "ptr", "google-aaaa")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=5300, help="port of every lab server")
    parser.add_argument("--hints", type=Path, help="write the root hints here (default: stdout)")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    lab = Lab(port=args.port)
    try:
        lab.start()
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1
    try:
        if args.hints is not None:
            lab.write_hints(args.hints)
            hints = str(args.hints)
        else:
            print(lab.hints_text(), end="")
            hints = "FILE"
        addresses = sum(len(role.addresses) for role in lab.servers)
        print(f"; lab: {len(lab.servers)} servers on {addresses} addresses, port {lab.port}")
        print(
            f"; run: python -m resolver --port {RESOLVER_PORT} --root-hints {hints} "
            f"--upstream-port {lab.port} {' '.join(nodefault_flags())}"
        )
        by_id = {case.id: case for case in CASES}
        for case_id in EXAMPLE_CASES:
            case = by_id[case_id]
            print(f";   dig @127.0.0.1 -p {RESOLVER_PORT} {case.qname} {case.qtype}  # {case.id}")
        print("; Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        lab.stop()
    print("; lab stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
