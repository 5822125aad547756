"""Record data read from its text form: the presentation format of each type, and its fields.

:func:`rdata_from_text` turns the fields of one record (tokens of
:func:`resolver.wire.zonefile.entries`, escapes kept) into the typed value the
wire parser would give: RFC 1035 section 5.1 for the basic types (character
strings with ``\\DDD`` and ``\\c`` escapes), RFC 2782 for SRV, RFC 4034 sections
2.2, 3.2, 4.2 and 5.3 for DNSKEY, RRSIG, NSEC and DS (algorithm mnemonics too),
RFC 5155 sections 3.3 and 4.3 for NSEC3 and NSEC3PARAM, and the generic
``\\# length hex`` of RFC 3597 section 5 for any type.

The fields shared with the master-file reader are here too: :func:`absolute_name`
(``@`` and names relative to the origin) and :func:`parse_ttl` (seconds, or
BIND's units: ``1h30m``).  Every error is a ``ValueError`` saying what was
wrong; the reader adds the file and line.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime

from resolver.wire.dnssec_rdata import DNSKEY, DS, NSEC, NSEC3, NSEC3PARAM, RRSIG
from resolver.wire.names import ROOT, BadName, name_to_wire, normalize
from resolver.wire.rdata import (
    AAAA,
    CNAME,
    DNAME,
    MX,
    NS,
    PTR,
    SOA,
    SRV,
    TXT,
    A,
    Rdata,
    parse_rdata,
)
from resolver.wire.rdata_base import type_from_text, type_to_text

# DNSSEC algorithm mnemonics (RFC 4034 appendix A.1 and the IANA registry).
ALGORITHM_MNEMONICS = {
    "RSAMD5": 1, "DH": 2, "DSA": 3, "RSASHA1": 5, "DSA-NSEC3-SHA1": 6,
    "RSASHA1-NSEC3-SHA1": 7, "RSASHA256": 8, "RSASHA512": 10, "ECC-GOST": 12,
    "ECDSAP256SHA256": 13, "ECDSAP384SHA384": 14, "ED25519": 15, "ED448": 16,
    "INDIRECT": 252, "PRIVATEDNS": 253, "PRIVATEOID": 254,
}  # fmt: skip

MAX_U32 = 0xFFFFFFFF
_TTL_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_TTL_PART = re.compile(r"(\d+)([wdhms])", re.IGNORECASE)

TextReader = Callable[[list[str], str], Rdata]


# ---------------------------------------------------------------- fields


def parse_ttl(token: str) -> int:
    """A TTL in seconds: ``3600``, or with units ``1h``, ``1w2d``, ``90M`` (BIND style)."""
    if token.isdigit():
        value = int(token)
    else:
        parts = _TTL_PART.findall(token)
        if not parts or "".join(n + u for n, u in parts) != token:
            raise ValueError(f"bad TTL {token!r}")
        value = sum(int(number) * _TTL_UNITS[unit.lower()] for number, unit in parts)
    if value > MAX_U32:
        raise ValueError(f"TTL {token} does not fit in 32 bits")
    return value


def absolute_name(token: str, origin: str) -> str:
    """The absolute text of a name as written in a master file (``@``, relative or not)."""
    if token == "@":
        return origin
    # A final dot ends the name unless an odd number of backslashes escapes it.
    escapes = len(token) - 1 - len(token[:-1].rstrip("\\"))
    absolute = token.endswith(".") and escapes % 2 == 0
    text = token if absolute else (token + "." + origin if origin != ROOT else token + ".")
    try:
        name = normalize(text)
        name_to_wire(name)  # the 255-octet limit
    except BadName as error:
        raise ValueError(f"bad name {token!r}: {error}") from None
    return name


# ---------------------------------------------------------------- record data


def rdata_from_text(rrtype: int, fields: list[str], origin: str) -> Rdata:
    """Record data from its presentation-format fields (tokens of :func:`entries`).

    Names are completed with ``origin``.  ``\\# length hex`` (RFC 3597 section 5)
    works for every type; for a type the resolver parses, the bytes are read
    into the typed value.  Errors are ``ValueError`` saying what was wrong.
    """
    if fields and fields[0] == "\\#":
        return _generic(rrtype, fields[1:])
    reader = _READERS.get(rrtype)
    if reader is None:
        raise ValueError(
            f"no text form known for {type_to_text(rrtype)}: write it as \\# length hex"
        )
    return reader(fields, origin)


def _generic(rrtype: int, fields: list[str]) -> Rdata:
    if not fields or not fields[0].isdigit():
        raise ValueError("\\# needs a length")
    data = _hex(fields[1:], allow_empty=True)
    if len(data) != int(fields[0]):
        raise ValueError(f"\\# says {fields[0]} octets, the hex has {len(data)}")
    return parse_rdata(rrtype, data, 0, len(data))


def _count(fields: list[str], n: int, kind: str, at_least: bool = False) -> list[str]:
    if len(fields) < n or (not at_least and len(fields) > n):
        wanted = f"at least {n}" if at_least else str(n)
        raise ValueError(f"{kind} takes {wanted} fields, got {len(fields)}: {' '.join(fields)}")
    return fields


def _uint(token: str, bits: int, what: str) -> int:
    if not token.isdigit() or int(token) >= 1 << bits:
        raise ValueError(f"{what} {token!r} is not a {bits}-bit number")
    return int(token)


def _algorithm(token: str) -> int:
    value = ALGORITHM_MNEMONICS.get(token.upper())
    return value if value is not None else _uint(token, 8, "algorithm")


def _hex(fields: list[str], allow_empty: bool = False) -> bytes:
    text = "".join(fields)
    if not text and not allow_empty:
        raise ValueError("hex data missing")
    if not all(c in "0123456789abcdefABCDEF" for c in text):
        raise ValueError(f"bad hex {text!r}")
    if len(text) % 2:
        raise ValueError(f"hex {text!r} has an odd number of digits")
    return bytes.fromhex(text)


def _base64(fields: list[str]) -> bytes:
    text = "".join(fields)
    if not text:
        raise ValueError("base64 data missing")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError(f"bad base64 {text[:40]!r}") from None


def _base32hex(token: str) -> bytes:
    padded = token.upper() + "=" * (-len(token) % 8)
    try:
        return base64.b32hexdecode(padded)
    except ValueError:
        raise ValueError(f"bad base32hex {token!r}") from None


def _time(token: str) -> int:
    """RRSIG time: YYYYMMDDHHmmSS in UTC, or seconds (RFC 4034 section 3.2)."""
    if len(token) == 14 and token.isdigit():
        try:
            moment = datetime.strptime(token, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        except ValueError:
            raise ValueError(f"bad time {token!r}") from None
        value = int(moment.timestamp())
        if not 0 <= value <= MAX_U32:
            raise ValueError(f"time {token} is outside 1970-2106")
        return value
    return _uint(token, 32, "time")


def _types(fields: list[str]) -> tuple[int, ...]:
    return tuple(sorted({type_from_text(token) for token in fields}))


def _char_string(token: str) -> bytes:
    """A character string with its escapes decoded (RFC 1035 section 5.1)."""
    out = bytearray()
    i = 0
    while i < len(token):
        char = token[i]
        if char == "\\" and token[i + 1 : i + 4].isdigit() and len(token[i + 1 : i + 4]) == 3:
            value = int(token[i + 1 : i + 4])
            if value > 255:
                raise ValueError(f"escape \\{value} is not a byte")
            out.append(value)
            i += 4
            continue
        if char == "\\":
            i += 1
            if i >= len(token):
                raise ValueError("string ends in a lone backslash")
            char = token[i]
        out += char.encode("utf-8")
        i += 1
    if len(out) > 255:
        raise ValueError("character string longer than 255 octets")
    return bytes(out)


def _read_a(fields: list[str], origin: str) -> Rdata:
    (token,) = _count(fields, 1, "A")
    return A(str(ipaddress.IPv4Address(token)))


def _read_aaaa(fields: list[str], origin: str) -> Rdata:
    (token,) = _count(fields, 1, "AAAA")
    if "%" in token:
        raise ValueError(f"AAAA {token!r} has a scope")
    packed = ipaddress.IPv6Address(token).packed
    return AAAA(socket.inet_ntop(socket.AF_INET6, packed))  # the form the wire reader gives


def _name_reader(kind: type[NS]) -> TextReader:
    def read(fields: list[str], origin: str) -> Rdata:
        (token,) = _count(fields, 1, kind.__name__)
        return kind(absolute_name(token, origin))

    return read


def _read_mx(fields: list[str], origin: str) -> Rdata:
    preference, exchange = _count(fields, 2, "MX")
    return MX(_uint(preference, 16, "preference"), absolute_name(exchange, origin))


def _read_soa(fields: list[str], origin: str) -> Rdata:
    mname, rname, serial, *timers = _count(fields, 7, "SOA")
    return SOA(
        absolute_name(mname, origin),
        absolute_name(rname, origin),
        _uint(serial, 32, "serial"),
        *(parse_ttl(t) for t in timers),
    )


def _read_txt(fields: list[str], origin: str) -> Rdata:
    _count(fields, 1, "TXT", at_least=True)
    return TXT(tuple(_char_string(token) for token in fields))


def _read_srv(fields: list[str], origin: str) -> Rdata:
    priority, weight, port, target = _count(fields, 4, "SRV")
    numbers = (_uint(v, 16, what) for v, what in ((priority, "priority"), (weight, "weight")))
    return SRV(*numbers, _uint(port, 16, "port"), absolute_name(target, origin))


def _read_ds(fields: list[str], origin: str) -> Rdata:
    tag, algorithm, digest_type, *digest = _count(fields, 4, "DS", at_least=True)
    return DS(
        _uint(tag, 16, "key tag"), _algorithm(algorithm), _uint(digest_type, 8, "digest type"),
        _hex(digest),
    )  # fmt: skip


def _read_dnskey(fields: list[str], origin: str) -> Rdata:
    flags, protocol, algorithm, *key = _count(fields, 4, "DNSKEY", at_least=True)
    return DNSKEY(
        _uint(flags, 16, "flags"), _uint(protocol, 8, "protocol"), _algorithm(algorithm),
        _base64(key),
    )  # fmt: skip


def _read_rrsig(fields: list[str], origin: str) -> Rdata:
    covered, algorithm, labels, ttl, expiration, inception, tag, signer, *signature = _count(
        fields, 9, "RRSIG", at_least=True
    )
    return RRSIG(
        type_from_text(covered), _algorithm(algorithm), _uint(labels, 8, "labels"),
        parse_ttl(ttl), _time(expiration), _time(inception), _uint(tag, 16, "key tag"),
        absolute_name(signer, origin), _base64(signature),
    )  # fmt: skip


def _read_nsec(fields: list[str], origin: str) -> Rdata:
    next_name, *types = _count(fields, 1, "NSEC", at_least=True)
    return NSEC(absolute_name(next_name, origin), _types(types))


def _read_nsec3(fields: list[str], origin: str) -> Rdata:
    algorithm, flags, iterations, salt, next_hashed, *types = _count(
        fields, 5, "NSEC3", at_least=True
    )
    return NSEC3(
        _uint(algorithm, 8, "hash algorithm"), _uint(flags, 8, "flags"),
        _uint(iterations, 16, "iterations"), _salt(salt), _base32hex(next_hashed), _types(types),
    )  # fmt: skip


def _read_nsec3param(fields: list[str], origin: str) -> Rdata:
    algorithm, flags, iterations, salt = _count(fields, 4, "NSEC3PARAM")
    return NSEC3PARAM(
        _uint(algorithm, 8, "hash algorithm"), _uint(flags, 8, "flags"),
        _uint(iterations, 16, "iterations"), _salt(salt),
    )  # fmt: skip


def _salt(token: str) -> bytes:
    salt = b"" if token == "-" else _hex([token])
    if len(salt) > 255:
        raise ValueError("salt longer than 255 octets")
    return salt


_READERS: dict[int, TextReader] = {
    1: _read_a,
    2: _name_reader(NS),
    5: _name_reader(CNAME),
    6: _read_soa,
    12: _name_reader(PTR),
    15: _read_mx,
    16: _read_txt,
    28: _read_aaaa,
    33: _read_srv,
    39: _name_reader(DNAME),
    43: _read_ds,
    46: _read_rrsig,
    47: _read_nsec,
    48: _read_dnskey,
    50: _read_nsec3,
    51: _read_nsec3param,
}
