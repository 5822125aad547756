"""Expected results of a validating resolver on the signed lab (``NsdLab(signed=True)``):
every lab case of :mod:`resolver.lab.cases`, now secure, and the DNSSEC cases of
:func:`resolver.lab.signing.lab_signing` (broken zones, an insecure delegation, NSEC3,
every algorithm), each with its security and, for a bogus one, its RFC 8914 code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from resolver.lab.cases import CASES, NONE, Answer, LabCase
from resolver.lab.signing import ALGORITHM_ZONES, www_address


def _a(*records: tuple[str, str, str]) -> Answer:
    return frozenset(records)


Security = Literal["secure", "insecure", "bogus"]
"""``secure`` (AD set for DO or AD clients), ``insecure`` (never AD) or ``bogus`` (SERVFAIL)."""


@dataclass(frozen=True)
class SignedCase(LabCase):
    """A question on the signed lab: what a validating resolver returns and why.

    ``security``    secure, insecure or bogus;
    ``info_code``   for a bogus answer, the RFC 8914 INFO-CODE that says why;
    ``unchecked``   for a bogus answer, what a CD=1 client gets (the data unvalidated).
    """

    security: Security = "secure"
    info_code: int | None = None
    unchecked: Answer = NONE


def _signed(case: LabCase) -> SignedCase:
    """A lab case on the signed lab: the same answer, secure (the loop stays SERVFAIL)."""
    security: Security = "secure" if case.rcode != "SERVFAIL" else "insecure"
    return SignedCase(case.id, case.qname, case.qtype, case.rcode, case.answer,
                      case.note, security)  # fmt: skip


def _bogus(zone: str, info_code: int, note: str) -> SignedCase:
    qname, address = f"www.{zone}", www_address(zone)
    return SignedCase(
        zone.split(".")[0], qname, "A", "SERVFAIL", NONE, note, "bogus", info_code,
        _a((qname, "A", address)),
    )  # fmt: skip


# RFC 8914 section 4 INFO-CODEs
DNSSEC_BOGUS, SIGNATURE_EXPIRED, SIGNATURE_NOT_YET_VALID, DNSKEY_MISSING = 6, 7, 8, 9
RRSIGS_MISSING = 10

SIGNED_CASES: list[SignedCase] = [
    *(_signed(case) for case in CASES),
    _bogus(
        "expired.lab.",
        SIGNATURE_EXPIRED,
        "Every signature of expired.lab expired a day ago; its DS at lab. is right.",
    ),
    _bogus(
        "notyet.lab.",
        SIGNATURE_NOT_YET_VALID,
        "Every signature of notyet.lab becomes valid in ten days.",
    ),
    _bogus(
        "nokey.lab.",
        DNSKEY_MISSING,
        "lab.'s DS for nokey.lab names a KSK that nokey.lab does not publish.",
    ),
    _bogus(
        "nosigs.lab.",
        DNSKEY_MISSING,
        "lab. has a DS for nosigs.lab, which is served unsigned (no DNSKEY, no RRSIG).",
    ),
    _bogus(
        "badsig.lab.",
        DNSSEC_BOGUS,
        "The signature over www.badsig.lab A has one byte flipped.",
    ),
    SignedCase(
        "badsig-aaaa",
        "www.badsig.lab.",
        "AAAA",
        "NOERROR",
        _a(("www.badsig.lab.", "AAAA", "2001:db8::a4")),
        "Only the A RRset's signature is wrong: the AAAA beside it is secure.",
    ),
    SignedCase(
        "insecure",
        "www.insecure.lab.",
        "A",
        "NOERROR",
        _a(("www.insecure.lab.", "A", www_address("insecure.lab."))),
        "An unsigned zone with no DS at lab. (proved by lab.'s NSEC): insecure.",
        "insecure",
    ),
    SignedCase(
        "insecure-nxdomain",
        "nothing.insecure.lab.",
        "A",
        "NXDOMAIN",
        NONE,
        "NXDOMAIN from the unsigned zone: insecure, no proof.",
        "insecure",
    ),
    SignedCase(
        "insecure-no-ds",
        "insecure.lab.",
        "DS",
        "NOERROR",
        NONE,
        "lab.'s NSEC proves that insecure.lab has no DS: a secure NODATA.",
    ),
    SignedCase(
        "nsec3",
        "www.nsec3.lab.",
        "A",
        "NOERROR",
        _a(("www.nsec3.lab.", "A", www_address("nsec3.lab."))),
        "A zone signed with NSEC3.",
    ),
    SignedCase(
        "nsec3-nxdomain",
        "nothing.nsec3.lab.",
        "A",
        "NXDOMAIN",
        NONE,
        "NXDOMAIN proved by NSEC3 (closest encloser, next closer, no wildcard).",
    ),
    SignedCase(
        "nsec3-nodata",
        "www.nsec3.lab.",
        "MX",
        "NOERROR",
        NONE,
        "NODATA proved by the NSEC3 matching www.nsec3.lab.",
    ),
    SignedCase(
        "nsec3-ent",
        "wild.nsec3.lab.",
        "TXT",
        "NOERROR",
        NONE,
        "An empty non-terminal under NSEC3: NODATA.",
    ),
    SignedCase(
        "nsec3-wildcard",
        "a.wild.nsec3.lab.",
        "TXT",
        "NOERROR",
        _a(("a.wild.nsec3.lab.", "TXT", '"wildcard of nsec3.lab."')),
        "Expanded from *.wild.nsec3.lab: the NSEC3 proving a.wild does not exist.",
    ),
    SignedCase(
        "nsec3-cname",
        "alias.nsec3.lab.",
        "A",
        "NOERROR",
        _a(
            ("alias.nsec3.lab.", "CNAME", "www.nsec3.lab."),
            ("www.nsec3.lab.", "A", www_address("nsec3.lab.")),
        ),
        "A CNAME and its target, both signed, NSEC3 zone.",
    ),
]


def _www(origin: str, case_id: str, note: str, security: Security = "secure") -> SignedCase:
    qname = f"www.{origin}"
    answer = _a((qname, "A", www_address(origin)))
    return SignedCase(case_id, qname, "A", "NOERROR", answer, note, security)


SIGNED_CASES += [
    *(
        _www(origin, f"alg-{algorithm.lower()}", f"A zone signed with {algorithm} keys.")
        for origin, algorithm in ALGORITHM_ZONES.items()
    ),
    _www("nsec3-iter.lab.", "nsec3-iter", "NSEC3 with 200 iterations: answers stay secure."),
    SignedCase(
        "nsec3-iter-nxdomain",
        "nothing.nsec3-iter.lab.",
        "A",
        "NXDOMAIN",
        NONE,
        "NSEC3 with 200 iterations, above RFC 9276's limit of 150: the proof is insecure.",
        "insecure",
    ),
    _www("optout.lab.", "optout", "An NSEC3 opt-out zone's own data is secure."),
    _www(
        "child.optout.lab.",
        "optout-child",
        "An unsigned child of an NSEC3 opt-out zone: the NSEC3 matching it proves it has "
        "no DS (ldns keeps the delegation in the chain), so it is insecure.",
        "insecure",
    ),
    SignedCase(
        "optout-nxdomain",
        "nothing.optout.lab.",
        "A",
        "NXDOMAIN",
        NONE,
        "The NSEC3 covering the next closer name has opt-out set: an unsigned delegation "
        "could hide there (RFC 5155 section 6), so the NXDOMAIN is insecure.",
        "insecure",
    ),
]

SIGNED_CASES_BY_ID: dict[str, SignedCase] = {case.id: case for case in SIGNED_CASES}
assert len(SIGNED_CASES_BY_ID) == len(SIGNED_CASES), "duplicate SignedCase id"
