"""What every record data module builds on: the writer, the parsers' end check, type names.

:class:`NameWriter` is what an rdata value's ``write`` needs from the message
writer (its buffer, and name output with or without compression).
:func:`expect_end` is the last check of a wire parser: an RDATA is consumed
exactly, to its RDLENGTH (RFC 1035 section 3.2.1).  The type mnemonics and
``TYPEnnn`` (RFC 3597 section 5) are here because the text forms of RRSIG and
NSEC name types too, as do zone files.

Both :mod:`resolver.wire.rdata` (the basic types and the parser registry) and
:mod:`resolver.wire.dnssec_rdata` (the DNSSEC types) import this module, and it
imports neither, so the registry can include the DNSSEC parsers without a cycle.
"""

from __future__ import annotations

from typing import Protocol

from resolver.wire.names import WireError


class NameWriter(Protocol):
    """What rdata needs from the message writer: the buffer and name output."""

    buf: bytearray

    def write_name(self, name: str, compress: bool) -> None: ...


def expect_end(pos: int, end: int, kind: str) -> None:
    """``WireError`` unless a parser stopped exactly at the end of its RDATA."""
    if pos != end:
        raise WireError(f"{kind} rdata length does not match its content", pos)


# Mnemonics of types (RFC 3597 section 5 gives TYPEnnn for the rest).  Types the
# resolver does not parse still get their name in NSEC bitmaps and RRSIGs.
TYPE_MNEMONICS: dict[str, int] = {
    "A": 1, "NS": 2, "MD": 3, "MF": 4, "CNAME": 5, "SOA": 6, "MB": 7, "MG": 8, "MR": 9,
    "NULL": 10, "WKS": 11, "PTR": 12, "HINFO": 13, "MINFO": 14, "MX": 15, "TXT": 16,
    "RP": 17, "AFSDB": 18, "X25": 19, "ISDN": 20, "RT": 21, "NSAP": 22, "SIG": 24,
    "KEY": 25, "PX": 26, "GPOS": 27, "AAAA": 28, "LOC": 29, "NXT": 30, "SRV": 33,
    "NAPTR": 35, "KX": 36, "CERT": 37, "A6": 38, "DNAME": 39, "OPT": 41, "APL": 42,
    "DS": 43, "SSHFP": 44, "IPSECKEY": 45, "RRSIG": 46, "NSEC": 47, "DNSKEY": 48,
    "DHCID": 49, "NSEC3": 50, "NSEC3PARAM": 51, "TLSA": 52, "SMIMEA": 53, "HIP": 55,
    "CDS": 59, "CDNSKEY": 60, "OPENPGPKEY": 61, "CSYNC": 62, "ZONEMD": 63, "SVCB": 64,
    "HTTPS": 65, "SPF": 99, "EUI48": 108, "EUI64": 109, "TKEY": 249, "TSIG": 250,
    "IXFR": 251, "AXFR": 252, "ANY": 255, "URI": 256, "CAA": 257, "DLV": 32769,
}  # fmt: skip
_TYPE_NAMES = {value: name for name, value in TYPE_MNEMONICS.items()}


def type_to_text(rrtype: int) -> str:
    """Mnemonic of a type, or ``TYPEnnn`` (RFC 3597 section 5)."""
    return _TYPE_NAMES.get(rrtype) or f"TYPE{rrtype}"


def type_from_text(text: str) -> int:
    """Type code of a mnemonic or ``TYPEnnn``; ``ValueError`` for anything else."""
    upper = text.upper()
    value = TYPE_MNEMONICS.get(upper)
    if value is not None:
        return value
    if upper.startswith("TYPE") and upper[4:].isdigit() and int(upper[4:]) <= 0xFFFF:
        return int(upper[4:])
    raise ValueError(f"unknown record type {text!r}")
