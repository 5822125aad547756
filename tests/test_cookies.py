"""DNS cookies (RFC 7873, RFC 9018): our Server Cookies for clients (resolver.serve.cookies,
the listener's use of them) and our Client Cookies towards a real server, Knot DNS with
mod-cookies (resolver.net.cookies through the transport).  Real peers: ``kdig +cookie``
as the client, ``knotd`` upstream; both skip outside CI without them and fail in CI.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.message
import dns.rcode
import pytest

from resolver.lab import Lab
from resolver.lab.offpath_knot import KnotProcess, knotd_binary
from resolver.lab.unbound import free_port
from resolver.net.contract import Query
from resolver.net.transport import UpstreamTransport
from resolver.serve.cookies import (
    MALFORMED_COOKIE,
    ServerCookies,
    parse_secret,
    siphash24,
)
from resolver.wire import RRType
from resolver.wire.raw import MALFORMED, query_cookie
from tests.test_listener import ResolverProcess

COOKIE = 10
RFC9018_SECRET = bytes.fromhex("e5e973e5a6b2a43f48e7dc849e37bfcf")


def need(tool: str | None, what: str) -> str:
    if tool is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{what} is missing (CI installs it: .ci/run)")
        pytest.skip(f"{what} is not installed")
    return tool


# ---------------------------------------------------------------------- RFC 9018 cookies


def test_siphash24_reference_vector() -> None:
    # SipHash paper, appendix A: key 00..0f, message 00..0e.
    assert siphash24(bytes(range(16)), bytes(range(15))).hex() == "e545be4961ca29a1"
    assert siphash24(bytes(range(16)), b"").hex() == "310e0edd47db6f72"


def test_server_cookie_is_rfc_9018s() -> None:
    """RFC 9018 appendix A.1: the Server Cookie for Client Cookie 2464c4abcf10c957 from
    198.51.100.100 at 1559731985 under that secret."""
    cookies = ServerCookies([RFC9018_SECRET], clock=lambda: 1559731985.0)
    made = cookies.make(bytes.fromhex("2464c4abcf10c957"), "198.51.100.100", 1559731985,
                        RFC9018_SECRET)  # fmt: skip
    assert made.hex() == "010000005cf79f111f8130c3eee29480"
    answer = cookies.answer(bytes.fromhex("2464c4abcf10c957"), "198.51.100.100")
    assert answer.reply_option[4:].hex() == "2464c4abcf10c957010000005cf79f111f8130c3eee29480"
    assert not answer.valid  # a Client Cookie alone proves nothing


def test_a_server_cookie_is_valid_for_its_client_only_and_for_an_hour() -> None:
    now = [1_700_000_000.0]
    cookies = ServerCookies([RFC9018_SECRET], clock=lambda: now[0])
    client = b"\x11" * 8
    server = cookies.answer(client, "192.0.2.1").reply_option[12:]
    assert cookies.answer(client + server, "192.0.2.1").valid
    assert not cookies.answer(client + server, "192.0.2.2").valid  # another address
    assert not cookies.answer(b"\x22" * 8 + server, "192.0.2.1").valid  # another client cookie
    tampered = server[:-1] + bytes([server[-1] ^ 1])
    assert not cookies.answer(client + tampered, "192.0.2.1").valid
    fresh = ServerCookies([RFC9018_SECRET], clock=lambda: now[0])  # no memo: SipHash itself
    assert fresh.answer(client + server, "192.0.2.1").valid
    now[0] += 1799
    assert cookies.answer(client + server, "192.0.2.1").reply_option[12:] == server  # reused
    now[0] += 2  # past half an hour: still valid, a new one is given
    renewed = cookies.answer(client + server, "192.0.2.1")
    assert renewed.valid and renewed.reply_option[12:] != server
    now[0] += 3600  # past an hour: no longer valid
    assert not ServerCookies([RFC9018_SECRET], clock=lambda: now[0]).answer(
        client + server, "192.0.2.1").valid  # fmt: skip


def test_rotation_accepts_the_old_secret_and_makes_cookies_with_the_new() -> None:
    old, new = parse_secret("00" * 16), parse_secret("ff" * 16)
    client = b"\x33" * 8
    server = ServerCookies([old]).answer(client, "192.0.2.9").reply_option[12:]
    rotated = ServerCookies([new, old])
    assert rotated.answer(client + server, "192.0.2.9").valid
    assert not ServerCookies([new]).answer(client + server, "192.0.2.9").valid
    with pytest.raises(ValueError, match="32 hex digits"):
        parse_secret("abcd")


def raw_query(options: list[dns.edns.Option] | None, edns: bool = True) -> bytes:
    query = dns.message.make_query("www.example.com.", "A", use_edns=0 if edns else False,
                                   options=options or [])  # fmt: skip
    return query.to_wire()


@pytest.mark.parametrize("size", [1, 7, 9, 15, 41, 60])
def test_a_cookie_of_a_forbidden_length_is_malformed(size: int) -> None:
    assert query_cookie(raw_query([dns.edns.GenericOption(COOKIE, b"x" * size)])) == MALFORMED


@pytest.mark.parametrize("size", [8, 16, 24, 40])
def test_a_cookie_of_an_allowed_length_is_read(size: int) -> None:
    value = bytes(range(size))
    others = [dns.edns.GenericOption(65001, b"pad"), dns.edns.GenericOption(COOKIE, value)]
    assert query_cookie(raw_query(others)) == value


def test_queries_without_a_cookie_have_none() -> None:
    assert query_cookie(raw_query(None)) is None
    assert query_cookie(raw_query(None, edns=False)) is None
    assert query_cookie(raw_query([dns.edns.GenericOption(65001, b"x")])) is None
    assert MALFORMED_COOKIE.reply_option == b""


# ---------------------------------------------------------------------- our clients' cookies


@pytest.fixture(scope="module")
def limited(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResolverProcess]:
    """A resolver that drops UDP queries beyond 3 a second per address (ip-ratelimit)."""
    running = ResolverProcess(lab, tmp_path_factory.mktemp("cookies"), "--ip-ratelimit", "3",
                              "--ip-ratelimit-mode", "drop")  # fmt: skip
    try:
        yield running
    finally:
        assert running.stop() == 0


def kdig(port: int, *args: str) -> str:
    tool = need(shutil.which("kdig"), "kdig (knot-dnsutils)")
    done = subprocess.run([tool, "@127.0.0.1", "-p", str(port), *args], capture_output=True,
                          text=True, timeout=20, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def cookie_in(output: str) -> str:
    found = re.search(r";; COOKIE: ([0-9A-F]+)", output)
    assert found, output
    return found[1]


def burst(port: int, source: str, count: int, cookie: bytes | None) -> int:
    """``count`` queries at once from ``source``; how many were answered in 1 s."""
    answered = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        for i in range(count):
            options = [dns.edns.GenericOption(COOKIE, cookie)] if cookie else []
            query = dns.message.make_query("www.example.com.", "A", use_edns=0, options=options)
            query.id = i
            sock.sendto(query.to_wire(), ("127.0.0.1", port))
        sock.settimeout(1.0)
        try:
            while answered < count:
                reply = dns.message.from_wire(sock.recv(65535))
                answered += reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)
        except TimeoutError:
            pass
    return answered


def test_kdig_gets_a_server_cookie_and_a_valid_one_is_exempt_from_ip_ratelimit(
    limited: ResolverProcess,
) -> None:
    """kdig +cookie (Knot's client) gets our Server Cookie with its own Client Cookie back
    (kdig checks that) and, sent back, the same one (valid, less than half an hour old).
    Then 20 queries at once from one address with ip-ratelimit 3/s, drop: with that valid
    cookie all 20 are answered; without one, or with a forged one, only the burst of 3."""
    first = kdig(limited.port, "+cookie", "www.example.com", "A")
    assert "status: NOERROR" in first and "bad cookie" not in first.lower()
    cookie = cookie_in(first)
    assert len(cookie) == 48  # 8 bytes of client cookie, 16 of ours (RFC 9018)
    again = kdig(limited.port, f"+cookie={cookie}", "www.example.com", "A")
    assert "status: NOERROR" in again and cookie_in(again) == cookie

    # The rate limit is per address: the cookie was made for 127.0.0.1, so use it there.
    assert burst(limited.port, "127.0.0.1", 20, bytes.fromhex(cookie)) == 20
    time.sleep(1.1)
    assert burst(limited.port, "127.0.0.1", 20, None) <= 4
    time.sleep(1.1)
    forged = bytes.fromhex(cookie)[:-1] + b"\x00"
    assert burst(limited.port, "127.0.0.1", 20, forged) <= 4
    time.sleep(1.1)
    # A cookie made for 127.0.0.1 is not valid from another address.
    assert burst(limited.port, "127.61.0.1", 20, bytes.fromhex(cookie)) <= 4


def test_a_malformed_cookie_is_formerr(limited: ResolverProcess) -> None:
    query = dns.message.make_query("www.example.com.", "A", use_edns=0,
                                   options=[dns.edns.GenericOption(COOKIE, b"short")])  # fmt: skip
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.61.0.2", 0))
        sock.settimeout(3)
        sock.sendto(query.to_wire(), ("127.0.0.1", limited.port))
        reply = sock.recv(65535)
    assert reply[:2] == query.to_wire()[:2] and reply[3] & 0xF == dns.rcode.FORMERR


def test_cached_and_truncated_answers_carry_the_cookie_and_fit(limited: ResolverProcess) -> None:
    """An answer from the wire cache gets the COOKIE option too, and a UDP answer with it
    never exceeds the client's size: the big TXT is truncated to fit 512 with the option."""
    for _ in range(2):  # the second comes from the wire cache
        out = kdig(limited.port, "+cookie", "+bufsize=512", "+ignore", "big.example.com", "TXT")
        assert "COOKIE:" in out
        size = re.search(r"Received (\d+) B", out)
        assert size and int(size[1]) <= 512, out


# ---------------------------------------------------------------------- towards Knot


ZONE = """$ORIGIN example.
$TTL 300
@ SOA ns.example. host.example. 1 3600 900 604800 60
@ NS ns.example.
ns A 127.0.0.1
www A 192.0.2.80
"""


@pytest.mark.parametrize("cookies", [True, False])
def test_knot_with_cookies_upstream(tmp_path: Path, cookies: bool) -> None:
    """Knot's mod-cookies answers BADCOOKIE until a query carries its Server Cookie: the
    transport takes the one it gives, asks again, and sends it from then on; without our
    cookies Knot answers plainly."""
    need(knotd_binary(), "knotd (Debian's knot)")
    knot = KnotProcess(tmp_path / "knot", free_port(), {"example.": ZONE})
    with knot:
        upstream = UpstreamTransport(port=knot.port, cookies=cookies)

        async def ask() -> list[int]:
            rcodes = []
            for _ in range(3):
                reply = await upstream.exchange(Query("127.0.0.1", "www.example.", RRType.A, 2.0))
                assert [rr.rdata.to_text() for rr in reply.message.answer] == ["192.0.2.80"]
                rcodes.append(reply.message.rcode)
            return rcodes

        assert asyncio.run(ask()) == [0, 0, 0]
        if cookies:
            assert upstream.cookies is not None
            assert len(upstream.cookies.server_cookie("127.0.0.1")) == 16
    log = knot.workdir / "stderr.log"
    assert "error" not in log.read_text().lower()


def test_the_running_resolver_walks_to_knot_with_cookies(lab: Lab, tmp_path: Path) -> None:
    """End to end: a stub zone served by knotd with mod-cookies (BADCOOKIE to any query
    without its Server Cookie), asked through the running resolver with dig: answered."""
    need(knotd_binary(), "knotd (Debian's knot)")
    with KnotProcess(tmp_path / "knot", free_port(), {"example.": ZONE}) as knot:
        config = tmp_path / "resolver.toml"
        config.write_text(f'[stub-zones."example."]\nservers = ["127.0.0.1@{knot.port}"]\n')
        running = ResolverProcess(lab, tmp_path, "--config", str(config))
        try:
            for name in ("www.example.", "www.example."):  # the second from the cache
                out = kdig(running.port, name, "A")
                assert "status: NOERROR" in out and "192.0.2.80" in out, out
        finally:
            assert running.stop() == 0
