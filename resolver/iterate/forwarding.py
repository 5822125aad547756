"""Zones the operator points somewhere else: forward zones and stub zones.

- A **forward zone** sends every question at or below it to listed recursive
  resolvers (RD=1) instead of iterating (Unbound's ``forward-zone``, seed 003 is a
  forwarder).  Their answers are final: no referral is followed, an answer
  without AA is expected, a CNAME to a name outside the zone is followed the
  usual way.  The forwarders are tried in order of measured round-trip time,
  like any server; when all fail, the question fails, or, with ``fallback``,
  is resolved by iteration instead (Unbound's ``forward-first``).
- A **stub zone** iterates from listed authoritative servers for the zone (a
  private zone the public tree does not delegate; Unbound's ``stub-zone``).
  Deeper cuts learned from those servers are used as usual.

The deepest configured zone above a name wins; a forward zone for ``.``
forwards everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from recordclass import dataobject

from resolver.wire.names import ancestors, is_subdomain, name_key


class ZoneKind(Enum):
    FORWARD = "forward"
    STUB = "stub"


class Server(dataobject, readonly=True, fast_new=True):
    """A configured server: an IP address and, unless the default, a port."""

    address: str
    port: int | None = None

    @staticmethod
    def parse(text: str) -> Server:
        """``192.0.2.1``, ``192.0.2.1@5353`` or ``2001:db8::1@5353`` (Unbound's form)."""
        address, _, port = text.partition("@")
        return Server(address, int(port) if port else None)


class ConfiguredZone(dataobject, fast_new=True):
    zone: str
    kind: ZoneKind
    servers: list[Server]
    fallback: bool = False  # forward zones: iterate when every forwarder fails


class ConfiguredZones:
    """Forward and stub zones by name; ``closest`` finds the one that applies."""

    def __init__(self, zones: Iterable[ConfiguredZone] = ()) -> None:
        self._zones = {name_key(zone.zone): zone for zone in zones}

    def __bool__(self) -> bool:
        return bool(self._zones)

    def __iter__(self) -> Iterable[ConfiguredZone]:
        return iter(self._zones.values())

    def fences(self, zone: str, qname: str) -> tuple[str, ...]:
        """The configured zones strictly below ``zone`` that do not hold ``qname``: a
        server asked as ``zone`` is not believed about their names, nor is a forwarder of
        ``zone``; the configured servers alone speak for them (MaginotDNS).  A question
        inside one of them (forward-first resolving it by iteration) keeps that one."""
        if not self._zones:
            return ()
        key = name_key(zone)
        return tuple(
            configured.zone
            for folded, configured in self._zones.items()
            if folded != key and is_subdomain(configured.zone, zone)
            and not is_subdomain(qname, configured.zone)
        )  # fmt: skip

    def closest(self, name: str) -> ConfiguredZone | None:
        """The deepest configured zone at or above ``name``."""
        if not self._zones:
            return None
        for zone in ancestors(name):
            found = self._zones.get(name_key(zone))
            if found is not None:
                return found
        return None
