"""CPU per upstream exchange of the transport (resolver.net), in-process: a socket per
query against a reused one, cookies on and off.

    ../shared/tools/offline python benchmarks/bench_transport.py [--exchanges 20000]
    PYTHONPATH=/tmp/before ../shared/tools/offline python benchmarks/bench_transport.py

(the second, with an older tree unpacked there by ``git archive COMMIT resolver | tar -x
-C /tmp/before``, measures that code the same way; an option it does not know is
skipped).  An ``UpstreamTransport`` asks a UDP echo server (a process pinned to CPU 0;
this one is pinned to CPU 1) for the same name, one exchange at a time; the figure is
``time.process_time`` per exchange after 500 of warm-up, so the server's CPU is not
counted.  Each configuration runs in a fresh process, three rounds alternated.
"""

from __future__ import annotations

import argparse
import inspect
import os
import socket
import subprocess
import sys
import time

SERVER = "127.77.5.1"
CONFIGURATIONS = {
    "reused socket (16 uses), no cookies": {"max_uses": 16, "cookies": False},
    "socket per query, no cookies": {"max_uses": 1, "cookies": False},
    "socket per query, cookies (the default)": {"max_uses": 1},
}


def echo_server(port: int) -> None:
    """Answer every query with itself as a response (QR set): enough for the transport."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((SERVER, port))
        while True:
            data, peer = sock.recvfrom(65535)
            sock.sendto(data[:2] + bytes([data[2] | 0x80]) + data[3:], peer)


def measure(port: int, exchanges: int, options: dict[str, object]) -> float | None:
    import uvloop

    from resolver.net.transport import UpstreamTransport

    known = inspect.signature(UpstreamTransport).parameters
    # An older transport without an option has that feature off: fine when off is asked.
    options = {key: value for key, value in options.items() if key in known or value}
    if any(key not in known for key in options):
        return None

    try:  # the network contract's one argument since the request pipeline (issue 22)
        from resolver.net.contract import Query
    except ImportError:  # an older tree: exchange(address, name, type, timeout)
        query: tuple[object, ...] = (SERVER, "www.example.com.", 1, 2.0)
    else:
        query = (Query(SERVER, "www.example.com.", 1, 2.0),)

    async def run() -> float:
        upstream = UpstreamTransport(port=port, **options)  # type: ignore[arg-type]
        for _ in range(500):
            await upstream.exchange(*query)
        started = time.process_time()
        for _ in range(exchanges):
            await upstream.exchange(*query)
        return (time.process_time() - started) / exchanges * 1e6

    return uvloop.run(run())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--exchanges", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    port = 5399
    if args.child:
        figure = measure(port, args.exchanges, CONFIGURATIONS[args.child])
        print("skipped" if figure is None else f"{figure:.1f}")
        return 0
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    server = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c",
                               f"from benchmarks.bench_transport import echo_server; "
                               f"echo_server({port})"], cwd=top)  # fmt: skip
    time.sleep(0.5)
    try:
        for round_ in range(1, args.rounds + 1):
            for name in CONFIGURATIONS:
                done = subprocess.run(["taskset", "-c", "1", sys.executable, __file__,
                                       "--exchanges", str(args.exchanges), "--child", name],
                                      capture_output=True, text=True, check=True)  # fmt: skip
                print(f"round {round_}: {name}: {done.stdout.strip()} us CPU per exchange",
                      flush=True)
    finally:
        server.kill()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
