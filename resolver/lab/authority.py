"""Authoritative answering logic (RFC 1034 §4.3.2), network-free.

:class:`AuthoritativeData` holds the zones one server serves and turns a parsed query
into a response, the way an authoritative-only server such as NSD does: referrals with
glue below zone cuts, CNAMEs chased only inside the zone, wildcard synthesis, NODATA and
NXDOMAIN with the SOA (TTL capped at its MINIMUM, RFC 2308 §3) in the authority section.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.node
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone

from .topology import zone_file

MAX_CNAME_CHASE = 16
EDNS_PAYLOAD = 1232

_IN = dns.rdataclass.IN
_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)


@dataclass
class Zone:
    """One loaded zone plus the indexes the answering code needs."""

    origin: dns.name.Name
    zone: dns.zone.Zone
    names: set[dns.name.Name] = field(default_factory=set)
    """Every name that exists in the zone, including empty non-terminals."""
    cuts: set[dns.name.Name] = field(default_factory=set)
    """Non-apex names that own an NS rrset (delegation points)."""

    @classmethod
    def load(cls, zones_dir: Path, origin: str) -> Zone:
        path = zones_dir / zone_file(origin)
        zone = dns.zone.from_file(str(path), origin=origin, relativize=False)
        z = cls(dns.name.from_text(origin), zone)
        for name, node in zone.nodes.items():
            n = name
            while n != z.origin and n not in z.names:
                z.names.add(n)
                n = n.parent()
            if name != z.origin and node.get_rdataset(_IN, dns.rdatatype.NS) is not None:
                z.cuts.add(name)
        z.names.add(z.origin)
        return z

    def rdatasets(self, name: dns.name.Name) -> list[dns.rdataset.Rdataset]:
        node = self.zone.get_node(name)
        return list(node.rdatasets) if node is not None else []

    def get(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> dns.rrset.RRset | None:
        node = self.zone.get_node(name)
        rds = node.get_rdataset(_IN, rdtype) if node is not None else None
        return _rrset(name, rds) if rds is not None else None

    def negative_soa(self) -> dns.rrset.RRset:
        """The apex SOA with TTL min(SOA TTL, MINIMUM) for negative answers (RFC 2308 §3)."""
        rds = self.zone.find_rdataset(self.origin, dns.rdatatype.SOA)
        soa = _rrset(self.origin, rds)
        soa.ttl = min(rds.ttl, rds[0].minimum)
        return soa

    def find_cut(
        self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType
    ) -> dns.name.Name | None:
        """The highest delegation point at or above qname (DS at the cut itself excluded)."""
        for depth in range(len(self.origin.labels) + 1, len(qname.labels) + 1):
            name = dns.name.Name(qname.labels[-depth:])
            if name in self.cuts and not (name == qname and qtype == dns.rdatatype.DS):
                return name
        return None


def _rrset(name: dns.name.Name, rds: dns.rdataset.Rdataset) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(name, rds.ttl, list(rds))


@dataclass
class Reply:
    """The outcome of answering one question."""

    rcode: dns.rcode.Rcode = dns.rcode.NOERROR
    aa: bool = False
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)


class AuthoritativeData:
    """The zones one server serves, and the RFC 1034 lookup over them."""

    def __init__(self, zones: Iterable[Zone]) -> None:
        self.zones = sorted(zones, key=lambda z: len(z.origin.labels), reverse=True)

    def zone_for(self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType) -> Zone | None:
        """Deepest served zone containing qname; for DS at a zone apex, the parent side."""
        candidates = [z for z in self.zones if qname.is_subdomain(z.origin)]
        if qtype == dns.rdatatype.DS and candidates and candidates[0].origin == qname:
            return candidates[1] if len(candidates) > 1 else None
        return candidates[0] if candidates else None

    def lookup(self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType) -> Reply:
        zone = self.zone_for(qname, qtype)
        if zone is None:
            return Reply(rcode=dns.rcode.REFUSED)
        reply = Reply(aa=True)
        current = qname
        seen = {qname}
        for _ in range(MAX_CNAME_CHASE):
            cut = zone.find_cut(current, qtype)
            if cut is not None:
                if not reply.answer:
                    return self._referral(zone, cut)
                return reply  # a CNAME led below a cut of this zone: stop there
            found = self._node(zone, current)
            if found is None:
                reply.rcode = dns.rcode.NXDOMAIN
                reply.authority.append(zone.negative_soa())
                return reply
            by_type = {rds.rdtype: rds for rds in found}
            if qtype == dns.rdatatype.ANY and by_type:
                reply.answer.extend(_rrset(current, rds) for rds in found)
                break
            if qtype in by_type:
                reply.answer.append(_rrset(current, by_type[qtype]))
                break
            cname = by_type.get(dns.rdatatype.CNAME)
            if cname is not None and qtype != dns.rdatatype.CNAME:
                reply.answer.append(_rrset(current, cname))
                target = cname[0].target
                if target in seen or self.zone_for(target, qtype) is not zone:
                    break  # out of zone (or a loop): the resolver continues from here
                seen.add(target)
                current = target
                continue
            reply.authority.append(zone.negative_soa())  # NODATA
            break
        self._add_additional(zone, reply)
        return reply

    @staticmethod
    def _node(zone: Zone, name: dns.name.Name) -> list[dns.rdataset.Rdataset] | None:
        """Rdatasets at name (empty list: exists, e.g. an empty non-terminal), the
        wildcard's rdatasets when name does not exist but the closest encloser has a
        ``*`` child, or None (NXDOMAIN)."""
        if name in zone.names:
            return zone.rdatasets(name)
        encloser = name.parent()
        while encloser not in zone.names:
            encloser = encloser.parent()
        wildcard = dns.name.Name((b"*", *encloser.labels))
        if wildcard in zone.names:
            return zone.rdatasets(wildcard)
        return None

    @staticmethod
    def _referral(zone: Zone, cut: dns.name.Name) -> Reply:
        ns = zone.get(cut, dns.rdatatype.NS)
        assert ns is not None
        reply = Reply(aa=False, authority=[ns])
        for rdata in ns:
            _add_addresses(zone, rdata.target, reply.additional)
        return reply

    @staticmethod
    def _add_additional(zone: Zone, reply: Reply) -> None:
        for rrset in reply.answer:
            for rdata in rrset:
                if rrset.rdtype in (dns.rdatatype.NS, dns.rdatatype.SRV):
                    _add_addresses(zone, rdata.target, reply.additional)
                elif rrset.rdtype == dns.rdatatype.MX:
                    _add_addresses(zone, rdata.exchange, reply.additional)


def _add_addresses(zone: Zone, target: dns.name.Name, out: list[dns.rrset.RRset]) -> None:
    """Add A/AAAA of target if this zone holds them (glue or authoritative data)."""
    if not target.is_subdomain(zone.origin):
        return
    for rdtype in _ADDRESS_TYPES:
        rrset = zone.get(target, rdtype)
        if rrset is not None and rrset not in out:
            out.append(rrset)


def make_reply(data: AuthoritativeData, query: dns.message.Message) -> dns.message.Message:
    """The full response message for a parsed query (ID, RD, question copied; EDNS)."""
    response = dns.message.make_response(query, our_payload=EDNS_PAYLOAD)
    if query.edns > 0:
        response.set_rcode(dns.rcode.BADVERS)
        return response
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return response
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response
    question = query.question[0]
    if question.rdclass != _IN or question.rdtype in (
        dns.rdatatype.AXFR,
        dns.rdatatype.IXFR,
    ):
        response.set_rcode(dns.rcode.REFUSED)
        return response
    reply = data.lookup(question.name, question.rdtype)
    response.set_rcode(reply.rcode)
    if reply.aa:
        response.flags |= dns.flags.AA
    response.answer = reply.answer
    response.authority = reply.authority
    response.additional = reply.additional
    return response
