"""Automated updates of DNSSEC trust anchors (RFC 5011): the state machine and its file.

A trust point (a zone with trust anchors, the root usually) is probed now and then for
its DNSKEY RRset; when that RRset validates from the anchors in force, :func:`update`
moves each of its key-signing keys (SEP flag) through the states of RFC 5011 section
4.1::

    Start --new key seen--> AddPend --seen again after the add hold-down--> Valid
    AddPend --gone--> (forgotten)            Valid --gone--> Missing --seen--> Valid
    Valid, Missing, AddPend --revoked (REVOKE bit, signing the RRset itself)--> Revoked
    Revoked --after the remove hold-down--> Removed (forgotten)

Valid and Missing keys are the trust anchors (:func:`trusted`).  The hold-downs are 30
days by default (``add-holddown``, ``del-holddown``, as Unbound's; section 2.4.1: at
least 30 days, or the RRset's original TTL when longer), so an attacker who stole a key
cannot add a key of its own before the zone's operator revokes the stolen one.  A key is
the same key with or without its REVOKE bit (the bit changes its key tag).  The anchors
configured at first (DS or DNSKEY lines without a state) are trusted until the first
probe that validates turns the keys they name into Valid ones.  When every anchor of a
trust point has been revoked the point is gone (section 5): its zone is not validated.

The state file (``auto-trust-anchor-file``) is a master file whose comments hold the
states, so it is also a plain trust anchor file::

    ;;trust-point=. ;;last-success=1712345678 ;;next-probe=1712349278
    . 172800 IN DNSKEY 257 3 8 AwEAAa... ;;state=VALID ;;since=1712345678

Pure: the clock is passed in, the file is text in and text out; the service probes and
writes (:mod:`resolver.ops.autotrust`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from resolver.dnssec.anchors import TrustAnchorError, parse_trust_anchors
from resolver.dnssec.canonical import signed_data
from resolver.dnssec.keys import REVOKED, SEP, ds_matches, key_tag, verify_signature
from resolver.dnssec.verify import SigStatus, validity
from resolver.wire.dnssec_rdata import DNSKEY, DS, RRSIG
from resolver.wire.message import ResourceRecord, RRType
from resolver.wire.names import name_key

DAY = 86400
ADD_HOLDDOWN = 30 * DAY  # RFC 5011 section 2.4.1
DEL_HOLDDOWN = 30 * DAY  # section 2.4.2 (Unbound's del-holddown)
HOUR = 3600


class KeyState(Enum):
    ADDPEND = "ADDPEND"
    VALID = "VALID"
    MISSING = "MISSING"
    REVOKED = "REVOKED"


@dataclass
class TrackedKey:
    record: ResourceRecord  # the DNSKEY as last seen (its REVOKE bit set once revoked)
    state: KeyState
    since: float  # when it entered its state

    @property
    def dnskey(self) -> DNSKEY:
        assert isinstance(self.record.rdata, DNSKEY)
        return self.record.rdata


@dataclass
class TrustPoint:
    """A zone whose anchors are kept up to date."""

    zone: str
    keys: list[TrackedKey] = field(default_factory=list)
    configured: list[ResourceRecord] = field(default_factory=list)  # DS/DNSKEY to start from
    last_success: float = 0.0
    next_probe: float = 0.0

    @property
    def revoked_all(self) -> bool:
        """Every anchor it had was revoked: the trust point is gone (section 5)."""
        return (
            not self.configured
            and not trusted(self)
            and any(k.state is KeyState.REVOKED for k in self.keys)
        )


def same_key(a: DNSKEY, b: DNSKEY) -> bool:
    """One key, with or without its REVOKE bit."""
    return (a.algorithm, a.protocol, a.key, a.flags | REVOKED) == (
        b.algorithm, b.protocol, b.key, b.flags | REVOKED)  # fmt: skip


def trusted(point: TrustPoint) -> list[ResourceRecord]:
    """The point's trust anchors now: Valid and Missing keys, else what was configured."""
    keys = [k.record for k in point.keys if k.state in (KeyState.VALID, KeyState.MISSING)]
    return keys or list(point.configured)


