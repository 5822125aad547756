"""Start-up benchmark: from exec to the first answer, ours against Unbound.

Not a test.  Starts each resolver N times on a free port of 127.0.0.1 and sends
``localhost. A`` (a local zone both answer themselves: no upstream query) every
10 ms from the moment the process is started until an answer comes; the time to
that answer is the start-up time a client sees.  Ours runs with validation on
(the default) and no control socket; Unbound with one thread, as in the other
benchmarks.  Both are given root hints on loopback, and nothing is asked of them::

    scripts/offline .venv/bin/python benchmarks/bench_startup.py --runs 9
"""

from __future__ import annotations

import argparse
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resolver.lab.unbound import free_port, unbound_binary, unbound_conf

HINTS = ". 3600 NS a.root-servers.net.\na.root-servers.net. 3600 A 127.1.0.1\n"
QUERY = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x09localhost\x00\x00\x01\x00\x01"
GIVE_UP = 20.0  # seconds: a start-up slower than this is a failure, not a figure


def first_answer(command: list[str], port: int) -> float:
    """Seconds from starting ``command`` to its first answer on 127.0.0.1@port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(0.01)
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while time.perf_counter() - started < GIVE_UP:
                try:
                    client.sendto(QUERY, ("127.0.0.1", port))
                    if client.recvfrom(512)[0][:2] == QUERY[:2]:
                        return time.perf_counter() - started
                except OSError:  # not listening yet (ICMP refused), or no answer in 10 ms
                    pass
            raise SystemExit(f"no answer from {command[0]} in {GIVE_UP} s")
        finally:
            process.terminate()
            process.wait()


def ours(workdir: Path, python: str) -> tuple[list[str], int]:
    port = free_port()
    return [python, "-m", "resolver", "--port", str(port), "--root-hints",
            str(workdir / "hints"), "--control-socket", "none"], port  # fmt: skip


def unbound(workdir: Path) -> tuple[list[str], int]:
    binary = unbound_binary()
    if binary is None:
        raise SystemExit("unbound not found (Debian: apt-get install unbound)")
    port = free_port()
    conf = workdir / f"unbound-{port}.conf"
    conf.write_text(unbound_conf(workdir, workdir / "hints", port))
    return [binary, "-d", "-c", str(conf)], port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="starts of each (default 9)")
    parser.add_argument("--python", default=sys.executable, help="interpreter with resolver")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "hints").write_text(HINTS)
        times: dict[str, list[float]] = {"ours": [], "unbound": []}
        for _ in range(args.runs):  # alternated, so a drift of the machine hits both
            times["ours"].append(first_answer(*ours(workdir, args.python)))
            times["unbound"].append(first_answer(*unbound(workdir)))
    for name, got in times.items():
        print(f"{name:8} first answer after {statistics.median(got) * 1000:6.0f} ms median "
              f"({min(got) * 1000:.0f}-{max(got) * 1000:.0f} ms, {len(got)} starts)")  # fmt: skip
    ratio = statistics.median(times["ours"]) / statistics.median(times["unbound"])
    print(f"ratio ours/unbound (medians): {ratio:.1f}x")


if __name__ == "__main__":
    main()
