"""The service clients talk to (resolver/listener.py), end to end and in-process.

End to end: ``python -m resolver`` in a subprocess, walking the lab (tests/lab) from lab
root hints on upstream port 5300, asked by the real ``dig`` and by dnspython.  Its JSON
log (``--query-log --log-format json`` on stderr, into a file) says for every query
whether it came from the cache and how many upstream queries it cost, and has one
``bad_query`` warning per bad packet with the client address.  Each test asks from its
own 127.x.y.z source address (the sandbox has all of 127.0.0.0/8 on loopback), so it
finds its own log lines by ``client``.

In-process: :class:`ResolverService`, :class:`UdpListener` and :class:`TcpListener`
around a fake engine, for what needs control over resolution (coalescing, out-of-order
TCP answers, internal errors) or over the client address (``--allow``).

Run inside the network sandbox:
    /work/shared/tools/offline python -m pytest tests/test_listener.py
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
from structlog.testing import capture_logs

import resolver.serve.listener as listener_module
import resolver.serve.tcp as tcp_module
from resolver import compiled
from resolver.cache.answers import AnswerCache
from resolver.iterate.answer import Answer as EngineAnswer
from resolver.iterate.answer import FailureKind, servfail
from resolver.iterate.request import Transport
from resolver.lab import CASES, Lab, LabCase, answer_of
from resolver.lab.cases import BIG_TXT, Answer
from resolver.lab.unbound import free_port, nodefault_flags
from resolver.serve.access import AccessList
from resolver.serve.listener import ResolverService, TcpListener, UdpListener
from resolver.wire import CLASS_IN, Rcode, ResourceRecord, RRType
from resolver.wire.rdata import A
from tests.fakes import Scripted

TIMEOUT = 5.0  # seconds a client waits for an answer
DROP_WAIT = 0.5  # seconds to wait to conclude a packet was dropped
START_TIMEOUT = 10.0

_clients = itertools.count(1)


def new_client() -> str:
    """A loopback source address no other test uses (127.77.x.y)."""
    n = next(_clients)
    return f"127.77.{n // 250}.{n % 250 + 1}"


# -- the resolver process ----------------------------------------------------------------


class ResolverProcess:
    """``python -m resolver`` on the lab, with its JSON log in a file."""

    def __init__(self, lab: Lab, directory: Path, *flags: str) -> None:
        hints = lab.write_hints(directory / "lab.hints")
        self.port = free_port()
        self.log_path = directory / "resolver.log"
        with self.log_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "resolver", "--port", str(self.port),
                 "--root-hints", str(hints), "--upstream-port", str(lab.port),
                 "--query-log", "--log-format", "json",
                 "--control-socket", str(directory / "control.sock"),
                 *nodefault_flags(), *flags],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while not any(e["event"] == "started" for e in self.events()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"resolver did not start: {self.log_path.read_text()}")
            time.sleep(0.05)

    def events(self) -> list[dict[str, Any]]:
        entries = []
        for line in self.log_path.read_text().splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                entries.append({"event": "not-json", "line": line})
        return entries

    def queries(self, client: str, name: str | None = None) -> list[dict[str, Any]]:
        """Query log lines of one client (and one name as the client wrote it)."""
        return [e for e in self.events() if e["event"] == "query" and e.get("client") == client
                and (name is None or e["name"] == name)]  # fmt: skip

    def bad_queries(self, client: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e["event"] == "bad_query" and e["client"] == client]

    def stop(self) -> int:
        """SIGTERM and the exit status (killed and failed after 10 s)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail("resolver did not stop on SIGTERM")


@pytest.fixture(scope="module")
def resolver(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResolverProcess]:
    """The resolver most end-to-end tests share; --allow is set to show it keeps loopback."""
    running = ResolverProcess(lab, tmp_path_factory.mktemp("resolver"), "--allow", "192.0.2.0/24")
    try:
        yield running
    finally:
        status = running.stop()
    events = running.events()
    assert status == 0, running.log_path.read_text()
    assert [e for e in events if e["event"] in ("internal_error", "not-json")] == []
    assert events[-1]["event"] == "stopping"


@pytest.fixture(autouse=True)
def _no_lab_errors(lab: Lab) -> Iterator[None]:
    before = len(lab.errors)
    yield
    assert lab.errors[before:] == []


# -- clients -----------------------------------------------------------------------------


def canonical(rdtype: str, rdata: str) -> str:
    return dns.rdata.from_text(dns.rdataclass.IN, rdtype, rdata).to_text()


@dataclass
class DigResult:
    text: str
    status: str = ""
    id: int = 0
    flags: set[str] = field(default_factory=set)
    counts: tuple[int, int, int, int] = (0, 0, 0, 0)
    question: str = ""  # the owner as echoed in the response, case kept
    edns: bool = False
    ede: str = ""  # dig's line for an Extended DNS Error: "22 (No Reachable Authority): (why)"
    sections: dict[str, list[tuple[str, int, str, str]]] = field(default_factory=dict)

    @property
    def answer(self) -> Answer:
        return frozenset((o.lower(), t, r) for o, _ttl, t, r in self.sections.get("ANSWER", []))

    @property
    def ttls(self) -> list[int]:
        return [ttl for _o, ttl, _t, _r in self.sections.get("ANSWER", [])]


