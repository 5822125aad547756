"""RFC 8509 key sentinels: which root keys does this resolver trust?"""

from __future__ import annotations

from resolver.cache.records import Security
from resolver.dnssec import TrustAnchors, key_tag
from resolver.iterate.answer import Answer, FailureKind, servfail
from resolver.wire import RRType
from resolver.wire.dnssec_rdata import DNSKEY, DS

SENTINEL_IS_TA = "root-key-sentinel-is-ta-"
SENTINEL_NOT_TA = "root-key-sentinel-not-ta-"


def sentinel(qname: str, qtype: int, answer: Answer, anchors: TrustAnchors) -> Answer:
    """RFC 8509: a validated A or AAAA answer for ``root-key-sentinel-is-ta-NNNNN.<...>`` is
    SERVFAIL when NNNNN is not the key tag of a root trust anchor, and one for
    ``...-not-ta-NNNNN`` when it is: so a client can tell which root keys its resolver
    trusts (section 3.2; other types are answered as they are)."""
    label = qname.split(".", 1)[0].lower()
    if (
        qtype not in (RRType.A, RRType.AAAA)
        or answer.security != Security.SECURE
        or not label.startswith("root-key-sentinel-")
    ):
        return answer
    for prefix, wanted in ((SENTINEL_IS_TA, True), (SENTINEL_NOT_TA, False)):
        tag = label[len(prefix) :]
        known = label.startswith(prefix) and len(tag) == 5 and tag.isdigit()
        if known and (int(tag) in _root_key_tags(anchors)) != wanted:
            return servfail(FailureKind.DNSSEC_BOGUS, f"key sentinel: {label}")
    return answer


def _root_key_tags(anchors: TrustAnchors) -> set[int]:
    tags = set()
    for rr in anchors.for_zone("."):
        rdata = rr.rdata
        if isinstance(rdata, DS):
            tags.add(rdata.key_tag)
        elif isinstance(rdata, DNSKEY):
            tags.add(key_tag(rdata))
    return tags
