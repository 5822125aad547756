"""One question as it is asked: a :class:`Request`, built once per query, read by every step.

A listener builds it from the query it parsed (name, type, class, the DO, CD and RD
bits, who asked and over what); the resolver builds one for the questions it asks
itself (a prefetch's refresh, a policy redirect's target, the keys a shared value
needs, a trace): those say :attr:`Transport.INTERNAL`.  What the question may cost is
not here but in its budget (:class:`~resolver.iterate.limits.ResolutionBudget`).
"""

from __future__ import annotations

from enum import Enum

from recordclass import dataobject

from resolver.wire import CLASS_IN


class Transport(Enum):
    """How a question reached us (its value is what logs and counters say)."""

    UDP = "udp"  # answers fit the client's UDP size or are truncated (TC=1)
    TCP = "tcp"  # RFC 7766
    TLS = "tls"  # DNS over TLS, RFC 7858 (resolver.serve.dot)
    HTTPS = "https"  # DNS over HTTPS, RFC 8484 (resolver.serve.doh)
    INTERNAL = "internal"  # asked by the resolver itself: no client, no answer to send

    # Members are singletons compared by identity, so identity's hash (in C) serves; Enum's
    # own hashes the name in Python, and every answer counts itself under a key holding
    # its transport (ServiceStats.answered, on the fast path).
    __hash__ = object.__hash__

    @property
    def datagram(self) -> bool:
        """Answers are bounded by the client's UDP size (the others take 65535 octets)."""
        return self is Transport.UDP


class Request(dataobject, fast_new=True):
    """A question and how it was asked."""

    name: str
    qtype: int
    qclass: int = CLASS_IN
    dnssec_ok: bool = False  # DO=1: RRSIGs and proofs in the answer (RFC 4035 3.2.1)
    checking_disabled: bool = False  # CD=1: the client validates itself (RFC 4035 3.2.2)
    recursion_desired: bool = True  # RD=0: the cache's answer, or none (RFC 1034 4.3.1)
    client: str = ""  # the client's address ("" for the resolver's own questions)
    transport: Transport = Transport.INTERNAL
    # A prefetch: the question's own data is fetched again, not recalled from the cache
    # (sub-lookups still use it), as Unbound's prefetch does.
    refresh: bool = False

    @property
    def internal(self) -> bool:
        return self.transport is Transport.INTERNAL
