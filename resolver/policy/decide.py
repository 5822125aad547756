"""Which rule, of which zone, applies to a query or to its answer: the RPZ precedence.

A :class:`Policy` is the policy zones in the operator's order, each in a
:class:`PolicySlot` (its options, and its data, which a reload or a transfer
replaces without the order changing).  The precedence is the specification's
(RPZ section 5.4, as BIND documents it):

1. the first zone (in order) with a matching rule wins;
2. within a zone: client IP, then QNAME, then response IP, then NSDNAME, then NSIP;
3. among QNAME matches: the exact name, else the closest wildcard;
4. among NSDNAME matches: the smallest name in DNSSEC order (RFC 4034 section 6.1);
5. among IP matches (response or name server): the longest prefix, then the
   smallest address.

Two moments: :meth:`Policy.before` (the client's address and the query name,
before any resolution) and :meth:`Policy.after` (the answer: the names of its
CNAME chain for QNAME rules, its addresses, the name servers of its zones).
A match found before the resolution would be beaten by an earlier zone's rule
on the answer, so when some zone earlier than the matching one has rules on
answers, the resolution goes ahead and the match waits (:meth:`Policy.waits`)
until :meth:`Policy.after` has looked at those zones.  That is BIND with
``qname-wait-recurse no``: a match in the first zones is applied at once,
without asking anyone.

A zone whose override is DISABLED matches, and its matches are returned for the
log, but never applied: the zones after it are tried.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from recordclass import dataobject

from resolver.policy.index import NameIndex, PrefixIndex, parse_address, prefix_text, wire_text
from resolver.policy.rules import Override, Rule, Trigger, cname_rule, overridden
from resolver.policy.zone import PolicyZone
from resolver.wire.ede import EdeCode
from resolver.wire.names import text_to_labels

Servers = list[tuple[str, bytes, list[str]]]  # (name, its key, its addresses)


@dataclass(frozen=True)
class ZoneOptions:
    """What the operator said of one zone."""

    override: Override = Override.GIVEN
    cname: str | None = None  # the target of Override.CNAME
    ede: EdeCode | None = EdeCode.BLOCKED  # the INFO-CODE of its answers (None: none)
    log: bool = True  # one log line per applied rule (rpz-log)


class PolicySlot:
    """One zone's place in the order: its name, options and current data."""

    __slots__ = ("cname_rule", "name", "options", "zone")

    def __init__(self, name: str, zone: PolicyZone, options: ZoneOptions | None = None) -> None:
        self.name = name
        self.zone = zone
        self.options = options or ZoneOptions()
        self.cname_rule: Rule | None = None
        self.configure(self.options)

    def configure(self, options: ZoneOptions) -> None:
        self.options = options
        self.cname_rule = cname_rule(options.cname) if options.cname else None

    @property
    def disabled(self) -> bool:
        return self.options.override is Override.DISABLED


class Match(dataobject, fast_new=True):
    """A rule that matched: where, on what, and the rule as the zone's override makes it."""

    slot: PolicySlot
    position: int  # the zone's place in the order
    trigger: Trigger
    rule: Rule
    name: str  # the name whose answer the rule gives: the query name or a CNAME target
    matched: str  # what matched, for the log: a name, "*.name", a prefix


def _name_match(index: NameIndex | None, wire: bytes) -> tuple[Rule, str] | None:
    if index is None:
        return None
    found = index.find(wire)
    if found is None:
        return None
    rule, key, wildcard = found
    text = wire_text(key)
    return rule, (("*." + text if text != "." else "*.") if wildcard else text)


def _qname(zone: PolicyZone, wire: bytes) -> tuple[Rule, str] | None:
    """A zone's QNAME rule for a name: its exceptions (a blocklist's allowlist) first."""
    return _name_match(zone.allow, wire) or _name_match(zone.qname, wire)


def _best_ip(index: PrefixIndex, addresses: Sequence[tuple[int, int]]) -> tuple[Rule, str] | None:
    """The longest prefix over all the addresses, then the smallest address (5.4)."""
    best: tuple[int, int, int, Rule, int] | None = None  # -length, version, address, ...
    for version, address in addresses:
        found = index.find(version, address)
        if found is None:
            continue
        rule, length, network = found
        candidate = (-length, version, address, rule, network)
        if best is None or candidate[:3] < best[:3]:
            best = candidate
    if best is None:
        return None
    return best[3], prefix_text(best[1], -best[0], best[4])


def _canonical(name: str) -> tuple[bytes, ...]:
    """DNSSEC order (RFC 4034 section 6.1): labels from the right, case folded."""
    return tuple(label.lower() for label in reversed(text_to_labels(name)))


