"""Response policy through the running service, asked with dig on the lab.

``python -m resolver`` walks the dnspython lab (tests/test_listener.py's process and
dig parser) with a configuration holding an RPZ zone from a file, an RPZ zone
transferred from a scripted primary on loopback, and a blocklist with an allowlist.
Each action is checked as a client sees it (RCODE, records, TC, no answer at all, the
Extended DNS Error), then the operator's side: the log line per applied rule, the
counters, ``resolver-control policy``, SIGHUP with a changed, a broken and a huge
source, a transfer cut half way, NOTIFY, and that the wire cache never answers what the
policy would change.
"""

from __future__ import annotations

import signal
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rrset
import pytest

from resolver.lab import Lab
from resolver.lab.unbound import free_port
from tests.test_control import control, stats
from tests.test_listener import ResolverProcess, dig, make_query, raw_exchange

RPZ = """\
$TTL 60
@ SOA localhost. hostmaster.localhost. 1 3600 600 86400 30
@ NS localhost.
www.example.com CNAME .
mail.example.com CNAME *.
sip.example.com A 192.0.2.99
sip.example.com AAAA 2001:db8::99
*.wild.example.com CNAME .
keep.wild.example.com CNAME rpz-passthru.
dropped.example.com CNAME rpz-drop.
ns2.example.com CNAME rpz-tcp-only.
redir.example.com CNAME ns1.example.com.
32.14.100.51.198.rpz-ip CNAME .
32.99.0.0.127.rpz-client-ip CNAME *.
"""

ADS = """\
# a hosts file and ad-blocker rules in one
0.0.0.0 www.example.net
||chain.com^
this line is no rule
"""
ALLOW = "www.chain.com\n"
XFR_ZONE = "rpz.xfr."


def soa(serial: int) -> dns.rrset.RRset:
    data = f"localhost. hostmaster.localhost. {serial} 3600 600 86400 30"
    return dns.rrset.from_text(XFR_ZONE, 60, "IN", "SOA", data)


