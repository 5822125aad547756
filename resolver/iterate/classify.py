"""What an authoritative server's reply means for the question asked (RFC 1034 section 5.3.3).

A reply from a server of zone ``zone`` (the zone cut we asked at) is one of:

- ``ANSWER``: the RRset asked for, possibly after CNAMEs inside the reply;
- ``CNAME``: a CNAME chain that leaves the reply, to be followed from the best
  known cut for its target (RFC 1034 section 5.3.3 step 4c);
- ``REFERRAL``: NS records for a zone below ``zone`` that contains the name;
- ``NXDOMAIN`` / ``NODATA``: a negative answer, with the SOA from the authority
  section when there is one (RFC 2308 sections 2.1 and 2.2).  Also NODATA: an
  authoritative empty answer whose authority holds only the zone's own NS
  (RFC 2308 section 2.2 type 3), and an answer holding only other types than the
  one asked for at the name (Deckard's iter_unexpectedrrtype: never lameness);
- ``LAME``: anything else: an error RCODE, a referral that does not get closer
  or leaves the zone, a non-answer, or data from a recursive server that is not
  authoritative for the zone (AA=0 with RA=1: Unbound's "recursion lame").

Before that, the reply is scrubbed: a server is trusted only for names at or
below the zone it was asked as (RFC 2181 section 5.4.1 and the bailiwick rule,
Unbound's ``scrub_message``), but for the forward and stub zones configured below
it (MaginotDNS), and glue only for name server names inside it; an NS RRset keeps
its first MAX_NS_PER_RRSET records (NRDelegation).  Out-of-bailiwick records are
dropped here and never reach the cache.  A forwarder is trusted for its forward
zone (:func:`classify_forwarded`).
"""

from __future__ import annotations

from enum import IntEnum

from recordclass import dataobject

from resolver.wire import Message, Rcode, ResourceRecord, RRType
from resolver.wire.dnssec_rdata import RRSIG
from resolver.wire.names import ROOT, BadName, is_subdomain, name_key, name_to_wire
from resolver.wire.rdata import CNAME, DNAME, NS, SOA

MAX_CHAIN_IN_REPLY = 16
ADDRESS_TYPES = (RRType.A, RRType.AAAA)
# NS records kept of one NS RRset (BIND's NS_PROCESSING_LIMIT, Unbound's iter-scrub-ns):
# a delegation to 1,500 name servers (NRDelegation, CVE-2022-2795) would otherwise cost a
# cache lookup per name and address type each time its zone cut is built; real zones
# have a dozen at most.
MAX_NS_PER_RRSET = 20


class Kind(IntEnum):
    ANSWER = 1
    CNAME = 2
    REFERRAL = 3
    NXDOMAIN = 4
    NODATA = 5
    LAME = 6
    YXDOMAIN = 7  # a DNAME substitution too long for a name (RFC 6672 section 2.2)


class Referral(dataobject, fast_new=True):
    """A delegation: the child zone, its NS RRset and the glue we may trust; from a
    signed parent also the child's DS RRset or the NSEC/NSEC3 proof that it has none,
    with their RRSIGs (RFC 4035 section 3.1.4), validated when the child's trust is
    needed."""

    zone: str
    ns_records: list[ResourceRecord]
    glue: list[ResourceRecord]
    ds: list[ResourceRecord] | None = None  # DS records and RRSIGs
    proof: list[ResourceRecord] | None = None  # NSEC/NSEC3 records and RRSIGs

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
    reason: str = ""  # why LAME, for logs
    # Addresses of the name servers of an NS answer, from its additional section
    # (a priming reply's root server addresses, RFC 8109 section 3).
    glue: list[ResourceRecord] | None = None
    # For a recursion-lame reply: what it would have meant from an authority, to use
    # when every server of the zone turns out to be like that (Unbound does the same).
    fallback: Classified | None = None
    # DNSSEC: the RRSIGs of the reply (answer and authority, in bailiwick), and the
    # NSEC/NSEC3 records of its authority section, for validation and for DO=1 clients.
    sigs: list[ResourceRecord] | None = None
    proof: list[ResourceRecord] | None = None
    security: int = 0  # what validation made of it (resolver.cache.records.Security)


def _lame(reason: str, name: str) -> Classified:
    return Classified(Kind.LAME, [], name, None, None, False, reason)


