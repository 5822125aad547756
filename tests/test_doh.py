"""DNS over HTTPS for clients (resolver.serve.doh, resolver.serve.doh_h2): real clients
(dnspython, httpx, curl, kdig) over HTTP/2 and HTTP/1.1 against the listener served
in-process over a scripted engine.

Hostile HTTP/2 and HTTP/1.1 clients are in tests/test_tls_hostile.py; DoH on the lab next
to Unbound's (answers, and the status of each bad request) is tests/interop/.
"""

from __future__ import annotations

import base64
import socket
import ssl
import subprocess
from collections.abc import Iterator

import dns.edns
import dns.message
import dns.query
import dns.rcode
import h2.config
import h2.connection
import h2.events
import httpx2 as httpx
import pytest
from tls_fixtures import SERVER_NAME, EncryptedServer, client_context, make_certificates

from resolver.iterate.request import Transport
from resolver.lab.nsd import find_tool
from resolver.serve.doh import decode_dns_parameter
from resolver.wire.raw import RESPONSE_BLOCK
from scripts.reliability.tls_lab import CertificateFiles

MEDIA = "application/dns-message"
VERSIONS = ["h2", "http/1.1"]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture
def server(certificates: CertificateFiles) -> Iterator[EncryptedServer]:
    with EncryptedServer(certificates) as running:
        yield running


def http(certificates: CertificateFiles, version: str) -> httpx.Client:
    context = client_context(certificates.ca)
    return httpx.Client(http2=version == "h2", http1=version != "h2", verify=context, timeout=10)


def url(server: EncryptedServer, path: str = "/dns-query") -> str:
    return f"https://127.0.0.1:{server.doh_port}{path}"


def wire(name: str, rdtype: str = "A", **kwargs: object) -> bytes:
    message = dns.message.make_query(name, rdtype, **kwargs)  # type: ignore[arg-type]
    message.id = 0  # RFC 8484 section 4.1: 0, for HTTP caches
    return message.to_wire()


def b64(packet: bytes) -> str:
    return base64.urlsafe_b64encode(packet).decode().rstrip("=")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_get_and_post(
    server: EncryptedServer, certificates: CertificateFiles, version: str, method: str
) -> None:
    with http(certificates, version) as client:
        for _ in range(2):  # resolved, then from the wire cache, on one kept connection
            if method == "GET":
                response = client.get(url(server), params={"dns": b64(wire("www.example.com."))})
            else:
                response = client.post(
                    url(server), content=wire("www.example.com."), headers={"content-type": MEDIA}
                )
            assert response.status_code == 200
            assert response.http_version == ("HTTP/2" if version == "h2" else "HTTP/1.1")
            assert response.headers["content-type"] == MEDIA
            reply = dns.message.from_wire(response.content)
            assert reply.id == 0 and reply.rcode() == dns.rcode.NOERROR
            assert [rr.to_text() for rrset in reply.answer for rr in rrset] == ["192.0.2.1"]
            assert 59 <= int(response.headers["cache-control"].removeprefix("max-age=")) <= 60
    stats = server.service.stats
    assert stats.https_status == {200: 2}
    queries = stats.queries.items()
    assert sum(n for (_t, _r, transport), n in queries if transport is Transport.HTTPS) == 2
    assert stats.handshakes == {(Transport.HTTPS, "full"): 1}


@pytest.mark.parametrize("version", VERSIONS)
def test_cache_control_is_the_smallest_ttl(
    server: EncryptedServer, certificates: CertificateFiles, version: str
) -> None:
    """RFC 8484 section 5.1: an answer's smallest TTL; a negative answer's SOA TTL (RFC 2308);
    nothing to keep for a SERVFAIL."""
    expected = {"nx.example.": 30, "fail.example.": 0, "ok.example.": 60}
    with http(certificates, version) as client:
        for name, max_age in expected.items():
            response = client.post(url(server), content=wire(name), headers={"content-type": MEDIA})
            assert response.status_code == 200
            assert response.headers["cache-control"] == f"max-age={max_age}", name