def self_signed(key: ResourceRecord, rrset: Sequence[ResourceRecord],
                rrsigs: Sequence[ResourceRecord], now: int) -> bool:  # fmt: skip
    """Whether ``key`` (revoked or not) signs the DNSKEY RRset ``rrset`` itself (RFC 5011
    section 2.1: a revocation counts only when the revoked key signs it)."""
    dnskey = key.rdata
    assert isinstance(dnskey, DNSKEY)
    tag = key_tag(dnskey)
    for sig in rrsigs:
        rrsig = sig.rdata
        if (
            isinstance(rrsig, RRSIG) and rrsig.type_covered == RRType.DNSKEY
            and rrsig.key_tag == tag and rrsig.algorithm == dnskey.algorithm
            and name_key(rrsig.signer) == name_key(key.name)
            and validity(rrsig, now) is SigStatus.VALID
            and verify_signature(rrsig.algorithm, dnskey.key, rrsig.signature,
                                 signed_data(rrsig, rrset))
        ):  # fmt: skip
            return True
    return False


def _configured_match(point: TrustPoint, record: ResourceRecord) -> bool:
    dnskey = record.rdata
    assert isinstance(dnskey, DNSKEY)
    for anchor in point.configured:
        if isinstance(anchor.rdata, DS) and ds_matches(point.zone, dnskey, anchor.rdata):
            return True
        if isinstance(anchor.rdata, DNSKEY) and same_key(anchor.rdata, dnskey):
            return True
    return False


def update(
    point: TrustPoint,
    rrset: Sequence[ResourceRecord],
    rrsigs: Sequence[ResourceRecord],
    now: float,
    *,
    add_holddown: float = ADD_HOLDDOWN,
    del_holddown: float = DEL_HOLDDOWN,
) -> list[str]:
    """Move the point's keys on after a probe whose DNSKEY RRset validated from its
    anchors (the caller checked that).  Returns what changed, one line each."""
    changes: list[str] = []
    seen = [rr for rr in rrset if isinstance(rr.rdata, DNSKEY) and rr.rdata.flags & SEP]
    ttl = max((rr.ttl for rr in rrset), default=0)
    hold = max(add_holddown, ttl)

    def note(key: TrackedKey, state: KeyState, why: str) -> None:
        key.state, key.since = state, now
        changes.append(f"{point.zone} key {key_tag(key.dnskey)}: {state.value} ({why})")

    for record in seen:
        dnskey = record.rdata
        assert isinstance(dnskey, DNSKEY)
        tracked = next((k for k in point.keys if same_key(k.dnskey, dnskey)), None)
        revoked = bool(dnskey.flags & REVOKED) and self_signed(record, rrset, rrsigs, int(now))
        if tracked is None:
            if dnskey.flags & REVOKED:
                continue  # a revoked key never becomes an anchor
            tracked = TrackedKey(record, KeyState.ADDPEND, now)
            point.keys.append(tracked)
            if _configured_match(point, record):
                note(tracked, KeyState.VALID, "named by the configured anchor")
            else:
                note(tracked, KeyState.ADDPEND, f"new key, trusted after {int(hold)} s")
            continue
        if revoked and tracked.state is not KeyState.REVOKED:
            tracked.record = record
            note(tracked, KeyState.REVOKED, "revoked by its own signature")
        elif tracked.state is KeyState.ADDPEND and now - tracked.since >= hold:
            note(tracked, KeyState.VALID, "seen through the add hold-down")
        elif tracked.state is KeyState.MISSING and not dnskey.flags & REVOKED:
            note(tracked, KeyState.VALID, "seen again")
    for tracked in list(point.keys):
        present = any(same_key(tracked.dnskey, rr.rdata) for rr in seen
                      if isinstance(rr.rdata, DNSKEY))  # fmt: skip
        if present:
            continue
        if tracked.state is KeyState.ADDPEND:
            point.keys.remove(tracked)
            changes.append(f"{point.zone} key {key_tag(tracked.dnskey)}: gone while pending")
        elif tracked.state is KeyState.VALID:
            note(tracked, KeyState.MISSING, "absent from the DNSKEY RRset")
    for tracked in list(point.keys):
        if tracked.state is KeyState.REVOKED and now - tracked.since >= del_holddown:
            point.keys.remove(tracked)
            changes.append(f"{point.zone} key {key_tag(tracked.dnskey)}: removed")
    if any(k.state in (KeyState.VALID, KeyState.MISSING) for k in point.keys):
        point.configured = []  # the keys themselves are the anchors from now on
    point.last_success = now
    return changes


