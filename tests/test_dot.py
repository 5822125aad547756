"""DNS over TLS for clients (resolver.serve.dot, resolver.serve.tls): real clients (dnspython,
kdig, Python's ssl) against the listener served in-process over a scripted engine.

The hostile clients (handshakes never finished, clients that never read) are in
tests/test_tls_hostile.py; DoT on the lab next to Unbound's is tests/interop/.
"""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
import structlog
from tls_fixtures import SERVER_NAME, EncryptedServer, client_context, make_certificates

from resolver.iterate.request import Transport
from resolver.lab.nsd import find_tool
from resolver.wire.raw import RESPONSE_BLOCK
from scripts.reliability.tls_lab import CertificateFiles


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture
def server(certificates: CertificateFiles) -> Iterator[EncryptedServer]:
    with EncryptedServer(certificates) as running:
        yield running


def connect(server: EncryptedServer, context: ssl.SSLContext, **kwargs: object) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", server.dot_port), timeout=5)
    return context.wrap_socket(sock, server_hostname=SERVER_NAME, **kwargs)  # type: ignore[arg-type]


def send(sock: ssl.SSLSocket, message: dns.message.Message) -> None:
    wire = message.to_wire()
    sock.sendall(struct.pack("!H", len(wire)) + wire)


def receive(sock: ssl.SSLSocket) -> dns.message.Message:
    def exactly(size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    (length,) = struct.unpack("!H", exactly(2))
    return dns.message.from_wire(exactly(length))


def query(name: str, rdtype: str = "A", qid: int = 0, **kwargs: object) -> dns.message.Message:
    message = dns.message.make_query(name, rdtype, **kwargs)  # type: ignore[arg-type]
    message.id = qid
    return message


def test_dnspython_client_gets_the_answer(
    server: EncryptedServer, certificates: CertificateFiles
) -> None:
    context = client_context(certificates.ca)
    reply = dns.query.tls(
        query("www.example.com."),
        "127.0.0.1",
        timeout=5,
        port=server.dot_port,
        ssl_context=context,
        server_hostname=SERVER_NAME,
    )
    assert reply.rcode() == dns.rcode.NOERROR
    assert [rr.to_text() for rrset in reply.answer for rr in rrset] == ["192.0.2.1"]
    stats = server.service.stats
    queries = stats.queries.items()
    assert sum(n for (_t, _r, transport), n in queries if transport is Transport.TLS) == 1
    assert stats.handshakes == {(Transport.TLS, "full"): 1}


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_with_alpn_dot(
    server: EncryptedServer, certificates: CertificateFiles, version: ssl.TLSVersion
) -> None:
    context = client_context(certificates.ca, ["dot"])
    context.minimum_version = context.maximum_version = version
    with connect(server, context) as sock:
        assert (
            sock.version()
            == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
        )
        assert sock.selected_alpn_protocol() == "dot"
        send(sock, query("www.example.com.", qid=7))
        assert receive(sock).id == 7


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
def test_older_tls_is_refused_and_no_alpn_is_served(
    server: EncryptedServer, certificates: CertificateFiles
) -> None:
    old = client_context(certificates.ca)
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionError)):
        connect(server, old).close()
    # A client offering another protocol (or none) gets DNS all the same (RFC 7858 has no ALPN).
    other = client_context(certificates.ca, ["h2"])
    with connect(server, other) as sock:
        assert sock.selected_alpn_protocol() is None
        send(sock, query("www.example.com.", qid=8))
        assert receive(sock).id == 8
    deadline = time.monotonic() + 5
    while server.service.stats.handshakes.get((Transport.TLS, "failed"), 0) < 1:
        assert time.monotonic() < deadline, server.service.stats.handshakes
        time.sleep(0.02)


