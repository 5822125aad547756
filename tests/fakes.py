"""Test doubles shared by the unit tests: a clock that moves only when told,
authoritative replies built with dnspython (an independent oracle) from record text,
and a fake network that answers the engine from canned replies (no sockets)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rrset

from resolver.cache.records import RecordCache, Trust
from resolver.iterate.answer import Answer
from resolver.iterate.engine import IterativeEngine
from resolver.iterate.events import Event
from resolver.iterate.forwarding import ConfiguredZones
from resolver.iterate.hints import RootHints, parse_root_hints
from resolver.iterate.limits import Limits
from resolver.iterate.pipeline import Transaction, transaction
from resolver.iterate.request import Request
from resolver.iterate.servers import ServerSelection
from resolver.iterate.stale import StalePolicy
from resolver.iterate.zonecut import AddressPolicy
from resolver.net.contract import ExchangeFailed, Failure, Query, Reply
from resolver.wire import ResourceRecord, RRType, parse_message
from resolver.wire.names import name_key
from resolver.wire.rdata import NS, A


class FakeClock:
    """Seconds that move only when told to."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def rrset(text: str) -> dns.rrset.RRset:
    """``"owner ttl TYPE rdata..."`` as a one-record dnspython RRset."""
    owner, ttl, rrtype, rdata = text.split(None, 3)
    return dns.rrset.from_text(owner, int(ttl), "IN", rrtype, rdata)


def reply(
    qname: str,
    qtype: str,
    *,
    rcode: int = dns.rcode.NOERROR,
    aa: bool = False,
    ra: bool = False,
    answer: Iterable[str] = (),
    authority: Iterable[str] = (),
    additional: Iterable[str] = (),
) -> dns.message.Message:
    """A reply from an authoritative server, sections given as record text lines."""
    query = dns.message.make_query(qname, qtype)
    query.flags &= ~dns.flags.RD
    message = dns.message.make_response(query)
    message.flags &= ~dns.flags.RA
    if aa:
        message.flags |= dns.flags.AA
    if ra:
        message.flags |= dns.flags.RA
    message.set_rcode(rcode)
    for section, lines in (
        (message.answer, answer),
        (message.authority, authority),
        (message.additional, additional),
    ):
        for line in lines:
            section.append(rrset(line))
    return message


# ---------------------------------------------------------------------- the engine's world


Handler = Callable[[str, int], dns.message.Message]


class FakeNetwork:
    """Answers exchanges from canned messages; dead addresses time out at once."""

    def __init__(self, clock: FakeClock | None = None, rtt: float = 0.01) -> None:
        self.replies: dict[tuple[str, str, int], dns.message.Message] = {}
        self.servers: dict[str, Handler] = {}  # address -> answers any question
        self.dead: set[str] = set()  # time out
        self.failing: dict[str, Failure] = {}  # fail at once with this reason
        self.slow: dict[str, float] = {}  # answer after this many real seconds
        self.log: list[tuple[str, str, int]] = []
        self.how: list[dict[str, Any]] = []  # port, RD and DO of each exchange in the log
        self.clock = clock
        self.rtt = rtt

    def add(self, address: str, qname: str, qtype: str, message: dns.message.Message) -> None:
        self.replies[(address, name_key(qname), RRType.from_text(qtype))] = message

    def answers(self, address: str, qname: str, qtype: str, *records: str) -> None:
        """An authoritative answer with these records."""
        self.add(address, qname, qtype, reply(qname, qtype, aa=True, answer=records))

    def count(self, address: str) -> int:
        return sum(1 for a, _, _ in self.log if a == address)

    async def exchange(self, query: Query) -> Reply:
        address, qname, qtype = query.address, query.qname, query.qtype
        self.log.append((address, qname, qtype))
        self.how.append({"port": query.port, "rd": query.recursion_desired, "do": query.dnssec_ok})
        if self.clock is not None:
            self.clock.advance(self.rtt)
        if address in self.slow:
            await asyncio.sleep(self.slow[address])
        if address in self.dead:
            raise ExchangeFailed(Failure.TIMEOUT, address)
        if address in self.failing:
            raise ExchangeFailed(self.failing[address], address)
        message = self.replies.get((address, name_key(qname), qtype))
        if message is None and address in self.servers:
            message = self.servers[address](qname, qtype)
        if message is None:
            raise AssertionError(f"unexpected query {qname} {RRType.text(qtype)} to {address}")
        return Reply(parse_message(message.to_wire()), self.rtt, False)


