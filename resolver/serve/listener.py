"""The service clients talk to: DNS over UDP and TCP on one port, answering from the engine.

- Bad input never stops or slows the listener (RFC 1035 section 4.1.1 RCODEs):
  shorter than a header -> dropped; a response (QR=1) -> dropped, never answered,
  so two servers cannot be made to bounce packets at each other; unparseable
  with a readable header -> FORMERR; QDCOUNT other than 1 -> FORMERR; an opcode
  other than QUERY -> NOTIMP; a class other than IN -> REFUSED (we only resolve
  the Internet class); AXFR/IXFR -> REFUSED (zone transfers are for
  authoritative servers); EDNS version above 0 -> BADVERS (RFC 6891 section
  6.1.3).  Each case is logged at warning with the client address.
- Responses are built by :mod:`resolver.serve.responses` (header rules, EDNS,
  Extended DNS Errors, truncation).  They are minimal, as Unbound's by default:
  the answer section, the SOA in authority for NXDOMAIN/NODATA, nothing else.
- One way through per packet: :meth:`ResolverService.take` checks the header and
  the access list and computes the question key once, answers from the wire
  cache if it can (the fast path, in front of everything), and otherwise hands a
  :class:`Pending` (what it decided) to :meth:`ResolverService.finish`, which
  parses the query, makes it a :class:`~resolver.iterate.request.Request` and runs
  it through the engine's pipeline (:mod:`resolver.iterate.pipeline`: response
  policy, local zones, the caches, the shared tier, the walk and the steps after
  it, assembled in :mod:`resolver.serve.steps`), then writes the response.
- Queries with RD=0 never start upstream work: they are answered from the cache
  or REFUSED (Extended DNS Error 20, Not Authoritative: RFC 8914 section 4.21
  says a resolver SHOULD send it for RD=0 queries it refuses), as Unbound, which
  refuses them outright by default.
- The same question asked by several clients while it is being resolved is
  resolved once and answered to all (the engine's walk is shared).
- What is written about each query and answer (``--query-log``, dnstap) is the
  service's journals (:mod:`resolver.serve.journal`), told at both ends.
- TCP (RFC 7766, with what it does under pressure) is :mod:`resolver.serve.tcp`.
- DNS cookies (RFC 7873, RFC 9018): a query with a COOKIE option gets one back
  with a Server Cookie of ours (:mod:`resolver.serve.cookies`); a valid Server
  Cookie exempts a UDP query from ``ip-ratelimit``; a malformed option is FORMERR.
- The largest UDP answer is the client's EDNS size capped at ``max-udp-size``
  (1232 by default, as Unbound's), 512 without EDNS.
- DNSBomb (2024: queries from a forged address, held by slow servers, their
  answers released at once towards the victim): at most ``pending-per-client``
  UDP queries of one client address are being resolved at once, and 4 times
  that for its /24 (IPv6: /56); beyond that a query that needs resolving is
  dropped (:class:`PendingLimit`), which bounds the answers a burst can release
  towards one address; and answers held half a second or more go to one address
  at most 32 per 100 ms.  How long a query can be held is the engine's time budget
  (10 s per question).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

import structlog
from recordclass import dataobject

from resolver.cache.answers import AnswerCache
from resolver.cache.records import RecordCache
from resolver.iterate.answer import Answer, FailureKind
from resolver.iterate.engine import KEEP, IterativeEngine, Keep
from resolver.iterate.pipeline import transaction
from resolver.iterate.request import Request, Transport
from resolver.serve.access import AccessList
from resolver.serve.cookies import MALFORMED_COOKIE, ClientCookie, ServerCookies
from resolver.serve.journal import Answered, Journal, QueryLog
from resolver.serve.policy_step import PolicyStep  # response policy
from resolver.serve.prefetch import Prefetcher
from resolver.serve.ratelimit import ClientRateLimit, PendingLimit, refused
from resolver.serve.responses import (
    authenticated,
    failure_error,
    fit_udp,
    make_response,
    sections,
)
from resolver.serve.shared import SharedTier  # scale: the shared cache tier
from resolver.serve.stats import ServiceStats
from resolver.serve.steps import data_path
from resolver.serve.tcp import MAX_TCP_CONNECTIONS, TCP_IDLE_TIMEOUT, TcpListener
from resolver.wire import (
    CLASS_IN,
    EDNS_PAYLOAD,
    HEADER_SIZE,
    UDP_PLAIN,
    Message,
    Opcode,
    Rcode,
    ResourceRecord,
    RRType,
    WireError,
    is_response,
    parse_message,
    rcode_of,
    response_from_header,
    write_message,
)
from resolver.wire.ede import EdeCode, ExtendedError
from resolver.wire.names import name_key
from resolver.wire.raw import (
    QuestionKey,
    add_option,
    edns_size,
    query_cookie,
    query_qtype,
    question_key,
)

__all__ = ["MAX_TCP_CONNECTIONS", "TCP_IDLE_TIMEOUT", "Pending", "ResolverService", "TcpListener",
           "UdpListener"]  # fmt: skip

log = structlog.get_logger("resolver.serve.listener")

SERVFAIL_TTL = 5  # seconds a SERVFAIL is answered from the cache (BIND: servfail-ttl 1)
STALE_TEXT = "stale answer: the servers could not be reached to refresh it (RFC 8767)"
NOT_RECURSING = "recursion not desired (RD=0) and the answer is not in the cache"

Address = tuple[Any, ...]


class ClientFilter(Protocol):
    """Who may use the resolver (:class:`~resolver.serve.access.AccessList`; tests give
    their own: a compiled service takes any object with ``allows``)."""

    def allows(self, host: str) -> bool: ...


class Pending(dataobject, fast_new=True):
    """A query the wire cache did not answer, with what was decided about it on arrival."""

    packet: bytes
    client: str
    transport: Transport
    allowed: bool  # the access list's verdict, taken once
    key: QuestionKey | None  # the wire cache's key, None if the query is not plain
    started: float  # the service clock when it arrived
    options: bytes = b""  # EDNS options added to its answer (our COOKIE)


def _servfail(packet: bytes) -> bytes | None:
    """SERVFAIL for a query that broke something of ours; None if it has no header."""
    if len(packet) < HEADER_SIZE or is_response(packet):
        return None
    return response_from_header(packet, Rcode.SERVFAIL)


class ResolverService:
    """Turns query packets into response packets, whatever the transport."""

    def __init__(
        self,
        engine: IterativeEngine,
        answers: AnswerCache,
        access: AccessList | None = None,
        query_log: bool = False,
        clock: Callable[[], float] = time.monotonic,
        stats: ServiceStats | None = None,
    ) -> None:
        self.engine = engine
        self.answers = answers
        # A name asked once is kept once: an answer that is one RRset holds it for the
        # record cache (see _remember); the engine's flushes cover both.
        engine.attach(answers)
        self.records: RecordCache = engine.cache
        self.access: ClientFilter = access or AccessList()
        self.clock = clock
        self.stats = stats or ServiceStats()
        self.ratelimit = ClientRateLimit(stats=self.stats)  # off until configured (ip-ratelimit)
        self.cookies: ServerCookies | None = ServerCookies()  # answer-cookies (on)
        self.pending = PendingLimit()  # pending-per-client (DNSBomb)
        self.max_udp_size = EDNS_PAYLOAD  # max-udp-size
        # Off until enabled (the prefetch setting).
        self.prefetch = Prefetcher(self._refresh, answers, engine.busy)
        self.shared: SharedTier | None = None  # scale: [shared-cache]
        self.policy: PolicyStep | None = None  # response policy: RPZ zones, blocklists
        self.query_log = query_log  # --query-log: the QueryLog journal
        self.dnstap: Journal | None = None  # --dnstap: DnstapJournal
        self.journal: tuple[Journal, ...] = ()
        self.configure()

    def configure(
        self,
        *,
        policy: PolicyStep | Keep | None = KEEP,
        shared: SharedTier | Keep | None = KEEP,
        query_log: bool | None = None,
        dnstap: Journal | Keep | None = KEEP,
    ) -> None:
        """The data path's steps and journals (at start-up and at a reload): the engine's
        pipeline gets the policy and shared tier steps (:func:`data_path`)."""
        if not isinstance(policy, Keep):
            self.policy = policy
        if not isinstance(shared, Keep):
            self.shared = shared
        if query_log is not None:
            self.query_log = query_log
        if not isinstance(dnstap, Keep):
            self.dnstap = dnstap
        journal: list[Journal] = [QueryLog()] if self.query_log else []
        if self.dnstap is not None:
            journal.append(self.dnstap)
        self.journal = tuple(journal)
        pipeline = data_path(self.engine.core(), policy=self.policy, shared=self.shared)
        self.engine.reconfigure(pipeline=pipeline)

    @property
    def in_flight(self) -> int:
        return self.engine.in_flight

    # ---------------------------------------------------------------- the way through

    def take(self, packet: bytes, client: str, transport: Transport) -> bytes | Pending | None:
        """A packet's arrival: the answer at once from the wire cache (bytes), None to drop
        it, or the :class:`Pending` query for :meth:`finish`."""
        started = self.clock()
        journal = self.journal
        if journal:
            for entry in journal:
                entry.asked(packet, client, transport)
        if len(packet) < HEADER_SIZE or is_response(packet):
            problem = "shorter than a header" if len(packet) < HEADER_SIZE else "a response (QR=1)"
            log.warning("bad_query", client=client, problem=problem + ", not answered")
            self.stats.dropped += 1
            return None
        cookie = None
        # An additional record (OPT) whose data (options) is not empty: a cookie, maybe.
        if packet[11] and (packet[-1] or packet[-2]) and self.cookies is not None:
            cookie = self._cookie(packet, client)
        udp = transport is Transport.UDP
        if (
            self.ratelimit.rate  # ip-ratelimit off: this one check
            # UDP and DoT (DoH: its listener, whose answer is an HTTP 429); never plain TCP
            and (udp or transport is Transport.TLS)
            and (cookie is None or not cookie.valid or not udp)  # valid Server Cookie: UDP exempt
            and self.ratelimit.limited(client, started)
        ):
            # UDP: TC=1 or nothing; DoT: REFUSED at once, never a drop (resolver.serve.ratelimit)
            refusal = self.ratelimit.refusal(packet, client, started) if udp else refused(packet)
            if journal:
                self._journal(Answered(packet, client, transport, started, self.clock(),
                                       refusal))  # fmt: skip
            return refusal
        options = b""
        if cookie is not None:
            if cookie is MALFORMED_COOKIE:
                log.warning("bad_query", client=client, problem="malformed COOKIE option")
                self.stats.answered(0, Rcode.FORMERR, transport, self.clock() - started)
                formerr = response_from_header(packet, Rcode.FORMERR)  # RFC 7873 section 5.2.2
                if journal:
                    self._journal(Answered(packet, client, transport, started, self.clock(),
                                           formerr, 0, Rcode.FORMERR))  # fmt: skip
                return formerr
            options = cookie.reply_option
        # Access first: a client outside --allow is not answered (nor logged) from the cache.
        allowed = self.access.allows(client)
        key = question_key(packet) if allowed else None
        if key is not None and self.policy is not None and self.policy.early(key.key, client):
            key = None  # response policy: decided in finish(), never from the wire cache
        if key is not None:
            if not udp:  # tcp, and tls, https (resolver.serve.dot, doh): no limit
                key.udp_size = 65535
            elif key.udp_size > UDP_PLAIN and self.max_udp_size != EDNS_PAYLOAD:
                # EDNS: the client's size within max-udp-size (question_key capped it at
                # the default already)
                key.udp_size = edns_size(packet, key.end, self.max_udp_size)
            if options:
                key.udp_size -= len(options)  # room for our COOKIE option
            response = self.answers.answer(key, packet)
            if response is not None:
                qtype = query_qtype(packet, key.end)
                rcode = rcode_of(response)
                self.stats.answered(qtype, rcode, transport, self.clock() - started)
                if options:
                    response = add_option(response, options)
                if journal:
                    hit = Answered(packet, client, transport, started, started, response,
                                   qtype, rcode, None, True, 0, True)  # fmt: skip
                    self._journal(hit)
                return response
        return Pending(packet, client, transport, allowed, key, started, options)

    def _journal(self, done: Answered) -> None:
        for entry in self.journal:
            entry.answered(done)

    def _cookie(self, packet: bytes, client: str) -> ClientCookie | None:
        """The query's COOKIE option judged (None: it has none)."""
        value = query_cookie(packet)
        if value is None:
            return None
        if not value:
            return MALFORMED_COOKIE
        assert self.cookies is not None
        return self.cookies.answer(value, client)

    async def finish(self, pending: Pending) -> bytes | None:
        """The response to a query the wire cache did not answer: its question through
        the engine's pipeline (:mod:`resolver.iterate.pipeline`), then the response."""
        packet = pending.packet
        try:
            query = parse_message(packet)
        except WireError as error:
            log.warning("bad_query", client=pending.client, problem=str(error))
            formerr = response_from_header(packet, Rcode.FORMERR)
            self._answered(pending, formerr, Rcode.FORMERR)
            return formerr
        policy = self.policy  # response policy: NOTIFY (RFC 1996) is no question
        if policy is not None and query.header.opcode == Opcode.NOTIFY:
            return self._ruled(pending, query, policy.notify(query, pending.client))
        refusal = self._refusal(query, pending)
        if refusal is not None:
            return self._send(pending, query, refusal)
        tx = await self.engine.answer(transaction(question_of(query, pending), query))
        if tx.decided:  # by a step (the response policy): its response, or nothing
            return self._ruled(pending, query, tx.response)
        resolution = tx.answer
        if resolution is None:  # RD=0, and the cache holds nothing for it
            refused = make_response(
                query, Rcode.REFUSED, error=(EdeCode.NOT_AUTHORITATIVE, NOT_RECURSING)
            )
            return self._send(pending, query, refused, logged=True)
        answer, authority = sections(query, resolution)
        extended = self._extended_error(resolution)
        if resolution.rcode == Rcode.SERVFAIL:  # view: the web view's recent SERVFAILs
            question = query.question[0]
            self.stats.servfailed(question.name, question.rrtype, extended)
        response = make_response(
            query, resolution.rcode, answer, authority, error=extended,
            authenticated=authenticated(query, resolution),
        )  # fmt: skip
        key = pending.key if tx.cacheable else None
        return self._send(pending, query, response, resolution, key=key)

    def _ruled(self, pending: Pending, query: Message, response: Message | None) -> bytes | None:
        """A response policy's answer (None: the query is dropped)."""
        if response is None:
            self._answered(pending, None, 0)
            return None
        return self._send(pending, query, response, logged=True)

    def _extended_error(self, resolution: Answer) -> ExtendedError | None:
        """Why a SERVFAIL failed, or that an answer is stale (RFC 8914 sections 4.4, 4.23...)."""
        if resolution.rcode == Rcode.SERVFAIL:
            return failure_error(resolution.failure)
        if resolution.stale:
            self.stats.stale += 1
            return EdeCode.STALE_ANSWER, STALE_TEXT
        return None

    async def respond(
        self, packet: bytes, client: str, transport: Transport = Transport.UDP
    ) -> bytes | None:
        """:meth:`take` then, if needed, :meth:`finish`: the whole way for one packet."""
        outcome = self.take(packet, client, transport)
        if isinstance(outcome, Pending):
            return await self.finish(outcome)
        return outcome

    def failed(self, pending: Pending) -> bytes | None:
        """SERVFAIL for a query whose handling raised (logged by the caller), counted."""
        self.stats.answered(0, Rcode.SERVFAIL, pending.transport, self.clock() - pending.started)
        response = _servfail(pending.packet)
        self._answered(pending, response, Rcode.SERVFAIL)
        return response

    def _answered(self, pending: Pending, response: bytes | None, rcode: int) -> None:
        """A response that answers no question (FORMERR, a failure, a drop), journaled."""
        if self.journal:
            self._journal(Answered(pending.packet, pending.client, pending.transport,
                                   pending.started, self.clock(), response, 0, rcode))  # fmt: skip

    # ---------------------------------------------------------------- steps

    def _send(
        self,
        pending: Pending,
        query: Message,
        response: Message,
        resolution: Answer | None = None,
        logged: bool = False,
        key: QuestionKey | None = None,
    ) -> bytes:
        """Write the response, keep it in the wire cache (at ``key``) if it may be, fit it
        to UDP, count and journal it."""
        wire = write_message(response)
        if resolution is not None:
            self._remember(key, query, resolution, wire, response.answer)
            logged = True
        if pending.transport is Transport.UDP:
            wire = fit_udp(query, response, wire, self.max_udp_size, len(pending.options))
        if pending.options:
            wire = add_option(wire, pending.options)
        question = query.question[0] if query.question else None
        rcode = response.rcode
        qtype = question.rrtype if question is not None else 0
        now = self.clock()
        self.stats.answered(qtype, rcode, pending.transport, now - pending.started)
        if self.journal:
            upstream = resolution.upstream_queries if resolution is not None else 0
            cached = resolution is not None and (resolution.from_cache or upstream == 0)
            name = question.name if question is not None else ""
            self._journal(Answered(pending.packet, pending.client, pending.transport,
                                   pending.started, now, wire, qtype, rcode, name, cached,
                                   upstream, logged and question is not None))  # fmt: skip
        return wire

    def _remember(
        self,
        key: QuestionKey | None,
        query: Message,
        resolution: Answer,
        wire: bytes,
        answer: list[ResourceRecord],
    ) -> None:
        """Keep an answer for the fast path: answers and negative answers for their TTL, a
        SERVFAIL for a few seconds (not one we gave because we were overloaded).  An
        answer that is one RRset (``answer``, the section sent) becomes the record cache's
        copy of it too, which then drops its own (RecordCache.release): one copy a name."""
        if key is None or resolution.stale:
            return  # a stale answer is given while the servers are tried again, not kept
        names: tuple[str, ...] = ()
        if len(resolution.answer) > 1:  # a CNAME chain names other owners: flushes find them
            asked = name_key(query.question[0].name)
            names = tuple({name_key(rr.name) for rr in resolution.answer} - {asked})
        if resolution.rcode in (Rcode.NOERROR, Rcode.NXDOMAIN):
            kept = self.answers.store(key, wire, names=names)
            if kept and answer and resolution.rcode == Rcode.NOERROR:
                question = query.question[0]
                self.records.release(question.name, question.rrtype, key.key, answer)
        elif resolution.failure is not None and resolution.failure.kind != FailureKind.OVERLOADED:
            # RFC 2308 section 7.1: a failure may be remembered (at most 5 minutes), so
            # that clients retrying a broken name do not each start the walk again.
            self.answers.store(key, wire, lifetime=SERVFAIL_TTL)

    def _refusal(self, query: Message, pending: Pending) -> Message | None:
        """The error response a query gets instead of resolution, if any (logged)."""
        problem, rcode, error = None, Rcode.NOERROR, None
        header = query.header
        question = query.question[0] if len(query.question) == 1 else None
        if not pending.allowed:
            problem, rcode = "client not in --allow", Rcode.REFUSED
            error = (EdeCode.PROHIBITED, "client not allowed")
        elif header.opcode != Opcode.QUERY:
            problem, rcode = f"opcode {header.opcode}", Rcode.NOTIMP
        elif question is None:
            problem, rcode = f"{len(query.question)} questions", Rcode.FORMERR
        elif query.edns is not None and query.edns.version != 0:
            problem, rcode = f"EDNS version {query.edns.version}", Rcode.BADVERS
        elif question.rrclass != CLASS_IN:
            problem, rcode = f"class {question.rrclass}", Rcode.REFUSED
            error = (EdeCode.NOT_SUPPORTED, "only class IN is served")
        elif question.rrtype in (RRType.AXFR, RRType.IXFR):
            problem, rcode = "zone transfer", Rcode.REFUSED
            error = (EdeCode.NOT_SUPPORTED, "zone transfers are for authoritative servers")
        elif question.rrtype == RRType.OPT or 128 <= question.rrtype <= 254:
            problem, rcode = f"meta type {question.rrtype}", Rcode.FORMERR
        if problem is None:
            return None
        log.warning("bad_query", client=pending.client, problem=problem, rcode=Rcode.text(rcode))
        return make_response(query, rcode, error=error, with_question=question is not None)

    def _refresh(self, name: str, rrtype: int, checking_disabled: bool) -> Awaitable[Answer]:
        """A prefetch's resolution: the question's data fetched again."""
        return self.engine.resolve(name, rrtype, checking_disabled=checking_disabled, refresh=True)


