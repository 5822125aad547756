"""Domain names: the wire form, the text form, and comparisons between them.

Names travel through the resolver as absolute text with a trailing dot
(``"www.example.com."``, the root is ``"."``), in the presentation format of
RFC 1035 section 5.1: a byte that is not a plain printable character is written
as ``\\DDD`` and a special character (``.``, ``\\``, ``"``, ``;``, ...) as
``\\c``.  Text keeps the case a name arrived with; comparisons go through
:func:`name_key`, which folds ASCII case only, as RFC 4343 asks.

Decompression on read lives here too, with every guard a hostile packet needs:
RFC 1035 section 4.1.4 pointers must point strictly backwards (which alone makes
loops impossible), labels are at most 63 octets, names at most 255 octets, and
the reserved label types 0b01 and 0b10 are refused.
"""

from __future__ import annotations

from functools import lru_cache

MAX_NAME_OCTETS = 255  # RFC 1035 section 2.3.4, counted in wire form
MAX_LABEL_OCTETS = 63

ROOT = "."

# Bytes written as themselves in text form.  Everything else is escaped.
_PLAIN = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*/+=!#%&',:<>?[]^`{|}~"
# Printable bytes that have a meaning in master files, so get a backslash.
_SPECIAL = frozenset(b'."\\;()@$ ')


class BadName(ValueError):
    """Raised for a name that cannot exist on the wire (label or name too long)."""


class WireError(ValueError):
    """Malformed DNS data on the wire: says what was wrong and at which offset.

    It is the one error the wire codec lets escape, so a caller needs to catch
    only this to survive any packet.
    """

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(f"{reason} at offset {offset}")
        self.reason = reason
        self.offset = offset


def name_key(name: str) -> str:
    """The form names are compared and looked up by (RFC 4343: ASCII case folded)."""
    return name.lower()


def _label_to_text(label: bytes) -> str:
    if not label.translate(None, _PLAIN):
        return label.decode("ascii")
    out = []
    for byte in label:
        if byte in _SPECIAL:
            out.append("\\" + chr(byte))
        elif 0x21 <= byte <= 0x7E:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return "".join(out)


def labels_to_text(labels: list[bytes]) -> str:
    """Text form of a label sequence, without the root label."""
    if not labels:
        return ROOT
    if not b"".join(labels).translate(None, _PLAIN):
        return b".".join(labels).decode("ascii") + "."
    return ".".join(_label_to_text(label) for label in labels) + "."


def _split_escaped(text: str) -> list[bytes]:
    """Split text with backslash escapes into raw labels."""
    labels: list[bytes] = []
    current = bytearray()
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            digits = text[i + 1 : i + 4]
            if len(digits) == 3 and digits.isascii() and digits.isdigit():
                value = int(digits)
                if value > 255:
                    raise BadName(f"escape \\{value} is not a byte in {text!r}")
                current.append(value)
                i += 4
                continue
            if i + 1 >= len(text):
                raise BadName(f"name ends in a lone backslash: {text!r}")
            if not text[i + 1].isascii():
                raise BadName(f"non-ASCII character in {text!r} (use IDNA)")
            current += text[i + 1].encode("ascii")
            i += 2
            continue
        if char == ".":
            if not current:
                raise BadName(f"empty label in {text!r}")
            labels.append(bytes(current))
            current = bytearray()
        else:
            try:
                current += char.encode("ascii")
            except UnicodeEncodeError:
                raise BadName(f"non-ASCII character in {text!r} (use IDNA)") from None
        i += 1
    if current:
        labels.append(bytes(current))
    return labels


def text_to_labels(name: str) -> list[bytes]:
    """Raw labels of a text name (trailing dot optional; the root has none)."""
    if name in (".", ""):
        return []
    if "\\" in name:
        labels = _split_escaped(name)
    else:
        body = name[:-1] if name.endswith(".") else name
        try:
            labels = [label.encode("ascii") for label in body.split(".")]
        except UnicodeEncodeError:
            raise BadName(f"non-ASCII character in {name!r} (use IDNA)") from None
        if b"" in labels:
            raise BadName(f"empty label in {name!r}")
    for label in labels:
        if len(label) > MAX_LABEL_OCTETS:
            raise BadName(f"label longer than 63 octets in {name!r}")
    return labels


def normalize(name: str) -> str:
    """Canonical absolute text for a name typed by a person (adds the trailing dot)."""
    return labels_to_text(text_to_labels(name))


@lru_cache(maxsize=16384)
def name_to_wire(name: str) -> bytes:
    """Uncompressed wire form of a text name, checked against RFC 1035 limits."""
    if name.isascii() and "\\" not in name:
        # The common case, without escapes: one pass over the bytes.  Anything wrong
        # (an empty or long label, a long name) is left to the full path for its error.
        raw = name.encode("ascii")
        if raw.endswith(b"."):
            raw = raw[:-1]
        plain = bytearray()
        for label in raw.split(b".") if raw else ():
            if not 0 < len(label) <= MAX_LABEL_OCTETS:
                break
            plain.append(len(label))
            plain += label
        else:
            plain.append(0)
            if len(plain) <= MAX_NAME_OCTETS:
                return bytes(plain)
    labels = text_to_labels(name)
    wire = b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"
    if len(wire) > MAX_NAME_OCTETS:
        raise BadName(f"name longer than 255 octets: {name!r}")
    return wire


