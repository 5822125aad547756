"""What is written about each query and its answer: the query log and dnstap, as journals.

The service tells its journals of every packet that arrives (:meth:`Journal.asked`) and
of every answer it sends (:meth:`Journal.answered`), the fast path's included, at the
two ends of the way a query takes (the pipeline between them decides nothing here).  A
journal is one module: :class:`QueryLog` (``--query-log``: one ``query`` line per
answer to a question, structlog at info) and :class:`resolver.serve.dnstap.DnstapJournal`
(CLIENT_QUERY and CLIENT_RESPONSE messages).  With no journal the service skips this
entirely: an empty tuple is the whole cost.
"""

from __future__ import annotations

from typing import Protocol

import structlog
from recordclass import dataobject

from resolver.iterate.request import Transport
from resolver.wire import HEADER_SIZE, Rcode, RRType
from resolver.wire.names import read_name

log = structlog.get_logger("resolver.serve.listener")


class Answered(dataobject, fast_new=True):
    """An answer sent (or a query dropped: ``response`` None), and what it answered."""

    packet: bytes  # the query as it came
    client: str
    transport: Transport
    started: float  # the service clock when the query arrived
    finished: float  # ... and when its answer was ready
    response: bytes | None
    qtype: int = 0
    rcode: int = 0
    name: str | None = None  # None: a fast-path answer (the plain query holds the name)
    cached: bool = False  # no upstream work
    upstream: int = 0  # upstream queries it took
    question: bool = False  # the answer to a question (not a refusal of a bad query)


class Journal(Protocol):
    def asked(self, packet: bytes, client: str, transport: Transport) -> None:
        """A packet arrived (before anything is decided about it)."""
        ...

    def answered(self, done: Answered) -> None:
        """An answer went out (or the query was dropped)."""
        ...


class QueryLog:
    """``--query-log``: client, transport, name, type, RCODE, from the cache or not,
    upstream queries and milliseconds, for each answer to a question."""

    def asked(self, packet: bytes, client: str, transport: Transport) -> None:
        return None

    def answered(self, done: Answered) -> None:
        if not done.question or done.response is None:
            return
        if done.name is None:
            # The fast path's key checked the question is plain labels: this cannot fail.
            name, ms = read_name(done.packet, HEADER_SIZE)[0], 0.0
        else:
            name, ms = done.name, round((done.finished - done.started) * 1000, 2)
        log.info("query", client=done.client, transport=done.transport.value, name=name,
                 type=RRType.text(done.qtype), rcode=Rcode.text(done.rcode), cache=done.cached,
                 upstream=done.upstream, ms=ms)  # fmt: skip
