"""What one resolution gives the service: the answer to send, and why it failed if it did.

This is the engine's whole public result.  A failure is a value with a typed
kind (the listener turns it into an Extended DNS Error, RFC 8914) and words for
people (logs, the EDE's EXTRA-TEXT).
"""

from __future__ import annotations

from enum import Enum

from recordclass import dataobject

from resolver.wire import ResourceRecord
from resolver.wire.ede import EdeCode


class FailureKind(Enum):
    """Why a question ended in SERVFAIL."""

    NO_REACHABLE_AUTHORITY = "no reachable authority"  # every server failed, was lame or unusable
    NETWORK_ERROR = "network error"  # the servers could not be reached at all
    LIMIT = "limit"  # a per-question bound (queries, referrals, CNAMEs, loops, depth)
    TIME_BUDGET = "time budget"  # the question took longer than its time budget
    OVERLOADED = "overloaded"  # too many questions in flight: not even started
    DNSSEC_BOGUS = "dnssec bogus"  # validation failed (RFC 4035 section 5.5)


class Failure(dataobject, fast_new=True):
    kind: FailureKind
    text: str  # for a person: "no server of loop1.com. answered (limit: delegation loop)"
    info_code: EdeCode | None = None  # the RFC 8914 INFO-CODE when the kind does not say it


class Answer(dataobject, fast_new=True):
    """The outcome of one question: what a client gets back, and what it cost."""

    rcode: int
    answer: list[ResourceRecord]
    authority: list[ResourceRecord]  # the SOA of a negative answer, nothing else
    upstream_queries: int = 0
    failure: Failure | None = None  # set exactly when rcode is SERVFAIL
    from_cache: bool = False  # answered without any upstream work
    security: int = 0  # DNSSEC: resolver.cache.records.Security of the whole answer
    sigs: list[ResourceRecord] | None = None  # the answer's RRSIGs, for DO=1 clients
    proof: list[ResourceRecord] | None = None  # a negative answer's NSEC(3)s and RRSIGs
    stale: bool = False  # from expired data (RFC 8767): the servers could not refresh it


def servfail(kind: FailureKind, text: str, info_code: EdeCode | None = None) -> Answer:
    """A SERVFAIL answer that says why."""
    return Answer(2, [], [], 0, Failure(kind, text, info_code))  # 2: SERVFAIL (RFC 1035 4.1.1)
