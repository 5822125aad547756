"""The shared cache tier (resolver.serve.shared): what is asked, what is written, and that
Redis failing never fails a client.

The first part drives :class:`SharedTier` with an in-memory Redis double (its failures on
demand) and an engine double; the second runs two resolver nodes and a real redis-server
(Debian's) on the lab and asks them with dig: node 2 answers what node 1 resolved without
an upstream query, TTLs count down from one node to the other, Redis stopped or stalled
mid-run changes nothing a client sees, a poisoned value is never answered.  Without
redis-server or dig that part is skipped with the reason, except in CI (CI=true), where
that is a failure.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from structlog.testing import capture_logs

from resolver.cache.records import Security
from resolver.iterate.answer import Answer, Failure, FailureKind
from resolver.iterate.pipeline import Pipeline, Transaction, transaction
from resolver.iterate.request import Request, Transport
from resolver.lab import Lab
from resolver.ops.config import Settings, SettingsError, load_settings
from resolver.ops.metrics import exposition
from resolver.ops.runtime import build_service
from resolver.ops.sharedsetup import parse_shared_cache
from resolver.serve.shared import (
    MAX_LOOKUPS,
    RETRY_FIRST,
    SharedCacheSettings,
    SharedTier,
    shown_url,
)
from resolver.serve.sharedwire import encode
from resolver.serve.stats import ServiceStats
from resolver.wire import CLASS_IN, Rcode, ResourceRecord, RRType
from resolver.wire.dnssec_rdata import RRSIG
from resolver.wire.rdata import A
from scripts.cluster import REDIS, Cluster, cluster_problem, node_address
from tests.fakes import FakeClock, hints

NAME = "www.example.com."
SETTINGS = SharedCacheSettings("redis://127.0.0.1:6379/0", connect_timeout_ms=50,
                               read_timeout_ms=50)  # fmt: skip


# -- doubles ---------------------------------------------------------------------------------


class FakeRedis:
    """The few commands the tier uses, in memory, with expiries on a fake clock; ``mode``
    makes every command fail (``down``) or never answer (``stalled``)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.data: dict[str, tuple[bytes, float]] = {}
        self.mode = "up"
        self.commands: list[str] = []

    async def _run(self, command: str, key: str) -> Any:
        self.commands.append(command)
        if self.mode == "down":
            raise RedisConnectionError("Connection refused")
        if self.mode == "stalled":
            await asyncio.sleep(3600)
        value, expires = self.data.get(key, (b"", 0.0))
        left = expires - self.clock()
        if command == "get":
            return value if left > 0 else None
        return int(left * 1000) if left > 0 else -2

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)

    async def set(self, key: str, value: bytes, ex: int) -> None:
        await self._run("set", key)
        self.data[key] = (value, self.clock() + ex)

    async def aclose(self) -> None:
        self.mode = "closed"


class FakePipeline:
    def __init__(self, redis: FakeRedis) -> None:
        self.redis = redis
        self.queued: list[tuple[str, str]] = []

    def get(self, key: str) -> None:
        self.queued.append(("get", key))

    def pttl(self, key: str) -> None:
        self.queued.append(("pttl", key))

    async def execute(self) -> list[Any]:
        return [await self.redis._run(command, key) for command, key in self.queued]


class FakeEngine:
    """What the tier meets in the pipeline: the engine's own steps before it (local
    zones, the record cache: either answers first) and its walk after it."""

    def __init__(self, answer: Answer, validating: bool = False) -> None:
        self.answer = answer
        self.validating = validating
        self.local: set[str] = set()  # names of local zones
        self.cached: Answer | None = None
        self.walks = 0

    def walking(self, tx: Transaction) -> bool:
        return False

    async def before(self, tx: Transaction) -> bool:
        if tx.name in self.local:
            tx.answer, tx.local = self.answer, True
            return True
        tx.answer = self.cached
        return self.cached is not None

    async def walk(self, tx: Transaction) -> Answer:
        self.walks += 1
        tx.walked = True
        return self.answer


async def resolve(tier: SharedTier, engine: FakeEngine, qname: str, qtype: int) -> Answer:
    """A client's question through a pipeline of the engine's steps and the tier's."""
    tier.engine = engine  # type: ignore[assignment]  # the tier's engine for this question
    pipeline = Pipeline((engine, tier), engine, (tier,))
    request = Request(qname, qtype, client="192.0.2.9", transport=Transport.UDP)
    tx = await pipeline.run(transaction(request))
    assert tx.answer is not None
    return tx.answer


