"""The outcome of a proof of non-existence: status, reason, closest encloser."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class DenialStatus(Enum):
    PROVED = "proved"
    NOT_PROVED = "not proved"
    INSECURE = "insecure"  # opt-out span, or an insecure delegation above the name
    UNSUPPORTED = "unsupported"  # unknown NSEC3 hash, or too many iterations


class DenialReason(Enum):
    """Why a proof came out as it did (``NONE`` when it is proved)."""

    NONE = "proved"
    NO_RECORDS = "no NSEC or NSEC3 records in the zone"
    OUT_OF_ZONE = "the name is not in the zone"
    NAME_EXISTS = "a record matches the name"
    NAME_NOT_COVERED = "no record covers the name"
    NO_MATCHING_RECORD = "no record matches the name"
    EMPTY_NON_TERMINAL = "the name exists as an empty non-terminal"
    TYPE_EXISTS = "the type is in the bitmap"
    CNAME_EXISTS = "a CNAME is in the bitmap"
    WILDCARD_EXISTS = "a wildcard matches the name"
    WILDCARD_NOT_DENIED = "no record denies the wildcard"
    WRONG_WILDCARD = "the wildcard is not the one for the closest encloser"
    NO_CLOSEST_ENCLOSER = "no closest encloser"
    NEXT_CLOSER_NOT_COVERED = "no record covers the next closer name"
    DELEGATION = "the record is from the parent side of a delegation"
    DNAME = "a DNAME is in the way"
    CHILD_SIDE = "the record is from the child zone's apex"
    DS_EXISTS = "DS is in the bitmap"
    NOT_A_DELEGATION = "the name is not a delegation"
    NOT_OPT_OUT = "the covering NSEC3 is not opt-out"
    OPT_OUT = "an opt-out NSEC3 covers the name"
    INSECURE_DELEGATION = "an insecure delegation is in the way"
    TOO_MANY_ITERATIONS = "NSEC3 iterations above the limit"
    UNKNOWN_HASH = "NSEC3 hash algorithm not supported"
    BUDGET = "the question's NSEC3 hash budget ran out"  # CVE-2023-50868


@dataclass(frozen=True, slots=True)
class DenialResult:
    """A proof's outcome; ``closest_encloser`` is set when the proof established one."""

    status: DenialStatus
    reason: DenialReason = DenialReason.NONE
    closest_encloser: str | None = None

    @property
    def proved(self) -> bool:
        return self.status is DenialStatus.PROVED

    @property
    def insecure(self) -> bool:
        """True for the outcomes the engine treats as insecure, not bogus."""
        return self.status in (DenialStatus.INSECURE, DenialStatus.UNSUPPORTED)


def proved(closest_encloser: str | None = None) -> DenialResult:
    return DenialResult(DenialStatus.PROVED, DenialReason.NONE, closest_encloser)


def not_proved(reason: DenialReason) -> DenialResult:
    return DenialResult(DenialStatus.NOT_PROVED, reason)


def insecure(reason: DenialReason, closest_encloser: str | None = None) -> DenialResult:
    return DenialResult(DenialStatus.INSECURE, reason, closest_encloser)