class Policy:
    """The policy zones in order, and the two questions asked of them."""

    def __init__(self, slots: Sequence[PolicySlot] = ()) -> None:
        self.slots = list(slots)
        self.refresh()

    def __bool__(self) -> bool:
        return bool(self.slots)

    def refresh(self) -> None:
        """Note which zones have which triggers again (after any change of their data)."""
        zones = [slot.zone for slot in self.slots]
        self.client_ip = any(zone.has(Trigger.CLIENT_IP) for zone in zones)
        self.qname = any(zone.has(Trigger.QNAME) for zone in zones)
        answers = [i for i, zone in enumerate(zones) if zone.answer_triggers()]
        self.first_on_answers = answers[0] if answers else len(zones)
        self.on_answers = bool(answers)
        # The fast path's tables: every zone's exact names, and its wildcards' parents (its
        # allowlist's too), straight from the dictionaries (early() runs on every query).
        indexes = [i for z in zones for i in (z.allow, z.qname) if i is not None and i]
        self._exact = [index.exact for index in indexes if index.exact]
        self._below = [index.below for index in indexes if index.below]
        # Which lengths (in wire octets) the wildcards' parents have: a query's parent of
        # another length is not looked up at all (most are not: no slice, no hash).
        self._lengths = bytearray(256)
        for below in self._below:
            for key in below:
                self._lengths[len(key)] = 1

    def slot(self, name: str) -> PolicySlot | None:
        for slot in self.slots:
            if slot.name == name:
                return slot
        return None

    # ---------------------------------------------------------------- before resolution

    def early(self, wire: bytes, client: str) -> bool:
        """Whether any rule matches this client or name (the fast path's question: such
        queries are not answered from the wire cache)."""
        for exact in self._exact:
            if wire in exact:
                return True
        if self._below:
            lengths, size = self._lengths, len(wire)
            pos = 0
            length = wire[0]
            while length:  # each name above the query's, closest first
                pos += length + 1
                if lengths[size - pos]:
                    parent = wire[pos:]
                    for below in self._below:
                        if parent in below:
                            return True
                length = wire[pos]
        if self.client_ip:
            address = parse_address(client)
            if address is not None:
                for slot in self.slots:
                    if slot.zone.client_ip.find(*address) is not None:
                        return True
        return False

    def before(self, wire: bytes, name: str, client: str) -> tuple[Match | None, list[Match]]:
        """The client-IP or QNAME rule that applies (if any), and the disabled zones'
        matches on the way to it."""
        disabled: list[Match] = []
        address = parse_address(client) if self.client_ip else None
        for position, slot in enumerate(self.slots):
            zone = slot.zone
            found = None
            if address is not None:
                hit = zone.client_ip.find(*address)
                if hit is not None:
                    rule, length, network = hit
                    found = (Trigger.CLIENT_IP, rule, prefix_text(address[0], length, network))
            if found is None:
                by_name = _qname(zone, wire)
                if by_name is not None:
                    found = (Trigger.QNAME, by_name[0], by_name[1])
            if found is not None:
                match = self._match(slot, position, found[0], found[1], name, found[2])
                if not slot.disabled:
                    return match, disabled
                disabled.append(match)
        return None, disabled

    def waits(self, match: Match) -> bool:
        """Whether a match made before the resolution must wait for the answer: an earlier
        zone has rules on answers, which win over it if they match."""
        return match.position > self.first_on_answers

    # ---------------------------------------------------------------- on the answer

    def after(
        self,
        chain: Sequence[tuple[str, bytes]],
        addresses: Sequence[str],
        servers: Callable[[], Servers],
        limit: int | None = None,
    ) -> tuple[Match | None, list[Match]]:
        """The rule on an answer that applies, among the first ``limit`` zones (all by
        default): QNAME rules on the names its CNAMEs lead to (``chain``: text and key),
        response-IP rules on its addresses, NSDNAME and NSIP rules on the name servers
        of its zones (``servers``, asked only if a zone needs them)."""
        disabled: list[Match] = []
        parsed = [a for a in map(parse_address, addresses) if a is not None]
        known: Servers | None = None
        for position, slot in enumerate(self.slots[:limit]):
            zone = slot.zone
            found: tuple[Trigger, Rule, str, str] | None = None
            for target, wire in chain:
                by_name = _qname(zone, wire)
                if by_name is not None:
                    found = (Trigger.QNAME, by_name[0], target, by_name[1])
                    break
            if found is None and parsed and zone.response_ip:
                hit = _best_ip(zone.response_ip, parsed)
                if hit is not None:
                    found = (Trigger.RESPONSE_IP, hit[0], "", hit[1])
            if found is None and (zone.nsdname or zone.nsip):
                known = servers() if known is None else known
                found = self._servers(zone, known)
            if found is not None:
                trigger, rule, target, what = found
                match = self._match(slot, position, trigger, rule, target, what)
                if not slot.disabled:
                    return match, disabled
                disabled.append(match)
        return None, disabled

    @staticmethod
    def _servers(zone: PolicyZone, servers: Servers) -> tuple[Trigger, Rule, str, str] | None:
        if zone.nsdname:
            hits = [(name, hit) for name, key, _ in servers
                    if (hit := _name_match(zone.nsdname, key)) is not None]  # fmt: skip
            if hits:
                name, (rule, what) = min(hits, key=lambda item: _canonical(item[0]))
                return Trigger.NSDNAME, rule, "", f"{what} ({name})" if what != name else what
        if zone.nsip:
            parsed = [a for _, _, addresses in servers for a in map(parse_address, addresses)
                      if a is not None]  # fmt: skip
            hit = _best_ip(zone.nsip, parsed)
            if hit is not None:
                return Trigger.NSIP, hit[0], "", hit[1]
        return None

    @staticmethod
    def _match(
        slot: PolicySlot, position: int, trigger: Trigger, rule: Rule, name: str, what: str
    ) -> Match:
        rule = overridden(rule, slot.options.override, slot.cname_rule)
        return Match(slot, position, trigger, rule, name, what)
