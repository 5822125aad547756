"""Trust anchors: the root's key-signing keys shipped with the package, and anchor files.

The shipped anchors are the DS records IANA publishes for the root zone's KSKs
(https://data.iana.org/root-anchors/root-anchors.xml, RFC 9718): KSK-2017 (key
tag 20326) and KSK-2024 (key tag 38696), both RSASHA256 with SHA-256 digests.
Shipping both means the 2026 rollover to KSK-2024 needs no new release.

An anchor file is a master file (RFC 1035 section 5) of DS and/or DNSKEY
records, the form Unbound's ``trust-anchor-file`` and Deckard use, for example
``. 3600 IN DS 19036 8 2 49AAC1...``; a TTL may be left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from resolver.wire.message import ResourceRecord, RRType
from resolver.wire.names import ancestors, name_key
from resolver.wire.zonefile import ZoneFileError, parse_zone

ROOT_ANCHORS_TEXT = """\
; IANA root-anchors.xml: KSK-2017 (valid from 2017-02-02) and KSK-2024 (from 2024-07-18)
. 172800 IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D
. 172800 IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16
"""

ANCHOR_TTL = 3600  # for anchor lines written without a TTL; it is never used to expire them


class TrustAnchorError(ValueError):
    """An anchor file that cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class TrustAnchors:
    """DS and DNSKEY anchors by zone (keys are :func:`name_key` of the zone)."""

    by_zone: Mapping[str, tuple[ResourceRecord, ...]]

    def for_zone(self, zone: str) -> tuple[ResourceRecord, ...]:
        return self.by_zone.get(name_key(zone), ())

    def closest(self, name: str) -> str | None:
        """The deepest zone at or above ``name`` that has an anchor."""
        for candidate in ancestors(name):
            if name_key(candidate) in self.by_zone:
                return self.by_zone[name_key(candidate)][0].name
        return None

    @property
    def zones(self) -> list[str]:
        return [records[0].name for records in self.by_zone.values()]


def parse_trust_anchors(text: str, source: str = "<trust anchors>") -> TrustAnchors:
    """Anchors from master-file text; anything but DS or DNSKEY records is an error."""
    try:
        records = parse_zone(text, source=source, default_ttl=ANCHOR_TTL)
    except ZoneFileError as error:
        raise TrustAnchorError(str(error)) from None
    by_zone: dict[str, list[ResourceRecord]] = {}
    for rr in records:
        if rr.rrtype not in (RRType.DS, RRType.DNSKEY):
            raise TrustAnchorError(
                f"{source}: {rr.name} {RRType.text(rr.rrtype)}: a trust anchor is DS or DNSKEY"
            )
        by_zone.setdefault(name_key(rr.name), []).append(rr)
    if not by_zone:
        raise TrustAnchorError(f"{source}: no DS or DNSKEY record")
    return TrustAnchors({zone: tuple(found) for zone, found in by_zone.items()})


def load_trust_anchors(path: str | Path) -> TrustAnchors:
    """Read and parse an anchor file; errors name the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise TrustAnchorError(f"cannot read trust anchors {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise TrustAnchorError(f"trust anchors {path} are not UTF-8 text") from None
    return parse_trust_anchors(text, str(path))


def root_trust_anchors() -> TrustAnchors:
    """The shipped root anchors (a fresh value each call; parsing costs microseconds)."""
    return parse_trust_anchors(ROOT_ANCHORS_TEXT, "<shipped root anchors>")