class ScriptedPrimary(socketserver.ThreadingTCPServer):
    """A primary on loopback in threads (TCP and UDP on one port): SOA queries get
    ``serial``; transfers get the zone with ``names`` blocked, or, when ``cut``, the first
    records and a closed connection.  Over UDP anything but SOA gets TC=1 (use TCP), as
    a primary answers an IXFR that does not fit (RFC 1995 section 2)."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self) -> None:
        port = free_port()
        super().__init__(("127.0.0.1", port), _PrimaryHandler)
        self.udp = socketserver.ThreadingUDPServer(("127.0.0.1", port), _PrimaryDatagrams)
        self.udp.primary = self  # type: ignore[attr-defined]
        self.serial = 1
        self.names = ["xfr-blocked.example.com"]
        self.cut = False
        for server in (self, self.udp):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def messages(self, query: dns.message.Message) -> list[bytes]:
        response = dns.message.make_response(query)
        response.answer = [soa(self.serial)]
        if query.question[0].rdtype == dns.rdatatype.SOA:
            return [response.to_wire()]
        rules = [dns.rrset.from_text(f"{n}.{XFR_ZONE}", 60, "IN", "CNAME", ".") for n in self.names]
        response.answer += rules
        if self.cut:
            return [response.to_wire()]  # and the connection closes: no closing SOA
        response.answer.append(soa(self.serial))
        return [response.to_wire()]

    def close(self) -> None:
        for server in (self, self.udp):
            server.shutdown()
            server.server_close()


class _PrimaryHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        (length,) = struct.unpack("!H", sock.recv(2, socket.MSG_WAITALL))
        query = dns.message.from_wire(sock.recv(length, socket.MSG_WAITALL))
        assert isinstance(self.server, ScriptedPrimary)
        for wire in self.server.messages(query):
            sock.sendall(struct.pack("!H", len(wire)) + wire)


class _PrimaryDatagrams(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        query = dns.message.from_wire(data)
        primary: ScriptedPrimary = self.server.primary  # type: ignore[attr-defined]
        if query.question[0].rdtype == dns.rdatatype.SOA:
            wire = primary.messages(query)[0]
        else:
            response = dns.message.make_response(query)
            response.flags |= dns.flags.TC
            wire = response.to_wire()
        sock.sendto(wire, self.client_address)


@pytest.fixture(scope="module")
def primary() -> Iterator[ScriptedPrimary]:
    server = ScriptedPrimary()
    try:
        yield server
    finally:
        server.close()


def config_text(directory: Path, primary_port: int, extra: str = "") -> str:
    return (
        f'[[policy-zone]]\nname = "rpz.test."\nfile = "{directory / "rpz.zone"}"\n'
        f'[[policy-zone]]\nname = "{XFR_ZONE}"\nprimary = "127.0.0.1@{primary_port}"\n'
        f'[[blocklist]]\nfile = "{directory / "ads.txt"}"\n'
        f'allowlist = "{directory / "allow.txt"}"\n'
        'ede = "filtered"\nname = "ads"\n'
        f"{extra}"
    )


@pytest.fixture(scope="module")
def served(
    lab: Lab, primary: ScriptedPrimary, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ResolverProcess]:
    directory = tmp_path_factory.mktemp("policy")
    (directory / "rpz.zone").write_text(RPZ)
    (directory / "ads.txt").write_text(ADS)
    (directory / "allow.txt").write_text(ALLOW)
    config = directory / "resolver.toml"
    config.write_text(config_text(directory, primary.port))
    running = ResolverProcess(lab, directory, "--config", str(config))
    try:
        wait_for(running, lambda e: e["event"] == "policy_zone_loaded" and e["zone"] == XFR_ZONE)
        yield running
    finally:
        assert running.stop() == 0
    events = running.events()
    assert [e for e in events if e["event"] in ("internal_error", "not-json")] == []


def wait_for(process: ResolverProcess, wanted: Callable[[dict[str, Any]], bool],
             after: int = 0, timeout: float = 10.0) -> dict[str, Any]:  # fmt: skip
    """The first log event past the ``after``-th that ``wanted`` says yes to."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in process.events()[after:] if wanted(e)]
        if found:
            return found[0]
        assert time.monotonic() < deadline, process.events()[-5:]
        time.sleep(0.05)


def socket_of(process: ResolverProcess) -> Path:
    return process.log_path.parent / "control.sock"


# -- what clients get --------------------------------------------------------------------------

BLOCKED = "15 (Blocked): (response policy rpz.test.)"
FILTERED = "17 (Filtered): (response policy ads)"
XFR = f"15 (Blocked): (response policy {XFR_ZONE})"


