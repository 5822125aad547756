"""Aggressive use of validated NSEC and NSEC3 records (RFC 8198), as Unbound and Knot do.

A validated NSEC says no name exists between its owner and its next name; a validated
NSEC3 says the same of hashes.  Kept (for their TTL) after the validator proved a
negative answer or a wildcard expansion with them, they answer other questions that
fall in the same ranges without asking anyone (RFC 8198 section 5):

- NXDOMAIN: the name is covered, and so is the wildcard at its closest encloser;
- NODATA: the name (or an empty non-terminal, or the wildcard that would answer it)
  exists without the type;
- a positive answer from a wildcard (section 5.3): the name is covered, the wildcard at
  its closest encloser exists, and its RRset (kept from an earlier expansion, with its
  RRSIG) is expanded to the name, with the NSEC/NSEC3 proving the name absent.

Only records of answers judged secure are kept (section 4); an NSEC3 opt-out span
proves nothing here (the proofs themselves return "insecure" for it, and only proved
results are synthesised), so an insecure delegation hiding in one is never denied.  A
range answers only while the NSEC, its RRSIG and the zone's SOA all live; the
synthesised records carry the time left (section 5.4: no longer than the SOA's TTL
and MINIMUM).  Each answer made here is checked again by the same pure proofs the
validator uses (:mod:`resolver.dnssec.denial`) on exactly the records it will carry.

Memory is bounded: at most ``max_records`` records over at most ``max_zones`` zones,
the least recently used zone dropped first (:class:`~resolver.cache.lru.LruDict`).  The
per-lookup cost is a few bisections, and for NSEC3 one hash per label between the name
and its zone, counted in the question's validation budget.
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Callable

from recordclass import dataobject

from resolver.cache.lru import LruDict
from resolver.cache.records import Security
from resolver.dnssec import (
    nsec3_hash,
    prove_nodata,
    prove_nxdomain,
    prove_wildcard_answer,
)
from resolver.dnssec.budget import ValidationBudget
from resolver.dnssec.canonical import (
    canonical_name_key,
    common_labels,
    strictly_below,
    suffix,
    wildcard_of,
)
from resolver.dnssec.nsec import covers
from resolver.iterate.classify import Classified, Kind
from resolver.wire import ResourceRecord, RRType
from resolver.wire.dnssec_rdata import NSEC, NSEC3, RRSIG
from resolver.wire.names import ancestors, is_subdomain, label_count, name_key, text_to_labels
from resolver.wire.rdata import CNAME, SOA

MAX_RECORDS = 20_000
MAX_ZONES = 1_000
Params = tuple[int, int, bytes]  # NSEC3 hash algorithm, iterations, salt


class _Kept(dataobject, fast_new=True):
    """One validated record (NSEC, NSEC3, SOA) or RRset, its RRSIGs, and until when."""

    records: list[ResourceRecord]
    sigs: list[ResourceRecord]
    expires: float


class _Zone:
    """What is kept of one zone: its NSEC ranges in canonical order, its NSEC3 ranges by
    parameters in hash order, its SOA, and its wildcards' RRsets."""

    def __init__(self, zone: str) -> None:
        self.zone = zone
        self.nsec_keys: list[tuple[bytes, ...]] = []
        self.nsec: dict[tuple[bytes, ...], _Kept] = {}
        self.nsec3: dict[Params, tuple[list[bytes], dict[bytes, _Kept]]] = {}
        self.soa: _Kept | None = None
        self.wildcards: dict[tuple[str, int], _Kept] = {}

    def size(self) -> int:
        return len(self.nsec) + sum(len(h) for h, _ in self.nsec3.values()) + len(self.wildcards)


