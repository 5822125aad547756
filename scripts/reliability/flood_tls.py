"""``ip-ratelimit`` over DNS over TLS and DNS over HTTPS (issue 25): one client floods a
cached name over one connection, against our resolver and Unbound with the same
``ip-ratelimit``, while the probe of :mod:`scripts.reliability.hostile_tls` asks from
another address (a new connection every 0.1 s over DoT and over DoH).

    /work/shared/tools/offline python -m scripts.reliability.flood_tls [--rate 100]
    ... flood_tls --only dot_flood --target ours --seconds 5

``dot_flood``  one DoT connection from 127.66.9.1 keeping 64 queries outstanding
``h2_flood``   one HTTP/2 connection from 127.66.9.1 keeping 64 streams outstanding

Each asks for ``hot.good.`` (in the cache) or, with ``--fresh``, a new name each time
(answered by the wildcard of the lab's ``good.`` servers: work upstream for every
query answered).

A query (stream) unanswered for 2 s is counted lost and its place given to a new one
(the stream is reset), as a client with a 2 s timeout would: what a server that drops
limited queries costs such a client shows there.  Reported: queries sent, what they got
(answered, REFUSED, HTTP 429, other, lost) and per second, the reply latency, the
server's ``queries_ratelimited`` (ours), and the probe's answers and latency.  Needs
root in a namespace with only loopback (port 53 on 127.8.x.y for the lab).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import ssl
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from resolver.lab.unbound import free_port
from scripts.reliability.common import POOL_SETTLE, Resolver, frame, percentile, query
from scripts.reliability.hostile import roles
from scripts.reliability.hostile_tls import Probe, Target, dot_probe
from scripts.reliability.tls_lab import SERVER_NAME, EncryptedUnbound, make_certificates
from scripts.reliability.upstreams import BrokenLab

FLOODER = "127.66.9.1"  # another /24 than the probe's 127.0.0.1
WINDOW = 64  # queries outstanding on the connection (our MAX_PIPELINED; both allow 100 streams)
GIVE_UP = 2.0  # seconds before an unanswered query is counted lost and its place reused
NAME = "hot.good."  # asked once before the flood: answered from the cache


class Tally:
    """What the flooder's queries got, and how long each answer took."""

    def __init__(self, fresh: bool) -> None:
        self.fresh = fresh  # a new name each query (work for the resolver), or NAME
        self.counts: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.outstanding: dict[int, float] = {}  # query ID or stream ID -> sent at
        self.wake = asyncio.Event()

    def name(self) -> str:
        return f"f{self.counts['sent']}.good." if self.fresh else NAME

    def sent(self, key: int) -> None:
        self.outstanding[key] = time.monotonic()
        self.counts["sent"] += 1

    def got(self, key: int, outcome: str) -> None:
        sent = self.outstanding.pop(key, None)
        if sent is None:
            self.counts["late"] += 1  # after it was given up
            return
        self.latencies.append(time.monotonic() - sent)
        self.counts[outcome] += 1
        self.wake.set()

    def expired(self) -> list[int]:
        now = time.monotonic()
        gone = [key for key, sent in self.outstanding.items() if now - sent > GIVE_UP]
        for key in gone:
            del self.outstanding[key]
            self.counts["lost"] += 1
        return gone

    async def pause(self) -> None:
        self.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), 0.05)

    def report(self, seconds: float) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.counts)
        for key in ("answered", "refused", "http_429"):
            out[f"{key}_per_s"] = round(self.counts[key] / seconds, 1)
        values = sorted(self.latencies)
        if values:
            out["reply_p50_ms"] = round(percentile(values, 0.5) * 1000, 1)
            out["reply_p99_ms"] = round(percentile(values, 0.99) * 1000, 1)
        return out


def _rcode_outcome(reply: bytes) -> str:
    rcode = reply[3] & 0x0F if len(reply) >= 4 else -1
    return {0: "answered", 5: "refused"}.get(rcode, f"rcode_{rcode}")


