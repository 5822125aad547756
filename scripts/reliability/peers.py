"""Ours and Unbound as the two peers an attack script runs against, one fresh process per
scenario, and what the attack scripts ask them (:mod:`scripts.reliability.poison`,
:mod:`scripts.reliability.exhaust`).

Both walk the hostile hierarchy of :mod:`scripts.reliability.upstreams` on port 53 (root
in the offline namespace); Unbound is Debian's, configured as in
:mod:`resolver.lab.unbound` (iterator only, QNAME minimisation off), plus whatever
``clauses`` a scenario needs (forward zones).  A peer's CPU time is read from
``/proc/PID/stat``, so the same figure is measured for both.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from resolver.lab.unbound import UnboundProcess, unbound_binary
from scripts.reliability.common import Resolver, free_port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Outcome:
    """What a client got: the RCODE (``LOST`` for no reply), the addresses of the answer
    (CNAMEs followed by the resolver), every record as text, and how long it took."""

    rcode: str
    addresses: list[str] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        return f"{self.rcode} {' '.join(self.addresses)}".strip()


def ask(port: int, name: str, rdtype: str = "A", timeout: float = 12.0) -> Outcome:
    """One question over UDP (TCP when truncated), RD=1, as a stub resolver asks."""
    query = dns.message.make_query(name, rdtype)
    started = time.monotonic()
    try:
        reply, _ = dns.query.udp_with_fallback(query, "127.0.0.1", timeout=timeout, port=port)
    except (dns.exception.Timeout, OSError):
        return Outcome("LOST", seconds=time.monotonic() - started)
    wanted = dns.rdatatype.from_text(rdtype)
    addresses = [rd.to_text() for rrset in reply.answer if rrset.rdtype == wanted
                 for rd in rrset]  # fmt: skip
    records = [line for rrset in reply.answer for line in rrset.to_text().splitlines()]
    return Outcome(dns.rcode.to_text(reply.rcode()), addresses, records,
                   time.monotonic() - started)  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (``/proc/PID/stat`` fields 14, 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class Peer:
    """A running resolver: its name, port and PID."""

    name: str
    port: int
    pid: int

    def cpu(self) -> float:
        return cpu_seconds(self.pid)


def peer_names(unbound: bool) -> list[str]:
    """``ours``, and ``unbound`` when asked for and installed."""
    return ["ours", "unbound"] if unbound and unbound_binary() is not None else ["ours"]


@contextlib.contextmanager
def running(
    name: str,
    directory: Path,
    hints: Path,
    *,
    flags: tuple[str, ...] = (),
    config: str = "",
    unbound_clauses: str = "",
) -> Iterator[Peer]:
    """A fresh ``name`` (``ours`` or ``unbound``) on ``hints``, empty cache, stopped after.
    ``flags`` and ``config`` (TOML, written to a file given with ``--config``) are ours;
    ``unbound_clauses`` Unbound's (say, its ``forward-zone:`` clauses)."""
    directory.mkdir(parents=True, exist_ok=True)
    if name == "ours":
        extra = list(flags)
        if config:
            path = directory / "resolver.toml"
            path.write_text(config)
            extra += ["--config", str(path)]
        with Resolver(directory / "ours", hints, 53, *extra) as ours:
            yield Peer("ours", ours.port, ours.pid)
        return
    process = UnboundProcess(directory / "unbound", hints, free_port(), clauses=unbound_clauses)
    process.start()
    try:
        assert process.process is not None
        yield Peer("unbound", process.port, process.process.pid)
    finally:
        process.stop()
