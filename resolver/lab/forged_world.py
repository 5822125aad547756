"""A hierarchy of :class:`~resolver.lab.forged_zones.SignedZone` on loopback servers.

A :class:`World` is what the hostile lab serves (:mod:`resolver.lab.forged_server`) and
what the in-process tests ask (:meth:`World.handler`): servers by address, each with the
zones it serves, the root hints pointing at the root's server, and the root's key as the
trust anchor.  :func:`zone_text` and :func:`delegation` write the master-file text the
zones are made from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from .forged_zones import NEGATIVE_TTL, TTL, Key, Reply, SignedZone, ds_text, response

# -- a hierarchy --------------------------------------------------------------------------


@dataclass
class Server:
    """One server: its address, its NS name, and the zones it serves (deepest first)."""

    address: str
    name: str
    zones: list[SignedZone] = field(default_factory=list)

    def respond(self, query: dns.message.Message) -> Reply:
        if not query.question:
            reply = response(query)
            reply.set_rcode(dns.rcode.FORMERR)
            return reply
        zone = self.zone_for(query.question[0].name, query.question[0].rdtype)
        if zone is not None:
            return zone.respond(query)
        reply = response(query)
        reply.flags &= ~dns.flags.AA
        reply.set_rcode(dns.rcode.REFUSED)
        return reply

    def zone_for(self, qname: dns.name.Name, qtype: int) -> SignedZone | None:
        """The deepest zone holding ``qname``; for DS, the parent side of a cut when this
        server serves the parent too (RFC 4035 section 3.1.4.1)."""
        holding = sorted((z for z in self.zones if qname.is_subdomain(z.name)),
                         key=lambda z: len(z.name), reverse=True)  # fmt: skip
        if qtype == dns.rdatatype.DS and len(holding) > 1 and holding[0].name == qname:
            return holding[1]
        return holding[0] if holding else None


@dataclass
class World:
    """Servers on loopback addresses, the root hints pointing at the first, and the
    root's trust anchor (its key as a DS line)."""

    servers: dict[str, Server]
    root_key: Key

    def respond(self, address: str, query: dns.message.Message) -> Reply:
        server = self.servers.get(address)
        if server is None:
            reply = response(query)
            reply.set_rcode(dns.rcode.REFUSED)
            return reply
        return server.respond(query)

    def hints_text(self) -> str:
        root = next(s for s in self.servers.values() if any(z.origin == "." for z in s.zones))
        return f". 3600000 NS {root.name}\n{root.name} 3600000 A {root.address}\n"

    def anchor_text(self) -> str:
        return ds_text(".", self.root_key) + "\n"

    def zone(self, origin: str) -> SignedZone:
        for server in self.servers.values():
            for zone in server.zones:
                if zone.origin == origin:
                    return zone
        raise KeyError(origin)

    def handler(self, address: str) -> Callable[[str, int], Reply]:
        """For an in-process fake network: (qname, qtype) -> the reply, asked with DO=1."""

        def answer(qname: str, qtype: int) -> Reply:
            rdtype = dns.rdatatype.RdataType.make(qtype)
            query = dns.message.make_query(qname, rdtype, want_dnssec=True, payload=1232)
            reply = self.respond(address, query)
            reply.request_payload = 65535  # as over TCP: no truncation in-process
            return reply

        return answer


def zone_text(origin: str, server: Server, body: str = "", extra_ns: Iterable[Server] = ()) -> str:
    """A zone's master-file text: SOA, NS (``server`` and ``extra_ns``), the servers'
    addresses when inside the zone, and ``body``."""
    rname = "hostmaster." + (origin if origin != "." else "")
    lines = [f"$ORIGIN {origin}", f"$TTL {TTL}",
             f"@ SOA {server.name} {rname} 1 1800 900 604800 {NEGATIVE_TTL}"]  # fmt: skip
    for ns in (server, *extra_ns):
        lines.append(f"@ NS {ns.name}")
        if dns.name.from_text(ns.name).is_subdomain(dns.name.from_text(origin)):
            lines.append(f"{ns.name} A {ns.address}")
    return "\n".join(lines) + "\n" + body


def delegation(child: str, servers: Server | Iterable[Server], ds: Iterable[str] = ()) -> str:
    """The parent's side of a cut: NS, glue, and DS lines (none: an insecure delegation)."""
    lines = []
    for server in [servers] if isinstance(servers, Server) else servers:
        lines.append(f"{child} NS {server.name}")
        if dns.name.from_text(server.name).is_subdomain(dns.name.from_text(child)):
            lines.append(f"{server.name} A {server.address}")
    return "\n".join([*lines, *ds]) + "\n"
