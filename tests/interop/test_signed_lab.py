"""The signed lab checked with another validator (dnspython's dns.dnssec): every zone
signed, each DS in its parent matching the child's KSK, the trust anchor matching the
root's, and each deliberate flaw (resolver/lab/signing.py) exactly what it says."""

from __future__ import annotations

import time
from pathlib import Path

import dns.dnssec
import dns.name
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest

from resolver.lab.nsd import NsdLab
from resolver.lab.signing import (
    DNSSEC_ZONES,
    SignedHierarchy,
    Signing,
    alter_signature,
    parent_of,
    sign_hierarchy,
)
from resolver.lab.topology import all_zones

pytestmark = pytest.mark.interop

RRSIG, DNSKEY, DS = dns.rdatatype.RRSIG, dns.rdatatype.DNSKEY, dns.rdatatype.DS


@pytest.fixture(scope="module")
def signed(signing_ready: None, tmp_path_factory: pytest.TempPathFactory) -> SignedHierarchy:
    """The lab signed (not served: signing needs no NSD)."""
    return NsdLab(tmp_path_factory.mktemp("signed"), signed=True).sign()


def load(signed: SignedHierarchy, origin: str) -> dns.zone.Zone:
    path = signed.zone_paths[origin]
    return dns.zone.from_file(str(path), origin, relativize=False, check_origin=False)


def keys(zone: dns.zone.Zone) -> dict[dns.name.Name, dns.rdataset.Rdataset]:
    return {zone.origin: zone.get_rdataset(zone.origin, DNSKEY)}


def bad_rrsets(zone: dns.zone.Zone, when: float | None = None) -> list[str]:
    """Every signed RRset of the zone that dnspython does not validate with its keys."""
    bad = []
    for name, node in zone.nodes.items():
        for rdataset in node:
            if rdataset.rdtype != RRSIG:
                continue
            covered = node.get_rdataset(zone.rdclass, rdataset.covers)
            rrset = dns.rrset.from_rdata_list(name, covered.ttl, list(covered))
            sigs = dns.rrset.from_rdata_list(name, rdataset.ttl, list(rdataset))
            try:
                dns.dnssec.validate(rrset, sigs, keys(zone), now=when)
            except dns.dnssec.ValidationFailure:
                bad.append(f"{name} {dns.rdatatype.to_text(rdataset.covers)}")
    return bad


def ds_digests(zone: dns.zone.Zone, child: str) -> set[bytes]:
    rdataset = zone.get_rdataset(child, DS)
    return {rdata.digest for rdata in rdataset} if rdataset else set()


def key_digests(zone: dns.zone.Zone, digest_type: int = 2) -> set[bytes]:
    """The DS digests of the zone's keys (SHA-256 by default, the lab's DS for most)."""
    return {dns.dnssec.make_ds(zone.origin, key, digest_type, validating=True).digest
            for key in zone.get_rdataset(zone.origin, DNSKEY)}  # fmt: skip


def ds_match_keys(parent: dns.zone.Zone, child: dns.zone.Zone) -> bool:
    """Every DS for ``child`` in ``parent`` has a key in ``child`` (ldns-keygen picks
    the digest: SHA-1 for RSASHA1, SHA-384 for ECDSA P-384, SHA-256 otherwise)."""
    dses = parent.get_rdataset(child.origin, DS)
    return bool(dses) and all(ds.digest in key_digests(child, ds.digest_type) for ds in dses)


CORRECT = [origin for origin in (*all_zones(), *DNSSEC_ZONES) if DNSSEC_ZONES.get(origin) is None]


@pytest.mark.parametrize("origin", CORRECT)
def test_every_zone_is_signed_and_its_ds_is_in_its_parent(
    origin: str, signed: SignedHierarchy
) -> None:
    zone = load(signed, origin)
    assert bad_rrsets(zone) == []
    # Every authoritative RRset is signed (delegations' NS and glue are not, RFC 4035 2.2).
    assert zone.get_rdataset(origin, RRSIG, dns.rdatatype.SOA) is not None
    parent = parent_of(origin, signed.zone_paths)
    if parent is None:
        assert origin == "."
        (line,) = signed.trust_anchor.read_text().splitlines()[1:] if signed.trust_anchor else []
        anchor = bytes.fromhex(line.split()[-1])
        assert {anchor} <= key_digests(zone)
        return
    assert ds_match_keys(load(signed, parent), zone), f"no DS for {origin}'s keys in {parent}"


