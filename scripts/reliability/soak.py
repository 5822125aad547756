"""Soak: mixed load for a long time at half the saturation rate, with a cache small enough
to evict all the time, DNSSEC validation on and a signed zone in the mix; answered, lost
and SERVFAIL counts, RSS and descriptors every 10 s, descriptors at the end against the
start.

    /work/shared/tools/offline python -m scripts.reliability.soak --minutes 10
        [--rate QPS] [--cache-size 500] [--no-dnssec]

The load, per query (``MIX``): a hot name (100 names, TTL 30, so they also expire and
come back), a name never asked before (wildcard), a name that does not exist
(NXDOMAIN), a name whose only server never answers (SERVFAIL after the engine gives
up), over TCP (a new connection with three pipelined queries: a hot name, a 2 KB
TXT whose upstream answer needs TCP after TC=1, a new name), and in the signed zone
``signed.`` a hot name, a new name (a signed wildcard: its answer is proved with NSEC)
and a name that does not exist (NSEC proof), each asked with AD=1 so that the answer
says it validated.  The root and ``signed.`` are signed at start-up
(:mod:`resolver.lab.signing`, ``ldns-signzone``) and served by NSD; the resolver
validates from the root's key (``--trust-anchor-file``), so the unsigned zones are
proved insecure by the root's NSEC records.  ``--no-dnssec``: the unsigned mix alone,
no validation, no NSD.  Without ``--rate`` the saturation rate is measured first (20 s
closed loop: 128 questions outstanding, no timeout names) and half of it is used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from resolver.lab.nsd import NsdLab
from resolver.lab.signing import Signing
from resolver.lab.topology import ServerRole
from scripts.reliability.common import (
    POOL_SETTLE,
    Resolver,
    frame,
    query,
    rcode,
    recv_exactly,
    udp_ask,
)
from scripts.reliability.upstreams import (
    ROOT_ADDRESS,
    Behaviour,
    BrokenLab,
    Role,
    leaf_zone,
    root_role,
    root_zone,
)

MIX = {"hot": 0.5, "new": 0.2, "nx": 0.15, "timeout": 0.05, "tcp": 0.1}
SIGNED_MIX = {"hot": 0.4, "new": 0.15, "nx": 0.1, "timeout": 0.05, "tcp": 0.1,
              "signed-hot": 0.1, "signed-new": 0.05, "signed-nx": 0.05}  # fmt: skip
SIGNED = ("signed-hot", "signed-new", "signed-nx")  # asked with AD=1
ZONES = {"hot.": "127.8.20.1", "new.": "127.8.21.1", "nx.": "127.8.22.1",
         "timeout.": "127.8.23.1", "big.": "127.8.24.1"}  # fmt: skip
SIGNED_ZONE, SIGNED_ADDRESS = "signed.", "127.8.25.1"
AD_BIT = 0x20  # in the fourth byte of the header (RFC 4035 section 3.2.3)
LOST_AFTER = 15.0  # seconds without an answer: lost
BIG = " ".join(f'"{"y" * 200}"' for _ in range(10))
HOT = "".join(f"h{i} 30 A 192.0.2.{i % 250 + 1}\n" for i in range(100))


def roles(root: bool = True) -> list[Role]:
    """The unsigned zones' servers, and the root's unless NSD serves it (signed)."""
    bodies = {"hot.": HOT, "new.": "* A 198.51.100.1\n", "nx.": "", "timeout.": "",
              "big.": f"* TXT {BIG}\n"}  # fmt: skip
    out = [root_role(delegations())] if root else []
    for zone, address in ZONES.items():
        behaviour = Behaviour(silent=True) if zone == "timeout." else Behaviour()
        out.append(Role(zone.rstrip("."), (address,),
                        {zone: leaf_zone(zone, f"ns.{zone}", address, bodies[zone])},
                        behaviour))  # fmt: skip
    return out


def delegations(signed: bool = False) -> dict[str, list[tuple[str, str]]]:
    zones = ZONES | ({SIGNED_ZONE: SIGNED_ADDRESS} if signed else {})
    return {zone: [(f"ns.{zone}", address)] for zone, address in zones.items()}


@contextlib.contextmanager
def signed_servers(directory: Path) -> Iterator[NsdLab]:
    """NSD serving the root and ``signed.``, both signed at start (new keys each time);
    the lab's :attr:`~resolver.lab.nsd.NsdLab.trust_anchor` is the root's KSK."""
    zones = directory / "zones"
    zones.mkdir(parents=True, exist_ok=True)
    (zones / "root.zone").write_text(root_zone(delegations(signed=True)))
    body = HOT + "*.w A 198.51.100.2\n"
    (zones / "signed.zone").write_text(
        leaf_zone(SIGNED_ZONE, f"ns.{SIGNED_ZONE}", SIGNED_ADDRESS, body)
    )
    servers = (ServerRole("root", (ROOT_ADDRESS,), (".",)),
               ServerRole("signed", (SIGNED_ADDRESS,), (SIGNED_ZONE,)))  # fmt: skip
    with NsdLab(directory / "nsd", servers, zones, signed=Signing()) as nsd:
        yield nsd


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
        if kind == "signed-hot":
            return f"h{self.rng.randrange(100)}.{SIGNED_ZONE}"
        if kind == "signed-new":
            return f"n{self.n}-{self.rng.randrange(1 << 30)}.w.{SIGNED_ZONE}"
        if kind == "signed-nx":
            return f"x{self.n}-{self.rng.randrange(1 << 30)}.{SIGNED_ZONE}"
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

    def __init__(self, port: int, rate: float, seconds: float, mix: dict[str, float]) -> None:
        self.port, self.rate, self.seconds, self.mix = port, rate, seconds, mix
        self.lock = threading.Lock()
        self.pending: dict[int, tuple[float, str, bytes]] = {}  # ID -> sent, kind, question
        self.counts: dict[str, dict[str, int]] = {k: {} for k in mix}
        self.sent = dict.fromkeys(mix, 0)
        self.lost = dict.fromkeys(mix, 0)
        self.validated = dict.fromkeys((k for k in mix if k in SIGNED), 0)  # AD=1 answers
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
        udp_kinds = {k: v for k, v in self.mix.items() if k != "tcp"}
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
                if kind in SIGNED:  # AD=1: the answer says whether it validated (RFC 6840 5.7)
                    packet = packet[:3] + bytes([packet[3] | AD_BIT]) + packet[4:]
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
                    if entry[1] in SIGNED and reply[3] & AD_BIT:
                        with self.lock:
                            self.validated[entry[1]] += 1
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
        interval = 1.0 / max(self.rate * self.mix["tcp"] / 3, 0.01)  # three per connection
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


def run(
    seconds: float, rate: float | None, cache_size: int, directory: Path, dnssec: bool = True
) -> dict[str, Any]:
    """The soak on its own hierarchy, and a fresh resolver validating (``dnssec``) or not."""
    with contextlib.ExitStack() as stack:
        flags = ["--cache-size", str(cache_size)]
        if dnssec:
            nsd = stack.enter_context(signed_servers(directory / "signed"))
            flags += ["--trust-anchor-file", str(nsd.trust_anchor)]
        else:
            flags += ["--no-dnssec"]
        lab = stack.enter_context(BrokenLab(directory / "lab", roles(root=not dnssec)))
        hints = lab.write_hints(directory / "hints")
        resolver = stack.enter_context(Resolver(directory / "resolver", hints, 53, *flags))
        result = soak(resolver, seconds, rate, SIGNED_MIX if dnssec else MIX)
    result.update(cache_size=cache_size, dnssec=dnssec, upstream_queries=lab.counts.total())
    return result


def soak(
    res: Resolver, seconds: float, rate: float | None, mix: dict[str, float]
) -> dict[str, Any]:
    """The load on ``res`` for ``seconds``, sampled every 10 s; ``res`` is stopped after."""
    udp_ask(res.port, query("h1.hot.", qid=9))
    saturated = None
    if rate is None:
        saturated = saturation(res.port)
        rate = saturated / 2
        time.sleep(LOST_AFTER / 3)  # let the saturation run's questions finish
    time.sleep(POOL_SETTLE)  # the upstream socket pool's idle sockets closed
    descriptors_start = res.descriptors()
    tasks_start = res.stats().get("tasks")
    answered_start, udp_errors_start = _answered(res.stats()), udp_errors()
    load = Load(res.port, rate, seconds, mix)
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
    end = {
        "descriptors": res.descriptors(),
        "tasks": stats.get("tasks"),
        "in_flight": stats.get("resolutions_in_flight"),
        "rss_kib": res.rss_kib(),
        # Where a lost query went: the answers the resolver sent, and the datagrams the
        # kernel dropped in this namespace (a full receive buffer, the resolver's or ours).
        "resolver_answered": _answered(stats) - answered_start,
        "udp_receive_errors": udp_errors() - udp_errors_start,
    }
    status = res.stop()
    answered = {k: sum(v.values()) for k, v in load.counts.items()}
    return {"seconds": seconds, "rate": round(rate, 1),
            "saturation_qps": round(saturated, 1) if saturated else None,
            "sent": load.sent, "answered": answered, "rcodes": load.counts, "lost": load.lost,
            "validated": load.validated, "samples": samples,
            "descriptors_start": descriptors_start, "tasks_start": tasks_start, "end": end,
            "exit_status": status}  # fmt: skip


def _answered(stats: dict[str, float]) -> int:
    """Client queries the resolver answered so far (its ``queries`` counter)."""
    return int(stats.get("queries.total", 0))


def udp_errors() -> int:
    """UDP datagrams this network namespace's kernel dropped on receipt (``InErrors``:
    full receive buffers and bad checksums), from ``/proc/net/snmp``."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
             if line.startswith("Udp:")]  # fmt: skip
    return int(dict(zip(lines[0], lines[1], strict=True))["InErrors"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, help="queries per second (default: half the "
                        "measured saturation)")  # fmt: skip
    parser.add_argument("--cache-size", type=int, default=500)
    parser.add_argument(
        "--no-dnssec",
        action="store_true",
        help="no validation, no signed zone (the unsigned mix alone)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        result = run(args.minutes * 60, args.rate, args.cache_size, Path(tmp),
                     not args.no_dnssec)  # fmt: skip
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
