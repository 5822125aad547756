"""One policy source compiled: an RPZ zone or a blocklist, its rules by trigger.

A :class:`PolicyZone` has one index per trigger (names for QNAME and NSDNAME,
prefixes for the three IP triggers) and, for a blocklist, the allowlist's names,
looked at before its own (an exception wins over a block whatever their
lengths, as ad blockers' ``@@`` rules do).  A trigger's place in the zone is a
:data:`Place`, hashable, so the changes of an incremental transfer can be worked
out per place before any is made (:mod:`resolver.policy.rpz`).
"""

from __future__ import annotations

from resolver.policy.index import NameIndex, PrefixIndex
from resolver.policy.rules import ANSWER_TRIGGERS, Rule, Trigger
from resolver.wire import ResourceRecord
from resolver.wire.rdata import SOA

# Where a trigger lives in a zone: (trigger, wildcard, name key) for QNAME and NSDNAME,
# (trigger, family, prefix length, network) for the IP triggers.
NamePlace = tuple[Trigger, bool, bytes]
PrefixPlace = tuple[Trigger, int, int, int]
Place = NamePlace | PrefixPlace


class PolicyZone:
    """The rules of one policy source by trigger, with its SOA when it is an RPZ zone."""

    __slots__ = (
        "_soa",
        "allow",
        "client_ip",
        "name",
        "negative_soa",
        "nsdname",
        "nsip",
        "qname",
        "response_ip",
        "skipped",
    )

    def __init__(self, name: str, soa: ResourceRecord | None = None) -> None:
        self.name = name  # an RPZ zone's apex, or a blocklist's name
        self._soa: ResourceRecord | None = None
        # The SOA as NXDOMAIN and NODATA answers carry it: its TTL the SOA's minimum at most
        # (RFC 2308 section 3), made once rather than per answer.
        self.negative_soa: tuple[ResourceRecord, ...] = ()
        self.soa = soa
        self.qname = NameIndex()
        self.nsdname = NameIndex()
        self.client_ip = PrefixIndex()
        self.response_ip = PrefixIndex()
        self.nsip = PrefixIndex()
        self.allow: NameIndex | None = None  # a blocklist's exceptions (PASSTHRU rules)
        self.skipped = 0  # blocklist lines left out (not names, modifiers we do not do)

    def __len__(self) -> int:
        """Triggers in the zone (allowlist entries included)."""
        names = len(self.qname) + len(self.nsdname) + (len(self.allow) if self.allow else 0)
        return names + len(self.client_ip) + len(self.response_ip) + len(self.nsip)

    @property
    def soa(self) -> ResourceRecord | None:
        return self._soa

    @soa.setter
    def soa(self, soa: ResourceRecord | None) -> None:
        self._soa = soa
        data = soa.rdata if soa is not None else None
        if soa is None or not isinstance(data, SOA):
            self.negative_soa = ()
            return
        ttl = min(soa.ttl, data.minimum)
        self.negative_soa = (ResourceRecord(soa.name, soa.rrtype, soa.rrclass, ttl, data),)

    @property
    def serial(self) -> int | None:
        soa = self.soa
        return soa.rdata.serial if soa is not None and isinstance(soa.rdata, SOA) else None

    def has(self, trigger: Trigger) -> bool:
        """Whether any rule of the zone has this trigger."""
        if trigger is Trigger.QNAME:
            return bool(self.qname) or bool(self.allow)
        return bool(self._index(trigger))

    def answer_triggers(self) -> bool:
        """Whether some rule needs the answer (response IP, NSDNAME, NSIP)."""
        return any(self.has(trigger) for trigger in ANSWER_TRIGGERS)

    def _index(self, trigger: Trigger) -> NameIndex | PrefixIndex:
        if trigger is Trigger.QNAME:
            return self.qname
        if trigger is Trigger.NSDNAME:
            return self.nsdname
        if trigger is Trigger.CLIENT_IP:
            return self.client_ip
        return self.response_ip if trigger is Trigger.RESPONSE_IP else self.nsip

    def get(self, place: Place) -> Rule | None:
        if len(place) == 3:
            trigger, wildcard, key = place
            index = self._index(trigger)
            assert isinstance(index, NameIndex)
            return index.table(wildcard).get(key)
        trigger, version, length, network = place
        prefixes = self._index(trigger)
        assert isinstance(prefixes, PrefixIndex)
        return prefixes.get(version, length, network)

    def put(self, place: Place, rule: Rule | None) -> None:
        """Set the rule at a place, or remove it (None)."""
        if len(place) == 3:
            trigger, wildcard, key = place
            index = self._index(trigger)
            assert isinstance(index, NameIndex)
            table = index.table(wildcard)
            if rule is None:
                table.pop(key, None)
            else:
                table[key] = rule
            return
        trigger, version, length, network = place
        prefixes = self._index(trigger)
        assert isinstance(prefixes, PrefixIndex)
        prefixes.put(version, length, network, rule)
