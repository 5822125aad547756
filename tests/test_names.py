"""Domain names: text form (RFC 1035 section 5.1 escapes), wire form, decompression guards."""

from __future__ import annotations

import dns.name
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from resolver.wire.names import (
    BadName,
    WireError,
    ancestors,
    is_subdomain,
    label_count,
    labels_to_text,
    name_key,
    name_to_wire,
    normalize,
    parent,
    read_name,
    text_to_labels,
)

BOUNDED = settings(max_examples=300, deadline=None)

# Labels made of any bytes, with the troublemakers (dot, backslash, NUL, 0xff, space,
# quote, digits right after an escape) drawn often.
ODD = b'.\\\x00\xff "();@$09aZ'
labels_st = st.one_of(
    st.binary(min_size=1, max_size=63),
    st.lists(st.sampled_from(list(ODD)), min_size=1, max_size=8).map(bytes),
)
label_lists = st.lists(labels_st, max_size=8)


def wire_of(labels: list[bytes]) -> bytes:
    return b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"


# ---------------------------------------------------------------- text form


@BOUNDED
@given(label_lists)
def test_labels_text_round_trip(labels: list[bytes]) -> None:
    text = labels_to_text(labels)
    assert text.endswith(".")
    assert text.isascii() and text.isprintable()
    assert text_to_labels(text) == labels
    # The text is canonical: normalizing it changes nothing.
    assert normalize(text) == text


@BOUNDED
@given(label_lists)
def test_text_form_agrees_with_dnspython(labels: list[bytes]) -> None:
    """dnspython reads our escapes to the same labels, and we read its escapes."""
    assume(len(wire_of(labels)) <= 255)
    text = labels_to_text(labels)
    theirs = dns.name.from_text(text)
    assert list(theirs.labels[:-1]) == labels
    assert text_to_labels(theirs.to_text()) == labels


def test_text_escapes() -> None:
    assert labels_to_text([]) == "."
    assert labels_to_text([b"www", b"example", b"com"]) == "www.example.com."
    assert labels_to_text([b"a.b", b"c"]) == "a\\.b.c."
    assert labels_to_text([b"a\\b"]) == "a\\\\b."
    assert labels_to_text([b"\x00\xff"]) == "\\000\\255."
    assert labels_to_text([b"sp ace"]) == "sp\\ ace."
    assert labels_to_text([b"\x001"]) == "\\0001."
    assert text_to_labels("a\\.b.c.") == [b"a.b", b"c"]
    assert text_to_labels("\\065\\.x") == [b"A.x"]
    assert text_to_labels("\\0001.") == [b"\x001"]
    assert text_to_labels(".") == []
    assert text_to_labels("") == []
    assert text_to_labels("Example.COM") == [b"Example", b"COM"]


@pytest.mark.parametrize(
    "text",
    [
        "a..b.",
        ".a.",
        "..",
        "a\\",
        "a\\256.",
        "caf\u00e9.com.",
        "a\\\u20ac.",
        "a\\\u00e9.",
        "x\\\u0661\u0662\u0663.",  # Arabic-Indic digits are not \DDD
        "a" * 64 + ".",
    ],
)
def test_bad_text_names(text: str) -> None:
    with pytest.raises(BadName):
        name_to_wire(text)


def test_normalize_and_key() -> None:
    assert normalize("Example.COM") == "Example.COM."
    assert normalize(".") == "."
    assert name_key("WwW.Example.COM.") == "www.example.com."
    # Only ASCII is folded (RFC 4343): an escaped byte stays what it is.
    assert name_key("\\200A.") == "\\200a."


# ---------------------------------------------------------------- wire form


def test_name_to_wire() -> None:
    assert name_to_wire(".") == b"\x00"
    assert name_to_wire("www.Example.com.") == b"\x03www\x07Example\x03com\x00"
    assert name_to_wire("a\\.b.") == b"\x03a.b\x00"
    assert len(name_to_wire("a" * 63 + ".")) == 65


def test_name_length_limits() -> None:
    # 4 labels of 63 octets: 4 * 64 + 1 = 257 octets on the wire, over 255.
    long_name = ".".join(["a" * 63] * 4) + "."
    with pytest.raises(BadName, match="255"):
        name_to_wire(long_name)
    # 3 * 64 + 61 + 1 = 254 octets: allowed; 255 exactly: allowed too.
    assert len(name_to_wire(".".join(["a" * 63] * 3 + ["a" * 60]) + ".")) == 254
    assert len(name_to_wire(".".join(["a" * 63] * 3 + ["a" * 61]) + ".")) == 255
    with pytest.raises(BadName):
        name_to_wire(".".join(["a" * 63] * 3 + ["a" * 62]) + ".")


