"""RPZ zones read as rules (resolver.policy.rpz): trigger encodings, actions, errors, IXFR.

The encodings are those of the RPZ specification (draft-vixie-dnsop-dns-rpz-00 sections
4 and 5); each test writes a zone as an operator or a feed would and checks the rule
it becomes, or the one clear error a malformed record gives.
"""

from __future__ import annotations

import contextlib
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolver.policy import Action, PolicyZone, RpzError, Trigger, apply_changes, build_zone
from resolver.policy.index import name_wire
from resolver.policy.rpz import encode_prefix, parse_prefix, place_of, place_text
from resolver.wire import CLASS_IN, ResourceRecord, RRType
from resolver.wire.rdata import CNAME, SOA, A
from resolver.wire.zonefile import parse_zone

APEX = "rpz.example."
HEAD = "$TTL 60\n@ SOA localhost. hostmaster 7 60 60 3600 30\n@ NS localhost.\n"


def zone(body: str, max_records: int = 1000) -> PolicyZone:
    return build_zone(APEX, parse_zone(HEAD + body, APEX), max_records)


def qname_rule(z: PolicyZone, name: str, wildcard: bool = False) -> Action | None:
    rule = z.qname.table(wildcard).get(name_wire(name))
    return rule.action if rule is not None else None


# -- actions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "action"),
    [(".", Action.NXDOMAIN), ("*.", Action.NODATA), ("rpz-passthru.", Action.PASSTHRU),
     ("rpz-drop.", Action.DROP), ("rpz-tcp-only.", Action.TCP_ONLY),
     ("RPZ-Drop.", Action.DROP)],
)  # fmt: skip
def test_special_cname_targets_are_actions(target: str, action: Action) -> None:
    z = zone(f"bad.example.com CNAME {target}\n")
    assert qname_rule(z, "bad.example.com.") is action
    assert len(z) == 1 and z.serial == 7


def test_special_rules_are_shared_objects() -> None:
    z = zone("a.example CNAME .\nb.example CNAME .\n")
    assert z.qname.exact[name_wire("a.example.")] is z.qname.exact[name_wire("b.example.")]


def test_local_data_keeps_every_record_of_the_owner_even_apart() -> None:
    z = zone("sip.example A 192.0.2.7\nother.example CNAME .\nsip.example AAAA 2001:db8::7\n"
             "sip.example A 192.0.2.7\n")  # fmt: skip
    rule = z.qname.exact[name_wire("sip.example.")]
    assert rule.action is Action.LOCAL_DATA
    assert sorted(rr.rrtype for rr in rule.records) == [RRType.A, RRType.AAAA]  # no duplicate


def test_cname_to_another_name_is_a_redirect() -> None:
    rule = zone("redir.example CNAME garden.example.net.\n").qname.exact[
        name_wire("redir.example.")
    ]
    assert rule.action is Action.LOCAL_DATA
    assert rule.records[0].rdata == CNAME("garden.example.net.")


def test_wildcard_owner_is_a_rule_below_its_parent() -> None:
    z = zone("*.ads.example CNAME .\n")
    assert qname_rule(z, "ads.example.", wildcard=True) is Action.NXDOMAIN
    assert qname_rule(z, "ads.example.") is None


def test_dnssec_records_and_the_apex_are_no_rules() -> None:
    rrsig = "x.example RRSIG CNAME 8 3 60 20300101000000 20200101000000 1 rpz.example. AAAA\n"
    z = zone('@ TXT "feed metadata"\nx.example CNAME .\n' + rrsig)
    assert len(z) == 1