def test_the_flaws(signed: SignedHierarchy) -> None:
    lab = load(signed, "lab.")
    now = time.time()
    expired, notyet = load(signed, "expired.lab."), load(signed, "notyet.lab.")
    assert bad_rrsets(expired) and bad_rrsets(expired, when=now - 2 * 86400) == []
    assert bad_rrsets(notyet) and bad_rrsets(notyet, when=now + 11 * 86400) == []
    for origin in ("expired.lab.", "notyet.lab."):
        assert ds_digests(lab, origin) <= key_digests(load(signed, origin))
    # A DS naming a key that is not there.
    nokey = load(signed, "nokey.lab.")
    assert bad_rrsets(nokey) == []
    assert ds_digests(lab, "nokey.lab.") and not ds_digests(lab, "nokey.lab.") & key_digests(nokey)
    # A DS, and the zone unsigned.
    nosigs = load(signed, "nosigs.lab.")
    assert ds_digests(lab, "nosigs.lab.")
    assert not any(rdataset.rdtype in (RRSIG, DNSKEY) for _, rdataset in nosigs.iterate_rdatasets())
    # One wrong signature: www A; the AAAA beside it and the rest are fine.
    assert bad_rrsets(load(signed, "badsig.lab.")) == ["www.badsig.lab. A"]
    # The insecure delegation: no DS (the NSEC at it in lab. proves it), nothing signed.
    insecure = load(signed, "insecure.lab.")
    assert not ds_digests(lab, "insecure.lab.") and signed.ds["insecure.lab."] == []
    assert not any(rdataset.rdtype == RRSIG for _, rdataset in insecure.iterate_rdatasets())
    # NSEC3 with no extra iterations and no salt (RFC 9276).
    (param,) = load(signed, "nsec3.lab.").get_rdataset("nsec3.lab.", dns.rdatatype.NSEC3PARAM)
    assert (param.algorithm, param.iterations, param.salt) == (1, 0, b"")
    (param,) = load(signed, "nsec3-iter.lab.").get_rdataset(
        "nsec3-iter.lab.", dns.rdatatype.NSEC3PARAM
    )
    assert param.iterations == 200
    # Opt-out: every NSEC3 of optout.lab. has the flag; its child is unsigned, without DS.
    optout = load(signed, "optout.lab.")
    flags = {r.flags for _, rs in optout.iterate_rdatasets(dns.rdatatype.NSEC3) for r in rs}
    assert flags == {1} and not ds_digests(optout, "child.optout.lab.")


def test_alter_signature_flips_one_byte_of_one_rrsig() -> None:
    text = (
        "www.x.\t300\tIN\tRRSIG\tAAAA 13 2 300 20300101000000 20200101000000 1 x. AAAA\n"
        "www.x.\t300\tIN\tRRSIG\tA 13 2 300 20300101000000 20200101000000 1 x. AAAA\n"
    )
    altered = alter_signature(text, "WWW.x.", "A").splitlines()
    assert altered[0] == text.splitlines()[0]
    assert altered[1].split()[-1] == "AAD/"  # 00 00 00 -> 00 00 ff
    with pytest.raises(RuntimeError, match=r"no RRSIG over mail\.x\. A"):
        alter_signature(text, "mail.x.", "A")


def test_parent_of() -> None:
    zones = [".", "lab.", "a.deep.lab.", "com."]
    assert parent_of("b.a.deep.lab.", zones) == "a.deep.lab."
    assert parent_of("deep.lab.", zones) == "lab."
    assert parent_of("com.", zones) == "."
    assert parent_of(".", zones) is None
    assert parent_of("x.org.", ["com."]) is None


def test_combined_key_and_a_hierarchy_without_root(signing_ready: None, tmp_path: Path) -> None:
    source = tmp_path / "x.zone"
    source.write_text("$ORIGIN x.\n$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 127.0.0.9\n")
    signed = sign_hierarchy(tmp_path / "out", {"x.": source}, Signing(combined_key=True))
    zone = dns.zone.from_file(str(signed.zone_paths["x."]), "x.", relativize=False)
    assert [key.flags for key in zone.get_rdataset("x.", DNSKEY)] == [257]
    assert bad_rrsets(zone) == [] and signed.trust_anchor is None