@pytest.mark.parametrize(
    ("name", "rdtype", "status", "answer", "ede"),
    [("www.example.com.", "A", "NXDOMAIN", set(), BLOCKED),
     ("mail.example.com.", "A", "NOERROR", set(), BLOCKED),
     ("sip.example.com.", "A", "NOERROR", {("sip.example.com.", "A", "192.0.2.99")}, BLOCKED),
     ("SIP.Example.COM.", "AAAA", "NOERROR", {("sip.example.com.", "AAAA", "2001:db8::99")},
      BLOCKED),
     ("sip.example.com.", "TXT", "NOERROR", set(), BLOCKED),
     ("a.wild.example.com.", "A", "NXDOMAIN", set(), BLOCKED),
     ("keep.wild.example.com.", "A", "NOERROR",
      {("keep.wild.example.com.", "A", "192.0.2.99")}, ""),
     ("redir.example.com.", "A", "NOERROR",
      {("redir.example.com.", "CNAME", "ns1.example.com."), ("ns1.example.com.", "A", "127.3.1.1")},
      BLOCKED),
     ("www.google.com.", "A", "NXDOMAIN", set(), BLOCKED),  # rpz-ip 198.51.100.14/32
     ("www.google.com.", "AAAA", "NOERROR", {("www.google.com.", "AAAA", "2001:db8:4860::14")},
      ""),
     ("xfr-blocked.example.com.", "A", "NXDOMAIN", set(), XFR),
     ("www.example.net.", "A", "NXDOMAIN", set(), FILTERED),
     ("x.chain.com.", "A", "NXDOMAIN", set(), FILTERED),
     ("www.chain.com.", "A", "NOERROR",
      {("www.chain.com.", "CNAME", "a.chain.net."), ("a.chain.net.", "CNAME", "b.chain.org."),
       ("b.chain.org.", "A", "198.51.100.7")}, ""),
     ("www.example.org.", "A", "NXDOMAIN", set(), "")],  # no such zone: the lab's NXDOMAIN
)  # fmt: skip
def test_actions_as_clients_see_them(served: ResolverProcess, name: str, rdtype: str,
                                     status: str, answer: set[Any], ede: str) -> None:  # fmt: skip
    for _ in range(2):  # the second time from whatever the first left in the caches
        result = dig(served.port, name, rdtype)
        assert (result.status, result.answer, result.ede) == (status, answer, ede), result.text
        assert "ad" not in result.flags
        if ede and not answer and "rpz" in ede:  # a negative policy answer has the zone's SOA
            zone = ede.split()[-1].rstrip(")")
            assert [(o, t) for o, _, t, _ in result.sections["AUTHORITY"]] == [(zone, "SOA")]


def test_drop_sends_nothing(served: ResolverProcess) -> None:
    query = make_query("dropped.example.com.", edns=0)
    assert raw_exchange(served.port, query.to_wire(), "127.0.0.1", wait=1.0) is None


def test_tcp_only_truncates_over_udp_and_answers_over_tcp(served: ResolverProcess) -> None:
    udp = dns.message.from_wire(raw_exchange(served.port, make_query("ns2.example.com.").to_wire(),
                                             "127.0.0.1") or b"")  # fmt: skip
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp = dig(served.port, "ns2.example.com.", "A", "+tcp")
    assert tcp.answer == {("ns2.example.com.", "A", "127.3.1.2")} and tcp.ede == ""


def test_client_ip_trigger(served: ResolverProcess) -> None:
    result = dig(served.port, "www.example.net.", "A", source="127.0.0.99")
    assert (result.status, result.answer, result.ede) == ("NOERROR", set(), BLOCKED)


# -- what the operator gets ----------------------------------------------------------------------


def test_one_log_line_per_applied_rule(served: ResolverProcess) -> None:
    before = len(served.events())
    dig(served.port, "b.wild.example.com.", "A")
    line = wait_for(served, lambda e: e["event"] == "policy", before)
    assert {k: line[k] for k in ("zone", "trigger", "action", "matched", "name", "type")} == {
        "zone": "rpz.test.", "trigger": "qname", "action": "nxdomain",
        "matched": "*.wild.example.com.", "name": "b.wild.example.com.", "type": "A"}  # fmt: skip
    assert len([e for e in served.events()[before:] if e["event"] == "policy"]) == 1


