"""TCP under pressure: hostile clients hold hundreds of connections open while a new client
asks over TCP; ours and Unbound 1.17 (defaults), one after the other.

    /work/shared/tools/offline python -m scripts.reliability.tcp_pressure \\
        [--connections 720] [--seconds 20] [--sources many|subnet|one] [--no-unbound] [--json]

The hostile side opens ``--connections`` TCP connections to the resolver (from one
address, from addresses in three /24s, or each from a /24 of its own: ``--sources``)
and keeps them: a third never send anything, a third drip a query one byte a second,
a third send one query, read the answer and stay silent; each one the resolver closes
is opened again at once.  Meanwhile a probe opens a new connection from 127.0.0.1
every 0.25 s and asks ``localhost. A`` (answered by both resolvers from their default
local zone, so no upstream is involved): answered within 2 s, or failed.  RFC 7766
section 6.2.3 asks a server under pressure to close idle connections; ours evicts the
longest idle at its cap (256), limits each address to 32, keeps a network that has its
share or was just evicted from evicting, and shortens the idle timeout as the
connections fill up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from resolver.lab.unbound import UnboundProcess, free_port, unbound_binary
from scripts.reliability.common import Resolver, frame, percentile, query, recv_exactly

PROBE_EVERY = 0.25
PROBE_TIMEOUT = 2.0
DRIP_EVERY = 1.0


def hostile_source(index: int, sources: str) -> str:
    """One address; or addresses in 3 /24s; or each connection from a /24 of its own
    (a botnet: no per-address or per-network limit applies)."""
    if sources == "one":
        return "127.72.0.1"
    if sources == "subnet":
        return f"127.72.{index // 250}.{index % 250 + 1}"
    return f"127.{73 + index // 250}.{index % 250}.1"


class Hostile:
    """The held connections: counts of opens, closes by the resolver, failed opens."""

    def __init__(self, port: int, count: int, sources: str) -> None:
        self.port, self.count, self.sources = port, count, sources
        self.opened = self.closed_by_resolver = self.connect_failed = 0
        self.open_now = 0
        self.stop = asyncio.Event()

    async def hold(self, index: int) -> None:
        kind = index % 3  # 0: silent, 1: drip, 2: one query then silent
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(
                    "127.0.0.1", self.port, local_addr=(hostile_source(index, self.sources), 0)),
                    5)  # fmt: skip
            except (OSError, TimeoutError):
                self.connect_failed += 1
                await asyncio.sleep(0.2)
                continue
            self.opened += 1
            self.open_now += 1
            packet = frame(query(f"h{index}.localhost.", qid=index & 0xFFFF))
            if kind == 2:
                writer.write(packet)
            dripping = asyncio.ensure_future(self._drip(writer, packet)) if kind == 1 else None
            closed = asyncio.ensure_future(self._until_closed(reader))
            stopped = asyncio.ensure_future(self.stop.wait())
            await asyncio.wait({closed, stopped}, return_when=asyncio.FIRST_COMPLETED)
            self.open_now -= 1
            if closed.done():
                self.closed_by_resolver += 1
            for task in (dripping, closed, stopped):
                if task is not None:
                    task.cancel()
            writer.transport.abort()

    @staticmethod
    async def _drip(writer: asyncio.StreamWriter, packet: bytes) -> None:
        for byte in packet:
            writer.write(bytes([byte]))
            await asyncio.sleep(DRIP_EVERY)
        await asyncio.sleep(3600)

    @staticmethod
    async def _until_closed(reader: asyncio.StreamReader) -> None:
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass


def probe_once(port: int, qid: int) -> float | None:
    """A new connection, one question: seconds until the answer, or None (not in 2 s)."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT) as sock:
            sock.settimeout(max(PROBE_TIMEOUT - (time.monotonic() - started), 0.01))
            sock.sendall(frame(query("localhost.", qid=qid)))
            (length,) = struct.unpack("!H", recv_exactly(sock, 2))
            reply = recv_exactly(sock, length)
    except (OSError, ConnectionError):
        return None
    took = time.monotonic() - started
    if reply[:2] != qid.to_bytes(2, "big") or reply[3] & 0xF or took > PROBE_TIMEOUT:
        return None
    return took