# -- triggers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "trigger", "prefix"),
    [("32.1.2.0.192.rpz-ip", Trigger.RESPONSE_IP, "192.0.2.1/32"),
     ("24.0.2.0.192.rpz-ip", Trigger.RESPONSE_IP, "192.0.2.0/24"),
     ("8.0.0.0.10.rpz-client-ip", Trigger.CLIENT_IP, "10.0.0.0/8"),
     ("32.53.2.0.192.rpz-nsip", Trigger.NSIP, "192.0.2.53/32"),
     ("128.1.zz.db8.2001.rpz-ip", Trigger.RESPONSE_IP, "2001:db8::1/128"),
     ("48.zz.db8.2001.rpz-ip", Trigger.RESPONSE_IP, "2001:db8::/48"),
     ("64.zz.1.db8.2001.rpz-client-ip", Trigger.CLIENT_IP, "2001:db8:1::/64"),
     ("128.1.0.0.0.0.0.db8.2001.rpz-ip", Trigger.RESPONSE_IP, "2001:db8::1/128"),
     ("128.1.zz.rpz-ip", Trigger.RESPONSE_IP, "::1/128")],
)  # fmt: skip
def test_ip_triggers(owner: str, trigger: Trigger, prefix: str) -> None:
    place = place_of(f"{owner}.{APEX}", 2)
    network = ipaddress.ip_network(prefix)
    assert place == (trigger, network.version, network.prefixlen, int(network.network_address))


def test_nsdname_triggers_exact_and_wildcard() -> None:
    z = zone("ns1.evil.net.rpz-nsdname CNAME .\n*.evil.org.rpz-nsdname CNAME *.\n")
    assert z.nsdname.exact[name_wire("ns1.evil.net.")].action is Action.NXDOMAIN
    assert z.nsdname.below[name_wire("evil.org.")].action is Action.NODATA


@pytest.mark.parametrize(
    ("owner", "why"),
    [("33.1.2.0.192.rpz-ip", "prefix length 33"),
     ("0.0.0.0.0.rpz-ip", "prefix length 0"),
     ("24.1.2.0.192.rpz-ip", "beyond the prefix"),
     ("32.256.2.0.192.rpz-ip", "IPv4 octet"),
     ("32.1.2.192.rpz-ip", "8 words"),
     ("48.zz.zz.2001.rpz-ip", "more than one 'zz'"),
     ("64.zz.1.2.3.4.5.6.7.8.rpz-ip", "stands for no word"),
     ("64.1ffff.zz.rpz-ip", "16-bit"),
     ("x.1.2.0.192.rpz-ip", "not a prefix length"),
     ("rpz-ip", "nothing before"),
     ("foo.rpz-unknown", "unknown RPZ trigger label")],
)  # fmt: skip
def test_malformed_triggers_are_one_clear_error(owner: str, why: str) -> None:
    with pytest.raises(RpzError, match=why) as error:
        zone(f"{owner} CNAME .\n")
    assert owner in str(error.value)


@pytest.mark.parametrize(
    ("body", "why"),
    [("x.example CNAME .\nx.example A 192.0.2.1\n", "a CNAME and other records"),
     ("x.example CNAME .\nx.example CNAME *.\n", "a CNAME and other records"),
     ("x.example CNAME rpz-bogus.\n", "unknown RPZ action target"),
     ("sub NS ns.elsewhere.\n", "NS records"),
     ("x.example DNAME y.example.\n", "DNAME records"),
     ("x.example CH A 192.0.2.1\n", "class 3"),
     ("x.example.other. CNAME .\n", "outside the zone")],
)  # fmt: skip
def test_malformed_records_are_one_clear_error(body: str, why: str) -> None:
    with pytest.raises(RpzError, match=why):
        zone(body)


def test_a_zone_without_soa_is_refused() -> None:
    with pytest.raises(RpzError, match="no SOA"):
        build_zone(APEX, parse_zone("$TTL 60\nx.example CNAME .\n", APEX), 10)


def test_more_records_than_max_entries_is_refused() -> None:
    body = "".join(f"n{i}.example CNAME .\n" for i in range(20))
    with pytest.raises(RpzError, match="max-entries"):
        zone(body, max_records=10)


# -- prefixes --------------------------------------------------------------------------------


