"""The lab servers themselves behave like the authoritative servers they simulate.

Run through scripts/test.sh (a namespace with only loopback):  scripts/test.sh tests/test_lab.py
"""

from __future__ import annotations

import random
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest

from resolver.lab import CASES, DEAD_ADDRESSES, ROOT_HINTS, SERVERS, Lab, LabCase, LabError
from resolver.lab.cases import answer_of, answer_tuples
from resolver.lab.topology import all_zones, zone_file

TIMEOUT = 1.0

ROOT = "127.1.0.1"
COM = "127.2.1.1"
EXAMPLE = "127.3.1.1"


@pytest.fixture(autouse=True)
def _no_server_errors(lab: Lab) -> Iterator[None]:
    before = len(lab.errors)
    yield
    assert lab.errors[before:] == []


def ask(
    lab: Lab, where: str, qname: str, qtype: str = "A", *, tcp: bool = False, **kwargs: Any
) -> dns.message.Message:
    query = dns.message.make_query(qname, qtype, **kwargs)
    query.flags &= ~dns.flags.RD
    if tcp:
        return dns.query.tcp(query, where, timeout=TIMEOUT, port=lab.port)
    return dns.query.udp(query, where, timeout=TIMEOUT, port=lab.port)


def rrs(section: list[dns.rrset.RRset]) -> frozenset[tuple[str, str, str]]:
    return answer_tuples(section)


# -- zone data and topology -------------------------------------------------------------


def test_every_served_zone_has_a_loadable_file(lab: Lab) -> None:
    for origin in all_zones():
        zone = dns.zone.from_file(
            str(lab.zones_dir / zone_file(origin)), origin=origin, relativize=False
        )
        zone.check_origin()


def test_name_server_addresses_are_bound_or_declared_dead(lab: Lab) -> None:
    bound = {address for role in lab.servers for address in role.addresses}
    assert not bound & DEAD_ADDRESSES
    in_zone_data: set[str] = set()
    for origin in all_zones():
        zone = dns.zone.from_file(
            str(lab.zones_dir / zone_file(origin)), origin=origin, relativize=False
        )
        for _, _, rdata in zone.iterate_rdatas(dns.rdatatype.A):
            address: str = rdata.address  # type: ignore[attr-defined]
            if address.startswith("127."):
                in_zone_data.add(address)
    assert in_zone_data == bound | DEAD_ADDRESSES
    assert len(bound) == sum(len(role.addresses) for role in lab.servers)  # no duplicates


def test_hints_text_is_named_root_format(lab: Lab) -> None:
    text = lab.hints_text()
    records = [line.split() for line in text.splitlines() if line and not line.startswith(";")]
    assert [r for r in records if r[2] == "NS"] == [
        [".", "3600000", "NS", name] for name, _ in ROOT_HINTS
    ]
    assert [r for r in records if r[2] == "A"] == [
        [name, "3600000", "A", address] for name, address in ROOT_HINTS
    ]
    assert ROOT_HINTS[0][1] not in DEAD_ADDRESSES
    assert any(address in DEAD_ADDRESSES for _, address in ROOT_HINTS)


def test_lab_hints_fixture_writes_the_file(lab: Lab, lab_hints: Path) -> None:
    assert lab_hints.read_text() == lab.hints_text()


# -- authoritative answers ---------------------------------------------------------------


def test_root_refers_to_com_with_glue(lab: Lab) -> None:
    r = ask(lab, ROOT, "www.example.com.")
    assert r.rcode() == dns.rcode.NOERROR
    assert not r.flags & dns.flags.AA
    assert r.answer == []
    assert rrs(r.authority) == {("com.", "NS", "ns1.nic.com."), ("com.", "NS", "ns2.nic.com.")}
    assert rrs(r.additional) == {
        ("ns1.nic.com.", "A", "127.2.1.1"),
        ("ns2.nic.com.", "A", "127.2.1.2"),
    }


def test_com_refers_to_example_com_with_in_bailiwick_glue(lab: Lab) -> None:
    r = ask(lab, COM, "www.example.com.")
    assert not r.flags & dns.flags.AA
    assert rrs(r.authority) == {
        ("example.com.", "NS", "ns1.example.com."),
        ("example.com.", "NS", "ns2.example.com."),
    }
    assert rrs(r.additional) == {
        ("ns1.example.com.", "A", "127.3.1.1"),
        ("ns2.example.com.", "A", "127.3.1.2"),
    }


