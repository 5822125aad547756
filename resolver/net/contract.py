"""What the engine asks of the network, and what it gets back.

The iteration engine does no I/O: it hands an :class:`Exchange` (one question to
one server address) to anything that implements :class:`Network`, and gets a
checked :class:`Reply` or an :class:`ExchangeFailed` whose :class:`Failure` says
why, as a value the engine can branch on (a timeout earns one more try; a
malformed reply does not).  The transport (:mod:`resolver.net.transport`)
implements it over UDP and TCP; tests implement it with canned replies.
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


class Reply(dataobject, fast_new=True):
    """A reply that passed every check (RFC 5452 section 3), with how it was obtained."""

    message: Message
    rtt: float  # seconds, for the exchange that produced this message
    tcp: bool


class Network(Protocol):
    """Anything that can put one question to one server."""

    async def exchange(
        self,
        address: str,
        qname: str,
        qtype: int,
        timeout: float,
        *,
        port: int | None = None,
        recursion_desired: bool = False,
        dnssec_ok: bool = False,
    ) -> Reply:
        """Ask ``address`` (on ``port``, or the network's default) for (qname, qtype, IN),
        with RD set for a forwarder; raises :class:`ExchangeFailed`."""
        ...
