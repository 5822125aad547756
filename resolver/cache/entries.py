"""What the record cache keeps and what its lookups return: RRsets with their trust and
DNSSEC state, negative answers (see :mod:`resolver.cache.records`)."""

from __future__ import annotations

from enum import IntEnum

from recordclass import dataobject

from resolver.wire import CLASS_IN, ResourceRecord
from resolver.wire.rdata import Rdata

RRSIG_TYPE = 46  # RFC 4034 section 3
NXDOMAIN_TYPE = 0  # the type slot of an NXDOMAIN entry: it covers every type


def remaining_ttl(expires: float, now: float) -> int:
    """Seconds left until ``expires``, counted down to whole seconds, never negative."""
    return max(int(expires - now), 0)


class Trust(IntEnum):
    """RFC 2181 section 5.4.1 ranking, lowest first."""

    GLUE = 1  # additional section of any reply
    REFERRAL = 2  # authority section of a non-authoritative reply (a delegation)
    ANSWER = 3  # answer section of a non-authoritative reply
    AUTHORITY = 4  # authority section of an authoritative reply
    AUTHORITATIVE = 5  # answer section of an authoritative reply


class Security(IntEnum):
    """What DNSSEC validation made of cached data (RFC 4033 section 5), kept with it."""

    UNCHECKED = 0  # not validated (validation off, or not judged yet: say, a referral's DS)
    INSECURE = 1  # provably unsigned (an insecure delegation above it), or no trust anchor
    SECURE = 2  # validated from a trust anchor
    BOGUS = 3  # should have validated and did not: kept briefly, answered with SERVFAIL


class StoredRRset(dataobject, fast_new=True):
    """What the cache keeps per RRset, kept small: it is the bulk of a resolver's memory.

    The owner name and type are in the dictionary key already, so ``owner`` is
    only kept when its case differs from the key's (folded) form.  ``data`` is the
    single Rdata of a one-record set (the common case: no tuple), or a tuple.
    ``sigs`` are the RRSIG rdata that came with it (for DO=1 clients and for
    validating later), None for unsigned data.
    """

    owner: str | None
    data: Rdata | tuple[Rdata, ...]
    expires: float
    trust: int
    security: int = Security.UNCHECKED
    sigs: tuple[Rdata, ...] | None = None
    # An RRset expanded from a wildcard keeps the NSEC/NSEC3 proof that the name itself
    # does not exist (RFC 4035 section 3.1.3.3): DO=1 clients get it with the answer.
    proof: tuple[ResourceRecord, ...] | None = None


class CachedRRset(dataobject, fast_new=True):
    """A cached RRset as lookups return it: owner (case kept), type, data, expiry, trust,
    validation state and signatures."""

    name: str
    rrtype: int
    data: Rdata | tuple[Rdata, ...]
    expires: float
    trust: int
    security: int = Security.UNCHECKED
    sigs: tuple[Rdata, ...] | None = None
    proof: tuple[ResourceRecord, ...] | None = None

    @property
    def rdatas(self) -> tuple[Rdata, ...]:
        data = self.data
        return data if isinstance(data, tuple) else (data,)

    def records(self, now: float) -> list[ResourceRecord]:
        """The RRset with its TTL counted down to ``now``."""
        ttl = remaining_ttl(self.expires, now)
        return [ResourceRecord(self.name, self.rrtype, CLASS_IN, ttl, r) for r in self.rdatas]

    def signature_records(self, now: float) -> list[ResourceRecord]:
        """Its RRSIG records, with the RRset's TTL counted down to ``now``."""
        if not self.sigs:
            return []
        ttl = remaining_ttl(self.expires, now)
        return [ResourceRecord(self.name, RRSIG_TYPE, CLASS_IN, ttl, r) for r in self.sigs]


class CachedNegative(dataobject, fast_new=True):
    """An NXDOMAIN (rrtype 0) or NODATA answer, with the SOA that proved it and, in a
    signed zone, the NSEC or NSEC3 records (and RRSIGs) that prove it (RFC 4035)."""

    name: str
    rrtype: int
    soa: ResourceRecord | None
    expires: float
    security: int = Security.UNCHECKED
    proof: tuple[ResourceRecord, ...] = ()

    @property
    def nxdomain(self) -> bool:
        return self.rrtype == NXDOMAIN_TYPE

    def soa_record(self, now: float) -> list[ResourceRecord]:
        if self.soa is None:
            return []
        ttl = remaining_ttl(self.expires, now)
        soa = self.soa
        return [ResourceRecord(soa.name, soa.rrtype, soa.rrclass, ttl, soa.rdata)]

    def proof_records(self, now: float) -> list[ResourceRecord]:
        """The proof's records, TTLs counted down with the entry."""
        ttl = remaining_ttl(self.expires, now)
        return [ResourceRecord(rr.name, rr.rrtype, rr.rrclass, min(rr.ttl, ttl), rr.rdata)
                for rr in self.proof]  # fmt: skip


CacheEntry = StoredRRset | CachedNegative
