"""Which rule applies (resolver.policy.decide and .index): the RPZ precedence across zones
and within one (draft-vixie-dnsop-dns-rpz-00 section 5.4, BIND's documented order), the
overrides, and the lookup structures."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolver.policy import (
    Override,
    Policy,
    PolicySlot,
    PolicyZone,
    PrefixIndex,
    Trigger,
    ZoneOptions,
    build_zone,
    name_wire,
    parse_address,
)
from resolver.policy.decide import Servers
from resolver.policy.index import NameIndex, wire_text
from resolver.policy.rules import NXDOMAIN_RULE, PASSTHRU_RULE
from resolver.wire.zonefile import parse_zone

HEAD = "$TTL 60\n@ SOA localhost. hostmaster 1 60 60 3600 30\n@ NS localhost.\n"


def rpz(name: str, body: str) -> PolicyZone:
    return build_zone(name, parse_zone(HEAD + body, name), 1000)


def slot(name: str, body: str, **options: object) -> PolicySlot:
    return PolicySlot(name, rpz(name, body), ZoneOptions(**options))  # type: ignore[arg-type]


def servers(*pairs: tuple[str, list[str]]) -> Servers:
    return [(name, name_wire(name), addresses) for name, addresses in pairs]


def before(policy: Policy, name: str, client: str = "192.0.2.200") -> tuple[str, str, str] | None:
    match, _ = policy.before(name_wire(name), name, client)
    if match is None:
        return None
    return match.slot.name, match.trigger.value, match.rule.action.value


def after(
    policy: Policy,
    addresses: list[str],
    ns: Servers | None = None,
    chain: tuple[str, ...] = (),
    limit: int | None = None,
) -> tuple[str, str, str] | None:
    pairs = [(target, name_wire(target)) for target in chain]
    match, _ = policy.after(pairs, addresses, lambda: ns or [], limit)
    if match is None:
        return None
    return match.slot.name, match.trigger.value, match.matched


# -- across zones and within one ------------------------------------------------------------


def test_the_first_zone_with_a_match_wins() -> None:
    policy = Policy([slot("one.", "bad.example CNAME rpz-passthru.\n"),
                     slot("two.", "bad.example CNAME .\n*.example CNAME *.\n")])  # fmt: skip
    assert before(policy, "bad.example.") == ("one.", "qname", "passthru")
    assert before(policy, "other.example.") == ("two.", "qname", "nodata")


def test_client_ip_beats_qname_in_one_zone() -> None:
    policy = Policy(
        [slot("z.", "bad.example CNAME .\n24.0.2.0.192.rpz-client-ip CNAME rpz-drop.\n")]
    )
    assert before(policy, "bad.example.", "192.0.2.7") == ("z.", "client-ip", "drop")
    assert before(policy, "bad.example.", "198.51.100.7") == ("z.", "qname", "nxdomain")


def test_exact_name_beats_wildcard_and_closer_wildcard_beats_farther() -> None:
    policy = Policy([slot("z.", "*.example CNAME .\n*.a.example CNAME *.\n"
                               "b.a.example CNAME rpz-drop.\n")])  # fmt: skip
    assert before(policy, "b.a.example.") == ("z.", "qname", "drop")
    assert before(policy, "c.a.example.") == ("z.", "qname", "nodata")
    assert before(policy, "a.example.") == ("z.", "qname", "nxdomain")
    assert before(policy, "example.") is None


def test_on_the_answer_response_ip_beats_nsdname_beats_nsip() -> None:
    body = ("24.0.2.0.192.rpz-ip CNAME .\nns.evil.rpz-nsdname CNAME *.\n"
            "32.53.100.51.198.rpz-nsip CNAME rpz-drop.\n")  # fmt: skip
    policy = Policy([slot("z.", body)])
    ns = servers(("ns.evil.", ["198.51.100.53"]))
    assert after(policy, ["192.0.2.1"], ns) == ("z.", "response-ip", "192.0.2.0/24")
    assert after(policy, ["203.0.113.1"], ns) == ("z.", "nsdname", "ns.evil.")
    other = servers(("ns.good.", ["198.51.100.53"]))
    assert after(policy, ["203.0.113.1"], other) == ("z.", "nsip", "198.51.100.53/32")


def test_longest_prefix_then_smallest_address() -> None:
    body = (
        "16.0.0.2.192.rpz-ip CNAME .\n24.0.2.0.192.rpz-ip CNAME *.\n24.0.3.0.192.rpz-ip CNAME *.\n"
    )
    policy = Policy([slot("z.", body)])
    assert after(policy, ["192.2.9.9", "192.0.2.5"]) == ("z.", "response-ip", "192.0.2.0/24")
    assert after(policy, ["192.0.3.1", "192.0.2.200"]) == ("z.", "response-ip", "192.0.2.0/24")
    assert after(policy, ["192.2.9.9"]) == ("z.", "response-ip", "192.2.0.0/16")


def test_nsdname_prefers_the_smallest_name_in_dnssec_order() -> None:
    policy = Policy([slot("z.", "b.example.rpz-nsdname CNAME .\na.zz.rpz-nsdname CNAME *.\n")])
    ns = servers(("a.zz.", []), ("b.example.", []))
    assert after(policy, [], ns) == ("z.", "nsdname", "b.example.")  # example. < zz.


def test_qname_rules_see_the_cname_chain() -> None:
    policy = Policy([slot("z.", "cdn.tracker.example CNAME .\n")])
    assert after(policy, ["192.0.2.1"], chain=("edge.example.", "cdn.tracker.example.")) == (
        "z.", "qname", "cdn.tracker.example.")  # fmt: skip


def test_a_match_before_resolving_waits_for_earlier_zones_with_answer_rules() -> None:
    policy = Policy([slot("ips.", "24.0.2.0.192.rpz-ip CNAME rpz-passthru.\n"),
                     slot("names.", "bad.example CNAME .\n")])  # fmt: skip
    match, _ = policy.before(name_wire("bad.example."), "bad.example.", "203.0.113.1")
    assert match is not None and policy.waits(match)
    assert after(policy, ["192.0.2.1"], limit=match.position) == (
        "ips.",
        "response-ip",
        "192.0.2.0/24",
    )
    first = Policy(
        [slot("names.", "bad.example CNAME .\n"), slot("ips.", "24.0.2.0.192.rpz-ip CNAME .\n")]
    )
    match, _ = first.before(name_wire("bad.example."), "bad.example.", "203.0.113.1")
    assert match is not None and not first.waits(match)


# -- overrides -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "action"),
    [(Override.GIVEN, "local-data"), (Override.NXDOMAIN, "nxdomain"), (Override.NODATA, "nodata"),
     (Override.PASSTHRU, "passthru"), (Override.DROP, "drop"), (Override.TCP_ONLY, "tcp-only"),
     (Override.NULL, "local-data"), (Override.CNAME, "local-data")],
)  # fmt: skip
def test_a_zone_override_replaces_every_action(override: Override, action: str) -> None:
    cname = "garden.example." if override is Override.CNAME else None
    policy = Policy([slot("z.", "sip.example A 192.0.2.7\n", override=override, cname=cname)])
    assert before(policy, "sip.example.") == ("z.", "qname", action)
    if override is Override.CNAME:
        match, _ = policy.before(name_wire("sip.example."), "sip.example.", "203.0.113.1")
        assert match is not None and match.rule.records[0].rdata.to_text() == "garden.example."


def test_a_disabled_zone_is_logged_and_passed_over() -> None:
    policy = Policy([slot("off.", "bad.example CNAME .\n", override=Override.DISABLED),
                     slot("on.", "bad.example CNAME *.\n")])  # fmt: skip
    match, disabled = policy.before(name_wire("bad.example."), "bad.example.", "203.0.113.1")
    assert match is not None and match.slot.name == "on."
    assert [m.slot.name for m in disabled] == ["off."]
    assert policy.early(name_wire("bad.example."), "203.0.113.1")


def test_early_says_whether_a_query_needs_the_policy() -> None:
    policy = Policy([slot("z.", "*.ads.example CNAME .\n32.9.0.0.127.rpz-client-ip CNAME .\n")])
    assert policy.early(name_wire("x.ads.example."), "127.0.0.1")
    assert policy.early(name_wire("www.example."), "127.0.0.9")
    assert not policy.early(name_wire("www.example."), "127.0.0.1")
    assert not policy.early(name_wire("ads.example."), "127.0.0.1")
    assert not Policy([]).early(name_wire("x."), "127.0.0.1")


# -- the lookup structures ---------------------------------------------------------------------


@given(st.lists(st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True), min_size=1, max_size=6))
def test_wildcards_match_strictly_below_their_parent(labels: list[str]) -> None:
    index = NameIndex()
    parent = ".".join(labels[1:]) + "." if len(labels) > 1 else "."
    index.below[name_wire(parent)] = NXDOMAIN_RULE
    name = ".".join(labels) + "."
    found = index.find(name_wire(name))
    assert found is not None and wire_text(found[1]) == parent and found[2]
    assert index.matches(name_wire(name))
    assert index.find(name_wire(parent)) is None


@given(st.ip_addresses(v=4), st.integers(1, 32))
def test_prefix_index_finds_the_longest_prefix(address: object, length: int) -> None:
    parsed = parse_address(str(address))
    assert parsed is not None
    _, value = parsed
    index = PrefixIndex()
    mask = (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
    index.put(4, length, value & mask, PASSTHRU_RULE)
    index.put(4, 1, value & 0x80000000, NXDOMAIN_RULE)
    found = index.find(4, value)
    assert found is not None and found[1] == length
    assert len(index) == (1 if length == 1 else 2)
    index.put(4, length, value & mask, None)
    assert len(index) == (0 if length == 1 else 1)


def test_trigger_presence_is_known_per_zone() -> None:
    zone = rpz("z.", "24.0.2.0.192.rpz-ip CNAME .\n")
    assert zone.has(Trigger.RESPONSE_IP) and zone.answer_triggers()
    assert not zone.has(Trigger.QNAME) and not zone.has(Trigger.CLIENT_IP)
