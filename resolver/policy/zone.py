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
        "allow",
        "client_ip",
        "name",
        "nsdname",
        "nsip",
        "qname",
        "response_ip",
        "skipped",
        "soa",
    )

    def __init__(self, name: str, soa: ResourceRecord | None = None) -> None:
        self.name = name  # an RPZ zone's apex, or a blocklist's name
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
