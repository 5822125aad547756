"""Proofs of non-existence: the result types, and the four questions the engine asks.

Each function takes the records of a response (any mix: only NSEC or NSEC3
records owned in ``zone`` are looked at) that the engine has already verified
with the zone's keys, and answers with a :class:`DenialResult`.  NSEC records
are used when present (RFC 4035 section 5.4, :mod:`.nsec`), else NSEC3
(RFC 5155 section 8, :mod:`.nsec3`).

- :func:`prove_nxdomain`: the name does not exist, nor a wildcard that could
  have produced it.
- :func:`prove_nodata`: the name exists (or a wildcard does) without the type.
- :func:`prove_no_ds`: a delegation without DS, so an insecure child zone.
- :func:`prove_wildcard_answer`: an answer expanded from a wildcard, and the
  name itself does not exist.

``INSECURE`` (opt-out, or an insecure delegation in the way) and
``UNSUPPORTED`` (an NSEC3 hash we do not know, or more iterations than RFC 9276
lets a validator accept) both mean the answer cannot be called secure, and is
not bogus either.
"""

from __future__ import annotations

from collections.abc import Sequence

from resolver.dnssec import nsec, nsec3
from resolver.dnssec.budget import ValidationBudget
from resolver.dnssec.proofs import DenialReason, DenialResult, DenialStatus
from resolver.wire.message import ResourceRecord, RRType
from resolver.wire.names import is_subdomain

__all__ = [
    "DenialReason",
    "DenialResult",
    "DenialStatus",
    "prove_no_ds",
    "prove_nodata",
    "prove_nxdomain",
    "prove_wildcard_answer",
]


def _uses_nsec(records: Sequence[ResourceRecord], zone: str) -> bool:
    """NSEC when the zone has NSEC records here; a zone uses one or the other."""
    return any(rr.rrtype == RRType.NSEC and is_subdomain(rr.name, zone) for rr in records)


def prove_nxdomain(
    qname: str,
    records: Sequence[ResourceRecord],
    zone: str,
    *,
    max_iterations: int = 150,
    budget: ValidationBudget | None = None,
) -> DenialResult:
    """NXDOMAIN: ``qname`` does not exist in ``zone``, and no wildcard could answer it."""
    if _uses_nsec(records, zone):
        return nsec.nxdomain(qname, records, zone)
    return nsec3.nxdomain(qname, records, zone, max_iterations, budget)


def prove_nodata(
    qname: str,
    qtype: int,
    records: Sequence[ResourceRecord],
    zone: str,
    *,
    max_iterations: int = 150,
    budget: ValidationBudget | None = None,
) -> DenialResult:
    """NODATA: ``qname`` (or the wildcard that covers it) exists without ``qtype``."""
    if _uses_nsec(records, zone):
        return nsec.nodata(qname, qtype, records, zone)
    return nsec3.nodata(qname, qtype, records, zone, max_iterations, budget)


def prove_no_ds(
    child: str,
    records: Sequence[ResourceRecord],
    zone: str,
    *,
    max_iterations: int = 150,
    budget: ValidationBudget | None = None,
) -> DenialResult:
    """An insecure delegation: ``child`` is delegated from ``zone`` with no DS.

    PROVED (an NSEC or NSEC3 with NS and without DS, SOA or CNAME at the child)
    and INSECURE (the child sits in an NSEC3 opt-out span) both mean the child
    zone is unsigned as far as the chain of trust goes.
    """
    if _uses_nsec(records, zone):
        return nsec.no_ds(child, records, zone)
    return nsec3.no_ds(child, records, zone, max_iterations, budget)


def prove_wildcard_answer(
    qname: str,
    rrsig_labels: int,
    records: Sequence[ResourceRecord],
    zone: str,
    *,
    max_iterations: int = 150,
    budget: ValidationBudget | None = None,
) -> DenialResult:
    """An answer for ``qname`` expanded from ``*.`` + its rightmost ``rrsig_labels``
    labels (the RRSIG's Labels field): ``qname`` itself must not exist (RFC 4035
    section 5.3.4, RFC 5155 section 8.8)."""
    if _uses_nsec(records, zone):
        return nsec.wildcard_answer(qname, rrsig_labels, records, zone)
    return nsec3.wildcard_answer(qname, rrsig_labels, records, zone, max_iterations, budget)
