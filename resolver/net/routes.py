"""Which address families this host can reach upstream servers over.

A connected UDP socket sends nothing: connect() only asks the kernel for a
route, so probing is free and silent.  The resolver uses IPv6 upstream wherever
the host has a route for it (a dual-stack machine works with no flag; an IPv6-only
name server is then reachable, Deckard's iter_pc_aaaa), and leaves it off where
it has none, instead of failing on every IPv6 address.
"""

from __future__ import annotations

import contextlib
import socket

# Documentation prefixes (RFC 3849, RFC 5737): routed like any global address by a
# default route, never the destination of a packet (a UDP connect sends none).
IPV6_PROBE = "2001:db8::1"
IPV4_PROBE = "192.0.2.1"


def has_route(address: str) -> bool:
    """True when the kernel has a route to ``address`` (nothing is sent)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((address, 53))
        return True
    return False


def reachable_families(probes: list[str] | None = None) -> tuple[bool, bool]:
    """(IPv4, IPv6): whether any of ``probes`` (say, the root hints' addresses) or the
    documentation probe of each family has a route."""
    probes = list(probes or [])
    ipv4 = any(has_route(a) for a in [*(p for p in probes if ":" not in p), IPV4_PROBE])
    ipv6 = any(has_route(a) for a in [*(p for p in probes if ":" in p), IPV6_PROBE])
    return ipv4, ipv6


def upstream_families(
    probes: list[str], ipv4_only: bool = False, ipv6_only: bool = False
) -> tuple[bool, bool]:
    """(IPv4, IPv6) to use upstream: both wherever the host has a route for them, unless
    forced (``--ipv4-only`` / ``--ipv6-only``); IPv4 when neither has a route, so that
    the exchanges say what is wrong, one by one."""
    if ipv4_only or ipv6_only:
        return not ipv6_only, not ipv4_only
    ipv4, ipv6 = reachable_families(probes)
    return (ipv4 or not ipv6), ipv6
