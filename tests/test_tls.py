"""The pieces of the encrypted transports that need no connection: EDNS padding on raw
messages (resolver.wire.raw), the server contexts and their errors
(resolver.serve.tls), and the settings (tls-port, https-port, tls-certificate, tls-key;
forward zones with tls = true)."""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path

import dns.edns
import dns.message
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resolver.net.tls_upstream import TlsServer
from resolver.ops.config import SettingsError, load_settings
from resolver.ops.encrypted import load_certificate, tls_forwarders
from resolver.ops.runtime import configured_zones
from resolver.ops.sections import parse_forward_zones
from resolver.serve.tls import ALPN_DOT, TlsError, server_context
from resolver.wire import WireError
from resolver.wire.raw import (
    PADDING_OPTION,
    QUERY_BLOCK,
    RESPONSE_BLOCK,
    has_padding,
    pad,
    smallest_ttl,
)
from scripts.reliability.tls_lab import CertificateFiles, make_certificates


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


# -- padding --------------------------------------------------------------------------


def response(answers: int = 1, edns: bool = True, ttl: int = 300, **kwargs: object) -> bytes:
    query = dns.message.make_query("www.example.com.", "A", use_edns=0 if edns else False)
    reply = dns.message.make_response(query)
    for i in range(answers):
        address = f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"
        reply.answer.append(dns.rrset.from_text("www.example.com.", ttl + i, "IN", "A", address))
    return reply.to_wire(**kwargs)  # type: ignore[arg-type]


def padding_of(wire: bytes) -> bytes | None:
    for option in dns.message.from_wire(wire).options:
        if option.otype == dns.edns.OptionType.PADDING:
            return option.to_wire()
    return None


@settings(max_examples=200, deadline=None)
@given(answers=st.integers(0, 60), block=st.sampled_from([QUERY_BLOCK, RESPONSE_BLOCK, 7, 1]))
def test_pad_reaches_a_multiple_of_the_block(answers: int, block: int) -> None:
    wire = response(answers)
    padded = pad(wire, block)
    assert len(padded) % block == 0 and len(padded) >= len(wire) + 4
    assert padded[:2] == wire[:2]
    parsed = dns.message.from_wire(padded)  # still a well-formed message, the same records
    assert parsed.answer == dns.message.from_wire(wire).answer
    padding = padding_of(padded)
    assert padding is not None and set(padding) <= {0}  # zeros (RFC 7830 section 3)
    assert has_padding(padded) and not has_padding(wire)


def test_pad_keeps_other_options_and_needs_edns() -> None:
    query = dns.message.make_query(
        "www.example.com.", "A", use_edns=0, options=[dns.edns.ECSOption("192.0.2.0", 24)]
    )
    padded = pad(query.to_wire(), QUERY_BLOCK)
    options = dns.message.from_wire(padded).options
    assert [o.otype for o in options] == [dns.edns.OptionType.ECS, PADDING_OPTION]
    plain = response(edns=False)
    assert pad(plain, RESPONSE_BLOCK) == plain  # no OPT record: nothing to pad in


def test_pad_stays_within_65535_octets() -> None:
    big = response(answers=4070, max_size=65535)  # 65164 octets
    assert len(big) > 65535 - RESPONSE_BLOCK
    padded = pad(big, RESPONSE_BLOCK)
    assert len(padded) <= 65535
    dns.message.from_wire(padded)


def test_has_padding_reads_only_the_opt_record() -> None:
    query = dns.message.make_query("www.example.com.", "A", use_edns=0, pad=128).to_wire()
    assert has_padding(query)
    assert not has_padding(dns.message.make_query("x.example.", "A", use_edns=0).to_wire())
    assert not has_padding(b"\0" * 5)
    assert not has_padding(query[:-3])  # cut short: no, and no exception


@given(st.binary(max_size=300))
def test_walkers_raise_only_wire_error_on_garbage(data: bytes) -> None:
    has_padding(data)
    for function in (lambda: pad(data, RESPONSE_BLOCK), lambda: smallest_ttl(data)):
        with contextlib.suppress(WireError):
            function()


def test_smallest_ttl_of_answer_and_authority() -> None:
    assert smallest_ttl(response(answers=3, ttl=100)) == 100
    assert smallest_ttl(response(answers=0)) is None
    reply = dns.message.from_wire(response(answers=1, ttl=500))
    reply.authority.append(
        dns.rrset.from_text("example.com.", 30, "IN", "SOA", "ns. host. 1 2 3 4 5")
    )
    reply.additional.append(dns.rrset.from_text("ns.example.", 5, "IN", "A", "192.0.2.9"))
    assert smallest_ttl(reply.to_wire()) == 30  # additional records do not count


