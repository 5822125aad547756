"""RRSIG verification and DNSKEY RRsets, with signatures made by dnspython."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dns.dnssec
import dns.name
import dns.rdata
import dns.rrset
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from resolver.dnssec import (
    KeyStatus,
    SigStatus,
    key_tag,
    parse_trust_anchors,
    validate_dnskeys,
    verify_rrset,
    verify_rrsig,
)
from resolver.dnssec.verify import validity
from resolver.wire import ResourceRecord
from resolver.wire.dnssec_rdata import DNSKEY, DS, RRSIG
from resolver.wire.rdata import parse_rdata

IN = 1
NOW = 1_700_000_000
ALLOW_ALL = dns.dnssec.allow_all_policy

PRIVATE_KEYS: dict[int, Callable[[], Any]] = {
    5: lambda: rsa.generate_private_key(65537, 1024),
    7: lambda: rsa.generate_private_key(65537, 1024),
    8: lambda: rsa.generate_private_key(65537, 1024),
    10: lambda: rsa.generate_private_key(65537, 1024),
    13: lambda: ec.generate_private_key(ec.SECP256R1()),
    14: lambda: ec.generate_private_key(ec.SECP384R1()),
    15: ed25519.Ed25519PrivateKey.generate,
    16: ed448.Ed448PrivateKey.generate,
}


def ours(rrset: dns.rrset.RRset) -> list[ResourceRecord]:
    """dnspython's RRset as the engine holds one: records parsed from the wire."""
    records = []
    for rdata in rrset:
        wire = rdata.to_wire()
        parsed = parse_rdata(rrset.rdtype, wire, 0, len(wire))
        records.append(ResourceRecord(rrset.name.to_text(), rrset.rdtype, IN, rrset.ttl, parsed))
    return records


def rrset(owner: str, kind: str, *values: str, ttl: int = 300) -> dns.rrset.RRset:
    return dns.rrset.from_text(owner, ttl, "IN", kind, *values)


@dataclass
class Signer:
    """A zone key made with cryptography, signing through dnspython."""

    zone: str
    algorithm: int
    flags: int = 257

    def __post_init__(self) -> None:
        self.private = PRIVATE_KEYS[self.algorithm]()
        self.dnskey = dns.dnssec.make_dnskey(
            self.private.public_key(), self.algorithm, flags=self.flags
        )

    def keys(self, owner: str | None = None) -> list[ResourceRecord]:
        return ours(dns.rrset.from_rdata(owner or self.zone, 3600, self.dnskey))

    def sign(
        self,
        target: dns.rrset.RRset,
        inception: int = NOW - 3600,
        expiration: int = NOW + 3600,
        ttl: int | None = None,
    ) -> list[ResourceRecord]:
        rrsig = dns.dnssec.sign(
            target,
            self.private,
            dns.name.from_text(self.zone),
            self.dnskey,
            inception=inception,
            expiration=expiration,
            policy=ALLOW_ALL,
        )
        return ours(dns.rrset.from_rdata(target.name, target.ttl if ttl is None else ttl, rrsig))

    def ds(self, digest: str = "SHA256") -> list[ResourceRecord]:
        made = dns.dnssec.make_ds(self.zone, self.dnskey, digest, policy=ALLOW_ALL)
        return ours(dns.rrset.from_rdata(self.zone, 3600, made))


def with_rrsig(record: ResourceRecord, **changes: Any) -> ResourceRecord:
    rdata = record.rdata
    assert isinstance(rdata, RRSIG)
    fields = {name: getattr(rdata, name) for name in RRSIG.__fields__}
    fields.update(changes)
    return ResourceRecord(record.name, record.rrtype, record.rrclass, record.ttl, RRSIG(**fields))


# ---------------------------------------------------------------- every algorithm


@pytest.fixture(scope="module", params=sorted(PRIVATE_KEYS))
def signer(request: pytest.FixtureRequest) -> Signer:
    return Signer("Example.", request.param)


def test_signatures_of_every_algorithm_verify(signer: Signer) -> None:
    data = rrset("www.example.", "A", "192.0.2.1", "192.0.2.2")
    verdict = verify_rrset(ours(data), signer.sign(data), signer.keys(), NOW)
    assert verdict.status is SigStatus.VALID and verdict.valid
    assert verdict.wildcard is None
    assert verdict.rrsig is not None and verdict.rrsig.key_tag == key_tag(signer.keys()[0].rdata)  # type: ignore[arg-type]


