"""resolver-lab: run the offline lab in the foreground until SIGINT or SIGTERM.

    resolver-lab [--port 5300] [--hints FILE]              the dnspython lab (every case)
    resolver-lab nsd [--hints FILE] [--workdir DIR]        the same zones served by NSD
    resolver-lab nsd --signed [...]                        ... signed, with broken zones

Both refuse to start in a network namespace that routes through any interface but
lo: the lab only listens on 127.x.y.z, but a resolver pointed at it follows what the
zones say, and a resolver bug (or a poisoned record it believed) must not be able to send
a packet off the machine.  Run it inside `unshare -rn` (after `ip link set lo up`), or
pass --allow-routes to take that risk knowingly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

RESOLVER_PORT = 2053
"""The port the printed example commands run the resolver on."""

UNBOUND_PORT = 2054
EXAMPLE_CASES = ("glue", "cname-chain", "glueless", "nxdomain", "tcp", "ptr", "google-aaaa")
"""Lab cases (resolver.lab.cases) shown as dig commands: a short tour of the lab."""

NAMESPACE_HINT = "unshare -rn sh -c 'ip link set lo up; exec resolver-lab ...'"


def routes_off_loopback(proc_net: Path = Path("/proc/net")) -> list[str]:
    """Interfaces other than lo that this network namespace has a route through.

    ``/proc/net`` is per network namespace; its ``route`` (IPv4 main table) and
    ``ipv6_route`` tables list the interface of every route.
    """
    interfaces: set[str] = set()
    for table, column in (("route", 0), ("ipv6_route", -1)):
        try:
            lines = (proc_net / table).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields and fields[column] not in ("lo", "Iface"):
                interfaces.add(fields[column])
    return sorted(interfaces)


def refuse_unless_loopback_only(
    allow_routes: bool, proc_net: Path = Path("/proc/net")
) -> str | None:
    """Why the lab must not start here, or None when it may."""
    outside = routes_off_loopback(proc_net)
    if not outside or allow_routes:
        return None
    return (
        f"this network namespace routes through {', '.join(outside)}, so a resolver on the "
        f"lab could reach beyond this machine; run it in a loopback-only namespace, e.g. "
        f"{NAMESPACE_HINT} (or pass --allow-routes to start anyway)"
    )


def stop_event() -> threading.Event:
    """An event set by SIGINT or SIGTERM (the lab stops cleanly on either)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


SIGNED_EXAMPLE_CASES = ("glue", "nxdomain", "expired", "badsig", "insecure", "nsec3-nxdomain")
"""Signed-lab cases (resolver.lab.cases.SIGNED_CASES) shown as dig +dnssec commands."""


def print_tour(hints: Path | None, upstream_port: int, trust_anchor: Path | None = None) -> None:
    """How to point the resolver at the lab, and a few dig commands worth trying."""
    from resolver.lab.cases import CASES_BY_ID

    if hints is None:
        print("; root hints: printed above (save them as FILE, or run with --hints FILE)")
    else:
        print(f"; root hints: {hints}")
    from resolver.lab.unbound import nodefault_flags

    flags = f"--root-hints {hints or 'FILE'} --upstream-port {upstream_port}"
    if trust_anchor is not None:
        flags += f" --trust-anchor-file {trust_anchor}"
    # The lab serves names the resolver would otherwise answer itself (RFC 6303 zones).
    local = " ".join(nodefault_flags())
    print(f"; run:  resolver --port {RESOLVER_PORT} {flags} {local}")
    print(f"; then: resolver-trace www.noglue.org {flags}")
    if trust_anchor is None:
        for case_id in EXAMPLE_CASES:
            case = CASES_BY_ID[case_id]
            print(f";   dig @127.0.0.1 -p {RESOLVER_PORT} {case.qname} {case.qtype}  # {case.id}")
        return
    from resolver.lab.signed_cases import SIGNED_CASES_BY_ID

    for case_id in SIGNED_EXAMPLE_CASES:
        signed = SIGNED_CASES_BY_ID[case_id]
        print(
            f";   dig @127.0.0.1 -p {RESOLVER_PORT} {signed.qname} {signed.qtype} +dnssec"
            f"  # {signed.id}: {signed.security}"
        )