def test_glueless_referral_has_no_additional(lab: Lab) -> None:
    r = ask(lab, "127.2.3.1", "www.noglue.org.")
    assert rrs(r.authority) == {("noglue.org.", "NS", "ns1.provider.net.")}
    assert r.additional == []


def test_authoritative_answer(lab: Lab) -> None:
    r = ask(lab, EXAMPLE, "www.example.com.")
    assert r.flags & dns.flags.AA
    assert answer_of(r) == {("www.example.com.", "A", "192.0.2.1")}
    assert r.answer[0].ttl == 300


def test_priming_answer_carries_root_server_addresses(lab: Lab) -> None:
    r = ask(lab, ROOT, ".", "NS")
    assert r.flags & dns.flags.AA
    assert {t[2] for t in answer_of(r)} == {name for name, _ in ROOT_HINTS}
    assert rrs(r.additional) == {(name, "A", address) for name, address in ROOT_HINTS}


def test_nxdomain_has_soa_with_minimum_ttl(lab: Lab) -> None:
    r = ask(lab, EXAMPLE, "doesnotexist.example.com.")
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert r.flags & dns.flags.AA
    assert r.answer == []
    [soa] = r.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa.name == dns.name.from_text("example.com.")
    assert soa.ttl == 60  # min(SOA TTL 300, MINIMUM 60), RFC 2308 §3


@pytest.mark.parametrize("qname, qtype", [("www.example.com.", "MX"), ("wild.example.com.", "A")])
def test_nodata_has_soa(lab: Lab, qname: str, qtype: str) -> None:
    r = ask(lab, EXAMPLE, qname, qtype)
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AA
    assert r.answer == []
    assert [rrset.rdtype for rrset in r.authority] == [dns.rdatatype.SOA]


def test_wildcard_synthesis_keeps_query_case(lab: Lab) -> None:
    r = ask(lab, EXAMPLE, "AnyThing.WILD.example.com.")
    assert r.flags & dns.flags.AA
    assert r.question[0].name.to_text() == "AnyThing.WILD.example.com."
    assert answer_of(r) == {("anything.wild.example.com.", "A", "192.0.2.99")}


def test_cname_chased_in_zone_only(lab: Lab) -> None:
    same = ask(lab, EXAMPLE, "alias.example.com.")
    assert answer_of(same) == {
        ("alias.example.com.", "CNAME", "www.example.com."),
        ("www.example.com.", "A", "192.0.2.1"),
    }
    other = ask(lab, EXAMPLE, "dangling.example.com.")
    assert other.rcode() == dns.rcode.NOERROR
    assert answer_of(other) == {("dangling.example.com.", "CNAME", "nothing.example.net.")}
    target = ask(lab, "127.3.6.1", "nothing.example.net.")
    assert target.rcode() == dns.rcode.NXDOMAIN


def test_ds_at_a_cut_is_answered_by_the_parent(lab: Lab) -> None:
    r = ask(lab, COM, "example.com.", "DS")
    assert r.flags & dns.flags.AA
    assert r.answer == []
    assert [rrset.rdtype for rrset in r.authority] == [dns.rdatatype.SOA]


def test_mx_and_srv_get_additional_addresses(lab: Lab) -> None:
    mx = ask(lab, EXAMPLE, "example.com.", "MX")
    assert rrs(mx.additional) == {("mail.example.com.", "A", "192.0.2.25")}
    srv = ask(lab, EXAMPLE, "_sip._udp.example.com.", "SRV")
    assert rrs(srv.additional) == {("sip.example.com.", "A", "192.0.2.50")}


def test_out_of_zone_query_is_refused(lab: Lab) -> None:
    assert ask(lab, EXAMPLE, "www.google.com.").rcode() == dns.rcode.REFUSED


def test_copies_id_rd_and_edns(lab: Lab) -> None:
    query = dns.message.make_query("www.example.com.", "A", use_edns=0, payload=4096)
    r = dns.query.udp(query, EXAMPLE, timeout=TIMEOUT, port=lab.port)
    assert r.id == query.id
    assert r.flags & dns.flags.RD and not r.flags & dns.flags.RA
    assert r.edns == 0 and r.payload == 1232
    plain = ask(lab, EXAMPLE, "www.example.com.")
    assert plain.edns == -1 and not plain.flags & dns.flags.RD


# -- truncation and TCP ------------------------------------------------------------------


