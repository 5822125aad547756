"""RPZ zones read as rules: owner names as triggers, records as actions.

The encoding is the RPZ specification's (draft-vixie-dnsop-dns-rpz-00, section
5 for triggers, section 4 for actions), for a zone ``rpz.example.``:

=========================================  =============================================
owner                                      trigger
=========================================  =============================================
``bad.example.com.rpz.example.``           QNAME ``bad.example.com.``
``*.example.com.rpz.example.``             QNAME strictly below ``example.com.``
``32.1.2.0.192.rpz-ip.rpz.example.``       an answer address in 192.0.2.1/32 (rpz-ip)
``48.zz.db8.2001.rpz-ip.rpz.example.``     an answer address in 2001:db8::/48
``24.0.2.0.192.rpz-client-ip.rpz...``      a client in 192.0.2.0/24
``ns.evil.net.rpz-nsdname.rpz.example.``   a name server named ``ns.evil.net.``
``32.53.2.0.192.rpz-nsip.rpz.example.``    a name server at 192.0.2.53
=========================================  =============================================

A prefix is its length, then the address's parts lowest first: the four octets
of an IPv4 address in decimal, or the eight 16-bit words of an IPv6 address in
hexadecimal with ``zz`` for the run of zero words that ``::`` stands for (RFC
5952).  The length is 1 to 32 (IPv4) or 1 to 128 (IPv6), and the address has no
bit set beyond it.

The records at a trigger's owner say the action: ``CNAME .`` NXDOMAIN, ``CNAME
*.`` NODATA, ``CNAME rpz-passthru.``, ``CNAME rpz-drop.``, ``CNAME
rpz-tcp-only.``; any other records are local data (a CNAME to another name is a
redirect, followed by the resolver; ``CNAME *.garden.example.`` on a wildcard
owner puts the query name before ``garden.example.``).

A record this module cannot make sense of is an :class:`RpzError` naming its
owner and why: the caller keeps the policy it had (a zone half understood is not
loaded).  Left out without a word: the apex's own records (SOA, NS and any
other), and DNSSEC records (a signed policy zone's RRSIG, NSEC, NSEC3...).
"""

from __future__ import annotations

from collections.abc import Iterable

from resolver.policy.index import name_wire, wire_text
from resolver.policy.rules import (
    SPECIAL_RULES,
    SPECIAL_TARGETS,
    TARGET_OF,
    Action,
    Rule,
    Trigger,
)
from resolver.policy.zone import Place, PolicyZone
from resolver.wire import CLASS_IN, ResourceRecord, RRType
from resolver.wire.names import BadName, name_key, text_to_labels
from resolver.wire.rdata import CNAME, SOA

# The label just below the apex that marks a trigger other than QNAME.
MARKERS: dict[bytes, Trigger] = {
    b"rpz-ip": Trigger.RESPONSE_IP,
    b"rpz-client-ip": Trigger.CLIENT_IP,
    b"rpz-nsip": Trigger.NSIP,
    b"rpz-nsdname": Trigger.NSDNAME,
}
# Types a policy zone may hold but which are no rule: DNSSEC (RFC 4034, 5155; 59 CDS and
# 60 CDNSKEY, RFC 7344), as the specification says (section 7, signed policy zones).
IGNORED_TYPES = frozenset(
    {RRType.RRSIG, RRType.NSEC, RRType.NSEC3, RRType.NSEC3PARAM, RRType.DNSKEY, RRType.DS, 59, 60}
)
# Types that cannot be local data: a delegation, a zone's apex, a subtree redirection.
REFUSED_TYPES: dict[int, str] = {RRType.NS: "NS", RRType.SOA: "SOA", RRType.DNAME: "DNAME"}
MAX_RECORDS_PER_TRIGGER = 256  # local data records at one owner (an answer must fit)


class RpzError(ValueError):
    """A policy zone that cannot be used as it is: the message says where and why."""


# -------------------------------------------------------------------- owners -> triggers


