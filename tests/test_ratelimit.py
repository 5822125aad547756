"""Per-client UDP rate limits (resolver/serve/ratelimit.py): the table alone with given
times, then the running service flooded from one loopback address while others ask.

Run inside the network sandbox:
    /work/shared/tools/offline python -m pytest tests/test_ratelimit.py
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import pytest

from resolver.cache.answers import AnswerCache
from resolver.iterate.request import Transport
from resolver.lab import Lab
from resolver.ops.config import SettingsError, load_settings, parse_command_line
from resolver.ops.exposition import samples
from resolver.serve import ratelimit
from resolver.serve.listener import ResolverService
from resolver.serve.ratelimit import TABLE_SIZE, ClientRateLimit
from resolver.wire.raw import truncated
from scripts.reliability.common import Resolver, query, rcode, udp_ask
from scripts.reliability.common import truncated as is_truncated
from tests.fakes import Scripted

NOW = 1000.0


def burst(limiter: ClientRateLimit, client: str, count: int, now: float = NOW) -> int:
    """How many of ``count`` queries at one instant are answered."""
    return sum(not limiter.limited(client, now) for _ in range(count))


def test_off_never_limits() -> None:
    limiter = ClientRateLimit(0)
    assert burst(limiter, "127.0.0.1", 10_000) == 10_000
    assert limiter.stats.ratelimited == 0


def test_burst_then_the_rate() -> None:
    limiter = ClientRateLimit(10)
    assert burst(limiter, "192.0.2.1", 50) == 10  # one second's worth at once
    assert limiter.stats.ratelimited == 40
    assert burst(limiter, "192.0.2.1", 50, NOW + 0.5) == 5  # half a second: five more
    assert burst(limiter, "192.0.2.2", 50) == 10  # another address has its own
    assert burst(limiter, "192.0.2.1", 50, NOW + 10) == 10  # idle long enough: a full burst


def test_limited_queries_are_not_charged() -> None:
    """A flooder's refused queries do not push its own or its network's time further."""
    limiter = ClientRateLimit(10)
    burst(limiter, "192.0.2.1", 100_000)
    assert burst(limiter, "192.0.2.1", 50, NOW + 1.0) == 10
    # Its /24 was charged only for what was answered: the neighbours are untouched.
    assert all(burst(limiter, f"192.0.2.{i}", 11, NOW + 1.0) == 10 for i in range(2, 30))


def test_a_network_has_its_own_limit() -> None:
    """IPv4 /24 at 32 times the rate: spreading over many addresses does not escape it."""
    limiter = ClientRateLimit(10)
    answered = sum(burst(limiter, f"198.51.100.{i}", 11) for i in range(1, 255))
    assert answered == 32 * 10  # the /24's burst, then nothing more at this instant
    assert burst(limiter, "203.0.113.1", 11) == 10  # another /24 is not touched


def test_ipv6_prefixes_and_mapped_addresses() -> None:
    limiter = ClientRateLimit(10)
    # /128 at 10, /64 at 20: two addresses of one /64 share 20 at one instant.
    assert burst(limiter, "2001:db8:0:1::1", 11) + burst(limiter, "2001:db8:0:1::2", 11) == 20
    # /56 at 30: a third /64 inside the same /56 gets what the /56 has left.
    assert burst(limiter, "2001:db8:0:2::1", 11) == 30 - 20
    assert burst(limiter, "2001:db8:1::1", 11) == 10  # another /56
    mapped = ClientRateLimit(10)
    assert burst(mapped, "::ffff:192.0.2.7", 11) == 10
    assert burst(mapped, "192.0.2.7", 11) == 0  # the same client, however it is written
    assert burst(mapped, "fe80::1%eth0", 11) == 10  # a scope does not stop it being counted
    assert burst(ClientRateLimit(10), "not an address", 100) == 100


def test_the_table_has_a_fixed_size() -> None:
    limiter = ClientRateLimit(5)
    for i in range(200_000):
        limiter.limited(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", NOW)
    assert len(limiter.table) == TABLE_SIZE
    assert limiter.table.itemsize * len(limiter.table) == 1 << 20


def test_a_client_sharing_one_slot_with_a_flooder_is_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two slots per key, the earlier time counts (count-min): a collision in one slot
    does not make an innocent client pay for a flooder."""
    hashes = {"192.0.2.66": 5 | 7 << 20, "192.0.2.1": 5 | 9 << 20}  # share slot 5 only
    real_hash = hash
    monkeypatch.setattr(ratelimit, "hash", lambda key: hashes.get(key, real_hash(key)),
                        raising=False)  # fmt: skip
    limiter = ClientRateLimit(10)
    burst(limiter, "192.0.2.66", 1000)
    assert burst(limiter, "192.0.2.1", 11) == 10


