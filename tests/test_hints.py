"""Root hints parsing (resolver.iterate.hints).  Parsing only: nothing here sends a packet."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from resolver.iterate.hints import DEFAULT_HINTS, HintsError, load_root_hints, parse_root_hints
from resolver.wire.names import name_key

# ---------------------------------------------------------------------- the shipped file


def test_shipped_named_root_has_the_13_root_servers_in_order() -> None:
    hints = load_root_hints()  # parse only: never used to resolve in tests
    assert hints.source == str(DEFAULT_HINTS)
    names = [name_key(server.name) for server in hints.servers]
    assert names == [f"{letter}.root-servers.net." for letter in string.ascii_lowercase[:13]]
    for server in hints.servers:
        assert len(server.ipv4) == 1 and "." in server.ipv4[0], server.name
        assert len(server.ipv6) == 1 and ":" in server.ipv6[0], server.name
    assert hints.servers[0].ipv4 == ["198.41.0.4"]
    assert hints.servers[0].ipv6 == ["2001:503:ba3e::2:30"]
    assert hints.ttl == 3600000


def test_addresses_in_file_order() -> None:
    hints = load_root_hints()
    both = hints.addresses()
    assert len(both) == 26 and both[:2] == ["198.41.0.4", "2001:503:ba3e::2:30"]


# ---------------------------------------------------------------------- syntax


def test_origin_ttl_relative_names_at_and_omitted_owner() -> None:
    text = """\
; comment line
$TTL 518400
$ORIGIN root-servers.net.
@               NS   a          ; '@' is the origin, not the root: rejected below if used
"""
    with pytest.raises(HintsError, match=r"line 4: NS record for root-servers\.net\."):
        parse_root_hints(text)

    text = """\
$TTL 518400
.               NS   a.root-servers.net.
.          IN   NS   b.root-servers.net.
$ORIGIN root-servers.net.
a               A    192.0.2.1      ; relative owner
                AAAA 2001:db8::1    ; omitted owner: the previous one (a)
b      3600 IN  A    192.0.2.2
       IN  3600 AAAA 2001:db8::2    ; class and TTL in either order

"""
    hints = parse_root_hints(text, "test")
    assert [s.name for s in hints.servers] == ["a.root-servers.net.", "b.root-servers.net."]
    assert hints.servers[0].ipv4 == ["192.0.2.1"] and hints.servers[0].ipv6 == ["2001:db8::1"]
    assert hints.servers[1].ipv4 == ["192.0.2.2"] and hints.servers[1].ipv6 == ["2001:db8::2"]
    assert hints.ttl == 518400
    assert hints.source == "test"


def test_at_is_the_root_by_default_and_names_may_be_relative_to_the_root() -> None:
    text = """\
@    3600 NS a.root-servers.net
a.root-servers.net 3600 A 192.0.2.1
"""
    hints = parse_root_hints(text)
    assert hints.servers[0].name == "a.root-servers.net."
    assert hints.servers[0].ipv4 == ["192.0.2.1"]


def test_relative_origin_is_relative_to_the_current_origin() -> None:
    text = """\
$TTL 3600
$ORIGIN net.
$ORIGIN root-servers
.  NS  a
a  A   192.0.2.1
"""
    hints = parse_root_hints(text)
    assert hints.servers[0].name == "a.root-servers.net."
    assert hints.servers[0].ipv4 == ["192.0.2.1"]


def test_names_compare_without_case() -> None:
    text = """\
.                  3600 NS A.ROOT-SERVERS.NET.
a.root-servers.net. 3600 A 192.0.2.1
"""
    hints = parse_root_hints(text)
    assert hints.servers[0].name == "A.ROOT-SERVERS.NET."
    assert hints.servers[0].ipv4 == ["192.0.2.1"]


def test_server_without_address_is_kept_but_others_are_usable() -> None:
    text = """\
. 3600 NS a.root-servers.net.
. 3600 NS b.root-servers.net.
b.root-servers.net. 3600 A 192.0.2.2
"""
    hints = parse_root_hints(text)
    assert [(s.name, s.ipv4) for s in hints.servers] == [
        ("a.root-servers.net.", []),
        ("b.root-servers.net.", ["192.0.2.2"]),
    ]


def test_ipv6_addresses_are_normalised() -> None:
    text = """\