def dig(port: int, *args: str, source: str = "127.0.0.1") -> DigResult:
    """Run dig against the resolver and parse what it printed."""
    command = ["dig", "@127.0.0.1", "-p", str(port), "-b", source, "+tries=1", "+time=5", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{command}: {done.stdout} {done.stderr}"
    result = DigResult(done.stdout)
    header = re.search(r"opcode: (\w+), status: (\w+), id: (\d+)", done.stdout)
    flags = re.search(r";; flags:([a-z ]*);", done.stdout)
    counts = re.search(r"QUERY: (\d+), ANSWER: (\d+), AUTHORITY: (\d+), ADDITIONAL: (\d+)",
                       done.stdout)  # fmt: skip
    assert header and flags and counts, done.stdout
    result.status, result.id = header[2], int(header[3])
    result.flags = set(flags[1].split())
    result.counts = (int(counts[1]), int(counts[2]), int(counts[3]), int(counts[4]))
    result.edns = "; EDNS: version: 0" in done.stdout
    ede = re.search(r"^; EDE: (.*)$", done.stdout, re.MULTILINE)
    result.ede = ede[1] if ede else ""
    section = None
    for line in done.stdout.splitlines():
        heading = re.match(r";; (\w+) SECTION:", line)
        if heading:
            section = heading[1]
            continue
        if not line.strip():
            section = None
        elif section == "QUESTION":
            result.question = line.lstrip(";").split()[0]
        elif section is not None and not line.startswith(";"):
            owner, ttl, rdclass, rdtype, rdata = line.split(None, 4)
            assert rdclass == "IN"
            record = (owner, int(ttl), rdtype, canonical(rdtype, rdata))
            result.sections.setdefault(section, []).append(record)
    return result


def udp(
    port: int, message: dns.message.Message, source: str = "127.0.0.1", **kwargs: Any
) -> dns.message.Message:
    return dns.query.udp(message, "127.0.0.1", TIMEOUT, port, source=source, **kwargs)


def make_query(
    name: str, rdtype: str = "A", *, edns: int | bool = False, rd: bool = True, cd: bool = False
) -> dns.message.Message:
    message = dns.message.make_query(name, rdtype, use_edns=edns)
    message.flags = (dns.flags.RD if rd else 0) | (dns.flags.CD if cd else 0)
    return message


def raw_exchange(port: int, packet: bytes, source: str, wait: float = TIMEOUT) -> bytes | None:
    """Send one datagram from ``source``; the reply, or None if none came in ``wait``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(wait)
        sock.sendto(packet, ("127.0.0.1", port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def tcp_exchange_many(port: int, packets: list[bytes]) -> list[bytes]:
    """Send every query on one TCP connection at once (pipelined), read as many replies."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"".join(struct.pack("!H", len(p)) + p for p in packets))
        replies = []
        for _ in packets:
            (length,) = struct.unpack("!H", _recv_exactly(sock, 2))
            replies.append(_recv_exactly(sock, length))
        return replies


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data


def assert_response_shape(query: dns.message.Message, response: dns.message.Message) -> None:
    """What every response to a good query looks like (RFC 1035 4.1.1, minimal responses)."""
    assert response.id == query.id
    assert response.flags & dns.flags.QR
    assert response.flags & dns.flags.RA
    assert not response.flags & dns.flags.AA
    assert not response.flags & dns.flags.TC
    assert (response.flags & dns.flags.RD) == (query.flags & dns.flags.RD)
    assert (response.flags & dns.flags.CD) == (query.flags & dns.flags.CD)
    assert response.opcode() == dns.opcode.QUERY
    assert len(response.question) == 1
    assert response.question[0].name.to_text() == query.question[0].name.to_text()  # case too
    assert response.question[0].rdtype == query.question[0].rdtype
    assert response.edns == (0 if query.edns >= 0 else -1)  # OPT only if the client used EDNS
    if query.edns >= 0:
        assert response.payload == 1232
    assert response.additional == []  # nothing besides the OPT
    if response.rcode() == dns.rcode.NXDOMAIN or not response.answer:
        assert [(r.rdtype, len(r)) for r in response.authority] == [(dns.rdatatype.SOA, 1)]
    else:
        assert response.authority == []


# -- end to end: the lab cases through dig -------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_lab_case_through_dig(resolver: ResolverProcess, case: LabCase) -> None:
    result = dig(resolver.port, case.qname, case.qtype)
    assert result.status == case.rcode
    assert result.answer == case.answer
    assert {"qr", "rd", "ra"} <= result.flags
    assert "aa" not in result.flags
    assert result.edns  # dig uses EDNS by default, so the answer has it


def test_second_query_from_cache_with_ttl_counted_down(resolver: ResolverProcess) -> None:
    client = new_client()
    first = dig(resolver.port, "mail.example.com", "A", source=client)
    time.sleep(1.1)
    second = dig(resolver.port, "mail.example.com", "A", source=client)
    expected = {("mail.example.com.", "A", "192.0.2.25")}
    assert first.answer == second.answer == expected
    assert first.ttls[0] <= 300
    assert second.ttls[0] <= first.ttls[0] - 1
    logged = resolver.queries(client, "mail.example.com.")
    assert [(e["cache"], e["upstream"] > 0) for e in logged] == [(False, True), (True, False)]
    assert all(e["rcode"] == "NOERROR" and e["type"] == "A" for e in logged)


def test_servfail_is_remembered_for_a_few_seconds(resolver: ResolverProcess) -> None:
    """RFC 2308 section 7.1: a client retrying a broken name does not restart the walk.
    The engine remembers the lab's delegation loop too (RFC 9520), met by the lab cases
    above: a flush first, so that the first question walks."""
    control_socket = str(resolver.log_path.parent / "control.sock")
    flush = [sys.executable, "-m", "resolver.ops.control", "--control-socket", control_socket,
             "flush-zone", "loop2.net."]  # fmt: skip
    subprocess.run(flush, check=True, capture_output=True, timeout=30)
    client = new_client()
    first = dig(resolver.port, "www.loop2.net", "A", source=client)
    second = dig(resolver.port, "www.loop2.net", "A", source=client)
    assert first.status == second.status == "SERVFAIL"
    logged = resolver.queries(client, "www.loop2.net.")
    assert [(e["cache"], e["upstream"] > 0) for e in logged] == [(False, True), (True, False)]


def test_case_of_the_question_is_echoed_by_dig(resolver: ResolverProcess) -> None:
    client = new_client()
    for _ in range(2):  # normal path, then fast path
        result = dig(resolver.port, "WwW.ExAmple.COM", "A", source=client)
        assert result.question == "WwW.ExAmple.COM."
        assert result.answer == {("www.example.com.", "A", "192.0.2.1")}


# -- response shape, normal path then fast path ------------------------------------------


_names = itertools.count(1)


@pytest.mark.parametrize(
    ("edns", "rd", "cd"),
    [(False, True, False), (0, True, False), (False, False, False), (0, True, True)],
    ids=["plain", "edns", "no-rd", "edns-cd"],
)
def test_response_shape_positive(resolver: ResolverProcess, edns: int | bool, rd: bool,
                                 cd: bool) -> None:  # fmt: skip
    client = new_client()
    n = next(_names)
    name = f"ShApE-{n}.WiLd.ExAmple.COM."  # wildcard: uncached until now
    if not rd:  # RD=0 is answered from the cache only: put it in the record cache first
        udp(resolver.port, make_query(name, edns=0 if edns is False else False), new_client())
    responses = []
    for qname in (name, name.swapcase()):
        query = make_query(qname, edns=edns, rd=rd, cd=cd)
        response = udp(resolver.port, query, client)
        assert_response_shape(query, response)
        assert response.rcode() == dns.rcode.NOERROR
        assert answer_of(response) == {(name.lower(), "A", "192.0.2.99")}
        responses.append(response)
    assert responses[1].answer[0].ttl <= responses[0].answer[0].ttl <= 300
    logged = resolver.queries(client)
    assert [e["name"] for e in logged] == [name, name.swapcase()]
    assert [e["cache"] for e in logged] == [not rd, True]
    assert logged[1]["upstream"] == 0


@pytest.mark.parametrize("edns", [False, 0], ids=["plain", "edns"])
@pytest.mark.parametrize(
    ("qname", "rdtype", "rcode"),
    [("nx-shape-{n}.example.com.", "A", dns.rcode.NXDOMAIN),
     ("nodata-{n}.wild.example.com.", "TXT", dns.rcode.NOERROR)],
    ids=["nxdomain", "nodata"],
)  # fmt: skip
def test_response_shape_negative(resolver: ResolverProcess, qname: str, rdtype: str,
                                 rcode: int, edns: int | bool) -> None:  # fmt: skip
    client = new_client()
    name = qname.format(n=next(_names))
    soa_ttls = []
    for _ in range(2):  # normal path, then fast path
        query = make_query(name, rdtype, edns=edns)
        response = udp(resolver.port, query, client)
        assert_response_shape(query, response)
        assert response.rcode() == rcode
        assert response.answer == []
        soa = response.authority[0]
        assert soa.name.to_text() == "example.com."
        assert soa[0].mname.to_text() == "ns1.example.com."
        soa_ttls.append(soa.ttl)
    assert soa_ttls[1] <= soa_ttls[0] <= 60
    assert [e["cache"] for e in resolver.queries(client, name)] == [False, True]


# -- TCP and truncation ------------------------------------------------------------------


def test_tcp_with_dig(resolver: ResolverProcess) -> None:
    client = new_client()
    name = f"tcp-{next(_names)}.wild.example.com."  # not cached yet
    for _ in range(2):  # normal path, then fast path
        result = dig(resolver.port, "+tcp", name, "A", source=client)
        assert result.status == "NOERROR"
        assert result.answer == {(name, "A", "192.0.2.99")}
        assert {"qr", "rd", "ra"} <= result.flags and "aa" not in result.flags
    assert [e["cache"] for e in resolver.queries(client)] == [False, True]


def test_large_answer_truncated_over_udp_and_whole_over_tcp(resolver: ResolverProcess) -> None:
    client = new_client()
    for _ in range(2):  # the second time the answer is cached: still truncated
        plain = dig(resolver.port, "+noedns", "+ignore", "big.example.com", "TXT", source=client)
        assert plain.status == "NOERROR"
        assert "tc" in plain.flags
        assert plain.counts[1:] == (0, 0, 0)
        assert plain.answer == frozenset()
        assert not plain.edns
    # EDNS with a large buffer: we answer 1232 bytes at most over UDP, still too small.
    big_buffer = dig(resolver.port, "+bufsize=4096", "+ignore", "big.example.com", "TXT",
                     source=client)  # fmt: skip
    assert "tc" in big_buffer.flags and big_buffer.counts[1] == 0 and big_buffer.edns
    whole = dig(resolver.port, "+tcp", "big.example.com", "TXT", source=client)
    assert whole.status == "NOERROR" and "tc" not in whole.flags
    assert whole.answer == {("big.example.com.", "TXT", BIG_TXT)}
    # Without +ignore, dig retries over TCP by itself.
    retried = dig(resolver.port, "big.example.com", "TXT", source=client)
    assert retried.answer == {("big.example.com.", "TXT", BIG_TXT)}


def test_tcp_pipelined_queries_matched_by_id(resolver: ResolverProcess) -> None:
    questions = [("www.example.com.", "A"), (f"pipe-{next(_names)}.wild.example.com.", "A"),
                 ("www.example.com.", "AAAA"), (f"nx-pipe-{next(_names)}.example.com.", "A"),
                 ("big.example.com.", "TXT")]  # fmt: skip
    queries = [make_query(name, rdtype) for name, rdtype in questions]
    for i, query in enumerate(queries):
        query.id = 1000 + i
    replies = [dns.message.from_wire(r) for r in
               tcp_exchange_many(resolver.port, [q.to_wire() for q in queries])]  # fmt: skip
    by_id = {reply.id: reply for reply in replies}
    assert sorted(by_id) == [q.id for q in queries]
    for query in queries:
        reply = by_id[query.id]
        assert_response_shape(query, reply)
        name, rdtype = query.question[0].name.to_text(), query.question[0].rdtype
        if name.startswith("nx-"):
            assert reply.rcode() == dns.rcode.NXDOMAIN
        else:
            assert reply.rcode() == dns.rcode.NOERROR
            assert {(o, t) for o, t, _r in answer_of(reply)} == {
                (name, dns.rdatatype.to_text(rdtype))
            }


# -- many clients at once ----------------------------------------------------------------


def test_200_concurrent_clients(resolver: ResolverProcess) -> None:
    """Cached names, names nobody asked yet (some asked by several clients at once)."""
    udp(resolver.port, make_query("www.example.com."))  # cached from here on
    run = next(_names)
    work: list[tuple[str, str, Answer]] = []
    for i in range(200):
        if i % 3 == 0:
            name, rdtype = "www.example.com.", "A"
            expected = frozenset({("www.example.com.", "A", "192.0.2.1")})
        elif i % 3 == 1:
            name, rdtype = f"many-{run}-{i}.wild.example.com.", "A"
            expected = frozenset({(name, "A", "192.0.2.99")})
        else:
            name, rdtype = f"shared-{run}-{i % 10}.wild.example.com.", "A"
            expected = frozenset({(name, "A", "192.0.2.99")})
        work.append((name, rdtype, expected))
    barrier = threading.Barrier(len(work))

    def client(item: tuple[str, str, Answer]) -> tuple[int, Answer]:
        name, rdtype, _ = item
        query = make_query(name, rdtype, edns=0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            barrier.wait(timeout=30)
            response = dns.query.udp(query, "127.0.0.1", 10.0, resolver.port, sock=sock)
        assert response.id == query.id
        return response.rcode(), answer_of(response)

    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        results = list(pool.map(client, work, timeout=60))
    assert results == [(dns.rcode.NOERROR, expected) for _n, _t, expected in work]


# -- bad input ---------------------------------------------------------------------------


def _header(flags: int, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", 0x4242, flags, qd, an, ns, ar)


QUESTION = b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"


def _with_opcode(opcode: int) -> bytes:
    query = make_query("example.com.", "SOA")
    query.set_opcode(opcode)
    return query.to_wire()


def _answered(name: str, rdtype: str, **kwargs: Any) -> bytes:
    query = make_query(name, rdtype, **kwargs)
    return dns.message.make_response(query).to_wire()


# (packet, the rcode answered or None if dropped, question echoed)
BAD_INPUT: dict[str, tuple[bytes, int | None, bool]] = {
    "shorter-than-header": (b"\x42\x42\x01\x00\x00\x01\x00", None, False),
    "response-qr": (_answered("www.example.com.", "A"), None, False),
    "garbage-body": (_header(0x0100) + b"\xff\xfe\xfd\xfc", dns.rcode.FORMERR, False),
    "qdcount-0": (_header(0x0100, qd=0), dns.rcode.FORMERR, False),
    "qdcount-2": (_header(0x0100, qd=2) + QUESTION + QUESTION, dns.rcode.FORMERR, False),
    "opcode-notify": (_with_opcode(dns.opcode.NOTIFY), dns.rcode.NOTIMP, True),
    "opcode-status": (_with_opcode(dns.opcode.STATUS), dns.rcode.NOTIMP, True),
    "class-ch": (
        dns.message.make_query("version.bind.", "TXT", "CH").to_wire(),
        dns.rcode.REFUSED,
        True,
    ),
    "axfr": (make_query("example.com.", "AXFR").to_wire(), dns.rcode.REFUSED, True),
    "ixfr": (make_query("example.com.", "IXFR").to_wire(), dns.rcode.REFUSED, True),
    "edns-version-1": (make_query("www.example.com.", edns=1).to_wire(), dns.rcode.BADVERS, True),
}


@pytest.mark.parametrize("case", list(BAD_INPUT), ids=list(BAD_INPUT))
def test_bad_input(resolver: ResolverProcess, case: str) -> None:
    packet, rcode, with_question = BAD_INPUT[case]
    client = new_client()
    reply = raw_exchange(resolver.port, packet, client, TIMEOUT if rcode is not None else DROP_WAIT)
    if rcode is None:
        assert reply is None
    else:
        assert reply is not None
        response = dns.message.from_wire(reply)
        assert response.id == struct.unpack("!H", packet[:2])[0]
        assert response.flags & dns.flags.QR
        assert not response.flags & dns.flags.AA
        assert response.rcode() == rcode
        assert response.opcode() == (packet[2] >> 3) & 0xF
        assert (response.flags & dns.flags.RD) == (packet[2] & 1) << 8
        assert response.answer == response.authority == []
        if with_question:
            query = dns.message.from_wire(packet)
            assert response.question == query.question
        else:
            assert response.question == []
        if rcode == dns.rcode.BADVERS:
            assert response.edns == 0  # BADVERS lives in the OPT record, version 0
        else:
            assert response.edns == (0 if b"\x00\x00\x29" in packet[-11:] else -1)
    # Logged once, with the client's address; nothing logged as a query.
    bad = resolver.bad_queries(client)
    assert len(bad) == 1, bad
    assert bad[0]["level"] == "warning"
    assert bad[0]["problem"]
    # The listener still answers, the same client included.
    query = make_query("www.example.com.")
    response = udp(resolver.port, query, client)
    assert response.rcode() == dns.rcode.NOERROR
    assert answer_of(response) == {("www.example.com.", "A", "192.0.2.1")}
    assert len(resolver.bad_queries(client)) == 1


def test_bad_input_over_tcp_keeps_the_connection(resolver: ResolverProcess) -> None:
    packets = [BAD_INPUT["class-ch"][0], make_query("www.example.com.").to_wire()]
    replies = [dns.message.from_wire(r) for r in tcp_exchange_many(resolver.port, packets)]
    rcodes = sorted(r.rcode() for r in replies)
    assert rcodes == [dns.rcode.NOERROR, dns.rcode.REFUSED]


# -- access control ----------------------------------------------------------------------


def test_loopback_clients_are_always_allowed(resolver: ResolverProcess) -> None:
    """--allow 192.0.2.0/24 does not shut loopback out: 127.x.y.z clients are answered.

    The sandbox has only loopback, so no client here can be outside --allow end to end;
    the REFUSED side is tested in-process below (AccessList and ResolverService with a
    non-loopback client address).
    """
    for client in ("127.0.0.1", new_client(), "127.254.1.2"):
        response = udp(resolver.port, make_query("www.example.com."), client)
        assert response.rcode() == dns.rcode.NOERROR
        assert answer_of(response) == {("www.example.com.", "A", "192.0.2.1")}
    assert resolver.bad_queries("127.254.1.2") == []


# -- cache expiry and eviction -----------------------------------------------------------


def test_answer_expires_after_its_ttl(resolver: ResolverProcess) -> None:
    """short.example.com has TTL 3: cached at once, asked upstream again after 3.5 s."""
    client = new_client()
    expected = {("short.example.com.", "AAAA", "2001:db8::3")}
    for pause in (0.0, 0.0, 3.5):
        time.sleep(pause)
        response = udp(resolver.port, make_query("short.example.com.", "AAAA"), client)
        assert answer_of(response) == expected
        assert 0 < response.answer[0].ttl <= 3
    logged = resolver.queries(client, "short.example.com.")
    assert [(e["cache"], e["upstream"] > 0) for e in logged] == [
        (False, True), (True, False), (False, True),
    ]  # fmt: skip


def test_ttl0_is_never_answered_from_the_cache(resolver: ResolverProcess) -> None:
    client = new_client()
    for _ in range(2):
        response = udp(resolver.port, make_query("ttl0.example.com."), client)
        assert answer_of(response) == {("ttl0.example.com.", "A", "192.0.2.10")}
        assert response.answer[0].ttl == 0
    assert [e["cache"] for e in resolver.queries(client)] == [False, False]


def test_lru_eviction_at_the_size_bound(lab: Lab, tmp_path: Path) -> None:
    """--cache-size 3: after five other questions the first is resolved again."""
    small = ResolverProcess(lab, tmp_path, "--cache-size", "3")
    try:
        questions = [("www.example.com.", "A"), ("mail.example.com.", "A"),
                     ("sip.example.com.", "A"), ("www.example.com.", "AAAA"),
                     ("example.com.", "TXT")]  # fmt: skip
        client = "127.0.0.1"
        for name, rdtype in questions:
            response = udp(small.port, make_query(name, rdtype), client)
            assert response.rcode() == dns.rcode.NOERROR and response.answer
        last = udp(small.port, make_query(*questions[-1]), client)  # still cached
        first = udp(small.port, make_query(*questions[0]), client)  # evicted long ago
        assert answer_of(last) == {("example.com.", "TXT", '"v=spf1 -all"')}
        assert answer_of(first) == {("www.example.com.", "A", "192.0.2.1")}
        logged = small.queries(client)
        assert len(logged) == 7
        assert (logged[5]["cache"], logged[5]["upstream"]) == (True, 0)
        assert logged[6]["name"] == "www.example.com." and logged[6]["cache"] is False
        assert logged[6]["upstream"] > 0
    finally:
        assert small.stop() == 0


# -- in-process: access list and refusal -------------------------------------------------


@pytest.mark.parametrize(
    ("networks", "host", "allowed"),
    [
        ([], "127.0.0.1", True),
        ([], "127.200.3.4", True),
        ([], "::1", True),
        ([], "::ffff:127.0.0.1", True),
        ([], "192.0.2.7", False),
        ([], "2001:db8::7", False),
        (["192.0.2.0/24"], "192.0.2.7", True),
        (["192.0.2.0/24"], "::ffff:192.0.2.7", True),
        (["192.0.2.0/24"], "198.51.100.7", False),
        (["192.0.2.0/24", "2001:db8::/32"], "2001:db8::7", True),
        (["2001:db8::/32"], "fe80::1%eth0", False),
        (["fe80::/10"], "fe80::1%eth0", True),
        (["10.0.0.1"], "10.0.0.1", True),
        (["10.0.0.1"], "10.0.0.2", False),
    ],
)
def test_access_list(networks: list[str], host: str, allowed: bool) -> None:
    access = AccessList(networks)
    assert access.allows(host) is allowed
    assert access.allows(host) is allowed  # the remembered decision too


class FakeEngine(Scripted):
    """Resolves every name to 192.0.2.1 (A, TTL 60) after waiting for ``gate``, if set."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []
        self.cache_calls: list[tuple[str, int]] = []
        self.gate: asyncio.Event | None = None
        self.delays: dict[str, float] = {}

    async def scripted(self, name: str, rrtype: int, checking_disabled: bool) -> EngineAnswer:
        self.calls.append((name, rrtype))
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(self.delays.get(name.lower(), 0))
        if name.lower().startswith("boom."):
            raise RuntimeError("engine broke")
        if name.lower().startswith("fail-"):  # fail-<kind>.example.: SERVFAIL of that kind
            kind = FailureKind[name.split(".")[0][5:].upper().replace("-", "_")]
            return servfail(kind, f"{kind.value} for {name}")
        record = ResourceRecord(name.lower(), RRType.A, CLASS_IN, 60, A("192.0.2.1"))
        return EngineAnswer(Rcode.NOERROR, [record], [], 1)

    def cached(self, name: str, rrtype: int) -> EngineAnswer | None:
        self.cache_calls.append((name, rrtype))
        if not name.lower().startswith("cached."):
            return None
        record = ResourceRecord(name.lower(), RRType.A, CLASS_IN, 30, A("192.0.2.30"))
        return EngineAnswer(Rcode.NOERROR, [record], [], 0, from_cache=True)


def service(allow: list[str] | None = None, query_log: bool = True) -> ResolverService:
    return ResolverService(
        FakeEngine(),
        AnswerCache(),
        AccessList(allow or []),
        query_log=query_log,
    )


def fake_engine(resolver_service: ResolverService) -> FakeEngine:
    engine = resolver_service.engine
    assert isinstance(engine, FakeEngine)
    return engine


def test_client_outside_allow_is_refused_without_resolving() -> None:
    svc = service(["192.0.2.0/24"])
    query = make_query("www.example.")
    with capture_logs() as logs:
        refused = asyncio.run(svc.respond(query.to_wire(), "198.51.100.7"))
        allowed = asyncio.run(svc.respond(query.to_wire(), "192.0.2.7"))
    assert refused is not None and allowed is not None
    response = dns.message.from_wire(refused)
    assert response.rcode() == dns.rcode.REFUSED
    assert response.id == query.id and response.question == query.question
    assert response.answer == []
    assert dns.message.from_wire(allowed).rcode() == dns.rcode.NOERROR
    assert fake_engine(svc).calls == [("www.example.", RRType.A)]  # only the allowed one
    bad = [e for e in logs if e["event"] == "bad_query"]
    assert [(e["client"], e["log_level"]) for e in bad] == [("198.51.100.7", "warning")]


class FakeDatagramTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))


def test_udp_cached_answer_is_not_given_outside_allow() -> None:
    """The fast path checks --allow too (and logs no cache hit for a refused client)."""
    svc = service(["192.0.2.0/24"])
    listener = UdpListener(svc)
    transport = FakeDatagramTransport()
    listener.connection_made(transport)  # type: ignore[arg-type]
    query = make_query("www.example.")

    async def scenario() -> None:
        for client in [("127.0.0.1", 1053), ("127.0.0.1", 1053), ("198.51.100.7", 1053)]:
            listener.datagram_received(query.to_wire(), client)
            while listener.tasks:
                await asyncio.sleep(0.01)

    with capture_logs() as logs:
        asyncio.run(scenario())
    rcodes = [(addr[0], dns.message.from_wire(data).rcode()) for data, addr in transport.sent]
    assert rcodes == [("127.0.0.1", dns.rcode.NOERROR), ("127.0.0.1", dns.rcode.NOERROR),
                      ("198.51.100.7", dns.rcode.REFUSED)]  # fmt: skip
    queries = [(e["client"], e["cache"]) for e in logs if e["event"] == "query"]
    assert queries == [("127.0.0.1", False), ("127.0.0.1", True)]
    assert len(fake_engine(svc).calls) == 1


# -- in-process: coalescing ----------------------------------------------------------------


def test_identical_questions_in_flight_are_resolved_once() -> None:
    svc = service()
    engine = fake_engine(svc)
    names = ["www.example.", "WWW.example.", "www.EXAMPLE."] * 3 + ["wWw.ExAmPlE."]
    queries = [make_query(name) for name in names]
    for i, query in enumerate(queries):
        query.id = 100 + i

    async def scenario() -> list[bytes | None]:
        engine.gate = asyncio.Event()
        tasks = [asyncio.ensure_future(svc.respond(q.to_wire(), "127.0.0.1"))
                 for q in queries]  # fmt: skip
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(engine.calls) == 1  # everyone waits on the one resolution
        assert not any(task.done() for task in tasks)
        engine.gate.set()
        return await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)

    replies = asyncio.run(scenario())
    assert len(engine.calls) == 1
    for query, reply in zip(queries, replies, strict=True):
        assert reply is not None
        response = dns.message.from_wire(reply)
        assert_response_shape(query, response)
        assert answer_of(response) == {("www.example.", "A", "192.0.2.1")}
    assert svc.in_flight == 0  # nothing left behind


def test_a_client_that_goes_away_does_not_cancel_the_others_resolution() -> None:
    """The first asker of a question walks it in its own task; when it is cancelled (its
    client went away: a DoH stream reset) while others wait, they still get the answer,
    a question asked meanwhile joins them, and nothing is left in flight."""
    svc = service()
    engine = fake_engine(svc)
    queries = [make_query("www.example.") for _ in range(3)]

    async def scenario() -> tuple[bool, list[bytes | None]]:
        engine.gate = asyncio.Event()
        first = asyncio.ensure_future(svc.respond(queries[0].to_wire(), "127.0.0.1"))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(svc.respond(queries[1].to_wire(), "127.0.0.2"))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
        third = asyncio.ensure_future(svc.respond(queries[2].to_wire(), "127.0.0.3"))
        for _ in range(5):
            await asyncio.sleep(0)
        assert svc.in_flight == 1  # the walk goes on, once
        engine.gate.set()
        replies = await asyncio.wait_for(asyncio.gather(second, third), TIMEOUT)
        with contextlib.suppress(asyncio.CancelledError):
            await first
        return first.cancelled(), replies

    cancelled, replies = asyncio.run(scenario())
    assert cancelled
    for query, reply in zip(queries[1:], replies, strict=True):
        assert reply is not None
        response = dns.message.from_wire(reply)
        assert_response_shape(query, response)
        assert answer_of(response) == {("www.example.", "A", "192.0.2.1")}
    # The walk the first asker started, then the one handed over for the others (the
    # cache keeps what the first had learnt): never one per asker.
    assert len(engine.calls) <= 2
    assert svc.in_flight == 0


def test_a_question_whose_only_asker_goes_away_leaves_nothing_behind() -> None:
    svc = service()
    engine = fake_engine(svc)

    async def scenario() -> None:
        engine.gate = asyncio.Event()
        alone = asyncio.ensure_future(svc.respond(make_query("www.example.").to_wire(), "::1"))
        for _ in range(3):
            await asyncio.sleep(0)
        assert svc.in_flight == 1
        alone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await alone
        assert svc.in_flight == 0
        engine.gate.set()
        again = await svc.respond(make_query("www.example.").to_wire(), "::1")
        assert again is not None and dns.message.from_wire(again).rcode() == dns.rcode.NOERROR

    asyncio.run(scenario())
    assert svc.in_flight == 0 and len(engine.calls) == 2


def test_different_questions_are_not_coalesced() -> None:
    svc = service()
    engine = fake_engine(svc)

    async def scenario() -> None:
        engine.gate = asyncio.Event()
        tasks = [
            asyncio.ensure_future(svc.respond(make_query(n, t).to_wire(), "127.0.0.1"))
            for n, t in [("a.example.", "A"), ("b.example.", "A"), ("a.example.", "AAAA")]
        ]
        for _ in range(5):
            await asyncio.sleep(0)
        engine.gate.set()
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
    assert sorted(engine.calls) == [("a.example.", 1), ("a.example.", 28), ("b.example.", 1)]


# -- in-process: TCP -----------------------------------------------------------------------


async def _tcp_server(svc: ResolverService, **kwargs: Any) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(TcpListener(svc, **kwargs), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _read_reply(reader: asyncio.StreamReader) -> dns.message.Message:
    length = int.from_bytes(await reader.readexactly(2), "big")
    return dns.message.from_wire(await reader.readexactly(length))


def _framed(query: dns.message.Message) -> bytes:
    wire = query.to_wire()
    return len(wire).to_bytes(2, "big") + wire


def test_tcp_pipelined_answers_come_as_they_complete() -> None:
    svc = service()
    fake_engine(svc).delays = {"slow.example.": 0.3}
    slow, quick = make_query("slow.example."), make_query("quick.example.")
    slow.id, quick.id = 1, 2

    async def scenario() -> list[dns.message.Message]:
        server, port = await _tcp_server(svc)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_framed(slow) + _framed(quick))  # both in one segment
            replies = [await asyncio.wait_for(_read_reply(reader), TIMEOUT) for _ in range(2)]
            writer.close()
            return replies

    replies = asyncio.run(scenario())
    assert [r.id for r in replies] == [2, 1]  # the quick one first: out of order, by ID
    assert replies[0].question == quick.question and replies[1].question == slow.question
    for reply in replies:
        assert reply.rcode() == dns.rcode.NOERROR and len(reply.answer) == 1


def test_tcp_idle_connection_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tcp_module, "TCP_IDLE_TIMEOUT", 0.3)
    svc = service()

    async def scenario() -> tuple[dns.message.Message, bytes, bytes]:
        server, port = await _tcp_server(svc)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_framed(make_query("www.example.")))
            reply = await asyncio.wait_for(_read_reply(reader), TIMEOUT)
            after_query = await asyncio.wait_for(reader.read(), TIMEOUT)  # EOF: closed by it
            writer.close()
            # A connection that never sends anything is closed too.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            never = await asyncio.wait_for(reader.read(), TIMEOUT)
            writer.close()
            return reply, after_query, never

    reply, after_query, never = asyncio.run(scenario())
    assert reply.rcode() == dns.rcode.NOERROR
    assert after_query == b"" and never == b""


def test_tcp_connection_cap_evicts_the_idle_connection() -> None:
    """At the cap, a new client takes the place of a connection with nothing outstanding
    (RFC 7766 section 6.2.3: idle connections are closed under pressure)."""
    svc = service()

    async def scenario() -> tuple[bytes, dns.message.Message]:
        server, port = await _tcp_server(svc, max_connections=1)
        async with server:
            first_reader, first_writer = await asyncio.open_connection("127.0.0.1", port)
            first_writer.write(_framed(make_query("www.example.")))
            await asyncio.wait_for(_read_reply(first_reader), TIMEOUT)  # first is in, idle
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_framed(make_query("www.example.")))
            reply = await asyncio.wait_for(_read_reply(reader), TIMEOUT)  # second served
            evicted = await asyncio.wait_for(first_reader.read(), TIMEOUT)
            writer.close()
            first_writer.close()
            return evicted, reply

    evicted, reply = asyncio.run(scenario())
    assert evicted == b""
    assert reply.rcode() == dns.rcode.NOERROR


def test_tcp_connection_cap_refuses_when_every_connection_is_busy() -> None:
    svc = service()
    fake_engine(svc).delays = {"slow.example.": 0.5}

    async def scenario() -> tuple[bytes, dns.message.Message]:
        server, port = await _tcp_server(svc, max_connections=1)
        async with server:
            first_reader, first_writer = await asyncio.open_connection("127.0.0.1", port)
            first_writer.write(_framed(make_query("slow.example.")))  # outstanding for 0.5 s
            await asyncio.sleep(0.05)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            refused = await asyncio.wait_for(reader.read(), TIMEOUT)
            writer.close()
            reply = await asyncio.wait_for(_read_reply(first_reader), TIMEOUT)  # still served
            first_writer.close()
            return refused, reply

    refused, reply = asyncio.run(scenario())
    assert refused == b""
    assert reply.rcode() == dns.rcode.NOERROR


def test_internal_error_is_servfail_over_udp_and_tcp() -> None:
    svc = service()
    query = make_query("boom.example.")
    listener = UdpListener(svc)
    transport = FakeDatagramTransport()
    listener.connection_made(transport)  # type: ignore[arg-type]

    async def scenario() -> dns.message.Message:
        listener.datagram_received(query.to_wire(), ("127.0.0.1", 1053))
        while listener.tasks:
            await asyncio.sleep(0.01)
        server, port = await _tcp_server(svc)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_framed(query) + _framed(make_query("www.example.")))
            replies = [await asyncio.wait_for(_read_reply(reader), TIMEOUT) for _ in range(2)]
            writer.close()
        assert {r.rcode() for r in replies} == {dns.rcode.SERVFAIL, dns.rcode.NOERROR}
        return next(r for r in replies if r.id == query.id)

    with capture_logs() as logs:
        tcp_reply = asyncio.run(scenario())
    udp_reply = dns.message.from_wire(transport.sent[0][0])
    for reply in (udp_reply, tcp_reply):
        assert reply.id == query.id
        assert reply.rcode() == dns.rcode.SERVFAIL
        assert reply.flags & dns.flags.QR
    assert [e["event"] for e in logs].count("internal_error") == 2


# -- Extended DNS Errors (RFC 8914) ----------------------------------------------------------


def test_servfail_says_why_with_an_extended_error(resolver: ResolverProcess) -> None:
    """dig shows the INFO-CODE and the engine's reason; the SERVFAIL kept for 5 s keeps it;
    a client without EDNS gets no OPT, so no EDE."""
    client = new_client()
    first = dig(resolver.port, "www.loop1.com", "A", source=client)
    again = dig(resolver.port, "www.loop1.com", "A", source=client)
    assert first.status == again.status == "SERVFAIL"
    assert re.fullmatch(r"22 \(No Reachable Authority\): \(.*loop.*\)", first.ede), first.text
    assert again.ede == first.ede
    assert [e["cache"] for e in resolver.queries(client)][-1] is True  # the second: the cache
    plain = dig(resolver.port, "+noedns", "www.loop1.com", "A", source=client)
    assert plain.status == "SERVFAIL" and not plain.edns and plain.ede == ""


def _ede(response: dns.message.Message) -> list[tuple[int, str | None]]:
    return [(int(o.code), o.text) for o in response.options if isinstance(o, dns.edns.EDEOption)]


@pytest.mark.parametrize(
    ("kind", "code"),
    [(FailureKind.NO_REACHABLE_AUTHORITY, 22), (FailureKind.NETWORK_ERROR, 23),
     (FailureKind.TIME_BUDGET, 22), (FailureKind.LIMIT, 0)],
)  # fmt: skip
def test_failure_kind_to_info_code(kind: FailureKind, code: int) -> None:
    svc = service()
    name = f"fail-{kind.name.lower().replace('_', '-')}.example."
    for edns in (0, False):
        wire = asyncio.run(svc.respond(make_query(name, edns=edns).to_wire(), "127.0.0.1"))
        assert wire is not None
        response = dns.message.from_wire(wire)
        assert response.rcode() == dns.rcode.SERVFAIL
        expected = [(code, f"{kind.value} for {name}")] if edns is not False else []
        assert _ede(response) == expected


def test_overloaded_is_not_ready() -> None:
    svc = service()
    engine = fake_engine(svc)

    async def scenario() -> bytes | None:
        engine.gate = asyncio.Event()
        busy = [asyncio.ensure_future(svc.respond(make_query(f"q{i}.example.").to_wire(),
                                                  "127.0.0.1")) for i in range(3)]  # fmt: skip
        await asyncio.sleep(0)
        over = await svc.respond(make_query("one-more.example.", edns=0).to_wire(), "127.0.0.1")
        engine.gate.set()
        await asyncio.gather(*busy)
        return over

    engine.reconfigure(max_in_flight=3)
    wire = asyncio.run(scenario())
    assert wire is not None
    response = dns.message.from_wire(wire)
    assert response.rcode() == dns.rcode.SERVFAIL
    assert _ede(response) == [(14, "too many questions in flight")]
    assert len(svc.answers) == 3  # the three answers, not the refusal to start


@pytest.mark.parametrize(
    ("query", "client", "code"),
    [(make_query("www.example.", edns=0), "198.51.100.7", 18),
     (dns.message.make_query("version.bind.", "TXT", "CH", use_edns=0), "127.0.0.1", 21),
     (make_query("example.", "AXFR", edns=0), "127.0.0.1", 21)],
    ids=["outside-allow", "class-ch", "axfr"],
)  # fmt: skip
def test_refused_says_why(query: dns.message.Message, client: str, code: int) -> None:
    svc = service(["192.0.2.0/24"])
    wire = asyncio.run(svc.respond(query.to_wire(), client))
    assert wire is not None
    response = dns.message.from_wire(wire)
    assert response.rcode() == dns.rcode.REFUSED
    assert [c for c, _text in _ede(response)] == [code]
    query.use_edns(False)
    plain = asyncio.run(svc.respond(query.to_wire(), client))
    assert plain is not None and dns.message.from_wire(plain).options == ()


# -- RD=0: never any upstream work -----------------------------------------------------------


def test_rd0_is_answered_from_the_cache_or_refused(resolver: ResolverProcess, lab: Lab) -> None:
    client = new_client()
    name = f"norec-{next(_names)}.wild.example.com."
    refused = dig(resolver.port, "+norec", name, "A", source=client)
    assert refused.status == "REFUSED"
    assert refused.ede.startswith("20 (Not Authoritative): (recursion not desired (RD=0)")
    assert "rd" not in refused.flags and "ra" in refused.flags
    assert [q for q in lab.queries if q.qname.lower() == name] == []  # nothing was asked
    resolved = dig(resolver.port, name, "A", source=client)  # RD=1 resolves it
    assert resolved.answer == {(name, "A", "192.0.2.99")}
    for _ in range(2):  # then RD=0 gets it: record cache (normal path), then the fast path
        cached = dig(resolver.port, "+norec", "+noedns", name, "A", source=client)
        assert cached.status == "NOERROR" and cached.answer == {(name, "A", "192.0.2.99")}
        assert "rd" not in cached.flags
    logged = resolver.queries(client, name)
    assert [(e["rcode"], e["cache"], e["upstream"]) for e in logged] == [
        ("REFUSED", False, 0), ("NOERROR", False, logged[1]["upstream"]),
        ("NOERROR", True, 0), ("NOERROR", True, 0),
    ]  # fmt: skip


def test_rd0_in_process_never_calls_resolve() -> None:
    svc = service()
    engine = fake_engine(svc)
    for name, rcode in (
        ("cached.example.", dns.rcode.NOERROR),
        ("new.example.", dns.rcode.REFUSED),
    ):
        wire = asyncio.run(svc.respond(make_query(name, rd=False).to_wire(), "127.0.0.1"))
        assert wire is not None
        assert dns.message.from_wire(wire).rcode() == rcode
    assert engine.calls == []
    assert engine.cache_calls == [("cached.example.", RRType.A), ("new.example.", RRType.A)]


# -- one way through per packet --------------------------------------------------------------


@pytest.mark.skipif(
    compiled.core() == "compiled",
    reason="counts calls by monkeypatching, which calls between compiled modules do not see: "
    "CI's pure-Python run (RESOLVER_PURE_PYTHON=1) runs it on the same source",
)
def test_each_packet_is_keyed_checked_and_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The question key and the access check once per packet; a fast-path hit is not
    parsed, even to be logged."""
    counts = {"key": 0, "allows": 0, "parse": 0}

    def counting(name: str, function: Any) -> Any:
        def counted(*args: Any) -> Any:
            counts[name] += 1
            return function(*args)

        return counted

    monkeypatch.setattr(listener_module, "question_key",
                        counting("key", listener_module.question_key))  # fmt: skip
    monkeypatch.setattr(listener_module, "parse_message",
                        counting("parse", listener_module.parse_message))  # fmt: skip
    monkeypatch.setattr(AccessList, "allows", counting("allows", AccessList.allows))
    svc = service(query_log=True)
    listener = UdpListener(svc)
    transport = FakeDatagramTransport()
    listener.connection_made(transport)  # type: ignore[arg-type]

    async def one(name: str) -> None:
        listener.datagram_received(make_query(name).to_wire(), ("127.0.0.1", 1053))
        while listener.tasks:
            await asyncio.sleep(0.01)

    seen = []
    with capture_logs() as logs:
        for name in ("www.example.", "WWW.example."):  # the full path, then a cache hit
            asyncio.run(one(name))
            seen.append(dict(counts))
    assert seen == [{"key": 1, "allows": 1, "parse": 1}, {"key": 2, "allows": 2, "parse": 1}]
    hit = [e for e in logs if e["event"] == "query"][1]
    assert (hit["name"], hit["type"], hit["rcode"], hit["cache"]) == (
        "WWW.example.", "A", "NOERROR", True)  # fmt: skip


def test_counters_see_both_paths() -> None:
    svc = service()
    for _ in range(3):
        asyncio.run(svc.respond(make_query("www.example.").to_wire(), "127.0.0.1", Transport.TCP))
    asyncio.run(svc.respond(b"\x00\x01", "127.0.0.1"))  # shorter than a header: dropped
    assert svc.stats.queries == {(RRType.A, Rcode.NOERROR, Transport.TCP): 3}
    assert svc.stats.dropped == 1
    assert sum(svc.stats.latency) == 3
    assert (svc.answers.hits, svc.answers.misses) == (2, 1)


# -- TCP: idle from the last answer ----------------------------------------------------------


def test_tcp_idle_timeout_counts_from_the_last_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 7766 section 6.2.3: idle means no query outstanding.  A slow answer (longer than
    the idle timeout) is followed by a query the connection still takes; then, with nothing
    outstanding, it closes one timeout after the last answer."""
    monkeypatch.setattr(tcp_module, "TCP_IDLE_TIMEOUT", 0.5)
    svc = service()
    fake_engine(svc).delays = {"slow.example.": 0.7}

    async def scenario() -> tuple[list[int], float, float]:
        server, port = await _tcp_server(svc)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_framed(make_query("slow.example.")))
            first = await asyncio.wait_for(_read_reply(reader), TIMEOUT)  # at ~0.7 s
            await asyncio.sleep(0.3)  # 1.0 s after the query, 0.3 s after the answer
            writer.write(_framed(make_query("quick.example.")))
            second = await asyncio.wait_for(_read_reply(reader), TIMEOUT)
            answered = time.monotonic()
            closed = await asyncio.wait_for(reader.read(), TIMEOUT)  # EOF once idle
            idle = time.monotonic() - answered
            writer.close()
            assert closed == b""
            return [first.rcode(), second.rcode()], idle, answered

    rcodes, idle, _ = asyncio.run(scenario())
    assert rcodes == [dns.rcode.NOERROR, dns.rcode.NOERROR]
    assert 0.4 <= idle <= 1.5
