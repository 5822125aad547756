"""What every reliability script and test needs: the resolver as a process (its counters,
memory and descriptors read from outside), and small raw DNS clients.

Everything here talks to 127.x.y.z only; run inside the offline namespace
(/work/shared/tools/offline, or scripts/test.sh for the tests).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dns.flags
import dns.message

from resolver.lab.unbound import free_port
from resolver.net.sockets import DEFAULT_MAX_AGE

# Idle upstream sockets are kept for reuse up to DEFAULT_MAX_AGE and swept at most that
# long after: a count of descriptors is the idle level only this long after the last query.
POOL_SETTLE = 2 * DEFAULT_MAX_AGE + 0.5

START_TIMEOUT = 15.0
ROOT = Path(__file__).resolve().parents[2]


def port_53_problem(address: str = "127.8.0.1") -> str | None:
    """Why port 53 cannot be bound on ``address`` (None: it can): the upstream labs need
    root in a network namespace, as scripts/test.sh and the offline wrapper give."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((address, 53))
    except OSError as error:
        return f"cannot bind {address}:53 ({error}): needs root in a network namespace"
    return None


class Resolver:
    """``python -m resolver`` in a subprocess, its JSON log in a file, its control socket
    used for ``stats``; memory and descriptors read from /proc."""

    def __init__(
        self,
        directory: Path,
        hints: Path,
        upstream_port: int,
        *flags: str,
        port: int | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        """``max_in_flight`` replaces resolver.serve.listener.MAX_IN_FLIGHT in the process
        (it has no option: a test of the overload path needs a bound it can reach)."""
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.port = port or free_port()
        self.control = directory / "control.sock"
        self.log_path = directory / "resolver.log"
        start = ["-m", "resolver"]
        if max_in_flight is not None:
            start = ["-c", "import sys, resolver.serve.listener as listener; "
                     f"listener.MAX_IN_FLIGHT = {int(max_in_flight)}; "
                     "from resolver.ops.cli import main; sys.exit(main(sys.argv[1:]))"]
        self.command = [
            sys.executable, *start, "--port", str(self.port),
            "--root-hints", str(hints), "--upstream-port", str(upstream_port),
            "--log-format", "json", "--control-socket", str(self.control), *flags,
        ]  # fmt: skip
        with self.log_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=stderr,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while not any(e.get("event") == "started" for e in self.events()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                self.process.wait()
                raise RuntimeError(f"resolver did not start: {self.log_path.read_text()}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.process.pid

    def events(self) -> list[dict[str, Any]]:
        entries = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                entries.append({"event": "not-json", "line": line})
        return entries

    def stats(self) -> dict[str, float]:
        """``resolver-control stats`` as a dictionary."""
        done = subprocess.run(
            [sys.executable, "-m", "resolver.ops.control", "--control-socket",
             str(self.control), "stats"],
            capture_output=True, text=True, timeout=30, check=False, cwd=ROOT,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"resolver-control stats: {done.stdout} {done.stderr}")
        values = {}
        for line in done.stdout.splitlines():
            key, _, value = line.partition("=")
            if value:
                values[key] = float(value)
        return values

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def sockets(self) -> int:
        fd_dir = f"/proc/{self.pid}/fd"
        count = 0
        for fd in os.listdir(fd_dir):
            try:
                count += os.readlink(f"{fd_dir}/{fd}").startswith("socket:")
            except OSError:
                continue  # closed meanwhile
        return count

    def stop(self) -> int:
        """SIGTERM, then the exit status (SIGKILL after 10 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> Resolver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- clients -------------------------------------------------------------------------------


def query(name: str, rdtype: str = "A", qid: int = 0, edns: bool = False) -> bytes:
    message = dns.message.make_query(name, rdtype, use_edns=0 if edns else False)
    message.flags = dns.flags.RD
    message.id = qid
    return message.to_wire()


def frame(packet: bytes) -> bytes:
    """A TCP message: the 2-byte length, then the packet (RFC 1035 section 4.2.2)."""
    return struct.pack("!H", len(packet)) + packet


def udp_ask(
    port: int, packet: bytes, source: str = "127.0.0.1", timeout: float = 5.0
) -> bytes | None:
    """One datagram from ``source``; the reply with our ID, or None after ``timeout``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(timeout)
        sock.sendto(packet, ("127.0.0.1", port))
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = sock.recv(65535)
            except TimeoutError:
                return None
            if reply[:2] == packet[:2]:
                return reply
            sock.settimeout(max(deadline - time.monotonic(), 0.001))


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed early")
        data += chunk
    return data


def tcp_ask(port: int, packet: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(frame(packet))
        (length,) = struct.unpack("!H", recv_exactly(sock, 2))
        return recv_exactly(sock, length)


def rcode(reply: bytes) -> int:
    return reply[3] & 0x0F


def truncated(reply: bytes) -> bool:
    return bool(reply[2] & 0x02)


def percentile(values: Iterable[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)]
