"""Key tags, DS digests and public keys, against dnspython and the published root keys."""

from __future__ import annotations

import base64

import dns.dnssec
import dns.name
import dns.rdata
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resolver.dnssec import (
    SUPPORTED_ALGORITHMS,
    ds_digest,
    ds_matches,
    key_tag,
    root_trust_anchors,
)
from resolver.dnssec.keys import load_public_key, usable_key, verify_signature
from resolver.wire.dnssec_rdata import DNSKEY, DS
from resolver.wire.rdata import parse_rdata

BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The root zone's KSKs as published in the root zone and in IANA's root-anchors.xml.
KSK_2017 = (
    "257 3 8 AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbzxeF3+/4RgWOq7HrxRixHlFlExOLAJr5"
    "emLvN7SWXgnLh4+B5xQlNVz8Og8kvArMtNROxVQuCaSnIDdD5LKyWbRd2n9WGe2R8PzgCmr3EgVLrjyBxWezF0jLHwVN8efS3"
    "rCj/EWgvIWgb9tarpVUDK/b58Da+sqqls3eNbuv7pr+eoZG+SrDK6nWeL3c6H5Apxz7LjVc1uTIdsIXxuOLYA4/ilBmS"
    "VIzuDWfdRUfhHdY6+cn8HFRm+2hM8AnXGXws9555KrUB5qihylGa8subX2Nn6UwNR1AkUTV74bU="
)
KSK_2024 = (
    "257 3 8 AwEAAa96jeuknZlaeSrvyAJj6ZHv28hhOKkx3rLGXVaC6rXTsDc449/cidltpkyGwCJNnOAlFNKF2jBosZBU5"
    "eeHspaQWOmOElZsjICMQMC3aeHbGiShvZsx4wMYSjH8e7Vrhbu6irwCzVBApESjbUdpWWmEnhathWu1jo+siFUiRAAxm9qy"
    "JNg/wOZqqzL/dL/q8PkcRU5oUKEpUge71M3ej2/7CPqpdVwuMoTvoB+ZOT4YeGyxMvHmbrxlFzGOHOijtzN+u1TQNatX"
    "2XBuzZNQ1K+s2CXkPIZo7s6JgZyvaBevYtxPvYLw4z9mR7K2vaF18UYH9Z9GNUUeayffKC73PYc="
)


def dnskey_from_text(text: str) -> DNSKEY:
    wire = dns.rdata.from_text("IN", "DNSKEY", text).to_wire()
    parsed = parse_rdata(48, wire, 0, len(wire))
    assert isinstance(parsed, DNSKEY)
    return parsed


def test_shipped_root_anchors_are_the_published_ksks() -> None:
    anchors = root_trust_anchors().for_zone(".")
    published = [dnskey_from_text(KSK_2017), dnskey_from_text(KSK_2024)]
    assert [key_tag(k) for k in published] == [20326, 38696]
    assert [rr.rdata.key_tag for rr in anchors if isinstance(rr.rdata, DS)] == [20326, 38696]
    for key, record in zip(published, anchors, strict=True):
        ds = record.rdata
        assert isinstance(ds, DS)
        assert (ds.algorithm, ds.digest_type) == (8, 2)
        assert ds_matches(".", key, ds)
        assert ds_digest(".", key, 2) == ds.digest
        assert load_public_key(8, key.key) is not None  # a 2048-bit RSA key, readable


def test_the_rfc_4034_section_5_4_example() -> None:
    key = DNSKEY(
        256,
        3,
        5,
        base64.b64decode(
            "AQOeiiR0GOMYkDshWoSKz9XzfwJr1AYtsmx3TGkJaNXVbfi/2pHm822aJ5iI9BMzNXxeYCmZDRD99WYwYqUS"
            "djMmmAphXdvxegXd/M5+X7OrzKBaMbCVdFLUUh6DhweJBjEVv5f2wwjM9XzcnOf+EPbtG9DMBmADjFDc2w/r"
            "ljwvFw=="
        ),
    )
    ds = DS(60485, 5, 1, bytes.fromhex("2BB183AF5F22588179A53B0A98631FAD1A292118"))
    assert key_tag(key) == 60485
    assert ds_matches("dskey.example.com.", key, ds)
    assert ds_matches("DSKEY.Example.COM.", key, ds)  # the owner in canonical (lower) case
    assert key_tag(DNSKEY(256, 3, 1, b"\x01\x03\xaa\xbb\xcc\xdd\xee")) == 0xCCDD  # appendix B.1


