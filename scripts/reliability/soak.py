"""Soak: mixed load for a long time at half the saturation rate, with a cache small enough
to evict all the time; answered, lost and SERVFAIL counts, RSS every 10 s, descriptors
at the end against the start.

    /work/shared/tools/offline python -m scripts.reliability.soak --minutes 10
        [--rate QPS] [--cache-size 500] [--json]

The load, per query (``MIX``): a hot name (100 names, TTL 30, so they also expire and
come back), a name never asked before (wildcard), a name that does not exist
(NXDOMAIN), a name whose only server never answers (SERVFAIL after the engine gives
up), and over TCP (a new connection with three pipelined queries: a hot name, a 2 KB
TXT whose upstream answer needs TCP after TC=1, a new name).  Without ``--rate`` the
saturation rate is measured first (20 s closed loop: 128 questions outstanding, no
timeout names) and half of it is used.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from scripts.reliability.common import (
    POOL_SETTLE,
    Resolver,
    frame,
    query,
    rcode,
    recv_exactly,
    udp_ask,
)
from scripts.reliability.upstreams import Behaviour, BrokenLab, Role, leaf_zone, root_role

MIX = {"hot": 0.5, "new": 0.2, "nx": 0.15, "timeout": 0.05, "tcp": 0.1}
ZONES = {"hot.": "127.8.20.1", "new.": "127.8.21.1", "nx.": "127.8.22.1",
         "timeout.": "127.8.23.1", "big.": "127.8.24.1"}  # fmt: skip
LOST_AFTER = 15.0  # seconds without an answer: lost
BIG = " ".join(f'"{"y" * 200}"' for _ in range(10))


def roles() -> list[Role]:
    delegations = {zone: [(f"ns.{zone}", address)] for zone, address in ZONES.items()}
    hot = "".join(f"h{i} 30 A 192.0.2.{i % 250 + 1}\n" for i in range(100))
    bodies = {"hot.": hot, "new.": "* A 198.51.100.1\n", "nx.": "", "timeout.": "",
              "big.": f"* TXT {BIG}\n"}  # fmt: skip
    out = [root_role(delegations)]
    for zone, address in ZONES.items():
        behaviour = Behaviour(silent=True) if zone == "timeout." else Behaviour()
        out.append(Role(zone.rstrip("."), (address,),
                        {zone: leaf_zone(zone, f"ns.{zone}", address, bodies[zone])},
                        behaviour))  # fmt: skip
    return out


class Names:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0

    def pick(self, kinds: dict[str, float]) -> str:
        return self.rng.choices(list(kinds), weights=list(kinds.values()))[0]

    def name(self, kind: str) -> str:
        self.n += 1
        if kind == "hot":
            return f"h{self.rng.randrange(100)}.hot."
        if kind == "new":
            return f"n{self.n}-{self.rng.randrange(1 << 30)}.new."
        if kind == "nx":
            return f"x{self.n}-{self.rng.randrange(1 << 30)}.nx."
        return f"t{self.n}.timeout."


# -------------------------------------------------------------------- saturation


def saturation(port: int, seconds: float = 20.0, outstanding: int = 128) -> float:
    """Answers per second with ``outstanding`` questions always in flight (no timeouts)."""
    names = Names(1)
    kinds = {"hot": 0.6, "new": 0.25, "nx": 0.15}
    answered = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        sock.bind(("127.9.3.1", 0))
        sock.settimeout(2.0)
        for i in range(outstanding):
            sock.sendto(query(names.name(names.pick(kinds)), qid=i), ("127.0.0.1", port))
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            try:
                sock.recv(4096)
            except TimeoutError:
                for i in range(outstanding):  # refill what was lost
                    sock.sendto(query(names.name(names.pick(kinds)), qid=i), ("127.0.0.1", port))
                continue
            answered += 1
            sock.sendto(query(names.name(names.pick(kinds)), qid=answered & 0xFFFF),
                        ("127.0.0.1", port))  # fmt: skip
        return answered / (time.monotonic() - started)


# -------------------------------------------------------------------- the soak


class Load:
    """Open-loop UDP at ``rate`` (share of TCP aside) and TCP connections at theirs."""

    def __init__(self, port: int, rate: float, seconds: float) -> None:
        self.port, self.rate, self.seconds = port, rate, seconds
        self.lock = threading.Lock()
        self.pending: dict[int, tuple[float, str, bytes]] = {}  # ID -> sent, kind, question
        self.counts: dict[str, dict[str, int]] = {k: {} for k in MIX}
        self.sent = dict.fromkeys(MIX, 0)
        self.lost = dict.fromkeys(MIX, 0)
        self.done = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind(("127.9.4.1", 0))
        self.sock.settimeout(0.5)

    def _count(self, kind: str, code: str) -> None:
        with self.lock:
            self.counts[kind][code] = self.counts[kind].get(code, 0) + 1

    def udp_sender(self) -> None:
        names = Names(2)
        udp_kinds = {k: v for k, v in MIX.items() if k != "tcp"}
        share = sum(udp_kinds.values())
        interval = 0.01
        per_tick = self.rate * share * interval
        started = time.monotonic()
        owed = 0.0
        seq = tick = 0
        while time.monotonic() - started < self.seconds:
            owed += per_tick
            while owed >= 1:
                owed -= 1
                kind = names.pick(udp_kinds)
                seq = (seq + 1) & 0xFFFF
                packet = query(names.name(kind), qid=seq)
                with self.lock:
                    if seq in self.pending:  # an ID still unanswered after a full wrap: lost
                        self.lost[self.pending.pop(seq)[1]] += 1
                    self.pending[seq] = (time.monotonic(), kind, packet[12:])
                    self.sent[kind] += 1
                self.sock.sendto(packet, ("127.0.0.1", self.port))
            tick += 1
            time.sleep(max(started + tick * interval - time.monotonic(), 0))
        self.done.set()

    def udp_receiver(self) -> None:
        """Match replies by ID and question; every second, count what waited too long as
        lost (the scan is once a second, not per reply, so the receiver keeps up)."""
        quiet_since = None
        next_scan = time.monotonic() + 1.0
        while True:
            try:
                reply = self.sock.recv(4096)
            except TimeoutError:
                reply = b""
            now = time.monotonic()
            if reply:
                qid = int.from_bytes(reply[:2], "big")
                with self.lock:
                    entry = self.pending.get(qid)
                    if entry is not None and reply[12 : 12 + len(entry[2])] == entry[2]:
                        del self.pending[qid]
                    else:
                        entry = None
                if entry is not None:
                    code = rcode(reply)
                    self._count(entry[1], {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN"}.get(
                        code, str(code)))  # fmt: skip
            if now >= next_scan:
                next_scan = now + 1.0
                with self.lock:
                    for qid, (sent, kind, _question) in list(self.pending.items()):
                        if now - sent > LOST_AFTER:
                            del self.pending[qid]
                            self.lost[kind] += 1
            with self.lock:
                empty = not self.pending
            if self.done.is_set() and empty:
                return
            if self.done.is_set():
                quiet_since = quiet_since or now
                if now - quiet_since > LOST_AFTER + 2:
                    return

    def tcp_client(self) -> None:
        names = Names(3)
        interval = 1.0 / max(self.rate * MIX["tcp"] / 3, 0.01)  # three queries per connection
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < self.seconds:
            n += 1
            asked = [query(f"h{n % 100}.hot.", qid=1), query(f"b{n}.big.", "TXT", qid=2),
                     query(names.name("new"), qid=3)]  # fmt: skip
            self.sent["tcp"] += 3
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=LOST_AFTER) as s:
                    s.sendall(b"".join(frame(p) for p in asked))
                    for _ in asked:
                        (length,) = struct.unpack("!H", recv_exactly(s, 2))
                        reply = recv_exactly(s, length)
                        self._count("tcp", "NOERROR" if rcode(reply) == 0 else str(rcode(reply)))
            except (OSError, ConnectionError):
                self.lost["tcp"] += 3
            time.sleep(max(started + n * interval - time.monotonic(), 0))


def run(seconds: float, rate: float | None, cache_size: int, directory: Path) -> dict[str, Any]:
    with BrokenLab(directory / "lab", roles()) as lab:
        hints = lab.write_hints(directory / "hints")
        with Resolver(directory / "resolver", hints, 53, "--cache-size", str(cache_size)) as res:
            udp_ask(res.port, query("h1.hot.", qid=9))
            saturated = None
            if rate is None:
                saturated = saturation(res.port)
                rate = saturated / 2
                time.sleep(LOST_AFTER / 3)  # let the saturation run's questions finish
            time.sleep(POOL_SETTLE)  # the upstream socket pool's idle sockets closed
            descriptors_start = res.descriptors()
            tasks_start = res.stats().get("tasks")
            load = Load(res.port, rate, seconds)
            threads = [threading.Thread(target=f) for f in
                       (load.udp_sender, load.udp_receiver, load.tcp_client)]  # fmt: skip
            started = time.monotonic()
            for thread in threads:
                thread.start()
            samples = []
            while any(t.is_alive() for t in threads[:1]):
                stats = res.stats()
                samples.append({"t": round(time.monotonic() - started),
                                "rss_kib": res.rss_kib(), "descriptors": res.descriptors(),
                                "in_flight": stats.get("resolutions_in_flight"),
                                "cache_records": stats.get("cache_entries.cache.records"),
                                "evictions": stats.get("cache_evictions.total")})  # fmt: skip
                threads[0].join(10.0)
            for thread in threads:
                thread.join()
            time.sleep(max(2.0, POOL_SETTLE))
            stats = res.stats()
            end = {"descriptors": res.descriptors(), "tasks": stats.get("tasks"),
                   "in_flight": stats.get("resolutions_in_flight"), "rss_kib": res.rss_kib()}
            status = res.stop()
    answered = {k: sum(v.values()) for k, v in load.counts.items()}
    return {"seconds": seconds, "rate": round(rate, 1),
            "saturation_qps": round(saturated, 1) if saturated else None,
            "cache_size": cache_size, "sent": load.sent, "answered": answered,
            "rcodes": load.counts, "lost": load.lost, "samples": samples,
            "descriptors_start": descriptors_start, "tasks_start": tasks_start, "end": end,
            "upstream_queries": lab.counts.total(), "exit_status": status}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, help="queries per second (default: half the "
                        "measured saturation)")  # fmt: skip
    parser.add_argument("--cache-size", type=int, default=500)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        result = run(args.minutes * 60, args.rate, args.cache_size, Path(tmp))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