@pytest.mark.parametrize("edns", [False, True])
def test_big_answer_is_truncated_over_udp(lab: Lab, edns: bool) -> None:
    kwargs: dict[str, Any] = {"use_edns": 0, "payload": 1232} if edns else {}
    r = ask(lab, EXAMPLE, "big.example.com.", "TXT", **kwargs)
    assert r.flags & dns.flags.TC
    assert r.answer == r.authority == r.additional == []
    assert r.question[0].name == dns.name.from_text("big.example.com.")


def test_big_answer_fits_a_big_edns_buffer(lab: Lab) -> None:
    r = ask(lab, EXAMPLE, "big.example.com.", "TXT", use_edns=0, payload=4096)
    assert not r.flags & dns.flags.TC
    assert answer_of(r) == next(c.answer for c in CASES if c.id == "tcp")


def test_big_answer_whole_over_tcp(lab: Lab) -> None:
    r = ask(lab, EXAMPLE, "big.example.com.", "TXT", tcp=True)
    assert not r.flags & dns.flags.TC
    [rrset] = r.answer
    assert len(rrset[0].strings) == 30 and all(len(s) == 100 for s in rrset[0].strings)
    assert len(r.to_wire()) > 1232


def _tcp_exchange(sock: socket.socket, query: dns.message.Message) -> dns.message.Message:
    wire = query.to_wire()
    sock.sendall(struct.pack("!H", len(wire)) + wire)
    (length,) = struct.unpack("!H", _recv_exactly(sock, 2))
    return dns.message.from_wire(_recv_exactly(sock, length))


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def test_tcp_several_queries_per_connection(lab: Lab) -> None:
    with socket.create_connection((EXAMPLE, lab.port), timeout=TIMEOUT) as sock:
        for qname in ("www.example.com.", "mail.example.com.", "big.example.com."):
            query = dns.message.make_query(qname, "A")
            r = _tcp_exchange(sock, query)
            assert r.id == query.id
    assert [q.protocol for q in lab.queries[-3:]] == ["tcp", "tcp", "tcp"]


def test_tcp_idle_connection_is_closed() -> None:
    with (
        Lab(port=5301, tcp_idle_timeout=0.3) as quick,
        socket.create_connection((EXAMPLE, quick.port), timeout=2) as sock,
    ):
        _tcp_exchange(sock, dns.message.make_query("www.example.com.", "A"))
        started = time.monotonic()
        assert sock.recv(1) == b""  # EOF from the server
        assert time.monotonic() - started < 1.5


# -- robustness ----------------------------------------------------------------------------


def _udp_raw(lab: Lab, where: str, wire: bytes, count: int = 1) -> list[bytes]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        sock.sendto(wire, (where, lab.port))
        replies: list[bytes] = []
        try:
            while len(replies) < count + 1:
                replies.append(sock.recv(65535))
        except TimeoutError:
            pass
        return replies


def test_malformed_query_gets_formerr_and_server_survives(lab: Lab) -> None:
    query = dns.message.make_query("www.example.com.", "A").to_wire()
    broken = query[:12] + b"\x07www"  # question section cut short
    [reply] = _udp_raw(lab, EXAMPLE, broken)
    assert reply[:2] == query[:2]
    assert reply[3] & 0xF == dns.rcode.FORMERR
    assert _udp_raw(lab, EXAMPLE, b"\x01\x02\x03") == []  # shorter than a header: dropped
    assert ask(lab, EXAMPLE, "www.example.com.").rcode() == dns.rcode.NOERROR
    with socket.create_connection((EXAMPLE, lab.port), timeout=TIMEOUT) as sock:
        sock.sendall(struct.pack("!H", len(broken)) + broken)
        (length,) = struct.unpack("!H", _recv_exactly(sock, 2))
        assert _recv_exactly(sock, length)[3] & 0xF == dns.rcode.FORMERR


def test_mutated_packets_never_kill_a_server(lab: Lab) -> None:
    rng = random.Random(1035)
    base = bytearray(dns.message.make_query("www.example.com.", "A", use_edns=0).to_wire())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i in range(300):
            packet = bytearray(base)
            for _ in range(rng.randint(1, 6)):
                packet[rng.randrange(len(packet))] = rng.randrange(256)
            sock.sendto(bytes(packet[: rng.randint(0, len(packet))]), (EXAMPLE, lab.port))
            if i % 20 == 19:  # pace the burst: an unpaced one overflows the socket buffer
                assert ask(lab, EXAMPLE, "www.example.com.").rcode() == dns.rcode.NOERROR
    with socket.create_connection((EXAMPLE, lab.port), timeout=TIMEOUT) as conn:
        conn.sendall(struct.pack("!H", 40) + bytes(rng.randrange(256) for _ in range(40)))
    assert ask(lab, EXAMPLE, "www.example.com.").rcode() == dns.rcode.NOERROR
    assert ask(lab, EXAMPLE, "www.example.com.", tcp=True).rcode() == dns.rcode.NOERROR