def test_truncated_answer_is_the_question_and_tc() -> None:
    for edns in (False, True):
        message = dns.message.make_query("WwW.Example.COM.", "AAAA", use_edns=0 if edns else False)
        message.flags = dns.flags.RD | dns.flags.CD
        wire = message.to_wire()
        reply = truncated(wire)
        assert reply is not None and len(reply) <= len(wire)
        response = dns.message.from_wire(reply)
        assert response.id == message.id
        assert response.flags & dns.flags.QR and response.flags & dns.flags.TC
        assert response.flags & dns.flags.RD and response.flags & dns.flags.CD
        assert response.flags & dns.flags.RA and not response.flags & dns.flags.AA
        assert response.rcode() == dns.rcode.NOERROR
        assert response.question[0].to_text() == message.question[0].to_text()  # case kept
        assert response.answer == response.authority == response.additional == []
        assert response.edns == (0 if edns else -1)
    assert truncated(b"\x00\x01\x01\x00\x00\x02" + bytes(6)) is None  # two questions: dropped


# Found by the listener fuzzer (scripts/reliability/fuzz.py, -seed=2): a question whose
# labels add up to more than 255 octets.  question_key reads it (it checks labels, not the
# name's length), and the truncated answer echoed it: a reply no client could parse.
FUZZ_LONG_NAME = bytes.fromhex(
    "74fb012500010000000000003232323232323232323232323232323232323232323232323232323232323232"
    "3232323232323232323232323232323232323232323232323232323232323232323232323232323232323232"
    "323232323232000000000000001d32323232323232243232323232323232323271240d000000000000030000"
    "0000020029ffffffff0000000101010101010101010101010101010101010101010101010101010101010101"
    "0101010101010108010101010101010101010109010101010101010101750101010101010101010101013004"
    "010004323232323232323232323232320000000000000000000000000000000029000000000007650078616d"
    "706c250000020001"
)


