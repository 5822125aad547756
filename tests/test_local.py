"""Local zones (resolver/local): default zones, hosts files, zone files, the lookup, and the
engine asking them first.  In-process, no network: a local answer sends nothing upstream."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolver.iterate.answer import FailureKind
from resolver.local import (
    DEFAULT_ZONES,
    HostsError,
    LocalDataError,
    LocalSources,
    LocalZone,
    LocalZones,
    LocalZoneType,
    check_zone_names,
    default_zones,
    load_local_zones,
    parse_hosts,
)
from resolver.wire import CLASS_IN, Rcode, ResourceRecord, RRType
from resolver.wire.rdata import CNAME, A
from tests.fakes import (
    COM,
    EXAMPLE,
    ROOT_A,
    FakeNetwork,
    from_cache_only,
    make_engine,
    referral,
    resolve,
    texts,
)

DEFAULTS = load_local_zones(LocalSources())


def ask(zones: LocalZones, name: str, qtype: str) -> tuple[str, list[str], list[str]] | None:
    """(rcode, answer texts, authority texts), or None when the name is not local."""
    found = zones.lookup(name, RRType.from_text(qtype))
    if found is None:
        return None
    assert found.follow is None
    return Rcode.text(found.rcode), texts(found.answer), texts(found.authority)


def soa_of(apex: str) -> str:
    """The SOA every default zone has, with its negative-answer TTL (RFC 2308 section 3)."""
    return f"{apex} 10800 SOA localhost. nobody.invalid. 1 3600 1200 604800 10800"


# -- the default zones ------------------------------------------------------------------------


def test_localhost_and_every_name_below_it_are_loopback() -> None:
    assert ask(DEFAULTS, "localhost.", "A") == ("NOERROR", ["localhost. 10800 A 127.0.0.1"], [])
    assert ask(DEFAULTS, "LocalHost.", "AAAA") == ("NOERROR", ["localhost. 10800 AAAA ::1"], [])
    assert ask(DEFAULTS, "www.localhost.", "A") == (
        "NOERROR", ["www.localhost. 10800 A 127.0.0.1"], []
    )  # fmt: skip
    assert ask(DEFAULTS, "localhost.", "MX") == ("NOERROR", [], [soa_of("localhost.")])
    assert ask(DEFAULTS, "localhost.", "NS") == (
        "NOERROR", ["localhost. 10800 NS localhost."], []
    )  # fmt: skip


def test_loopback_reverse_names_are_localhost() -> None:
    v4 = ipaddress.ip_address("127.0.0.1").reverse_pointer + "."
    v6 = ipaddress.ip_address("::1").reverse_pointer + "."
    assert ask(DEFAULTS, v4, "PTR") == ("NOERROR", [f"{v4} 10800 PTR localhost."], [])
    assert ask(DEFAULTS, v6, "PTR") == ("NOERROR", [f"{v6} 10800 PTR localhost."], [])
    assert ask(DEFAULTS, "2.0.0.127.in-addr.arpa.", "PTR") == (
        "NXDOMAIN", [], [soa_of("127.in-addr.arpa.")]
    )  # fmt: skip
    assert ask(DEFAULTS, "0.0.127.in-addr.arpa.", "PTR") == (
        "NOERROR", [], [soa_of("127.in-addr.arpa.")]
    )  # an empty non-terminal above 1.0.0.127: NODATA, not NXDOMAIN


@pytest.mark.parametrize(
    ("address", "apex"),
    [
        ("10.1.2.3", "10.in-addr.arpa."),
        ("172.20.0.1", "20.172.in-addr.arpa."),
        ("192.168.1.1", "168.192.in-addr.arpa."),
        ("100.64.0.1", "64.100.in-addr.arpa."),
        ("169.254.1.1", "254.169.in-addr.arpa."),
        ("192.0.2.1", "2.0.192.in-addr.arpa."),
        ("0.1.2.3", "0.in-addr.arpa."),
        ("255.255.255.255", "255.255.255.255.in-addr.arpa."),
        ("fd00::1", "d.f.ip6.arpa."),
        ("fe80::1", "8.e.f.ip6.arpa."),
        ("2001:db8::1", "8.b.d.0.1.0.0.2.ip6.arpa."),
        ("::", "0." * 32 + "ip6.arpa."),
    ],
)
def test_private_and_special_reverse_names_are_nxdomain(address: str, apex: str) -> None:
    name = ipaddress.ip_address(address).reverse_pointer + "."
    expected = "NOERROR" if name == apex else "NXDOMAIN"  # the apex exists
    assert ask(DEFAULTS, name, "PTR") == (expected, [], [soa_of(apex)])


def test_special_use_names_are_nxdomain_and_apexes_answer_soa_and_ns() -> None:
    for apex in ("test.", "invalid.", "onion.", "home.arpa.", "resolver.arpa."):
        assert ask(DEFAULTS, f"anything.{apex}", "A") == ("NXDOMAIN", [], [soa_of(apex)])
        assert ask(DEFAULTS, apex, "SOA") == ("NOERROR", [soa_of(apex)], [])
        assert ask(DEFAULTS, apex, "NS") == ("NOERROR", [f"{apex} 10800 NS localhost."], [])
        assert ask(DEFAULTS, apex, "A") == ("NOERROR", [], [soa_of(apex)])


def test_public_names_and_public_reverse_names_are_not_local() -> None:
    for name in ("www.example.com.", "8.8.8.8.in-addr.arpa.", "1.0.16.172.in-addr.arpa.x.",
                 "1.1.15.172.in-addr.arpa.", "1.1.32.172.in-addr.arpa.", "arpa.", "."):  # fmt: skip
        assert ask(DEFAULTS, name, "A") is None, name


def test_ds_is_asked_of_the_parent_side() -> None:
    """DS for a zone apex lives in the parent (RFC 4035 section 2.4): ``test. DS`` is the
    root's to answer, ``x.test. DS`` is test.'s."""
    assert ask(DEFAULTS, "test.", "DS") is None
    assert ask(DEFAULTS, "x.test.", "DS") == ("NXDOMAIN", [], [soa_of("test.")])


def test_the_list_is_unbounds_plus_the_newer_special_use_names() -> None:
    # Unbound's 101 (3 loopback, onion., test., invalid., 95 AS112 zones) and 3 newer names
    assert len(DEFAULT_ZONES) == len(set(DEFAULT_ZONES)) == 104
    assert {"home.arpa.", "resolver.arpa.", "service.arpa."} <= set(DEFAULT_ZONES)
    assert DEFAULT_ZONES[:3] == ("localhost.", "127.in-addr.arpa.",
                                 "1." + "0." * 31 + "ip6.arpa.")  # fmt: skip
    assert {f"{n}.172.in-addr.arpa." for n in range(16, 32)} <= set(DEFAULT_ZONES)
    assert {f"{n}.100.in-addr.arpa." for n in range(64, 128)} <= set(DEFAULT_ZONES)


def test_nodefault_and_all_off() -> None:
    assert len(default_zones()) == len(DEFAULT_ZONES)
    fewer = load_local_zones(LocalSources(nodefault=("2.0.192.in-addr.arpa.", "TEST")))
    assert ask(fewer, "1.2.0.192.in-addr.arpa.", "PTR") is None
    assert ask(fewer, "x.test.", "A") is None
    assert ask(fewer, "x.invalid.", "A") is not None
    assert not load_local_zones(LocalSources(defaults=False))
    assert check_zone_names(["Test", "168.192.in-addr.arpa"]) == ("Test.", "168.192.in-addr.arpa.")
    with pytest.raises(ValueError, match=r"'example\.' is not one of the default local zones"):
        check_zone_names(["example."])


def test_a_forward_or_stub_zone_inside_a_default_zone_turns_it_off() -> None:
    zones = load_local_zones(LocalSources(delegated=("1.168.192.in-addr.arpa.", ".")))
    assert ask(zones, "5.1.168.192.in-addr.arpa.", "PTR") is None  # below the stub zone
    assert ask(zones, "5.2.168.192.in-addr.arpa.", "PTR") is None  # the default is off
    assert ask(zones, "localhost.", "A") is not None  # a forward zone for "." keeps the rest


# -- hosts files ------------------------------------------------------------------------------

SEED_HOSTS = """\
##
# Host Database
#
# localhost is used to configure the loopback interface
# when the system is booting. Do not change this entry.
##
127.0.0.1 localhost
255.255.255.255 broadcasthost
::1 localhost
# Added by Docker Desktop
# To allow the same kube context to work on the host and the container:
127.0.0.1 kubernetes.docker.internal
# End of section
192.168.1.20\tprinter printer.home.arpa  # trailing comment
fe80::1%lo0 linklocal
10.0.0.5 printer
"""


def test_the_seed_hosts_file_parses_to_addresses_and_ptrs() -> None:
    records = texts(parse_hosts(SEED_HOSTS, "hosts", ttl=60))
    assert records == [
        "localhost. 60 A 127.0.0.1",
        "1.0.0.127.in-addr.arpa. 60 PTR localhost.",
        "broadcasthost. 60 A 255.255.255.255",
        "255.255.255.255.in-addr.arpa. 60 PTR broadcasthost.",
        "localhost. 60 AAAA ::1",
        f"{ipaddress.ip_address('::1').reverse_pointer}. 60 PTR localhost.",
        "kubernetes.docker.internal. 60 A 127.0.0.1",  # the address has its PTR already
        "printer. 60 A 192.168.1.20",
        "printer.home.arpa. 60 A 192.168.1.20",
        "20.1.168.192.in-addr.arpa. 60 PTR printer.",
        "linklocal. 60 AAAA fe80::1",
        f"{ipaddress.ip_address('fe80::1').reverse_pointer}. 60 PTR linklocal.",
        "printer. 60 A 10.0.0.5",
        "5.0.0.10.in-addr.arpa. 60 PTR printer.",
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("192.0.2.300 host", "hosts:2: '192.0.2.300' does not appear to be an IPv4 or IPv6"),
        ("192.0.2.1", "hosts:2: an address without a name: '192.0.2.1'"),
        ("192.0.2.1 bad..name", "hosts:2: bad host name 'bad..name'"),
        ("192.0.2.1 " + "x" * 64, "hosts:2: bad host name"),
    ],
)
def test_hosts_errors_name_the_file_and_line(line: str, message: str) -> None:
    with pytest.raises(HostsError) as caught:
        parse_hosts("# first\n" + line + "\n", "hosts")
    assert str(caught.value).startswith(message)


LABEL = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
HOST = st.lists(LABEL, min_size=1, max_size=4).map(".".join)
ADDRESS = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)


@given(st.lists(st.tuples(ADDRESS, st.lists(HOST, min_size=1, max_size=3)), max_size=8))
def test_hosts_every_name_gets_its_addresses_and_every_address_one_ptr(
    lines: list[tuple[str, list[str]]],
) -> None:
    text = "".join(f"{address}\t{' '.join(names)}  # note\n" for address, names in lines)
    records = parse_hosts(text)
    for address, names in lines:
        rrtype = RRType.A if ":" not in address else RRType.AAAA
        for name in names:
            assert any(r.rrtype == rrtype and r.name == name + "." and
                       r.rdata.to_text() == str(ipaddress.ip_address(address))
                       for r in records)  # fmt: skip
    ptrs = [r for r in records if r.rrtype == RRType.PTR]
    assert len(ptrs) == len({str(ipaddress.ip_address(a)) for a, _ in lines})


# -- putting it together: zone files and hosts files ------------------------------------------

CORP = """\
$ORIGIN corp.example.
$TTL 300
@       SOA  ns hostmaster 7 3600 600 86400 60
@       NS   ns
ns      A    10.0.0.53
www     A    10.0.0.80
        AAAA fd00::80
