"""The encrypted listeners in the running resolver (``python -m resolver --tls-port
--https-port``) on the lab: real clients, the counters by transport, the reload of the
certificate on SIGHUP without dropping connections, several workers, and the start-up
errors (one line, status 2)."""

from __future__ import annotations

import base64
import json
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import pytest
from tls_fixtures import SERVER_NAME, client_context, make_certificates

from resolver.lab.nsd import find_tool
from resolver.lab.topology import hints_text
from resolver.lab.unbound import free_port, nodefault_flags
from scripts.reliability.tls_lab import CertificateFiles

START_TIMEOUT = 15.0


@pytest.fixture
def certificates(tmp_path: Path) -> CertificateFiles:
    return make_certificates(tmp_path / "certificates")


class Running:
    def __init__(
        self, process: subprocess.Popen[bytes], log: Path, control: Path, ports: dict[str, int]
    ) -> None:
        self.process, self.log, self.control, self.ports = process, log, control, ports

    def events(self, name: str) -> list[dict[str, object]]:
        lines = [
            json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")
        ]
        return [e for e in lines if e.get("event") == name]

    def wait_for(self, name: str, count: int = 1) -> list[dict[str, object]]:
        deadline = time.monotonic() + START_TIMEOUT
        while len(found := self.events(name)) < count:
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"no {name}: {self.log.read_text()}"
            time.sleep(0.05)
        return found

    def stats(self) -> dict[str, float]:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "resolver.ops.control",
                "--control-socket",
                str(self.control),
                "stats",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        return {k: float(v) for k, _, v in (line.partition("=") for line in done.stdout.split())}


@pytest.fixture
def running(
    tmp_path: Path, certificates: CertificateFiles, lab: object, request: pytest.FixtureRequest
) -> Iterator[Running]:
    hints = tmp_path / "lab.hints"
    hints.write_text(hints_text())
    ports = {"dns": free_port(), "tls": free_port(), "https": free_port()}
    extra = getattr(request, "param", [])
    log, control = tmp_path / "resolver.log", tmp_path / "control.sock"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "resolver",
                "--port",
                str(ports["dns"]),
                "--root-hints",
                str(hints),
                "--upstream-port",
                "5300",
                "--log-format",
                "json",
                "--control-socket",
                str(control),
                "--tls-port",
                str(ports["tls"]),
                "--https-port",
                str(ports["https"]),
                "--tls-certificate",
                str(certificates.certificate),
                "--tls-key",
                str(certificates.key),
                "--query-log",
                *nodefault_flags(),
                *extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        resolver = Running(process, log, control, ports)
        resolver.wait_for("started", 2 if "--workers" in extra else 1)
        yield resolver
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)
    assert "Traceback" not in log.read_text()


def dot_ask(
    port: int, context: ssl.SSLContext, name: str, qid: int = 1, sock: ssl.SSLSocket | None = None
) -> dns.message.Message:
    own = sock is None
    if sock is None:
        sock = context.wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=SERVER_NAME
        )
    query = dns.message.make_query(name, "A")
    query.id = qid
    wire = query.to_wire()
    sock.sendall(struct.pack("!H", len(wire)) + wire)
    data = b""
    while len(data) < 2 or len(data) < 2 + int.from_bytes(data[:2], "big"):
        chunk = sock.recv(65536)
        assert chunk, "closed"
        data += chunk
    if own:
        sock.close()
    return dns.message.from_wire(data[2:])


def addresses(reply: dns.message.Message) -> set[str]:
    return {rr.to_text() for rrset in reply.answer for rr in rrset if rrset.rdtype == 1}