def place_of(owner: str, apex_labels: int) -> Place | None:
    """Where the trigger an owner name encodes goes (None for the apex itself).

    ``apex_labels`` is the number of labels of the zone's apex; the owner is known
    to be at or below it.
    """
    try:
        labels = text_to_labels(owner)
    except BadName as error:
        raise RpzError(f"{owner}: {error}") from None
    relative = labels[: len(labels) - apex_labels]
    if not relative:
        return None
    trigger = MARKERS.get(relative[-1].lower())
    if trigger is None:
        if relative[-1][:4].lower() == b"rpz-":
            raise RpzError(f"{owner}: unknown RPZ trigger label {relative[-1].decode()!r}")
        return _name_place(Trigger.QNAME, relative)
    inner = relative[:-1]
    if not inner:
        raise RpzError(f"{owner}: nothing before {relative[-1].decode()!r}")
    if trigger is Trigger.NSDNAME:
        return _name_place(trigger, inner)
    try:
        version, length, network = parse_prefix([label.decode("ascii") for label in inner])
    except (ValueError, UnicodeDecodeError) as error:
        raise RpzError(f"{owner}: {error}") from None
    return trigger, version, length, network


def _name_place(trigger: Trigger, labels: list[bytes]) -> Place:
    wildcard = labels[0] == b"*"
    name = labels[1:] if wildcard else labels
    return trigger, wildcard, b"".join(bytes((len(x),)) + x.lower() for x in name) + b"\x00"


def parse_prefix(labels: list[str]) -> tuple[int, int, int]:
    """(family, length, network) of an RPZ prefix's labels, e.g. ``24.0.2.0.192``."""
    if not labels[0].isdigit() or len(labels[0]) > 3:
        raise ValueError(f"{labels[0]!r} is not a prefix length")
    length = int(labels[0])
    parts = labels[1:]
    if len(parts) == 4 and "zz" not in parts and all(p.isdigit() for p in parts):
        return 4, length, _ipv4(parts, length)
    return 6, length, _ipv6(parts, length)


def _ipv4(parts: list[str], length: int) -> int:
    if not 1 <= length <= 32:
        raise ValueError(f"IPv4 prefix length {length} is not 1 to 32")
    address = 0
    for part in reversed(parts):
        if len(part) > 3 or int(part) > 255:
            raise ValueError(f"{part!r} is not an IPv4 octet")
        address = address << 8 | int(part)
    return _checked_network(address, length, 32)


def _ipv6(parts: list[str], length: int) -> int:
    if not 1 <= length <= 128:
        raise ValueError(f"IPv6 prefix length {length} is not 1 to 128")
    words = [p.lower() for p in reversed(parts)]
    if words.count("zz") > 1:
        raise ValueError("more than one 'zz' in an IPv6 prefix")
    if "zz" in words:
        at = words.index("zz")
        missing = 8 - (len(words) - 1)
        if missing < 1:
            raise ValueError("'zz' stands for no word in an IPv6 prefix")
        words[at : at + 1] = ["0"] * missing
    if len(words) != 8:
        raise ValueError(f"an IPv6 prefix has 8 words (or 'zz'), not {len(words)}")
    address = 0
    for word in words:
        if not 1 <= len(word) <= 4 or word.strip("0123456789abcdef"):
            raise ValueError(f"{word!r} is not a 16-bit hexadecimal word")
        address = address << 16 | int(word, 16)
    return _checked_network(address, length, 128)


def _checked_network(address: int, length: int, bits: int) -> int:
    if address & ((1 << (bits - length)) - 1):
        raise ValueError(f"address bits set beyond the prefix length {length}")
    return address


def encode_prefix(version: int, length: int, network: int) -> str:
    """The labels of a prefix, lowest part first (the inverse of :func:`parse_prefix`)."""
    if version == 4:
        octets = [str(network >> shift & 0xFF) for shift in (0, 8, 16, 24)]
        return ".".join([str(length), *octets])
    words = [network >> (16 * i) & 0xFFFF for i in range(8)]  # lowest first
    # The longest run of zero words (two at least; the first of equal runs in the
    # address's own order, RFC 5952 section 4.2.3) becomes zz.
    best_start, best_length, start = -1, 1, None
    for i in range(7, -2, -1):  # from the highest word down, as the address is written
        if i >= 0 and words[i] == 0:
            start = i if start is None else start
            continue
        if start is not None and start - i > best_length:
            best_start, best_length = start, start - i
        start = None
    texts = [format(word, "x") for word in words]
    if best_start >= 0:
        low = best_start - best_length + 1
        texts[low : best_start + 1] = ["zz"]
    return ".".join([str(length), *texts])


