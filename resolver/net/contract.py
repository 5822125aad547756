"""What the engine asks of the network, and what it gets back.

The iteration engine does no I/O: it hands a :class:`Query` (one question to one
server address) to anything that implements :class:`Network`, and gets a checked
:class:`Reply` or an :class:`ExchangeFailed` whose :class:`Failure` says why, as a
value the engine can branch on (a timeout earns one more try; a malformed reply does
not).  The transport (:mod:`resolver.net.transport`) implements it over UDP and TCP,
:class:`resolver.net.tls_upstream.TlsForwarders` over TLS for forwarders; wrappers
count exchanges (the service's statistics) or log them (dnstap), and tests implement
it with canned replies: one signature for all of them, ``exchange(query)``.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol

from recordclass import dataobject

from resolver.wire import Message


class Failure(Enum):
    """Why an exchange produced no usable reply."""

    TIMEOUT = "timeout"  # no answer in time, over UDP or TCP: maybe a lost packet
    UNREACHABLE = "unreachable"  # ICMP port or network unreachable, connection refused
    MALFORMED = "malformed"  # a reply that cannot be parsed
    CONNECTION_CLOSED = "connection closed"  # TCP closed before the whole reply came
    LOCAL_ERROR = "local error"  # our side could not send (no socket, no route)


class ExchangeFailed(Exception):
    """No usable reply from ``address``; ``failure`` says why, ``detail`` adds words."""

    def __init__(self, failure: Failure, address: str, detail: str = "") -> None:
        super().__init__(f"{failure.value} from {address}" + (f" ({detail})" if detail else ""))
        self.failure = failure
        self.address = address
        self.detail = detail


class Query(dataobject, fast_new=True):
    """One question (class IN) to one server address, and how to ask it."""

    address: str
    qname: str
    qtype: int
    timeout: float  # seconds
    port: int | None = None  # None: the network's default (53, or the lab's)
    recursion_desired: bool = False  # RD=1: to a forwarder, which resolves the whole question
    dnssec_ok: bool = False  # DO=1: the server should send RRSIGs and NSEC records


class Reply(dataobject, fast_new=True):
    """A reply that passed every check (RFC 5452 section 3), with how it was obtained."""

    message: Message
    rtt: float  # seconds, for the exchange that produced this message
    tcp: bool
    # The query as sent and the reply as received, when the network has them (the
    # transport does): what a log of exchanges (dnstap) writes as it was on the wire.
    query_wire: bytes = b""
    wire: bytes = b""


class Network(Protocol):
    """Anything that can put one question to one server."""

    async def exchange(self, query: Query) -> Reply:
        """Ask ``query.address`` (on ``query.port``, or the network's default) for
        (qname, qtype, IN); raises :class:`ExchangeFailed`."""
        ...
