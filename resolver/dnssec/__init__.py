"""DNSSEC building blocks: canonical form, keys, signatures, denial of existence, anchors.

Owns what a validator needs, as pure functions over the wire layer's values
(lists of :class:`resolver.wire.ResourceRecord`, names as absolute text), with
``now`` always passed in: no I/O, no clock, no global state beyond bounded
caches of pure results (parsed public keys, NSEC3 hashes).

- :mod:`.canonical`: canonical names, rdata and RRset order (RFC 4034 section 6)
  and the data an RRSIG signs.
- :mod:`.keys`: key tags (RFC 4034 appendix B), DS digests (RFC 4034, 4509,
  6605) and the signature algorithms of RFC 8624 through ``cryptography``.
- :mod:`.verify`: RRSIG checks and verification (RFC 4035 section 5.3), and
  DNSKEY RRsets authenticated from DS records or trust anchors (section 5.2).
- :mod:`.denial`, :mod:`.nsec`, :mod:`.nsec3`: proofs of non-existence with
  NSEC (RFC 4035 section 5.4) and NSEC3 (RFC 5155 section 8, RFC 9276 limits).
- :mod:`.anchors`: the root KSKs shipped with the package and trust anchor files.
- :mod:`.budget`: the signature checks and NSEC3 hashes one question may cost
  (KeyTrap, CVE-2023-50387 and 50868).
- :mod:`.autotrust`: RFC 5011 key states, hold-downs and their state file.

It may import only :mod:`resolver.wire` and ``cryptography`` (the import-linter
layers put it between ``iterate`` and ``cache | net``).  Results are typed
(enums and small frozen classes), never strings; the engine decides what a
result means for the answer (secure, insecure, bogus).
"""

from resolver.dnssec.anchors import (
    ROOT_ANCHORS_TEXT,
    TrustAnchorError,
    TrustAnchors,
    load_trust_anchors,
    parse_trust_anchors,
    root_trust_anchors,
)
from resolver.dnssec.canonical import (
    canonical_name_key,
    canonical_rdata,
    canonical_rrset,
    signed_data,
)
from resolver.dnssec.denial import (
    DenialReason,
    DenialResult,
    DenialStatus,
    prove_no_ds,
    prove_nodata,
    prove_nxdomain,
    prove_wildcard_answer,
)
from resolver.dnssec.keys import (
    SUPPORTED_ALGORITHMS,
    SUPPORTED_DIGESTS,
    ds_digest,
    ds_matches,
    key_tag,
)
from resolver.dnssec.nsec3 import MAX_ITERATIONS, nsec3_hash
from resolver.dnssec.verify import (
    KeyStatus,
    KeyVerdict,
    SigStatus,
    Verification,
    validate_dnskeys,
    verify_rrset,
    verify_rrsig,
)

__all__ = [
    "MAX_ITERATIONS",
    "ROOT_ANCHORS_TEXT",
    "SUPPORTED_ALGORITHMS",
    "SUPPORTED_DIGESTS",
    "DenialReason",
    "DenialResult",
    "DenialStatus",
    "KeyStatus",
    "KeyVerdict",
    "SigStatus",
    "TrustAnchorError",
    "TrustAnchors",
    "Verification",
    "canonical_name_key",
    "canonical_rdata",
    "canonical_rrset",
    "ds_digest",
    "ds_matches",
    "key_tag",
    "load_trust_anchors",
    "nsec3_hash",
    "parse_trust_anchors",
    "prove_no_ds",
    "prove_nodata",
    "prove_nxdomain",
    "prove_wildcard_answer",
    "root_trust_anchors",
    "signed_data",
    "validate_dnskeys",
    "verify_rrset",
    "verify_rrsig",
]
