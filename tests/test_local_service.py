"""Local zones, forward zones and stub zones through the running service, asked with dig.

``python -m resolver`` walks the lab (as in tests/test_listener.py, which provides the
process and the dig parser) with a configuration file holding a hosts file, a zone
file, a forward zone and a stub zone.  The forwarder is a second ``python -m resolver``
iterating the lab on another port.  The query log says whether a question cost upstream
queries; the lab's own log says which of its servers were asked.

Run inside the network sandbox:
    /work/shared/tools/offline python -m pytest tests/test_local_service.py
"""

from __future__ import annotations

import ipaddress
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from resolver.lab import Lab
from resolver.lab.unbound import free_port
from tests.test_listener import ResolverProcess, dig, new_client

HOSTS = """\
# /etc/hosts, as seed 004 shows it
127.0.0.1 localhost
255.255.255.255 broadcasthost
::1 localhost
127.0.0.1 kubernetes.docker.internal
192.168.1.20 printer.lan printer
"""

CORP = """\
$ORIGIN corp.example.
$TTL 300
@       SOA  ns hostmaster 1 3600 600 86400 60
@       NS   ns
ns      A    10.0.0.53
www     A    10.0.0.80
alias   CNAME www
out     CNAME www.example.com.
"""

CORP_SOA = ("corp.example.", 60, "SOA",
            "ns.corp.example. hostmaster.corp.example. 1 3600 600 86400 60")  # fmt: skip


def soa(apex: str) -> tuple[str, int, str, str]:
    return (apex, 10800, "SOA", "localhost. nobody.invalid. 1 3600 1200 604800 10800")


def config_text(hosts: Path, corp: Path, forwarder_port: int, extra: str = "") -> str:
    return (
        f'hosts-file = "{hosts}"\n'
        f"{extra}"
        f'[local-zones]\n"corp.example." = "{corp}"\n'
        f'[forward-zones."example.net."]\nforwarders = ["127.0.0.1@{forwarder_port}"]\n'
        '[stub-zones."b.a.deep.lab."]\nservers = ["127.3.8.3@5300"]\n'
    )


@pytest.fixture(scope="module")
def forwarder(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResolverProcess]:
    """A second resolver iterating the lab: the target of the forward zone."""
    running = ResolverProcess(lab, tmp_path_factory.mktemp("forwarder"))
    try:
        yield running
    finally:
        assert running.stop() == 0


@pytest.fixture(scope="module")
def served(
    lab: Lab, forwarder: ResolverProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ResolverProcess]:
    directory = tmp_path_factory.mktemp("local")
    hosts, corp = directory / "hosts", directory / "corp.zone"
    hosts.write_text(HOSTS)
    corp.write_text(CORP)
    config = directory / "resolver.toml"
    config.write_text(config_text(hosts, corp, forwarder.port))
    # A list given as flags replaces the file's: this nodefault joins the lab's flags.
    running = ResolverProcess(lab, directory, "--config", str(config),
                              "--nodefault", "10.in-addr.arpa.")  # fmt: skip
    try:
        yield running
    finally:
        assert running.stop() == 0


@pytest.fixture(autouse=True)
def _no_lab_errors(lab: Lab) -> Iterator[None]:
    before = len(lab.errors)
    yield
    assert lab.errors[before:] == []


