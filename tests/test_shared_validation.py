"""Hole 2 of issue 20: the shared Redis tier must not launder the AD bit.

Whoever can write to Redis can write a value that says "secure".  A validating node
validates every value again with its own chain of trust (or, with ``hmac-keys``,
accepts only values authenticated with a key the nodes share).  First with a Redis
double and a real validating engine on the hostile signed world of
:mod:`resolver.lab.forged_attacks`, then with a real redis-server and the running
service asked over the wire: a forged value with the secure state written in it never
gets AD, nor reaches a client when it does not validate.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import time
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from resolver.cache.records import Security
from resolver.iterate.answer import Answer
from resolver.iterate.pipeline import transaction
from resolver.iterate.request import Request, Transport
from resolver.lab import forged_attacks
from resolver.lab.forged_server import ForgedServers
from resolver.lab.forged_world import World
from resolver.lab.unbound import OurResolver, free_port
from resolver.ops.sharedsetup import parse_shared_cache
from resolver.serve.shared import SharedCacheSettings, SharedTier
from resolver.serve.sharedwire import encode
from resolver.serve.stats import ServiceStats
from resolver.serve.steps import data_path
from resolver.wire import CLASS_IN, Rcode, ResourceRecord, RRType
from resolver.wire.rdata import A
from scripts.cluster import Managed, _accepts, wait_for
from tests.fakes import FakeClock
from tests.test_shared_cache import FakeRedis
from tests.test_validator_attacks import Validating

NAME = "ok.replay."  # honest: 192.0.2.13, signed by replay.
FORGED = "6.6.6.6"
KEY_1 = "k" * 40
KEY_2 = "second shared key, for the rotation ......"


@pytest.fixture(scope="module")
def world() -> World:
    return forged_attacks.build()


def node(world: World, clock: FakeClock, redis: FakeRedis, *keys: str) -> tuple[
    Validating, SharedTier, ServiceStats]:  # fmt: skip
    """A validating engine on the world with a tier on the Redis double."""
    extra = {"hmac_keys": keys} if keys else {}  # (a setting of issue 20)
    settings = SharedCacheSettings("redis://127.0.0.1:6379/0", **extra)  # type: ignore[arg-type]
    stats = ServiceStats()
    validating = Validating(world)
    engine = validating.engine
    tier = SharedTier(settings, stats, engine, client=redis, clock=clock)
    engine.reconfigure(pipeline=data_path(engine.core(), shared=tier))
    return validating, tier, stats


def forged_value(security: int, name: str = NAME, address: str = FORGED) -> bytes:
    record = ResourceRecord(name, RRType.A, CLASS_IN, 300, A(address))
    return encode(name, RRType.A, Answer(Rcode.NOERROR, [record], [], 1, None, False,
                                         security), 86400)[0]  # fmt: skip


def ask(validating: Validating, tier: SharedTier, name: str = NAME, qtype: int = RRType.A
        ) -> Answer:  # fmt: skip
    async def go() -> Answer:
        request = Request(name, qtype, client="192.0.2.9", transport=Transport.UDP)
        answer = (await validating.engine.answer(transaction(request))).answer
        assert answer is not None
        if tier.writes:
            await asyncio.wait(tier.writes)
        return answer

    return asyncio.run(go())


def addresses(answer: Answer) -> list[str]:
    return [rr.rdata.to_text() for rr in answer.answer if rr.rrtype == RRType.A]


@pytest.mark.parametrize("claimed", [Security.SECURE, Security.INSECURE])
def test_a_forged_value_is_validated_again_and_refused(world: World, claimed: int) -> None:
    clock = FakeClock()
    redis = FakeRedis(clock)
    validating, tier, stats = node(world, clock, redis)
    redis.data[tier.key(NAME, RRType.A)] = (forged_value(claimed), clock() + 300)
    answer = ask(validating, tier)
    assert addresses(answer) == ["192.0.2.13"] and answer.security == Security.SECURE
    assert stats.shared_lookups["bogus"] == 1
    # The walk's answer replaced the forged value in Redis.
    validating2, tier2, stats2 = node(world, clock, redis)
    again = ask(validating2, tier2)
    assert addresses(again) == ["192.0.2.13"] and stats2.shared_lookups["hit"] == 1


def test_a_forged_value_with_a_real_signature_of_another_name_is_refused(world: World) -> None:
    """alpha.replay. with other.replay.'s address and RRSIG: shape fine, signature wrong."""
    clock = FakeClock()
    redis = FakeRedis(clock)
    first, tier1, _ = node(world, clock, redis)
    honest_other = ask(first, tier1, "other.replay.")  # written by node 1, with its RRSIG
    assert honest_other.security == Security.SECURE
    value = redis.data[tier1.key("other.replay.", RRType.A)][0]
    moved = value.replace(b"\x05other\x06replay", b"\x05alpha\x06replay")
    redis.data[tier1.key("alpha.replay.", RRType.A)] = (moved, clock() + 300)
    second, tier2, stats2 = node(world, clock, redis)
    answer = ask(second, tier2, "alpha.replay.")
    assert addresses(answer) == ["192.0.2.14"] and stats2.shared_lookups["bogus"] == 1


