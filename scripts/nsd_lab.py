#!/usr/bin/env python3
"""Serve the test lab's zones with NSD (one instance per server role, port 53) until stopped.

Run it as root inside a network namespace that has only loopback, so no resolver
pointed at it can send a packet off the machine, for example:

    /work/shared/tools/offline python3 scripts/nsd_lab.py --hints /tmp/nsd.root
    unshare --net sh -c 'ip link set lo up; exec python3 scripts/nsd_lab.py --hints /tmp/nsd.root'

It refuses to start when the namespace has a route through any interface but lo.
Then, from the same namespace (e.g. nsenter -t PID -n, or a shell started by the
same unshare), point a resolver at the hierarchy:

    python3 -m resolver --port 2053 --root-hints /tmp/nsd.root --upstream-port 53
    unbound -d -c WORKDIR/unbound.conf          (written here; listens on 127.0.0.1@2054)
    dig @127.0.0.1 -p 2053 www.example.com

The hints carry no port: our resolver needs --upstream-port 53 (its default is 53
too, but say it), Unbound always uses 53.  Never point either at the real root hints.
SIGINT or SIGTERM stops every NSD this script started.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resolver.lab.nsd import NsdError, NsdLab
from resolver.lab.unbound import unbound_conf


def routes_off_loopback() -> list[str]:
    """Interfaces other than lo that this network namespace has a route through."""
    interfaces: set[str] = set()
    for table, column in (("/proc/net/route", 0), ("/proc/net/ipv6_route", -1)):
        try:
            lines = Path(table).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields and fields[column] not in ("lo", "Iface"):
                interfaces.add(fields[column])
    return sorted(interfaces)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nsd_lab.py", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--hints", type=Path, help="write the root hints here (default: print)")
    parser.add_argument("--workdir", type=Path, help="NSD configs and logs (default: a temp dir)")
    parser.add_argument(
        "--unbound-port", type=int, default=2054, help="port in the Unbound config written"
    )
    args = parser.parse_args(argv)
    outside = routes_off_loopback()
    if outside:
        print(
            f"nsd_lab: this network namespace routes through {', '.join(outside)}; run me "
            "inside a loopback-only one: /work/shared/tools/offline python3 scripts/nsd_lab.py",
            file=sys.stderr,
        )
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="nsd-lab-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        with NsdLab(workdir) as lab:
            hints = args.hints or workdir / "lab.root"
            lab.write_hints(hints)
            if not args.hints:
                print(lab.hints_text(), end="")
            conf = workdir / "unbound.conf"
            (workdir / "unbound").mkdir(exist_ok=True)
            conf.write_text(unbound_conf(workdir / "unbound", hints, args.unbound_port))
            for name, reason in lab.not_started.items():
                print(f";; {name}: {reason}")
            print(f";; {len(lab.processes)} NSD instances on port 53; configs, logs: {workdir}")
            print(f";; root hints: {hints}")
            print(
                f";; ours:    python3 -m resolver --port 2053 --root-hints {hints} "
                "--upstream-port 53"
            )
            print(f";; unbound: unbound -d -c {conf}   (127.0.0.1 port {args.unbound_port})")
            print(";; then:    dig @127.0.0.1 -p 2053 www.example.com   (Ctrl-C here to stop)")
            sys.stdout.flush()
            while not stop.wait(1.0):
                dead = [name for name, p in lab.processes.items() if p.poll() is not None]
                if dead:
                    print(f"nsd_lab: NSD exited: {', '.join(dead)}; stopping", file=sys.stderr)
                    return 1
    except NsdError as error:
        print(f"nsd_lab: {error}", file=sys.stderr)
        return 1
    print(";; every NSD stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