def test_tampered_data_fails(signer: Signer) -> None:
    data = rrset("www.example.", "A", "192.0.2.1", "192.0.2.2")
    sigs = signer.sign(data)
    forged = ours(rrset("www.example.", "A", "192.0.2.1", "192.0.2.66"))
    assert verify_rrset(forged, sigs, signer.keys(), NOW).status is SigStatus.BAD_SIGNATURE
    fewer = ours(rrset("www.example.", "A", "192.0.2.1"))
    assert verify_rrset(fewer, sigs, signer.keys(), NOW).status is SigStatus.BAD_SIGNATURE
    (sig,) = sigs
    assert isinstance(sig.rdata, RRSIG)
    flipped = bytes([sig.rdata.signature[0] ^ 1]) + sig.rdata.signature[1:]
    bad = [with_rrsig(sig, signature=flipped)]
    assert verify_rrset(ours(data), bad, signer.keys(), NOW).status is SigStatus.BAD_SIGNATURE
    # Changing a signed field of the RRSIG itself breaks it too.
    later = [with_rrsig(sig, original_ttl=301)]
    assert verify_rrset(ours(data), later, signer.keys(), NOW).status is SigStatus.BAD_SIGNATURE


def test_another_key_does_not_verify(signer: Signer) -> None:
    data = rrset("www.example.", "A", "192.0.2.1")
    other = Signer("Example.", signer.algorithm)
    assert verify_rrset(ours(data), signer.sign(data), other.keys(), NOW).status is (
        SigStatus.NO_MATCHING_KEY
        if key_tag(other.keys()[0].rdata) != key_tag(signer.keys()[0].rdata)  # type: ignore[arg-type]
        else SigStatus.BAD_SIGNATURE
    )
    # Another key with the same tag and algorithm (forged to collide) fails on the signature.
    forged = [ResourceRecord("example.", 48, IN, 3600, other.keys()[0].rdata)]
    sig = signer.sign(data)[0]
    assert isinstance(sig.rdata, RRSIG)
    retagged = with_rrsig(sig, key_tag=key_tag(forged[0].rdata))  # type: ignore[arg-type]
    assert verify_rrsig(ours(data), retagged, forged, NOW) is SigStatus.BAD_SIGNATURE


# ---------------------------------------------------------------- the validity window


@pytest.fixture(scope="module")
def ed() -> Signer:
    return Signer("example.", 15)


def test_validity_window_edges(ed: Signer) -> None:
    data = rrset("www.example.", "A", "192.0.2.1")
    sigs = ed.sign(data, inception=NOW - 10, expiration=NOW + 10)
    keys = ed.keys()
    assert verify_rrset(ours(data), sigs, keys, NOW - 10).status is SigStatus.VALID
    assert verify_rrset(ours(data), sigs, keys, NOW + 10).status is SigStatus.VALID
    assert verify_rrset(ours(data), sigs, keys, NOW - 11).status is SigStatus.NOT_YET_VALID
    assert verify_rrset(ours(data), sigs, keys, NOW + 11).status is SigStatus.EXPIRED
    assert verify_rrset(ours(data), sigs, keys, NOW + 11, skew=1).status is SigStatus.VALID
    assert verify_rrset(ours(data), sigs, keys, NOW - 12, skew=1).status is SigStatus.NOT_YET_VALID


def wrapped(inception: int, expiration: int) -> RRSIG:
    return RRSIG(1, 15, 2, 300, expiration % 2**32, inception % 2**32, 1, "example.", b"s")


