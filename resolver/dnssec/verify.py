"""RRSIG verification (RFC 4035 section 5.3) and DNSKEY RRsets from DS or anchors (5.2).

One RRSIG is judged in the order RFC 4035 section 5.3.1 lists the checks: does
it fit the RRset (owner, class, type, labels, signer above the owner), is its
algorithm supported, is ``now`` inside its validity window (32-bit serial
arithmetic, RFC 4034 section 3.1.5 and RFC 1982), is there a usable key with
its signer, algorithm and key tag, and does the signature check out with one.
An RRset is secure when any one of its RRSIGs is valid (RFC 6840 section 5.11
forbids demanding more).

The signature checks are counted (:mod:`.budget`): at most
:data:`~resolver.dnssec.budget.MAX_SIGNATURES_PER_RRSET` per RRset, and what the question's
:class:`~resolver.dnssec.budget.ValidationBudget` allows; past either, the verdict is
``TOO_MUCH_WORK`` (KeyTrap, CVE-2023-50387).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from resolver.dnssec.budget import MAX_SIGNATURES_PER_RRSET, ValidationBudget
from resolver.dnssec.canonical import signed_data, signed_owner
from resolver.dnssec.keys import (
    DIGEST_PREFERENCE,
    SUPPORTED_ALGORITHMS,
    ds_matches,
    key_tag,
    usable_key,
    verify_signature,
)
from resolver.wire.dnssec_rdata import DNSKEY, DS, RRSIG
from resolver.wire.message import ResourceRecord, RRType
from resolver.wire.names import is_subdomain, label_count, name_key

SERIAL = 1 << 32
HALF = 1 << 31


class SigStatus(Enum):
    """What one RRSIG (or the best of an RRset's RRSIGs) says about the RRset."""

    VALID = "valid"
    EXPIRED = "expired"  # now is after the expiration
    NOT_YET_VALID = "not yet valid"  # now is before the inception
    BAD_SIGNATURE = "bad signature"  # a matching key, and the signature does not check out
    NO_MATCHING_KEY = "no matching key"  # no usable key with the signer, algorithm, key tag
    BAD_KEY = "bad key"  # the matching keys cannot be read as public keys
    UNSUPPORTED_ALGORITHM = "unsupported algorithm"  # RFC 8624: insecure, not bogus
    MISMATCH = "mismatch"  # the RRSIG does not belong to this RRset
    NO_SIGNATURE = "no signature"  # no RRSIG covers the RRset at all
    TOO_MUCH_WORK = "too many signature checks"  # past the RRset's or the question's budget


# When no RRSIG is valid, the one reported is the one that got furthest.
_FAILURE_RANK = {
    SigStatus.TOO_MUCH_WORK: 7,
    SigStatus.BAD_SIGNATURE: 6,
    SigStatus.BAD_KEY: 5,
    SigStatus.EXPIRED: 4,
    SigStatus.NOT_YET_VALID: 4,
    SigStatus.NO_MATCHING_KEY: 3,
    SigStatus.MISMATCH: 2,
    SigStatus.UNSUPPORTED_ALGORITHM: 1,
    SigStatus.NO_SIGNATURE: 0,
}


@dataclass(frozen=True, slots=True)
class Verification:
    """The verdict on an RRset.

    ``rrsig`` is the signature that decided (the valid one, or the failure that
    got furthest).  ``ttl`` is, when valid, how long the RRset may be kept: no
    longer than its TTL, the RRSIG's original TTL and TTL, and the time left
    before the signature expires (RFC 4035 section 5.3.3).  ``wildcard`` is the
    wildcard name the RRset was expanded from, when it was (RFC 4035 section
    5.3.4): the answer then needs :func:`resolver.dnssec.prove_wildcard_answer`.
    """

    status: SigStatus
    rrsig: RRSIG | None = None
    ttl: int | None = None
    wildcard: str | None = None

    @property
    def valid(self) -> bool:
        return self.status is SigStatus.VALID


def _serial_le(a: int, b: int) -> bool:
    """``a <= b`` in 32-bit serial number arithmetic (RFC 1982 section 3.2)."""
    return (b - a) % SERIAL < HALF


def validity(rrsig: RRSIG, now: int, skew: int = 0) -> SigStatus:
    """Whether ``now`` (seconds since the epoch) lies in the RRSIG's validity window.

    ``skew`` widens the window on both sides, for clocks that disagree.
    """
    if not _serial_le((rrsig.inception - skew) % SERIAL, now % SERIAL):
        return SigStatus.NOT_YET_VALID
    if not _serial_le(now % SERIAL, (rrsig.expiration + skew) % SERIAL):
        return SigStatus.EXPIRED
    return SigStatus.VALID


def _fits(rrset: Sequence[ResourceRecord], record: ResourceRecord, rrsig: RRSIG) -> bool:
    first = rrset[0]
    return (
        rrsig.type_covered == first.rrtype
        and record.rrclass == first.rrclass
        and name_key(record.name) == name_key(first.name)
        and rrsig.labels <= _labels_without_wildcard(first.name)
        and is_subdomain(first.name, rrsig.signer)
    )


def _labels_without_wildcard(name: str) -> int:
    """RFC 4034 section 3.1.3: the Labels field does not count a leading ``*``."""
    count = label_count(name)
    return count - 1 if name.startswith("*.") else count


def _candidate_keys(rrsig: RRSIG, keys: Sequence[ResourceRecord]) -> list[DNSKEY]:
    signer = name_key(rrsig.signer)
    return [
        rr.rdata
        for rr in keys
        if isinstance(rr.rdata, DNSKEY)
        and name_key(rr.name) == signer
        and rr.rdata.algorithm == rrsig.algorithm
        and usable_key(rr.rdata)
        and key_tag(rr.rdata) == rrsig.key_tag
    ]


Checks = Callable[[], bool]
"""Asked before each signature check: False when no more may be made."""


def verify_rrsig(
    rrset: Sequence[ResourceRecord],
    rrsig_record: ResourceRecord,
    keys: Sequence[ResourceRecord],
    now: int,
    *,
    skew: int = 0,
    checks: Checks | None = None,
) -> SigStatus:
    """Check one RRSIG record over ``rrset`` with the DNSKEY records ``keys``, trying the
    matching keys until one verifies (or ``checks`` says no more)."""
    rrsig = rrsig_record.rdata
    if not rrset or not isinstance(rrsig, RRSIG) or not _fits(rrset, rrsig_record, rrsig):
        return SigStatus.MISMATCH
    if rrsig.algorithm not in SUPPORTED_ALGORITHMS:
        return SigStatus.UNSUPPORTED_ALGORITHM
    window = validity(rrsig, now, skew)
    if window is not SigStatus.VALID:
        return window
    candidates = _candidate_keys(rrsig, keys)
    if not candidates:
        return SigStatus.NO_MATCHING_KEY
    data = signed_data(rrsig, rrset)
    failed = False
    for key in candidates:
        if checks is not None and not checks():
            return SigStatus.TOO_MUCH_WORK
        outcome = verify_signature(rrsig.algorithm, key.key, rrsig.signature, data)
        if outcome:
            return SigStatus.VALID
        failed = failed or outcome is False
    return SigStatus.BAD_SIGNATURE if failed else SigStatus.BAD_KEY


def rrset_checks(budget: ValidationBudget | None) -> Checks:
    """The signature checks one RRset may make: MAX_SIGNATURES_PER_RRSET, each taken from
    the question's budget too."""
    left = MAX_SIGNATURES_PER_RRSET

    def check() -> bool:
        nonlocal left
        if left <= 0 or (budget is not None and not budget.spend_signature()):
            return False
        left -= 1
        return True

    return check


def verify_rrset(
    rrset: Sequence[ResourceRecord],
    rrsigs: Sequence[ResourceRecord],
    keys: Sequence[ResourceRecord],
    now: int,
    *,
    skew: int = 0,
    budget: ValidationBudget | None = None,
) -> Verification:
    """The verdict on an RRset given the RRSIG records seen with it and the zone's keys.

    ``rrsigs`` may hold RRSIGs of other RRsets: only those covering this one's
    owner and type count.  ``keys`` are DNSKEY records already trusted.  At most
    MAX_SIGNATURES_PER_RRSET signatures are checked, and no more than ``budget`` allows.
    """
    if not rrset:
        return Verification(SigStatus.NO_SIGNATURE)
    first = rrset[0]
    owner = name_key(first.name)
    covering = [
        rr
        for rr in rrsigs
        if isinstance(rr.rdata, RRSIG)
        and rr.rdata.type_covered == first.rrtype
        and name_key(rr.name) == owner
    ]
    best = Verification(SigStatus.NO_SIGNATURE)
    checks = rrset_checks(budget)
    for record in covering:
        assert isinstance(record.rdata, RRSIG)
        status = verify_rrsig(rrset, record, keys, now, skew=skew, checks=checks)
        if status is SigStatus.VALID:
            return _valid(rrset, record, now)
        if _FAILURE_RANK[status] > _FAILURE_RANK[best.status]:
            best = Verification(status, record.rdata)
        if status is SigStatus.TOO_MUCH_WORK:
            break
    return best


def _valid(rrset: Sequence[ResourceRecord], record: ResourceRecord, now: int) -> Verification:
    rrsig = record.rdata
    assert isinstance(rrsig, RRSIG)
    left = (rrsig.expiration - now) % SERIAL
    ttl = min(min(rr.ttl for rr in rrset), rrsig.original_ttl, record.ttl, left)
    owner = rrset[0].name
    source = signed_owner(owner, rrsig.labels)
    wildcard = source if name_key(source) != name_key(owner) else None
    return Verification(SigStatus.VALID, rrsig, ttl, wildcard)


# ---------------------------------------------------------------- DNSKEY RRsets


class KeyStatus(Enum):
    """What the DS records (or trust anchors) make of a zone's DNSKEY RRset."""

    SECURE = "secure"  # signed by a key the DS or anchor names
    INSECURE = "insecure"  # no DS or anchor with an algorithm and digest we support
    BOGUS = "bogus"


@dataclass(frozen=True, slots=True)
class KeyVerdict:
    """``keys`` is the DNSKEY RRset to trust when secure (empty otherwise); ``reason`` is
    why not, as the signature status (NO_MATCHING_KEY when no DNSKEY matches a DS)."""

    status: KeyStatus
    keys: tuple[ResourceRecord, ...] = ()
    reason: SigStatus | None = None
    verification: Verification | None = None


def validate_dnskeys(
    zone: str,
    dnskeys: Sequence[ResourceRecord],
    rrsigs: Sequence[ResourceRecord],
    trusted: Sequence[ResourceRecord],
    now: int,
    *,
    skew: int = 0,
    budget: ValidationBudget | None = None,
) -> KeyVerdict:
    """Authenticate a zone's DNSKEY RRset from its validated DS RRset or trust anchors.

    ``trusted`` holds DS records (from the parent, or a DS trust anchor) and/or
    DNSKEY trust anchors for ``zone``.  RFC 4035 section 5.2: the DNSKEY RRset
    must be signed by a key a DS names (same owner, algorithm, key tag, digest);
    a DNSKEY anchor is itself such a key.  When no DS or anchor has an algorithm
    and digest we support, the zone is insecure (RFC 4035 section 5.2, RFC 6840
    section 5.2).  Among DS records, SHA-1 ones are ignored when stronger digests
    are present (RFC 4509 section 3).
    """
    zone_key = name_key(zone)
    keyset = [rr for rr in dnskeys if rr.rrtype == RRType.DNSKEY and name_key(rr.name) == zone_key]
    entry = _entry_keys(zone, keyset, [rr for rr in trusted if name_key(rr.name) == zone_key])
    if entry is None:
        return KeyVerdict(KeyStatus.INSECURE, reason=SigStatus.UNSUPPORTED_ALGORITHM)
    if not entry:
        return KeyVerdict(KeyStatus.BOGUS, reason=SigStatus.NO_MATCHING_KEY)
    verdict = verify_rrset(keyset, rrsigs, entry, now, skew=skew, budget=budget)
    if verdict.valid:
        return KeyVerdict(KeyStatus.SECURE, tuple(keyset), verification=verdict)
    return KeyVerdict(KeyStatus.BOGUS, reason=verdict.status, verification=verdict)


def _entry_keys(
    zone: str, keyset: list[ResourceRecord], trusted: list[ResourceRecord]
) -> list[ResourceRecord] | None:
    """The keys allowed to sign the DNSKEY RRset; None when nothing trusted is supported."""
    anchors = [
        rr
        for rr in trusted
        if isinstance(rr.rdata, DNSKEY)
        and rr.rdata.algorithm in SUPPORTED_ALGORITHMS
        and usable_key(rr.rdata)
    ]
    ds_set = [
        rr.rdata
        for rr in trusted
        if isinstance(rr.rdata, DS)
        and rr.rdata.algorithm in SUPPORTED_ALGORITHMS
        and rr.rdata.digest_type in DIGEST_PREFERENCE
    ]
    if not anchors and not ds_set:
        return None
    if ds_set:
        best = max(DIGEST_PREFERENCE[ds.digest_type] for ds in ds_set)
        ds_set = [ds for ds in ds_set if DIGEST_PREFERENCE[ds.digest_type] == best]
    matched = [
        rr
        for rr in keyset
        if isinstance(rr.rdata, DNSKEY)
        and usable_key(rr.rdata)
        and any(ds_matches(zone, rr.rdata, ds) for ds in ds_set)
    ]
    return anchors + matched
