"""What an authoritative server's reply means for the question asked (RFC 1034 section 5.3.3).

A reply from a server of zone ``zone`` (the zone cut we asked at) is one of:

- ``ANSWER``: the RRset asked for, possibly after CNAMEs inside the reply;
- ``CNAME``: a CNAME chain that leaves the reply, to be followed from the best
  known cut for its target (RFC 1034 section 5.3.3 step 4c);
- ``REFERRAL``: NS records for a zone below ``zone`` that contains the name;
- ``NXDOMAIN`` / ``NODATA``: a negative answer, with the SOA from the authority
  section when there is one (RFC 2308 sections 2.1 and 2.2);
- ``LAME``: anything else: an error RCODE, a referral that does not get
  closer, or a non-answer from a server that should be authoritative.

Before that, the reply is scrubbed: a server is trusted only for names at or
below the zone it was asked as (RFC 2181 section 5.4.1 and the bailiwick rule,
Unbound's ``scrub_message``), and glue only for name server names inside it.
Out-of-bailiwick records are dropped here and never reach the cache.
"""

from __future__ import annotations

from enum import IntEnum

from recordclass import dataobject

from resolver.wire import Message, Rcode, ResourceRecord, RRType
from resolver.wire.names import is_subdomain, name_key
from resolver.wire.rdata import CNAME, NS, SOA

MAX_CHAIN_IN_REPLY = 16


class Kind(IntEnum):
    ANSWER = 1
    CNAME = 2
    REFERRAL = 3
    NXDOMAIN = 4
    NODATA = 5
    LAME = 6


class Referral(dataobject, fast_new=True):
    """A delegation: the child zone, its NS RRset and the glue we may trust."""

    zone: str
    ns_records: list[ResourceRecord]
    glue: list[ResourceRecord]

    @property
    def nameservers(self) -> list[str]:
        return [rr.rdata.target for rr in self.ns_records if isinstance(rr.rdata, NS)]


class Classified(dataobject, fast_new=True):
    kind: int
    records: list[ResourceRecord]  # the answer chain (CNAMEs first, then the data)
    name: str  # the name the chain ends at (the CNAME target, or the qname)
    soa: ResourceRecord | None = None
    referral: Referral | None = None
    authoritative: bool = False
    reason: str = ""


def _lame(reason: str, name: str) -> Classified:
    return Classified(Kind.LAME, [], name, None, None, False, reason)


def _follow_chain(
    answer: list[ResourceRecord], qname: str, qtype: int
) -> tuple[list[ResourceRecord], str, bool]:
    """Walk CNAMEs from qname inside the answer section; (records, last name, data found)."""
    by_owner: dict[tuple[str, int], list[ResourceRecord]] = {}
    for rr in answer:
        by_owner.setdefault((name_key(rr.name), rr.rrtype), []).append(rr)
    chain: list[ResourceRecord] = []
    name = qname
    seen = set()
    for _ in range(MAX_CHAIN_IN_REPLY):
        key = name_key(name)
        if qtype == RRType.ANY:
            data = [rr for rr in answer if name_key(rr.name) == key]
        else:
            data = by_owner.get((key, qtype), [])
        if data:
            return chain + data, name, True
        cnames = by_owner.get((key, RRType.CNAME))
        if not cnames or qtype == RRType.CNAME or key in seen:
            break
        seen.add(key)
        chain.append(cnames[0])  # RFC 2181 section 10.1: one CNAME per name
        target = cnames[0].rdata
        assert isinstance(target, CNAME)
        name = target.target
    return chain, name, False


def _negative_soa(message: Message, zone: str, name: str) -> ResourceRecord | None:
    for rr in message.authority:
        if (
            rr.rrtype == RRType.SOA
            and isinstance(rr.rdata, SOA)
            and is_subdomain(rr.name, zone)
            and is_subdomain(name, rr.name)
        ):
            return rr
    return None


def _referral(message: Message, zone: str, name: str) -> Referral | str | None:
    """The delegation in the authority section; a string says why it is unusable."""
    ns_records = [rr for rr in message.authority if rr.rrtype == RRType.NS]
    if not ns_records:
        return None
    child = ns_records[0].name
    ns_records = [rr for rr in ns_records if name_key(rr.name) == name_key(child)]
    if not is_subdomain(name, child) or not is_subdomain(child, zone):
        return f"referral to {child} which does not contain the name"
    if name_key(child) == name_key(zone):
        return f"referral to {child} which does not get closer"
    targets = {name_key(rr.rdata.target) for rr in ns_records if isinstance(rr.rdata, NS)}
    # RFC 2181 section 5.4.1: glue only for NS names inside the zone we asked.
    glue = [
        rr
        for rr in message.additional
        if rr.rrtype in (RRType.A, RRType.AAAA)
        and name_key(rr.name) in targets
        and is_subdomain(rr.name, zone)
    ]
    return Referral(child, ns_records, glue)


def classify(message: Message, qname: str, qtype: int, zone: str) -> Classified:
    """Classify a reply to (qname, qtype) from a server asked as authoritative for ``zone``."""
    rcode = message.rcode
    authoritative = bool(message.header.aa)
    if rcode not in (Rcode.NOERROR, Rcode.NXDOMAIN):
        return _lame(Rcode.text(rcode), qname)
    if not is_subdomain(qname, zone):
        # Not the server's to answer: what it says (even NXDOMAIN, or AA with nothing
        # left after scrubbing) would otherwise pass for a negative answer.
        return _lame(f"{qname} is outside {zone}", qname)
    answer = [rr for rr in message.answer if is_subdomain(rr.name, zone)]
    records, name, found = _follow_chain(answer, qname, qtype)
    if found:
        return Classified(Kind.ANSWER, records, name, None, None, authoritative)
    in_zone = is_subdomain(name, zone)
    soa = _negative_soa(message, zone, name) if in_zone else None
    if rcode == Rcode.NXDOMAIN:
        if records and not in_zone:
            # The server cannot speak for a target outside its zone: follow it ourselves.
            return Classified(Kind.CNAME, records, name, None, None, authoritative)
        return Classified(Kind.NXDOMAIN, records, name, soa, None, authoritative)
    if records and (not in_zone or soa is None):
        # A chain without the data or a negative proof for its end (even from an
        # authoritative server, say one whose chain loops): follow it ourselves
        # (RFC 1034 section 5.3.3 step 4c), so the engine sees a loop as one.
        return Classified(Kind.CNAME, records, name, None, None, authoritative)
    if soa is not None:
        return Classified(Kind.NODATA, records, name, soa, None, authoritative)
    referral = _referral(message, zone, name)
    if isinstance(referral, Referral):
        if records:
            return Classified(Kind.CNAME, records, name, None, None, authoritative)
        return Classified(Kind.REFERRAL, [], name, None, referral, False)
    if isinstance(referral, str):
        return _lame(referral, qname)
    if authoritative:
        # NOERROR, AA, no data and no SOA: a NODATA without the proof (cached by nobody).
        return Classified(Kind.NODATA, records, name, None, None, True)
    return _lame("no answer, referral or negative proof", qname)
