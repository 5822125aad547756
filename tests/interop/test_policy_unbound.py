"""Response policy against real software: RPZ zones served by NSD and Knot, transferred by
our resolver and by Unbound (``rpz:`` with ``module-config: "respip validator iterator"``),
both resolving the lab served by NSD, and a table of triggers and actions where both must
answer alike.

Three policy zones, in this order in both configurations:

- ``first.rpz.`` (a file): a PASSTHRU that must win over the next zone's wildcard;
- ``rpz.example.`` (NSD, AXFR; NSD 4.6 serves no IXFR): one rule per trigger and action;
- ``over.rpz.`` (a file) with its action overridden to NODATA (``action-override`` here,
  ``rpz-action-override`` in Unbound);

and ``ixfr.rpz.`` from Knot, changed during the test: Knot sends NOTIFY to both, both
transfer the difference (IXFR, RFC 1995) and block the new name.

Where the two differ on purpose, the table does not compare (each is said in
docs/operations.md): we add the policy zone's SOA to NXDOMAIN and NODATA answers (as BIND
does; Unbound 1.17 sends none) and an Extended DNS Error naming the zone (Unbound 1.17
sends none for RPZ).  The hostile cases (a malformed record, a transfer cut half way) are
given to both too, and what each does is checked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from resolver.lab.nsd import NsdLab
from resolver.lab.rpz_servers import KnotPrimary, NsdPrimary, RpzUnbound, rpz_clause
from resolver.lab.unbound import OurResolver, free_port
from tests.interop.conftest import _not_ready
from tests.test_control import control
from tests.test_policy_service import XFR_ZONE, ScriptedPrimary

pytestmark = pytest.mark.interop

HEAD = (
    "$TTL 60\n@ SOA localhost. hostmaster.localhost. {serial} 3600 600 86400 30\n@ NS localhost.\n"
)
MAIN = """\
www.example.com CNAME .
mail.example.com CNAME *.
sip.example.com A 192.0.2.99
sip.example.com AAAA 2001:db8::99
*.wild.example.com CNAME .
dangling.example.com CNAME rpz-drop.
ns2.example.com CNAME rpz-tcp-only.
redir.example.com CNAME ns1.example.com.
redir2.example.com CNAME www.google.com.
b.chain.org CNAME .
32.14.100.51.198.rpz-ip CNAME .
48.zz.4860.db8.2001.rpz-ip CNAME *.
32.20.100.51.198.rpz-ip A 192.0.2.77
ns1.b.a.deep.lab.rpz-nsdname CNAME .
32.1.6.3.127.rpz-nsip CNAME *.
32.99.0.0.127.rpz-client-ip CNAME *.
"""
FIRST = "keep.wild.example.com CNAME rpz-passthru.\n"
OVER = "ttl0.example.com A 192.0.2.5\n"
IXFR = "ns1.chain.net CNAME .\n"


@dataclass(frozen=True)
class Case:
    """A question, and what both resolvers must answer (None: no answer at all)."""

    name: str
    rdtype: str
    rcode: str | None
    answer: frozenset[tuple[str, str, str]] = frozenset()
    source: str = "127.0.0.1"
    what: str = ""


def rrs(*records: str) -> frozenset[tuple[str, str, str]]:
    return frozenset(tuple(record.split(None, 2)) for record in records)  # type: ignore[misc]


CASES = [
    Case("www.example.com.", "A", "NXDOMAIN", what="QNAME, NXDOMAIN (CNAME .)"),
    Case("mail.example.com.", "A", "NOERROR", what="QNAME, NODATA (CNAME *.)"),
    Case("sip.example.com.", "A", "NOERROR", rrs("sip.example.com. A 192.0.2.99"),
         what="QNAME, local data"),
    Case("sip.example.com.", "AAAA", "NOERROR", rrs("sip.example.com. AAAA 2001:db8::99"),
         what="QNAME, local data"),
    Case("sip.example.com.", "TXT", "NOERROR", what="QNAME, local data without the type"),
    Case("a.wild.example.com.", "A", "NXDOMAIN", what="QNAME wildcard"),
    Case("wild.example.com.", "A", "NOERROR", what="a wildcard does not cover its parent"),
    Case("keep.wild.example.com.", "A", "NOERROR", rrs("keep.wild.example.com. A 192.0.2.99"),
         what="PASSTHRU in an earlier zone wins"),
    Case("redir.example.com.", "A", "NOERROR",
         rrs("redir.example.com. CNAME ns1.example.com.", "ns1.example.com. A 127.3.1.1"),
         what="local data CNAME, followed"),
    Case("redir.example.com.", "CNAME", "NOERROR", rrs("redir.example.com. CNAME ns1.example.com."),
         what="local data CNAME, asked for"),
    Case("redir2.example.com.", "A", "NXDOMAIN", rrs("redir2.example.com. CNAME www.google.com."),
         what="a redirect to an answer a response-IP rule blocks"),
    Case("www.chain.com.", "A", "NXDOMAIN",
         rrs("www.chain.com. CNAME a.chain.net.", "a.chain.net. CNAME b.chain.org."),
         what="QNAME on a CNAME target: the chain up to it kept"),
    Case("www.google.com.", "A", "NXDOMAIN", what="response IP (IPv4 /32), NXDOMAIN"),
    Case("www.google.com.", "AAAA", "NOERROR", what="response IP (IPv6 /48), NODATA"),
    Case("www.noglue.org.", "A", "NOERROR", rrs("www.noglue.org. A 192.0.2.77"),
         what="response IP, local data"),
    Case("host.b.a.deep.lab.", "A", "NXDOMAIN", what="NSDNAME"),
    Case("www.example.net.", "A", "NOERROR", what="NSIP, NODATA"),
    Case("ns1.example.com.", "A", "NOERROR", source="127.0.0.99", what="client IP, NODATA"),
    Case("ns1.example.com.", "A", "NOERROR", rrs("ns1.example.com. A 127.3.1.1"),
         what="no rule"),
    Case("ttl0.example.com.", "A", "NOERROR", what="a zone's action overridden to NODATA"),
    Case("dangling.example.com.", "A", None, what="DROP"),
]  # fmt: skip


def zone_file(path: Path, body: str, serial: int = 1) -> Path:
    path.write_text(HEAD.format(serial=serial) + body)
    return path


def ask(port: int, case: Case) -> dns.message.Message | None:
    """The reply, None if none came (2 s for a DROP, else 10 s: a cold walk on a busy
    machine takes seconds)."""
    query = dns.message.make_query(case.name, case.rdtype, use_edns=0, payload=1232)
    wait = 2 if case.rcode is None else 10
    try:
        reply, _ = dns.query.udp_with_fallback(query, "127.0.0.1", timeout=wait, port=port,
                                                source=case.source)  # fmt: skip
    except dns.exception.Timeout:
        return None
    return reply


def seen(reply: dns.message.Message | None) -> tuple[str | None, frozenset[tuple[str, str, str]]]:
    if reply is None:
        return None, frozenset()
    answer = frozenset(
        (rrset.name.to_text().lower(), dns.rdatatype.to_text(rrset.rdtype), rdata.to_text())
        for rrset in reply.answer
        for rdata in rrset
    )
    return dns.rcode.to_text(reply.rcode()), answer


@dataclass
class Setup:
    ours: OurResolver
    unbound: RpzUnbound
    nsd: NsdPrimary
    knot: KnotPrimary
    scripted: ScriptedPrimary
    directory: Path

    def events(self) -> list[dict[str, object]]:
        lines = (self.ours.workdir / "stderr.log").read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


def wait_until(check: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def blocked(port: int, name: str) -> bool:
    """NXDOMAIN for a name the lab has (so a rule gave it)."""
    reply = ask(port, Case(name, "A", "NXDOMAIN"))
    return reply is not None and reply.rcode() == dns.rcode.NXDOMAIN


@pytest.fixture(scope="module")
def knot_ready(interop_ready: None) -> None:
    from resolver.lab.nsd import find_tool

    _not_ready(None if find_tool("knotd") else "missing knotd (apt-get install knot)", "IXFR tests")


@pytest.fixture(scope="module")
def setup(
    knot_ready: None, nsd_lab: NsdLab, nsd_hints: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    directory = tmp_path_factory.mktemp("policy-interop")
    ours_port, unbound_port = free_port(), free_port()
    targets = [("127.0.0.1", ours_port), ("127.0.0.1", unbound_port)]
    nsd = NsdPrimary(directory / "nsd", {"rpz.example.": zone_file(directory / "main.zone", MAIN)},
                     free_port(), notify=targets)  # fmt: skip
    knot = KnotPrimary(directory / "knot", {"ixfr.rpz.": zone_file(directory / "ixfr.zone", IXFR)},
                       free_port(), notify=targets)  # fmt: skip
    scripted = ScriptedPrimary()  # rpz.xfr.: a primary in Python, to cut a transfer
    scripted.names = ["ns1.google.com"]
    first = zone_file(directory / "first.zone", FIRST)
    over = zone_file(directory / "over.zone", OVER)
    config = directory / "ours.toml"
    config.write_text(
        f'[[policy-zone]]\nname = "first.rpz."\nfile = "{first}"\n'
        f'[[policy-zone]]\nname = "rpz.example."\nprimary = "{nsd.spec}"\n'
        f'[[policy-zone]]\nname = "over.rpz."\nfile = "{over}"\naction-override = "nodata"\n'
        f'[[policy-zone]]\nname = "ixfr.rpz."\nprimary = "{knot.spec}"\n'
        f'[[policy-zone]]\nname = "{XFR_ZONE}"\nprimary = "127.0.0.1@{scripted.port}"\n'
    )
    clauses = [
        rpz_clause("first.rpz.", zonefile=first),
        rpz_clause("rpz.example.", primary=nsd.spec),
        rpz_clause("over.rpz.", zonefile=over, extra="    rpz-action-override: nodata\n"),
        rpz_clause("ixfr.rpz.", primary=knot.spec),
        rpz_clause(XFR_ZONE, primary=f"127.0.0.1@{scripted.port}"),
    ]
    with nsd, knot:
        ours = OurResolver(directory / "ours", nsd_hints, ours_port, "--config", str(config))
        unbound = RpzUnbound(directory / "unbound", nsd_hints, unbound_port, clauses)
        with ours, unbound:
            assert (ours.port, unbound.port) == (ours_port, unbound_port), "NOTIFY targets moved"
            for port in (ours.port, unbound.port):
                wait_until(lambda p=port: blocked(p, "www.example.com.") and  # type: ignore[misc]
                           blocked(p, "ns1.chain.net.") and blocked(p, "ns1.google.com."),
                           f"the zones on port {port}")  # fmt: skip
            try:
                yield Setup(ours, unbound, nsd, knot, scripted, directory)
            finally:
                scripted.close()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.name}{c.rdtype}-{c.what}" for c in CASES])
def test_both_answer_alike(setup: Setup, case: Case) -> None:
    ours, theirs = seen(ask(setup.ours.port, case)), seen(ask(setup.unbound.port, case))
    expected = (case.rcode, case.answer)
    assert (ours, theirs) == (expected, expected)


def test_tcp_only_truncates_over_udp_in_both(setup: Setup) -> None:
    for port in (setup.ours.port, setup.unbound.port):
        query = dns.message.make_query("ns2.example.com.", "A", use_edns=0, payload=1232)
        udp = dns.query.udp(query, "127.0.0.1", timeout=2, port=port)
        assert udp.flags & dns.flags.TC and not udp.answer
        tcp = dns.query.tcp(query, "127.0.0.1", timeout=2, port=port)
        assert seen(tcp) == ("NOERROR", rrs("ns2.example.com. A 127.3.1.2"))


def test_what_we_add_and_unbound_does_not(setup: Setup) -> None:
    """The differences the table leaves out: the zone's SOA, and the EDE naming it."""
    case = Case("www.example.com.", "A", "NXDOMAIN")
    ours, theirs = ask(setup.ours.port, case), ask(setup.unbound.port, case)
    assert ours is not None and theirs is not None
    assert [r.name.to_text() for r in ours.authority] == ["rpz.example."] and not theirs.authority
    ours_ede = [o for o in ours.options if o.otype == 15]
    assert [(o.code, o.text) for o in ours_ede] == [(15, "response policy rpz.example.")]  # type: ignore[attr-defined]
    assert not [o for o in theirs.options if o.otype == 15]


