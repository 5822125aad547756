"""Canonical form and order (RFC 4034 section 6), and the data an RRSIG signs (section 3.1.8.1).

Names are compared label by label from the right, each label as lower-cased
octets (section 6.1).  Record data is written uncompressed, with the names of
the types listed in section 6.2 lower-cased; RFC 6840 section 5.1 takes NSEC
off that list (its next name keeps its case) and keeps RRSIG on it.  An RRset
is sorted by its canonical rdata, duplicates removed (section 6.3).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import lru_cache

from resolver.wire.dnssec_rdata import NSEC, RRSIG
from resolver.wire.message import ResourceRecord
from resolver.wire.names import labels_to_text, name_to_wire, text_to_labels
from resolver.wire.rdata import Opaque, Rdata

_RR_FIXED = struct.Struct("!HHIH")  # type, class, TTL, rdata length
_RRSIG_FIXED = struct.Struct("!HBBIIIH")


@lru_cache(maxsize=16384)
def canonical_name_key(name: str) -> tuple[bytes, ...]:
    """Sort key of a name in canonical order: lower-cased labels, rightmost first."""
    return tuple(label.lower() for label in reversed(text_to_labels(name)))


def canonical_name_wire(name: str) -> bytes:
    """Uncompressed wire form with ASCII letters lower-cased (RFC 4034 section 6.2)."""
    return name_to_wire(name).lower()


class _CanonicalWriter:
    """Writes rdata uncompressed, lower-casing its names unless told not to."""

    __slots__ = ("buf", "lower")

    def __init__(self, lower: bool) -> None:
        self.buf = bytearray()
        self.lower = lower

    def write_name(self, name: str, compress: bool) -> None:
        wire = name_to_wire(name)
        self.buf += wire.lower() if self.lower else wire


def canonical_rdata(rrtype: int, rdata: Rdata) -> bytes:
    """The canonical wire form of one record's data."""
    if isinstance(rdata, Opaque):
        layout = _NAME_LAYOUTS.get(rrtype)
        return rdata.data if layout is None else _lower_names(rdata.data, layout)
    out = _CanonicalWriter(lower=not isinstance(rdata, NSEC))
    rdata.write(out)
    return bytes(out.buf)


def canonical_rrset(records: Sequence[ResourceRecord]) -> list[bytes]:
    """Canonical rdata of an RRset, sorted, each value once (RFC 4034 section 6.3)."""
    return sorted({canonical_rdata(rr.rrtype, rr.rdata) for rr in records})


def signed_owner(owner: str, labels: int) -> str:
    """The owner an RRSIG signed: ``*.`` and the rightmost ``labels`` labels when the
    RRset was expanded from a wildcard (RFC 4035 section 5.3.2), else the owner."""
    parts = text_to_labels(owner)
    if labels >= len(parts):
        return owner
    return labels_to_text([b"*", *parts[len(parts) - labels :]])


def signed_data(rrsig: RRSIG, records: Sequence[ResourceRecord]) -> bytes:
    """The octets the signature covers: RRSIG rdata without the signature, then the RRset
    in canonical form and order, every TTL the original TTL (RFC 4034 section 3.1.8.1)."""
    first = records[0]
    head = _RRSIG_FIXED.pack(
        rrsig.type_covered, rrsig.algorithm, rrsig.labels, rrsig.original_ttl,
        rrsig.expiration, rrsig.inception, rrsig.key_tag,
    )  # fmt: skip
    out = bytearray(head)
    out += canonical_name_wire(rrsig.signer)
    owner = canonical_name_wire(signed_owner(first.name, rrsig.labels))
    for rdata in canonical_rrset(records):
        out += owner
        out += _RR_FIXED.pack(first.rrtype, first.rrclass, rrsig.original_ttl, len(rdata))
        out += rdata
    return bytes(out)


# Types whose rdata the resolver keeps opaque but whose names RFC 4034 section 6.2
# lower-cases: a layout of "n" (a name), "2" (16 bits) and "s" (a character string).
_NAME_LAYOUTS = {
    3: "n", 4: "n", 7: "n", 8: "n", 9: "n", 39: "n",  # MD MF MB MG MR DNAME
    14: "nn", 17: "nn",  # MINFO RP
    18: "2n", 21: "2n", 36: "2n",  # AFSDB RT KX
    26: "2nn",  # PX
    35: "22sssn",  # NAPTR
}  # fmt: skip


def _lower_names(data: bytes, layout: str) -> bytes:
    """Lower-case the uncompressed names of an opaque rdata laid out as ``layout``.

    Data that does not fit the layout (or holds a compression pointer) is left
    as it is: the signature check over it will then simply fail.
    """
    out = bytearray(data)
    pos = 0
    try:
        for field in layout:
            if field == "2":
                pos += 2
            elif field == "s":
                pos += 1 + data[pos]
            else:
                while data[pos]:
                    if data[pos] & 0xC0:
                        return data
                    end = pos + 1 + data[pos]
                    out[pos + 1 : end] = data[pos + 1 : end].lower()
                    pos = end
                pos += 1
    except IndexError:
        return data
    return bytes(out)


# ---------------------------------------------------------------- names for proofs


def suffix(name: str, count: int) -> str:
    """The ancestor of ``name`` made of its rightmost ``count`` labels."""
    parts = text_to_labels(name)
    return labels_to_text(parts[len(parts) - count :]) if count else "."


def common_labels(a: str, b: str) -> int:
    """How many labels, from the right, two names share (compared without case)."""
    count = 0
    for x, y in zip(canonical_name_key(a), canonical_name_key(b), strict=False):
        if x != y:
            break
        count += 1
    return count


def strictly_below(name: str, ancestor: str) -> bool:
    """True when ``name`` is a proper descendant of ``ancestor``."""
    above = canonical_name_key(ancestor)
    below = canonical_name_key(name)
    return len(below) > len(above) and below[: len(above)] == above


def wildcard_of(name: str) -> str:
    """``*.`` + ``name``: the wildcard that would answer below it."""
    return "*." if name == "." else "*." + name
