"""Denial of existence with NSEC (RFC 4034 section 4, RFC 4035 sections 3.1.3 and 5.4).

An NSEC at ``owner`` with next name ``next`` says no name sorts strictly
between the two in canonical order (the last one wraps to the apex), and lists
the types at ``owner``.  The checks Unbound and RFC 6840 add are here too: an
NSEC at a delegation point (NS without SOA) or at a DNAME says nothing about
names below it; a parent-side NSEC proves no DS but no other type absent; an
apex NSEC (SOA set) must not deny a DS (RFC 6840 section 4.4); a covering NSEC
whose next name is below the query name shows an empty non-terminal.
"""

from __future__ import annotations

from collections.abc import Sequence

from resolver.dnssec.canonical import (
    canonical_name_key,
    common_labels,
    strictly_below,
    suffix,
    wildcard_of,
)
from resolver.dnssec.proofs import DenialReason, DenialResult, insecure, not_proved, proved
from resolver.wire.dnssec_rdata import NSEC
from resolver.wire.message import ResourceRecord, RRType
from resolver.wire.names import ROOT, is_subdomain, label_count, name_key

Found = tuple[str, NSEC]

DNAME = 39  # RFC 6672 (the wire layer has no name for it)


def _nsecs(records: Sequence[ResourceRecord], zone: str) -> list[Found]:
    return [
        (rr.name, rr.rdata)
        for rr in records
        if isinstance(rr.rdata, NSEC) and rr.rrtype == RRType.NSEC and is_subdomain(rr.name, zone)
    ]


def covers(owner: str, next_name: str, name: str) -> bool:
    """True when ``name`` sorts strictly between ``owner`` and ``next_name``; the last
    NSEC of a zone (next name the apex, sorting first) covers everything after it."""
    low, high, key = (canonical_name_key(n) for n in (owner, next_name, name))
    if low < high:
        return low < key < high
    return key != low and (key > low or key < high)


def _cut_above(owner: str, nsec: NSEC, name: str) -> bool:
    """An NSEC at a delegation or DNAME above ``name`` cannot deny it (RFC 4035 5.4)."""
    if not strictly_below(name, owner):
        return False
    return nsec.has_type(DNAME) or (nsec.has_type(RRType.NS) and not nsec.has_type(RRType.SOA))


def _matching(nsecs: list[Found], name: str) -> Found | None:
    key = name_key(name)
    return next((found for found in nsecs if name_key(found[0]) == key), None)


def _covering(nsecs: list[Found], name: str) -> Found | None:
    for owner, nsec in nsecs:
        if covers(owner, nsec.next_name, name) and not _cut_above(owner, nsec, name):
            return owner, nsec
    return None


def _closest_encloser(qname: str, cover: Found) -> str:
    """The deepest ancestor of ``qname`` shared with the covering NSEC's owner or next name."""
    owner, nsec = cover
    return suffix(qname, max(common_labels(qname, owner), common_labels(qname, nsec.next_name)))


def _types_absent(nsec: NSEC, name: str, qtype: int) -> DenialResult:
    """The checks on an NSEC that matches the name (RFC 4035 section 5.4, RFC 6840 4.4)."""
    if nsec.has_type(qtype):
        return not_proved(DenialReason.TYPE_EXISTS)
    if nsec.has_type(RRType.CNAME):
        return not_proved(DenialReason.CNAME_EXISTS)
    if qtype == RRType.DS:
        if nsec.has_type(RRType.SOA) and name != ROOT:
            return not_proved(DenialReason.CHILD_SIDE)
    elif nsec.has_type(RRType.NS) and not nsec.has_type(RRType.SOA):
        if nsec.has_type(RRType.DS):
            return not_proved(DenialReason.DELEGATION)
        return insecure(DenialReason.INSECURE_DELEGATION)  # the data lives in an unsigned zone
    return proved()


