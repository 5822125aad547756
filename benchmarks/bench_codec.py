"""Codec benchmark: our parse_message/write_message against dnspython.

Not a test.  Builds two typical messages with dnspython (a root server's referral to
the .com servers for example.com, and an answer for www.example.com A), then measures
messages per second, best of several repeats, for parsing and writing with each
library.  Run it pinned to one CPU so the numbers are steadier::

    taskset -c 1 python benchmarks/bench_codec.py
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import timeit
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resolver.wire import parse_message, write_message

LETTERS = "abcdefghijklm"


def referral() -> dns.message.Message:
    """What a root server answers for ``www.example.com. A``: the .com delegation."""
    query = dns.message.make_query("www.example.com.", "A", use_edns=0, payload=1232)
    msg = dns.message.make_response(query)
    msg.flags &= ~dns.flags.RD
    msg.use_edns(0, 0, 4096)
    ns = dns.rrset.from_text_list(
        "com.", 172800, "IN", "NS", [f"{c}.gtld-servers.net." for c in LETTERS]
    )
    msg.authority.append(ns)
    for i, c in enumerate(LETTERS):
        host = f"{c}.gtld-servers.net."
        msg.additional.append(dns.rrset.from_text(host, 172800, "IN", "A", f"192.{i}.30.30"))
        msg.additional.append(
            dns.rrset.from_text(host, 172800, "IN", "AAAA", f"2001:503:{i:x}::2:30")
        )
    return msg


def answer() -> dns.message.Message:
    """An authoritative answer for ``www.example.com. A`` with two addresses."""
    query = dns.message.make_query("www.example.com.", "A", use_edns=0, payload=1232)
    msg = dns.message.make_response(query)
    msg.flags |= dns.flags.AA
    msg.use_edns(0, 0, 1232)
    msg.answer.append(
        dns.rrset.from_text_list(
            "www.example.com.", 300, "IN", "A", ["93.184.215.14", "93.184.215.15"]
        )
    )
    return msg


def rate(func: Callable[[], object], repeat: int, target: float = 0.2) -> float:
    """Calls per second: best of ``repeat`` runs of about ``target`` seconds each."""
    timer = timeit.Timer(func)
    number, _ = timer.autorange()
    number = max(1, int(number * target / 0.2))
    best = min(timer.repeat(repeat=repeat, number=number))
    return number / best


def machine() -> list[str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    return [
        f"CPU: {model}; nproc {os.cpu_count()}, pinned to {affinity} CPU(s)",
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"bitstruct {version('bitstruct')}, recordclass {version('recordclass')}, "
        f"dnspython {version('dnspython')}",
    ]


def command() -> str:
    """The command line, with the CPU pinning it ran under written as taskset."""
    argv = ["python", *sys.argv]
    if hasattr(os, "sched_getaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < (os.cpu_count() or 0):
            argv = ["taskset", "-c", ",".join(map(str, cpus)), *argv]
    return shlex.join(argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="best of this many runs")
    args = parser.parse_args()

    print("command: " + command())
    for line in machine():
        print(line)
    print()
    header = f"{'message':<10} {'bytes':>5} {'operation':<6} {'ours msg/s':>11} "
    header += f"{'dnspython msg/s':>16} {'ours/dnspython':>15}"
    print(header)
    print("-" * len(header))
    for label, build in (("referral", referral), ("answer", answer)):
        dmsg = build()
        wire = dmsg.to_wire()
        ours = parse_message(wire)
        # Sanity: both sides see the same thing, and our output is as small as dnspython's.
        mine = write_message(ours)
        assert dns.message.from_wire(mine) == dmsg, label
        cases = (
            ("parse", lambda w=wire: parse_message(w), lambda w=wire: dns.message.from_wire(w)),
            ("write", lambda m=ours: write_message(m), lambda m=dmsg: m.to_wire()),
        )
        for op, fast, ref in cases:
            a = rate(fast, args.repeat)
            b = rate(ref, args.repeat)
            print(f"{label:<10} {len(wire):>5} {op:<6} {a:>11,.0f} {b:>16,.0f} {a / b:>14.2f}x")
        if len(mine) != len(wire):
            print(f"  note: our {label} is {len(mine)} bytes, dnspython's {len(wire)}")


if __name__ == "__main__":
    main()