def run_dnspython_lab(args: argparse.Namespace) -> int:
    from resolver.lab.server import Lab, LabError

    stop = stop_event()
    lab = Lab(port=args.port)
    try:
        lab.start()
    except LabError as error:
        print(f"resolver-lab: {error}", file=sys.stderr)
        return 1
    try:
        if args.hints is None:
            print(lab.hints_text(), end="")
        else:
            try:
                lab.write_hints(args.hints)  # written once every server answers
            except OSError as error:
                print(f"resolver-lab: cannot write the hints: {error}", file=sys.stderr)
                return 1
        addresses = sum(len(role.addresses) for role in lab.servers)
        print(f"; lab: {len(lab.servers)} servers on {addresses} addresses, port {lab.port}")
        print_tour(args.hints, lab.port)
        print("; Ctrl-C or SIGTERM stops the lab", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        lab.stop()
    print("; lab stopped", file=sys.stderr)
    return 0


def run_nsd_lab(args: argparse.Namespace) -> int:
    from resolver.lab.nsd import NsdError, NsdLab
    from resolver.lab.signing import SigningError
    from resolver.lab.unbound import unbound_conf

    stop = stop_event()
    try:
        workdir: Path = args.workdir or Path(tempfile.mkdtemp(prefix="nsd-lab-"))
        workdir.mkdir(parents=True, exist_ok=True)
        with NsdLab(workdir, signed=args.signed) as lab:
            hints = args.hints or workdir / "lab.root"
            if args.hints is None:
                print(lab.hints_text(), end="")
            anchor = lab.trust_anchor if args.signed else None
            conf = workdir / "unbound.conf"
            (workdir / "unbound").mkdir(exist_ok=True)
            conf.write_text(
                unbound_conf(workdir / "unbound", hints, args.unbound_port, trust_anchor=anchor)
            )
            lab.write_hints(hints)  # last: once it exists, every NSD answers
            for name, reason in lab.not_started.items():
                print(f"; {name}: {reason}")
            print(f"; {len(lab.processes)} NSD instances on port 53; configs, logs: {workdir}")
            if anchor is not None:
                print(f"; signed with ldns-signzone; trust anchor (the root's KSK): {anchor}")
            print_tour(hints, lab.port, anchor)
            print(f"; unbound: unbound -d -c {conf}   (127.0.0.1 port {args.unbound_port})")
            print("; Ctrl-C or SIGTERM stops every NSD", flush=True)
            while not stop.wait(1.0):
                dead = [name for name, p in lab.processes.items() if p.poll() is not None]
                if dead:
                    print(f"resolver-lab: NSD exited: {', '.join(dead)}", file=sys.stderr)
                    return 1
    except (NsdError, SigningError, OSError) as error:  # OSError: workdir or hints not writable
        print(f"resolver-lab: {error}", file=sys.stderr)
        return 1
    print("; every NSD stopped", file=sys.stderr)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (no usage block), status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hints",
        type=Path,
        metavar="FILE",
        help="write the lab's root hints here (default: print them)",
    )
    parser.add_argument(
        "--allow-routes",
        action="store_true",
        help="start even though this network namespace routes off loopback",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("resolver")
    except PackageNotFoundError:
        return "(not installed)"


def _port(text: str) -> int:
    """A port number from the command line, 1-65535, or argparse's one-line error."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="resolver-lab",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(parser)
    parser.add_argument(
        "--port", type=_port, default=5300, metavar="PORT", help="port of every lab server"
    )
    return parser


def build_nsd_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="resolver-lab nsd",
        description=(
            "Serve the lab's zones with NSD, one instance per server role on port 53 "
            "(needs root, or unshare -rn, and Debian's nsd). Hints carry no port: run our "
            "resolver with --upstream-port 53; Unbound always uses 53. Silent, poison and "
            "wrong-ID servers have no NSD equivalent (said at start-up)."
        ),
    )
    _common(parser)
    parser.add_argument(
        "--workdir", type=Path, metavar="DIR", help="NSD configs and logs (default: a temp dir)"
    )
    parser.add_argument(
        "--signed",
        action="store_true",
        help=(
            "sign every zone with ldns-signzone (Debian ldnsutils) at start-up, add "
            "deliberately broken zones under lab. and write the root's trust anchor"
        ),
    )
    parser.add_argument(
        "--unbound-port",
        type=_port,
        default=UNBOUND_PORT,
        metavar="PORT",
        help="port in the Unbound configuration written to the workdir",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    nsd = bool(arguments) and arguments[0] == "nsd"
    parser = build_nsd_parser() if nsd else build_parser()
    args = parser.parse_args(arguments[1:] if nsd else arguments)
    refusal = refuse_unless_loopback_only(args.allow_routes)
    if refusal is not None:
        print(f"resolver-lab: {refusal}", file=sys.stderr)
        return 2
    try:
        import dns  # noqa: F401
    except ImportError:
        print(
            "resolver-lab: the lab needs dnspython: pip install 'resolver[lab]' "
            "(from a checkout: pip install '.[lab]')",
            file=sys.stderr,
        )
        return 2
    return run_nsd_lab(args) if nsd else run_dnspython_lab(args)


if __name__ == "__main__":
    sys.exit(main())
