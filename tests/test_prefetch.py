"""Prefetch (resolver/serve/prefetch.py): refreshing answers before they expire, once."""

from __future__ import annotations

import asyncio

from resolver.cache.answers import AnswerCache
from resolver.iterate.answer import Answer, FailureKind, servfail
from resolver.serve.prefetch import MAX_PREFETCHING, Prefetcher
from resolver.wire import Rcode, RRType
from resolver.wire.raw import question_key
from tests.fakes import FakeClock
from tests.test_answer_cache import WWW_A, ask, query, stored


class Refreshes:
    """A fake resolution that records what it was asked and answers as told."""

    def __init__(self, answer: Answer) -> None:
        self.asked: list[tuple[str, int, bool]] = []
        self.answer = answer
        self.gate = asyncio.Event()

    async def __call__(self, name: str, rrtype: int, checking_disabled: bool) -> Answer:
        self.asked.append((name, rrtype, checking_disabled))
        await self.gate.wait()
        return self.answer


async def _hits(
    answer: Answer, busy: bool = False, hits: int = 3, cd: bool = False
) -> tuple[Refreshes, AnswerCache, Prefetcher, bytes]:
    clock = FakeClock()
    cache = AnswerCache(clock=clock)
    refreshes = Refreshes(answer)
    prefetcher = Prefetcher(refreshes, cache, lambda: busy, clock=clock)
    prefetcher.enable(True)
    packet = query(cd=cd)
    stored(cache, packet, WWW_A)
    clock.advance(280)  # 20 s left of 300
    for _ in range(hits):
        assert ask(cache, packet) is not None  # the client is answered from the cache
    refreshes.gate.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    return refreshes, cache, prefetcher, packet


def test_a_hit_near_expiry_refreshes_once_then_drops_the_old_answer() -> None:
    refreshes, cache, prefetcher, packet = asyncio.run(_hits(Answer(Rcode.NOERROR, [], [])))
    assert refreshes.asked == [("www.example.com.", RRType.A, False)]
    assert (prefetcher.started, prefetcher.refreshed) == (1, 1)
    assert ask(cache, packet) is None  # the next query builds it from the fresh records


def test_a_failed_refresh_keeps_the_answer_and_is_not_retried_at_every_hit() -> None:
    failed = servfail(FailureKind.NO_REACHABLE_AUTHORITY, "down")
    refreshes, cache, prefetcher, packet = asyncio.run(_hits(failed, hits=5))
    assert len(refreshes.asked) == 1 and prefetcher.refreshed == 0
    assert ask(cache, packet) is not None


def test_a_busy_service_prefetches_nothing() -> None:
    refreshes, _, prefetcher, _ = asyncio.run(_hits(Answer(Rcode.NOERROR, [], []), busy=True))
    assert refreshes.asked == [] and prefetcher.started == 0


def test_the_clients_cd_bit_is_kept() -> None:
    refreshes, _, _, _ = asyncio.run(_hits(Answer(Rcode.NOERROR, [], []), cd=True))
    assert refreshes.asked == [("www.example.com.", RRType.A, True)]


def test_prefetches_at_once_are_bounded() -> None:
    async def scenario() -> tuple[int, int]:
        clock = FakeClock()
        cache = AnswerCache(clock=clock)
        refreshes = Refreshes(Answer(Rcode.NOERROR, [], []))
        prefetcher = Prefetcher(refreshes, cache, lambda: False, clock=clock)
        prefetcher.enable(True)
        packets = [query(f"n{n}.example.") for n in range(MAX_PREFETCHING + 10)]
        for n, packet in enumerate(packets):
            stored(cache, packet, [f"n{n}.example. 300 A 192.0.2.1"])
        clock.advance(290)
        for packet in packets:
            ask(cache, packet)
        running = prefetcher.running
        refreshes.gate.set()
        for _ in range(3):
            await asyncio.sleep(0)
        return running, prefetcher.running

    running, after = asyncio.run(scenario())
    assert running == MAX_PREFETCHING and after == 0


def test_disabled_prefetch_reports_nothing() -> None:
    cache = AnswerCache()
    prefetcher = Prefetcher(Refreshes(Answer(Rcode.NOERROR, [], [])), cache, lambda: False)
    prefetcher.enable(True)
    prefetcher.enable(False)
    assert cache.expiring is None
    key = question_key(query())
    assert key is not None