def walked(ttl: int = 300, security: int = Security.UNCHECKED) -> Answer:
    """An answer as the engine gives it after asking upstream."""
    record = ResourceRecord(NAME, RRType.A, CLASS_IN, ttl, A("192.0.2.1"))
    return Answer(Rcode.NOERROR, [record], [], 3, None, False, security)


def tier_and_redis(clock: FakeClock) -> tuple[SharedTier, FakeRedis, ServiceStats]:
    redis = FakeRedis(clock)
    stats = ServiceStats()
    return SharedTier(SETTINGS, stats, None, client=redis, clock=clock), redis, stats  # type: ignore[arg-type]


async def settle(tier: SharedTier) -> None:
    if tier.writes:
        await asyncio.wait(tier.writes)


# -- the tier with doubles -------------------------------------------------------------------


def test_a_miss_is_walked_and_written_and_the_next_node_hits() -> None:
    clock = FakeClock()
    first, redis, stats = tier_and_redis(clock)
    second = SharedTier(SETTINGS, ServiceStats(), None, client=redis, clock=clock)  # type: ignore[arg-type]
    engine, other = FakeEngine(walked()), FakeEngine(walked())

    async def scenario() -> tuple[Answer, Answer]:
        answer = await resolve(first, engine, NAME, RRType.A)
        await settle(first)
        clock.advance(12.4)
        return answer, await resolve(second, other, NAME, RRType.A)

    answer, shared = asyncio.run(scenario())
    assert engine.walks == 1 and other.walks == 0 and answer.answer[0].ttl == 300
    assert stats.shared_lookups["miss"] == 1 and stats.shared_writes["ok"] == 1
    assert second.stats.shared_lookups["hit"] == 1
    assert shared.answer[0].ttl == 288  # 300 less the 12 whole seconds spent in Redis
    assert shared.upstream_queries == 0 and shared.from_cache
    assert list(redis.data) == ["resolver:www.example.com./A"]


def test_what_is_never_written() -> None:
    clock = FakeClock()
    tier, redis, stats = tier_and_redis(clock)
    failed = Answer(Rcode.SERVFAIL, [], [], 4, Failure(FailureKind.NO_REACHABLE_AUTHORITY, "x"))
    from_cache = walked()
    from_cache.upstream_queries = 0
    cases = [
        FakeEngine(failed),  # SERVFAIL (RFC 2308 section 7.1 lets a node keep it, not share it)
        FakeEngine(walked(), validating=True),  # unchecked data with validation on
        FakeEngine(walked(security=Security.BOGUS), validating=True),
        FakeEngine(walked(ttl=0)),  # nothing to count down
        FakeEngine(from_cache),  # nothing was resolved: it came from the node's own caches
    ]

    async def scenario() -> None:
        for engine in cases:
            await resolve(tier, engine, NAME, RRType.A)
        await settle(tier)

    asyncio.run(scenario())
    assert redis.data == {} and "set" not in redis.commands
    assert stats.shared_writes["ok"] == 0


def test_local_zones_and_the_record_cache_come_first() -> None:
    clock = FakeClock()
    tier, redis, _stats = tier_and_redis(clock)
    local = FakeEngine(walked())
    local.local = {NAME}  # a name of a local zone: node configuration
    cached = FakeEngine(walked())
    cached.cached = walked()

    async def scenario() -> None:
        await resolve(tier, local, NAME, RRType.A)
        await resolve(tier, cached, NAME, RRType.A)
        await settle(tier)

    asyncio.run(scenario())
    assert redis.commands == []  # neither read nor written
    assert local.walks == cached.walks == 0


def test_a_node_that_does_not_validate_vouches_for_nothing() -> None:
    clock = FakeClock()
    tier, redis, _stats = tier_and_redis(clock)
    secure = walked(security=Security.SECURE)
    sig = RRSIG(RRType.A, 13, 3, 300, 2_000_000_000, 1_700_000_000, 1, "example.com.", b"s" * 64)
    secure.sigs = [ResourceRecord(NAME, RRType.RRSIG, CLASS_IN, 300, sig)]
    redis.data[tier.key(NAME, RRType.A)] = (encode(NAME, RRType.A, secure, 86400)[0],
                                            clock() + 300)  # fmt: skip
    validating = asyncio.run(tier.fetch(NAME, RRType.A, validating=True))
    plain = asyncio.run(tier.fetch(NAME, RRType.A, validating=False))
    assert validating is not None and validating.security == Security.SECURE
    assert validating.sigs == secure.sigs
    assert plain is not None and plain.security == Security.UNCHECKED and plain.sigs is None


