"""Prefetch: an answer asked for in the last tenth of its lifetime is refreshed in the
background, once, so a name clients keep asking never expires for them.

This is Unbound's ``prefetch`` (and Knot Resolver's refresh of expiring records):
the wire cache (:class:`~resolver.cache.answers.AnswerCache`) reports a hit in
the last tenth of an answer's lifetime; the question is resolved again with its
own data fetched from the servers, not recalled (sub-lookups still use the
cache); when that succeeds, the question's wire answers are dropped, so the next
query builds them from the fresh records, with full TTLs.  The client that
triggered it is answered from the cache as usual and never waits.

Once: a question is not prefetched again before the answer that triggered it
would have expired, whatever the outcome (a failed refresh is not retried at
every hit; serve-stale takes over when the data expires).  Prefetches are
bounded in number at once and give way to client questions when the service is
busy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from resolver.cache.answers import AnswerCache
from resolver.cache.lru import LruDict
from resolver.iterate.answer import Answer
from resolver.wire import Rcode, WireError
from resolver.wire.raw import CD_KEY, QuestionKey, key_name, key_qtype, key_question

log = structlog.get_logger("resolver.serve.prefetch")

MAX_PREFETCHING = 256  # refreshes at once; beyond, a hit asks for none
MAX_REMEMBERED = 100_000  # questions prefetched lately (bounded memory)

Resolve = Callable[[str, int, bool], Awaitable[Answer]]  # (name, type, CD) -> answer


class Prefetcher:
    def __init__(
        self,
        resolve: Resolve,
        answers: AnswerCache,
        busy: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``resolve`` refreshes a question; ``busy`` says the service has no room for
        background work now."""
        self.resolve = resolve
        self.answers = answers
        self.busy = busy
        self.clock = clock
        self._until: LruDict[bytes, float] = LruDict(MAX_REMEMBERED)  # question -> not before
        self._tasks: set[asyncio.Task[None]] = set()
        self.started = 0
        self.refreshed = 0

    def enable(self, on: bool) -> None:
        self.answers.expiring = self.expiring if on else None

    @property
    def running(self) -> int:
        return len(self._tasks)

    def expiring(self, key: QuestionKey, left: float) -> None:
        """The wire cache's report of a hit on an answer with ``left`` seconds to live."""
        question = key_question(key.key)  # every client's flags alike
        now = self.clock()
        until = self._until.peek(question)
        if until is not None and now < until:
            return
        if len(self._tasks) >= MAX_PREFETCHING or self.busy():
            return
        try:
            name = key_name(key.key)
        except WireError:
            return
        self._until.put(question, now + left)
        qtype = key_qtype(key.key)
        checking_disabled = bool(key.key[-1] & CD_KEY)
        task = asyncio.ensure_future(self._refresh(question, name, qtype, checking_disabled))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.started += 1

    async def _refresh(self, question: bytes, name: str, qtype: int, cd: bool) -> None:
        try:
            answer = await self.resolve(name, qtype, cd)
        except Exception:  # a bug must not end the service; it is logged
            log.exception("prefetch_failed", name=name, qtype=qtype)
            return
        if answer.rcode != Rcode.SERVFAIL and not answer.stale:
            self.answers.forget(question)
            self.refreshed += 1