def refresh_after(rrset: Sequence[ResourceRecord], rrsigs: Sequence[ResourceRecord],
                  now: float, failed: bool) -> float:  # fmt: skip
    """Seconds to the next probe (RFC 5011 section 2.3): the active refresh after a
    success, the retry after a failure; never less than an hour."""
    ttl = max((rr.ttl for rr in rrset), default=DAY)
    left = min(
        ((s.rdata.expiration - int(now)) % (1 << 32) for s in rrsigs
         if isinstance(s.rdata, RRSIG) and s.rdata.type_covered == RRType.DNSKEY),
        default=ttl,
    )  # fmt: skip
    if failed:
        return float(max(HOUR, min(DAY, ttl / 10, left / 10)))
    return float(max(HOUR, min(15 * DAY, ttl / 2, left / 2)))


# ---------------------------------------------------------------- the state file

_POINT = re.compile(r"^;;trust-point=(\S+)((?:\s*;;[a-z-]+=\S+)*)\s*$")
_FIELD = re.compile(r";;([a-z-]+)=(\S+)")


def parse_state(text: str, source: str = "<auto-trust-anchor-file>") -> list[TrustPoint]:
    """The trust points of a state file (or of a plain anchor file: configured anchors)."""
    points: dict[str, TrustPoint] = {}
    for number, line in enumerate(text.splitlines(), 1):
        header = _POINT.match(line)
        if header:
            point = points.setdefault(name_key(header[1]), TrustPoint(header[1]))
            fields = dict(_FIELD.findall(header[2]))
            point.last_success = float(fields.get("last-success", 0))
            point.next_probe = float(fields.get("next-probe", 0))
            continue
        body, _, comment = line.partition(";;")
        if not body.strip() or body.lstrip().startswith(";"):
            continue
        try:
            records = parse_trust_anchors(body, f"{source} line {number}")
        except TrustAnchorError as error:
            raise TrustAnchorError(f"{source} line {number}: {error}") from None
        for zone in records.zones:
            for rr in records.for_zone(zone):
                point = points.setdefault(name_key(zone), TrustPoint(zone))
                fields = dict(_FIELD.findall(";;" + comment)) if comment else {}
                state = fields.get("state")
                if state is None or isinstance(rr.rdata, DS):
                    point.configured.append(rr)
                    continue
                try:
                    kind = KeyState(state)
                except ValueError:
                    raise TrustAnchorError(
                        f"{source} line {number}: unknown state {state!r}") from None  # fmt: skip
                point.keys.append(TrackedKey(rr, kind, float(fields.get("since", 0))))
    return list(points.values())


def format_state(points: Sequence[TrustPoint]) -> str:
    lines = ["; RFC 5011 trust anchor state, kept by the resolver (auto-trust-anchor-file);",
             "; stop the resolver before editing it."]  # fmt: skip
    for point in points:
        lines.append(f";;trust-point={point.zone} ;;last-success={int(point.last_success)} "
                     f";;next-probe={int(point.next_probe)}")  # fmt: skip
        lines += [rr.to_text() for rr in point.configured]
        lines += [f"{k.record.to_text()} ;;state={k.state.value} ;;since={int(k.since)}"
                  for k in point.keys]  # fmt: skip
    return "\n".join(lines) + "\n"