def test_redis_down_is_logged_once_and_skipped_until_a_retry() -> None:
    clock = FakeClock()
    tier, redis, stats = tier_and_redis(clock)
    redis.mode = "down"
    engine = FakeEngine(walked())

    async def ask(count: int) -> None:
        for _ in range(count):
            answer = await resolve(tier, engine, NAME, RRType.A)
            assert answer.rcode == Rcode.NOERROR  # the client is answered all the same
        await settle(tier)

    with capture_logs() as logs:
        asyncio.run(ask(5))
        clock.advance(RETRY_FIRST)
        asyncio.run(ask(3))  # one try (a lookup), failing: the pause doubles
        clock.advance(2 * RETRY_FIRST)
        redis.mode = "up"
        asyncio.run(ask(1))
    events = [entry["event"] for entry in logs]
    assert events == ["shared_cache_down", "shared_cache_up"]
    assert logs[0]["url"] == SETTINGS.url and "Connection refused" in logs[0]["error"]
    assert stats.shared_lookups["error"] == 2  # the first failure, then the one retry
    assert stats.shared_lookups["skipped"] == 6
    assert stats.shared_writes["skipped"] == 8  # every walk while down: not even tried
    assert stats.shared_up == 1 and stats.shared_writes["ok"] == 1
    assert engine.walks == 9


def test_a_stalled_redis_costs_a_client_one_timeout_at_most() -> None:
    clock = FakeClock()
    tier, redis, stats = tier_and_redis(clock)
    redis.mode = "stalled"
    engine = FakeEngine(walked())

    async def scenario() -> float:
        started = time.monotonic()
        await resolve(tier, engine, NAME, RRType.A)
        took = time.monotonic() - started
        await resolve(tier, engine, NAME, RRType.A)
        return took

    with capture_logs():
        took = asyncio.run(scenario())
    assert took < SETTINGS.timeout + 0.1
    assert stats.shared_lookups["error"] == 1 and stats.shared_lookups["skipped"] == 1
    assert stats.shared_up == 0 and engine.walks == 2


def test_too_many_lookups_in_flight_go_straight_on() -> None:
    clock = FakeClock()
    tier, redis, stats = tier_and_redis(clock)
    tier.lookups = MAX_LOOKUPS
    assert asyncio.run(tier.fetch(NAME, RRType.A, False)) is None
    assert stats.shared_lookups["skipped"] == 1 and redis.commands == []
    assert tier.down_since is None  # busy is not down


def test_a_bad_value_is_refused_and_logged_at_most_once_per_interval() -> None:
    clock = FakeClock()
    tier, redis, stats = tier_and_redis(clock)
    key = tier.key(NAME, RRType.A)
    other = encode("evil.example.", RRType.A, Answer(Rcode.NOERROR, [ResourceRecord(
        "evil.example.", RRType.A, CLASS_IN, 300, A("6.6.6.6"))], [], 1), 86400)[0]  # fmt: skip
    engine = FakeEngine(walked())
    with capture_logs() as logs:
        for value in (b"garbage", other, b"RSC1" + b"\x00" * 40):
            redis.data[key] = (value, clock() + 300)
            asyncio.run(resolve(tier, engine, NAME, RRType.A))
    assert engine.walks == 3 and stats.shared_lookups["rejected"] == 3
    assert [entry["event"] for entry in logs] == ["shared_cache_bad_value"]
    assert logs[0]["key"] == key
    redis.data[key] = (b"x" * 70_000, clock() + 300)
    assert asyncio.run(tier.fetch(NAME, RRType.A, False)) is None
    assert stats.shared_lookups["rejected"] == 4


def test_a_key_without_expiry_is_refused() -> None:
    clock = FakeClock()
    tier, redis, stats = tier_and_redis(clock)
    redis.data[tier.key(NAME, RRType.A)] = (encode(NAME, RRType.A, walked(), 86400)[0], 1e12)
    assert asyncio.run(tier.fetch(NAME, RRType.A, False)) is None
    assert stats.shared_lookups["rejected"] == 1


# -- settings, reload, counters --------------------------------------------------------------


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "resolver.toml"
    path.write_text(text)
    return path