def test_untrusted_or_misnamed_certificate_fails_the_client(
    server: EncryptedServer, tmp_path: Path, certificates: CertificateFiles
) -> None:
    """What a strict client (RFC 8310) checks is what we present: the chain and the name."""
    stranger = make_certificates(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(server, client_context(stranger.ca)).close()
    sock = socket.create_connection(("127.0.0.1", server.dot_port), timeout=5)
    with pytest.raises(ssl.SSLCertVerificationError):
        client_context(certificates.ca).wrap_socket(sock, server_hostname="other.lab.test")
    sock.close()


def test_session_resumption(server: EncryptedServer, certificates: CertificateFiles) -> None:
    """A client presenting the session (ticket) it got resumes it: no full handshake."""
    for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        context = client_context(certificates.ca)
        context.maximum_version = version
        with connect(server, context) as first:
            send(first, query("www.example.com.", qid=1))
            receive(first)  # TLS 1.3 tickets come after the handshake, with the data
            session = first.session
        assert session is not None
        with connect(server, context, session=session) as second:
            assert second.session_reused, version
            send(second, query("www.example.com.", qid=2))
            assert receive(second).id == 2
    handshakes = server.service.stats.handshakes
    assert handshakes == {(Transport.TLS, "full"): 2, (Transport.TLS, "resumed"): 2}


def test_pipelined_queries_are_answered_as_they_complete(
    server: EncryptedServer, certificates: CertificateFiles
) -> None:
    """RFC 7766 section 6.2.1.1 and RFC 7858 section 3.3: the slow first query does not
    hold up the quick second one."""
    with connect(server, client_context(certificates.ca)) as sock:
        send(sock, query("slow400.example.", qid=1))
        send(sock, query("quick.example.", qid=2))
        send(sock, query("slow100.example.", qid=3))
        assert [receive(sock).id for _ in range(3)] == [2, 3, 1]


def test_answers_are_padded_when_the_query_is(
    server: EncryptedServer, certificates: CertificateFiles
) -> None:
    """RFC 7830 and RFC 8467 section 4.1: a padded query's answer is padded to a multiple
    of 468 octets, the second time too (from the wire cache); an unpadded one is not."""
    with connect(server, client_context(certificates.ca)) as sock:
        for qid in (1, 2):
            send(sock, query("www.example.com.", qid=qid, use_edns=0, pad=128))
            wire = receive(sock).to_wire()
            reply = dns.message.from_wire(wire)
            assert len(wire) % RESPONSE_BLOCK == 0, len(wire)
            assert any(o.otype == dns.edns.OptionType.PADDING for o in reply.options)
            assert [rr.to_text() for rrset in reply.answer for rr in rrset] == ["192.0.2.1"]
        send(sock, query("www.example.com.", qid=3, use_edns=0))
        plain = receive(sock)
        # Not padded; the edns-tcp-keepalive option (RFC 7828) is there, as over TCP.
        assert [o.otype for o in plain.options] == [dns.edns.OptionType.KEEPALIVE]
        assert len(plain.to_wire()) < RESPONSE_BLOCK
        send(sock, query("big.example.", "TXT", qid=4, use_edns=0, pad=128))
        big = receive(sock).to_wire()
        assert len(big) % RESPONSE_BLOCK == 0 and len(big) > 4000


def test_large_answers_are_not_truncated(
    server: EncryptedServer, certificates: CertificateFiles
) -> None:
    """Over TLS as over TCP: no TC=1, whatever the EDNS size (RFC 7766), cached or not."""
    with connect(server, client_context(certificates.ca)) as sock:
        for qid in (1, 2):
            send(sock, query("big.example.", "TXT", qid=qid, use_edns=0, payload=512))
            reply = receive(sock)
            assert not reply.flags & dns.flags.TC
            assert sum(len(s) for rr in reply.answer[0] for s in rr.strings) == 4000


def test_client_outside_allow_is_refused(
    server: EncryptedServer, certificates: CertificateFiles
) -> None:
    class Nobody:
        def allows(self, host: str) -> bool:
            return False

    server.service.access = Nobody()  # type: ignore[assignment]
    with connect(server, client_context(certificates.ca)) as sock:
        send(sock, query("www.example.com.", qid=5, use_edns=0))
        reply = receive(sock)
    assert reply.rcode() == dns.rcode.REFUSED
    assert [o.code for o in reply.options if isinstance(o, dns.edns.EDEOption)] == [18]
    assert server.engine.calls == 0


def test_query_log_names_the_transport(
    server: EncryptedServer, certificates: CertificateFiles
) -> None:
    server.service.configure(query_log=True)
    with (
        structlog.testing.capture_logs() as logs,
        connect(server, client_context(certificates.ca)) as sock,
    ):
        for qid in (1, 2):  # resolved, then from the wire cache
            send(sock, query("logged.example.", qid=qid))
            receive(sock)
    queries = [e for e in logs if e["event"] == "query"]
    assert [(e["transport"], e["cache"]) for e in queries] == [("tls", False), ("tls", True)]


def test_certificate_reload_keeps_open_connections(
    server: EncryptedServer, certificates: CertificateFiles, tmp_path: Path
) -> None:
    """A reload reads the files again: new connections get the new certificate, one
    already open keeps its session and its queries."""
    renewed = make_certificates(tmp_path / "renewed", prefix="renewed-")
    old = connect(server, client_context(certificates.ca))
    send(old, query("before.example.", qid=1))
    assert receive(old).id == 1
    apply = server.certificate.prepare(str(renewed.certificate), str(renewed.key))
    server.call(apply)
    with connect(server, client_context(renewed.ca)) as new:
        send(new, query("after.example.", qid=2))
        assert receive(new).id == 2
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(server, client_context(certificates.ca))
    send(old, query("still.example.", qid=3))
    assert receive(old).id == 3
    old.close()


def test_idle_connection_is_closed(
    server: EncryptedServer, certificates: CertificateFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    import resolver.serve.tcp as tcp_module

    monkeypatch.setattr(tcp_module, "TCP_IDLE_TIMEOUT", 0.3)
    with connect(server, client_context(certificates.ca)) as sock:
        send(sock, query("www.example.com.", qid=1))
        receive(sock)
        started = time.monotonic()
        sock.settimeout(5)
        assert sock.recv(10) == b""  # close_notify, then the end of the connection
        assert 0.2 < time.monotonic() - started < 2


def kdig(*args: str) -> str:
    binary = find_tool("kdig")
    if binary is None:
        pytest.fail("kdig is missing (apt-get install knot-dnsutils)")
    done = subprocess.run(
        [binary, *args, "+retry=0", "+timeout=5"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_kdig_over_tls(server: EncryptedServer, certificates: CertificateFiles) -> None:
    """kdig (knot-dnsutils) as the client: strict (the authority and the name, RFC 8310),
    opportunistic (+tls), and with padding (+padding: its default block, answered in ours)."""
    base = ["@127.0.0.1", "-p", str(server.dot_port)]
    strict = kdig(
        *base, f"+tls-ca={certificates.ca}", f"+tls-hostname={SERVER_NAME}", "www.example.com", "A"
    )
    assert "192.0.2.1" in strict and "(TCP)" in strict
    assert "192.0.2.1" in kdig(*base, "+tls", "www.example.net", "A")
    padded = kdig(*base, "+tls", "+padding", "+edns", "www.example.org", "A")
    assert ";; PADDING:" in padded, padded
    assert server.service.stats.handshakes[(Transport.TLS, "full")] == 3
