"""Hostile clients over TCP (and the overload path), against the running resolver, while
a well-behaved client keeps asking and its latency is measured.

    /work/shared/tools/offline python -m scripts.reliability.hostile [--scale 1.0] [--json]
    ... hostile --only slow_writers,pipeline

Scenarios (counts are multiplied by ``--scale``; each is bounded in time):

``slow_writers``     100 connections each sending its query one byte a second
``lying_prefix``     100 connections announcing 65535 bytes and sending 100, then waiting
``half_open``        100 connections sending a query then shutting down their sending side,
                     and 100 that send a query and reset (RST) at once
``idle_flood``       2000 connections opened and left idle (the cap is 256; at the cap the
                     longest idle is evicted, see scripts/reliability/tcp_pressure.py)
``pipeline``         one connection with 1000 queries in one write, all answers read
``never_reads``      20 connections each sending 1000 queries for a 4 KB answer, never reading
``overload``         3000 distinct questions over UDP to a silent zone, to a resolver of its
                     own whose MAX_IN_FLIGHT is 1000 (4096 by default, more than this
                     load generator can keep in flight: 8000 questions reach 3200)

For each: what the hostile clients saw (answers, how long until the resolver closed
them), the well-behaved client's answers and latency over UDP and over TCP (a new
connection per query) meanwhile, and the resolver's RSS, descriptors, tasks and
in-flight resolutions before, at the peak, and after.  Needs port 53 on 127.8.x.y
(root in the offline namespace).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.reliability.common import (
    POOL_SETTLE,
    Resolver,
    frame,
    percentile,
    query,
    rcode,
    recv_exactly,
    udp_ask,
)
from scripts.reliability.upstreams import Behaviour, BrokenLab, Role, leaf_zone, root_role

IDLE_TIMEOUT = 10.0  # resolver.serve.tcp.TCP_IDLE_TIMEOUT (below half the cap)
CAP = 256  # resolver.serve.tcp.MAX_TCP_CONNECTIONS
OVERLOAD_IN_FLIGHT = 1000  # MAX_IN_FLIGHT of the overload scenario's resolver
BIG = " ".join(f'"{"x" * 250}"' for _ in range(16))  # a TXT of about 4 KB


def roles() -> list[Role]:
    zones = {"good.": "127.8.1.1", "big.": "127.8.2.1", "silent.": "127.8.3.1"}
    delegations = {zone: [(f"ns.{zone}", address)] for zone, address in zones.items()}
    return [
        root_role(delegations),
        Role("good", ("127.8.1.1",), {"good.": leaf_zone("good.", "ns.good.", "127.8.1.1",
                                                          "* A 192.0.2.1\n")}),
        Role("big", ("127.8.2.1",), {"big.": leaf_zone("big.", "ns.big.", "127.8.2.1",
                                                       f"* TXT {BIG}\n")}),
        Role("silent", ("127.8.3.1",), {"silent.": leaf_zone("silent.", "ns.silent.",
                                                             "127.8.3.1")}, Behaviour(silent=True)),
    ]  # fmt: skip


# -------------------------------------------------------------------- the well-behaved client


@dataclass
class Probe:
    """Asks every ``every`` seconds over UDP (a cached name and a new one) and over TCP (a
    new connection, a cached name); keeps latencies and failures."""

    port: int
    every: float = 0.05
    udp: list[float] = field(default_factory=list)
    udp_new: list[float] = field(default_factory=list)
    tcp: list[float] = field(default_factory=list)
    udp_failed: int = 0
    tcp_failed: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            for name, into in (("hot.good.", self.udp), (f"p{n}-{time.time_ns()}.good.",
                                                          self.udp_new)):  # fmt: skip
                started = time.monotonic()
                reply = udp_ask(self.port, query(name, qid=n & 0xFFFF), "127.9.9.9", 2.0)
                if reply is None or rcode(reply) != 0:
                    self.udp_failed += 1
                else:
                    into.append(time.monotonic() - started)
            started = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2.0) as sock:
                    sock.sendall(frame(query("hot.good.", qid=n & 0xFFFF)))
                    (length,) = struct.unpack("!H", recv_exactly(sock, 2))
                    reply = recv_exactly(sock, length)
                    if rcode(reply) != 0:
                        raise ConnectionError("not NOERROR")
                self.tcp.append(time.monotonic() - started)
            except (OSError, ConnectionError):
                self.tcp_failed += 1
            self.stop.wait(self.every)

    def report(self) -> dict[str, Any]:
        def ms(values: list[float], share: float) -> float:
            return round(percentile(values, share) * 1000, 2) if values else float("nan")

        return {
            "udp_answered": len(self.udp) + len(self.udp_new), "udp_failed": self.udp_failed,
            "udp_cached_p50_ms": ms(self.udp, 0.5), "udp_cached_p99_ms": ms(self.udp, 0.99),
            "udp_new_p50_ms": ms(self.udp_new, 0.5), "udp_new_p99_ms": ms(self.udp_new, 0.99),
            "tcp_answered": len(self.tcp), "tcp_failed": self.tcp_failed,
            "tcp_p50_ms": ms(self.tcp, 0.5), "tcp_p99_ms": ms(self.tcp, 0.99),
        }  # fmt: skip


class Sampler:
    """The resolver's RSS, descriptors, tasks and in-flight count every ``every`` s; peaks."""

    def __init__(self, resolver: Resolver, every: float = 1.0) -> None:
        self.resolver, self.every = resolver, every
        self.peak: dict[str, float] = {}
        self.stop = threading.Event()

    def sample(self) -> dict[str, float]:
        stats = self.resolver.stats()
        return {"rss_kib": self.resolver.rss_kib(), "descriptors": self.resolver.descriptors(),
                "tasks": stats.get("tasks", -1),
                "in_flight": stats.get("resolutions_in_flight", -1)}  # fmt: skip

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                for key, value in self.sample().items():
                    self.peak[key] = max(self.peak.get(key, value), value)
            except (RuntimeError, OSError):
                pass
            self.stop.wait(self.every)