NameCache = dict[int, tuple[str, int]]
"""Names already read in one message: offset -> (text of the name there, wire octets)."""


def _with_tail(labels: list[bytes], tail: str) -> str:
    if not labels:
        return tail
    text = labels_to_text(labels)
    return text if tail == ROOT else text + tail


def read_name(data: bytes, offset: int, cache: NameCache | None = None) -> tuple[str, int]:
    """Decompress the name at ``offset``; return it and the offset just past it.

    Each compression pointer must point strictly before the previous one (or
    the name's start), the rule dnspython uses: it makes loops impossible and
    bounds the work for one name by the message length.

    ``cache`` (one dict per message) remembers the name found at every offset a
    name started at or a pointer led to.  What a pointer leads to depends only on
    its target (the backwards rule restarts there), so a hit ends the walk.  This
    keeps a whole message linear: without it, many names each pointing at the top
    of a long chain of pointers would cost names x chain.
    """
    limit = len(data)
    if offset >= limit:
        raise WireError("name runs past the end of the message", offset)
    length = data[offset]
    if length == 0:  # the root (the owner of OPT)
        if cache is not None:
            cache[offset] = (ROOT, 1)
        return ROOT, offset + 1
    if length >= 0xC0 and cache is not None and offset + 1 < limit:
        # The commonest name in a reply: a pointer straight to a name read before (the
        # owner of every record of an answer points at the question).
        target = ((length & 0x3F) << 8) | data[offset + 1]
        if target < offset:
            hit = cache.get(target)
            if hit is not None:
                cache[offset] = hit
                return hit[0], offset + 2
    labels: list[bytes] = []
    size = 1  # the root label
    end = -1  # where the name ends in the original position, once a pointer is followed
    lowest = pos = offset
    tail = ROOT  # a cached name this one ends with
    # (target, labels before it, size before it) for every pointer followed
    marks: list[tuple[int, int, int]] = []
    while True:
        if length < 64:
            if length == 0:
                pos += 1
                break
            size += length + 1
            if size > MAX_NAME_OCTETS:
                raise WireError("name longer than 255 octets", pos)
            start = pos + 1
            pos = start + length
            if pos > limit:
                raise WireError("label runs past the end of the message", start - 1)
            labels.append(data[start:pos])
        elif length >= 0xC0:
            if pos + 1 >= limit:
                raise WireError("compression pointer cut short", pos)
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if target >= lowest:
                raise WireError("compression pointer does not point backwards", pos)
            if end < 0:
                end = pos + 2
            if cache is not None:
                hit = cache.get(target)
                if hit is not None:
                    tail, tail_size = hit
                    size += tail_size - 1
                    if size > MAX_NAME_OCTETS:
                        raise WireError("name longer than 255 octets", pos)
                    break
                marks.append((target, len(labels), size))
            lowest = pos = target
        else:
            raise WireError(f"reserved label type 0x{length:02x}", pos)
        if pos >= limit:
            raise WireError("name runs past the end of the message", pos)
        length = data[pos]
    if not labels:
        text = tail
    else:
        if b"".join(labels).translate(None, _PLAIN):
            text = labels_to_text(labels)
        else:
            text = b".".join(labels).decode("ascii") + "."
        if tail != ROOT:
            text += tail
    if cache is not None:
        cache[offset] = (text, size)
        for at, index, before in marks:
            suffix = text if index == 0 else _with_tail(labels[index:], tail)
            cache[at] = (suffix, size - before + 1)
    return text, (end if end >= 0 else pos)


def _is_label_boundary(name: str, dot: int) -> bool:
    """True when ``name[dot]`` is a separator, not an escaped dot inside a label."""
    backslashes = 0
    i = dot - 1
    while i >= 0 and name[i] == "\\":
        backslashes += 1
        i -= 1
    return backslashes % 2 == 0


def is_subdomain(name: str, zone: str) -> bool:
    """True when ``name`` is ``zone`` or below it, compared label by label.

    A plain string suffix test would take ``le.com.`` as a parent of
    ``example.com.``; this checks that the match starts at a label boundary.
    """
    if zone == ROOT:
        return True
    name, zone = name_key(name), name_key(zone)
    if name == zone:
        return True
    if not name.endswith(zone) or len(name) <= len(zone):
        return False
    dot = len(name) - len(zone) - 1
    return name[dot] == "." and _is_label_boundary(name, dot)


def parent(name: str) -> str:
    """The name one label up (the root is its own parent)."""
    if name == ROOT:
        return ROOT
    dot = name.find(".")
    while dot >= 0 and not _is_label_boundary(name, dot):
        dot = name.find(".", dot + 1)
    rest = name[dot + 1 :]
    return rest or ROOT


def label_count(name: str) -> int:
    """Number of labels, not counting the root (``"."`` has 0)."""
    if name == ROOT:
        return 0
    if "\\" not in name:
        return name.count(".")
    return len(text_to_labels(name))


def ancestors(name: str) -> list[str]:
    """``name`` and every name above it, deepest first, ending with the root."""
    chain = [name]
    while name != ROOT:
        name = parent(name)
        chain.append(name)
    return chain
