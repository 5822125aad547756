"""DNS over TLS and DNS over HTTPS, ours next to Unbound's, on the lab served by NSD.

Both resolvers serve DoT and DoH with the same test certificate (made here, never
committed) and start with empty caches.  For each lab case the answer over DoT and over
DoH must be the same from both (and the lab's).  Bad HTTP requests are sent to both:
where the statuses differ, the difference is named in :data:`STATUS_DIFFERENCES` with
why, and the test holds both sides to it.  Then each forwards to the other over TLS:
ours to Unbound's DoT (``tls = true``), Unbound to ours (``forward-tls-upstream``).
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import httpx2 as httpx
import pytest

from resolver.lab.cases import CASES_BY_ID, answer_of
from resolver.lab.nsd import find_tool
from resolver.lab.unbound import OurResolver, free_port
from scripts.reliability.tls_lab import (
    SERVER_NAME,
    CertificateFiles,
    EncryptedUnbound,
    make_certificates,
)

pytestmark = pytest.mark.interop

CASE_IDS = ["glue", "glueless", "cname-chain", "cname-nxdomain", "nxdomain", "tcp", "srv", "aaaa"]
MEDIA = "application/dns-message"


def resolver_with(
    workdir: Path, hints: Path, certificates: CertificateFiles, *extra: str
) -> tuple[OurResolver, int, int]:
    tls_port, https_port = free_port(), free_port()
    process = OurResolver(
        workdir,
        hints,
        free_port(),
        "--tls-port",
        str(tls_port),
        "--https-port",
        str(https_port),
        "--tls-certificate",
        str(certificates.certificate),
        "--tls-key",
        str(certificates.key),
        *extra,
    )
    return process, tls_port, https_port


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="module")
def unbound_encrypted(
    nsd_hints: Path, certificates: CertificateFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EncryptedUnbound]:
    server = EncryptedUnbound(
        tmp_path_factory.mktemp("unbound-tls"), nsd_hints, free_port(), certificates
    )
    with server:
        yield server


@pytest.fixture(scope="module")
def ours_encrypted(
    nsd_hints: Path, certificates: CertificateFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, int]]:
    process, tls_port, https_port = resolver_with(
        tmp_path_factory.mktemp("ours-tls"), nsd_hints, certificates
    )
    with process:
        yield tls_port, https_port


def context(certificates: CertificateFiles) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificates.ca))


def over_tls(
    port: int, certificates: CertificateFiles, qname: str, qtype: str
) -> dns.message.Message:
    query = dns.message.make_query(qname, qtype, use_edns=0)
    return dns.query.tls(
        query,
        "127.0.0.1",
        port=port,
        timeout=15,
        ssl_context=context(certificates),
        server_hostname=SERVER_NAME,
    )


def over_https(
    port: int, certificates: CertificateFiles, qname: str, qtype: str
) -> dns.message.Message:
    query = dns.message.make_query(qname, qtype, use_edns=0)
    return dns.query.https(
        query,
        "127.0.0.1",
        port=port,
        timeout=15,
        verify=context(certificates),
        http_version=dns.query.HTTPVersion.H2,
    )


@pytest.mark.parametrize("transport", ["tls", "https"])
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_same_answers_as_unbound(
    case_id: str,
    transport: str,
    unbound_encrypted: EncryptedUnbound,
    ours_encrypted: tuple[int, int],
    certificates: CertificateFiles,
) -> None:
    case = CASES_BY_ID[case_id]
    ask = over_tls if transport == "tls" else over_https
    theirs_port = unbound_encrypted.tls_port if transport == "tls" else unbound_encrypted.https_port
    ours_port = ours_encrypted[0] if transport == "tls" else ours_encrypted[1]
    theirs = ask(theirs_port, certificates, case.qname, case.qtype)
    mine = ask(ours_port, certificates, case.qname, case.qtype)
    assert dns.rcode.to_text(mine.rcode()) == dns.rcode.to_text(theirs.rcode()) == case.rcode
    assert answer_of(mine) == answer_of(theirs) == case.answer
    assert not mine.flags & dns.flags.TC  # the big TXT of "tcp" comes whole, as over TCP


@pytest.mark.parametrize("transport", ["+tls", "+https"])
def test_kdig_padded_queries(
    transport: str,
    unbound_encrypted: EncryptedUnbound,
    ours_encrypted: tuple[int, int],
    certificates: CertificateFiles,
) -> None:
    """kdig with padding: both answer over DoT padded to 468 octets (RFC 8467); over DoH
    Unbound 1.17 does not pad (its pad-responses is for DoT), we do."""
    kdig = find_tool("kdig")
    assert kdig is not None
    sizes = {}
    for who, port in (
        (
            "unbound",
            unbound_encrypted.tls_port if transport == "+tls" else unbound_encrypted.https_port,
        ),
        ("ours", ours_encrypted[0] if transport == "+tls" else ours_encrypted[1]),
    ):
        done = subprocess.run(
            [
                kdig,
                "@127.0.0.1",
                "-p",
                str(port),
                transport,
                "+padding",
                f"+tls-ca={certificates.ca}",
                f"+tls-hostname={SERVER_NAME}",
                "+retry=0",
                "+timeout=10",
                "www.example.com",
                "A",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0 and "192.0.2.1" in done.stdout, done.stdout + done.stderr
        sizes[who] = int(done.stdout.split(";; Received ")[1].split(" B")[0])
    assert sizes["ours"] == 468
    if transport == "+tls":
        assert sizes["unbound"] == 468
    else:
        assert sizes["unbound"] < 100  # unpadded


BAD_REQUESTS = [
    # (what, method, path, content type, body)
    ("another path", "GET", "/resolve?dns=AAAA", None, b""),
    ("no dns parameter", "GET", "/dns-query", None, b""),
    ("POST of another media type", "POST", "/dns-query", "text/plain", b"x" * 20),
    ("POST with an empty body", "POST", "/dns-query", MEDIA, b""),
    ("POST of a body over 65535 octets", "POST", "/dns-query", MEDIA, b"\0" * 70000),
    ("another method", "PUT", "/dns-query", MEDIA, b"x" * 20),
    ("dns parameter empty", "GET", "/dns-query?dns=", None, b""),
    ("dns parameter not base64url", "GET", "/dns-query?dns=a+b/c", None, b""),
    ("POST without a media type", "POST", "/dns-query", None, b"x" * 20),
    ("shorter than a DNS header", "POST", "/dns-query", MEDIA, b"\0" * 5),
    ("a DNS response", "POST", "/dns-query", MEDIA, b"\0\0\x80" + b"\0" * 9),
]
SAME_STATUS = {
    "another path": 404,
    "no dns parameter": 400,
    "POST of another media type": 415,
    "POST with an empty body": 400,
    "POST of a body over 65535 octets": 413,
}
STATUS_DIFFERENCES = {
    # what: (ours, Unbound 1.17's) -- "closed": it drops the connection without a status.
    # PUT is a method HTTP knows, not allowed here: 405 (RFC 9110 section 15.5.6); 501 is
    # for methods the server does not recognise at all.
    "another method": (405, 501),
    # An empty dns parameter is a bad request for the one resource there is, not a
    # missing resource.
    "dns parameter empty": (400, 404),
    # Not base64url (RFC 8484 section 4.1): a status, rather than a dropped connection
    # (every other stream of the HTTP/2 connection is lost with it).
    "dns parameter not base64url": (400, "closed"),
    # RFC 8484 section 4.1: a POST says its media type; Unbound takes any body.
    "POST without a media type": (415, 200),
    # Not a DNS query (shorter than a header, or QR=1): a status, not a dropped connection.
    "shorter than a DNS header": (400, "closed"),
    "a DNS response": (400, "closed"),
}


def status(
    port: int,
    certificates: CertificateFiles,
    method: str,
    path: str,
    content_type: str | None,
    body: bytes,
) -> int | str:
    headers = {"content-type": content_type} if content_type else {}
    with httpx.Client(http2=True, http1=False, verify=context(certificates), timeout=10) as client:
        try:
            response = client.request(
                method, f"https://127.0.0.1:{port}{path}", content=body or None, headers=headers
            )
        except httpx.RemoteProtocolError:
            return "closed"
    return response.status_code


@pytest.mark.parametrize(
    ("what", "method", "path", "content_type", "body"),
    BAD_REQUESTS,
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_requests_against_unbound(
    what: str,
    method: str,
    path: str,
    content_type: str | None,
    body: bytes,
    unbound_encrypted: EncryptedUnbound,
    ours_encrypted: tuple[int, int],
    certificates: CertificateFiles,
) -> None:
    request = (method, path, content_type, body)
    mine = status(ours_encrypted[1], certificates, *request)
    theirs = status(unbound_encrypted.https_port, certificates, *request)
    if what in SAME_STATUS:
        assert mine == theirs == SAME_STATUS[what]
    else:
        assert (mine, theirs) == STATUS_DIFFERENCES[what]


def test_cache_control(
    unbound_encrypted: EncryptedUnbound,
    ours_encrypted: tuple[int, int],
    certificates: CertificateFiles,
) -> None:
    """RFC 8484 section 5.1 (a SHOULD): we give max-age, the answer's smallest TTL;
    Unbound 1.17 gives none."""
    query = dns.message.make_query("www.example.com.", "A")
    query.id = 0
    headers = {"content-type": MEDIA}
    with httpx.Client(http2=True, http1=False, verify=context(certificates), timeout=10) as client:
        mine = client.post(
            f"https://127.0.0.1:{ours_encrypted[1]}/dns-query",
            content=query.to_wire(),
            headers=headers,
        )
        theirs = client.post(
            f"https://127.0.0.1:{unbound_encrypted.https_port}/dns-query",
            content=query.to_wire(),
            headers=headers,
        )
    ttl = dns.message.from_wire(mine.content).answer[0].ttl
    assert mine.headers["cache-control"] == f"max-age={ttl}"
    assert "cache-control" not in theirs.headers


# -- forwarding to each other over TLS ----------------------------------------------------


def test_ours_forwards_over_tls_to_unbound(
    unbound_encrypted: EncryptedUnbound,
    nsd_hints: Path,
    certificates: CertificateFiles,
    tmp_path: Path,
) -> None:
    config = tmp_path / "forward.toml"
    config.write_text(
        "[forward-zones]\n"
        f'"." = {{ forwarders = ["127.0.0.1@{unbound_encrypted.tls_port}"], tls = true, '
        f'tls-auth-name = "{SERVER_NAME}", tls-ca-file = "{certificates.ca}" }}\n'
    )
    with OurResolver(tmp_path / "ours", nsd_hints, free_port(), "--config", str(config)) as ours:
        for case_id in CASE_IDS:
            case = CASES_BY_ID[case_id]
            query = dns.message.make_query(case.qname, case.qtype, use_edns=0, payload=1232)
            reply, _ = dns.query.udp_with_fallback(query, "127.0.0.1", port=ours.port, timeout=15)
            assert (dns.rcode.to_text(reply.rcode()), answer_of(reply)) == (case.rcode, case.answer)
        stats = subprocess.run(
            [
                sys.executable,
                "-m",
                "resolver.ops.control",
                "--control-socket",
                str(tmp_path / "ours" / "control.sock"),
                "stats",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    counters = dict(line.split("=") for line in stats.split())
    assert int(counters["upstream_tls_queries"]) >= len(CASE_IDS)
    assert counters["upstream_tls_connections.result.opened"] == "1"  # kept and reused
    assert "upstream_tls_connections.result.failed" not in counters


def test_unbound_forwards_over_tls_to_ours(
    nsd_hints: Path, certificates: CertificateFiles, tmp_path: Path
) -> None:
    process, tls_port, _ = resolver_with(tmp_path / "ours", nsd_hints, certificates, "--query-log")
    forward = (
        f'    tls-cert-bundle: "{certificates.ca}"\n'
        "forward-zone:\n"
        '    name: "."\n'
        f"    forward-addr: 127.0.0.1@{tls_port}#{SERVER_NAME}\n"
        "    forward-tls-upstream: yes\n"
    )
    unbound = EncryptedUnbound(
        tmp_path / "unbound", nsd_hints, free_port(), certificates, extra=forward
    )
    with process, unbound:
        for case_id in CASE_IDS:
            case = CASES_BY_ID[case_id]
            query = dns.message.make_query(case.qname, case.qtype, use_edns=0, payload=1232)
            reply, _ = dns.query.udp_with_fallback(
                query, "127.0.0.1", port=unbound.port, timeout=15
            )
            assert (dns.rcode.to_text(reply.rcode()), answer_of(reply)) == (case.rcode, case.answer)
    log = (tmp_path / "ours" / "stderr.log").read_text().splitlines()
    queries = [json.loads(line) for line in log if '"event": "query"' in line]
    assert queries and {q["transport"] for q in queries} == {"tls"}