@pytest.mark.parametrize(("name", "qtype", "rcode"), [
    (NAME, RRType.A, Rcode.NOERROR),
    ("x.w.aggr3.", RRType.TXT, Rcode.NOERROR),  # a wildcard answer and its NSEC3 proof
    ("nothing.aggr3.", RRType.A, Rcode.NXDOMAIN),
    ("a.aggr.", RRType.MX, Rcode.NOERROR),  # NODATA
    ("www.sub.shared.", RRType.A, Rcode.NOERROR),  # signer below the cut a node knows
])  # fmt: skip
def test_a_value_another_node_wrote_is_validated_and_served(
    world: World, name: str, qtype: int, rcode: int
) -> None:
    clock = FakeClock()
    redis = FakeRedis(clock)
    first, tier1, _ = node(world, clock, redis)
    written = ask(first, tier1, name, qtype)
    assert written.rcode == rcode and written.security == Security.SECURE
    second, tier2, stats2 = node(world, clock, redis)
    answer = ask(second, tier2, name, qtype)
    assert (answer.rcode, answer.security) == (rcode, Security.SECURE)
    assert stats2.shared_lookups["hit"] == 1 and stats2.shared_lookups["bogus"] == 0
    assert [rr.to_text() for rr in answer.answer] == [rr.to_text() for rr in written.answer]
    # Node 2 asked the servers only for keys (and DS), never the question itself.
    asked = {(qname.lower(), qt) for _, qname, qt in second.net.log}
    assert (name, qtype) not in asked
    assert {qt for _, qt in asked} <= {RRType.DNSKEY, RRType.DS, RRType.NS}


# ---------------------------------------------------------------- with hmac-keys


def test_with_hmac_keys_only_authenticated_values_are_taken(world: World) -> None:
    from resolver.serve.sharedwire import seal

    clock = FakeClock()
    redis = FakeRedis(clock)
    first, tier1, _ = node(world, clock, redis, KEY_1)
    ask(first, tier1)
    sealed = redis.data[tier1.key(NAME, RRType.A)][0]
    second, tier2, _ = node(world, clock, redis, KEY_1)
    answer = ask(second, tier2)
    assert addresses(answer) == ["192.0.2.13"] and answer.security == Security.SECURE
    assert second.net.log == []  # authenticated: taken as the writer validated it
    # Forged values: unsealed, sealed with a key nobody configured, tampered, moved.
    key = tier1.key(NAME, RRType.A)
    other_key = tier1.key("alpha.replay.", RRType.A)
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    for where, value in [(key, forged_value(Security.SECURE)),
                         (key, seal(forged_value(Security.SECURE), key, [b"x" * 40])),
                         (key, tampered), (other_key, sealed)]:  # fmt: skip
        redis.data.clear()
        redis.data[where] = (value, clock() + 300)
        third, tier3, stats3 = node(world, clock, redis, KEY_1)
        answer = ask(third, tier3, "alpha.replay." if where == other_key else NAME)
        assert FORGED not in addresses(answer) and answer.security == Security.SECURE
        assert stats3.shared_lookups["rejected"] == 1, where


