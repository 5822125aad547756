"""What happens during a resolution, as typed events to one observer.

The engine reports each step as a value: an upstream exchange and what came back
(:class:`Hop`), a sub-lookup starting or ending (:class:`SubLookup`,
:class:`SubLookupDone`), a DNSSEC judgement (:class:`Judged`), a limit hit
(:class:`LimitHit`).  Whoever listens dispatches on the type: the default observer
writes structlog lines (:class:`LogObserver`), ``resolver-trace`` prints hops for a
person and draws them, tests record them.  Nothing in the engine prints.

Each event also has a ``name`` and :meth:`fields`, the flat form that log lines and
``resolver-trace --json`` carry (``{"event": "hop", "outcome": "referral", ...}``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import structlog

from resolver.cache.records import Security
from resolver.iterate.classify import Kind
from resolver.iterate.limits import Limit
from resolver.net.contract import Failure
from resolver.wire import Rcode, RRType
from resolver.wire.names import name_key

if TYPE_CHECKING:
    from resolver.iterate.classify import Classified
    from resolver.iterate.plan import Exchange, Purpose
    from resolver.net.contract import Reply


@dataclass(slots=True)
class Hop:
    """One exchange with a server, and what came back (a classified reply or a failure)."""

    name: ClassVar[str] = "hop"
    depth: int  # of the lookup that asked, in the plan
    zone: str  # the zone cut the server was asked as
    server: str
    address: str
    qname: str  # what was asked (with QNAME minimisation, often less than the name)
    qtype: int
    outcome: Kind | Failure
    rtt_ms: float | None = None  # None: no reply
    tcp: bool = False
    referral: str | None = None  # a referral's child zone, its NS names, those with glue
    ns: list[str] = field(default_factory=list)
    glue: list[str] = field(default_factory=list)
    records: list[str] = field(default_factory=list)  # what an answer held, as text
    target: str | None = None  # where a CNAME leads
    reason: str | None = None  # why a server is lame

    @property
    def replied(self) -> bool:
        return isinstance(self.outcome, Kind)

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "depth": self.depth, "zone": self.zone, "server": self.server,
            "address": self.address, "qname": self.qname, "qtype": RRType.text(self.qtype),
            "outcome": outcome_word(self.outcome), "rtt_ms": self.rtt_ms,
        }  # fmt: skip
        if not self.replied:
            return out
        out["tcp"] = self.tcp
        if self.referral is not None:
            out.update(referral=self.referral, ns=self.ns, glue=self.glue)
        elif self.outcome is Kind.LAME:
            out["reason"] = self.reason
        else:
            out["records"] = self.records
            if self.target is not None:
                out["target"] = self.target
        return out


@dataclass(slots=True)
class SubLookup:
    """A sub-lookup entered the plan (priming, a name server's address, a DS or DNSKEY)."""

    name: ClassVar[str] = "sublookup"
    depth: int
    qname: str
    qtype: int
    zone: str  # the zone it serves (the cut of a name server, the zone of keys)
    purpose: Purpose

    def fields(self) -> dict[str, Any]:
        return {"depth": self.depth, "qname": self.qname, "qtype": RRType.text(self.qtype),
                "zone": self.zone, "purpose": self.purpose.value}  # fmt: skip


@dataclass(slots=True)
class SubLookupDone:
    """A sub-lookup ended: its RCODE and the records of its type it found."""

    name: ClassVar[str] = "sublookup_done"
    depth: int
    qname: str
    qtype: int
    rcode: int
    addresses: list[str]  # the records of its type, as text (addresses, or keys and DS)
    purpose: Purpose

    def fields(self) -> dict[str, Any]:
        return {"depth": self.depth, "qname": self.qname, "qtype": RRType.text(self.qtype),
                "rcode": Rcode.text(self.rcode), "addresses": self.addresses,
                "purpose": self.purpose.value}  # fmt: skip


@dataclass(slots=True)
class Judged:
    """A DNSSEC judgement of a reply or of data recalled from the cache."""

    name: ClassVar[str] = "judged"
    depth: int
    owner: str  # the name judged
    qtype: int
    zone: str  # the zone the data came from
    security: Security
    reason: str

    def fields(self) -> dict[str, Any]:
        return {"depth": self.depth, "name": self.owner, "qtype": RRType.text(self.qtype),
                "zone": self.zone, "security": self.security.name.lower(),
                "reason": self.reason}  # fmt: skip


@dataclass(slots=True)
class LimitHit:
    """A bound was reached: the whole question ends, or (with ``zone``) one sub-lookup
    was refused or one zone's servers were not asked."""

    name: ClassVar[str] = "limit"
    qname: str
    qtype: int
    limit: Limit
    zone: str | None = None  # the zone cut a refused sub-lookup would have served
    depth: int | None = None

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"qname": self.qname, "qtype": RRType.text(self.qtype),
                               "limit": self.limit.value}  # fmt: skip
        if self.zone is not None:
            out["zone"] = self.zone
        if self.depth is not None:
            out["depth"] = self.depth
        return out


Event = Hop | SubLookup | SubLookupDone | Judged | LimitHit


def hop(exchange: Exchange, step: Classified | Failure, reply: Reply | None = None) -> Hop:
    """The event of one exchange: what was asked, and what came back (a classified reply,
    or a failure)."""
    event = Hop(exchange.depth, exchange.zone, exchange.server, exchange.address,
                exchange.qname, exchange.qtype, Failure.TIMEOUT)  # fmt: skip
    if isinstance(step, Failure):
        event.outcome = step
        return event
    event.outcome = Kind(step.kind)
    if reply is not None:
        event.rtt_ms, event.tcp = round(reply.rtt * 1000, 1), reply.tcp
    referral = step.referral
    if referral is not None:
        glued = {name_key(rr.name) for rr in referral.glue}
        event.referral, event.ns = referral.zone, referral.nameservers
        event.glue = [ns for ns in referral.nameservers if name_key(ns) in glued]
    elif step.kind == Kind.LAME:
        event.reason = step.reason
    else:
        event.records = [rr.to_text() for rr in step.records]
        if step.kind == Kind.CNAME:
            event.target = step.name
    return event


def outcome_word(outcome: Kind | Failure) -> str:
    """``referral``, ``answer``, ``lame``...; a failure's own words (``timeout``)."""
    return outcome.name.lower() if isinstance(outcome, Kind) else outcome.value


class Observer(Protocol):
    def __call__(self, event: Event) -> None: ...


def wants_every_hop(observer: Observer) -> bool:
    """False when an observer would drop routine hop events (a log above debug level).

    The engine then skips building them, which is most of an event's cost; lame
    servers and limits are reported all the same.
    """
    return bool(getattr(observer, "wants_every_hop", True))


class LogObserver:
    """Sends events to structlog: exchanges at debug, lame servers and limits at warning."""

    def __init__(self, logger: Any = None) -> None:
        self.log = logger if logger is not None else structlog.get_logger("resolver.iterate.engine")
        try:
            self.wants_every_hop = bool(self.log.is_enabled_for(logging.DEBUG))
        except AttributeError:  # a logger without level filtering logs everything
            self.wants_every_hop = True

    def __call__(self, event: Event) -> None:
        if isinstance(event, Hop) and event.outcome is Kind.LAME:
            self.log.warning("lame_server", **event.fields())
        elif isinstance(event, LimitHit):
            self.log.warning(event.name, **event.fields())
        else:
            self.log.debug(event.name, **event.fields())