# -------------------------------------------------------------------- records -> actions


def rule_of(records: list[ResourceRecord]) -> Rule:
    """The rule of one trigger's records (all with the same owner, DNSSEC types left out)."""
    owner = records[0].name
    cnames = [rr for rr in records if rr.rrtype == RRType.CNAME]
    if cnames and len(records) > 1:
        raise RpzError(f"{owner}: a CNAME and other records at one owner")
    for rr in records:
        if rr.rrclass != CLASS_IN:
            raise RpzError(f"{owner}: class {rr.rrclass} (policy records are class IN)")
        refused = REFUSED_TYPES.get(rr.rrtype)
        if refused is not None:
            raise RpzError(f"{owner}: {refused} records have no meaning below a policy zone's apex")
    if cnames:
        assert isinstance(cnames[0].rdata, CNAME)
        target = name_key(cnames[0].rdata.target)
        action = SPECIAL_TARGETS.get(target)
        if action is not None:
            return SPECIAL_RULES[action]
        if target.startswith("rpz-"):
            raise RpzError(f"{owner}: unknown RPZ action target {target}")
    if len(records) > MAX_RECORDS_PER_TRIGGER:
        raise RpzError(f"{owner}: more than {MAX_RECORDS_PER_TRIGGER} records of local data")
    return Rule(Action.LOCAL_DATA, tuple(records))


def records_of(rule: Rule | None, owner: str) -> list[ResourceRecord]:
    """The records a rule was made from (a special action's CNAME, TTL 0: only its
    data counts when an incremental transfer deletes it)."""
    if rule is None:
        return []
    if rule.action is Action.LOCAL_DATA:
        return list(rule.records)
    return [ResourceRecord(owner, RRType.CNAME, CLASS_IN, 0, CNAME(TARGET_OF[rule.action]))]


def _same(a: ResourceRecord, b: ResourceRecord) -> bool:
    """One record in an RRset's sense: type and data (RFC 2181 section 5: TTLs aside)."""
    return a.rrtype == b.rrtype and a.rdata == b.rdata


# -------------------------------------------------------------------- whole zones


class ZoneReader:
    """Builds a :class:`PolicyZone` record by record (a file, or an AXFR as it comes)."""

    def __init__(self, apex: str, max_records: int) -> None:
        self.apex = apex
        self.apex_key = name_key(apex)
        self.apex_labels = len(text_to_labels(apex))
        self.max_records = max_records
        self.zone = PolicyZone(apex)
        self.count = 0
        self.suffix = "." + self.apex_key if self.apex_key != "." else None

    def add(self, rr: ResourceRecord) -> None:
        self.count += 1
        if self.count > self.max_records:
            raise RpzError(f"more than {self.max_records} records (max-entries)")
        if rr.rrtype == RRType.CNAME and self._plain_special(rr):
            return
        if rr.rrtype in IGNORED_TYPES:
            return
        if not _below(rr.name, self.apex_key):
            raise RpzError(f"{rr.name} is outside the zone {self.apex}")
        place = place_of(rr.name, self.apex_labels)
        if place is None:
            if rr.rrtype == RRType.SOA and isinstance(rr.rdata, SOA):
                self.zone.soa = rr
            return
        zone = self.zone
        existing = zone.get(place)
        if existing is None and rr.rrtype == RRType.CNAME and isinstance(rr.rdata, CNAME):
            action = SPECIAL_TARGETS.get(name_key(rr.rdata.target))
            if action is not None:  # the common case, a million times: no list built
                zone.put(place, SPECIAL_RULES[action])
                return
        records = [r for r in records_of(existing, rr.name) if not _same(r, rr)]
        zone.put(place, rule_of([*records, rr]))

    def _plain_special(self, rr: ResourceRecord) -> bool:
        """The common record, a million times in a feed: a QNAME trigger written plainly
        with a special action (``bad.example.rpz. CNAME .``), put in place without the
        general path's label lists; False for anything else (the general path decides)."""
        data = rr.rdata
        action = SPECIAL_TARGETS.get(name_key(data.target)) if isinstance(data, CNAME) else None
        owner = name_key(rr.name)
        suffix = self.suffix
        if action is None or suffix is None or "\\" in owner or not owner.endswith(suffix):
            return False
        relative = owner[: -len(suffix)]
        wildcard = relative.startswith("*.")
        name = relative[2:] if wildcard else relative
        if not name or name.rpartition(".")[2].startswith("rpz-") or rr.rrclass != CLASS_IN:
            return False
        try:
            key = name_wire(name + ".")
        except BadName:
            return False
        table = self.zone.qname.table(wildcard)
        if key in table:
            return False  # a second record at the owner: the general path merges or refuses
        table[key] = SPECIAL_RULES[action]
        return True

    def finish(self) -> PolicyZone:
        if self.zone.soa is None:
            raise RpzError(f"no SOA record at the apex {self.apex}")
        return self.zone


