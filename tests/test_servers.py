"""Server selection by smoothed RTT (resolver.iterate.servers)."""

from __future__ import annotations

import pytest

from resolver.iterate.servers import (
    FAILURE_RTT,
    LAME_TTL,
    MAX_TIMEOUT,
    MIN_TIMEOUT,
    STATS_TTL,
    UNKNOWN_RTT,
    ServerRound,
    ServerSelection,
)
from resolver.iterate.zonecut import CutSource, ZoneCut
from resolver.wire import RRType
from tests.fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(500.0)


@pytest.fixture
def selection(clock: FakeClock) -> ServerSelection:
    return ServerSelection(initial_timeout=0.8, clock=clock)


def test_order_by_rtt(selection: ServerSelection) -> None:
    selection.record_success("10.0.0.1", 0.200)
    selection.record_success("10.0.0.2", 0.010)
    selection.record_success("10.0.0.3", 0.050)
    assert selection.order(["10.0.0.1", "10.0.0.2", "10.0.0.3"]) == [
        "10.0.0.2",
        "10.0.0.3",
        "10.0.0.1",
    ]


def test_unknown_servers_rank_between_fast_and_slow(selection: ServerSelection) -> None:
    selection.record_success("fast", 0.010)
    selection.record_success("slow", UNKNOWN_RTT * 2)
    assert selection.expected_rtt("new") == UNKNOWN_RTT
    assert selection.order(["slow", "new", "fast"]) == ["fast", "new", "slow"]


def test_ties_keep_the_given_order(selection: ServerSelection) -> None:
    addresses = ["10.0.0.9", "10.0.0.1", "10.0.0.5", "10.0.0.3"]
    assert selection.order(addresses) == addresses
    for address in addresses:
        selection.record_success(address, 0.1)
    assert selection.order(addresses) == addresses
    assert selection.order(reversed(addresses)) == addresses[::-1]


def test_failure_backs_off(selection: ServerSelection) -> None:
    selection.record_success("good", 0.5)
    selection.record_failure("bad")
    assert selection.expected_rtt("bad") == FAILURE_RTT * 2
    assert selection.order(["bad", "good"]) == ["good", "bad"]
    costs = [selection.expected_rtt("bad")]
    for _ in range(8):
        selection.record_failure("bad")
        costs.append(selection.expected_rtt("bad"))
    assert costs == sorted(costs)
    assert costs[0] < costs[-1]
    assert costs[-1] == costs[-2]  # the back-off is capped


def test_failure_of_a_measured_server_ranks_it_behind_an_unknown_one(
    selection: ServerSelection,
) -> None:
    selection.record_success("was-fast", 0.001)
    selection.record_failure("was-fast")
    assert selection.expected_rtt("was-fast") >= FAILURE_RTT
    assert selection.order(["was-fast", "unknown"]) == ["unknown", "was-fast"]


def test_success_after_failures_starts_afresh(selection: ServerSelection) -> None:
    selection.record_failure("flaky")
    selection.record_failure("flaky")
    selection.record_success("flaky", 0.02)
    assert selection.expected_rtt("flaky") == pytest.approx(0.02)
    assert selection.timeout("flaky") == pytest.approx(0.02 + 4 * 0.01)


def test_timeout_is_initial_for_unknown_or_failed(selection: ServerSelection) -> None:
    assert selection.timeout("new") == 0.8
    selection.record_failure("dead")
    assert selection.timeout("dead") == 0.8


def test_timeout_adapts_to_rtt_within_bounds(selection: ServerSelection) -> None:
    selection.record_success("near", 0.001)
    assert selection.timeout("near") == MIN_TIMEOUT
    selection.record_success("far", 2.5)
    assert selection.timeout("far") == MAX_TIMEOUT
    selection.record_success("mid", 0.1)
    assert selection.timeout("mid") == pytest.approx(0.1 + 4 * 0.05)


def test_smoothing_follows_rfc_6298(selection: ServerSelection) -> None:
    selection.record_success("s", 0.100)
    selection.record_success("s", 0.200)
    # srtt = 7/8 * 0.1 + 1/8 * 0.2; rttvar = 3/4 * 0.05 + 1/4 * |0.1 - 0.2|
    assert selection.expected_rtt("s") == pytest.approx(0.1125)
    assert selection.timeout("s") == pytest.approx(0.1125 + 4 * 0.0625)
    for _ in range(100):
        selection.record_success("s", 0.300)
    assert selection.expected_rtt("s") == pytest.approx(0.3, abs=1e-3)