BAD_REQUESTS = [
    # (what, method, path, content type, body) -> status
    ("another path", "GET", "/resolve?dns=AAAA", None, b"", 404),
    ("another method", "PUT", "/dns-query", MEDIA, b"x" * 20, 405),
    ("no dns parameter", "GET", "/dns-query", None, b"", 400),
    ("dns parameter not base64url", "GET", "/dns-query?dns=a+b/c", None, b"", 400),
    ("dns parameter empty", "GET", "/dns-query?dns=", None, b"", 400),
    ("POST of another media type", "POST", "/dns-query", "text/plain", b"x" * 20, 415),
    ("POST without a media type", "POST", "/dns-query", None, b"x" * 20, 415),
    ("POST with an empty body", "POST", "/dns-query", MEDIA, b"", 400),
    ("POST of a body over 65535 octets", "POST", "/dns-query", MEDIA, b"\0" * 70000, 413),
    ("shorter than a DNS header", "POST", "/dns-query", MEDIA, b"\0" * 5, 400),
    ("a DNS response", "POST", "/dns-query", MEDIA, b"\0\0\x80" + b"\0" * 9, 400),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("what", "method", "path", "content_type", "body", "status"),
    BAD_REQUESTS,
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_requests_get_an_http_status(
    server: EncryptedServer,
    certificates: CertificateFiles,
    version: str,
    what: str,
    method: str,
    path: str,
    content_type: str | None,
    body: bytes,
    status: int,
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    with http(certificates, version) as client:
        response = client.request(method, url(server, path), content=body or None, headers=headers)
        assert response.status_code == status, (what, response.text)
        if status == 405:
            assert response.headers["allow"] == "GET, POST"
        if status != 413:  # the connection is kept (HTTP/1.1 closes after a 413)
            ok = client.get(url(server), params={"dns": b64(wire("after.example."))})
            assert ok.status_code == 200
    assert server.engine.calls <= 1


def test_unparseable_query_is_formerr_in_a_200(
    server: EncryptedServer, certificates: CertificateFiles
) -> None:
    """A packet with a readable header but a broken question is a DNS error (FORMERR), given
    the way DNS gives it (RFC 8484 section 4.2.1: DNS errors are 200 responses)."""
    broken = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example"
    with http(certificates, "h2") as client:
        response = client.post(url(server), content=broken, headers={"content-type": MEDIA})
    assert response.status_code == 200
    reply = response.content
    assert reply[:2] == b"\x12\x34" and reply[3] & 0x0F == dns.rcode.FORMERR


def test_refused_client_gets_a_dns_refusal(
    server: EncryptedServer, certificates: CertificateFiles
) -> None:
    class Nobody:
        def allows(self, host: str) -> bool:
            return False

    server.service.access = Nobody()  # type: ignore[assignment]
    with http(certificates, "h2") as client:
        response = client.post(
            url(server),
            content=wire("www.example.com.", use_edns=0),
            headers={"content-type": MEDIA},
        )
    reply = dns.message.from_wire(response.content)
    assert response.status_code == 200 and reply.rcode() == dns.rcode.REFUSED
    assert server.engine.calls == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_padded_query_gets_a_padded_answer(
    server: EncryptedServer, certificates: CertificateFiles, version: str
) -> None:
    with http(certificates, version) as client:
        for _ in range(2):
            response = client.post(
                url(server),
                content=wire("pad.example.", use_edns=0, pad=128),
                headers={"content-type": MEDIA},
            )
            assert len(response.content) % RESPONSE_BLOCK == 0
            reply = dns.message.from_wire(response.content)
            assert any(o.otype == dns.edns.OptionType.PADDING for o in reply.options)


@pytest.mark.parametrize("http_version", [dns.query.HTTPVersion.H2, dns.query.HTTPVersion.H1])
@pytest.mark.parametrize("post", [True, False], ids=["POST", "GET"])
def test_dnspython_doh_client(
    server: EncryptedServer,
    certificates: CertificateFiles,
    http_version: dns.query.HTTPVersion,
    post: bool,
) -> None:
    query = dns.message.make_query("www.example.org.", "AAAA")
    reply = dns.query.https(
        query,
        "127.0.0.1",
        port=server.doh_port,
        timeout=10,
        post=post,
        verify=client_context(certificates.ca),
        http_version=http_version,
    )
    assert [rr.to_text() for rrset in reply.answer for rr in rrset] == ["2001:db8::1"]


def test_http2_with_prior_knowledge_and_no_alpn(
    server: EncryptedServer, certificates: CertificateFiles
) -> None:
    """A client that offers no ALPN and starts with HTTP/2's preface gets HTTP/2."""
    sock = client_context(certificates.ca).wrap_socket(
        socket.create_connection(("127.0.0.1", server.doh_port), timeout=5),
        server_hostname=SERVER_NAME,
    )
    assert sock.selected_alpn_protocol() is None
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    body = wire("prior.example.")
    conn.send_headers(
        1,
        [
            (":method", "POST"),
            (":path", "/dns-query"),
            (":scheme", "https"),
            (":authority", SERVER_NAME),
            ("content-type", MEDIA),
            ("content-length", str(len(body))),
        ],
    )
    conn.send_data(1, body, end_stream=True)
    sock.sendall(conn.data_to_send())
    status, data, ended = None, b"", False
    while not ended:
        chunk = sock.recv(65536)
        assert chunk, "closed before the answer"
        for event in conn.receive_data(chunk):
            if isinstance(event, h2.events.ResponseReceived):
                status = dict(event.headers)[b":status"]
            elif isinstance(event, h2.events.DataReceived):
                data += event.data
            elif isinstance(event, h2.events.StreamEnded):
                ended = True
        sock.sendall(conn.data_to_send())
    sock.close()
    assert status == b"200"
    assert [rr.to_text() for rrset in dns.message.from_wire(data).answer for rr in rrset] == [
        "192.0.2.1"
    ]


def tool(name: str) -> str:
    binary = find_tool(name)
    if binary is None:
        pytest.fail(
            f"{name} is missing (apt-get install {'curl' if name == 'curl' else 'knot-dnsutils'})"
        )
    return binary


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def run_binary(*command: str, given: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(command, input=given, capture_output=True, timeout=30, check=False)


@pytest.mark.parametrize("version", ["--http2", "--http1.1"])
def test_curl_get_and_post(
    server: EncryptedServer, certificates: CertificateFiles, version: str
) -> None:
    curl = tool("curl")
    common = [curl, "-s", "-f", version, "--cacert", str(certificates.ca), "-o", "-"]
    get = run_binary(*common, url(server) + "?dns=" + b64(wire("curl.example.")))
    post = run_binary(
        *common,
        "-H",
        f"content-type: {MEDIA}",
        "--data-binary",
        "@-",
        url(server),
        given=wire("curl.example."),
    )
    for done in (get, post):
        assert done.returncode == 0, done.stderr
        reply = dns.message.from_wire(done.stdout)
        assert [rr.to_text() for rrset in reply.answer for rr in rrset] == ["192.0.2.1"]
    bad = run(
        curl,
        "-s",
        version,
        "--cacert",
        str(certificates.ca),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        url(server, "/nothing"),
    )
    assert bad.stdout == "404"


def test_curl_resolves_names_with_doh_url(
    server: EncryptedServer, certificates: CertificateFiles
) -> None:
    """curl --doh-url asks A and AAAA over DoH and connects where they point (nowhere here:
    192.0.2.1 is a documentation address; the lookups are what is checked)."""
    done = run(
        tool("curl"),
        "-sv",
        "--cacert",
        str(certificates.ca),
        "--doh-url",
        url(server),
        "--connect-timeout",
        "1",
        "-o",
        "/dev/null",
        "http://resolved.example:9/",
    )
    assert "DoH A: 192.0.2.1" in done.stderr, done.stderr
    assert "DoH AAAA: 2001:0db8:0000:0000:0000:0000:0000:0001" in done.stderr, done.stderr


@pytest.mark.parametrize("method", ["+https", "+https-get"])
def test_kdig_over_https(
    server: EncryptedServer, certificates: CertificateFiles, method: str
) -> None:
    done = run(
        tool("kdig"),
        "@127.0.0.1",
        "-p",
        str(server.doh_port),
        method,
        f"+tls-ca={certificates.ca}",
        f"+tls-hostname={SERVER_NAME}",
        "+retry=0",
        "+timeout=5",
        "kdig.example",
        "A",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    verb = "GET" if method == "+https-get" else "POST"
    assert f"HTTP session (HTTP/2-{verb})" in done.stdout and "(status: 200)" in done.stdout
    assert "192.0.2.1" in done.stdout, done.stdout
    # kdig pads its queries over HTTPS (RFC 8467): the answer is padded to 468 octets.
    assert ";; PADDING:" in done.stdout and ";; Received 468 B" in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("AAEC", b"\0\1\2"),
        ("AAE", b"\0\1"),
        ("AAE=", b"\0\1"),
        ("-_8", b"\xfb\xff"),
        ("", None),
        ("A", None),
        ("AA+A", None),
        ("AA/A", None),
        ("AA A", None),
        ("é", None),
    ],
)
def test_dns_parameter_is_base64url(value: str, expected: bytes | None) -> None:
    assert decode_dns_parameter(value) == expected


def test_ssl_context_offers_h2_then_http11(server: EncryptedServer) -> None:
    context = server.certificate.https
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert server.certificate.dot.minimum_version == ssl.TLSVersion.TLSv1_2