def _below(name: str, apex_key: str) -> bool:
    key = name_key(name)
    return apex_key == "." or key == apex_key or key.endswith("." + apex_key)


def build_zone(apex: str, records: Iterable[ResourceRecord], max_records: int) -> PolicyZone:
    """A policy zone from all its records (a master file's, or a full transfer's)."""
    reader = ZoneReader(apex, max_records)
    for rr in records:
        reader.add(rr)
    return reader.finish()


def apply_changes(
    zone: PolicyZone,
    steps: Iterable[tuple[Iterable[ResourceRecord], Iterable[ResourceRecord]]],
    new_soa: ResourceRecord,
) -> list[Place]:
    """Apply an incremental transfer's differences (RFC 1995: for each version, records
    deleted then records added).  Every change is worked out before any is made, so that
    a bad one (a deleted record the zone does not hold, a bad trigger) raises RpzError
    with the zone untouched.  Returns the places changed."""
    apex_labels = len(text_to_labels(zone.name))
    apex_key = name_key(zone.name)
    staged: dict[Place, list[ResourceRecord]] = {}

    def records(rr: ResourceRecord) -> tuple[Place, list[ResourceRecord]] | None:
        if rr.rrtype in IGNORED_TYPES:
            return None
        if not _below(rr.name, apex_key):
            raise RpzError(f"{rr.name} is outside the zone {zone.name}")
        place = place_of(rr.name, apex_labels)
        if place is None:
            return None
        if place not in staged:
            staged[place] = records_of(zone.get(place), rr.name)
        return place, staged[place]

    for deleted, added in steps:
        for rr in deleted:
            found = records(rr)
            if found is not None:
                place, current = found
                kept = [r for r in current if not _same(r, rr)]
                if len(kept) == len(current):
                    raise RpzError(f"the transfer deletes {rr.to_text()}, which the zone lacks")
                staged[place] = kept
        for rr in added:
            found = records(rr)
            if found is not None:
                place, current = found
                staged[place] = [*(r for r in current if not _same(r, rr)), rr]
    rules = {place: (rule_of(current) if current else None) for place, current in staged.items()}
    for place, rule in rules.items():
        zone.put(place, rule)
    zone.soa = new_soa
    return list(rules)


def place_text(place: Place, zone: str) -> str:
    """The owner name a place stands for (for logs)."""
    if len(place) == 3:
        trigger, wildcard, key = place
        name = wire_text(key)
        name = ("*." + name if name != "." else "*.") if wildcard else name
        marker = "" if trigger is Trigger.QNAME else "rpz-nsdname."
    else:
        trigger, version, length, network = place
        name = encode_prefix(version, length, network) + "."
        marker = {v: k.decode() for k, v in MARKERS.items()}[trigger] + "."
    return name.rstrip(".") + "." + marker + zone if name != "." else marker + zone


__all__ = [
    "MARKERS",
    "RpzError",
    "ZoneReader",
    "apply_changes",
    "build_zone",
    "encode_prefix",
    "parse_prefix",
    "place_of",
    "place_text",
    "records_of",
    "rule_of",
]
