"""TLS towards forwarders (resolver.net.tls_upstream): exchanges with our own DNS over TLS
listener as the peer (in-process, over a scripted engine), then the whole resolver
forwarding over TLS to another resolver of ours on the lab.  Against Unbound serving
DNS over TLS: tests/interop/test_encrypted.py."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest
import structlog
from tls_fixtures import SERVER_NAME, EncryptedServer, ScriptedEngine, make_certificates

import resolver.net.tls_upstream as upstream_module
import resolver.serve.tcp as tcp_module
from resolver.iterate.request import Transport
from resolver.lab.topology import hints_text
from resolver.lab.unbound import free_port, nodefault_flags
from resolver.net.contract import ExchangeFailed, Failure, Query, Reply
from resolver.net.tls_upstream import TlsForwarders, TlsServer, TlsUpstream
from resolver.serve.journal import Answered
from resolver.serve.listener import ResolverService
from resolver.wire import RRType
from resolver.wire.raw import QUERY_BLOCK, has_padding
from scripts.reliability.tls_lab import CertificateFiles


class PacketJournal:
    """A journal of the service (where dnstap plugs in) that keeps every query packet it
    is given.  (Not a subclass of the service: where the core is compiled, the service
    is a compiled class, which Python classes cannot subclass.)"""

    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def asked(self, packet: bytes, client: str, transport: Transport) -> None:
        self.packets.append(packet)

    def answered(self, done: Answered) -> None:
        pass


def recording_service() -> ResolverService:
    """The service, its packets kept by a :class:`PacketJournal` (its ``dnstap``)."""
    from resolver.cache.answers import AnswerCache

    service = ResolverService(ScriptedEngine(), AnswerCache())
    service.configure(dnstap=PacketJournal())
    return service


def forwarded(qname: str, qtype: int, timeout: float, dnssec_ok: bool = False) -> Query:
    """A question for a forwarder (RD=1), as the engine asks one; TlsUpstream ignores the
    address (the server says where)."""
    return Query("", qname, qtype, timeout, recursion_desired=True, dnssec_ok=dnssec_ok)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture
def server(certificates: CertificateFiles) -> Iterator[EncryptedServer]:
    with EncryptedServer(certificates, recording_service()) as running:
        yield running


def target(
    server: EncryptedServer, certificates: CertificateFiles, name: str = SERVER_NAME
) -> TlsServer:
    return TlsServer("127.0.0.1", server.dot_port, name, str(certificates.ca))


def records(reply: Reply) -> list[str]:
    return [rr.rdata.to_text() for rr in reply.message.answer]


def test_exchange_is_authenticated_padded_and_recursive(
    server: EncryptedServer, certificates: CertificateFiles
) -> None:
    counts: dict[str, int] = {}

    async def scenario() -> Reply:
        pool = TlsUpstream(counts)
        try:
            return await pool.exchange(
                target(server, certificates),
                forwarded("www.example.com.", RRType.A, 2.0, dnssec_ok=True),
            )
        finally:
            pool.close()

    reply = asyncio.run(scenario())
    assert records(reply) == ["192.0.2.1"] and not reply.tcp
    assert counts == {"queries": 1, "opened": 1}
    journal = server.service.dnstap
    assert isinstance(journal, PacketJournal)
    (packet,) = journal.packets
    query = dns.message.from_wire(packet)
    assert query.flags & dns.flags.RD and query.ednsflags & dns.flags.DO
    assert has_padding(packet) and len(packet) % QUERY_BLOCK == 0  # RFC 8467 section 4.1


def test_connections_are_kept_and_pipelined(
    server: EncryptedServer, certificates: CertificateFiles
) -> None:
    """100 exchanges one after the other, then 100 at once: one connection for the first,
    two for the second (64 queries in flight on one), every answer right."""
    counts: dict[str, int] = {}

    async def scenario() -> list[Reply]:
        pool = TlsUpstream(counts)
        where = target(server, certificates)
        try:
            replies = [
                await pool.exchange(where, forwarded(f"n{i}.example.", RRType.A, 2.0))
                for i in range(100)
            ]
            assert counts["opened"] == 1
            replies += await asyncio.gather(
                *(
                    pool.exchange(where, forwarded(f"slow50-{i}.example.", RRType.A, 5.0))
                    for i in range(100)
                )
            )
            return replies
        finally:
            pool.close()

    replies = asyncio.run(scenario())
    assert all(records(reply) == ["192.0.2.1"] for reply in replies)
    assert counts == {"queries": 200, "opened": 2}
    assert server.service.stats.handshakes == {(Transport.TLS, "full"): 2}


@pytest.mark.parametrize("mistake", ["wrong name", "unknown authority", "expired"])
def test_a_server_that_does_not_authenticate_fails(
    server: EncryptedServer, certificates: CertificateFiles, tmp_path: Path, mistake: str
) -> None:
    """RFC 8310 strict profile: no authentication, no exchange (and no plain fallback)."""
    where = target(server, certificates)
    if mistake == "wrong name":
        where = target(server, certificates, "other.lab.test")
    elif mistake == "unknown authority":
        stranger = make_certificates(tmp_path / "stranger")
        where = TlsServer("127.0.0.1", server.dot_port, SERVER_NAME, str(stranger.ca))
    else:
        expired = make_certificates(tmp_path / "expired", expired=True)
        server.call(server.certificate.prepare(str(expired.certificate), str(expired.key)))
        where = TlsServer("127.0.0.1", server.dot_port, SERVER_NAME, str(expired.ca))
    counts: dict[str, int] = {}

    async def scenario() -> ExchangeFailed:
        pool = TlsUpstream(counts)
        try:
            with pytest.raises(ExchangeFailed) as failed:
                await pool.exchange(where, forwarded("www.example.com.", RRType.A, 2.0))
            return failed.value
        finally:
            pool.close()

    with structlog.testing.capture_logs() as logs:
        failure = asyncio.run(scenario())
    assert failure.failure is Failure.UNREACHABLE
    assert "certificate verify failed" in failure.detail, failure.detail
    assert counts == {"queries": 1, "failed": 1}
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["tls_upstream_failed"]
    assert server.engine.calls == 0


def test_connection_closed_by_the_server_is_made_again(
    server: EncryptedServer, certificates: CertificateFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's idle timeout closes the kept connection: the next exchange opens a new
    one, without a failure."""
    monkeypatch.setattr(tcp_module, "TCP_IDLE_TIMEOUT", 0.2)
    counts: dict[str, int] = {}

    async def scenario() -> list[Reply]:
        pool = TlsUpstream(counts)
        where = target(server, certificates)
        try:
            first = await pool.exchange(where, forwarded("a.example.", RRType.A, 2.0))
            await asyncio.sleep(0.6)
            return [first, await pool.exchange(where, forwarded("b.example.", RRType.A, 2.0))]
        finally:
            pool.close()

    replies = asyncio.run(scenario())
    assert [records(r) for r in replies] == [["192.0.2.1"], ["192.0.2.1"]]
    assert counts == {"queries": 2, "opened": 2}


