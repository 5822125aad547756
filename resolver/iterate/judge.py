"""What a lookup asks of DNSSEC validation: the :class:`Judge`, and the words of its answers.

A lookup does not know how validation is done; it knows a judge, given to the engine
by whoever builds it (dependency inversion: :class:`resolver.validate.Validator`
implements it above this floor, and nothing here imports it).  A lookup asks it:

- to :meth:`~Judge.judge` a classified reply, or data recalled from the cache: a
  :class:`Verdict` (secure, insecure or bogus with the reason and the RFC 8914
  INFO-CODE), or what it must know first: :class:`NeedKeys` (a signer zone's
  validated DNSKEY RRset) or :class:`NeedDS` (whether a zone is signed at all), which
  the lookup fetches as a sub-lookup before asking again;
- to :meth:`~Judge.learn` what such a sub-lookup found;
- to :meth:`~Judge.synthesise` an answer from validated NSEC/NSEC3 ranges (RFC 8198)
  before walking;

and the engine asks it for its last word on a finished answer (:meth:`~Judge.answered`:
RFC 8509's key sentinel) and to forget what it derived from flushed data
(:meth:`~Judge.flush`).  :class:`NoJudge` is the judge when validation is off: nothing
is judged, no DO bit is sent upstream.
"""

from __future__ import annotations

from typing import Protocol

from recordclass import dataobject

from resolver.cache.records import Security
from resolver.dnssec.budget import ValidationBudget
from resolver.iterate.answer import Answer
from resolver.iterate.classify import Classified
from resolver.wire import ResourceRecord
from resolver.wire.dnssec_rdata import RRSIG
from resolver.wire.ede import EdeCode
from resolver.wire.names import label_count


class Verdict(dataobject, fast_new=True):
    security: Security
    reason: str = ""
    info_code: EdeCode | None = None
    ttl: int | None = None  # how long the validated data may be kept (RFC 4035 5.3.3)
    # RRsets of a bogus answer that validated on their own: cached as secure all the same
    # (a good DNAME beside a spoofed CNAME, Deckard's val_dname_bogus).
    secure: list[list[ResourceRecord]] | None = None
    final: bool = False  # bogus for lack of budget: no other server is asked (KeyTrap)


class NeedKeys(dataobject, fast_new=True):
    zone: str


class NeedDS(dataobject, fast_new=True):
    zone: str


Judgement = Verdict | NeedKeys | NeedDS


class Judge(Protocol):
    """DNSSEC validation as a lookup sees it (see the module's description)."""

    @property
    def enabled(self) -> bool:
        """Validation is on: replies are judged, and servers are asked with DO=1."""
        ...

    def judge(
        self,
        step: Classified,
        qname: str,
        qtype: int,
        zone: str,
        work: ValidationBudget | None = None,
    ) -> Judgement:
        """What ``step`` (a reply to (qname, qtype) from a server of ``zone``, or data
        recalled from the cache) is worth; ``work`` bounds the cryptographic work (one
        budget per client question)."""
        ...

    def learn(self, zone: str, rrtype: int, answer: Answer | None) -> None:
        """What the sub-lookup for ``zone`` DNSKEY or DS found (None: it could not run)."""
        ...

    def synthesise(
        self, name: str, qtype: int, work: ValidationBudget | None = None
    ) -> Classified | None:
        """RFC 8198: an answer made from validated NSEC/NSEC3 ranges, if they cover it."""
        ...

    def answered(self, qname: str, qtype: int, answer: Answer) -> Answer:
        """The judge's last word on a finished answer (RFC 8509's key sentinel)."""
        ...

    def flush(self, zone: str | None = None) -> None:
        """Forget what was learnt at and below ``zone`` (None: everything)."""
        ...


class NoJudge:
    """The judge when validation is off: nothing to judge, nothing learnt."""

    enabled = False

    def judge(
        self,
        step: Classified,
        qname: str,
        qtype: int,
        zone: str,
        work: ValidationBudget | None = None,
    ) -> Judgement:
        return Verdict(Security.UNCHECKED)  # never asked: lookups judge only when enabled

    def learn(self, zone: str, rrtype: int, answer: Answer | None) -> None:
        return None

    def synthesise(
        self, name: str, qtype: int, work: ValidationBudget | None = None
    ) -> Classified | None:
        return None

    def answered(self, qname: str, qtype: int, answer: Answer) -> Answer:
        return answer

    def flush(self, zone: str | None = None) -> None:
        return None


def expanded(step: Classified) -> bool:
    """Whether an RRset of ``step`` was expanded from a wildcard: an RRSIG over it counts
    fewer labels than its owner has (RFC 4034 section 3.1.3)."""
    for sig in step.sigs or ():
        rdata = sig.rdata
        if isinstance(rdata, RRSIG) and rdata.labels < label_count(sig.name.removeprefix("*.")):
            return True
    return False
