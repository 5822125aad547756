"""Denial of existence with NSEC3 (RFC 5155 section 8), with RFC 9276's iteration limit.

Names are hashed (SHA-1 over the canonical name and the salt, iterated); an
NSEC3 owned by ``base32hex(hash).zone`` matches a name with that hash, and covers
the hashes strictly between its own and its next one (the last wraps round).
The proofs follow RFC 5155 sections 8.3 to 8.8 and Unbound's reading of them
(validator/val_nsec3.c): the closest encloser must not be a delegation or a
DNAME; an insecure delegation or an opt-out span makes the answer insecure.

Records whose flags have bits other than opt-out, or whose hash algorithm is
unknown, are ignored (RFC 5155 section 8.2).  Above ``max_iterations`` (150, as
Unbound and RFC 9276 section 3.2 allow) the answer is treated as insecure
without hashing anything: iterations are a cost an attacker chooses.  So is the
number of hashes (CVE-2023-50868): a proof that would hash more than the question's
:class:`~resolver.dnssec.budget.ValidationBudget` allows is not proved (the validator
also refuses replies with more than ``MAX_NSEC3_RECORDS`` NSEC3 records before checking
anything), and each parameter set is tried only until one proves.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from resolver.dnssec.budget import ValidationBudget
from resolver.dnssec.canonical import canonical_name_wire, strictly_below, suffix, wildcard_of
from resolver.dnssec.proofs import (
    DenialReason,
    DenialResult,
    DenialStatus,
    insecure,
    not_proved,
    proved,
)
from resolver.wire.dnssec_rdata import NSEC3
from resolver.wire.message import ResourceRecord, RRType
from resolver.wire.names import ROOT, BadName, is_subdomain, label_count, name_key, text_to_labels

MAX_ITERATIONS = 150
SHA1 = 1  # the only NSEC3 hash algorithm (RFC 5155 section 11)
_HASH_SIZE = 20

DNAME = 39  # RFC 6672 (the wire layer has no name for it)


@lru_cache(maxsize=8192)
def nsec3_hash(name: str, salt: bytes, iterations: int, algorithm: int = SHA1) -> bytes:
    """IH(salt, name, iterations) of RFC 5155 section 5."""
    if algorithm != SHA1:
        raise ValueError(f"NSEC3 hash algorithm {algorithm} is not supported")
    digest = hashlib.sha1(canonical_name_wire(name) + salt).digest()
    for _ in range(iterations):
        digest = hashlib.sha1(digest + salt).digest()
    return digest


@dataclass(frozen=True, slots=True)
class _Record:
    owner_hash: bytes
    nsec3: NSEC3


class _OutOfBudget(Exception):
    """The question's NSEC3 hashes are spent (caught in :func:`_run`)."""


class _Chain:
    """The usable NSEC3 records of one zone with one set of parameters."""

    def __init__(
        self,
        zone: str,
        params: tuple[int, int, bytes],
        records: list[_Record],
        budget: ValidationBudget | None = None,
    ) -> None:
        self.zone = zone
        self.algorithm, self.iterations, self.salt = params
        self.records = records
        self.budget = budget

    def hash(self, name: str) -> bytes:
        if self.budget is not None and not self.budget.spend_hash():
            raise _OutOfBudget
        return nsec3_hash(name, self.salt, self.iterations, self.algorithm)

    def matching(self, name: str) -> NSEC3 | None:
        digest = self.hash(name)
        return next((r.nsec3 for r in self.records if r.owner_hash == digest), None)

    def covering(self, name: str) -> NSEC3 | None:
        digest = self.hash(name)
        for record in self.records:
            low, high = record.owner_hash, record.nsec3.next_hashed
            if (low < digest < high) if low < high else (digest > low or digest < high):
                return record.nsec3
        return None