PRIVATE_KEYS = {
    5: lambda: rsa.generate_private_key(65537, 1024),
    7: lambda: rsa.generate_private_key(3, 1024),
    8: lambda: rsa.generate_private_key(65537, 2048),
    10: lambda: rsa.generate_private_key(65537, 1024),
    13: lambda: ec.generate_private_key(ec.SECP256R1()),
    14: lambda: ec.generate_private_key(ec.SECP384R1()),
    15: ed25519.Ed25519PrivateKey.generate,
    16: ed448.Ed448PrivateKey.generate,
}


@pytest.mark.parametrize("algorithm", sorted(PRIVATE_KEYS))
@pytest.mark.parametrize("owner", [".", "Example.COM."])
def test_key_tags_and_ds_of_generated_keys_agree_with_dnspython(algorithm: int, owner: str) -> None:
    private = PRIVATE_KEYS[algorithm]()
    theirs = dns.dnssec.make_dnskey(private.public_key(), algorithm, flags=257)
    key = dnskey_from_text(theirs.to_text())
    assert key_tag(key) == dns.dnssec.key_id(theirs)
    for digest_type, name in ((1, "SHA1"), (2, "SHA256"), (4, "SHA384")):
        ds = dns.dnssec.make_ds(owner, theirs, name, policy=dns.dnssec.allow_all_policy)
        assert ds_digest(owner, key, digest_type) == ds.digest
        assert ds_matches(owner, key, DS(ds.key_tag, ds.algorithm, ds.digest_type, ds.digest))
        assert not ds_matches("other.", key, DS(ds.key_tag, ds.algorithm, digest_type, ds.digest))
    assert ds_digest(owner, key, 3) is None  # GOST is not supported
    assert load_public_key(algorithm, key.key) is not None
    assert algorithm in SUPPORTED_ALGORITHMS


@BOUNDED
@given(st.integers(0, 0xFFFF), st.integers(0, 255), st.binary(max_size=100))
def test_key_tags_of_any_key_agree_with_dnspython(flags: int, algorithm: int, key: bytes) -> None:
    ours = DNSKEY(flags, 3, algorithm, key)
    wire = bytes([flags >> 8, flags & 0xFF, 3, algorithm]) + key
    theirs = dns.rdata.from_wire("IN", "DNSKEY", wire, 0, len(wire))
    assert key_tag(ours) == dns.dnssec.key_id(theirs)


def test_keys_that_may_verify() -> None:
    assert usable_key(DNSKEY(257, 3, 8, b"k")) and usable_key(DNSKEY(256, 3, 8, b"k"))
    assert not usable_key(DNSKEY(1, 3, 8, b"k"))  # not a zone key
    assert not usable_key(DNSKEY(256 | 128, 3, 8, b"k"))  # revoked (RFC 5011)
    assert not usable_key(DNSKEY(256, 2, 8, b"k"))  # protocol other than 3


@pytest.mark.parametrize(
    ("algorithm", "key"),
    [
        (8, b""),
        (8, b"\x00\x00"),  # long exponent length, cut short
        (8, b"\x03\x01\x00\x01"),  # no modulus
        (8, b"\x01\x00" + b"\xff" * 16),  # exponent zero
        (8, b"\x03\x01\x00\x01" + b"\xff" * 513),  # modulus over 4096 bits
        (13, b"\x01" * 63),
        (13, b"\x01" * 64),  # not a point on the curve
        (14, b"\x01" * 64),  # a P-256 sized key for P-384
        (15, b"\x01" * 31),
        (16, b"\x01" * 56),
        (3, b"\x01" * 64),  # DSA: unsupported
        (12, b"\x01" * 64),  # GOST: unsupported
    ],
)
def test_malformed_or_unsupported_keys_load_as_none(algorithm: int, key: bytes) -> None:
    assert load_public_key(algorithm, key) is None
    assert verify_signature(algorithm, key, b"sig", b"data") is None


def test_rsa_exponent_in_the_long_form() -> None:
    private = rsa.generate_private_key(65537, 1024)
    numbers = private.public_key().public_numbers()
    modulus = numbers.n.to_bytes(128, "big")
    short = b"\x03" + (65537).to_bytes(3, "big") + modulus
    long = b"\x00\x00\x03" + (65537).to_bytes(3, "big") + modulus
    assert load_public_key(8, short) is not None
    loaded = load_public_key(8, long)
    assert isinstance(loaded, rsa.RSAPublicKey)
    assert loaded.public_numbers() == numbers


def test_ecdsa_signature_of_the_wrong_size_fails() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    key = dnskey_from_text(dns.dnssec.make_dnskey(private.public_key(), 13).to_text())
    assert verify_signature(13, key.key, b"\x01" * 63, b"data") is False
    assert verify_signature(13, key.key, b"\x01" * 64, b"data") is False
    assert base64.b64encode(key.key)  # the key itself loaded fine
    assert load_public_key(13, key.key) is not None