@pytest.mark.parametrize(
    ("inception", "expiration", "now", "status"),
    [
        # A window across the 2106 wrap of 32-bit time (RFC 4034 section 3.1.5, RFC 1982).
        (2**32 - 100, 2**32 + 100, 2**32 + 50, SigStatus.VALID),
        (2**32 - 100, 2**32 + 100, 2**32 - 50, SigStatus.VALID),
        (2**32 - 100, 2**32 + 100, 2**32 + 150, SigStatus.EXPIRED),
        (2**32 - 100, 2**32 + 100, 2**32 - 150, SigStatus.NOT_YET_VALID),
        # Ordinary times, and a clock 2**32 seconds on (serial arithmetic cannot tell).
        (NOW - 1, NOW + 1, NOW, SigStatus.VALID),
        (NOW - 1, NOW + 1, NOW + 2**32, SigStatus.VALID),
        # Expiration before inception: never valid.
        (NOW + 1, NOW - 1, NOW, SigStatus.NOT_YET_VALID),
        # Nearly half the circle back is the past, nearly half on is the future.
        (NOW - 2**31 + 10, NOW - 2**31 + 20, NOW, SigStatus.EXPIRED),
        (NOW + 2**31 - 20, NOW + 2**31 - 10, NOW, SigStatus.NOT_YET_VALID),
    ],
)
def test_serial_number_arithmetic(
    inception: int, expiration: int, now: int, status: SigStatus
) -> None:
    assert validity(wrapped(inception, expiration), now) is status


# ---------------------------------------------------------------- what the RRSIG must match


def test_unsupported_algorithms_are_reported_as_such(ed: Signer) -> None:
    data = rrset("www.example.", "A", "192.0.2.1")
    (sig,) = ed.sign(data)
    for algorithm in (1, 3, 6, 12, 253):
        odd = with_rrsig(sig, algorithm=algorithm)
        assert verify_rrsig(ours(data), odd, ed.keys(), NOW) is SigStatus.UNSUPPORTED_ALGORITHM
        assert verify_rrset(ours(data), [odd], ed.keys(), NOW).status is (
            SigStatus.UNSUPPORTED_ALGORITHM
        )
    # Beside a supported one that fails, the failure is what counts.
    expired = ed.sign(data, NOW - 20, NOW - 10)
    mixed = [with_rrsig(sig, algorithm=3), *expired]
    assert verify_rrset(ours(data), mixed, ed.keys(), NOW).status is SigStatus.EXPIRED
    # And one valid signature is enough.
    assert verify_rrset(ours(data), [*mixed, sig], ed.keys(), NOW).status is SigStatus.VALID


@pytest.mark.parametrize(
    ("flags", "protocol"),
    [(257 | 128, 3), (1, 3), (0, 3), (257, 2)],
    ids=["revoked", "not-a-zone-key", "no-flags", "protocol-2"],
)
def test_keys_that_must_not_verify(flags: int, protocol: int) -> None:
    signer = Signer("example.", 15, flags=flags)
    data = rrset("www.example.", "A", "192.0.2.1")
    sigs = signer.sign(data)
    key = signer.keys()[0]
    assert isinstance(key.rdata, DNSKEY)
    changed = DNSKEY(key.rdata.flags, protocol, key.rdata.algorithm, key.rdata.key)
    keys = [ResourceRecord(key.name, 48, IN, 3600, changed)]
    if protocol != 3:  # re-sign so that the key tag matches the changed key
        sigs = [with_rrsig(sigs[0], key_tag=key_tag(changed))]
    assert verify_rrset(ours(data), sigs, keys, NOW).status is SigStatus.NO_MATCHING_KEY


def test_the_key_must_be_owned_by_the_signer(ed: Signer) -> None:
    data = rrset("www.example.", "A", "192.0.2.1")
    sigs = ed.sign(data)
    assert (
        verify_rrset(ours(data), sigs, ed.keys("other."), NOW).status is SigStatus.NO_MATCHING_KEY
    )
    assert verify_rrset(ours(data), sigs, ed.keys("EXAMPLE."), NOW).status is SigStatus.VALID


