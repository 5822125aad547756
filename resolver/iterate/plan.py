"""The words of the walk: a lookup's steps, why a sub-lookup is in the plan, what the
network is asked for, and what every lookup of an engine shares.

:mod:`resolver.iterate.lookup` is the state machine that uses them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum, auto

from recordclass import dataobject

from resolver.cache.records import RecordCache
from resolver.iterate.classify import Classified
from resolver.iterate.events import Observer
from resolver.iterate.judge import Judge, NoJudge
from resolver.iterate.limits import Limits
from resolver.iterate.remember import NEVER, remember, remember_secure
from resolver.iterate.servers import ServerSelection
from resolver.iterate.zonecut import CutFinder, ZoneCut
from resolver.iterate.zonelimit import ZoneRateLimit
from resolver.wire import ResourceRecord


class Step(Enum):
    CHECK_CACHE = auto()
    FIND_CUT = auto()
    ASK = auto()
    WAIT_REPLY = auto()
    JUDGE = auto()
    WAIT_LOOKUP = auto()
    DONE = auto()


# The moves a lookup may make, from one step to the next (as h11 checks its states): any
# other is a bug, and raises ImpossibleStep at once instead of walking on in a wrong state.
_MOVES = {
    # data from the cache: none (ask), a verdict to wait for, a referral or CNAME to act
    # on, an answer; priming starts at its servers
    Step.CHECK_CACHE: (Step.FIND_CUT, Step.JUDGE, Step.ASK, Step.CHECK_CACHE, Step.DONE),
    Step.FIND_CUT: (Step.ASK, Step.WAIT_LOOKUP),  # the cut's servers, or priming first
    # an exchange, a sub-lookup for an address, the next server or cut; a reply acted on
    # (take_reply moves back to ASK first): judged, a referral, a CNAME, an answer
    Step.ASK: (
        Step.WAIT_REPLY,
        Step.WAIT_LOOKUP,
        Step.ASK,
        Step.FIND_CUT,
        Step.JUDGE,
        Step.CHECK_CACHE,
        Step.DONE,
    ),
    Step.WAIT_REPLY: (Step.ASK,),
    # after priming the cache again; after an address the servers; after keys the verdict
    Step.WAIT_LOOKUP: (Step.CHECK_CACHE, Step.ASK, Step.JUDGE),
    # keys or DS needed; bogus: another server, a fresh fetch or the end; else acted on
    Step.JUDGE: (Step.WAIT_LOOKUP, Step.ASK, Step.FIND_CUT, Step.CHECK_CACHE, Step.DONE),
    Step.DONE: (),
}
MOVES = frozenset((before, after) for before, nexts in _MOVES.items() for after in nexts)


class Held:
    """What a lookup answers when it would ask a server while its question is held."""


HELD = Held()


class ImpossibleStep(Exception):
    """A lookup was moved in a way its step table does not allow (a bug)."""


class Purpose(Enum):
    """Why a lookup is in the plan."""

    QUESTION = "question"  # the client's question
    NS_ADDRESS = "glueless"  # the address of a name server that came without glue
    PRIMING = "priming"  # the root's NS set and addresses, from the root (RFC 8109)
    KEYS = "keys"  # a signer zone's DNSKEY RRset, for validation
    DS = "ds"  # a zone's DS RRset (or the proof it has none): is it signed?


class Waiting(dataobject, fast_new=True):
    """The sub-lookup a lookup waits for, and for what."""

    purpose: Purpose
    name: str = ""
    rrtype: int = 0


class Pending(dataobject, fast_new=True):
    """A reply (or recalled data) waiting to be judged, with what it answered."""

    step: Classified
    qname: str
    qtype: int
    zone: str
    fresh: bool  # from the network (to be cached), not from the cache
    address: str = ""  # the server that sent it, when fresh


class Environment:
    """What every lookup of an engine shares: the cache, the cuts, the servers, the rules."""

    def __init__(
        self,
        cache: RecordCache,
        finder: CutFinder,
        selection: ServerSelection,
        limits: Limits,
        observer: Observer,
        report_hops: bool,
        clock: Callable[[], float],
        qname_minimisation: bool,
        judge: Judge | None = None,
        priming: bool = True,
        zone_limit: ZoneRateLimit | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache = cache
        self.finder = finder
        self.selection = selection
        self.limits = limits
        self.observer = observer
        self.report_hops = report_hops
        self.clock = clock  # seconds of the Unix epoch: TTLs, expiry, server statistics
        self.timer = timer  # monotonic seconds: a question's deadline
        self.qname_minimisation = qname_minimisation
        self.judge: Judge = judge or NoJudge()  # DNSSEC validation (NoJudge: off)
        self.priming = priming  # learn the root's NS set from the root first (RFC 8109)
        self.zone_limit = zone_limit  # None: a zone's servers may be asked without bound

    def remember(self, step: Classified, qtype: int, cut: ZoneCut | None = None) -> None:
        """Cache what a usable reply taught; the cut finder drops the cuts it changes.
        ``cut``: the zone cut whose server sent it (None: recalled data, already bounded):
        the delegations it teaches live no longer than that cut's."""
        remember(self.cache, step, qtype, cut.expires if cut is not None else NEVER)
        self.finder.learned(step)

    def remember_secure(self, rrset: list[ResourceRecord], step: Classified) -> None:
        """Cache one RRset of a reply that validated on its own (the rest bogus)."""
        remember_secure(self.cache, rrset, step)
        self.finder.learned_records(rrset)


class Exchange(dataobject, fast_new=True):
    """One question to one server address: what a lookup asks the network for."""

    address: str
    server: str  # the NS name the address belongs to
    zone: str  # the zone cut the server was asked as
    qname: str
    qtype: int
    timeout: float
    depth: int  # of the lookup asking, for the trace's indentation
    minimised: bool  # a QNAME-minimised question, not the lookup's own
    port: int | None = None  # a configured server's port; None: the network's default
    forwarded: bool = False  # to a forwarder: RD=1, and its answer is final
    shared: bool = False  # answered by an identical exchange another question sent
    dnssec_ok: bool = False  # DO=1: the server should send RRSIGs and NSEC records