def test_dot_and_doh_on_the_lab(running: Running, certificates: CertificateFiles) -> None:
    context = client_context(certificates.ca)
    assert addresses(dot_ask(running.ports["tls"], context, "www.google.com.")) == {"198.51.100.14"}
    curl = find_tool("curl")
    assert curl is not None, "curl is missing (apt-get install curl)"
    query = dns.message.make_query("www.chain.com.", "A")
    query.id = 0
    url = f"https://127.0.0.1:{running.ports['https']}/dns-query?dns=" + base64.urlsafe_b64encode(
        query.to_wire()
    ).decode().rstrip("=")
    done = subprocess.run(
        [curl, "-s", "-f", "--cacert", str(certificates.ca), url],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert addresses(dns.message.from_wire(done.stdout)) == {"198.51.100.7"}
    stats = running.stats()
    assert stats["queries.transport.tls"] == 1 and stats["queries.transport.https"] == 1
    assert stats["tls_handshakes.transport.tls"] == 1
    assert stats["tls_handshakes.transport.https"] == 1
    assert stats["https_responses.status.200"] == 1
    logged = {e["transport"] for e in running.wait_for("query", 2)}
    assert logged == {"tls", "https"}
    (listening,) = running.events("encrypted_listening")
    assert (listening["tls_port"], listening["https_port"]) == (
        running.ports["tls"],
        running.ports["https"],
    )


def test_sighup_reloads_the_certificate_without_dropping_connections(
    running: Running, certificates: CertificateFiles, tmp_path: Path
) -> None:
    """The files are renewed in place (as certbot does) and SIGHUP sent: a connection
    opened before keeps answering, new ones see the new certificate.  A key that does not
    match its certificate is refused by the reload, and the pair in force stays."""
    old = client_context(certificates.ca)
    sock = old.wrap_socket(
        socket.create_connection(("127.0.0.1", running.ports["tls"])), server_hostname=SERVER_NAME
    )
    assert addresses(dot_ask(0, old, "www.google.com.", 1, sock)) == {"198.51.100.14"}
    renewed = make_certificates(tmp_path / "renewed")
    shutil.copy(renewed.certificate, certificates.certificate)
    shutil.copy(renewed.key, certificates.key)
    running.process.send_signal(signal.SIGHUP)
    running.wait_for("certificate_reloaded")
    assert addresses(dot_ask(0, old, "www.chain.com.", 2, sock)) == {"198.51.100.7"}
    new = client_context(renewed.ca)
    assert addresses(dot_ask(running.ports["tls"], new, "www.google.com.")) == {"198.51.100.14"}
    with pytest.raises(ssl.SSLCertVerificationError):
        dot_ask(running.ports["tls"], old, "www.google.com.")

    stranger = make_certificates(tmp_path / "stranger")
    shutil.copy(stranger.key, certificates.key)  # the key of another certificate
    running.process.send_signal(signal.SIGHUP)
    (failed,) = running.wait_for("reload_failed")
    assert "key does not belong to the certificate" in str(failed["error"])
    assert addresses(dot_ask(running.ports["tls"], new, "www.google.com.")) == {"198.51.100.14"}
    assert addresses(dot_ask(0, old, "www.google.com.", 3, sock)) == {"198.51.100.14"}
    sock.close()


@pytest.mark.parametrize("running", [["--workers", "2"]], indirect=True)
def test_workers_share_the_encrypted_ports(
    running: Running, certificates: CertificateFiles
) -> None:
    """Each worker has its own sockets (SO_REUSEPORT) and the contexts of the first process
    (so a session ticket from one resumes with the other)."""
    context = client_context(certificates.ca)
    session = None
    resumed = 0
    for i in range(20):
        sock = context.wrap_socket(
            socket.create_connection(("127.0.0.1", running.ports["tls"]), timeout=10),
            server_hostname=SERVER_NAME,
            session=session,
        )
        assert addresses(dot_ask(0, context, "www.google.com.", i, sock)) == {"198.51.100.14"}
        resumed += sock.session_reused
        session = sock.session
        sock.close()
    assert resumed == 19
    stats = running.stats()
    assert stats["queries.transport.tls"] == 20 and stats["processes"] == 2
    assert stats["tls_handshakes.result.resumed"] == 19


def start_failure(tmp_path: Path, *args: str) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "resolver",
            "--port",
            str(free_port()),
            "--root-hints",
            str(tmp_path / "none.hints"),
            "--control-socket",
            "none",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=20,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
    return done.stderr.strip()


def test_start_up_errors_are_one_line(tmp_path: Path, certificates: CertificateFiles) -> None:
    (tmp_path / "none.hints").write_text(hints_text())
    assert start_failure(tmp_path, "--tls-port", "2853") == (
        "resolver: tls-port needs tls-certificate and tls-key"
    )
    other = make_certificates(tmp_path / "other")
    pair = ["--tls-certificate", str(certificates.certificate), "--tls-key", str(other.key)]
    assert "the key does not belong to the certificate" in start_failure(
        tmp_path, "--https-port", str(free_port()), *pair
    )
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    good = ["--tls-certificate", str(certificates.certificate), "--tls-key", str(certificates.key)]
    message = start_failure(tmp_path, "--tls-port", str(port), *good)
    taken.close()
    assert message == (
        f"resolver: cannot listen on 127.0.0.1 port {port} (DNS over TLS): Address already in use"
    )


def test_readme_encrypted_block(tmp_path: Path) -> None:
    """The README's DoT/DoH tour (the ``encrypted`` block) runs as written, from this
    checkout, with this interpreter's commands first on PATH."""
    import os
    import re

    root = Path(__file__).resolve().parent.parent
    blocks = re.findall(r"^<!-- readme-test: ([\w-]+) -->\n```[a-z]*\n(.*?)^```$",
                        (root / "README.md").read_text(), re.M | re.S)  # fmt: skip
    (block,) = [text for name, text in blocks if name == "encrypted"]
    for tool in ("kdig", "unshare", "ip"):
        if find_tool(tool) is None and shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing (apt-get install knot-dnsutils util-linux iproute2)")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    done = subprocess.run(["sh", "-c", block], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "198.51.100.14" in done.stdout and "198.51.100.7" in done.stdout