@given(st.ip_addresses(), st.data())
def test_prefix_encoding_round_trips(address: ipaddress._BaseAddress, data: st.DataObject) -> None:
    bits = 32 if address.version == 4 else 128
    length = data.draw(st.integers(1, bits))
    network = ipaddress.ip_network(f"{address}/{length}", strict=False)
    value = int(network.network_address)
    text = encode_prefix(address.version, length, value)
    assert parse_prefix(text.split(".")) == (address.version, length, value)
    if address.version == 6:
        assert text.count("zz") <= 1


@given(st.lists(st.text("0123456789abcdefz.x-", min_size=1, max_size=6), min_size=1, max_size=10),
       st.sampled_from(["rpz-ip", "rpz-client-ip", "rpz-nsip", "rpz-nsdname", "www"]))  # fmt: skip
def test_any_owner_is_a_place_or_an_rpz_error(labels: list[str], marker: str) -> None:
    owner = ".".join([*labels, marker]) + "." + APEX
    with contextlib.suppress(RpzError):
        place_of(owner, 2)


def test_place_text_names_the_owner() -> None:
    place = place_of("24.0.2.0.192.rpz-ip." + APEX, 2)
    assert place is not None and place_text(place, APEX) == "24.0.2.0.192.rpz-ip." + APEX
    place = place_of("*.ads.example." + APEX, 2)
    assert place is not None and place_text(place, APEX) == "*.ads.example." + APEX


# -- incremental changes (RFC 1995) ------------------------------------------------------------


def rr(owner: str, rrtype: int, rdata: object) -> ResourceRecord:
    return ResourceRecord(owner + "." + APEX, rrtype, CLASS_IN, 60, rdata)  # type: ignore[arg-type]


def soa(serial: int) -> ResourceRecord:
    data = SOA("ns.rpz.example.", "h.rpz.example.", serial, 60, 60, 3600, 30)
    return ResourceRecord(APEX, RRType.SOA, CLASS_IN, 60, data)


def test_changes_add_delete_and_replace() -> None:
    z = zone("gone.example CNAME .\nlocal.example A 192.0.2.1\nlocal.example A 192.0.2.2\n")
    deleted = [
        rr("gone.example", RRType.CNAME, CNAME(".")),
        rr("local.example", RRType.A, A("192.0.2.1")),
    ]
    added = [
        rr("new.example", RRType.CNAME, CNAME("*.")),
        rr("24.0.2.0.192.rpz-ip", RRType.CNAME, CNAME(".")),
    ]
    changed = apply_changes(z, [(deleted, added)], soa(8))
    assert len(changed) == 4 and z.serial == 8
    assert qname_rule(z, "gone.example.") is None
    assert qname_rule(z, "new.example.") is Action.NODATA
    assert [r.rdata for r in z.qname.exact[name_wire("local.example.")].records] == [A("192.0.2.2")]
    assert len(z.response_ip) == 1


def test_several_versions_in_one_transfer_apply_in_order() -> None:
    z = zone("a.example CNAME .\n")
    first = (
        [rr("a.example", RRType.CNAME, CNAME("."))],
        [rr("a.example", RRType.CNAME, CNAME("*."))],
    )
    second = (
        [rr("a.example", RRType.CNAME, CNAME("*."))],
        [rr("a.example", RRType.CNAME, CNAME("rpz-drop."))],
    )
    apply_changes(z, [first, second], soa(9))
    assert qname_rule(z, "a.example.") is Action.DROP


def test_a_bad_change_leaves_the_zone_untouched() -> None:
    z = zone("a.example CNAME .\n")
    good = [rr("b.example", RRType.CNAME, CNAME("."))]
    missing = [rr("never.example", RRType.CNAME, CNAME("."))]
    with pytest.raises(RpzError, match="the zone lacks"):
        apply_changes(z, [([], good), (missing, [])], soa(8))
    bad = [rr("300.1.2.0.192.rpz-ip", RRType.CNAME, CNAME("."))]
    with pytest.raises(RpzError, match="prefix length"):
        apply_changes(z, [([], good + bad)], soa(8))
    assert qname_rule(z, "b.example.") is None and z.serial == 7 and len(z) == 1