alias   CNAME www
out     CNAME www.example.com.
gone    CNAME nothing
loop1   CNAME loop2
loop2   CNAME loop1
a.b.c   TXT  "deep"
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def corp(tmp_path: Path) -> LocalZones:
    hosts = write(tmp_path, "hosts", "10.0.0.9 laptop laptop.corp.example\n"
                                     "192.168.7.7 nas.home.arpa nas\n")  # fmt: skip
    files = (("corp.example.", write(tmp_path, "corp.zone", CORP)),)
    return load_local_zones(LocalSources(hosts_file=hosts, zone_files=files))


CORP_SOA = "corp.example. 60 SOA ns.corp.example. hostmaster.corp.example. 7 3600 600 86400 60"


def test_a_zone_file_answers_authoritatively_with_nxdomain_and_nodata(corp: LocalZones) -> None:
    assert ask(corp, "www.corp.example.", "A") == ("NOERROR", ["www.corp.example. 300 A 10.0.0.80"],
                                                   [])  # fmt: skip
    assert ask(corp, "www.corp.example.", "MX") == ("NOERROR", [], [CORP_SOA])
    assert ask(corp, "nope.corp.example.", "A") == ("NXDOMAIN", [], [CORP_SOA])
    assert ask(corp, "b.c.corp.example.", "A") == ("NOERROR", [], [CORP_SOA])  # empty non-terminal
    both = ["www.corp.example. 300 A 10.0.0.80", "www.corp.example. 300 AAAA fd00::80"]
    assert ask(corp, "www.corp.example.", "ANY") == ("NOERROR", both, [])


