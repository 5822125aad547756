"""Unbound as the reference resolver, and our resolver, as processes on a lab's hints.

Unbound runs with one thread and the iterator module only (no DNSSEC validation,
no trust anchor), ``do-not-query-localhost: no`` so it may walk 127.x.y.z
servers, and the lab's root hints.  Given a trust anchor (a signed lab's root KSK)
it validates instead: ``module-config: "validator iterator"``, that file as its
``trust-anchor-file:`` (no automatic RFC 5011 updates) and Extended DNS Errors on.
Both run in the foreground, so the PIDs are ours to end.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.message
import dns.query

from resolver.lab.nsd import find_tool

READY_TIMEOUT = 15.0


def unbound_binary() -> str | None:
    return find_tool("unbound")


NODEFAULT_ZONES: tuple[str, ...] = (
    # Documentation networks (RFC 5737): Unbound answers their reverse zones itself with
    # NXDOMAIN (RFC 6303 default local zones); the lab delegates 2.0.192.in-addr.arpa.
    "2.0.192.in-addr.arpa.",
    "100.51.198.in-addr.arpa.",
    "113.0.203.in-addr.arpa.",
    # RFC 6761 "test.": a default static zone in Unbound; generated hierarchies use it.
    "test.",
)
"""Zones Unbound would answer locally by default, handed back to the hierarchy."""


def nodefault_flags(zones: tuple[str, ...] = NODEFAULT_ZONES) -> list[str]:
    """The same zones handed back to the hierarchy by our resolver: ``--nodefault`` flags
    (its default local zones are Unbound's, RFC 6303 and RFC 6761)."""
    return [flag for zone in zones for flag in ("--nodefault", zone)]


def unbound_conf(
    workdir: Path,
    hints: Path,
    port: int,
    cache_entries: int = 0,
    nodefault_zones: tuple[str, ...] = NODEFAULT_ZONES,
    trust_anchor: Path | None = None,
    clauses: str = "",
) -> str:
    """Unbound as a plain iterative resolver on ``hints``, listening on 127.0.0.1@port;
    validating from ``trust_anchor`` (DS or DNSKEY lines) when one is given; ``clauses``
    (``forward-zone:`` and the like) are added after the ``server:`` clause."""
    extra = validator_conf(trust_anchor)
    if cache_entries:
        # Room for the benchmark's names without eviction (sizes in bytes).
        extra += "    msg-cache-size: 256m\n    rrset-cache-size: 512m\n"
    local = "".join(f'    local-zone: "{zone}" nodefault\n' for zone in nodefault_zones)
    return (
        "server:\n"
        f"    interface: 127.0.0.1@{port}\n"
        f"    port: {port}\n"
        "    do-ip6: no\n"
        "    do-daemonize: no\n"
        '    chroot: ""\n'
        '    username: ""\n'
        f'    directory: "{workdir}"\n'
        f'    pidfile: "{workdir}/unbound.pid"\n'
        f'    logfile: "{workdir}/unbound.log"\n'
        "    use-syslog: no\n"
        "    verbosity: 1\n"
        "    num-threads: 1\n"
        # Iterator only unless validating: no trust anchor, no DNSSEC (the lab is unsigned).
        f'    module-config: "{"validator iterator" if trust_anchor else "iterator"}"\n'
        f'    root-hints: "{hints}"\n'
        "    do-not-query-localhost: no\n"  # every lab server is on 127.x.y.z
        "    access-control: 127.0.0.0/8 allow\n"
        "    minimal-responses: yes\n"
        # Our resolver asks every server the full question; so does Unbound here, so
        # both walk the same path and a difference is one of logic, not of query
        # pattern (QNAME minimisation, RFC 9156, is optional).  The answers would be
        # the same with it: the lab has no broken empty non-terminals.
        "    qname-minimisation: no\n"
        "    harden-referral-path: no\n"
        "    prefetch: no\n"
        # A cold walk that first tries the dead root hint c.root-servers.net takes about
        # 2.3 s (Unbound waits 376 + 752 ms per try even on ICMP unreachable); with the
        # default discard-timeout (1900 ms) Unbound then drops the finished reply,
        # counting on the client to have retried.  Always answer instead.
        "    discard-timeout: 0\n"
        f"{local}"
        f"{extra}"
        "remote-control:\n"
        "    control-enable: no\n"
        f"{clauses}"
    )


def validator_conf(trust_anchor: Path | None) -> str:
    """Unbound's validator settings for a signed lab (nothing for an unsigned one)."""
    if trust_anchor is None:
        return ""
    return (
        # A static anchor: the lab's keys are made at each start, no RFC 5011 rollover.
        f'    trust-anchor-file: "{trust_anchor}"\n'
        # RFC 8914 codes on SERVFAIL for bogus data, as ours gives them.
        "    ede: yes\n"
        # Why an answer is bogus, in unbound.log (one line per bogus answer).
        "    val-log-level: 2\n"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` for UDP and TCP just now (the lab's, the tests' and the
    benchmarks' one way to pick a port)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port


class ServerProcess:
    """A DNS server process started in the foreground; ready once it answers a query."""

    name = "process"

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir = Path(workdir)
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> ServerProcess:
        """Start and wait until it answers.  A port found taken when the process binds it
        (another process's random source port, say, between the caller choosing the port
        and the bind) is replaced by another free one, twice at most: read :attr:`port`
        after starting."""
        for _attempt in range(2):
            try:
                return self._start()
            except RuntimeError as error:
                if "already in use" not in str(error):
                    raise
                self.port = free_port()
        return self._start()

    def _start(self) -> ServerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / "stderr.log").open("wb") as stderr:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        # A CHAOS-class question: answered (or refused) locally, nothing goes upstream.
        query = dns.message.make_query("version.bind.", "TXT", "CH")
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log()}")
            try:
                dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.3)
                return self
            except (dns.exception.Timeout, ConnectionError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{self.name} did not start: {self.log()}") from None
                time.sleep(0.05)

    def log(self) -> str:
        texts = [p.read_text(errors="replace") for p in self.workdir.glob("*.log")]
        return " | ".join(t.strip() for t in texts if t.strip())[-3000:]

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        status = self.process.returncode
        self.process = None
        return status

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class UnboundProcess(ServerProcess):
    name = "unbound"

    def __init__(
        self,
        workdir: Path,
        hints: Path,
        port: int,
        cache_entries: int = 0,
        nodefault_zones: tuple[str, ...] = NODEFAULT_ZONES,
        trust_anchor: Path | None = None,
        clauses: str = "",
    ) -> None:
        super().__init__(workdir, port)
        self.hints = hints
        self.cache_entries = cache_entries
        self.nodefault_zones = nodefault_zones
        self.trust_anchor = trust_anchor
        self.clauses = clauses  # forward zones and the like (see unbound_conf)

    def command(self) -> list[str]:
        conf = self.workdir / "unbound.conf"
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            unbound_conf(
                self.workdir,
                self.hints,
                self.port,
                self.cache_entries,
                self.nodefault_zones,
                self.trust_anchor,
                self.clauses,
            )
        )
        return [unbound_binary() or "unbound", "-d", "-c", str(conf)]


class OurResolver(ServerProcess):
    """``python -m resolver`` on the given hints, upstream port 53 (the NSD hierarchy)."""

    name = "resolver"

    def __init__(
        self, workdir: Path, hints: Path, port: int, *extra: str, upstream_port: int = 53
    ) -> None:
        super().__init__(workdir, port)
        self.hints = hints
        self.extra = extra
        self.upstream_port = upstream_port

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "resolver", "--port", str(self.port),
            "--root-hints", str(self.hints), "--upstream-port", str(self.upstream_port),
            "--log-format", "json", "--control-socket", str(self.workdir / "control.sock"),
            *nodefault_flags(), *self.extra,
        ]  # fmt: skip

    def start(self) -> ServerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        return super().start()