def upstream_of(process: ResolverProcess, client: str, name: str) -> int:
    """Upstream queries the queries of ``client`` for ``name`` cost, from the query log."""
    deadline = time.monotonic() + 5
    while not (logged := process.queries(client, name)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert logged, process.events()[-5:]
    return sum(int(entry["upstream"]) for entry in logged)


def lab_asked(lab: Lab, suffix: str) -> list[str]:
    return [q.server for q in lab.queries if q.qname.lower().endswith(suffix)]


# -- the default zones ------------------------------------------------------------------------


def test_dig_localhost_is_answered_here(served: ResolverProcess, lab: Lab) -> None:
    client = new_client()
    result = dig(served.port, "localhost.", "A", source=client)
    assert (result.status, result.answer) == ("NOERROR", {("localhost.", "A", "127.0.0.1")})
    assert dig(served.port, "localhost.", "AAAA", source=client).answer == {
        ("localhost.", "AAAA", "::1")
    }
    assert dig(served.port, "www.localhost.", "A", source=client).answer == {
        ("www.localhost.", "A", "127.0.0.1")
    }
    assert upstream_of(served, client, "www.localhost.") == 0
    assert lab_asked(lab, "localhost.") == []


def test_dig_x_loopback_is_localhost(served: ResolverProcess, lab: Lab) -> None:
    client = new_client()
    v4 = dig(served.port, "-x", "127.0.0.1", source=client)
    assert (v4.status, v4.answer) == (
        "NOERROR", {("1.0.0.127.in-addr.arpa.", "PTR", "localhost.")}
    )  # fmt: skip
    v6 = dig(served.port, "-x", "::1", source=client)
    assert v6.answer == {(ipaddress.ip_address("::1").reverse_pointer + ".", "PTR", "localhost.")}
    assert upstream_of(served, client, "1.0.0.127.in-addr.arpa.") == 0
    assert lab_asked(lab, "127.in-addr.arpa.") == []


def test_dig_x_a_private_address_is_nxdomain_with_the_zones_soa(
    served: ResolverProcess, lab: Lab
) -> None:
    client = new_client()
    result = dig(served.port, "-x", "192.168.7.7", source=client)
    assert result.status == "NXDOMAIN"
    assert result.sections["AUTHORITY"] == [soa("168.192.in-addr.arpa.")]
    assert upstream_of(served, client, "7.7.168.192.in-addr.arpa.") == 0
    assert lab_asked(lab, "168.192.in-addr.arpa.") == []
    special = dig(served.port, "anything.invalid.", "A", source=client)
    assert (special.status, special.sections["AUTHORITY"]) == ("NXDOMAIN", [soa("invalid.")])


def test_nodefault_leaves_a_default_zone_to_the_dns(served: ResolverProcess, lab: Lab) -> None:
    """10.in-addr.arpa. is nodefault: the lab's in-addr.arpa. server answers, with its SOA."""
    client = new_client()
    result = dig(served.port, "-x", "10.1.2.3", source=client)
    assert result.status == "NXDOMAIN"
    assert result.sections["AUTHORITY"][0][0] == "in-addr.arpa."  # the lab's SOA, not ours
    assert upstream_of(served, client, "3.2.1.10.in-addr.arpa.") >= 1


def test_without_nodefault_the_labs_documentation_zone_is_shadowed(
    lab: Lab, tmp_path: Path
) -> None:
    """Why the lab commands pass --nodefault: 2.0.192.in-addr.arpa. is a default zone."""
    port = free_port()
    hints = lab.write_hints(tmp_path / "lab.hints")
    process = subprocess.Popen(
        [sys.executable, "-m", "resolver", "--port", str(port), "--root-hints", str(hints),
         "--upstream-port", str(lab.port), "--control-socket", "none"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                result = dig(port, "-x", "192.0.2.1")
                break
            except AssertionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        assert result.status == "NXDOMAIN"
        assert result.sections["AUTHORITY"] == [soa("2.0.192.in-addr.arpa.")]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


# -- local data: a hosts file and a zone file -------------------------------------------------


def test_hosts_file_names_addresses_and_ptrs(served: ResolverProcess) -> None:
    client = new_client()
    result = dig(served.port, "printer.lan.", "A", source=client)
    assert (result.status, result.answer) == ("NOERROR",
                                             {("printer.lan.", "A", "192.168.1.20")})  # fmt: skip
    assert dig(served.port, "printer.", "A", source=client).answer == {
        ("printer.", "A", "192.168.1.20")
    }
    nodata = dig(served.port, "printer.lan.", "AAAA", source=client)
    assert (nodata.status, nodata.answer) == ("NOERROR", frozenset())
    ptr = dig(served.port, "-x", "192.168.1.20", source=client)
    assert ptr.answer == {("20.1.168.192.in-addr.arpa.", "PTR", "printer.lan.")}
    docker = dig(served.port, "kubernetes.docker.internal.", "A", source=client)
    assert docker.answer == {("kubernetes.docker.internal.", "A", "127.0.0.1")}
    assert upstream_of(served, client, "printer.lan.") == 0


def test_zone_file_answers_nxdomain_and_nodata(served: ResolverProcess, lab: Lab) -> None:
    client = new_client()
    found = dig(served.port, "www.corp.example.", "A", source=client)
    assert (found.status, found.answer) == ("NOERROR",
                                           {("www.corp.example.", "A", "10.0.0.80")})  # fmt: skip
    missing = dig(served.port, "nope.corp.example.", "A", source=client)
    assert (missing.status, missing.sections["AUTHORITY"]) == ("NXDOMAIN", [CORP_SOA])
    nodata = dig(served.port, "www.corp.example.", "MX", source=client)
    assert (nodata.status, nodata.answer, nodata.sections["AUTHORITY"]) == (
        "NOERROR", frozenset(), [CORP_SOA]
    )  # fmt: skip
    alias = dig(served.port, "alias.corp.example.", "A", source=client)
    assert alias.answer == {("alias.corp.example.", "CNAME", "www.corp.example."),
                            ("www.corp.example.", "A", "10.0.0.80")}  # fmt: skip
    assert upstream_of(served, client, "nope.corp.example.") == 0
    assert lab_asked(lab, "corp.example.") == []


def test_a_cname_out_of_local_data_is_resolved_by_the_walk(served: ResolverProcess) -> None:
    client = new_client()
    result = dig(served.port, "out.corp.example.", "A", source=client)
    assert (result.status, result.answer) == ("NOERROR", {
        ("out.corp.example.", "CNAME", "www.example.com."),
        ("www.example.com.", "A", "192.0.2.1")})  # fmt: skip


def test_rd0_gets_local_answers_too(served: ResolverProcess) -> None:
    result = dig(served.port, "+norecurse", "www.corp.example.", "A", source=new_client())
    assert (result.status, result.answer) == ("NOERROR",
                                             {("www.corp.example.", "A", "10.0.0.80")})  # fmt: skip


# -- forward and stub zones -------------------------------------------------------------------


def test_a_forward_zone_asks_the_forwarder(
    served: ResolverProcess, forwarder: ResolverProcess
) -> None:
    client = new_client()
    result = dig(served.port, "www.example.net.", "A", source=client)
    assert (result.status, result.answer) == (
        "NOERROR", {("www.example.net.", "A", "198.51.100.30")}
    )  # fmt: skip
    assert upstream_of(served, client, "www.example.net.") >= 1
    deadline = time.monotonic() + 5
    while not (asked := forwarder.queries("127.0.0.1", "www.example.net.")) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert len(asked) == 1 and asked[0]["upstream"] >= 1  # the forwarder walked the lab


def test_a_stub_zone_is_asked_directly(served: ResolverProcess, lab: Lab) -> None:
    """b.a.deep.lab. is four cuts down; the stub zone goes straight to its server."""
    lab.reset_queries()
    client = new_client()
    result = dig(served.port, "host.b.a.deep.lab.", "A", source=client)
    assert (result.status, result.answer) == (
        "NOERROR", {("host.b.a.deep.lab.", "A", "192.0.2.80")}
    )  # fmt: skip
    assert set(lab_asked(lab, "deep.lab.")) == {"127.3.8.3"}
    assert upstream_of(served, client, "host.b.a.deep.lab.") >= 1


# -- reload -----------------------------------------------------------------------------------


def wait_for(process: ResolverProcess, event: str, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    while len(found := [e for e in process.events() if e["event"] == event]) < count:
        assert time.monotonic() < deadline, process.events()[-5:]
        time.sleep(0.05)
    return found


def test_sighup_reloads_changed_local_data_and_keeps_it_when_a_file_is_bad(
    lab: Lab, forwarder: ResolverProcess, tmp_path: Path
) -> None:
    hosts, corp, config = tmp_path / "hosts", tmp_path / "corp.zone", tmp_path / "resolver.toml"
    hosts.write_text(HOSTS)
    corp.write_text(CORP)
    config.write_text(config_text(hosts, corp, forwarder.port))
    process = ResolverProcess(lab, tmp_path, "--config", str(config))
    try:
        port = process.port
        assert dig(port, "printer.lan.", "A").answer == {("printer.lan.", "A", "192.168.1.20")}
        assert dig(port, "www.corp.example.", "A").answer == {
            ("www.corp.example.", "A", "10.0.0.80")
        }
        assert dig(port, "nas.lan.", "A").status == "NXDOMAIN"  # from the lab's root

        hosts.write_text(HOSTS.replace("192.168.1.20", "192.168.1.21") + "10.1.1.1 nas.lan\n")
        corp.write_text(CORP.replace("10.0.0.80", "10.0.0.81"))
        process.process.send_signal(signal.SIGHUP)
        reloaded = wait_for(process, "zones_reloaded", 1)[0]
        assert set(reloaded["local_changed"]) == {  # type: ignore[arg-type]
            "corp.example.", "printer.lan.", "printer.", "168.192.in-addr.arpa.", "nas.lan.",
            "10.in-addr.arpa."}  # fmt: skip
        # the answers cached before the reload are gone: the new data is served at once
        assert dig(port, "printer.lan.", "A").answer == {("printer.lan.", "A", "192.168.1.21")}
        assert dig(port, "www.corp.example.", "A").answer == {
            ("www.corp.example.", "A", "10.0.0.81")
        }
        assert dig(port, "nas.lan.", "A").answer == {("nas.lan.", "A", "10.1.1.1")}
        ptr = dig(port, "-x", "10.1.1.1")
        assert ptr.answer == {("1.1.1.10.in-addr.arpa.", "PTR", "nas.lan.")}

        corp.write_text(CORP + "broken A 10.0.0.300\n")
        process.process.send_signal(signal.SIGHUP)
        failed = wait_for(process, "reload_failed", 1)[0]
        assert str(failed["error"]).startswith(f"{corp}:9: Octet 300")
        assert dig(port, "www.corp.example.", "A").answer == {
            ("www.corp.example.", "A", "10.0.0.81")
        }  # the data in force stays
    finally:
        assert process.stop() == 0