def test_cnames_are_followed_inside_local_data(corp: LocalZones) -> None:
    assert ask(corp, "alias.corp.example.", "A") == ("NOERROR", [
        "alias.corp.example. 300 CNAME www.corp.example.", "www.corp.example. 300 A 10.0.0.80"],
        [])  # fmt: skip
    assert ask(corp, "alias.corp.example.", "CNAME") == ("NOERROR", [
        "alias.corp.example. 300 CNAME www.corp.example."], [])  # fmt: skip
    assert ask(corp, "gone.corp.example.", "A") == ("NXDOMAIN", [
        "gone.corp.example. 300 CNAME nothing.corp.example."], [CORP_SOA])  # fmt: skip
    loop = corp.lookup("loop1.corp.example.", RRType.A)
    assert loop is not None and loop.rcode == Rcode.SERVFAIL


def test_a_cname_leaving_local_data_names_what_to_resolve(corp: LocalZones) -> None:
    found = corp.lookup("out.corp.example.", RRType.A)
    assert found is not None and found.follow == "www.example.com."
    assert texts(found.answer) == ["out.corp.example. 300 CNAME www.example.com."]


def test_hosts_names_join_the_zone_that_covers_them_or_stand_alone(corp: LocalZones) -> None:
    assert ask(corp, "laptop.corp.example.", "A") == (
        "NOERROR", ["laptop.corp.example. 3600 A 10.0.0.9"], []
    )  # fmt: skip
    assert ask(corp, "nas.home.arpa.", "A") == (
        "NOERROR", ["nas.home.arpa. 3600 A 192.168.7.7"], []
    )  # fmt: skip
    assert ask(corp, "7.7.168.192.in-addr.arpa.", "PTR") == (
        "NOERROR", ["7.7.168.192.in-addr.arpa. 3600 PTR nas.home.arpa."], []
    )  # fmt: skip
    # outside every zone: a transparent zone of its own; NODATA for its other types,
    # other names below it are not local
    assert ask(corp, "laptop.", "A") == ("NOERROR", ["laptop. 3600 A 10.0.0.9"], [])
    assert ask(corp, "laptop.", "AAAA") == ("NOERROR", [], [])
    assert ask(corp, "sub.laptop.", "A") is None
    zone = corp.get("laptop.")
    assert zone is not None and zone.kind is LocalZoneType.TRANSPARENT