# -------------------------------------------------------------------- hostile clients


async def _closed_after(reader: asyncio.StreamReader, limit: float) -> tuple[float, bytes]:
    """Seconds until the resolver closes (EOF or reset), and what it sent meanwhile."""
    started = time.monotonic()
    received = b""
    try:
        async with asyncio.timeout(limit):
            while chunk := await reader.read(65536):
                received += chunk
    except (TimeoutError, ConnectionError):
        pass
    return time.monotonic() - started, received


async def slow_writers(port: int, count: int) -> dict[str, Any]:
    async def one(i: int) -> tuple[float, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        packet = frame(query(f"slow{i}.good.", qid=i))

        async def drip() -> None:
            for byte in packet:
                if writer.is_closing():
                    return
                writer.write(bytes([byte]))
                await asyncio.sleep(1.0)

        dripping = asyncio.ensure_future(drip())
        closed = await _closed_after(reader, IDLE_TIMEOUT + 10)
        dripping.cancel()
        writer.close()
        return closed

    results = await asyncio.gather(*(one(i) for i in range(count)))
    return _closing_report(results, len(frame(query("slow0.good."))))


async def lying_prefix(port: int, count: int) -> dict[str, Any]:
    async def one(i: int) -> tuple[float, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\xff\xff" + bytes(100))
        closed = await _closed_after(reader, IDLE_TIMEOUT + 10)
        writer.close()
        return closed

    return _closing_report(await asyncio.gather(*(one(i) for i in range(count))), 102)


def _closing_report(results: list[tuple[float, bytes]], sent: int) -> dict[str, Any]:
    seconds = [s for s, _ in results]
    return {"connections": len(results), "bytes_each": sent,
            "got_bytes": sum(len(r) for _, r in results),
            "closed_after_min_s": round(min(seconds), 2),
            "closed_after_max_s": round(max(seconds), 2)}  # fmt: skip


async def half_open(port: int, count: int) -> dict[str, Any]:
    async def shut(i: int) -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(frame(query(f"half{i}.good.", qid=i)))
        writer.write_eof()
        try:
            async with asyncio.timeout(IDLE_TIMEOUT + 5):
                length = int.from_bytes(await reader.readexactly(2), "big")
                reply = await reader.readexactly(length)
                eof = await reader.read()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return False
        finally:
            writer.close()
        return rcode(reply) == 0 and eof == b""

    def reset(i: int) -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(frame(query(f"rst{i}.good.", qid=i)))
        sock.close()  # linger 0: RST, before the answer can be written

    answered = await asyncio.gather(*(shut(i) for i in range(count)))
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(loop.run_in_executor(None, reset, i) for i in range(count)))
    await asyncio.sleep(2)
    return {"shut_write_connections": count, "answered_then_closed": sum(answered),
            "reset_connections": count}  # fmt: skip


async def idle_flood(port: int, count: int) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count * 2 + 256)), hard))
    streams = []
    refused_at_once = 0
    for _ in range(count):
        try:
            streams.append(await asyncio.open_connection("127.0.0.1", port))
        except OSError:
            refused_at_once += 1
    started = time.monotonic()
    closings = await asyncio.gather(*(_closed_after(r, IDLE_TIMEOUT + 10) for r, _w in streams))
    for _r, writer in streams:
        writer.close()
    soon = sum(s < 1.0 for s, _ in closings)
    held = [s for s, _ in closings if s >= 1.0]
    return {"connections": count, "connect_failed": refused_at_once,
            "closed_within_1s": soon, "held": len(held),
            "held_closed_after_max_s": round(max(held), 2) if held else 0,
            "all_closed_after_s": round(time.monotonic() - started, 2)}  # fmt: skip