@BOUNDED
@given(label_lists)
def test_wire_matches_dnspython(labels: list[bytes]) -> None:
    text = labels_to_text(labels)
    wire = wire_of(labels)
    if len(wire) > 255:
        with pytest.raises(BadName):
            name_to_wire(text)
        return
    assert name_to_wire(text) == wire == dns.name.from_text(text).to_wire()
    assert read_name(b"\xff" + wire + b"\xee", 1) == (text, len(wire) + 1)


# ---------------------------------------------------------------- decompression

# The compressed two-question packet of /work/shared/seeds/003 (Rust DNS tutorial, part 2).
SEED_003 = bytes.fromhex(
    "43e6 0100 0002 0000 0000 0000"
    "03 777777 0b 727573742d7472656e6473 03 636f6d 00 0001 0001"
    "03 646576 c010 0001 0001"
)


def test_seed_packet_names() -> None:
    assert read_name(SEED_003, 12) == ("www.rust-trends.com.", 0x21)
    assert read_name(SEED_003, 0x25) == ("dev.rust-trends.com.", 0x2B)
    assert read_name(SEED_003, 0x10) == ("rust-trends.com.", 0x21)


def test_case_is_kept() -> None:
    data = b"\x03WwW\x07eXample\x03COM\x00\x01a\xc0\x04"
    assert read_name(data, 0) == ("WwW.eXample.COM.", 17)
    assert read_name(data, 17) == ("a.eXample.COM.", 21)


# (packet, offset to read at, reason fragment, offset of the error)
MALFORMED = [
    pytest.param(b"\xc0\x00", 0, "does not point backwards", 0, id="pointer-to-itself"),
    pytest.param(b"\x01a\xc0\x00", 0, "does not point backwards", 2, id="pointer-to-own-start"),
    pytest.param(b"\x00\x01a\xc0\x03\xc0\x01", 5, "backwards", 3, id="loop-two-pointers"),
    pytest.param(b"\xc0\x02\x00", 0, "does not point backwards", 0, id="forward-pointer"),
    pytest.param(b"\x00\x00\xc0\x40", 2, "does not point backwards", 2, id="pointer-past-end"),
    pytest.param(b"\x00\x01a\xc0", 3, "pointer cut short", 3, id="pointer-cut-short"),
    pytest.param(b"\x40" + b"a" * 64 + b"\x00", 0, "reserved label type 0x40", 0, id="label-01"),
    pytest.param(b"\x01a\x80\x00", 0, "reserved label type 0x80", 2, id="label-10"),
    pytest.param(b"\x05abc", 0, "label runs past the end", 0, id="label-past-end"),
    pytest.param(b"\x03abc", 0, "name runs past the end", 4, id="no-root-label"),
    pytest.param(b"", 0, "name runs past the end", 0, id="empty"),
]


@pytest.mark.parametrize(("data", "offset", "reason", "at"), MALFORMED)
def test_malformed_names(data: bytes, offset: int, reason: str, at: int) -> None:
    with pytest.raises(WireError) as caught:
        read_name(data, offset)
    assert reason in caught.value.reason
    assert caught.value.offset == at
    assert f"at offset {at}" in str(caught.value)
    # The same with a message's name cache.
    with pytest.raises(WireError, match=reason):
        read_name(data, offset, {})


def test_name_over_255_octets_through_pointers() -> None:
    # 63-octet labels chained by pointers: each piece alone is fine, together they are not.
    piece = b"\x3f" + b"x" * 63
    data = piece + b"\x00"  # offset 0: one label
    data += piece + b"\xc0\x00"  # offset 65: two labels
    data += piece + b"\xc0\x41"  # offset 131: three labels (193 + 1 octets)
    third = len(data)
    data += piece + b"\xc0\x83"  # offset 197: four labels, 257 octets
    assert read_name(data, third - 66)[0].count(".") == 3
    for cache in (None, {}):
        with pytest.raises(WireError, match="longer than 255"):
            read_name(data, third, cache)