def test_a_zone_file_replaces_the_default_zone_of_its_name(tmp_path: Path) -> None:
    text = "$TTL 60\n@ SOA ns hostmaster 1 2 3 4 5\n1.2.3 PTR host.corp.example.\n"
    files = (("10.in-addr.arpa.", write(tmp_path, "ten.zone", text)),)
    zones = load_local_zones(LocalSources(zone_files=files))
    assert ask(zones, "1.2.3.10.in-addr.arpa.", "PTR") == (
        "NOERROR", ["1.2.3.10.in-addr.arpa. 60 PTR host.corp.example."], []
    )  # fmt: skip
    assert ask(zones, "9.9.9.10.in-addr.arpa.", "PTR") == (
        "NXDOMAIN", [], ["10.in-addr.arpa. 5 SOA ns.10.in-addr.arpa. hostmaster.10.in-addr.arpa. "
                         "1 2 3 4 5"]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("@ 60 NS ns\n", "no SOA record at the apex corp.example."),
        ("@ 60 SOA ns h 1 2 3 4 5\nwww 60 A 10.0.0.300\n", ":2: Octet 300"),
        ("@ 60 SOA ns h 1 2 3 4 5\nwww.other. 60 A 10.0.0.1\n", "outside the zone corp.example."),
        ("@ 60 SOA ns h 1 2 3 4 5\nsub 60 NS ns.sub\n", "delegations are not served"),
        ("@ 60 SOA ns h 1 2 3 4 5\nx 60 CNAME y\nx 60 A 10.0.0.1\n", "a CNAME and other data"),
        ("@ 60 SOA ns h 1 2 3 4 5\nx 60 CH A 10.0.0.1\n", "only class IN is served"),
    ],
)
def test_a_bad_zone_file_is_an_error_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "bad.zone", text)
    with pytest.raises(LocalDataError) as caught:
        load_local_zones(LocalSources(zone_files=(("corp.example.", path),)))
    assert str(caught.value).startswith(path)
    assert message in str(caught.value)