def question_of(query: Message, pending: Pending) -> Request:
    """The request a parsed query makes (one question, class IN: :meth:`_refusal` saw to
    it), with who asked and how."""
    question, edns = query.question[0], query.edns
    header = query.header
    return Request(question.name, question.rrtype, question.rrclass,
                   edns is not None and bool(edns.dnssec_ok), bool(header.cd), bool(header.rd),
                   pending.client, pending.transport)  # fmt: skip


# -------------------------------------------------------------------- transports


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, service: ResolverService) -> None:
        self.service = service
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        # The loop, kept: asyncio.get_running_loop() (and ensure_future, which asks it)
        # makes a getpid() system call each time on CPython 3.11.
        self.loop: asyncio.AbstractEventLoop | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport is not a subclass of asyncio's, so no isinstance check.
        self.transport = cast(asyncio.DatagramTransport, transport)
        try:
            self.loop = asyncio.get_running_loop()  # the loop calls it (tests may not)
        except RuntimeError:
            self.loop = None

    def datagram_received(self, data: bytes, addr: Address) -> None:
        outcome = self.service.take(data, addr[0], Transport.UDP)
        if outcome is None:
            return
        if isinstance(outcome, Pending):
            keys = self.service.pending.take(addr[0])
            if keys is None:  # DNSBomb: as many of its queries in progress as it may have
                return
            loop = self.loop or asyncio.get_running_loop()
            task = loop.create_task(self._answer(outcome, addr, keys))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif self.transport is not None:
            self.transport.sendto(outcome, addr)

    async def _answer(self, pending: Pending, addr: Address, keys: tuple[object, ...]) -> None:
        try:
            response = await self.service.finish(pending)
        except Exception:
            log.exception("internal_error", client=addr[0])
            response = self.service.failed(pending)
        finally:
            self.service.pending.done(keys)
        if response is None or self.transport is None:
            return
        now = self.service.clock()
        if self.service.pending.may_release(addr[0], now - pending.started, now):
            self.transport.sendto(response, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp_error", error=str(exc))