def test_unknown_opcode_gets_notimp(lab: Lab) -> None:
    query = dns.message.make_query("www.example.com.", "A")
    query.set_opcode(dns.opcode.NOTIFY)
    [reply] = _udp_raw(lab, EXAMPLE, query.to_wire())
    assert dns.message.from_wire(reply).rcode() == dns.rcode.NOTIMP


def test_responses_are_not_answered(lab: Lab) -> None:
    query = dns.message.make_query("www.example.com.", "A")
    query.flags |= dns.flags.QR
    assert _udp_raw(lab, EXAMPLE, query.to_wire()) == []


def test_query_log(lab: Lab) -> None:
    lab.reset_queries()
    ask(lab, COM, "WWW.Example.com.", "AAAA")
    [record] = lab.queries
    assert (record.server, record.qname, record.qtype, record.protocol) == (
        COM,
        "WWW.Example.com.",
        "AAAA",
        "udp",
    )
    lab.reset_queries()
    assert lab.queries == []


def test_start_twice_and_port_clash_raise(lab: Lab) -> None:
    with pytest.raises(LabError, match="already started"):
        lab.start()
    with pytest.raises(LabError, match="cannot bind"):
        Lab(port=lab.port).start()
    assert ask(lab, ROOT, ".", "NS").rcode() == dns.rcode.NOERROR  # untouched


def test_stop_releases_every_socket() -> None:
    for _ in range(2):
        started = time.monotonic()
        with Lab(port=5302) as other:
            ask(other, EXAMPLE, "www.example.com.", tcp=True)
        assert time.monotonic() - started < 5
    assert not other.running


# -- misbehaving servers -----------------------------------------------------------------


def test_lame_server_refuses_everything(lab: Lab) -> None:
    for qname in ("www.lame.com.", "lame.com.", "www.example.com."):
        assert ask(lab, "127.4.1.1", qname).rcode() == dns.rcode.REFUSED
    assert ask(lab, "127.4.1.2", "www.lame.com.").rcode() == dns.rcode.NOERROR


def test_silent_server_never_answers(lab: Lab) -> None:
    query = dns.message.make_query("www.silent.com.", "A")
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(query, "127.4.3.1", timeout=0.3, port=lab.port)
    with pytest.raises(dns.exception.Timeout):
        dns.query.tcp(query, "127.4.3.1", timeout=0.3, port=lab.port)
    assert ask(lab, "127.4.3.2", "www.silent.com.").rcode() == dns.rcode.NOERROR


def test_dead_address_has_no_listener(lab: Lab) -> None:
    for address in DEAD_ADDRESSES:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.5)
            sock.connect((address, lab.port))
            sock.send(dns.message.make_query("www.dead.com.", "A").to_wire())
            with pytest.raises(ConnectionRefusedError):
                sock.recv(512)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, lab.port), timeout=0.5).close()


def test_wrong_first_server_sends_three_datagrams(lab: Lab) -> None:
    query = dns.message.make_query("www.wrongid.com.", "A")
    replies = [dns.message.from_wire(w) for w in _udp_raw(lab, "127.4.5.1", query.to_wire(), 3)]
    assert len(replies) == 3
    wrong_id, wrong_question, good = replies
    assert wrong_id.id != query.id
    assert wrong_question.id == query.id and wrong_question.question != query.question
    assert good.id == query.id and good.question == query.question
    assert query.is_response(good) and not query.is_response(wrong_question)
    assert answer_of(good) == {("www.wrongid.com.", "A", "203.0.113.50")}
    tcp = ask(lab, "127.4.5.1", "www.wrongid.com.", tcp=True)  # TCP: correct reply only
    assert tcp.flags & dns.flags.AA


def test_poison_server_adds_out_of_bailiwick_records(lab: Lab) -> None:
    r = ask(lab, "127.4.4.1", "www.poison.com.")
    poison = ("www.example.com.", "A", "203.0.113.66")
    assert answer_of(r) == {("www.poison.com.", "A", "203.0.113.40"), poison}
    assert poison in rrs(r.additional)
    assert ("example.com.", "NS", "ns1.poison.com.") in rrs(r.authority)


# -- the expected-answer table, checked by a tiny iterative walker ------------------------