class AggressiveNsec:
    """The kept ranges, by zone (see the module's description)."""

    def __init__(
        self,
        clock: Callable[[], float],
        max_records: int = MAX_RECORDS,
        max_zones: int = MAX_ZONES,
    ) -> None:
        self.clock = clock
        self.max_records = max_records
        self._zones: LruDict[str, _Zone] = LruDict(max_zones, on_evict=self._evicted)
        self.size = 0
        self.synthesised = 0  # answers made here (a counter for tests and stats)

    # ------------------------------------------------------------ learning

    def learn_denial(
        self,
        zone: str,
        proof: list[ResourceRecord],
        sigs: list[ResourceRecord],
        soa: ResourceRecord | None,
    ) -> None:
        """Keep the NSEC/NSEC3 records (and SOA) of a proof the validator found secure."""
        kept = self._zone(zone)
        before = kept.size()
        now = self.clock()
        if soa is not None and isinstance(soa.rdata, SOA) and name_key(soa.name) == kept.zone:
            life = min(soa.ttl, soa.rdata.minimum)
            kept.soa = _Kept([soa], _covering(sigs, soa), now + _signed_life(life, soa, sigs, now))
        for rr in proof:
            if not is_subdomain(rr.name, zone):
                continue
            own = _covering(sigs, rr)
            if not own:
                continue
            expires = now + _signed_life(rr.ttl, rr, sigs, now)
            if isinstance(rr.rdata, NSEC):
                key = canonical_name_key(rr.name)
                if key not in kept.nsec:
                    bisect.insort(kept.nsec_keys, key)
                kept.nsec[key] = _Kept([rr], own, expires)
            elif isinstance(rr.rdata, NSEC3) and not rr.rdata.flags & ~1:
                digest = owner_hash(rr.name, zone)
                if digest is None:
                    continue
                params = (rr.rdata.algorithm, rr.rdata.iterations, rr.rdata.salt)
                hashes, entries = kept.nsec3.setdefault(params, ([], {}))
                if digest not in entries:
                    bisect.insort(hashes, digest)
                entries[digest] = _Kept([rr], own, expires)
        self._grew(kept, before)

    def learn_wildcard(
        self, wildcard: str, rrset: list[ResourceRecord], sigs: list[ResourceRecord], ttl: int
    ) -> None:
        """Keep an RRset expanded from ``wildcard`` (validated, with its RRSIGs and its
        proof already learnt), for expanding it again (RFC 8198 section 5.3)."""
        rrsig = next((s.rdata for s in sigs if isinstance(s.rdata, RRSIG)), None)
        if rrsig is None:
            return
        zone = rrsig.signer
        kept = self._zone(zone)
        before = kept.size()
        records = [ResourceRecord(wildcard, rr.rrtype, rr.rrclass, rr.ttl, rr.rdata)
                   for rr in rrset]  # fmt: skip
        rrtype = rrset[0].rrtype
        own = [ResourceRecord(wildcard, s.rrtype, s.rrclass, s.ttl, s.rdata) for s in sigs
               if isinstance(s.rdata, RRSIG) and s.rdata.type_covered == rrtype]  # fmt: skip
        kept.wildcards[(name_key(wildcard), rrset[0].rrtype)] = _Kept(
            records, own, self.clock() + ttl)  # fmt: skip
        self._grew(kept, before)

    def _zone(self, zone: str) -> _Zone:
        key = name_key(zone)
        kept = self._zones.get(key)
        if kept is None:
            kept = _Zone(key)
            self._zones.put(key, kept)
        return kept

    def _grew(self, kept: _Zone, before: int) -> None:
        self.size += kept.size() - before
        while self.size > self.max_records and len(self._zones) > 1:
            oldest = next(iter(self._zones))
            if oldest == kept.zone:
                break
            dropped = self._zones.pop(oldest)
            if dropped is not None:
                self.size -= dropped.size()

    def _evicted(self, _key: str, zone: _Zone) -> None:
        self.size -= zone.size()

    def clear(self) -> None:
        self._zones.clear()
        self.size = 0

    def forget(self, zone: str) -> None:
        """Drop what is kept of ``zone`` and the zones below it (a negative trust anchor
        added, a flush)."""
        for key, kept in self._zones.items():
            if is_subdomain(key, zone):
                self._zones.pop(key)
                self.size -= kept.size()

    # ------------------------------------------------------------ answering

    def synthesise(
        self, name: str, qtype: int, budget: ValidationBudget | None = None
    ) -> Classified | None:
        """A secure answer for (name, qtype) made from kept ranges, or None."""
        if qtype in (RRType.ANY, RRType.RRSIG, RRType.NSEC, RRType.NSEC3):
            return None
        now = self.clock()
        for zone_name in ancestors(name):
            kept = self._zones.peek(name_key(zone_name))
            if kept is None:
                continue
            step = _Nsec(kept, name, qtype, now).answer() if kept.nsec else None
            for params in list(kept.nsec3) if step is None else ():
                step = _Nsec3(kept, params, name, qtype, now, budget).answer()
                if step is not None:
                    break
            if step is None:
                return None
            if step.kind in (Kind.NXDOMAIN, Kind.NODATA):
                soa = kept.soa if kept.soa is not None and kept.soa.expires > now else None
                if soa is None:
                    return None  # a negative answer carries the zone's SOA (RFC 2308)
                step.soa = _aged(soa.records, soa.expires, now)[0]
                step.sigs = [*(step.sigs or []), *_aged(soa.sigs, soa.expires, now)]
            self.synthesised += 1
            return step
        return None