def test_notify_and_ixfr_from_knot_reach_both(setup: Setup) -> None:
    zone_file(setup.directory / "ixfr.zone", IXFR + "ns1.chain.org CNAME .\n", serial=2)
    setup.knot.reload()
    setup.knot.wait_serial("ixfr.rpz.", 2)
    for port in (setup.ours.port, setup.unbound.port):
        wait_until(lambda p=port: blocked(p, "ns1.chain.org."), f"IXFR on port {port}")  # type: ignore[misc]
    events = setup.events()
    assert any(e["event"] == "notify" and e["zone"] == "ixfr.rpz." for e in events)
    loads = [e for e in events if e["event"] == "policy_zone_loaded" and e["zone"] == "ixfr.rpz."]
    assert loads[-1]["how"] == "ixfr" and loads[-1]["serial"] == 2 and loads[-1]["changes"] == 1


def test_a_changed_zone_on_nsd_reaches_both(setup: Setup) -> None:
    zone_file(setup.directory / "main.zone", MAIN + "www.poison.com CNAME .\n", serial=2)
    setup.nsd.reload()
    setup.nsd.wait_serial("rpz.example.", 2)
    for port in (setup.ours.port, setup.unbound.port):
        wait_until(lambda p=port: blocked(p, "www.poison.com."), f"AXFR on port {port}")  # type: ignore[misc]
    done = control(setup.ours.workdir / "control.sock", "policy", "list")
    assert "rpz.example. kind=rpz" in done.stdout and " serial=2 " in done.stdout