def test_bounded_size_forgets_least_recently_updated(clock: FakeClock) -> None:
    selection = ServerSelection(max_entries=3, clock=clock)
    for i in range(3):
        selection.record_success(f"10.0.0.{i}", 0.01)
    selection.record_success("10.0.0.0", 0.01)  # refreshed: now the most recent
    selection.record_success("10.0.0.3", 0.01)  # evicts 10.0.0.1
    assert selection.expected_rtt("10.0.0.1") == UNKNOWN_RTT
    for address in ("10.0.0.0", "10.0.0.2", "10.0.0.3"):
        assert selection.expected_rtt(address) == pytest.approx(0.01), address
    assert len(selection._stats) == 3


def test_stats_are_forgotten_after_a_while(selection: ServerSelection, clock: FakeClock) -> None:
    selection.record_failure("dead")
    clock.now += STATS_TTL + 1
    assert selection.expected_rtt("dead") == UNKNOWN_RTT
    assert selection.timeout("dead") == 0.8


def test_lame_is_per_zone_and_expires(selection: ServerSelection, clock: FakeClock) -> None:
    selection.mark_lame("192.0.2.1", "Example.COM.")
    assert selection.is_lame("192.0.2.1", "example.com.")
    assert not selection.is_lame("192.0.2.1", "example.net.")  # lame for one zone only
    assert not selection.is_lame("192.0.2.2", "example.com.")
    clock.now += LAME_TTL + 1
    assert not selection.is_lame("192.0.2.1", "example.com.")


# ---------------------------------------------------------------------- one round of a cut


def round_of(servers: dict[str, list[str]], zone: str = "example.") -> ServerRound:
    """A ServerRound on a cut whose name servers (in this order) have these addresses."""
    cut = ZoneCut(zone, list(servers), CutSource.CACHE)
    for ns, addresses in servers.items():
        cut.add_addresses(ns, addresses)
    return ServerRound(cut, cut.glueless(), (RRType.A,))


def test_a_round_picks_the_fastest_untried_address(selection: ServerSelection) -> None:
    servers = round_of({"ns1.example.": ["10.0.0.1"], "ns2.example.": ["10.0.0.2", "10.0.0.3"]})
    selection.record_success("10.0.0.1", 0.200)
    selection.record_success("10.0.0.3", 0.010)
    assert servers.next_server(selection) == ("10.0.0.3", "ns2.example.")
    servers.tried.add("10.0.0.3")
    assert servers.next_server(selection) == ("10.0.0.1", "ns1.example.")  # 0.2 < unknown
    servers.tried.add("10.0.0.1")
    assert servers.next_server(selection) == ("10.0.0.2", "ns2.example.")  # the only one left
    servers.tried.add("10.0.0.2")
    assert servers.next_server(selection) is None


def test_a_round_asks_lame_servers_last_and_keeps_ns_order_on_ties(
    selection: ServerSelection,
) -> None:
    servers = round_of({"a.example.": ["10.0.0.9"], "b.example.": ["10.0.0.1"],
                        "c.example.": ["10.0.0.5"]})  # fmt: skip
    assert servers.next_server(selection) == ("10.0.0.9", "a.example.")  # all unknown: NS order
    selection.record_success("10.0.0.9", 0.001)
    selection.mark_lame("10.0.0.9", "example.")  # fastest, but lame for this zone
    assert servers.next_server(selection) == ("10.0.0.1", "b.example.")
    selection.record_failure("10.0.0.1")  # backed off: behind the unknown one
    assert servers.next_server(selection) == ("10.0.0.5", "c.example.")
    servers.tried.update({"10.0.0.1", "10.0.0.5"})
    assert servers.next_server(selection) == ("10.0.0.9", "a.example.")  # lame, but left
    other = round_of({"a.example.": ["10.0.0.9"], "b.example.": ["10.0.0.1"]}, zone="other.")
    assert other.next_server(selection) == ("10.0.0.9", "a.example.")  # lame for example. only


def test_an_address_shared_by_two_names_is_asked_as_the_first_listed(
    selection: ServerSelection,
) -> None:
    servers = round_of({"ns1.example.": ["10.0.0.7"], "ns2.example.": ["10.0.0.7"]})
    assert servers.next_server(selection) == ("10.0.0.7", "ns1.example.")
    servers.tried.add("10.0.0.7")
    assert servers.next_server(selection) is None
    assert round_of({"ns1.example.": []}).next_server(selection) is None  # no address known