class _Finder:
    """Shared by the NSEC and NSEC3 searches: the kept zone, the question, the time."""

    def __init__(self, kept: _Zone, name: str, qtype: int, now: float) -> None:
        self.kept, self.name, self.qtype, self.now = kept, name, qtype, now
        self.zone = kept.zone

    def negative(self, kind: int, used: list[_Kept]) -> Classified:
        records, sigs = _flatten(used, self.now)
        step = Classified(kind, [], self.name)
        step.proof = records + sigs
        step.sigs = sigs
        step.security = Security.SECURE  # made only of validated records
        return step

    def expanded(self, proof: list[_Kept], wildcard: str) -> Classified | None:
        """The wildcard's kept RRset (the type asked, else a CNAME) expanded to the name."""
        for rrtype in (self.qtype, RRType.CNAME):
            source = self.kept.wildcards.get((name_key(wildcard), rrtype))
            if source is None or source.expires <= self.now:
                continue
            rrsig = next((s.rdata for s in source.sigs if isinstance(s.rdata, RRSIG)), None)
            records, sigs = _flatten(proof, self.now)
            if (
                rrsig is None
                or not prove_wildcard_answer(self.name, rrsig.labels, records, self.zone).proved
            ):
                return None
            left = int(source.expires - self.now)
            data = [ResourceRecord(self.name, r.rrtype, r.rrclass, min(r.ttl, left), r.rdata)
                    for r in source.records]  # fmt: skip
            own = [ResourceRecord(self.name, s.rrtype, s.rrclass, min(s.ttl, left), s.rdata)
                   for s in source.sigs]  # fmt: skip
            if rrtype == RRType.CNAME and self.qtype != RRType.CNAME:
                target = data[0].rdata
                assert isinstance(target, CNAME)
                step = Classified(Kind.CNAME, data, target.target)
            else:
                step = Classified(Kind.ANSWER, data, self.name)
            step.sigs = own + sigs
            step.proof = records + sigs
            step.security = Security.SECURE
            return step
        return None


class _Nsec(_Finder):
    def entry(self, name: str) -> _Kept | None:
        """The live NSEC owned by the greatest name at or before ``name``."""
        keys = self.kept.nsec_keys
        index = bisect.bisect_right(keys, canonical_name_key(name)) - 1
        if index < 0:
            index = len(keys) - 1  # the last NSEC wraps round to the apex
        found = self.kept.nsec.get(keys[index]) if keys else None
        return found if found is not None and found.expires > self.now else None

    def answer(self) -> Classified | None:
        first = self.entry(self.name)
        if first is None:
            return None
        nsec = first.records[0]
        assert isinstance(nsec.rdata, NSEC)
        if name_key(nsec.name) == name_key(self.name) or not covers(
            nsec.name, nsec.rdata.next_name, self.name
        ):
            return self._nodata([first])
        if strictly_below(nsec.rdata.next_name, self.name):  # an empty non-terminal
            return self._nodata([first])
        shared = max(common_labels(self.name, nsec.name),
                     common_labels(self.name, nsec.rdata.next_name))  # fmt: skip
        encloser = suffix(self.name, shared)
        wildcard = wildcard_of(encloser)
        second = self.entry(wildcard)
        if second is None:
            return None
        used = [first] if second is first else [first, second]
        records, _ = _flatten(used, self.now)
        if prove_nxdomain(self.name, records, self.zone).proved:
            return self.negative(Kind.NXDOMAIN, used)
        if name_key(second.records[0].name) != name_key(wildcard):
            return self._nodata([first])  # perhaps an empty non-terminal
        return self.expanded([first], wildcard) or self._nodata(used)

    def _nodata(self, used: list[_Kept]) -> Classified | None:
        records, _ = _flatten(used, self.now)
        if prove_nodata(self.name, self.qtype, records, self.zone).proved:
            return self.negative(Kind.NODATA, used)
        return None


