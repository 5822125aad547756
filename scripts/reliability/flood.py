"""A UDP flood from one loopback address while other clients keep asking: with
``ip-ratelimit`` off, then on (truncate, then drop); the others' answers and latency,
and what the flooder got.

    /work/shared/tools/offline python -m scripts.reliability.flood [--seconds 10]
        [--rate 100] [--json]

The flooder (127.66.1.1) sends one cached name as fast as one Python thread can, for
``--seconds``; the neighbour in its /24 (127.66.1.2) and a client elsewhere
(127.66.2.1) each ask a new name every 20 ms and wait for the answer (2 s at most).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from scripts.reliability.common import (
    Resolver,
    percentile,
    query,
    rcode,
    truncated,
    udp_ask,
)
from scripts.reliability.upstreams import BrokenLab, Role, leaf_zone, root_role

FLOODER = "127.66.1.1"
OTHERS = ("127.66.1.2", "127.66.2.1")


def roles() -> list[Role]:
    return [root_role({"good.": [("ns.good.", "127.8.1.1")]}),
            Role("good", ("127.8.1.1",), {"good.": leaf_zone("good.", "ns.good.", "127.8.1.1",
                                                              "* A 192.0.2.1\n")})]  # fmt: skip


def flood(port: int, seconds: float) -> dict[str, Any]:
    packet = query("hot.good.", qid=77)
    sent = full = cut = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        sock.bind((FLOODER, 0))
        sock.setblocking(False)
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            try:
                sock.sendto(packet, ("127.0.0.1", port))
                sent += 1
            except BlockingIOError:
                time.sleep(0.0005)
            while True:
                try:
                    reply = sock.recv(4096)
                except BlockingIOError:
                    break
                cut += truncated(reply)
                full += not truncated(reply)
        elapsed = time.monotonic() - started
        time.sleep(0.5)
        while True:
            try:
                reply = sock.recv(4096)
            except BlockingIOError:
                break
            cut += truncated(reply)
            full += not truncated(reply)
    return {"sent": sent, "sent_per_s": round(sent / elapsed), "answered": full,
            "answered_per_s": round(full / elapsed, 1), "truncated": cut,
            "nothing": sent - full - cut}  # fmt: skip


def other(port: int, source: str, stop: threading.Event, out: dict[str, Any]) -> None:
    latencies: list[float] = []
    failed = n = 0
    while not stop.is_set():
        n += 1
        started = time.monotonic()
        reply = udp_ask(port, query(f"o{n}-{source}.good.", qid=n & 0xFFFF), source, 2.0)
        if reply is None or rcode(reply) != 0 or truncated(reply):
            failed += 1
        else:
            latencies.append(time.monotonic() - started)
        stop.wait(0.02)
    out[source] = {"asked": n, "failed": failed,
                   "p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
                   "p99_ms": round(percentile(latencies, 0.99) * 1000, 2)}  # fmt: skip


def one(directory: Path, hints: Path, seconds: float, flags: list[str]) -> dict[str, Any]:
    with Resolver(directory, hints, 53, *flags) as resolver:
        udp_ask(resolver.port, query("hot.good.", qid=1), "127.66.9.1")
        stop = threading.Event()
        others: dict[str, Any] = {}
        threads = [threading.Thread(target=other, args=(resolver.port, s, stop, others))
                   for s in OTHERS]  # fmt: skip
        for thread in threads:
            thread.start()
        flooded = flood(resolver.port, seconds)
        stop.set()
        for thread in threads:
            thread.join()
        limited = resolver.stats().get("queries_ratelimited", 0)
    return {"flags": " ".join(flags) or "(none)", "flooder": flooded, "others": others,
            "queries_ratelimited": limited}  # fmt: skip


def run(seconds: float, rate: int, directory: Path) -> list[dict[str, Any]]:
    with BrokenLab(directory / "lab", roles()) as lab:
        hints = lab.write_hints(directory / "hints")
        return [
            one(directory / "off", hints, seconds, []),
            one(directory / "truncate", hints, seconds, ["--ip-ratelimit", str(rate)]),
            one(directory / "drop", hints, seconds,
                ["--ip-ratelimit", str(rate), "--ip-ratelimit-mode", "drop"]),
        ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=100, help="ip-ratelimit for the runs on")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flood-") as tmp:
        for result in run(args.seconds, args.rate, Path(tmp)):
            print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