# -- hostile input, given to both ---------------------------------------------------------------


def notify(zone: str, port: int) -> None:
    """A NOTIFY as a primary at 127.0.0.1 sends it (RFC 1996)."""
    message = dns.message.make_query(zone, "SOA")
    message.flags = dns.flags.AA
    message.set_opcode(dns.opcode.NOTIFY)
    dns.query.udp(message, "127.0.0.1", timeout=2, port=port, source="127.0.0.1")


def test_a_transfer_cut_half_way(setup: Setup) -> None:
    """Serial 2 announced, its transfer cut before the closing SOA: both keep serial 1.
    Then served whole: both take it."""
    scripted = setup.scripted
    scripted.serial, scripted.names, scripted.cut = 2, ["ns1.chain.com"], True
    before = len(setup.events())
    for port in (setup.ours.port, setup.unbound.port):
        notify(XFR_ZONE, port)
    wait_until(lambda: any(e["event"] == "policy_zone_not_loaded" and e["zone"] == XFR_ZONE
                           for e in setup.events()[before:]), "our failed transfer")  # fmt: skip
    time.sleep(1)  # Unbound's try too
    for port in (setup.ours.port, setup.unbound.port):
        assert blocked(port, "ns1.google.com.") and not blocked(port, "ns1.chain.com.")
    failed = [e for e in setup.events()[before:] if e["event"] == "policy_zone_not_loaded"]
    assert "before the closing SOA" in str(failed[0]["error"]) and failed[0]["kept_serial"] == 1
    scripted.cut = False
    for port in (setup.ours.port, setup.unbound.port):
        notify(XFR_ZONE, port)
        wait_until(lambda p=port: blocked(p, "ns1.chain.com."), f"serial 2 on {port}")  # type: ignore[misc]
        assert not blocked(port, "ns1.google.com.")


