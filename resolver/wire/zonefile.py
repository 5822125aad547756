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
Record data in text form is :func:`resolver.wire.rdata_text.rdata_from_text`,
usable on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from resolver.wire.message import CLASS_IN, ResourceRecord
from resolver.wire.names import ROOT, normalize
from resolver.wire.rdata import SOA, Rdata
from resolver.wire.rdata_base import type_from_text
from resolver.wire.rdata_text import absolute_name, parse_ttl, rdata_from_text


class ZoneFileError(ValueError):
    """A master file that cannot be read; the message says ``source:line: why``."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}:{line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


CLASS_MNEMONICS = {"IN": 1, "CS": 2, "CH": 3, "HS": 4, "NONE": 254, "ANY": 255}

_SPECIAL = frozenset('"();\\')


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
    return list(iter_zone(text, origin, source, default_ttl=default_ttl))


def iter_zone(
    text: str,
    origin: str = ROOT,
    source: str = "<zone>",
    *,
    default_ttl: int | None = None,
) -> Iterator[ResourceRecord]:
    """The records of a master file one at a time, as :func:`parse_zone` gives them: a
    reader that compiles each as it comes (a million-record response policy zone) never
    holds them all."""
    return _Reader(origin, source, default_ttl).records(text)


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
