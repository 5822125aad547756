"""Master files (zone files) of RFC 1035 section 5, read into resource records.

What is understood: ``$ORIGIN`` (relative to the origin before it), ``$TTL``
(RFC 2308 section 4, with BIND's units: ``1h30m``), ``;`` comments, parentheses
that carry an entry over several lines, quoted strings with ``\\"``, ``\\DDD``
and ``\\c`` escapes, relative names and ``@``, an owner, TTL or class left out
and taken from before, TTL and class in either order, ``TYPEnnn`` and
``CLASSnnn``, and the generic ``\\# length hex`` rdata of RFC 3597 for any type.
``$INCLUDE`` is refused: a resolver reading a trust anchor or hints file should
not be sent to read other files.

A record without a TTL takes the ``$TTL`` in force (RFC 2308 section 4), else
the last TTL written out (RFC 1035 section 5.1), else the MINIMUM of an SOA
read before (the pre-RFC 2308 default BIND and dnspython keep), else it is an
error.  ``default_ttl`` acts as a ``$TTL`` at the top of the file (trust anchor
files often give no TTL at all).

Every error is a :class:`ZoneFileError` whose message starts ``file:line:``.
Record data in text form is :func:`rdata_from_text`, usable on its own.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from resolver.wire.dnssec_rdata import DNSKEY, DS, NSEC, NSEC3, NSEC3PARAM, RRSIG
from resolver.wire.message import CLASS_IN, ResourceRecord
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


class ZoneFileError(ValueError):
    """A master file that cannot be read; the message says ``source:line: why``."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}:{line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


CLASS_MNEMONICS = {"IN": 1, "CS": 2, "CH": 3, "HS": 4, "NONE": 254, "ANY": 255}

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
_SPECIAL = frozenset('"();\\')

TextReader = Callable[[list[str], str], Rdata]


# ---------------------------------------------------------------- tokens


class Entry(NamedTuple):
    """One logical line: where it starts, whether it names an owner, its tokens.

    Tokens keep their backslash escapes (a name needs ``\\.`` to stay one label);
    quoted strings lose their quotes.
    """

    line: int
    has_owner: bool
    tokens: list[str]


def entries(text: str, source: str = "<zone>") -> Iterator[Entry]:
    """Split master-file text into logical lines (RFC 1035 section 5.1)."""
    depth = 0
    opened_at = 0
    tokens: list[str] = []
    start = 1
    has_owner = False
    for lineno, line in enumerate(text.split("\n"), 1):
        if depth == 0:
            tokens, start = [], lineno
            has_owner = bool(line) and line[0] not in " \t"
        if _SPECIAL.isdisjoint(line):
            tokens += line.split()
        else:
            before = depth
            depth = _tokenize_line(line, tokens, depth, source, lineno)
            if before == 0 < depth:
                opened_at = lineno
        if depth == 0 and tokens:
            yield Entry(start, has_owner, tokens)
    if depth:
        raise ZoneFileError(source, opened_at, "parenthesis opened here is never closed")


def _tokenize_line(line: str, tokens: list[str], depth: int, source: str, lineno: int) -> int:
    """Add the tokens of one physical line; return the parenthesis depth after it."""
    current: list[str] = []
    i, end = 0, len(line)
    while i < end:
        char = line[i]
        if char in ' \t\r;()"':
            if current:
                tokens.append("".join(current))
                current = []
            if char == ";":
                break
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth < 0:
                    raise ZoneFileError(source, lineno, "')' without '('")
            elif char == '"':
                i = _quoted(line, i + 1, tokens, source, lineno)
                continue
            i += 1
        elif char == "\\":
            current.append(line[i : i + 2])  # keep the escape; a digit escape's rest follows
            i += 2
        else:
            current.append(char)
            i += 1
    if current:
        tokens.append("".join(current))
    return depth


def _quoted(line: str, i: int, tokens: list[str], source: str, lineno: int) -> int:
    """Read a quoted string starting after its opening quote; return the index after it."""
    out: list[str] = []
    end = len(line)
    while i < end:
        char = line[i]
        if char == '"':
            tokens.append("".join(out))
            return i + 1
        if char == "\\":
            out.append(line[i : i + 2])
            i += 2
        else:
            out.append(char)
            i += 1
    raise ZoneFileError(source, lineno, "quoted string not closed on its line")


# ---------------------------------------------------------------- records


def parse_zone(
    text: str,
    origin: str = ROOT,
    source: str = "<zone>",
    *,
    default_ttl: int | None = None,
) -> list[ResourceRecord]:
    """Every record of a master file, owner names absolute, in file order."""
    return list(_Reader(origin, source, default_ttl).records(text))