def test_a_malformed_record(setup: Setup) -> None:
    """A version of the zone with a malformed trigger: we keep the version in force (one
    line says why); Unbound takes the new version, the malformed record left out."""
    zone_file(setup.directory / "main.zone",
              MAIN + "www.wrongid.com CNAME .\n33.1.2.0.192.rpz-ip CNAME .\n",
              serial=3)  # fmt: skip
    before = len(setup.events())
    setup.nsd.reload()
    setup.nsd.wait_serial("rpz.example.", 3)
    wait_until(lambda: blocked(setup.unbound.port, "www.wrongid.com."), "Unbound's load")
    wait_until(lambda: any(e["event"] == "policy_zone_not_loaded" for e in setup.events()[before:]),
               "our refusal")  # fmt: skip
    (failed,) = [e for e in setup.events()[before:] if e["event"] == "policy_zone_not_loaded"]
    assert "33.1.2.0.192.rpz-ip.rpz.example.: IPv4 prefix length 33 is not 1 to 32" in str(
        failed["error"])  # fmt: skip
    assert failed["kept_serial"] == 2
    assert not blocked(setup.ours.port, "www.wrongid.com.")
    assert blocked(setup.ours.port, "www.poison.com.")  # serial 2's rule, still in force
    # Unbound 1.17.1 (verbosity 1) says nothing of the record it left out.


def test_a_notify_from_elsewhere_is_refused_by_both(setup: Setup) -> None:
    """RFC 1996 section 3.10: a NOTIFY is taken from the zone's primary only."""
    for port in (setup.ours.port, setup.unbound.port):
        message = dns.message.make_query("rpz.example.", "SOA")
        message.flags = dns.flags.AA
        message.set_opcode(dns.opcode.NOTIFY)
        reply = dns.query.udp(message, "127.0.0.1", timeout=2, port=port, source="127.0.0.66")
        assert reply.rcode() == dns.rcode.REFUSED, port