async def pipeline(port: int, count: int) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    packets = [query(f"pipe{i % (count // 2)}.good.", qid=i) for i in range(count)]
    started = time.monotonic()
    writer.write(b"".join(frame(p) for p in packets))
    ids = set()
    noerror = 0
    async with asyncio.timeout(60):
        for _ in range(count):
            length = int.from_bytes(await reader.readexactly(2), "big")
            reply = await reader.readexactly(length)
            ids.add(int.from_bytes(reply[:2], "big"))
            noerror += rcode(reply) == 0
    elapsed = time.monotonic() - started
    writer.close()
    return {"queries": count, "answers": len(ids), "noerror": noerror,
            "all_ids_matched": ids == set(range(count)), "seconds": round(elapsed, 2)}  # fmt: skip


async def never_reads(port: int, count: int, queries_each: int = 1000) -> dict[str, Any]:
    streams = []
    for i in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and we never read it
        data = b"".join(frame(query(f"n{i}-{j % 50}.big.", "TXT", qid=j))
                        for j in range(queries_each))  # fmt: skip
        writer.write(data)
        streams.append((reader, writer))
    await asyncio.sleep(IDLE_TIMEOUT * 3)  # long enough for several drain timeouts
    closed_by_resolver = sum(w.transport.is_closing() or r.at_eof() for r, w in streams)
    for _r, writer in streams:
        writer.transport.abort()
    return {"connections": count, "queries_each": queries_each, "answer_bytes": 4200,
            "closed_by_resolver_within_30s": closed_by_resolver}  # fmt: skip


