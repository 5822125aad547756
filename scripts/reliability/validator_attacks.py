"""CPU per hostile question: KeyTrap and NSEC3 hashing against this resolver and Unbound.

Serves the hostile signed world of ``resolver.lab.forged_attacks`` on port 53 of its
127.9.x.1 addresses, starts a validating Unbound and this resolver on it (and, with
``--before DIR``, the resolver's code found in DIR, say an older checkout's ``resolver``
package extracted with ``git archive``), and for each attack asks ``--questions``
distinct hostile names one after the other, reading each process's CPU time (user +
system, /proc/PID/stat) before and after.  Then it asks the same hostile questions
``--concurrent`` at a time while another client asks a cached honest question every
50 ms, and reports how long that client waited (the worst and the median): whether
others keep being answered meanwhile.

Run it as root in a namespace with only loopback (it binds port 53 on 127.9.x.1):

    unshare -rn sh -c 'ip link set lo up &&
        .venv/bin/python scripts/reliability/validator_attacks.py'
    mkdir /tmp/before && git archive 751e899 resolver | tar -x -C /tmp/before  # pre-issue 20
    unshare -rn sh -c 'ip link set lo up &&
        .venv/bin/python scripts/reliability/validator_attacks.py --before /tmp/before'
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import dns.asyncquery  # noqa: E402
import dns.exception  # noqa: E402
import dns.flags  # noqa: E402
import dns.message  # noqa: E402
import dns.rcode  # noqa: E402

from resolver.lab import forged_attacks  # noqa: E402
from resolver.lab.forged_server import ForgedServers  # noqa: E402
from resolver.lab.unbound import OurResolver, ServerProcess, UnboundProcess, free_port  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
HONEST = ("ok.replay.", "A")
# The code of another checkout, not the installed one: an editable install's finder would
# win over PYTHONPATH, so it is taken out of sys.meta_path before the service starts.
BOOT = (
    "import runpy, sys; "
    "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in type(f).__module__]; "
    "sys.argv[0] = 'resolver'; runpy.run_module('resolver', run_name='__main__')"
)


class Before(OurResolver):
    """This resolver's service from another copy of the package (``--before``)."""

    def __init__(self, code: Path, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.code = code

    def command(self) -> list[str]:
        command = super().command()
        return [command[0], "-c", BOOT, *command[3:]]  # drop "-m resolver"

    def start(self) -> ServerProcess:
        os.environ["PYTHONPATH"] = str(self.code)
        try:
            return super().start()
        finally:
            del os.environ["PYTHONPATH"]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


async def ask(port: int, qname: str, qtype: str = "A") -> tuple[str, float]:
    query = dns.message.make_query(qname, qtype, want_dnssec=True)
    query.flags |= dns.flags.AD
    start = time.monotonic()
    try:
        reply = await dns.asyncquery.tcp(query, "127.0.0.1", port=port, timeout=30)
        rcode = dns.rcode.to_text(reply.rcode())
    except (TimeoutError, OSError, EOFError, dns.exception.DNSException) as error:
        rcode = type(error).__name__
    return rcode, time.monotonic() - start


def hostile_names(attack: str, count: int, offset: int) -> list[str]:
    if attack == "keytrap":
        return [f"q{offset + i}.keytrap." for i in range(count)]
    return [forged_attacks.deep_name(f"q{offset + i}") for i in range(count)]


async def measure(name: str, process: ServerProcess, questions: int, concurrent: int) -> None:
    assert process.process is not None
    pid = process.process.pid
    await ask(process.port, *HONEST)  # the chain of trust and the honest name cached
    for attack in ("keytrap", "nsec3"):
        await ask(process.port, hostile_names(attack, 1, 10_000)[0])  # the zone's keys
        before = cpu_seconds(pid)
        started = time.monotonic()
        rcodes = [(await ask(process.port, qname))[0]
                  for qname in hostile_names(attack, questions, 0)]  # fmt: skip
        wall = time.monotonic() - started
        per_question = (cpu_seconds(pid) - before) / questions * 1000
        waits = await honest_waits(process.port, hostile_names(attack, concurrent, 20_000))
        print(f"{name:16} {attack:8} {questions:3} questions  CPU {per_question:8.1f} ms each"
              f"  wall {wall / questions * 1000:8.1f} ms each  {sorted(set(rcodes))}"
              f"  honest client during {concurrent} at once: median "
              f"{statistics.median(waits) * 1000:.0f} ms, worst {max(waits) * 1000:.0f} ms",
              flush=True)  # fmt: skip


async def honest_waits(port: int, hostile: list[str]) -> list[float]:
    """How long a cached honest question took, asked every 50 ms while ``hostile`` ones
    are all in flight."""
    waits: list[float] = []
    attack = asyncio.gather(*(ask(port, qname) for qname in hostile))
    while not attack.done():
        waits.append((await ask(port, *HONEST))[1])
        await asyncio.sleep(0.05)
    await attack
    return waits or [0.0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--concurrent", type=int, default=10)
    parser.add_argument("--before", type=Path, help="a copy of an older resolver package")
    args = parser.parse_args(argv)
    world = forged_attacks.build()
    work = Path(tempfile.mkdtemp(prefix="validator-attacks-"))
    hints, anchor = work / "root.hints", work / "anchor"
    hints.write_text(world.hints_text())
    anchor.write_text(world.anchor_text())
    ours_flags = ("--trust-anchor-file", str(anchor))
    resolvers: list[tuple[str, ServerProcess]] = [
        ("unbound 1.17", UnboundProcess(work / "unbound", hints, free_port(), trust_anchor=anchor)),
        ("ours", OurResolver(work / "ours", hints, free_port(), *ours_flags)),
    ]  # fmt: skip
    if args.before is not None:
        before = Before(args.before.resolve(), work / "before", hints, free_port(),
                        *ours_flags)  # fmt: skip
        resolvers.append(("ours (before)", before))
    with ForgedServers(world, 53):
        for name, process in resolvers:
            with process:
                asyncio.run(measure(name, process, args.questions, args.concurrent))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