def _follow_chain(
    answer: list[ResourceRecord], qname: str, qtype: int
) -> tuple[list[ResourceRecord], str, bool]:
    """Walk CNAMEs and DNAMEs from qname inside the answer section; (records, last name,
    data found).  A DNAME above a name redirects it (RFC 6672 section 2.2), with the
    CNAME the server synthesised, or one we synthesise the same way."""
    by_owner: dict[tuple[str, int], list[ResourceRecord]] = {}
    for rr in answer:
        by_owner.setdefault((name_key(rr.name), rr.rrtype), []).append(rr)
    dnames = [rr for rr in answer if rr.rrtype == RRType.DNAME]
    chain: list[ResourceRecord] = []
    name = qname
    seen = set()
    for _ in range(MAX_CHAIN_IN_REPLY):
        key = name_key(name)
        # Whatever the type asked, a DNAME question too (RFC 6672 section 2: every name
        # below the owner is redirected; section 3.1: the DNAME goes into the answer).
        dname = _dname_above(dnames, name)
        if dname is not None and key not in seen:
            seen.add(key)
            target = synthesize(name, dname)
            if target is None:
                break  # too long a name: the server says YXDOMAIN (RFC 6672 section 2.2)
            if dname not in chain:
                chain.append(dname)
            # The CNAME the server synthesised, as it sent it: validation checks that it
            # matches the DNAME (a spoofed one is bogus, Deckard's val_dname_bogus).
            sent = by_owner.get((key, RRType.CNAME))
            cname = (
                sent[0]
                if sent
                else ResourceRecord(name, RRType.CNAME, dname.rrclass, dname.ttl, CNAME(target))
            )
            chain.append(cname)
            if qtype == RRType.CNAME:
                return chain, name, True
            assert isinstance(cname.rdata, CNAME)
            name = cname.rdata.target
            continue
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
        target_rdata = cnames[0].rdata
        assert isinstance(target_rdata, CNAME)
        name = target_rdata.target
    return chain, name, False


def _dname_above(dnames: list[ResourceRecord], name: str) -> ResourceRecord | None:
    """The DNAME record owned by a proper ancestor of ``name``, if the answer has one."""
    for rr in dnames:
        if name_key(rr.name) != name_key(name) and is_subdomain(name, rr.name):
            return rr
    return None


def synthesize(name: str, dname: ResourceRecord) -> str | None:
    """``name`` with the DNAME's owner replaced by its target (RFC 6672 section 2.2), or
    None when the result is longer than a name may be."""
    target = dname.rdata
    assert isinstance(target, DNAME)
    prefix = name[: len(name) - len(dname.name)] if dname.name != "." else name
    new = prefix if target.target == "." else prefix + target.target
    try:
        name_to_wire(new)
    except BadName:
        return None
    return new


def synthesised(rr: ResourceRecord, dnames: list[ResourceRecord]) -> bool:
    """A CNAME that one of these DNAMEs produces (RFC 6672 section 2.2): unsigned, never
    cached on its own (the DNAME is, and makes it again), judged by the DNAME."""
    if rr.rrtype != RRType.CNAME or not isinstance(rr.rdata, CNAME):
        return False
    target = name_key(rr.rdata.target)
    for dname in dnames:
        if name_key(rr.name) != name_key(dname.name) and is_subdomain(rr.name, dname.name):
            made = synthesize(rr.name, dname)
            if made is not None and name_key(made) == target:
                return True
    return False


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
    key = name_key(child)
    ds = [rr for rr in message.authority if name_key(rr.name) == key and (
          rr.rrtype == RRType.DS or _covers(rr, RRType.DS))]  # fmt: skip
    proof = _proof(message, zone)
    return Referral(child, ns_records, _glue(message, ns_records, zone), ds or None,
                    proof or None)  # fmt: skip


def _glue(message: Message, ns_records: list[ResourceRecord], zone: str) -> list[ResourceRecord]:
    """Addresses in the additional section for these NS targets, only inside ``zone``.

    RFC 2181 section 5.4.1: a server is believed about addresses only for names
    in its own zone; glue for a name elsewhere could hijack that name.
    """
    targets = {name_key(rr.rdata.target) for rr in ns_records if isinstance(rr.rdata, NS)}
    return [
        rr
        for rr in message.additional
        if rr.rrtype in ADDRESS_TYPES
        and name_key(rr.name) in targets
        and is_subdomain(rr.name, zone)
    ]