async def dot_flood(target: Target, seconds: float, fresh: bool) -> dict[str, Any]:
    return await _flood(_dot_connection, target, seconds, fresh)


async def h2_flood(target: Target, seconds: float, fresh: bool) -> dict[str, Any]:
    return await _flood(_h2_connection, target, seconds, fresh)


async def _flood(connection: Any, target: Target, seconds: float, fresh: bool) -> dict[str, Any]:
    """Connections one after another until ``seconds`` are over: a flooder whose
    connection is closed opens another (what was outstanding on it is lost)."""
    tally, end = Tally(fresh), time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            await connection(target, tally, end)
        except (OSError, ssl.SSLError):
            tally.counts["connect_failed"] += 1
            await asyncio.sleep(0.1)
    return tally.report(seconds)


async def _open(target: Target, port: int, alpn: str) -> Any:
    return await asyncio.open_connection(
        "127.0.0.1", port, ssl=target.context([alpn]), server_hostname=SERVER_NAME,
        local_addr=(FLOODER, 0),
    )  # fmt: skip


async def _dot_connection(target: Target, tally: Tally, end: float) -> None:
    reader, writer = await _open(target, target.tls_port, "dot")
    tally.counts["connections"] += 1

    async def read() -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            while True:
                length = int.from_bytes(await reader.readexactly(2), "big")
                reply = await reader.readexactly(length)
                tally.got(int.from_bytes(reply[:2], "big"), _rcode_outcome(reply))

    reading = asyncio.ensure_future(read())
    qid = 0
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        while time.monotonic() < end and not reading.done():
            tally.expired()
            batch = []
            while len(tally.outstanding) < WINDOW:
                qid = qid % 0xFFFF + 1
                batch.append(frame(query(tally.name(), qid=qid)))
                tally.sent(qid)
            writer.write(b"".join(batch))
            await writer.drain()
            await tally.pause()
    await _settle(tally, reading)
    writer.close()


async def _h2_connection(target: Target, tally: Tally, end: float) -> None:
    reader, writer = await _open(target, target.https_port, "h2")
    tally.counts["connections"] += 1
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    statuses: dict[int, int] = {}
    bodies: dict[int, bytes] = {}

    async def read() -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError, h2.exceptions.ProtocolError):
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    _h2_event(conn, event, tally, statuses, bodies)
                writer.write(conn.data_to_send())

    reading = asyncio.ensure_future(read())
    with contextlib.suppress(ConnectionError, ssl.SSLError, h2.exceptions.H2Error):
        while time.monotonic() < end and not reading.done():
            for stream_id in tally.expired():
                conn.reset_stream(stream_id)
            while len(tally.outstanding) < WINDOW:
                stream_id = conn.get_next_available_stream_id()
                body = query(tally.name())
                conn.send_headers(stream_id, [
                    (":method", "POST"), (":path", "/dns-query"), (":scheme", "https"),
                    (":authority", SERVER_NAME), ("content-type", "application/dns-message"),
                    ("content-length", str(len(body))),
                ])  # fmt: skip
                conn.send_data(stream_id, body, end_stream=True)
                tally.sent(stream_id)
            writer.write(conn.data_to_send())
            await writer.drain()
            await tally.pause()
    await _settle(tally, reading)
    writer.close()


def _h2_event(conn: h2.connection.H2Connection, event: h2.events.Event, tally: Tally,
              statuses: dict[int, int], bodies: dict[int, bytes]) -> None:  # fmt: skip
    stream_id = getattr(event, "stream_id", None)
    if isinstance(event, h2.events.ResponseReceived) and stream_id is not None:
        statuses[stream_id] = int(dict(event.headers or [])[b":status"])
    elif isinstance(event, h2.events.DataReceived) and stream_id is not None:
        bodies[stream_id] = bodies.get(stream_id, b"") + (event.data or b"")
        with contextlib.suppress(h2.exceptions.H2Error):
            conn.acknowledge_received_data(event.flow_controlled_length or 0, stream_id)
    elif isinstance(event, h2.events.StreamEnded) and stream_id is not None:
        status = statuses.pop(stream_id, 0)
        reply = bodies.pop(stream_id, b"")
        tally.got(stream_id, _rcode_outcome(reply) if status == 200 else f"http_{status}")