def hostile_process(port: int, connections: int, seconds: float, sources: str,
                    results: multiprocessing.Queue[dict[str, Any]]) -> None:  # fmt: skip
    """The attacker, in a process of its own (the probe must not wait on its loop)."""

    async def hold() -> dict[str, Any]:
        hostile = Hostile(port, connections, sources)
        holders = [asyncio.ensure_future(hostile.hold(i)) for i in range(connections)]
        held: list[int] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            held.append(hostile.open_now)
        hostile.stop.set()
        await asyncio.gather(*holders, return_exceptions=True)
        return {"hostile_connections": connections, "sources": sources,
                "hostile_held_min": min(held[12:], default=0),
                "hostile_held_max": max(held, default=0), "hostile_opened": hostile.opened,
                "hostile_closed_by_resolver": hostile.closed_by_resolver,
                "hostile_connect_failed": hostile.connect_failed}  # fmt: skip

    results.put(asyncio.run(hold()))


def attack(port: int, connections: int, seconds: float, sources: str) -> dict[str, Any]:
    """The hostile connections for ``seconds`` + 3 (the first 3 to get in), a probe
    every PROBE_EVERY meanwhile from this process."""
    results: multiprocessing.Queue[dict[str, Any]] = multiprocessing.Queue()
    attacker = multiprocessing.Process(
        target=hostile_process, args=(port, connections, seconds + 3.0, sources, results)
    )
    attacker.start()
    time.sleep(3.0)  # let them all get in (or be turned away)
    latencies: list[float] = []
    failed = n = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        n += 1
        took = probe_once(port, n & 0xFFFF)
        if took is None:
            failed += 1
        else:
            latencies.append(took)
        time.sleep(PROBE_EVERY)
    hostile = results.get(timeout=60)
    attacker.join(30)
    return {
        **hostile,
        "probe_asked": n, "probe_answered_within_2s": len(latencies), "probe_failed": failed,
        "probe_p50_ms": round(percentile(latencies, 0.5) * 1000, 1) if latencies else None,
        "probe_p99_ms": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
    }  # fmt: skip


def raise_files(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, wanted), hard))


def run(kind: str, directory: Path, connections: int, seconds: float, sources: str,
        flags: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    """One resolver (``ours`` or ``unbound``) under the attack."""
    raise_files(connections * 2 + 256)
    hints = directory / "hints"
    hints.write_text(". 3600000 NS a.root.\na.root. 3600000 A 127.8.0.1\n")
    if kind == "ours":
        with Resolver(directory / "ours", hints, 53, *flags) as resolver:
            result = attack(resolver.port, connections, seconds, sources)
            stats = resolver.stats()
            result["internal_errors"] = sum(
                e.get("event") in ("internal_error", "not-json") for e in resolver.events())
            result["tcp_pressure_log_lines"] = sum(
                e.get("event") == "tcp_pressure" for e in resolver.events())  # fmt: skip
            result["queries_tcp"] = stats.get("queries_total", -1)
    else:
        unbound = UnboundProcess(directory / "unbound", hints, free_port())
        with unbound:
            result = attack(unbound.port, connections, seconds, sources)
    return {"resolver": kind, "flags": list(flags), **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=720)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--sources", choices=("many", "subnet", "one"), default="many")
    parser.add_argument("--no-unbound", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    kinds = ["ours"] + ([] if args.no_unbound or unbound_binary() is None else ["unbound"])
    with tempfile.TemporaryDirectory(prefix="tcp-pressure-") as tmp:
        for kind in kinds:
            result = run(kind, Path(tmp), args.connections, args.seconds, args.sources)
            print(json.dumps(result) if args.json else json.dumps(result, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