def load_zone(
    path: str | Path, origin: str = ROOT, *, default_ttl: int | None = None
) -> list[ResourceRecord]:
    """Read and parse a master file; errors name the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ZoneFileError(str(path), 0, f"cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ZoneFileError(str(path), 0, "not UTF-8 text") from None
    return parse_zone(text, origin, str(path), default_ttl=default_ttl)


class _Reader:
    """The state a master file carries from line to line."""

    def __init__(self, origin: str, source: str, default_ttl: int | None) -> None:
        self.source = source
        self.origin = normalize(origin)
        self.ttl_directive = default_ttl  # $TTL, or what the caller gave instead
        self.directive_from_soa = False
        self.last_ttl: int | None = None  # the last TTL written on a record
        self.owner: str | None = None
        self.rrclass = CLASS_IN

    def records(self, text: str) -> Iterator[ResourceRecord]:
        for entry in entries(text, self.source):
            try:
                if entry.has_owner and entry.tokens[0].startswith("$"):
                    self._directive(entry.tokens)
                else:
                    yield self._record(entry)
            except (ValueError, OverflowError) as error:
                if isinstance(error, ZoneFileError):
                    raise
                raise ZoneFileError(self.source, entry.line, str(error)) from None

    def _directive(self, tokens: list[str]) -> None:
        name = tokens[0].upper()
        if name == "$ORIGIN" and len(tokens) == 2:
            self.origin = absolute_name(tokens[1], self.origin)
        elif name == "$TTL" and len(tokens) == 2:
            self.ttl_directive, self.directive_from_soa = parse_ttl(tokens[1]), False
        elif name == "$INCLUDE":
            raise ValueError("$INCLUDE is not supported: put the records in this file")
        elif name in ("$ORIGIN", "$TTL"):
            raise ValueError(f"{tokens[0]} takes exactly one value")
        else:
            raise ValueError(f"unknown directive {tokens[0]}")

    def _record(self, entry: Entry) -> ResourceRecord:
        tokens = entry.tokens
        pos = 0
        if entry.has_owner:
            self.owner = absolute_name(tokens[0], self.origin)
            pos = 1
        if self.owner is None:
            raise ValueError("record without an owner name, and none before it")
        ttl, rrclass, pos = self._ttl_and_class(tokens, pos)
        if pos >= len(tokens):
            raise ValueError("record without a type")
        rrtype = type_from_text(tokens[pos])
        rdata = rdata_from_text(rrtype, tokens[pos + 1 :], self.origin)
        return ResourceRecord(self.owner, rrtype, rrclass, self._resolve_ttl(ttl, rdata), rdata)

    def _ttl_and_class(self, tokens: list[str], pos: int) -> tuple[int | None, int, int]:
        ttl: int | None = None
        rrclass: int | None = None
        for _ in range(2):  # at most one of each, in either order (RFC 1035 section 5.1)
            if pos >= len(tokens):
                break
            token = tokens[pos]
            if ttl is None and token[:1].isdigit():
                ttl = parse_ttl(token)
            elif rrclass is None and _is_class(token):
                rrclass = class_from_text(token)
            else:
                break
            pos += 1
        if rrclass is not None:
            self.rrclass = rrclass
        if ttl is not None:
            self.last_ttl = ttl
        return ttl, self.rrclass, pos

    def _resolve_ttl(self, ttl: int | None, rdata: Rdata) -> int:
        if isinstance(rdata, SOA) and self.ttl_directive is None:
            # Before RFC 2308 the SOA MINIMUM was the default TTL; BIND and dnspython
            # still use it when no $TTL came first, after any TTL written out.
            self.ttl_directive, self.directive_from_soa = rdata.minimum, True
        if ttl is not None:
            return ttl
        if self.last_ttl is not None and (self.ttl_directive is None or self.directive_from_soa):
            return self.last_ttl
        if self.ttl_directive is not None:
            return self.ttl_directive
        raise ValueError("no TTL on this record and no $TTL before it")


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


def _is_class(token: str) -> bool:
    upper = token.upper()
    return upper in CLASS_MNEMONICS or (upper.startswith("CLASS") and upper[5:].isdigit())


def class_from_text(token: str) -> int:
    upper = token.upper()
    if upper in CLASS_MNEMONICS:
        return CLASS_MNEMONICS[upper]
    if upper.startswith("CLASS") and upper[5:].isdigit() and int(upper[5:]) <= 0xFFFF:
        return int(upper[5:])
    raise ValueError(f"unknown class {token!r}")


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