def _owner_hash(owner: str, zone_labels: list[bytes]) -> bytes | None:
    """The hash an NSEC3's owner name holds, if it is ``<base32hex>.zone``."""
    try:
        labels = [label.lower() for label in text_to_labels(owner)]
    except BadName:
        return None
    if len(labels) != len(zone_labels) + 1 or labels[1:] != zone_labels:
        return None
    text = labels[0].upper()
    try:
        digest = base64.b32hexdecode(text + b"=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return None
    return digest if len(digest) == _HASH_SIZE else None


def _chains(
    records: Sequence[ResourceRecord], zone: str, budget: ValidationBudget | None = None
) -> list[_Chain] | DenialResult:
    groups: dict[tuple[int, int, bytes], list[_Record]] = {}
    unknown_hash = False
    zone_labels = [label.lower() for label in text_to_labels(zone)]
    for rr in records:
        rdata = rr.rdata
        if rr.rrtype != RRType.NSEC3 or not isinstance(rdata, NSEC3) or rdata.flags & ~1:
            continue
        if rdata.algorithm != SHA1:
            unknown_hash = True
            continue
        digest = _owner_hash(rr.name, zone_labels)
        if digest is None or len(rdata.next_hashed) != _HASH_SIZE:
            continue
        key = (rdata.algorithm, rdata.iterations, rdata.salt)
        groups.setdefault(key, []).append(_Record(digest, rdata))
    if not groups:
        if unknown_hash:
            return DenialResult(DenialStatus.UNSUPPORTED, DenialReason.UNKNOWN_HASH)
        return not_proved(DenialReason.NO_RECORDS)
    return [_Chain(zone, key, found, budget) for key, found in groups.items()]


@dataclass(frozen=True, slots=True)
class _Encloser:
    """A proven closest encloser and the NSEC3 covering the next closer name."""

    name: str
    next_closer_cover: NSEC3


def _closest_encloser(chain: _Chain, qname: str) -> _Encloser | DenialResult:
    """RFC 5155 section 8.3, for a ``qname`` that does not exist."""
    name = qname
    while True:
        match = chain.matching(name)
        if match is not None:
            break
        if name_key(name) == name_key(chain.zone):
            return not_proved(DenialReason.NO_CLOSEST_ENCLOSER)
        name = suffix(name, label_count(name) - 1)
    if name_key(name) == name_key(qname):
        return not_proved(DenialReason.NAME_EXISTS)
    if match.has_type(RRType.NS) and not match.has_type(RRType.SOA):
        if match.has_type(RRType.DS):
            return not_proved(DenialReason.DELEGATION)
        return insecure(DenialReason.INSECURE_DELEGATION, name)
    if match.has_type(DNAME):
        return not_proved(DenialReason.DNAME)
    cover = chain.covering(suffix(qname, label_count(name) + 1))
    if cover is None:
        return not_proved(DenialReason.NEXT_CLOSER_NOT_COVERED)
    return _Encloser(name, cover)


def _types_absent(match: NSEC3, qname: str, qtype: int) -> DenialResult:
    """Checks on an NSEC3 matching the name (RFC 5155 sections 8.5 to 8.7)."""
    if match.has_type(qtype):
        return not_proved(DenialReason.TYPE_EXISTS)
    if match.has_type(RRType.CNAME):
        return not_proved(DenialReason.CNAME_EXISTS)
    if qtype == RRType.DS:
        if match.has_type(RRType.SOA) and qname != ROOT:
            return not_proved(DenialReason.CHILD_SIDE)  # RFC 6840 section 4.4
    elif match.has_type(RRType.NS) and not match.has_type(RRType.SOA):
        if match.has_type(RRType.DS):
            return not_proved(DenialReason.DELEGATION)
        return insecure(DenialReason.INSECURE_DELEGATION)
    return proved()


def _nxdomain(chain: _Chain, qname: str, qtype: int) -> DenialResult:
    found = _closest_encloser(chain, qname)
    if isinstance(found, DenialResult):
        return found
    wildcard = wildcard_of(found.name)
    if chain.matching(wildcard) is not None:
        return not_proved(DenialReason.WILDCARD_EXISTS)
    if chain.covering(wildcard) is None:
        return not_proved(DenialReason.WILDCARD_NOT_DENIED)
    if found.next_closer_cover.opt_out:
        return insecure(DenialReason.OPT_OUT, found.name)  # RFC 5155 section 9.2: no AD
    return proved(found.name)


def _nodata(chain: _Chain, qname: str, qtype: int) -> DenialResult:
    match = chain.matching(qname)
    if match is not None:
        result = _types_absent(match, qname, qtype)
        return proved(qname) if result.proved else result
    found = _closest_encloser(chain, qname)
    if isinstance(found, DenialResult):
        if found.status is DenialStatus.INSECURE and qtype == RRType.DS:
            return not_proved(DenialReason.INSECURE_DELEGATION)
        return found
    wildcard = chain.matching(wildcard_of(found.name))
    if wildcard is not None:  # RFC 5155 section 8.7: wildcard NODATA
        result = _types_absent(wildcard, wildcard_of(found.name), qtype)
        if not result.proved:
            return result
        if found.next_closer_cover.opt_out:
            return insecure(DenialReason.OPT_OUT, found.name)
        return proved(found.name)
    if not found.next_closer_cover.opt_out:  # RFC 5155 section 8.6, and Unbound for others
        return not_proved(DenialReason.NO_MATCHING_RECORD)
    return insecure(DenialReason.OPT_OUT, found.name)


def _no_ds(chain: _Chain, child: str, qtype: int) -> DenialResult:
    match = chain.matching(child)
    if match is not None:
        if match.has_type(RRType.SOA) and child != ROOT:
            return not_proved(DenialReason.CHILD_SIDE)
        if match.has_type(RRType.DS):
            return not_proved(DenialReason.DS_EXISTS)
        if match.has_type(RRType.CNAME) or not match.has_type(RRType.NS):
            return not_proved(DenialReason.NOT_A_DELEGATION)
        return proved()
    found = _closest_encloser(chain, child)  # RFC 5155 section 8.9: opt-out
    if isinstance(found, DenialResult):
        if found.status is DenialStatus.INSECURE:  # a delegation above says nothing of child
            return not_proved(DenialReason.INSECURE_DELEGATION)
        return found
    if not found.next_closer_cover.opt_out:
        return not_proved(DenialReason.NOT_OPT_OUT)
    return insecure(DenialReason.OPT_OUT, found.name)


Check = Callable[[_Chain, str, int], DenialResult]


def _run(
    check: Check,
    qname: str,
    qtype: int,
    records: Sequence[ResourceRecord],
    zone: str,
    max_iterations: int,
    budget: ValidationBudget | None = None,
) -> DenialResult:
    """Run one proof over each parameter set found until one proves; the best outcome."""
    if not is_subdomain(qname, zone):
        return not_proved(DenialReason.OUT_OF_ZONE)
    chains = _chains(records, zone, budget)
    if isinstance(chains, DenialResult):
        return chains
    if any(chain.iterations > max_iterations for chain in chains):
        return DenialResult(DenialStatus.UNSUPPORTED, DenialReason.TOO_MANY_ITERATIONS)
    results = []
    try:
        for chain in chains:
            result = check(chain, qname, qtype)
            if result.proved:
                return result
            results.append(result)
    except _OutOfBudget:
        return not_proved(DenialReason.BUDGET)
    return min(results, key=lambda r: _ORDER[r.status])


_ORDER = {
    DenialStatus.PROVED: 0,
    DenialStatus.INSECURE: 1,
    DenialStatus.UNSUPPORTED: 2,
    DenialStatus.NOT_PROVED: 3,
}


def nxdomain(
    qname: str,
    records: Sequence[ResourceRecord],
    zone: str,
    max_iterations: int,
    budget: ValidationBudget | None = None,
) -> DenialResult:
    return _run(_nxdomain, qname, 0, records, zone, max_iterations, budget)


def nodata(
    qname: str,
    qtype: int,
    records: Sequence[ResourceRecord],
    zone: str,
    max_iterations: int,
    budget: ValidationBudget | None = None,
) -> DenialResult:
    return _run(_nodata, qname, qtype, records, zone, max_iterations, budget)


def no_ds(
    child: str,
    records: Sequence[ResourceRecord],
    zone: str,
    max_iterations: int,
    budget: ValidationBudget | None = None,
) -> DenialResult:
    if not strictly_below(child, zone) and child != ROOT:
        return not_proved(DenialReason.OUT_OF_ZONE)
    return _run(_no_ds, child, RRType.DS, records, zone, max_iterations, budget)


def wildcard_answer(
    qname: str,
    rrsig_labels: int,
    records: Sequence[ResourceRecord],
    zone: str,
    max_iterations: int,
    budget: ValidationBudget | None = None,
) -> DenialResult:
    """RFC 5155 section 8.8: the next closer name of the wildcard's encloser is covered."""
    if rrsig_labels >= label_count(qname):
        return not_proved(DenialReason.WRONG_WILDCARD)
    encloser = suffix(qname, rrsig_labels)
    if not is_subdomain(encloser, zone):
        return not_proved(DenialReason.OUT_OF_ZONE)

    def check(chain: _Chain, name: str, _: int) -> DenialResult:
        cover = chain.covering(suffix(name, rrsig_labels + 1))
        if cover is None:
            return not_proved(DenialReason.NEXT_CLOSER_NOT_COVERED)
        if cover.opt_out:
            return insecure(DenialReason.OPT_OUT, encloser)
        return proved(encloser)

    return _run(check, qname, 0, records, zone, max_iterations, budget)