def test_two_keys_during_a_rotation(world: World) -> None:
    """Nodes with [new, old] accept values sealed with either and write with the new one;
    nodes still on [old] accept the old only: the rotation is done in two reloads."""
    clock = FakeClock()
    redis = FakeRedis(clock)
    old_node, old_tier, _ = node(world, clock, redis, KEY_1)
    ask(old_node, old_tier)  # sealed with KEY_1
    new_node, new_tier, new_stats = node(world, clock, redis, KEY_2, KEY_1)
    assert addresses(ask(new_node, new_tier)) == ["192.0.2.13"]
    assert new_stats.shared_lookups["hit"] == 1 and new_node.net.log == []
    ask(new_node, new_tier, "other.replay.")  # written with KEY_2
    later, later_tier, later_stats = node(world, clock, redis, KEY_2)
    assert addresses(ask(later, later_tier, "other.replay.")) == ["192.0.2.10"]
    assert later_stats.shared_lookups["hit"] == 1


def test_the_keys_are_checked() -> None:
    assert parse_shared_cache({"url": "redis://x", "hmac-keys": [KEY_1, KEY_2]}).hmac_keys == (
        KEY_1, KEY_2)  # fmt: skip
    for keys in ([], ["short"], [KEY_1, KEY_2, KEY_1], KEY_1):
        with pytest.raises(ValueError, match="hmac-keys"):
            parse_shared_cache({"url": "redis://x", "hmac-keys": keys})


# ---------------------------------------------------------------- the running service


def redis_server() -> str | None:
    return shutil.which("redis-server")


@pytest.fixture(scope="module")
def served(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    tuple[int, int]]:  # fmt: skip
    """(the resolver's port, Redis's port): a validating node of the service on the world
    with a real redis-server as its shared tier."""
    if redis_server() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("redis-server is missing (apt-get install redis-server)")
        pytest.skip("redis-server is missing (apt-get install redis-server)")
    workdir = tmp_path_factory.mktemp("shared-validation")
    upstream = free_port()
    redis_port = free_port()
    (workdir / "root.hints").write_text(world.hints_text())
    (workdir / "anchor").write_text(world.anchor_text())
    config = workdir / "resolver.toml"
    # Timeouts for a loaded machine: the write-back this tests must not time out.
    config.write_text(f'[shared-cache]\nurl = "redis://127.0.0.1:{redis_port}/0"\n'
                      'connect-timeout-ms = 2000\nread-timeout-ms = 2000\n')  # fmt: skip
    redis = Managed("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port),
                              "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                    workdir).start()  # fmt: skip
    try:
        wait_for("redis-server", lambda: _accepts("127.0.0.1", redis_port), redis)
        with ForgedServers(world, upstream), OurResolver(
            workdir / "node", workdir / "root.hints", free_port(), "--config", str(config),
            "--trust-anchor-file", str(workdir / "anchor"), upstream_port=upstream,
        ) as resolver:  # fmt: skip
            yield resolver.port, redis_port
    finally:
        redis.stop()


def dig(port: int, name: str) -> dns.message.Message:
    query = dns.message.make_query(name, "A", want_dnssec=True)
    query.flags |= dns.flags.AD
    return dns.query.tcp(query, "127.0.0.1", port=port, timeout=10)


def test_the_service_gives_no_ad_to_a_forged_value_in_redis(served: tuple[int, int]) -> None:
    import redis

    port, redis_port = served
    client = redis.Redis(host="127.0.0.1", port=redis_port)
    try:
        for name in (NAME, "other.replay."):
            client.set(f"resolver:{name}/A", forged_value(Security.SECURE, name), ex=300)
        reply = dig(port, NAME)
        assert dns.rcode.to_text(reply.rcode()) == "NOERROR"
        assert FORGED not in reply.to_text() and "192.0.2.13" in reply.to_text()
        assert reply.flags & dns.flags.AD  # the honest data, validated by this node
        # What the node wrote back over the forged value is the validated answer (the write
        # is offered in the background, after the answer is sent: wait for it a little).
        forged, honest = socket.inet_aton(FORGED), socket.inet_aton("192.0.2.13")
        deadline = time.monotonic() + 3
        value = client.get(f"resolver:{NAME}/A")
        while value is not None and honest not in value and time.monotonic() < deadline:
            time.sleep(0.05)
            value = client.get(f"resolver:{NAME}/A")
        assert value is not None and forged not in value and honest in value
    finally:
        client.close()