def test_unreadable_files_are_errors_naming_them(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    with pytest.raises(LocalDataError, match=f"^{missing}: cannot read: No such file"):
        load_local_zones(LocalSources(hosts_file=missing))
    with pytest.raises(LocalDataError, match=f"^{missing}:0: cannot read: No such file"):
        load_local_zones(LocalSources(zone_files=(("corp.example.", missing),)))


def test_changed_lists_the_zones_a_reload_must_flush(tmp_path: Path) -> None:
    before = load_local_zones(LocalSources(hosts_file=write(tmp_path, "h1", "10.0.0.1 a\n")))
    hosts = write(tmp_path, "h2", "10.0.0.2 a\n")
    after = load_local_zones(LocalSources(nodefault=("test.",), hosts_file=hosts))
    # the hosts name, the default zone its PTR went into, and the default zone turned off
    assert before.changed(after) == ["10.in-addr.arpa.", "a.", "test."]
    assert before.changed(before) == []


def test_a_zone_refuses_records_outside_it() -> None:
    zone = LocalZone("corp.example.", LocalZoneType.STATIC)
    with pytest.raises(ValueError, match="not in the zone"):
        zone.add(ResourceRecord("example.", RRType.A, CLASS_IN, 60, A("192.0.2.1")))
    zone.add(ResourceRecord("x.corp.example.", RRType.CNAME, CLASS_IN, 60, CNAME("y.")))
    assert zone.holds("X.Corp.Example.", RRType.CNAME)


# -- the engine asks them first ---------------------------------------------------------------


def test_the_engine_answers_local_names_without_an_upstream_query(corp: LocalZones) -> None:
    net = FakeNetwork()
    engine, _, _ = make_engine(net)
    engine.reconfigure(local=corp)
    for name, qtype, rcode in [("localhost.", "A", Rcode.NOERROR),
                               ("1.0.0.127.in-addr.arpa.", "PTR", Rcode.NOERROR),
                               ("5.1.168.192.in-addr.arpa.", "PTR", Rcode.NXDOMAIN),
                               ("nope.corp.example.", "A", Rcode.NXDOMAIN),
                               ("www.corp.example.", "TXT", Rcode.NOERROR)]:  # fmt: skip
        result = resolve(engine, name, qtype)
        assert (result.rcode, result.upstream_queries, result.from_cache) == (rcode, 0, True)
        cached = from_cache_only(engine, name, RRType.from_text(qtype))
        assert cached is not None and cached.rcode == rcode
    assert net.log == []
    loop = resolve(engine, "loop1.corp.example.", "A")
    assert loop.failure is not None and loop.failure.kind is FailureKind.LIMIT
    assert "CNAME loop in local data" in loop.failure.text


def test_a_local_cname_to_a_public_name_is_completed_by_the_walk(corp: LocalZones) -> None:
    net = FakeNetwork()
    net.servers[ROOT_A] = lambda q, t: referral(q, RRType.text(t), "com.", [("ns.nic.com.", COM)])
    net.servers[COM] = lambda q, t: referral(
        q, RRType.text(t), "example.com.", [("ns1.example.com.", EXAMPLE)]
    )
    net.answers(EXAMPLE, "www.example.com.", "A", "www.example.com. 300 A 192.0.2.1")
    engine, _, _ = make_engine(net)
    engine.reconfigure(local=corp)
    assert from_cache_only(engine, "out.corp.example.", RRType.A) is None  # nothing cached yet
    result = resolve(engine, "out.corp.example.", "A")
    assert result.rcode == Rcode.NOERROR and result.upstream_queries > 0
    assert texts(result.answer) == ["out.corp.example. 300 CNAME www.example.com.",
                                    "www.example.com. 300 A 192.0.2.1"]  # fmt: skip
    cached = from_cache_only(engine, "out.corp.example.", RRType.A)
    assert cached is not None and texts(cached.answer)[1:] == ["www.example.com. 300 A 192.0.2.1"]