def test_an_rrsig_that_does_not_fit_the_rrset(ed: Signer) -> None:
    data = rrset("www.example.", "A", "192.0.2.1")
    (sig,) = ed.sign(data)
    records = ours(data)
    for wrong in (
        with_rrsig(sig, type_covered=28),
        with_rrsig(sig, labels=3),  # more labels than the owner has
        with_rrsig(sig, signer="www.example.org."),  # not above the owner
        ResourceRecord("other.example.", 46, IN, 300, sig.rdata),
        ResourceRecord(sig.name, 46, 3, 300, sig.rdata),  # another class
    ):
        assert verify_rrsig(records, wrong, ed.keys(), NOW) is SigStatus.MISMATCH
    assert verify_rrsig([], sig, ed.keys(), NOW) is SigStatus.MISMATCH
    # RRSIGs of other RRsets are not this RRset's signatures.
    assert verify_rrset(records, [with_rrsig(sig, type_covered=28)], ed.keys(), NOW).status is (
        SigStatus.NO_SIGNATURE
    )
    assert verify_rrset(records, [], ed.keys(), NOW).status is SigStatus.NO_SIGNATURE
    assert verify_rrset([], [sig], ed.keys(), NOW).status is SigStatus.NO_SIGNATURE


def test_names_compare_without_case(ed: Signer) -> None:
    data = rrset("www.example.", "NS", "ns1.example.", "NS2.example.")
    sigs = ed.sign(data)
    shouting = ours(rrset("WWW.EXAMPLE.", "NS", "NS1.EXAMPLE.", "ns2.EXAMPLE."))
    upper_sigs = [ResourceRecord("Www.Example.", 46, IN, 300, s.rdata) for s in sigs]
    assert verify_rrset(shouting, upper_sigs, ed.keys("eXample."), NOW).status is SigStatus.VALID


def test_wildcard_expansion(ed: Signer) -> None:
    source = rrset("*.w.example.", "MX", "1 ai.example.")
    (sig,) = ed.sign(source)
    assert isinstance(sig.rdata, RRSIG) and sig.rdata.labels == 2
    # The server hands it out as a.z.w.example, with the RRSIG of the wildcard.
    expanded = ours(rrset("a.z.w.example.", "MX", "1 ai.example."))
    sigs = [ResourceRecord("a.z.w.example.", 46, IN, 300, sig.rdata)]
    verdict = verify_rrset(expanded, sigs, ed.keys(), NOW)
    assert verdict.status is SigStatus.VALID
    assert verdict.wildcard == "*.w.example."
    # The wildcard itself asked for is no expansion.
    assert verify_rrset(ours(source), [sig], ed.keys(), NOW).wildcard is None
    # Claiming a shallower wildcard changes the signed name: the signature fails.
    shallower = [with_rrsig(sigs[0], labels=1)]
    assert verify_rrset(expanded, shallower, ed.keys(), NOW).status is SigStatus.BAD_SIGNATURE


def test_the_ttl_a_valid_rrset_may_be_kept(ed: Signer) -> None:
    data = rrset("www.example.", "A", "192.0.2.1", ttl=3600)
    sigs = ed.sign(data, NOW - 100, NOW + 7200)
    # As it comes from a cache upstream: the TTL counted down; the original TTL is signed.
    aged = ours(rrset("www.example.", "A", "192.0.2.1", ttl=1200))
    aged_sigs = [ResourceRecord(s.name, 46, IN, 1200, s.rdata) for s in sigs]
    assert verify_rrset(aged, aged_sigs, ed.keys(), NOW).ttl == 1200
    # A TTL above the original TTL is cut to it (RFC 4035 section 5.3.3).
    inflated = ours(rrset("www.example.", "A", "192.0.2.1", ttl=86400))
    inflated_sigs = [ResourceRecord(s.name, 46, IN, 86400, s.rdata) for s in sigs]
    assert verify_rrset(inflated, inflated_sigs, ed.keys(), NOW).ttl == 3600
    # Nor beyond the signature's expiration.
    assert verify_rrset(ours(data), sigs, ed.keys(), NOW + 7000).ttl == 200


# ---------------------------------------------------------------- DNSKEY RRsets


def keyset(*signers: Signer, owner: str = "example.") -> dns.rrset.RRset:
    return dns.rrset.from_rdata(owner, 3600, *(s.dnskey for s in signers))