def overload(port: int, count: int) -> dict[str, Any]:
    """Distinct questions to a silent zone over UDP, as fast as one socket sends."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        sock.bind(("127.8.200.1", 0))
        started = time.monotonic()
        for i in range(count):
            sock.sendto(query(f"o{i}.silent.", qid=i & 0xFFFF, edns=True), ("127.0.0.1", port))
            if i % 1000 == 999:
                time.sleep(0.005)  # let the resolver read: we test MAX_IN_FLIGHT, not drops
        sent = time.monotonic() - started
        sock.settimeout(1.0)
        replies: list[tuple[float, bytes]] = []
        deadline = time.monotonic() + 25
        while len(replies) < count and time.monotonic() < deadline:
            try:
                replies.append((time.monotonic() - started, sock.recv(4096)))
            except TimeoutError:
                continue
    not_ready = [t for t, r in replies if rcode(r) == 2 and b"too many questions" in r]
    servfail = [t for t, r in replies if rcode(r) == 2]
    return {"questions": count, "sent_in_s": round(sent, 2), "replies": len(replies),
            "servfail": len(servfail), "not_ready_ede14": len(not_ready),
            "not_ready_last_at_s": round(max(not_ready), 2) if not_ready else None,
            "last_reply_at_s": round(max(t for t, _ in replies), 2) if replies else None,
            }  # fmt: skip


# -------------------------------------------------------------------- running


Scenario = Callable[[int, float], Awaitable[dict[str, Any]] | dict[str, Any]]
SCENARIOS: dict[str, Scenario] = {
    "slow_writers": lambda port, scale: slow_writers(port, max(int(100 * scale), 1)),
    "lying_prefix": lambda port, scale: lying_prefix(port, max(int(100 * scale), 1)),
    "half_open": lambda port, scale: half_open(port, max(int(100 * scale), 1)),
    "idle_flood": lambda port, scale: idle_flood(port, max(int(2000 * scale), CAP + 10)),
    "pipeline": lambda port, scale: pipeline(port, max(int(1000 * scale), 100)),
    "never_reads": lambda port, scale: never_reads(port, max(int(20 * scale), 1)),
    "overload": lambda port, scale: overload(port, max(int(3000 * scale), 1500)),
}


def settle(resolver: Resolver, timeout: float = 30.0) -> dict[str, float]:
    """Bounded wait until nothing is in flight and the descriptors stop falling."""
    deadline = time.monotonic() + timeout
    sampler = Sampler(resolver)
    time.sleep(POOL_SETTLE)  # the upstream socket pool's idle sockets closed
    last = sampler.sample()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = sampler.sample()
        if now["in_flight"] == 0 and now["descriptors"] == last["descriptors"]:
            return now
        last = now
    return last


def run_one(resolver: Resolver, name: str, scale: float) -> dict[str, Any]:
    before = settle(resolver)
    probe, sampler = Probe(resolver.port), Sampler(resolver)
    threads = [threading.Thread(target=probe.run), threading.Thread(target=sampler.run)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    try:
        outcome = SCENARIOS[name](resolver.port, scale)
        if asyncio.iscoroutine(outcome):
            outcome = asyncio.run(outcome)
    finally:
        probe.stop.set()
        sampler.stop.set()
        for thread in threads:
            thread.join()
    elapsed = time.monotonic() - started
    after = settle(resolver)
    return {"scenario": name, "seconds": round(elapsed, 1), "hostile": outcome,
            "probe": probe.report(), "before": before, "peak": sampler.peak,
            "after": after}  # fmt: skip


def run(names: list[str], scale: float, directory: Path) -> list[dict[str, Any]]:
    results = []
    with BrokenLab(directory / "lab", roles()) as lab:
        hints = lab.write_hints(directory / "hints")
        for name in names:
            bound = OVERLOAD_IN_FLIGHT if name == "overload" else None
            with Resolver(directory / name, hints, 53, max_in_flight=bound) as resolver:
                udp_ask(resolver.port, query("hot.good.", qid=1))
                result = run_one(resolver, name, scale)
                errors = [e for e in resolver.events()
                          if e.get("event") in ("internal_error", "not-json")]  # fmt: skip
                result["internal_errors"] = len(errors)
                result["exit_status"] = resolver.stop()
            results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every count")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        results = run(names, args.scale, Path(tmp))
    for result in results:
        print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