def test_counters_and_listing(served: ResolverProcess) -> None:
    dig(served.port, "www.example.com.", "A")
    counters = stats(socket_of(served))
    assert counters["policy_actions.zone.rpz.test."] >= 1
    assert counters["policy_actions.action.nxdomain"] >= 1
    assert counters["policy_entries.zone.ads"] == 4  # a name, a name and its subtree, one exception
    done = control(socket_of(served), "policy", "list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["rpz.test.", XFR_ZONE, "ads"]
    assert "serial=1 entries=10 " in lines[0] and "kind=rpz" in lines[0]
    assert "primary=127.0.0.1@" in lines[1] and "kind=blocklist" in lines[2]


def test_control_errors(served: ResolverProcess) -> None:
    done = control(socket_of(served), "policy", "reload", "nonesuch.")
    assert done.returncode == 1 and "no policy zone or blocklist named" in done.stderr
    done = control(socket_of(served), "policy", "frobnicate")
    assert done.returncode == 1 and "policy takes list, reload NAME or refresh NAME" in done.stderr


def test_notify_from_the_primary_only(served: ResolverProcess) -> None:
    notify = dns.message.make_query(XFR_ZONE, "SOA")
    notify.flags = dns.flags.AA  # flags first: dnspython keeps the opcode among them
    notify.set_opcode(dns.opcode.NOTIFY)
    refused = dns.message.from_wire(raw_exchange(served.port, notify.to_wire(), "127.0.0.2") or b"")
    assert refused.rcode() == dns.rcode.REFUSED
    before = len(served.events())
    accepted = dns.message.from_wire(
        raw_exchange(served.port, notify.to_wire(), "127.0.0.1") or b""
    )
    assert accepted.rcode() == dns.rcode.NOERROR and accepted.opcode() == dns.opcode.NOTIFY
    wait_for(served, lambda e: e["event"] == "notify", before)


def test_transfer_cut_half_way_keeps_the_zone(served: ResolverProcess,
                                              primary: ScriptedPrimary) -> None:  # fmt: skip
    primary.serial, primary.names, primary.cut = 2, ["xfr-new.example.com"], True
    try:
        done = control(socket_of(served), "policy", "refresh", XFR_ZONE)
        assert done.returncode == 1
        assert "before the closing SOA; serial 1 stays" in done.stderr, done.stderr
        failed = [e for e in served.events() if e["event"] == "policy_zone_not_loaded"]
        assert failed and failed[-1]["kept_serial"] == 1
        assert dig(served.port, "xfr-blocked.example.com.", "A").ede == XFR
        assert dig(served.port, "xfr-new.example.com.", "A").ede == ""
        primary.cut = False
        done = control(socket_of(served), "policy", "refresh", XFR_ZONE)
        assert done.returncode == 0 and done.stdout == f"{XFR_ZONE}: serial 2, 1 entries\n"
        assert dig(served.port, "xfr-new.example.com.", "A").ede == XFR
        assert dig(served.port, "xfr-blocked.example.com.", "A").ede == ""
    finally:
        primary.serial, primary.names, primary.cut = 1, ["xfr-blocked.example.com"], False
        control(socket_of(served), "policy", "reload", XFR_ZONE)


# -- reloads -------------------------------------------------------------------------------------


def test_sighup_reloads_a_changed_zone_and_keeps_the_cache(
    lab: Lab, primary: ScriptedPrimary, tmp_path: Path
) -> None:
    (tmp_path / "rpz.zone").write_text(RPZ)
    (tmp_path / "ads.txt").write_text(ADS)
    (tmp_path / "allow.txt").write_text(ALLOW)
    config = tmp_path / "resolver.toml"
    config.write_text(config_text(tmp_path, primary.port))
    process = ResolverProcess(lab, tmp_path, "--config", str(config))
    try:
        port = process.port
        # In the wire cache (asked twice): then blocked by a reload, answered again by the next.
        assert dig(port, "example.com.", "MX").answer == {("example.com.", "MX",
                                                           "10 mail.example.com.")}  # fmt: skip
        assert dig(port, "ns1.example.net.", "A").answer == {("ns1.example.net.", "A", "127.3.6.1")}
        assert dig(port, "ns1.example.net.", "A").answer == {("ns1.example.net.", "A", "127.3.6.1")}
        chain = {("a.chain.net.", "CNAME", "b.chain.org."), ("b.chain.org.", "A", "198.51.100.7")}
        assert dig(port, "a.chain.net.", "A").answer == chain
        assert dig(port, "a.chain.net.", "A").answer == chain
        google = {("ns1.google.com.", "A", "127.3.7.1")}
        assert dig(port, "ns1.google.com.", "A").answer == google
        assert dig(port, "ns1.google.com.", "A").answer == google
        # New QNAME rules: no flush (the fast path looks at them on every query).
        rules = "ns1.example.net CNAME .\nb.chain.org CNAME .\n"
        (tmp_path / "rpz.zone").write_text(RPZ.replace(" 1 3600", " 2 3600") + rules)
        before = len(process.events())
        process.process.send_signal(signal.SIGHUP)
        loaded = wait_for(process, lambda e: e["event"] == "policy_zone_loaded", before)
        assert (loaded["zone"], loaded["serial"], loaded["entries"]) == ("rpz.test.", 2, 12)
        assert dig(port, "ns1.example.net.", "A").status == "NXDOMAIN"
        # A rule on a name further down a CNAME chain the caches held before it came.
        blocked = dig(port, "a.chain.net.", "A")
        assert (blocked.status, blocked.answer) == (
            "NXDOMAIN", {("a.chain.net.", "CNAME", "b.chain.org.")})  # fmt: skip
        # The cache stayed: a name answered before costs no upstream query after the reload.
        dig(port, "example.com.", "MX")
        logged = process.queries("127.0.0.1", "example.com.")
        assert logged[-1]["upstream"] == 0 and logged[-1]["cache"] is True
        assert not [e for e in process.events()[before:] if e["event"] == "policy_answers_flushed"]

        # A new response-IP rule: the wire answers, judged by the old rules, are flushed.
        rules += "32.1.7.3.127.rpz-ip CNAME .\n"
        (tmp_path / "rpz.zone").write_text(RPZ.replace(" 1 3600", " 3 3600") + rules)
        before = len(process.events())
        process.process.send_signal(signal.SIGHUP)
        flushed = wait_for(process, lambda e: e["event"] == "policy_answers_flushed", before)
        assert flushed["answers"] > 0
        assert dig(port, "ns1.google.com.", "A").status == "NXDOMAIN"

        # A malformed record: one line saying where and why; the zone in force stays.
        (tmp_path / "rpz.zone").write_text(RPZ + "33.1.2.0.192.rpz-ip CNAME .\n")
        before = len(process.events())
        process.process.send_signal(signal.SIGHUP)
        failed = wait_for(process, lambda e: e["event"] == "policy_zone_not_loaded", before)
        why = "33.1.2.0.192.rpz-ip.rpz.test.: IPv4 prefix length 33 is not 1 to 32"
        assert failed["error"] == f"rpz.test.: {why}"
        assert failed["kept_serial"] == 3
        assert dig(port, "ns1.example.net.", "A").status == "NXDOMAIN"

        # A list over its max-entries is refused whole; the list in force stays.
        huge = "".join(f"host{i}.example.org\n" for i in range(2000))
        (tmp_path / "ads.txt").write_text(huge)
        config.write_text(config_text(tmp_path, primary.port).replace(
            'name = "ads"\n', 'name = "ads"\nmax-entries = 1000\n'))  # fmt: skip
        before = len(process.events())
        process.process.send_signal(signal.SIGHUP)
        failed = wait_for(process, lambda e: e["event"] == "policy_zone_not_loaded"
                          and e["zone"] == "ads", before)  # fmt: skip
        assert "more than 1000 entries (max-entries)" in failed["error"]
        assert dig(port, "www.example.net.", "A").ede == FILTERED
        assert dig(port, "host7.example.org.", "A").ede == ""
    finally:
        assert process.stop() == 0


def test_a_broken_file_stops_the_start(lab: Lab, tmp_path: Path) -> None:
    (tmp_path / "rpz.zone").write_text(RPZ + "x.example CNAME rpz-nonsense.\n")
    config = tmp_path / "resolver.toml"
    config.write_text(f'[[policy-zone]]\nname = "rpz.test."\nfile = "{tmp_path / "rpz.zone"}"\n')
    done = subprocess.run([sys.executable, "-m", "resolver", "--config", str(config),
                           "--port", "0", "--control-socket", "none"],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == ("resolver: rpz.test.: x.example.rpz.test.: unknown RPZ action target "
                           "rpz-nonsense.\n")  # fmt: skip