def test_dnskeys_from_a_ds(ed: Signer) -> None:
    zsk = Signer("example.", 15, flags=256)
    keys = keyset(ed, zsk)
    sigs = ed.sign(keys)
    for digest in ("SHA1", "SHA256", "SHA384"):
        verdict = validate_dnskeys("example.", ours(keys), sigs, ed.ds(digest), NOW)
        assert verdict.status is KeyStatus.SECURE
        assert {key_tag(r.rdata) for r in verdict.keys} == {  # type: ignore[arg-type]
            key_tag(r.rdata)  # type: ignore[arg-type]
            for r in ours(keys)
        }
    # The ZSK may then verify the zone's data.
    data = rrset("www.example.", "A", "192.0.2.1")
    trusted = validate_dnskeys("Example.", ours(keys), sigs, ed.ds(), NOW).keys
    assert verify_rrset(ours(data), zsk.sign(data), trusted, NOW).valid


def test_dnskeys_that_do_not_follow_from_the_ds(ed: Signer) -> None:
    zsk = Signer("example.", 15, flags=256)
    keys = keyset(ed, zsk)
    # Signed only by the ZSK, which no DS names.
    verdict = validate_dnskeys("example.", ours(keys), zsk.sign(keys), ed.ds(), NOW)
    assert (verdict.status, verdict.reason) == (KeyStatus.BOGUS, SigStatus.NO_MATCHING_KEY)
    # A DS for a key that is not in the RRset.
    stranger = Signer("example.", 15)
    verdict = validate_dnskeys("example.", ours(keys), ed.sign(keys), stranger.ds(), NOW)
    assert (verdict.status, verdict.reason) == (KeyStatus.BOGUS, SigStatus.NO_MATCHING_KEY)
    assert verdict.keys == ()
    # The signature by the right key has expired.
    old = ed.sign(keys, NOW - 20, NOW - 10)
    verdict = validate_dnskeys("example.", ours(keys), old, ed.ds(), NOW)
    assert (verdict.status, verdict.reason) == (KeyStatus.BOGUS, SigStatus.EXPIRED)
    # RFC 4509 section 3: with a SHA-256 DS present, a matching SHA-1 DS is not enough.
    both = stranger.ds("SHA256") + ed.ds("SHA1")
    verdict = validate_dnskeys("example.", ours(keys), ed.sign(keys), both, NOW)
    assert verdict.status is KeyStatus.BOGUS


def test_ds_records_we_cannot_use_make_the_zone_insecure(ed: Signer) -> None:
    keys = keyset(ed)
    sigs = ed.sign(keys)
    (ds,) = ed.ds()
    assert isinstance(ds.rdata, DS)
    for algorithm, digest_type in ((3, 2), (12, 2), (253, 2), (15, 3), (15, 0)):
        odd = DS(ds.rdata.key_tag, algorithm, digest_type, ds.rdata.digest)
        verdict = validate_dnskeys(
            "example.", ours(keys), sigs, [ResourceRecord("example.", 43, IN, 60, odd)], NOW
        )
        assert (verdict.status, verdict.reason) == (
            KeyStatus.INSECURE,
            SigStatus.UNSUPPORTED_ALGORITHM,
        )
    # Nothing trusted for this zone at all (DS records of another zone do not count).
    verdict = validate_dnskeys("example.", ours(keys), sigs, Signer("other.", 15).ds(), NOW)
    assert verdict.status is KeyStatus.INSECURE
    # A usable DS beside unusable ones is used.
    mixed = [ResourceRecord("example.", 43, IN, 60, DS(1, 3, 2, b"x")), *ed.ds()]
    assert validate_dnskeys("example.", ours(keys), sigs, mixed, NOW).status is KeyStatus.SECURE


def test_dnskey_trust_anchors(ed: Signer) -> None:
    keys = keyset(ed)
    sigs = ed.sign(keys)
    anchors = parse_trust_anchors(f"example. DNSKEY {ed.dnskey.to_text()}")
    verdict = validate_dnskeys("example.", ours(keys), sigs, anchors.for_zone("example."), NOW)
    assert verdict.status is KeyStatus.SECURE
    other = parse_trust_anchors(f"example. DNSKEY {Signer('example.', 15).dnskey.to_text()}")
    verdict = validate_dnskeys("example.", ours(keys), sigs, other.for_zone("example."), NOW)
    assert verdict.status is KeyStatus.BOGUS
    unsupported = parse_trust_anchors("example. DNSKEY 257 3 3 AAAA")
    verdict = validate_dnskeys("example.", ours(keys), sigs, unsupported.for_zone("example."), NOW)
    assert verdict.status is KeyStatus.INSECURE
