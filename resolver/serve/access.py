"""Which client addresses may use the resolver (``allow``): loopback always, plus the CIDRs given.

A resolver open to everyone is an amplifier for anyone (RFC 5358), so by default
only the machine itself is served; ``allow`` adds networks.  The verdict per
address is remembered (bounded), since the same clients ask again and again.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

MAX_DECIDED = 65536  # addresses whose verdict is remembered; then the memo starts again


class AccessList:
    """Which client addresses may use the resolver: loopback always, plus the CIDRs given."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]
        self._decided: dict[str, bool] = {}

    def allows(self, host: str) -> bool:
        decided = self._decided.get(host)
        if decided is None:
            try:
                address = ipaddress.ip_address(host.split("%", 1)[0])
            except ValueError:
                return False  # no usable peer address (a TCP peer that is already gone)
            if address.version == 6 and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            decided = address.is_loopback or any(address in net for net in self.networks)
            if len(self._decided) > MAX_DECIDED:
                self._decided.clear()
            self._decided[host] = decided
        return decided
