"""How the service reaches upstream servers: which addresses it may use.

IPv4 and IPv6 wherever the host has a route for them (unless forced with
``--ipv4-only`` / ``--ipv6-only``), and loopback servers only in a lab, that is,
when the root hints themselves are on loopback (Unbound's do-not-query-localhost
otherwise: a delegation to 127.0.0.1 must not make the resolver query itself).
"""

from __future__ import annotations

from resolver.iterate.engine import hints_on_loopback
from resolver.iterate.hints import RootHints
from resolver.iterate.zonecut import AddressPolicy
from resolver.net.routes import upstream_families


def upstream_addresses(
    hints: RootHints, ipv4_only: bool = False, ipv6_only: bool = False
) -> AddressPolicy:
    ipv4, ipv6 = upstream_families(hints.addresses(), ipv4_only, ipv6_only)
    return AddressPolicy(ipv4=ipv4, ipv6=ipv6, loopback=hints_on_loopback(hints))