def test_a_name_over_255_octets_gets_no_truncated_answer() -> None:
    assert truncated(FUZZ_LONG_NAME) is None
    header = b"\x00\x07\x01\x00\x00\x01" + bytes(6)
    over = b"".join(b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x00"  # 257 octets
    assert truncated(header + over + b"\x00\x01\x00\x01") is None
    longest = b"".join(b"\x3f" + b"a" * 63 for _ in range(3)) + b"\x3d" + b"b" * 61 + b"\x00"
    assert len(longest) == 255
    reply = truncated(header + longest + b"\x00\x01\x00\x01")
    assert reply is not None and dns.message.from_wire(reply).flags & dns.flags.TC


def test_truncated_answers_are_limited_too() -> None:
    """A real client just over its rate gets TC=1 and retries over TCP; a flood gets at
    most `rate` truncated answers a second, the rest dropped (cheap to handle)."""
    limiter = ClientRateLimit(10, "truncate")
    packet = query("www.example.com.", qid=1)
    outcomes = []
    for _ in range(100):
        if limiter.limited("192.0.2.1", NOW):
            reply = limiter.refusal(packet, "192.0.2.1", NOW)
            outcomes.append("dropped" if reply is None else "truncated")
        else:
            outcomes.append("answered")
    assert [outcomes.count(k) for k in ("answered", "truncated", "dropped")] == [10, 10, 80]
    assert limiter.refusal(packet, "192.0.2.2", NOW) is not None  # its own budget
    assert limiter.refusal(packet, "192.0.2.1", NOW + 1.0) is not None  # a second later
    limiter.configure(10, "drop")
    assert limiter.refusal(packet, "192.0.2.3", NOW) is None


def test_modes_in_the_service() -> None:
    """The hook in ResolverService.take: UDP only, before the cache, per mode, counted."""
    service = ResolverService(Scripted(), AnswerCache(), clock=lambda: NOW)
    service.ratelimit.configure(1, "truncate")
    packet = query("www.example.com.", qid=7)
    burst = service.take(packet, "192.0.2.1", Transport.UDP)
    assert type(burst).__name__ == "Pending"
    limited = service.take(packet, "192.0.2.1", Transport.UDP)
    assert isinstance(limited, bytes) and is_truncated(limited)
    assert type(service.take(packet, "192.0.2.1", Transport.TCP)).__name__ == "Pending"
    service.ratelimit.configure(1, "drop")
    assert service.take(packet, "192.0.2.1", Transport.UDP) is None
    assert service.stats.ratelimited == 2
    assert any(name == "queries_ratelimited" and value == 2
               for name, _labels, value in samples(service.stats))  # fmt: skip


def test_settings() -> None:
    _config, flags = parse_command_line(["--ip-ratelimit", "100", "--ip-ratelimit-mode", "drop"])
    settings = load_settings(None, flags)
    assert (settings.ip_ratelimit, settings.ip_ratelimit_mode) == (100, "drop")
    assert load_settings(None, {}).ip_ratelimit == 0  # off by default
    with pytest.raises(SystemExit):
        parse_command_line(["--ip-ratelimit", "-1"])
    with pytest.raises(SystemExit):
        parse_command_line(["--ip-ratelimit-mode", "refuse"])


def test_settings_file_mistake(tmp_path: Path) -> None:
    config = tmp_path / "resolver.toml"
    config.write_text('ip-ratelimit = 10\nip-ratelimit-mode = "slip"\n')
    with pytest.raises(SettingsError, match="line 2: ip-ratelimit-mode"):
        load_settings(config, {})


# -- the running service -------------------------------------------------------------------


class Flood:
    """One source address sending ``count`` queries as fast as it can (non-blocking),
    counting the replies: full answers and truncated ones."""

    def __init__(self, port: int, source: str, packet: bytes, count: int) -> None:
        self.port, self.source, self.packet, self.count = port, source, packet, count
        self.full = self.truncated = 0
        self.elapsed = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            sock.bind((self.source, 0))
            sock.setblocking(False)
            start = time.monotonic()
            sent = 0
            while sent < self.count:
                try:
                    sock.sendto(self.packet, ("127.0.0.1", self.port))
                    sent += 1
                except BlockingIOError:
                    time.sleep(0.0005)
                self._drain(sock)
            self.elapsed = time.monotonic() - start
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                self._drain(sock)
                time.sleep(0.01)

    def _drain(self, sock: socket.socket) -> None:
        while True:
            try:
                reply = sock.recv(4096)
            except BlockingIOError:
                return
            if is_truncated(reply):
                self.truncated += 1
            else:
                self.full += 1


RATE = 50


@pytest.fixture(scope="module")
def limited(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Resolver:
    directory = tmp_path_factory.mktemp("ratelimit")
    config = directory / "resolver.toml"
    config.write_text(f'ip-ratelimit = {RATE}\nip-ratelimit-mode = "truncate"\n')
    hints = lab.write_hints(directory / "lab.hints")
    with Resolver(directory, hints, lab.port, "--config", str(config)) as running:
        yield running
    assert running.process.returncode == 0


def test_a_flood_from_one_address_does_not_starve_the_others(limited: Resolver) -> None:
    port = limited.port
    assert udp_ask(port, query("www.example.com.", qid=1), "127.66.9.1") is not None  # cached
    flood = Flood(port, "127.66.1.1", query("www.example.com.", qid=2), 6000)
    others: dict[str, list[float]] = {"127.66.1.2": [], "127.66.2.1": []}  # same /24, another
    lost: list[str] = []
    flood.thread.start()
    for i in range(40):
        for source, latencies in others.items():
            started = time.monotonic()
            reply = udp_ask(port, query(f"n{i}.wild.example.com.", qid=i + 10), source, 2.0)
            if reply is None or rcode(reply) != 0 or is_truncated(reply):
                lost.append(f"{source} n{i}: {reply!r}")
            else:
                latencies.append(time.monotonic() - started)
        time.sleep(0.02)
    flood.thread.join(30)
    assert lost == []
    assert all(len(latencies) == 40 for latencies in others.values())
    answered_bound = RATE * (flood.elapsed + 1.5) + RATE
    assert flood.truncated > 0 and flood.full <= answered_bound, vars(flood)
    stats = limited.stats()
    assert stats["queries_ratelimited"] >= flood.truncated
    assert flood.truncated <= answered_bound  # the truncated answers are limited too
    # A real client a little over its limit is told to use TCP, and gets its answer there.
    time.sleep(1.1)
    flood.thread = threading.Thread(target=flood._run, daemon=True)
    flood.count = RATE + 5
    flood.thread.start()
    flood.thread.join(30)
    dig = subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(port), "-b", "127.66.1.1", "+tries=1", "+time=3",
         "www.example.com", "A"], capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert "status: NOERROR" in dig.stdout and "192.0.2.1" in dig.stdout, dig.stdout


def test_drop_mode_at_a_reload(limited: Resolver) -> None:
    config = limited.directory / "resolver.toml"
    config.write_text(f'ip-ratelimit = {RATE}\nip-ratelimit-mode = "drop"\n')
    limited.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while not any(e.get("event") == "reloaded" for e in limited.events()):
        assert time.monotonic() < deadline, "no reload"
        time.sleep(0.05)
    flood = Flood(limited.port, "127.66.3.1", query("www.example.com.", qid=3), 3000)
    flood.thread.start()
    flood.thread.join(30)
    assert flood.truncated == 0
    assert 0 < flood.full <= RATE * (flood.elapsed + 1.5) + RATE, vars(flood)
    assert udp_ask(limited.port, query("www.example.com.", qid=4), "127.66.4.1") is not None


def test_in_process_flood_is_cheap() -> None:
    """The check costs little: 100,000 limited packets in well under a second each way."""
    limiter = ClientRateLimit(10)

    async def flood() -> float:
        started = time.perf_counter()
        for i in range(100_000):
            limiter.limited("192.0.2.1", NOW + i * 1e-6)
        return time.perf_counter() - started

    assert asyncio.run(flood()) < 2.0


# -- DNSBomb: pending-per-client and the release window ---------------------------------------


def test_pending_limit_per_address_and_per_network() -> None:
    from resolver.serve.ratelimit import PendingLimit

    limit = PendingLimit(per_client=3)
    taken = [limit.take("192.0.2.1") for _ in range(4)]
    assert taken[3] is None and all(t is not None for t in taken[:3])
    neighbours = [limit.take(f"192.0.2.{i}") for i in range(2, 5)]  # /24: 4 x 3 = 12
    others = [limit.take(f"192.0.2.{i}") for i in range(5, 12)]
    assert all(k is not None for k in neighbours + others[:6]) and others[6] is None
    assert limit.take("198.51.100.1") is not None  # another network
    first = taken[0]
    assert first is not None
    limit.done(first)
    assert limit.take("192.0.2.1") is not None  # its place, freed
    assert limit.take("192.0.2.1") is None
    assert limit.refused == 3
    assert PendingLimit(per_client=0).take("192.0.2.1") == ()


def test_pending_limit_counts_go_back_to_nothing() -> None:
    from resolver.serve.ratelimit import PendingLimit

    limit = PendingLimit(per_client=2)
    keys = [limit.take(a) for a in ("192.0.2.1", "2001:db8::1", "2001:db8::1", "x")]
    for k in keys:
        assert k is not None
        limit.done(k)
    assert limit.counts == {}


def test_held_answers_are_released_at_most_32_per_100_ms_to_one_address() -> None:
    from resolver.serve.ratelimit import RELEASE_BURST, PendingLimit

    limit = PendingLimit()
    released = [limit.may_release("192.0.2.1", 0.9, 10.0) for _ in range(100)]
    assert sum(released) == RELEASE_BURST == 32 and limit.withheld == 68
    assert limit.may_release("192.0.2.2", 0.9, 10.0)  # another address has its own
    assert all(limit.may_release("192.0.2.1", 0.01, 10.0) for _ in range(100))  # quick ones
    assert limit.may_release("192.0.2.1", 0.9, 10.11)  # the next window
    assert PendingLimit(per_client=0).may_release("192.0.2.1", 5.0, 10.0)