def _covers(rr: ResourceRecord, rrtype: int) -> bool:
    """An RRSIG record over RRsets of ``rrtype``."""
    return (
        rr.rrtype == RRType.RRSIG
        and isinstance(rr.rdata, RRSIG)
        and rr.rdata.type_covered == rrtype
    )


PROOF_TYPES = (RRType.NSEC, RRType.NSEC3)


def _proof(message: Message, zone: str) -> list[ResourceRecord]:
    """The NSEC/NSEC3 records of the authority section inside ``zone``, with their RRSIGs."""
    return [
        rr
        for rr in message.authority
        if is_subdomain(rr.name, zone)
        and (rr.rrtype in PROOF_TYPES or any(_covers(rr, t) for t in PROOF_TYPES))
    ]


def _signatures(message: Message, zone: str) -> list[ResourceRecord]:
    """Every RRSIG of the answer and authority sections inside ``zone``."""
    return [
        rr
        for section in (message.answer, message.authority)
        for rr in section
        if rr.rrtype == RRType.RRSIG and is_subdomain(rr.name, zone)
    ]


def _only_zone_ns(message: Message, zone: str) -> bool:
    """The authority section holds the zone's own NS RRset (and nothing proves more)."""
    owners = {name_key(rr.name) for rr in message.authority if rr.rrtype == RRType.NS}
    return owners == {name_key(zone)}


def classify(
    message: Message, qname: str, qtype: int, zone: str, fences: tuple[str, ...] = ()
) -> Classified:
    """Classify a reply to (qname, qtype) from a server asked as authoritative for ``zone``.

    ``fences`` are zones below ``zone`` that the operator sent elsewhere (forward and
    stub zones): their names are not the server's to speak for, though inside its zone;
    their records are scrubbed like out-of-bailiwick ones (MaginotDNS, USENIX Security
    2023: the bailiwick of each zone, not of the whole tree)."""
    if fences:
        message = _within(message, ROOT, fences)
    message = _few_ns(message)
    rcode = message.rcode
    if rcode == Rcode.YXDOMAIN and any(rr.rrtype == RRType.DNAME for rr in message.answer):
        records = [rr for rr in message.answer if is_subdomain(rr.name, zone)]
        return Classified(Kind.YXDOMAIN, records, qname, None, None, bool(message.header.aa))
    if rcode not in (Rcode.NOERROR, Rcode.NXDOMAIN):
        return _lame(Rcode.text(rcode), qname)
    if not is_subdomain(qname, zone):
        # Not the server's to answer: what it says (even NXDOMAIN, or AA with nothing
        # left after scrubbing) would otherwise pass for a negative answer.
        return _lame(f"{qname} is outside {zone}", qname)
    step = _meaning(message, qname, qtype, zone)
    if step.kind != Kind.LAME:
        step.sigs = _signatures(message, zone) or None
        step.proof = _proof(message, zone) or None
    header = message.header
    if step.kind != Kind.REFERRAL and step.kind != Kind.LAME and not header.aa and header.ra:
        # A recursive server answering for a zone it was delegated: its data comes from
        # some cache, not from the zone (Unbound's recursion lame, iter_utils.c).
        lame = _lame("recursion lame: AA=0, RA=1", qname)
        lame.fallback = step
        return lame
    return step


def _meaning(message: Message, qname: str, qtype: int, zone: str) -> Classified:
    authoritative = bool(message.header.aa)
    answer = [rr for rr in message.answer if is_subdomain(rr.name, zone)]
    records, name, found = _follow_chain(answer, qname, qtype)
    if found:
        glue = None
        if qtype == RRType.NS:
            glue = _glue(message, [rr for rr in records if rr.rrtype == RRType.NS], zone)
        return Classified(Kind.ANSWER, records, name, None, None, authoritative, "", glue)
    in_zone = is_subdomain(name, zone)
    soa = _negative_soa(message, zone, name) if in_zone else None
    if message.rcode == Rcode.NXDOMAIN:
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
    if any(name_key(rr.name) == name_key(name) for rr in answer):
        # Data at the name, of other types only: the type asked for is not there.
        return Classified(Kind.NODATA, records, name, None, None, authoritative)
    referral = _referral(message, zone, name)
    if isinstance(referral, Referral):
        if records:
            return Classified(Kind.CNAME, records, name, None, None, authoritative)
        return Classified(Kind.REFERRAL, [], name, None, referral, False)
    if authoritative and (referral is None or _only_zone_ns(message, zone)):
        # NOERROR, AA, no data and no SOA (perhaps the zone's own NS in authority):
        # a NODATA without the proof, which nobody caches (RFC 2308 section 5).
        return Classified(Kind.NODATA, records, name, None, None, True)
    if isinstance(referral, str):
        return _lame(referral, qname)
    return _lame("no answer, referral or negative proof", qname)