# -- contexts -------------------------------------------------------------------------


def test_server_context(certificates: CertificateFiles) -> None:
    context = server_context(str(certificates.certificate), str(certificates.key), ALPN_DOT)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_RENEGOTIATION and context.options & ssl.OP_NO_COMPRESSION


def test_certificate_errors_are_one_line(certificates: CertificateFiles, tmp_path: Path) -> None:
    other = make_certificates(tmp_path, prefix="other-")
    with pytest.raises(TlsError, match="key does not belong to the certificate"):
        server_context(str(certificates.certificate), str(other.key), ALPN_DOT)
    with pytest.raises(TlsError, match=r"cannot read .*missing.pem: No such file"):
        server_context(str(tmp_path / "missing.pem"), str(certificates.key), ALPN_DOT)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(TlsError, match="cannot be used"):
        server_context(str(garbage), str(certificates.key), ALPN_DOT)


# -- settings -------------------------------------------------------------------------


def test_encrypted_ports_need_a_certificate(certificates: CertificateFiles, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^tls-port needs tls-certificate and tls-key$"):
        load_settings(None, {"tls_port": 853})
    with pytest.raises(SettingsError, match=r"^tls-port and https-port need tls-certificate"):
        load_settings(None, {"tls_port": 853, "https_port": 443, "tls_key": "k"})
    files = {"tls_certificate": str(certificates.certificate), "tls_key": str(certificates.key)}
    assert load_certificate(load_settings(None, {"https_port": 443, **files})) is not None
    assert load_certificate(load_settings(None, files)) is None  # no port: nothing to serve
    bad = {"tls_certificate": str(tmp_path / "nothing.pem"), "tls_key": str(certificates.key)}
    with pytest.raises(SettingsError, match=r"nothing\.pem: No such file"):
        load_certificate(load_settings(None, {"tls_port": 853, **bad}))


def test_tls_forward_zones(certificates: CertificateFiles, tmp_path: Path) -> None:
    config = tmp_path / "resolver.toml"
    config.write_text(
        "[forward-zones]\n"
        f'"." = {{ forwarders = ["127.0.0.1", "127.0.0.2@8853#other.lab.test"], tls = true, '
        f'tls-auth-name = "dns.lab.test", tls-ca-file = "{certificates.ca}" }}\n'
        '"plain.example." = { forwarders = ["127.0.0.3"] }\n'
    )
    loaded = load_settings(config, {})
    ca = str(certificates.ca)
    assert tls_forwarders(loaded) == {
        ("127.0.0.1", 853): TlsServer("127.0.0.1", 853, "dns.lab.test", ca),
        ("127.0.0.2", 8853): TlsServer("127.0.0.2", 8853, "other.lab.test", ca),
    }
    zones = {
        zone.zone: [(s.address, s.port) for s in zone.servers] for zone in configured_zones(loaded)
    }
    assert zones == {
        ".": [("127.0.0.1", 853), ("127.0.0.2", 8853)],
        "plain.example.": [("127.0.0.3", None)],
    }


@pytest.mark.parametrize(
    ("zone", "message"),
    [
        ({"forwarders": ["192.0.2.1"], "tls": True}, "needs a name to authenticate it by"),
        ({"forwarders": ["192.0.2.1"], "tls-auth-name": "x.example"}, "is for forwarders asked"),
        ({"forwarders": ["192.0.2.1#x.example"]}, "ADDRESS#NAME is for forwarders asked"),
        ({"forwarders": ["192.0.2.1"], "tls": "yes"}, "tls must be true or false"),
        ({"forwarders": ["192.0.2.1"], "tls": True, "tls-auth-name": ""}, "non-empty string"),
        (
            {
                "forwarders": ["192.0.2.1"],
                "tls": True,
                "tls-auth-name": "x.example",
                "tls-ca-file": "/nonexistent.pem",
            },
            "tls-ca-file /nonexistent.pem",
        ),
        ({"forwarders": ["192.0.2.1#bad..name"], "tls": True}, "is not a domain name"),
    ],
)
def test_tls_forward_zone_mistakes(zone: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_forward_zones({"example.": zone})
