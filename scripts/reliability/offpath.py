"""Off-path forgery, measured at the server: the source ports upstream queries come from,
and what a forger that guessed the ID and the port gets with 0x20; ours and Unbound 1.17.

    /work/shared/tools/offline python -m scripts.reliability.offpath [--names 300]
        [--no-unbound] [--json]

``ports``: the resolver is asked ``--names`` distinct names under ``ports.``, one after
the other; the server of ``ports.`` (127.8.7.1) records the source port of each query.
Ours by default, ours with ``upstream-port-reuse``, Unbound.  A port used for two
queries is one an attacker who found it open (SAD DNS) could aim at twice.

``caps``: the server of ``caps.`` answers every query twice, first with a forgery (the
right ID and port, the question's letters in the opposite case, an address of the
attacker's), then with the real answer: the strongest off-path forger, one that
guessed ID and port.  Ours with and without ``use-caps-for-id``, Unbound with
``use-caps-for-id: yes``; how many of ``--names`` answers were the forger's.
Needs port 53 on 127.8.x.y (root in the offline namespace).
"""

from __future__ import annotations

import argparse
import collections
import json
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.rrset

from resolver.lab.unbound import UnboundProcess, free_port, unbound_binary
from scripts.reliability.common import Resolver, query, udp_ask
from scripts.reliability.upstreams import BrokenLab, root_role

PORTS_SERVER, CAPS_SERVER = "127.8.7.1", "127.8.7.2"
REAL, FORGED = "192.0.2.7", "203.0.113.66"


class RecordingServer:
    """A wildcard zone's server that records each query's source port; ``forge`` sends a
    wrong-case forgery before every answer."""

    def __init__(self, address: str, forge: bool) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 53))
        self.sock.settimeout(0.05)
        self.forge = forge
        self.ports: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RecordingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
                query_ = dns.message.from_wire(data)
            except (TimeoutError, Exception):
                continue
            self.ports.append(peer[1])
            replies = []
            name = query_.question[0].name
            if self.forge:  # (a copy of the query: make_response shares its question)
                forged = dns.message.make_response(dns.message.from_wire(data))
                swapped = dns.name.from_text(name.to_text().swapcase())
                forged.question[0].name = swapped
                forged.answer.append(dns.rrset.from_text(swapped, 300, "IN", "A", FORGED))
                replies.append(forged.to_wire())
            real = dns.message.make_response(query_)
            real.flags |= 0x0400
            if query_.question[0].rdtype == 1:
                real.answer.append(dns.rrset.from_text(name, 300, "IN", "A", REAL))
            replies.append(real.to_wire())
            for reply in replies:
                self.sock.sendto(reply, peer)


class CapsUnbound(UnboundProcess):
    """Unbound with ``use-caps-for-id: yes``."""

    def command(self) -> list[str]:
        command = super().command()
        conf = self.workdir / "unbound.conf"
        text = conf.read_text()
        text = text.replace("remote-control:", "    use-caps-for-id: yes\nremote-control:")
        conf.write_text(text)
        return command


def ask_all(port: int, zone: str, names: int) -> collections.Counter[str]:
    """Each name once, one after the other; the answers' addresses counted."""
    answers: collections.Counter[str] = collections.Counter()
    for i in range(names):
        reply = udp_ask(port, query(f"n{i}.{zone}", qid=i & 0xFFFF), timeout=5.0)
        if reply is None:
            answers["(none)"] += 1
            continue
        message = dns.message.from_wire(reply)
        found = [rr.to_text() for rrset in message.answer for rr in rrset if rrset.rdtype == 1]
        answers[found[0] if found else f"rcode {message.rcode()}"] += 1
    return answers


def measure(kind: str, directory: Path, names: int, test: str,
            flags: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    zone, address = ("ports.", PORTS_SERVER) if test == "ports" else ("caps.", CAPS_SERVER)
    roles = [root_role({zone: [(f"ns.{zone}", address)]})]
    with BrokenLab(directory / f"lab-{kind}-{test}-{len(flags)}", roles) as lab, \
            RecordingServer(address, forge=test == "caps") as server:  # fmt: skip
        hints = lab.write_hints(directory / "hints")
        work = directory / f"{kind}-{test}-{len(flags)}"
        if kind == "ours":
            with Resolver(work, hints, 53, *flags) as resolver:
                answers = ask_all(resolver.port, zone, names)
        else:
            unbound_kind = CapsUnbound if test == "caps" else UnboundProcess
            with unbound_kind(work, hints, free_port()) as unbound:
                answers = ask_all(unbound.port, zone, names)
        ports = server.ports
    result: dict[str, Any] = {"resolver": kind, "flags": list(flags), "test": test,
                              "names": names, "upstream_queries": len(ports)}  # fmt: skip
    if test == "ports":
        uses = collections.Counter(ports)
        result |= {"distinct_ports": len(uses), "most_queries_on_one_port": max(uses.values()),
                   "ports_used_twice_or_more": sum(1 for n in uses.values() if n > 1)}  # fmt: skip
    else:
        result |= {"answers": dict(answers), "forged_answers": answers.get(FORGED, 0)}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--names", type=int, default=300)
    parser.add_argument("--no-unbound", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    unbound = not args.no_unbound and unbound_binary() is not None
    plans = [("ours", "ports", ()), ("ours", "ports", ("--upstream-port-reuse",)),
             ("ours", "caps", ()), ("ours", "caps", ("--use-caps-for-id",))]
    if unbound:
        plans[2:2] = [("unbound", "ports", ())]
        plans.append(("unbound", "caps", ()))
    with tempfile.TemporaryDirectory(prefix="offpath-") as tmp:
        for kind, test, flags in plans:
            result = measure(kind, Path(tmp), args.names, test, flags)
            print(json.dumps(result) if args.json else json.dumps(result, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
