"""A generated DNS hierarchy for the cold-cache benchmark: N zones, half glueless.

::

    .             127.9.0.1   a.root-servers.net (the only root hint)
    bench.        127.9.1.1   delegates z0.bench. ... z{N-1}.bench.
    test.         127.9.1.2   delegates hosting.test. (with glue)
    hosting.test. 127.9.3.1   addresses of the glueless zones' name servers
    z{even}.bench 127.9.2.1   NS ns.z{i}.bench. with glue in bench.
    z{odd}.bench  127.9.2.2   NS ns-{i}.hosting.test., no glue: a sub-lookup per zone

Each zone has ``www`` A; the benchmark asks ``www.z{i}.bench. A`` once per zone.
Once ``bench.`` and ``hosting.test.`` are cached, a zone with glue costs two
upstream queries (the bench referral, the answer) and a glueless one three (plus
the name server's address).

The zone files are written for NSD; :func:`roles` describes which server serves
which zone, in the same form as the test lab's topology.
"""

from __future__ import annotations

from pathlib import Path

from resolver.lab.topology import ServerRole

ROOT_ADDRESS = "127.9.0.1"
BENCH_TLD = "127.9.1.1"
TEST_TLD = "127.9.1.2"
HOSTING = "127.9.3.1"
GLUED_SERVER = "127.9.2.1"
GLUELESS_SERVER = "127.9.2.2"
TTL = 3600

_SOA = "@ {ttl} IN SOA ns{origin} hostmaster{origin} 1 3600 900 604800 300\n"


MEMORY_ZONE = "mem.bench."  # a wildcard: as many distinct names as the memory run needs


def memory_names(count: int) -> list[str]:
    return [f"n{i}.{MEMORY_ZONE}" for i in range(count)]


def zone_name(i: int) -> str:
    return f"z{i}.bench."


def question_names(count: int) -> list[str]:
    return [f"www.{zone_name(i)}" for i in range(count)]


def hints_text() -> str:
    return (
        f".                    {TTL * 1000} NS a.root-servers.net.\n"
        f"a.root-servers.net.  {TTL * 1000} A  {ROOT_ADDRESS}\n"
    )


def _header(origin: str) -> str:
    suffix = origin if origin == "." else "." + origin
    return f"$ORIGIN {origin}\n$TTL {TTL}\n" + _SOA.format(ttl=TTL, origin=suffix)


def write_zones(count: int, directory: Path) -> dict[str, Path]:
    """Write every zone file; returns origin -> file."""
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def write(origin: str, body: str) -> None:
        path = directory / f"{origin.rstrip('.') or 'root'}.zone"
        path.write_text(_header(origin) + body)
        files[origin] = path

    write(".", (
        "@ NS a.root-servers.net.\n"
        f"a.root-servers.net. A {ROOT_ADDRESS}\n"
        f"bench. NS ns.nic.bench.\nns.nic.bench. A {BENCH_TLD}\n"
        f"test. NS ns.nic.test.\nns.nic.test. A {TEST_TLD}\n"
    ))  # fmt: skip
    bench = [f"@ NS ns.nic.bench.\nns.nic A {BENCH_TLD}\n"]
    hosting = [f"@ NS ns.hosting.test.\nns A {HOSTING}\n"]
    for i in range(count):
        origin = zone_name(i)
        if i % 2 == 0:
            bench.append(f"z{i} NS ns.z{i}\nns.z{i} A {GLUED_SERVER}\n")
            write(origin, f"@ NS ns\nns A {GLUED_SERVER}\nwww A 192.0.2.{i % 250 + 1}\n")
        else:
            bench.append(f"z{i} NS ns-{i}.hosting.test.\n")
            hosting.append(f"ns-{i} A {GLUELESS_SERVER}\n")
            write(origin, f"@ NS ns-{i}.hosting.test.\nwww A 198.51.100.{i % 250 + 1}\n")
    bench.append(f"mem NS ns.mem\nns.mem A {GLUED_SERVER}\n")
    write("bench.", "".join(bench))
    write("test.", f"@ NS ns.nic.test.\nns.nic A {TEST_TLD}\n"
                   f"hosting NS ns.hosting\nns.hosting A {HOSTING}\n")  # fmt: skip
    write("hosting.test.", "".join(hosting))
    write(MEMORY_ZONE, f"@ NS ns\nns A {GLUED_SERVER}\n* A 192.0.2.1\n")
    return files


def roles(count: int) -> tuple[ServerRole, ...]:
    even = tuple(zone_name(i) for i in range(0, count, 2))
    odd = tuple(zone_name(i) for i in range(1, count, 2))
    return (
        ServerRole("a.root-servers.net.", (ROOT_ADDRESS,), (".",)),
        ServerRole("ns.nic.bench.", (BENCH_TLD,), ("bench.",)),
        ServerRole("ns.nic.test.", (TEST_TLD,), ("test.",)),
        ServerRole("ns.hosting.test.", (HOSTING,), ("hosting.test.",)),
        ServerRole("glued.bench.", (GLUED_SERVER,), (*even, MEMORY_ZONE)),
        ServerRole("glueless.bench.", (GLUELESS_SERVER,), odd),
    )
