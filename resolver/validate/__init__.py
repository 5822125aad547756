"""DNSSEC validation as the engine's judge (RFC 4033-4035, 5155, 6840; RFC 8198; RFC 8509).

The engine's lookups know validation only through the
:class:`~resolver.iterate.judge.Judge` protocol; this folder implements it, above the
engine, and is given to it by whoever builds one (:func:`validator`):

- :mod:`.validator`: judging a classified reply secure, insecure or bogus, or saying
  which DNSKEY or DS RRset it needs first;
- :mod:`.trust`: the chain of trust zone by zone, and negative trust anchors (RFC 7646);
- :mod:`.learn`: what a DS or DNSKEY sub-lookup teaches the chain of trust;
- :mod:`.aggressive`: the index of validated NSEC/NSEC3 ranges that answers without
  asking (RFC 8198);
- :mod:`.sentinel`: RFC 8509's key sentinel, the judge's last word on an answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from resolver.dnssec import TrustAnchors
from resolver.validate.trust import TrustCache
from resolver.validate.validator import Validator

__all__ = ["TrustCache", "Validator", "validator"]


def validator(
    anchors: TrustAnchors, clock: Callable[[], float] = time.time, aggressive: bool = True
) -> Validator:
    """The judge of an engine validating from ``anchors`` (``clock``: the engine's)."""
    return Validator(TrustCache(anchors, clock), clock, aggressive)