def test_our_idle_timeout_closes_the_connection(
    server: EncryptedServer, certificates: CertificateFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstream_module, "IDLE_TIMEOUT", 0.2)

    async def scenario() -> tuple[int, int]:
        pool = TlsUpstream()
        where = target(server, certificates)
        await pool.exchange(where, forwarded("a.example.", RRType.A, 2.0))
        before = len(pool.pools[where])
        await asyncio.sleep(0.5)
        return before, len(pool.pools[where])

    assert asyncio.run(scenario()) == (1, 0)
    deadline = time.monotonic() + 5
    while server.dot is not None and server.dot.open:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_unreachable_and_silent_servers_fail_in_time() -> None:
    """Refused: at once.  A server that accepts and never finishes the handshake: the
    exchange times out at its timeout, and the next one does too (nothing is stuck)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    closed_port = free_port()

    async def scenario() -> list[tuple[Failure, float]]:
        pool = TlsUpstream()
        outcomes = []
        try:
            for port in (closed_port, silent.getsockname()[1], silent.getsockname()[1]):
                started = time.monotonic()
                with pytest.raises(ExchangeFailed) as failed:
                    await pool.exchange(
                        TlsServer("127.0.0.1", port, SERVER_NAME),
                        forwarded("a.example.", RRType.A, 0.5),
                    )
                outcomes.append((failed.value.failure, time.monotonic() - started))
        finally:
            pool.close()
        return outcomes

    try:
        outcomes = asyncio.run(scenario())
    finally:
        silent.close()
    assert outcomes[0][0] is Failure.UNREACHABLE and outcomes[0][1] < 0.4
    for failure, seconds in outcomes[1:]:
        assert failure is Failure.TIMEOUT and 0.4 < seconds < 1.5


def test_replies_that_do_not_answer_are_ignored(certificates: CertificateFiles) -> None:
    """A reply with an ID nobody waits for, or to another question, is dropped; the right
    one, after them, is taken (RFC 5452 section 3 over TLS as over UDP)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates.certificate, certificates.key)

    async def forger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        length = int.from_bytes(await reader.readexactly(2), "big")
        query = dns.message.from_wire(await reader.readexactly(length))
        wrong_id = dns.message.make_response(query)
        wrong_id.id = (query.id + 1) % 65536
        other = dns.message.make_query("other.example.", "A")
        other.id = query.id
        wrong_question = dns.message.make_response(other)
        right = dns.message.make_response(query)
        right.answer.append(
            dns.rrset.from_text(query.question[0].name, 60, "IN", "A", "192.0.2.99")
        )
        for message in (wrong_id, wrong_question, right):
            data = message.to_wire()
            writer.write(len(data).to_bytes(2, "big") + data)
        await writer.drain()
        await reader.read()

    async def scenario() -> Reply:
        server = await asyncio.start_server(forger, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        pool = TlsUpstream()
        try:
            where = TlsServer("127.0.0.1", port, SERVER_NAME, str(certificates.ca))
            return await pool.exchange(where, forwarded("www.example.com.", RRType.A, 2.0))
        finally:
            pool.close()
            server.close()

    assert records(asyncio.run(scenario())) == ["192.0.2.99"]


def test_forwarders_table_routes_only_its_servers() -> None:
    class Inner:
        def __init__(self) -> None:
            self.asked: list[tuple[str, int | None]] = []

        async def exchange(self, query: Query) -> Reply:
            self.asked.append((query.address, query.port))
            raise ExchangeFailed(Failure.TIMEOUT, query.address)

    inner = Inner()
    forwarders = TlsForwarders(
        inner, {("127.0.0.1", 853): TlsServer("127.0.0.1", 853, "x")}, default_port=5300
    )

    async def scenario() -> None:
        for port in (None, 853):
            with pytest.raises(ExchangeFailed):
                await forwarders.exchange(Query("127.0.0.2", "a.", RRType.A, 0.1, port=port))
        forwarders.replace({})
        with pytest.raises(ExchangeFailed):
            await forwarders.exchange(Query("127.0.0.1", "a.", RRType.A, 0.1, port=853))

    asyncio.run(scenario())
    assert inner.asked == [("127.0.0.2", None), ("127.0.0.2", 853), ("127.0.0.1", 853)]


# -- the resolver forwarding over TLS to another resolver of ours, on the lab -----------


def start(log: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "resolver",
                "--port",
                str(port),
                "--log-format",
                "json",
                "--control-socket",
                "none",
                *nodefault_flags(),
                *args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    deadline = time.monotonic() + 15
    while "started" not in log.read_text():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    return process, port


def test_resolver_forwards_over_tls(
    certificates: CertificateFiles, tmp_path: Path, lab: object
) -> None:
    """Resolver B forwards everything ("." with tls = true) to resolver A's DNS over TLS;
    A walks the lab.  B's answers are the lab's, its upstream exchanges all went over TLS,
    and A saw them as DNS over TLS queries."""
    hints = tmp_path / "lab.hints"
    hints.write_text(hints_text())
    tls_port = free_port()
    a, _ = start(
        tmp_path / "a.log",
        "--root-hints",
        str(hints),
        "--upstream-port",
        "5300",
        "--tls-port",
        str(tls_port),
        "--tls-certificate",
        str(certificates.certificate),
        "--tls-key",
        str(certificates.key),
        "--query-log",
    )
    config = tmp_path / "b.toml"
    config.write_text(
        "[forward-zones]\n"
        f'"." = {{ forwarders = ["127.0.0.1@{tls_port}"], tls = true, '
        f'tls-auth-name = "{SERVER_NAME}", tls-ca-file = "{certificates.ca}" }}\n'
    )
    b, port = start(tmp_path / "b.log", "--root-hints", str(hints), "--config", str(config))
    try:
        for name, address in (
            ("www.google.com.", "198.51.100.14"),
            ("www.chain.com.", "198.51.100.7"),
        ):
            reply = dns.query.udp(
                dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=10
            )
            assert address in reply.to_text(), reply.to_text()
    finally:
        for process in (a, b):
            process.terminate()
            process.wait(timeout=10)
    a_queries = [json.loads(line) for line in (tmp_path / "a.log").read_text().splitlines()]
    a_queries = [e for e in a_queries if e.get("event") == "query"]
    assert a_queries and {e["transport"] for e in a_queries} == {"tls"}
    b_log = (tmp_path / "b.log").read_text()
    assert "Traceback" not in b_log and "tls_upstream_failed" not in b_log