def _start(qname: str, records: Sequence[ResourceRecord], zone: str) -> list[Found] | DenialResult:
    if not is_subdomain(qname, zone):
        return not_proved(DenialReason.OUT_OF_ZONE)
    nsecs = _nsecs(records, zone)
    return nsecs or not_proved(DenialReason.NO_RECORDS)


def nxdomain(qname: str, records: Sequence[ResourceRecord], zone: str) -> DenialResult:
    nsecs = _start(qname, records, zone)
    if isinstance(nsecs, DenialResult):
        return nsecs
    if _matching(nsecs, qname):
        return not_proved(DenialReason.NAME_EXISTS)
    cover = _covering(nsecs, qname)
    if cover is None:
        return not_proved(DenialReason.NAME_NOT_COVERED)
    if strictly_below(cover[1].next_name, qname):
        return not_proved(DenialReason.EMPTY_NON_TERMINAL)
    encloser = _closest_encloser(qname, cover)
    wildcard = wildcard_of(encloser)
    if _matching(nsecs, wildcard):
        return not_proved(DenialReason.WILDCARD_EXISTS)
    if _covering(nsecs, wildcard) is None:
        return not_proved(DenialReason.WILDCARD_NOT_DENIED)
    return proved(encloser)


def nodata(qname: str, qtype: int, records: Sequence[ResourceRecord], zone: str) -> DenialResult:
    nsecs = _start(qname, records, zone)
    if isinstance(nsecs, DenialResult):
        return nsecs
    match = _matching(nsecs, qname)
    if match:
        return _types_absent(match[1], qname, qtype)
    for owner, nsec in nsecs:  # an empty non-terminal: the next name is below qname
        if (
            strictly_below(nsec.next_name, qname)
            and canonical_name_key(owner) < canonical_name_key(qname)
            and not _cut_above(owner, nsec, qname)
        ):
            return proved(qname)
    cover = _covering(nsecs, qname)
    if cover is None:
        return not_proved(DenialReason.NO_MATCHING_RECORD)
    encloser = _closest_encloser(qname, cover)  # RFC 4035 section 3.1.3.4: wildcard NODATA
    wildcard = _matching(nsecs, wildcard_of(encloser))
    if wildcard is None:
        return not_proved(DenialReason.NO_MATCHING_RECORD)
    result = _types_absent(wildcard[1], wildcard[0], qtype)
    return proved(encloser) if result.proved else result


def no_ds(child: str, records: Sequence[ResourceRecord], zone: str) -> DenialResult:
    nsecs = _start(child, records, zone)
    if isinstance(nsecs, DenialResult):
        return nsecs
    match = _matching(nsecs, child)
    if match is None:
        return not_proved(DenialReason.NO_MATCHING_RECORD)
    nsec = match[1]
    if nsec.has_type(RRType.SOA) and child != ROOT:
        return not_proved(DenialReason.CHILD_SIDE)
    if nsec.has_type(RRType.DS):
        return not_proved(DenialReason.DS_EXISTS)
    if nsec.has_type(RRType.CNAME) or not nsec.has_type(RRType.NS):
        return not_proved(DenialReason.NOT_A_DELEGATION)
    return proved()


def wildcard_answer(
    qname: str, rrsig_labels: int, records: Sequence[ResourceRecord], zone: str
) -> DenialResult:
    nsecs = _start(qname, records, zone)
    if isinstance(nsecs, DenialResult):
        return nsecs
    if rrsig_labels >= label_count(qname):
        return not_proved(DenialReason.WRONG_WILDCARD)
    encloser = suffix(qname, rrsig_labels)
    if not is_subdomain(encloser, zone):
        return not_proved(DenialReason.OUT_OF_ZONE)
    cover = _covering(nsecs, qname)
    if cover is None:
        return not_proved(DenialReason.NAME_NOT_COVERED)
    if strictly_below(cover[1].next_name, qname):
        return not_proved(DenialReason.EMPTY_NON_TERMINAL)
    if name_key(_closest_encloser(qname, cover)) != name_key(encloser):
        return not_proved(DenialReason.WRONG_WILDCARD)
    return proved(encloser)