def test_the_section_is_checked(tmp_path: Path) -> None:
    assert parse_shared_cache({"url": "redis://10.0.0.5:6379/2"}) == SharedCacheSettings(
        "redis://10.0.0.5:6379/2"
    )
    for table, message in [
        ({}, "url is required"),
        ({"url": "http://x"}, "not a Redis URL"),
        ({"url": "redis://x", "timeout": 5}, "unknown key 'timeout'"),
        ({"url": "redis://x", "read-timeout-ms": 0}, "read-timeout-ms: 0 is not 1 to 10000"),
        ({"url": "redis://x", "max-ttl": True}, "max-ttl: True is not"),
        ({"url": "redis://x", "key-prefix": 5}, "key-prefix: 5 is not"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_shared_cache(table)
    bad = write_config(tmp_path, 'port = 53\n[shared-cache]\nurl = "redis://x"\nmax-ttl = 0\n')
    with pytest.raises(SettingsError, match=r"line 2: \[shared-cache\]: max-ttl: 0 is not"):
        load_settings(bad, {})


def test_the_password_stays_out_of_the_log() -> None:
    assert shown_url("redis://user:secret@10.0.0.5:6380/1") == "redis://user:***@10.0.0.5:6380/1"
    assert shown_url("redis://10.0.0.5/1") == "redis://10.0.0.5/1"


def test_reload_turns_the_tier_on_replaces_it_and_turns_it_off(tmp_path: Path) -> None:
    config = write_config(tmp_path, "cache-size = 100\n")
    runtime = build_service(load_settings(config, {}), hints())
    assert runtime.service.shared is None and runtime.stats.shared_up is None
    steps = [
        '[shared-cache]\nurl = "redis://127.0.0.1:6379/0"\n',
        '[shared-cache]\nurl = "redis://127.0.0.1:6379/0"\nkey-prefix = "site-b:"\n',
        "cache-size = 100\n",
    ]
    seen = []
    with capture_logs():
        for text in steps:
            config.write_text(text)
            ok, message = runtime.reload()
            assert ok, message
            tier = runtime.service.shared
            seen.append(tier.settings.key_prefix if tier is not None else None)
    assert seen == ["resolver:", "site-b:", None]
    assert runtime.stats.shared_up is None


def test_the_counters_reach_prometheus(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[shared-cache]\nurl = "redis://127.0.0.1:1/0"\n')
    runtime = build_service(load_settings(config, {}), hints())
    runtime.stats.shared_lookups["hit"] += 3
    runtime.stats.shared_writes["ok"] += 2

    async def gather() -> bytes:
        async def samples() -> list[Any]:
            return runtime.samples()

        return await exposition(samples)

    text = asyncio.run(gather()).decode()
    assert 'resolver_shared_cache_lookups_total{result="hit"} 3.0' in text
    assert 'resolver_shared_cache_lookups_total{result="error"} 0.0' in text
    assert 'resolver_shared_cache_writes_total{result="ok"} 2.0' in text
    assert "resolver_shared_cache_up 1.0" in text


def test_without_the_section_nothing_changes() -> None:
    settings = Settings()
    runtime = build_service(settings, hints())
    assert runtime.service.shared is None
    assert not [s for s in runtime.samples() if s[0].startswith("shared_cache")]


# -- two nodes and a real Redis, asked with dig ----------------------------------------------


@pytest.fixture(scope="module")
def nodes(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    problem = cluster_problem(("redis-server", "dig"))
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"shared cache tier cannot be tested in CI: {problem}")
        pytest.skip(f"shared cache tier not tested: {problem}")
    workdir = tmp_path_factory.mktemp("shared")
    hints_path = lab.write_hints(workdir / "lab.root")
    with Cluster(workdir, hints_path, lab.port, 2, front=False) as cluster:
        yield cluster


def dig(node: int, name: str, rrtype: str = "A") -> tuple[str, list[str], int]:
    """(status, answer lines, query time in ms) of a dig at a node."""
    done = subprocess.run(["dig", f"@{node_address(node)}", name, rrtype, "+tries=1",
                           "+time=5", "+noall", "+comments", "+answer", "+authority",
                           "+stats"], capture_output=True, text=True, timeout=15)  # fmt: skip
    status = re.search(r"status: (\w+)", done.stdout)
    took = re.search(r"Query time: (\d+) msec", done.stdout)
    lines = [line for line in done.stdout.splitlines() if line and not line.startswith(";")]
    assert status and took, done.stdout + done.stderr
    return status[1], lines, int(took[1])


def upstream(nodes: Cluster, node: int) -> float:
    return nodes.stats(node)["upstream_queries"]


def asked_lab(lab: Lab, name: str) -> int:
    return sum(1 for q in lab.queries if q.qname.lower() == name.lower())


def test_node_2_answers_what_node_1_resolved_without_going_upstream(
    nodes: Cluster, lab: Lab
) -> None:
    lab.reset_queries()
    status, first, _ = dig(1, "www.chain.com.")
    assert status == "NOERROR" and "198.51.100.7" in first[-1]
    assert asked_lab(lab, "b.chain.org.") >= 1
    before_lab, before_node = len(lab.queries), upstream(nodes, 2)
    status, second, _ = dig(2, "www.chain.com.")
    assert status == "NOERROR"
    assert [line.split()[4:] for line in second] == [line.split()[4:] for line in first]
    assert len(lab.queries) == before_lab  # no server of the lab was asked
    assert upstream(nodes, 2) == before_node
    assert nodes.stats(2)["shared_cache_lookups.result.hit"] >= 1


def test_negative_answers_are_shared(nodes: Cluster, lab: Lab) -> None:
    status, lines, _ = dig(1, "doesnotexist.example.com.")
    assert status == "NXDOMAIN" and "SOA" in lines[0]
    before = len(lab.queries)
    status, lines, _ = dig(2, "doesnotexist.example.com.")
    assert status == "NXDOMAIN" and "SOA" in lines[0]
    assert len(lab.queries) == before


def test_ttls_count_down_from_one_node_to_the_other(nodes: Cluster) -> None:
    _, first, _ = dig(1, "www.noglue.org.")
    assert int(first[0].split()[1]) == 300
    time.sleep(2.2)
    _, second, _ = dig(2, "www.noglue.org.")
    assert 296 <= int(second[0].split()[1]) <= 298


def test_a_servfail_is_not_shared(nodes: Cluster) -> None:
    status, _, _ = dig(1, "www.loop1.com.")
    assert status == "SERVFAIL"
    import redis

    client = redis.Redis(host=REDIS[0], port=REDIS[1])
    try:
        assert client.exists("lab:www.loop1.com./A") == 0
        assert client.exists("lab:www.chain.com./A") == 1
    finally:
        client.close()


def test_a_poisoned_value_never_reaches_a_client(nodes: Cluster) -> None:
    import redis

    poison = encode("www.google.com.", RRType.A, Answer(Rcode.NOERROR, [ResourceRecord(
        "www.google.com.", RRType.A, CLASS_IN, 300, A("6.6.6.6"))], [], 1), 86400)[0]  # fmt: skip
    client = redis.Redis(host=REDIS[0], port=REDIS[1])
    try:  # under www.example.com's key: a valid value for another question
        client.set("lab:www.example.com./A", poison, ex=300)
        client.set("lab:www.example.com./AAAA", b"not a value at all", ex=300)
    finally:
        client.close()
    rejected = nodes.stats(2)["shared_cache_lookups.result.rejected"]
    status, lines, _ = dig(2, "www.example.com.")
    assert status == "NOERROR" and "6.6.6.6" not in "".join(lines) and lines
    status, lines, _ = dig(2, "www.example.com.", "AAAA")
    assert status == "NOERROR" and "AAAA" in lines[0]
    assert nodes.stats(2)["shared_cache_lookups.result.rejected"] == rejected + 2


def node_log(nodes: Cluster, node: int) -> str:
    return (nodes.workdir / f"node{node}.log").read_text(errors="replace")


def test_redis_stalled_then_stopped_mid_run_answers_go_on(nodes: Cluster) -> None:
    nodes.pause_redis(True)  # up but silent: every command waits for its timeout
    try:
        status, _, took = dig(1, "s1.wild.example.com.")
        assert status == "NOERROR" and took < 1000
        status, _, took = dig(1, "s2.wild.example.com.")  # skipped: not even one timeout
        assert status == "NOERROR" and took < 500
    finally:
        nodes.pause_redis(False)
    nodes.stop_redis()
    for number in range(3, 8):
        status, lines, took = dig(2, f"s{number}.wild.example.com.")
        assert status == "NOERROR" and lines and took < 1000
    assert node_log(nodes, 2).count("shared_cache_down") == 1  # once per outage, not per query
    stats = nodes.stats(2)
    assert stats["shared_cache_up"] == 0 and stats["shared_cache_lookups.result.error"] >= 1
    assert stats["shared_cache_lookups.result.skipped"] >= 3
    nodes.start_redis()
    time.sleep(2.5)  # the pause after the outage's errors
    for number in range(8, 12):
        assert dig(2, f"s{number}.wild.example.com.")[0] == "NOERROR"
    assert "shared_cache_up" in node_log(nodes, 2)
    assert nodes.stats(2)["shared_cache_up"] == 1
    assert dig(1, "s11.wild.example.com.")[0] == "NOERROR"  # written again once back
    assert nodes.stats(1)["shared_cache_lookups.result.hit"] >= 1
