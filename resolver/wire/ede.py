"""Extended DNS Errors (RFC 8914): the INFO-CODEs we send, and the EDNS option they travel in.

Every floor that says why a question failed names its code here (the validator, the
engine's failures, the response policy, the service's refusals), so a code is an
:class:`EdeCode`, never a bare number.
"""

from __future__ import annotations

from enum import IntEnum

EDE_OPTION = 15  # RFC 8914 section 2: the OPTION-CODE of an Extended DNS Error
MAX_EXTRA_TEXT = 200  # octets of EXTRA-TEXT at most: the reason, not an essay


class EdeCode(IntEnum):
    """The INFO-CODEs we send (RFC 8914 section 4; IANA "Extended DNS Error Codes")."""

    OTHER = 0  # 4.1: none of the others fits; the EXTRA-TEXT says what happened
    STALE_ANSWER = 3  # 4.4: answered from expired data (serve-stale, RFC 8767)
    DNSSEC_BOGUS = 6  # 4.7: validation failed (the validator may say more precisely: 7-12)
    SIGNATURE_EXPIRED = 7  # 4.8
    SIGNATURE_NOT_YET_VALID = 8  # 4.9
    DNSKEY_MISSING = 9  # 4.10: no DNSKEY matches the DS or the RRSIGs
    RRSIGS_MISSING = 10  # 4.11
    NSEC_MISSING = 12  # 4.13: no proof of non-existence where one was needed
    NOT_READY = 14  # 4.15: the server cannot answer now (it is not fully functional)
    BLOCKED = 15  # 4.16: blocked by the operator's policy (response policy)
    CENSORED = 16  # 4.17: blocked because of an external requirement (response policy)
    FILTERED = 17  # 4.18: filtered as the client asked (response policy)
    PROHIBITED = 18  # 4.19: the client is not allowed (here: outside --allow)
    NOT_AUTHORITATIVE = 20  # 4.21: RD=0 and no answer we could give without recursion
    NOT_SUPPORTED = 21  # 4.22: the query asks for something we do not do
    NO_REACHABLE_AUTHORITY = 22  # 4.23: no authoritative server could be reached
    NETWORK_ERROR = 23  # 4.24: an unrecoverable error talking to other servers


ExtendedError = tuple[EdeCode, str]  # (INFO-CODE, EXTRA-TEXT)


def ede_option(error: ExtendedError) -> tuple[int, bytes]:
    """The EDNS option (RFC 8914 section 2): INFO-CODE, then EXTRA-TEXT in UTF-8 (no NUL)."""
    code, text = error
    extra = text.encode("utf-8")[:MAX_EXTRA_TEXT].decode("utf-8", "ignore").encode("utf-8")
    return EDE_OPTION, int(code).to_bytes(2, "big") + extra