def test_cache_hit_still_checks_length() -> None:
    """A name ending in a cached suffix is measured with that suffix included."""
    piece = b"\x3f" + b"x" * 63
    data = piece + piece + piece + b"\x00"  # 193 octets at offset 0
    second = len(data)
    data += piece + b"\xc0\x00"
    cache: dict[int, tuple[str, int]] = {}
    assert read_name(data, 0, cache)[1] == second
    assert cache[0][1] == 193
    with pytest.raises(WireError, match="longer than 255") as caught:
        read_name(data, second, cache)
    assert caught.value.offset == second + 64


@BOUNDED
@given(st.lists(label_lists, min_size=1, max_size=6), st.data())
def test_cache_agrees_with_plain_read(names: list[list[bytes]], data: st.DataObject) -> None:
    """Names written with random compression read the same with and without the cache."""
    buf = bytearray(b"\xaa")
    starts = []
    for labels in names:
        starts.append(len(buf))
        i = 0
        while i < len(labels):
            if starts[:-1] and data.draw(st.booleans()):
                # Point at the start of some earlier name (any suffix shape is fine).
                target = data.draw(st.sampled_from(starts[:-1]))
                buf += (0xC000 | target).to_bytes(2, "big")
                break
            buf += bytes((len(labels[i]),)) + labels[i]
            i += 1
        else:
            buf += b"\x00"
    data_bytes = bytes(buf)
    cache: dict[int, tuple[str, int]] = {}
    for start in starts:
        try:
            plain = read_name(data_bytes, start)
        except WireError as error:
            with pytest.raises(WireError) as caught:
                read_name(data_bytes, start, cache)
            assert caught.value.reason == error.reason
            continue
        assert read_name(data_bytes, start, cache) == plain
        assert cache[start][0] == plain[0]


# ---------------------------------------------------------------- comparisons


def test_is_subdomain() -> None:
    assert is_subdomain("www.example.com.", "example.com.")
    assert is_subdomain("WWW.Example.COM.", "example.com.")
    assert is_subdomain("example.com.", "EXAMPLE.com.")
    assert is_subdomain("anything.", ".")
    assert not is_subdomain("le.com.", "example.com.")
    assert not is_subdomain("example.com.", "le.com.")
    assert not is_subdomain("com.", "example.com.")
    # An escaped dot is not a label boundary.
    assert not is_subdomain("a\\.example.com.", "example.com.")
    assert is_subdomain("a\\.b.example.com.", "b.example.com.") is False
    assert is_subdomain("x.a\\.b.example.com.", "a\\.b.example.com.")
    assert is_subdomain("a\\\\.b.", "b.")  # escaped backslash, then a real dot


def test_parent_label_count_ancestors() -> None:
    assert parent("www.example.com.") == "example.com."
    assert parent("com.") == "."
    assert parent(".") == "."
    assert parent("a\\.b.c.") == "c."
    assert parent("a\\\\.b.c.") == "b.c."
    assert label_count(".") == 0
    assert label_count("www.example.com.") == 3
    assert label_count("a\\.b.c.") == 2
    assert ancestors("www.example.com.") == ["www.example.com.", "example.com.", "com.", "."]
    assert ancestors(".") == ["."]


@BOUNDED
@given(label_lists, label_lists)
def test_subdomain_agrees_with_dnspython(labels: list[bytes], above: list[bytes]) -> None:
    assume(len(wire_of(labels + above)) <= 255)
    name = labels_to_text(labels + above)
    zone = labels_to_text(above)
    other = labels_to_text(labels)
    for a, b in ((name, zone), (zone, name), (name, other), (other, zone)):
        expected = dns.name.from_text(a).is_subdomain(dns.name.from_text(b))
        assert is_subdomain(a, b) == expected, (a, b)
    if labels:
        assert text_to_labels(parent(name)) == labels[1:] + above


@given(
    st.text(alphabet="ab.-\\09é", max_size=300) | st.from_regex(r"[a-z0-9.]{0,300}", fullmatch=True)
)
def test_wire_form_is_the_labels_whatever_the_path(text: str) -> None:
    """name_to_wire has a fast path for plain ASCII names; it agrees with the labels."""
    try:
        labels = text_to_labels(text)
        expected = b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"
        if len(expected) > 255:
            raise BadName("too long")
    except BadName:
        with pytest.raises(BadName):
            name_to_wire.__wrapped__(text)
        return
    assert name_to_wire.__wrapped__(text) == expected