. 3600 NS a.root-servers.net.
a.root-servers.net. 3600 AAAA 2001:DB8:0:0::1
"""
    assert parse_root_hints(text).servers[0].ipv6 == ["2001:db8::1"]


# ---------------------------------------------------------------------- errors


GOOD_START = ". 3600 NS a.root-servers.net.\n"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("a.root-servers.net. 3600 A 192.0.2.300", "line 2: Octet 300 (> 255) not permitted"),
        ("a.root-servers.net. 3600 A 2001:db8::1", "line 2: Expected 4 octets in '2001:db8::1'"),
        ("a.root-servers.net. 3600 AAAA 192.0.2.1", "line 2: At least 3 parts expected"),
        ("a.root-servers.net. 3600 MX 10 mail.example.", "line 2: record type MX is not used"),
        ("a.root-servers.net. 3600 TXT hello", "line 2: record type TXT is not used in hints"),
        ("a.root-servers.net. 3600 A 192.0.2.1 extra", "line 2: A takes 1 fields, got 2"),
        ("a.root-servers.net. 3600 CH A 192.0.2.1", "line 2: class CH is not IN"),
        ("$INCLUDE other.hints", "line 2: $INCLUDE is not supported"),
        ("$GENERATE 1-2 x A 192.0.2.$", "line 2: unknown directive $GENERATE"),
        ("a.root-servers.net. 3600 A ( 192.0.2.1", "line 2: parenthesis opened here is never"),
        ("example.com. 3600 NS ns1.example.com.", "line 2: NS record for example.com."),
        ("a..root-servers.net. 3600 A 192.0.2.1", "line 2: bad name"),
    ],
)
def test_errors_name_the_line(line: str, message: str) -> None:
    with pytest.raises(HintsError) as error:
        parse_root_hints(GOOD_START + line + "\n")
    assert message in str(error.value)


def test_multi_line_records_and_the_last_ttl_written_out() -> None:
    """Parentheses carry a record over lines; a record without a TTL takes the last one
    written out (RFC 1035 section 5.1); with none at all, the record is an error."""
    hints = parse_root_hints(GOOD_START + "a.root-servers.net. A (\n  192.0.2.1 )\n")
    assert hints.servers[0].ipv4 == ["192.0.2.1"]
    with pytest.raises(HintsError, match=r"line 1: no TTL on this record and no \$TTL before it"):
        parse_root_hints(". NS a.root-servers.net.\n")


def test_record_without_owner() -> None:
    with pytest.raises(HintsError, match=r"^<hints>: line 1: record without an owner name"):
        parse_root_hints("   3600 A 192.0.2.1\n")


def test_no_usable_address() -> None:
    with pytest.raises(HintsError, match="no root server with an address"):
        parse_root_hints(GOOD_START, "empty.hints")
    with pytest.raises(HintsError, match=r"empty\.hints"):
        parse_root_hints("", "empty.hints")
    # addresses for a name that is not a root server do not count
    with pytest.raises(HintsError, match="no root server with an address"):
        parse_root_hints(GOOD_START + "x.root-servers.net. 3600 A 192.0.2.1\n")


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.hints"
    with pytest.raises(HintsError, match=r"cannot read root hints .*missing\.hints"):
        load_root_hints(missing)
    with pytest.raises(HintsError, match="cannot read root hints"):
        load_root_hints(tmp_path)  # a directory


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "binary.hints"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(HintsError, match="not UTF-8"):
        load_root_hints(path)


def test_file_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.hints"
    path.write_text(GOOD_START + "a.root-servers.net. 3600 A nope\n")
    with pytest.raises(HintsError) as error:
        load_root_hints(path)
    assert str(error.value).startswith(f"{path}: line 2: ")


def test_load_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "root.hints"
    path.write_text(GOOD_START + "a.root-servers.net. 3600 A 127.1.0.1\n")
    hints = load_root_hints(path)
    assert hints.source == str(path)
    assert hints.addresses() == ["127.1.0.1"]
