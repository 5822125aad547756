"""Hostile clients of DNS over TLS and DNS over HTTPS, against our resolver and Unbound on
the same lab, while well-behaved clients keep asking and their latency is measured.

    /work/shared/tools/offline python -m scripts.reliability.hostile_tls [--scale 1.0]
    ... hostile_tls --only silent_handshakes,h2_rapid_reset --target ours --json

Scenarios (counts are multiplied by ``--scale``; each is bounded in time):

``silent_handshakes``   300 TCP connections to the DoT port that never send a ClientHello
``dripped_handshakes``  100 connections sending a ClientHello one byte a second
``dot_never_reads``     20 DoT connections each sending 1000 queries for a 4 KB answer,
                        never reading
``h2_too_many_streams`` 20 HTTP/2 connections each opening 200 streams at once, none
                        finished (the limit both advertise is 100)
``h2_slow_streams``     100 HTTP/2 connections each with 100 streams whose bodies never end
``h2_rapid_reset``      5 HTTP/2 connections each opening and at once resetting 5000
                        streams, each a new name (CVE-2023-44487)
``h2_never_reads``      20 HTTP/2 connections each asking 100 4 KB answers, never reading

Meanwhile a probe asks every 0.1 s over DoT and over DoH (HTTP/2), each time on a new
connection (a full handshake: a new client getting in is what the attacks threaten),
for a cached name.  Reported for each: what the hostile clients saw (when the server
closed them, GOAWAYs, answers), the probe's answers, failures and latency, and the
server's descriptors and RSS before, at the peak and after (ours also its tasks).
Needs root in a namespace with only loopback (port 53 on 127.8.x.y for the lab).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from hyperframe.frame import DataFrame, HeadersFrame, RstStreamFrame

from resolver.lab.unbound import free_port
from scripts.reliability.common import (
    POOL_SETTLE,
    Resolver,
    frame,
    percentile,
    query,
    recv_exactly,
)
from scripts.reliability.hostile import roles
from scripts.reliability.tls_lab import (
    SERVER_NAME,
    CertificateFiles,
    EncryptedUnbound,
    make_certificates,
)
from scripts.reliability.upstreams import BrokenLab

LIMIT = 45.0  # seconds any one hostile client waits for the server to close it


@dataclass
class Target:
    """A server under test: its DoT and DoH ports, and how to read its resources."""

    name: str
    pid: int
    tls_port: int
    https_port: int
    certificates: CertificateFiles
    stats: Callable[[], dict[str, float]] | None = None

    def context(self, alpn: list[str]) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.certificates.ca))
        context.set_alpn_protocols(alpn)
        return context

    def resources(self) -> dict[str, float]:
        status = Path(f"/proc/{self.pid}/status").read_text().splitlines()
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        descriptors = len(list(Path(f"/proc/{self.pid}/fd").iterdir()))
        sample: dict[str, float] = {"rss_kib": rss, "descriptors": descriptors}
        if self.stats is not None:
            with_stats = self.stats()
            sample["tasks"] = with_stats.get("tasks", -1)
        return sample


# -------------------------------------------------------------------- the probe


def dot_probe(target: Target, context: ssl.SSLContext, qid: int) -> None:
    with context.wrap_socket(socket.create_connection(("127.0.0.1", target.tls_port), timeout=3),
                             server_hostname=SERVER_NAME) as sock:  # fmt: skip
        sock.sendall(frame(query("hot.good.", qid=qid)))
        (length,) = struct.unpack("!H", recv_exactly(sock, 2))
        reply = recv_exactly(sock, length)
        if reply[3] & 0x0F != 0:
            raise ConnectionError("not NOERROR")


def doh_probe(target: Target, context: ssl.SSLContext) -> None:
    with context.wrap_socket(socket.create_connection(("127.0.0.1", target.https_port),
                                                      timeout=3),
                             server_hostname=SERVER_NAME) as sock:  # fmt: skip
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        body = query("hot.good.")
        conn.send_headers(1, [(":method", "POST"), (":path", "/dns-query"), (":scheme", "https"),
                              (":authority", SERVER_NAME),
                              ("content-type", "application/dns-message")])  # fmt: skip
        conn.send_data(1, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        while True:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.StreamEnded):
                    return
            sock.sendall(conn.data_to_send())


@dataclass
class Probe:
    target: Target
    every: float = 0.1
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"dot": [], "doh": []})
    failed: dict[str, int] = field(default_factory=lambda: {"dot": 0, "doh": 0})
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        dot_context = self.target.context(["dot"])
        doh_context = self.target.context(["h2"])
        n = 0
        while not self.stop.is_set():
            n += 1
            for kind in ("dot", "doh"):
                started = time.monotonic()
                try:
                    if kind == "dot":
                        dot_probe(self.target, dot_context, n & 0xFFFF)
                    else:
                        doh_probe(self.target, doh_context)
                    self.latencies[kind].append(time.monotonic() - started)
                except (OSError, ConnectionError, ssl.SSLError, h2.exceptions.H2Error):
                    self.failed[kind] += 1
            self.stop.wait(self.every)

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind in ("dot", "doh"):
            values = self.latencies[kind]
            out[f"{kind}_answered"] = len(values)
            out[f"{kind}_failed"] = self.failed[kind]
            out[f"{kind}_p50_ms"] = round(percentile(values, 0.5) * 1000, 1) if values else None
            out[f"{kind}_p99_ms"] = round(percentile(values, 0.99) * 1000, 1) if values else None
        return out


# -------------------------------------------------------------------- hostile clients


async def _closed_after(reader: asyncio.StreamReader) -> float:
    started = time.monotonic()
    try:
        async with asyncio.timeout(LIMIT):
            while await reader.read(65536):
                pass
    except (TimeoutError, ConnectionError, ssl.SSLError):
        pass
    return time.monotonic() - started


def _closings(seconds: list[float]) -> dict[str, Any]:
    ordered = sorted(seconds)
    return {"connections": len(seconds), "closed_within_1s": sum(s < 1 for s in seconds),
            "still_open_after_45s": sum(s >= LIMIT - 0.5 for s in seconds),
            "closed_after_median_s": round(percentile(ordered, 0.5), 1) if ordered else None,
            "closed_after_max_s": round(ordered[-1], 1) if ordered else None}  # fmt: skip


async def silent_handshakes(target: Target, count: int) -> dict[str, Any]:
    streams = []
    for _ in range(count):
        with contextlib.suppress(OSError):
            streams.append(await asyncio.open_connection("127.0.0.1", target.tls_port))
    seconds = await asyncio.gather(*(_closed_after(r) for r, _w in streams))
    for _r, writer in streams:
        writer.transport.abort()
    return {**_closings(list(seconds)), "connect_failed": count - len(streams)}


async def dripped_handshakes(target: Target, count: int) -> dict[str, Any]:
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(500)

    async def one() -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", target.tls_port)

        async def drip() -> None:
            for byte in hello:
                if writer.is_closing():
                    return
                writer.write(bytes([byte]))
                await asyncio.sleep(1.0)

        dripping = asyncio.ensure_future(drip())
        seconds = await _closed_after(reader)
        dripping.cancel()
        writer.transport.abort()
        return seconds

    return _closings(list(await asyncio.gather(*(one() for _ in range(count)))))


async def _tls(target: Target, alpn: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    port = target.tls_port if alpn == "dot" else target.https_port
    return await asyncio.open_connection("127.0.0.1", port, ssl=target.context([alpn]),
                                         server_hostname=SERVER_NAME)  # fmt: skip


async def _released(target: Target, baseline: float) -> float | None:
    """Seconds until the server holds no more descriptors than ``baseline`` (plus the
    probe's two), read from /proc: a client that never reads never sees its connection
    closed, so the server is asked instead.  None: not within LIMIT."""
    started = time.monotonic()
    while time.monotonic() - started < LIMIT:
        await asyncio.sleep(0.5)
        if target.resources()["descriptors"] <= baseline + 2:
            return round(time.monotonic() - started, 1)
    return None


async def dot_never_reads(target: Target, count: int) -> dict[str, Any]:
    baseline = target.resources()["descriptors"]
    streams = []
    for i in range(count):
        reader, writer = await _tls(target, "dot")
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer.write(b"".join(frame(query(f"n{i}-{j % 50}.big.", "TXT", qid=j))
                              for j in range(1000)))  # fmt: skip
        streams.append((reader, writer))
    released = await _released(target, baseline)
    for _r, writer in streams:
        writer.transport.abort()
    return {"connections": count, "server_closed_all_after_s": released}


class RawH2:
    """An HTTP/2 client writing frames as told, whatever the server's settings say."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        writer.write(self.conn.data_to_send())

    def request(self, stream: int, body: bytes | None, end: bool = True,
                length: int | None = None) -> None:  # fmt: skip
        headers = [
            (":method", "POST"),
            (":path", "/dns-query"),
            (":scheme", "https"),
            (":authority", SERVER_NAME),
            ("content-type", "application/dns-message"),
            ("content-length", str(length if length is not None else len(body or b""))),
        ]
        frame_ = HeadersFrame(stream)
        frame_.data = self.conn.encoder.encode(headers)
        frame_.flags.add("END_HEADERS")
        self.writer.write(frame_.serialize())
        if body is not None:
            data = DataFrame(stream, data=body)
            if end:
                data.flags.add("END_STREAM")
            self.writer.write(data.serialize())

    def reset(self, stream: int) -> None:
        self.writer.write(RstStreamFrame(stream, error_code=8).serialize())

    async def watch(self) -> dict[str, Any]:
        """Until the server closes (or LIMIT): when, the GOAWAY's error code if one came,
        and the answers seen (streams the server ended).  Frames are read by hand: the
        streams were opened behind h2's back, so it would not follow them."""
        started = time.monotonic()
        goaway: int | None = None
        answers = 0
        buffer = b""
        try:
            async with asyncio.timeout(LIMIT):
                while data := await self.reader.read(65536):
                    buffer += data
                    while len(buffer) >= 9 and len(buffer) >= 9 + int.from_bytes(buffer[:3]):
                        length, kind, flags = int.from_bytes(buffer[:3]), buffer[3], buffer[4]
                        if kind == 0x7:  # GOAWAY: last stream ID, then the error code
                            goaway = int.from_bytes(buffer[13:17])
                        elif kind in (0x0, 0x1) and flags & 0x1:  # DATA or HEADERS ending a stream
                            answers += 1
                        buffer = buffer[9 + length :]
        except (TimeoutError, ConnectionError, ssl.SSLError):
            pass
        return {"closed_after_s": time.monotonic() - started, "goaway": goaway,
                "answers": answers}  # fmt: skip


def _h2_report(watched: list[dict[str, Any]]) -> dict[str, Any]:
    report = _closings([w["closed_after_s"] for w in watched])
    names = {None: "none", 0x1: "PROTOCOL_ERROR", 0x3: "FLOW_CONTROL_ERROR",
             0xB: "ENHANCE_YOUR_CALM", 0x0: "NO_ERROR"}  # fmt: skip
    report["goaway"] = sorted({names.get(w["goaway"], str(w["goaway"])) for w in watched})
    report["answers"] = sum(w["answers"] for w in watched)
    return report


async def h2_too_many_streams(target: Target, count: int) -> dict[str, Any]:
    clients = [RawH2(*await _tls(target, "h2")) for _ in range(count)]
    for client in clients:
        for i in range(200):  # open streams: their requests' bodies are still to come
            client.request(1 + 2 * i, None, length=40)
    return _h2_report(list(await asyncio.gather(*(client.watch() for client in clients))))


async def h2_slow_streams(target: Target, count: int) -> dict[str, Any]:
    clients = [RawH2(*await _tls(target, "h2")) for _ in range(count)]
    for client in clients:
        for i in range(100):
            client.request(1 + 2 * i, b"\0" * 10, end=False, length=100)
    return _h2_report(list(await asyncio.gather(*(client.watch() for client in clients))))


async def h2_rapid_reset(target: Target, count: int) -> dict[str, Any]:
    clients = [RawH2(*await _tls(target, "h2")) for _ in range(count)]
    started = time.monotonic()
    for c, client in enumerate(clients):
        for i in range(5000):
            client.request(1 + 2 * i, query(f"reset{c}-{i}.good."))
            client.reset(1 + 2 * i)
            if i % 500 == 499:
                await client.writer.drain()
    watched = await asyncio.gather(*(client.watch() for client in clients))
    report = _h2_report(list(watched))
    report["streams"] = 5000 * count
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


async def h2_never_reads(target: Target, count: int) -> dict[str, Any]:
    baseline = target.resources()["descriptors"]
    clients = []
    for c in range(count):
        reader, writer = await _tls(target, "h2")
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client = RawH2(reader, writer)
        for i in range(100):
            client.request(1 + 2 * i, query(f"nr{c}-{i % 50}.big.", "TXT"))
        clients.append(client)
    released = await _released(target, baseline)
    for client in clients:
        client.writer.transport.abort()
    return {"connections": count, "server_closed_all_after_s": released}


Scenario = Callable[[Target, float], Awaitable[dict[str, Any]]]
SCENARIOS: dict[str, Scenario] = {
    "silent_handshakes": lambda t, s: silent_handshakes(t, max(int(300 * s), 20)),
    "dripped_handshakes": lambda t, s: dripped_handshakes(t, max(int(100 * s), 5)),
    "dot_never_reads": lambda t, s: dot_never_reads(t, max(int(20 * s), 2)),
    "h2_too_many_streams": lambda t, s: h2_too_many_streams(t, max(int(20 * s), 2)),
    "h2_slow_streams": lambda t, s: h2_slow_streams(t, max(int(100 * s), 5)),
    "h2_rapid_reset": lambda t, s: h2_rapid_reset(t, max(int(5 * s), 1)),
    "h2_never_reads": lambda t, s: h2_never_reads(t, max(int(20 * s), 2)),
}


# -------------------------------------------------------------------- running


class Sampler:
    def __init__(self, target: Target) -> None:
        self.target, self.peak = target, {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                for key, value in self.target.resources().items():
                    self.peak[key] = max(self.peak.get(key, value), value)
            except (OSError, RuntimeError, StopIteration):
                pass
            self.stop.wait(1.0)


def run_one(target: Target, name: str, scale: float) -> dict[str, Any]:
    time.sleep(POOL_SETTLE)
    before = target.resources()
    probe, sampler = Probe(target), Sampler(target)
    threads = [threading.Thread(target=probe.run), threading.Thread(target=sampler.run)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    try:
        outcome = asyncio.run(SCENARIOS[name](target, scale))
    finally:
        probe.stop.set()
        sampler.stop.set()
        for thread in threads:
            thread.join()
    time.sleep(POOL_SETTLE)
    return {"target": target.name, "scenario": name,
            "seconds": round(time.monotonic() - started, 1), "hostile": outcome,
            "probe": probe.report(), "before": before, "peak": sampler.peak,
            "after": target.resources()}  # fmt: skip


def ours(directory: Path, hints: Path, certificates: CertificateFiles) -> tuple[Resolver, Target]:
    tls_port, https_port = free_port(), free_port()
    resolver = Resolver(directory, hints, 53, "--tls-port", str(tls_port), "--https-port",
                        str(https_port), "--tls-certificate", str(certificates.certificate),
                        "--tls-key", str(certificates.key))  # fmt: skip
    target = Target("ours", resolver.pid, tls_port, https_port, certificates, resolver.stats)
    return resolver, target


def run(names: list[str], targets: list[str], scale: float,
        directory: Path) -> list[dict[str, Any]]:  # fmt: skip
    results = []
    certificates = make_certificates(directory / "certificates")
    with BrokenLab(directory / "lab", roles()) as lab:
        hints = lab.write_hints(directory / "hints")
        for name in names:
            for kind in targets:
                workdir = directory / f"{kind}-{name}"
                if kind == "ours":
                    resolver, target = ours(workdir, hints, certificates)
                    with resolver:
                        dot_probe(target, target.context(["dot"]), 1)  # hot.good. cached
                        result = run_one(target, name, scale)
                        errors = [e for e in resolver.events()
                                  if e.get("event") in ("internal_error", "not-json")]  # fmt: skip
                        result["internal_errors"] = len(errors)
                        result["exit_status"] = resolver.stop()
                else:
                    with EncryptedUnbound(workdir, hints, free_port(), certificates) as unbound:
                        assert unbound.process is not None
                        target = Target("unbound", unbound.process.pid, unbound.tls_port,
                                        unbound.https_port, certificates)  # fmt: skip
                        dot_probe(target, target.context(["dot"]), 1)
                        result = run_one(target, name, scale)
                results.append(result)
                print(json.dumps(result), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every count")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--target", choices=("ours", "unbound", "both"), default="both")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    targets = ["ours", "unbound"] if args.target == "both" else [args.target]
    with tempfile.TemporaryDirectory(prefix="hostile-tls-") as tmp:
        run(names, targets, args.scale, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
