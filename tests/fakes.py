"""Test doubles shared by the unit tests: a clock that moves only when told, and
authoritative replies built with dnspython (an independent oracle) from record text."""

from __future__ import annotations

from collections.abc import Iterable

import dns.flags
import dns.message
import dns.rcode
import dns.rrset


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
    message.set_rcode(rcode)
    for section, lines in (
        (message.answer, answer),
        (message.authority, authority),
        (message.additional, additional),
    ):
        for line in lines:
            section.append(rrset(line))
    return message