class Recorder:
    """An observer that keeps every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []  # in the flat form of logs
        self.typed: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append((event.name, event.fields()))
        self.typed.append(event)

    def named(self, event: str) -> list[dict[str, Any]]:
        return [fields for name, fields in self.events if name == event]


def referral(
    qname: str, qtype: str, zone: str, servers: Iterable[tuple[str, str | None]]
) -> dns.message.Message:
    """A delegation to ``zone``: (NS name, glue address or None) per server."""
    servers = list(servers)
    return reply(
        qname,
        qtype,
        authority=[f"{zone} 3600 NS {ns}" for ns, _ in servers],
        additional=[f"{ns} 3600 A {address}" for ns, address in servers if address],
    )


def priming_reply(root_hints: RootHints, ttl: int = 518400) -> dns.message.Message:
    """The root's answer to ``. NS``: its servers, with their addresses in additional."""
    return reply(
        ".",
        "NS",
        aa=True,
        answer=[f". {ttl} NS {server.name}" for server in root_hints.servers],
        additional=[
            f"{server.name} {ttl} A {address}"
            for server in root_hints.servers
            for address in server.ipv4
        ],
    )


def soa(zone: str, ttl: int = 300, minimum: int = 60) -> str:
    return f"{zone} {ttl} SOA ns1.{zone} hostmaster.{zone} 1 1800 900 604800 {minimum}"


HINTS_TEXT = """\
.                   3600000  NS  a.root-servers.net.
a.root-servers.net. 3600000  A   127.1.0.1
.                   3600000  NS  b.root-servers.net.
b.root-servers.net. 3600000  A   127.1.0.2
"""
ROOT_A, ROOT_B = "127.1.0.1", "127.1.0.2"
COM = "127.2.1.1"
NET = "127.2.2.1"
EXAMPLE = "127.3.1.1"
EXAMPLE2 = "127.3.1.2"


def hints() -> RootHints:
    return parse_root_hints(HINTS_TEXT)


def make_engine(
    net: FakeNetwork,
    clock: FakeClock | None = None,
    limits: Limits | None = None,
    root_hints: RootHints | None = None,
    *,
    primed: bool = True,
    qname_minimisation: bool = False,
    addresses: AddressPolicy | None = None,
    zones: ConfiguredZones | None = None,
    stale: StalePolicy | None = None,
    timer: Callable[[], float] = time.monotonic,
) -> tuple[IterativeEngine, RecordCache, Recorder]:
    """An engine on the fake network.  By default as if the root were primed already and
    without QNAME minimisation, so a test sees only the exchanges it is about; the
    priming and minimisation tests turn those on."""
    clock = clock or net.clock or FakeClock()
    cache = RecordCache(clock=clock)
    recorder = Recorder()
    root_hints = root_hints or hints()
    if primed:
        prime(cache, root_hints)
    engine = IterativeEngine(
        net,
        cache,
        root_hints,
        selection=ServerSelection(clock=clock),
        limits=limits,
        observer=recorder,
        clock=clock,
        qname_minimisation=qname_minimisation,
        addresses=addresses,
        zones=zones,
        stale=stale,
        timer=timer,
    )
    return engine, cache, recorder


def prime(cache: RecordCache, root_hints: RootHints, ttl: int = 518400) -> None:
    """What a priming reply leaves in the cache: the root NS set and its servers' addresses."""
    cache.store_rrset(
        [ResourceRecord(".", RRType.NS, 1, ttl, NS(s.name)) for s in root_hints.servers],
        Trust.AUTHORITATIVE,
    )
    for server in root_hints.servers:
        if server.ipv4:
            records = [ResourceRecord(server.name, RRType.A, 1, ttl, A(a)) for a in server.ipv4]
            cache.store_rrset(records, Trust.GLUE)


def why(result: Answer) -> str:
    """The failure text of a SERVFAIL answer."""
    assert result.failure is not None
    return result.failure.text


def resolve(engine: IterativeEngine, qname: str, qtype: str) -> Answer:
    return asyncio.run(engine.resolve(qname, RRType.from_text(qtype)))


def texts(records: list[ResourceRecord]) -> list[str]:
    return [rr.to_text() for rr in records]


class NoNetwork:
    """A network nothing may be asked of (a scripted engine never walks)."""

    async def exchange(self, query: Query) -> Reply:
        raise AssertionError(f"unexpected exchange {query}")


class Scripted(IterativeEngine):
    """A real engine (its pipeline, its shared walks and in-flight bound) whose walk
    answers from a script instead of asking servers: a subclass says what a walk of
    (name, type) gives (:meth:`scripted`) and what the cache holds for RD=0
    (:meth:`cached`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NoNetwork(), RecordCache(), hints(), **kwargs)

    async def scripted(self, name: str, rrtype: int, checking_disabled: bool) -> Answer:
        raise NotImplementedError

    def cached(self, name: str, rrtype: int) -> Answer | None:
        return None

    async def _walk(self, tx: Transaction) -> Answer:
        request = tx.request
        return await self.scripted(tx.name, request.qtype, request.checking_disabled)

    def from_cache(self, qname: str, qtype: int, stale: bool = False) -> Answer | None:
        return None if stale else self.cached(qname, qtype)


def from_cache_only(engine: IterativeEngine, qname: str, qtype: int) -> Answer | None:
    """What the engine's pipeline answers to RD=0 (the cache's answer, or None)."""
    request = Request(qname, qtype, recursion_desired=False)
    return asyncio.run(engine.answer(transaction(request))).answer
