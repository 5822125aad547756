"""The request pipeline (resolver.iterate.pipeline, steps.py; resolver.serve.steps): every
question through one pipeline, its steps in order, the record cache asked once on a miss,
RD=0 the same pipeline without a walk, the judge's last word on every answer from DNS
data, a shared walk never changed by one of its clients, and a flush that reaches every
table derived from the cache.  On canned replies: tests/fakes.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import resolver.iterate.engine as engine_module
import resolver.iterate.lookup as lookup_module
from resolver import compiled
from resolver.iterate.answer import Answer
from resolver.iterate.judge import NoJudge
from resolver.iterate.pipeline import Pipeline, Transaction, transaction
from resolver.iterate.request import Request, Transport
from resolver.iterate.stale import StalePolicy
from resolver.local import LocalSources, LocalZone, LocalZones, LocalZoneType, load_local_zones
from resolver.serve.steps import data_path
from resolver.wire import CLASS_IN, Rcode, ResourceRecord, RRType
from resolver.wire.rdata import CNAME
from tests.fakes import (
    EXAMPLE,
    EXAMPLE2,
    FakeClock,
    from_cache_only,
    make_engine,
    resolve,
    texts,
)
from tests.test_lookup import example_world  # root (primed) -> com -> example.com


def client(name: str, qtype: int = RRType.A, **flags: Any) -> Transaction:
    request = Request(name, qtype, client="192.0.2.9", transport=Transport.UDP, **flags)
    return transaction(request)


# -- the mechanism --------------------------------------------------------------------------


class Step:
    """A step that records when it runs, and answers or decides when told to."""

    def __init__(self, name: str, log: list[str], answers: bool = False, decides: bool = False):
        self.name, self.log, self.answers, self.decides = name, log, answers, decides

    async def before(self, tx: Transaction) -> bool:
        self.log.append(f"before {self.name}")
        if self.answers:
            tx.answer = Answer(Rcode.NOERROR, [], [])
        tx.decided = self.decides
        return self.answers or self.decides

    async def after(self, tx: Transaction) -> None:
        self.log.append(f"after {self.name}")
        tx.decided = self.decides

    async def walk(self, tx: Transaction) -> Answer:
        self.log.append("walk")
        return Answer(Rcode.NOERROR, [], [])


def test_steps_run_in_order_until_one_answers_or_decides() -> None:
    log: list[str] = []
    a, b, c = Step("a", log), Step("b", log), Step("c", log)
    walk = Step("walk", log)
    asyncio.run(Pipeline((a, b), walk, (b, c)).run(client("x.")))
    assert log == ["before a", "before b", "walk", "after b", "after c"]
    log.clear()
    b.answers = True  # the walk is not needed; the after-steps see b's answer
    asyncio.run(Pipeline((a, b, c), walk, (a, c)).run(client("x.")))
    assert log == ["before a", "before b", "after a", "after c"]
    log.clear()
    a.decides = True  # the response is made: nothing else runs
    tx = asyncio.run(Pipeline((a, b), walk, (c,)).run(client("x.")))
    assert log == ["before a"] and tx.decided
    log.clear()
    a.decides, c.decides = False, True  # an after-step decides: the later ones do not run
    asyncio.run(Pipeline((a,), walk, (c, b)).run(client("x.")))
    assert log == ["before a", "walk", "after c"]


def test_the_data_path_places_its_steps_around_the_engine() -> None:
    engine, _, _ = make_engine(example_world())
    core = engine.core()
    policy, shared = object(), object()
    whole = data_path(core, policy=policy, shared=shared)  # type: ignore[arg-type]
    assert whole.before == (policy, *core.before, shared)
    assert whole.after == (*core.after, shared, policy)
    assert whole.walk is engine
    bare = data_path(core)
    assert (bare.before, bare.after) == (core.before, core.after)


# -- the engine's steps ---------------------------------------------------------------------


def count_recalls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[bool]:
    """Each look into the record cache for ``name`` (stale: whether expired data counts)."""
    seen: list[bool] = []
    for module in (lookup_module, engine_module):
        real = module.recall

        def counted(cache: Any, asked: str, *args: Any, real: Any = real, **kwargs: Any) -> Any:
            if asked == name:
                seen.append(bool(kwargs.get("stale")))
            return real(cache, asked, *args, **kwargs)

        monkeypatch.setattr(module, "recall", counted)
    return seen


@pytest.mark.skipif(
    compiled.core() == "compiled",
    reason="counts calls by monkeypatching, which calls between compiled modules do not see: "
    "CI's pure-Python run (RESOLVER_PURE_PYTHON=1) runs it on the same source",
)
@pytest.mark.parametrize("stale", [False, True], ids=["no serve-stale", "serve-stale"])
def test_the_record_cache_is_asked_once_on_a_miss(
    monkeypatch: pytest.MonkeyPatch, stale: bool
) -> None:
    """The record cache step takes the walk as far as the cache goes and the walk goes on
    from there: a miss looks once for live data (with serve-stale, once more for expired
    data, its fallback), not again in the walk."""
    seen = count_recalls(monkeypatch, "www.example.com.")
    engine, _, _ = make_engine(example_world(), stale=StalePolicy() if stale else None)
    answer = asyncio.run(engine.answer(client("www.example.com."))).answer
    assert answer is not None and texts(answer.answer) == ["www.example.com. 300 A 192.0.2.1"]
    assert seen == ([False, True] if stale else [False])


def test_rd0_is_the_same_pipeline_without_a_walk() -> None:
    net = example_world()
    engine, _, _ = make_engine(net)
    assert from_cache_only(engine, "www.example.com.", RRType.A) is None  # nothing cached
    assert net.log == []  # and nothing asked
    resolve(engine, "www.example.com.", "A")
    net.log.clear()
    cached = from_cache_only(engine, "www.example.com.", RRType.A)
    assert cached is not None and texts(cached.answer) == ["www.example.com. 300 A 192.0.2.1"]
    assert net.log == []


class Sentinel(NoJudge):
    """A judge whose last word marks the answers it saw (as RFC 8509's sentinel looks)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def answered(self, qname: str, qtype: int, answer: Answer) -> Answer:
        self.seen.append(qname)
        return answer


def test_the_judge_has_the_last_word_on_every_answer_from_dns_data() -> None:
    """RFC 8509's key sentinel was applied to walked answers only, not to RD=0 answers from
    the cache nor to the shared tier's: one pipeline, one LastWord step, for every one of
    them; never for local data (configuration, not DNS data)."""
    net = example_world()
    engine, _, _ = make_engine(net)
    judge = Sentinel()
    engine.env.judge = judge
    engine.reconfigure(local=load_local_zones(LocalSources()))  # localhost., RFC 6761
    resolve(engine, "www.example.com.", "A")  # walked
    resolve(engine, "www.example.com.", "A")  # from the record cache
    from_cache_only(engine, "www.example.com.", RRType.A)  # RD=0
    resolve(engine, "localhost.", "A")  # a local zone
    assert judge.seen == ["www.example.com."] * 3


def test_a_shared_walk_is_not_changed_by_a_local_chain_in_front_of_it() -> None:
    """Two clients, one asking www.example.com. and one a local name whose CNAME leads
    there, share one walk; the local chain is put in front of the second's answer only."""
    net = example_world()
    net.slow[EXAMPLE] = net.slow[EXAMPLE2] = 0.05
    engine, _, _ = make_engine(net)
    zone = LocalZone("corp.example.", LocalZoneType.STATIC)
    zone.add(ResourceRecord("out.corp.example.", RRType.CNAME, CLASS_IN, 300,
                            CNAME("www.example.com.")))  # fmt: skip
    engine.reconfigure(local=LocalZones([zone]))

    async def both() -> list[Answer | None]:
        txs = await asyncio.gather(engine.answer(client("www.example.com.")),
                                   engine.answer(client("out.corp.example.")))  # fmt: skip
        return [tx.answer for tx in txs]

    direct, local = asyncio.run(both())
    assert direct is not None and local is not None
    assert texts(direct.answer) == ["www.example.com. 300 A 192.0.2.1"]
    assert texts(local.answer) == ["out.corp.example. 300 CNAME www.example.com.",
                                   "www.example.com. 300 A 192.0.2.1"]  # fmt: skip
    assert net.count(EXAMPLE) + net.count(EXAMPLE2) == 1  # one walk


# -- the derived tables ---------------------------------------------------------------------


class Forgetting(NoJudge):
    def __init__(self) -> None:
        self.flushed: list[str | None] = []

    def flush(self, zone: str | None = None) -> None:
        self.flushed.append(zone)


def test_a_flush_reaches_every_table_derived_from_the_cache() -> None:
    """flush(zone): the record cache, the wire cache, the zone cuts and unusable
    delegations, the judge's chain of trust and RFC 8198 ranges, serve-stale's failures."""
    clock = FakeClock()
    net = example_world(clock)
    engine, cache, _ = make_engine(net, clock, stale=StalePolicy())
    judge = Forgetting()
    engine.env.judge = judge
    resolve(engine, "www.example.com.", "A")
    assert engine.stale is not None
    engine.stale.note(("www.example.com.", RRType.A), Answer(Rcode.SERVFAIL, [], [], 0,
                      engine_module.servfail(engine_module.FailureKind.NETWORK_ERROR, "x").failure),
                      clock())  # fmt: skip
    engine.env.finder.unusable.failed("broken.example.com.")
    records, answers = engine.flush("example.com.")
    assert records > 0 and answers == 0  # no wire cache attached here
    assert cache.get_rrset("www.example.com.", RRType.A) is None
    assert not engine.env.finder.unusable.unusable("broken.example.com.")
    assert not engine.stale.failed_lately(("www.example.com.", RRType.A), clock())
    assert judge.flushed == ["example.com."]
    engine.flush()
    assert judge.flushed == ["example.com.", None] and len(cache) == 0