class _Nsec3(_Finder):
    def __init__(
        self,
        kept: _Zone,
        params: Params,
        name: str,
        qtype: int,
        now: float,
        budget: ValidationBudget | None,
    ) -> None:
        super().__init__(kept, name, qtype, now)
        self.algorithm, self.iterations, self.salt = params
        self.hashes, self.entries = kept.nsec3[params]
        self.budget = budget

    def digest(self, name: str) -> bytes | None:
        if self.budget is not None and not self.budget.spend_hash():
            return None
        return nsec3_hash(name, self.salt, self.iterations, self.algorithm)

    def matching(self, digest: bytes) -> _Kept | None:
        found = self.entries.get(digest)
        return found if found is not None and found.expires > self.now else None

    def covering(self, digest: bytes) -> _Kept | None:
        index = bisect.bisect_left(self.hashes, digest) - 1
        found = self.entries.get(self.hashes[index]) if self.hashes else None
        return found if found is not None and found.expires > self.now else None

    def answer(self) -> Classified | None:
        if self.algorithm != 1:
            return None
        return self.from_wildcard() or self.from_encloser()

    def from_wildcard(self) -> Classified | None:
        """A kept wildcard above the name whose next closer name is covered: the name does
        not exist and the wildcard's parent is its closest encloser (RFC 5155 8.8)."""
        depth = label_count(self.name)
        wildcards = sorted({w for w, rrtype in self.kept.wildcards
                            if rrtype in (self.qtype, RRType.CNAME)},
                           key=label_count, reverse=True)  # fmt: skip
        for wildcard in wildcards:
            encloser = suffix(wildcard, label_count(wildcard) - 1)
            if label_count(encloser) >= depth or not is_subdomain(self.name, encloser):
                continue
            digest = self.digest(suffix(self.name, label_count(encloser) + 1))
            cover = self.covering(digest) if digest is not None else None
            if cover is not None:
                return self.expanded([cover], wildcard)
        return None

    def from_encloser(self) -> Classified | None:
        """NXDOMAIN or NODATA from the closest encloser proof (RFC 5155 8.4 to 8.7)."""
        candidate, below = self.name, ""
        depth = label_count(self.zone)
        while label_count(candidate) >= depth:
            digest = self.digest(candidate)
            if digest is None:
                return None
            match = self.matching(digest)
            if match is not None:
                break
            if label_count(candidate) == depth:
                return None
            candidate, below = suffix(candidate, label_count(candidate) - 1), candidate
        else:
            return None
        if not below:  # the name itself exists (or is an empty non-terminal)
            return self._proved_nodata([match])
        wildcard = wildcard_of(candidate)
        next_digest, wild_digest = self.digest(below), self.digest(wildcard)
        if next_digest is None or wild_digest is None:
            return None
        next_cover = self.covering(next_digest)
        if next_cover is None:
            return None
        wild_match = self.matching(wild_digest)
        if wild_match is None:
            wild_cover = self.covering(wild_digest)
            if wild_cover is None:
                return None
            used = _distinct([match, next_cover, wild_cover])
            records, _ = _flatten(used, self.now)
            if prove_nxdomain(self.name, records, self.zone).proved:
                return self.negative(Kind.NXDOMAIN, used)
            return None
        return self.expanded([next_cover], wildcard) or self._proved_nodata(
            _distinct([match, next_cover, wild_match]))  # fmt: skip

    def _proved_nodata(self, used: list[_Kept]) -> Classified | None:
        records, _ = _flatten(used, self.now)
        if prove_nodata(self.name, self.qtype, records, self.zone).proved:
            return self.negative(Kind.NODATA, used)
        return None


# ---------------------------------------------------------------- helpers


def owner_hash(owner: str, zone: str) -> bytes | None:
    """The hash an NSEC3's owner name holds, when it is ``<base32hex>.zone``."""
    labels = text_to_labels(owner)
    if len(labels) != label_count(zone) + 1 or not is_subdomain(owner, zone):
        return None
    text = labels[0].upper()
    try:
        digest = base64.b32hexdecode(text + b"=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return None
    return digest if len(digest) == 20 else None


def _covering(sigs: list[ResourceRecord], rr: ResourceRecord) -> list[ResourceRecord]:
    """The RRSIGs over ``rr``'s RRset, each once (a reply's proof repeats its sigs)."""
    owner = name_key(rr.name)
    found: dict[RRSIG, ResourceRecord] = {}
    for s in sigs:
        rdata = s.rdata
        if (
            isinstance(rdata, RRSIG)
            and rdata.type_covered == rr.rrtype
            and (name_key(s.name) == owner)
        ):
            found.setdefault(rdata, s)
    return list(found.values())


def _signed_life(ttl: int, rr: ResourceRecord, sigs: list[ResourceRecord], now: float) -> int:
    """How long a validated record may be used: its TTL, its RRSIG's original TTL and the
    time left before the RRSIG expires (RFC 4035 section 5.3.3)."""
    life = ttl
    for sig in _covering(sigs, rr):
        assert isinstance(sig.rdata, RRSIG)
        left = (sig.rdata.expiration - int(now)) % (1 << 32)
        life = min(life, sig.rdata.original_ttl, sig.ttl, left)
    return max(life, 0)


def _aged(records: list[ResourceRecord], expires: float, now: float) -> list[ResourceRecord]:
    left = max(int(expires - now), 0)
    return [ResourceRecord(rr.name, rr.rrtype, rr.rrclass, min(rr.ttl, left), rr.rdata)
            for rr in records]  # fmt: skip


def _flatten(used: list[_Kept], now: float) -> tuple[list[ResourceRecord], list[ResourceRecord]]:
    records: list[ResourceRecord] = []
    sigs: list[ResourceRecord] = []
    for kept in used:
        records += _aged(kept.records, kept.expires, now)
        sigs += _aged(kept.sigs, kept.expires, now)
    return records, sigs


def _distinct(used: list[_Kept]) -> list[_Kept]:
    out: list[_Kept] = []
    for kept in used:
        if not any(kept is seen for seen in out):
            out.append(kept)
    return out
