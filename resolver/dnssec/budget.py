"""How much cryptographic work one client question may make the validator do.

KeyTrap (CVE-2023-50387) and the NSEC3 closest-encloser attack (CVE-2023-50868) need no
broken signature, only a signed zone built to make a validator that follows RFC 4035 to
the letter try every key with every signature, or hash every label with every NSEC3
chain.  The fixes the validators published in February 2024 bound that work, and so does
this one, with the same kind of numbers:

- at most :data:`MAX_SIGNATURES_PER_RRSET` signature checks per RRset (Unbound 1.19.1:
  ``MAX_VALIDATE_RRSIGS`` 8); a legitimate RRset validates at its first good signature;
- at most :data:`MAX_SIGNATURE_CHECKS` signature checks per client question, its chain
  of trust and every retry included (Knot Resolver 5.7.1 gives each query a budget of 32
  and does not retry once it is spent; BIND 9.18.24 bounds the validations of a fetch
  likewise);
- at most :data:`MAX_NSEC3_RECORDS` NSEC3 records in one proof (Knot Resolver 5.7.1: more
  than 8 is bogus) and :data:`MAX_NSEC3_HASHES` NSEC3 hashes per question (Unbound 1.19.1
  ``MAX_NSEC3_CALCULATIONS`` 8 per message before it suspends the query); RFC 9276's
  iteration limit (150) bounds the cost of one hash.

A question that runs out is bogus (SERVFAIL, Extended DNS Error 6 "DNSSEC Bogus" with
the reason), at once and without asking the zone's other servers: the attack is in the
zone, and asking again pays again.  The counters are plain integers: the budget is made
once per question and costs nothing on a cache hit.
"""

from __future__ import annotations

MAX_SIGNATURES_PER_RRSET = 8
MAX_SIGNATURE_CHECKS = 128
MAX_NSEC3_RECORDS = 8
MAX_NSEC3_HASHES = 128


class ValidationBudget:
    """The signature checks and NSEC3 hashes one question may still spend."""

    __slots__ = ("exhausted", "hashes", "signatures")

    def __init__(
        self, signatures: int = MAX_SIGNATURE_CHECKS, hashes: int = MAX_NSEC3_HASHES
    ) -> None:
        self.signatures = signatures
        self.hashes = hashes
        self.exhausted = ""  # what ran out, once something did

    def spend_signature(self) -> bool:
        """One signature check; False (and nothing spent) when none is left."""
        if self.signatures <= 0:
            self.exhausted = f"more than {MAX_SIGNATURE_CHECKS} signature checks"
            return False
        self.signatures -= 1
        return True

    def spend_hash(self) -> bool:
        """One NSEC3 hash; False (and nothing spent) when none is left."""
        if self.hashes <= 0:
            self.exhausted = f"more than {MAX_NSEC3_HASHES} NSEC3 hashes"
            return False
        self.hashes -= 1
        return True
