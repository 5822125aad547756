"""Trust anchors: the shipped root KSKs, and anchor files as Unbound and Deckard write them."""

from __future__ import annotations

from pathlib import Path

import pytest

from resolver.dnssec import (
    ROOT_ANCHORS_TEXT,
    TrustAnchorError,
    load_trust_anchors,
    parse_trust_anchors,
    root_trust_anchors,
)
from resolver.wire.dnssec_rdata import DNSKEY, DS


def test_the_shipped_root_anchors() -> None:
    anchors = root_trust_anchors()
    assert anchors.zones == ["."]
    records = anchors.for_zone(".")
    assert [(r.name, r.rrtype) for r in records] == [(".", 43), (".", 43)]
    assert [r.rdata.key_tag for r in records if isinstance(r.rdata, DS)] == [20326, 38696]
    assert all(isinstance(r.rdata, DS) and r.rdata.algorithm == 8 for r in records)
    assert all(isinstance(r.rdata, DS) and len(r.rdata.digest) == 32 for r in records)
    # Their digests are checked against the published keys in test_dnssec_keys.py.
    assert "20326" in ROOT_ANCHORS_TEXT and "38696" in ROOT_ANCHORS_TEXT


DECKARD_FILE = """\
.\t\t\tIN DS 49060 8 2 E7B1EB56D7D5791B3D45630FEAA9C823DB84B385ACEEAC5F44DD08885C36700F
example.com.\t\tIN DS 438 10 2 33F8133EB48EDB093839E985600EB7B7009EB5AC312D11CCA9007F6B 71D94D7B
example. DNSKEY  257 3 7 AwEAAcUlFV1vhmqx6NSOUOq2R/dsR7Xm3upJ ( j7IommWSpJABVfW8Q0rOvXdM6kzt+TAu92L9 AbsUdblMFin8CVF3n4s= )
"""  # noqa: E501 (the lines as Deckard writes them)


def test_an_anchor_file_as_deckard_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "trust-anchors.txt"
    path.write_text(DECKARD_FILE)
    anchors = load_trust_anchors(path)
    assert sorted(anchors.zones) == [".", "example.", "example.com."]
    (key,) = anchors.for_zone("EXAMPLE.")
    assert isinstance(key.rdata, DNSKEY) and key.rdata.algorithm == 7
    assert anchors.closest("www.example.com.") == "example.com."
    assert anchors.closest("a.b.example.") == "example."
    assert anchors.closest("org.") == "."
    assert parse_trust_anchors("example. 3600 IN DS 1 8 2 AA").closest("org.") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("example. 3600 IN A 192.0.2.1\n", "a trust anchor is DS or DNSKEY"),
        ("; nothing but a comment\n", "no DS or DNSKEY record"),
        ("example. 3600 IN DS 1 8 2 XYZ\n", r"^anchors.txt:1: bad hex"),
        ("\n$INCLUDE /etc/other\n", r"^anchors.txt:2: \$INCLUDE"),
    ],
)
def test_bad_anchor_files(text: str, message: str) -> None:
    with pytest.raises(TrustAnchorError, match=message):
        parse_trust_anchors(text, "anchors.txt")


def test_unreadable_anchor_files(tmp_path: Path) -> None:
    with pytest.raises(TrustAnchorError, match="cannot read trust anchors"):
        load_trust_anchors(tmp_path / "missing")
    bad = tmp_path / "binary"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TrustAnchorError, match="not UTF-8"):
        load_trust_anchors(bad)