def classify_forwarded(
    message: Message, qname: str, qtype: int, zone: str = ROOT, fences: tuple[str, ...] = ()
) -> Classified:
    """Classify a forwarder's reply: a recursive resolver that answered the whole question.

    The forwarder speaks for the forward zone ``zone`` and every name below it (but for
    the ``fences``, zones below it sent elsewhere), as the operator chose; records for
    other names are scrubbed, so that a forwarder, or whoever spoofs it, cannot plant
    data for the zones the resolver iterates (MaginotDNS, USENIX Security 2023; BIND's
    CVE-2021-25220), and a chain that leaves the zone is followed the usual way.  There
    are no referrals, and AA=0 is expected.
    """
    rcode = message.rcode
    if rcode not in (Rcode.NOERROR, Rcode.NXDOMAIN):
        return _lame(Rcode.text(rcode), qname)
    message = _few_ns(_within(message, zone, fences))
    records, name, found = _follow_chain(message.answer, qname, qtype)
    in_zone = is_subdomain(name, zone) and not _fenced(name, fences)
    soa = _negative_soa(message, zone, name) if in_zone else None
    if found:
        step = Classified(Kind.ANSWER, records, name)
    elif records and not in_zone:
        step = Classified(Kind.CNAME, records, name)  # the target is not its to answer
    elif rcode == Rcode.NXDOMAIN:
        step = Classified(Kind.NXDOMAIN, records, name, soa)
    elif records and soa is None:
        step = Classified(Kind.CNAME, records, name)
    else:
        step = Classified(Kind.NODATA, records, name, soa)
    step.sigs = _signatures(message, zone) or None
    step.proof = _proof(message, zone) or None
    return step


def _few_ns(message: Message) -> Message:
    """``message`` with at most MAX_NS_PER_RRSET records in each NS RRset of its answer and
    authority sections (the first ones; the glue of the rest goes with them, since glue
    is only taken for the NS names kept)."""
    if len(message.answer) + len(message.authority) <= MAX_NS_PER_RRSET or (
        sum(rr.rrtype == RRType.NS for rr in message.authority) <= MAX_NS_PER_RRSET
        and sum(rr.rrtype == RRType.NS for rr in message.answer) <= MAX_NS_PER_RRSET
    ):
        return message

    def kept(section: list[ResourceRecord]) -> list[ResourceRecord]:
        seen: dict[str, int] = {}
        out = []
        for rr in section:
            if rr.rrtype == RRType.NS:
                key = name_key(rr.name)
                seen[key] = seen.get(key, 0) + 1
                if seen[key] > MAX_NS_PER_RRSET:
                    continue
            out.append(rr)
        return out

    return Message(message.header, message.question, kept(message.answer),
                   kept(message.authority), message.additional, message.edns)  # fmt: skip


def _fenced(name: str, fences: tuple[str, ...]) -> bool:
    return any(is_subdomain(name, fence) for fence in fences)


def _within(message: Message, zone: str, fences: tuple[str, ...]) -> Message:
    """``message`` without the records owned by names outside ``zone`` or inside one of
    the ``fences``; the message itself when nothing is to go."""
    if zone == ROOT and not fences:
        return message

    def kept(section: list[ResourceRecord]) -> list[ResourceRecord]:
        return [rr for rr in section
                if is_subdomain(rr.name, zone) and not _fenced(rr.name, fences)]  # fmt: skip

    answer = kept(message.answer)
    authority = kept(message.authority)
    additional = kept(message.additional)
    if len(answer) + len(authority) + len(additional) == (
        len(message.answer) + len(message.authority) + len(message.additional)
    ):
        return message
    return Message(message.header, message.question, answer, authority, additional,
                   message.edns)  # fmt: skip
