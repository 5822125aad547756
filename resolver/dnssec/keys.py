"""Keys: key tags, DS digests, and signature checks per algorithm.

The algorithms are those RFC 8624 section 3.1 says a validator MUST (or is
recommended to) support, checked with the ``cryptography`` library:

====  ==================  ==========================================
 5    RSASHA1             RFC 3110, PKCS#1 v1.5 with SHA-1
 7    RSASHA1-NSEC3-SHA1  RFC 5155, the same signature as 5
 8    RSASHA256           RFC 5702
10    RSASHA512           RFC 5702
13    ECDSAP256SHA256     RFC 6605
14    ECDSAP384SHA384     RFC 6605
15    ED25519             RFC 8080
16    ED448               RFC 8080
====  ==================  ==========================================

Anything else (RSAMD5, DSA, GOST, private algorithms) is unsupported, which
RFC 4035 section 5.2 says makes a zone insecure, not bogus.  Digests for DS are
SHA-1 (1), SHA-256 (2, RFC 4509) and SHA-384 (4, RFC 6605); GOST (3) is not.
"""

from __future__ import annotations

import hashlib
import struct
from functools import lru_cache
from typing import TypeAlias

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from resolver.dnssec.canonical import canonical_name_wire
from resolver.wire.dnssec_rdata import DNSKEY, DS

ZONE_KEY = 0x0100  # RFC 4034 section 2.1.1: bit 7 of the flags
REVOKED = 0x0080  # RFC 5011 section 7: bit 8
SEP = 0x0001  # RFC 4034 section 2.1.1: bit 15, a hint only
DNSSEC_PROTOCOL = 3  # RFC 4034 section 2.1.2

_RSA_HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    5: hashes.SHA1,
    7: hashes.SHA1,
    8: hashes.SHA256,
    10: hashes.SHA512,
}
_EC_CURVES: dict[int, tuple[ec.EllipticCurve, type[hashes.HashAlgorithm], int]] = {
    13: (ec.SECP256R1(), hashes.SHA256, 32),
    14: (ec.SECP384R1(), hashes.SHA384, 48),
}
SUPPORTED_ALGORITHMS = frozenset({5, 7, 8, 10, 13, 14, 15, 16})
SUPPORTED_DIGESTS = {1: "sha1", 2: "sha256", 4: "sha384"}
# RFC 4509 section 3: SHA-1 DS records are ignored when stronger ones are present.
DIGEST_PREFERENCE = {1: 1, 2: 2, 4: 3}
MAX_RSA_MODULUS_BITS = 4096  # RFC 3110 section 2

# An explicit alias: where cryptography's types are unknown (mypyc's build environment,
# setup.py), a plain assignment would not be a type.
PublicKey: TypeAlias = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)
_DNSKEY_FIXED = struct.Struct("!HBB")


def dnskey_rdata(dnskey: DNSKEY) -> bytes:
    """The wire form of a DNSKEY's rdata (it holds no names, so it is canonical)."""
    return _DNSKEY_FIXED.pack(dnskey.flags, dnskey.protocol, dnskey.algorithm) + dnskey.key


@lru_cache(maxsize=4096)
def key_tag(dnskey: DNSKEY) -> int:
    """The key tag of RFC 4034 appendix B (B.1 for the obsolete algorithm 1)."""
    wire = dnskey_rdata(dnskey)
    if dnskey.algorithm == 1:
        return int.from_bytes(wire[-3:-1], "big") if len(wire) >= 4 else 0
    total = sum(wire[0::2]) << 8
    total += sum(wire[1::2])
    total += (total >> 16) & 0xFFFF
    return total & 0xFFFF


def usable_key(dnskey: DNSKEY) -> bool:
    """A key that may verify signatures: zone key, protocol 3, not revoked (RFC 5011)."""
    return (
        dnskey.flags & ZONE_KEY != 0
        and dnskey.flags & REVOKED == 0
        and dnskey.protocol == DNSSEC_PROTOCOL
    )


def ds_digest(owner: str, dnskey: DNSKEY, digest_type: int) -> bytes | None:
    """The DS digest of a key (RFC 4034 section 5.1.4), or None for an unsupported type."""
    name = SUPPORTED_DIGESTS.get(digest_type)
    if name is None:
        return None
    return hashlib.new(name, canonical_name_wire(owner) + dnskey_rdata(dnskey)).digest()


def ds_matches(owner: str, dnskey: DNSKEY, ds: DS) -> bool:
    """True when ``ds`` names this key: same algorithm, key tag and digest."""
    if ds.algorithm != dnskey.algorithm or ds.key_tag != key_tag(dnskey):
        return False
    return ds_digest(owner, dnskey, ds.digest_type) == ds.digest


@lru_cache(maxsize=1024)
def load_public_key(algorithm: int, key: bytes) -> PublicKey | None:
    """The ``cryptography`` key for a DNSKEY's key field, or None when it is malformed
    or of an unsupported algorithm.  Cached: a zone's keys verify many RRsets."""
    try:
        if algorithm in _RSA_HASHES:
            return _rsa_key(key)
        if algorithm in _EC_CURVES:
            curve, _, size = _EC_CURVES[algorithm]
            if len(key) != 2 * size:
                return None
            return ec.EllipticCurvePublicKey.from_encoded_point(curve, b"\x04" + key)
        if algorithm == 15:
            return ed25519.Ed25519PublicKey.from_public_bytes(key)
        if algorithm == 16:
            return ed448.Ed448PublicKey.from_public_bytes(key)
    except ValueError:
        return None
    return None


def _rsa_key(key: bytes) -> rsa.RSAPublicKey | None:
    """RFC 3110 section 2: exponent length (1 octet, or 0 and 2 octets), exponent, modulus."""
    if not key:
        return None
    if key[0]:
        length, start = key[0], 1
    else:
        if len(key) < 3:
            return None
        length, start = int.from_bytes(key[1:3], "big"), 3
    exponent = int.from_bytes(key[start : start + length], "big")
    modulus = int.from_bytes(key[start + length :], "big")
    if len(key) <= start + length or not exponent or modulus.bit_length() > MAX_RSA_MODULUS_BITS:
        return None
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def verify_signature(algorithm: int, key: bytes, signature: bytes, data: bytes) -> bool | None:
    """True or False for a signature check, None when the key cannot be used."""
    public = load_public_key(algorithm, key)
    if public is None:
        return None
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, data, padding.PKCS1v15(), _RSA_HASHES[algorithm]())
        elif isinstance(public, ec.EllipticCurvePublicKey):
            _, digest, size = _EC_CURVES[algorithm]
            if len(signature) != 2 * size:
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            )
            public.verify(der, data, ec.ECDSA(digest()))
        else:
            public.verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True