class Walker:
    """A deliberately small iterative resolver over dnspython, to check CASES."""

    def __init__(self, port: int, hints: list[str]) -> None:
        self.port = port
        self.hints = hints

    def ask(
        self, servers: list[str], qname: dns.name.Name, qtype: dns.rdatatype.RdataType
    ) -> dns.message.Message:
        query = dns.message.make_query(qname, qtype)
        query.flags &= ~dns.flags.RD
        for server in servers:
            try:
                r = dns.query.udp(
                    query,
                    server,
                    timeout=0.5,
                    port=self.port,
                    ignore_errors=True,
                    ignore_unexpected=True,
                )
                if r.flags & dns.flags.TC:
                    r = dns.query.tcp(query, server, timeout=0.5, port=self.port)
            except (dns.exception.Timeout, OSError):
                continue
            if r.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                return r
        raise LookupError("no server answered")

    def resolve(
        self,
        qname: dns.name.Name,
        qtype: dns.rdatatype.RdataType,
        busy: frozenset[tuple[dns.name.Name, dns.rdatatype.RdataType]],
    ) -> tuple[str, list[dns.rrset.RRset]]:
        if (qname, qtype) in busy or len(busy) > 6:
            return "SERVFAIL", []
        busy = busy | {(qname, qtype)}
        chain: list[dns.rrset.RRset] = []
        current, zone, servers = qname, dns.name.root, self.hints
        for _ in range(30):
            try:
                r = self.ask(servers, current, qtype)
            except LookupError:
                return "SERVFAIL", chain
            followed = False
            while True:  # take only the records at the name being resolved (no poison)
                rrset = next((x for x in r.answer if x.name == current and x.rdtype == qtype), None)
                if rrset is not None:
                    return "NOERROR", [*chain, rrset]
                cname = next(
                    (x for x in r.answer if x.name == current and x.rdtype == dns.rdatatype.CNAME),
                    None,
                )
                if cname is None:
                    break
                chain.append(cname)
                current, followed = cname[0].target, True
            if r.rcode() == dns.rcode.NXDOMAIN:
                return "NXDOMAIN", chain
            if followed:  # restart at the root for the CNAME target
                zone, servers = dns.name.root, self.hints
                continue
            cuts = [
                x
                for x in r.authority
                if x.rdtype == dns.rdatatype.NS
                and current.is_subdomain(x.name)
                and x.name.is_subdomain(zone)
                and x.name != zone
            ]
            if r.flags & dns.flags.AA or not cuts:
                return "NOERROR", chain  # NODATA
            cut = cuts[0]
            targets = [rdata.target for rdata in cut]
            servers = [
                rdata.address
                for x in r.additional
                if x.rdtype == dns.rdatatype.A and x.name in targets and x.name.is_subdomain(zone)
                for rdata in x
            ]
            if not servers:  # glueless: resolve the name server names
                for target in targets:
                    _, found = self.resolve(target, dns.rdatatype.A, busy)
                    servers += [
                        rd.address for x in found if x.rdtype == dns.rdatatype.A for rd in x
                    ]
            zone = cut.name
        return "SERVFAIL", chain


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_case_table_matches_an_iterative_walk(lab: Lab, case: LabCase) -> None:
    walker = Walker(lab.port, [address for _, address in ROOT_HINTS])
    rcode, rrsets = walker.resolve(
        dns.name.from_text(case.qname), dns.rdatatype.from_text(case.qtype), frozenset()
    )
    assert (rcode, answer_tuples(rrsets)) == (case.rcode, case.answer)


def test_cases_cover_every_lab_feature() -> None:
    ids = {case.id for case in CASES}
    assert {
        "glue",
        "glueless",
        "cname-chain",
        "cname-nxdomain",
        "nxdomain",
        "nodata",
        "wildcard",
        "deep",
        "lame",
        "dead-ns",
        "dead-root-hint",
        "tcp",
        "loop",
        "poison",
        "wrong-first",
        "mx",
        "txt",
        "aaaa",
        "srv",
        "soa",
        "ptr",
        "google-a",
        "google-aaaa",
        "silent-ns",
        "ttl0",
        "cname-same-zone",
    } <= ids
    for case in CASES:
        assert case.qname.endswith(".") and case.qname == case.qname.lower()
        dns.rdatatype.from_text(case.qtype)
        dns.rcode.from_text(case.rcode)
        assert all(owner.endswith(".") for owner, _, _ in case.answer)
    assert all(role.zones or role.behaviour == "refused" for role in SERVERS)
