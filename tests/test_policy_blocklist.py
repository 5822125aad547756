"""Blocklists as people download them (resolver.policy.blocklist): hosts files, domain
lists, the ``||domain^`` form, exceptions and allowlists, and what is left out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolver.policy import Action, BlocklistError, Policy, PolicySlot, read_lists
from resolver.policy.index import name_wire
from resolver.policy.rules import NULL_RULE, Rule

HOSTS = """\
# StevenBlack-style hosts file
127.0.0.1 localhost
127.0.0.1 localhost.localdomain
255.255.255.255 broadcasthost
::1 localhost ip6-localhost
0.0.0.0 0.0.0.0
0.0.0.0 ads.example.com tracker.example.com  # two on a line
0.0.0.0 Upper.Example.NET
"""

ADBLOCK = """\
[Adblock Plus 2.0]
! Title: AdGuard-style DNS list
||doubleclick.example^
||metrics.example^$important
|exact.example^
@@||good.doubleclick.example^
example.org##.banner
||tracker.example^$third-party
/banner/*/img^
https://ads.example.net/path
"""


def decide(lists: list[tuple[str, str, bool]], name: str, rule: Rule | None = None) -> str:
    zone, _ = read_lists("test", lists, 1000, rule) if rule else read_lists("test", lists, 1000)
    match, _ = Policy([PolicySlot("test", zone)]).before(name_wire(name), name, "192.0.2.1")
    return match.rule.action.value if match is not None else "none"


@pytest.mark.parametrize(
    ("name", "action"),
    [("ads.example.com.", "nxdomain"), ("tracker.example.com.", "nxdomain"),
     ("upper.example.net.", "nxdomain"), ("sub.ads.example.com.", "none"),
     ("localhost.", "none"), ("broadcasthost.", "none"), ("ip6-localhost.", "none")],
)  # fmt: skip
def test_hosts_file_blocks_exact_names_but_not_the_machine(name: str, action: str) -> None:
    assert decide([("hosts", HOSTS, False)], name) == action


@pytest.mark.parametrize(
    ("name", "action"),
    [("doubleclick.example.", "nxdomain"), ("a.b.doubleclick.example.", "nxdomain"),
     ("good.doubleclick.example.", "passthru"), ("x.good.doubleclick.example.", "passthru"),
     ("metrics.example.", "nxdomain"), ("exact.example.", "nxdomain"),
     ("sub.exact.example.", "none"), ("tracker.example.", "none"), ("example.org.", "none"),
     ("ads.example.net.", "none")],
)  # fmt: skip
def test_adblock_forms_and_exceptions(name: str, action: str) -> None:
    assert decide([("adblock", ADBLOCK, False)], name) == action


def test_lines_that_are_no_dns_rule_are_counted_with_the_first() -> None:
    zone, (reader,) = read_lists("test", [("adblock", ADBLOCK, False)], 1000)
    assert reader.skipped == 4 and zone.skipped == 4
    assert reader.first_skipped == "adblock:7: 'example.org##.banner' is not a domain name"


def test_plain_domains_wildcards_and_idn() -> None:
    text = "plain.example\n*.below.example\nbücher.example\n# comment\n\nbad..name\n"
    lists = [("domains", text, False)]
    assert decide(lists, "plain.example.") == "nxdomain"
    assert decide(lists, "www.plain.example.") == "none"
    assert decide(lists, "x.below.example.") == "nxdomain"
    assert decide(lists, "below.example.") == "none"
    assert decide(lists, "xn--bcher-kva.example.") == "nxdomain"


def test_allowlist_file_wins_over_any_block() -> None:
    lists = [("block", "||ads.example^\nads.example\n", False),
             ("allow", "cdn.ads.example\n", True)]  # fmt: skip
    assert decide(lists, "cdn.ads.example.") == "passthru"
    assert decide(lists, "other.ads.example.") == "nxdomain"


def test_the_list_action_is_its_rule() -> None:
    assert decide([("l", "ads.example\n", False)], "ads.example.", NULL_RULE) == "local-data"
    zone, _ = read_lists("l", [("l", "ads.example\n@@ok.example\n", False)], 10, NULL_RULE)
    assert zone.allow is not None
    assert zone.allow.exact[name_wire("ok.example.")].action is Action.PASSTHRU


def test_a_list_with_no_rule_is_refused() -> None:
    html = "<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n"
    with pytest.raises(BlocklistError, match="no usable entry"):
        read_lists("l", [("page.html", html, False)], 10)
    read_lists("l", [("empty", "# nothing yet\n", False)], 10)  # an empty list is a list


def test_a_list_over_max_entries_is_refused() -> None:
    text = "".join(f"n{i}.example\n" for i in range(11))
    with pytest.raises(BlocklistError, match="more than 10 entries"):
        read_lists("l", [("big", text, False)], 10)


@given(st.text(max_size=300))
def test_any_text_is_a_list_or_a_blocklist_error(text: str) -> None:
    try:
        zone, (reader,) = read_lists("l", [("fuzz", text, False)], 100)
    except BlocklistError:
        return
    assert len(zone) <= 2 * reader.rules