async def _settle(tally: Tally, reading: asyncio.Future[None]) -> None:
    """Wait for the answers still due (up to GIVE_UP), then count the rest lost (with
    the connection, when the server closed it)."""
    deadline = time.monotonic() + GIVE_UP
    while tally.outstanding and time.monotonic() < deadline and not reading.done():
        await tally.pause()
    if reading.done():
        tally.counts["closed_by_server"] += 1
    tally.counts["lost"] += len(tally.outstanding)
    tally.outstanding.clear()
    reading.cancel()


SCENARIOS = {"dot_flood": dot_flood, "h2_flood": h2_flood}


def run(names: list[str], targets: list[str], rate: int, seconds: float, fresh: bool,
        directory: Path) -> list[dict[str, Any]]:  # fmt: skip
    results = []
    certificates = make_certificates(directory / "certificates")
    with BrokenLab(directory / "lab", roles()) as lab:
        hints = lab.write_hints(directory / "hints")
        for name in names:
            scenario = SCENARIOS[name]
            for kind in targets:
                workdir = directory / f"{kind}-{name}"
                if kind == "ours":
                    tls_port, https_port = free_port(), free_port()
                    resolver = Resolver(
                        workdir, hints, 53, "--tls-port", str(tls_port), "--https-port",
                        str(https_port), "--tls-certificate", str(certificates.certificate),
                        "--tls-key", str(certificates.key), "--ip-ratelimit", str(rate),
                    )  # fmt: skip
                    target = Target("ours", resolver.pid, tls_port, https_port, certificates,
                                    resolver.stats)  # fmt: skip
                    with resolver:
                        dot_probe(target, target.context(["dot"]), 1)  # hot.good. cached
                        result = _one(target, scenario, seconds, fresh)
                        result["queries_ratelimited"] = resolver.stats().get("queries_ratelimited")
                        result["exit_status"] = resolver.stop()
                else:
                    extra = f"    ip-ratelimit: {rate}\n" if rate else ""
                    with EncryptedUnbound(workdir, hints, free_port(), certificates,
                                          extra=extra) as unbound:  # fmt: skip
                        assert unbound.process is not None
                        target = Target("unbound", unbound.process.pid, unbound.tls_port,
                                        unbound.https_port, certificates)  # fmt: skip
                        dot_probe(target, target.context(["dot"]), 1)
                        result = _one(target, scenario, seconds, fresh)
                result.update(scenario=name, rate=rate, fresh=fresh)
                results.append(result)
                print(json.dumps(result), flush=True)
    return results


def _one(target: Target, scenario: Any, seconds: float, fresh: bool) -> dict[str, Any]:
    """One flood, with the probe asking meanwhile from 127.0.0.1."""
    time.sleep(POOL_SETTLE)
    probe = Probe(target)
    thread = threading.Thread(target=probe.run)
    thread.start()
    try:
        flood = asyncio.run(scenario(target, seconds, fresh))
    finally:
        probe.stop.set()
        thread.join()
    return {"target": target.name, "flood": flood, "probe": probe.report()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=int, default=100, help="ip-ratelimit of both (0: off)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each flood lasts")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--target", choices=("ours", "unbound", "both"), default="both")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="a new name (under good.: its wildcard) each query: upstream work",
    )
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    targets = ["ours", "unbound"] if args.target == "both" else [args.target]
    with tempfile.TemporaryDirectory(prefix="flood-tls-") as tmp:
        run(names, targets, args.rate, args.seconds, args.fresh, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
