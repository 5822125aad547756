"""The settings of issue 21 (off-path forgery, resource exhaustion) reach what they set, at
start and at a reload; max-udp-size end to end with dig (its fast and normal paths)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from resolver.iterate.hints import load_root_hints
from resolver.lab import Lab
from resolver.ops.config import load_settings, parse_command_line
from resolver.ops.runtime import Runtime, build_service
from tests.test_listener import ResolverProcess, dig


def runtime(tmp_path: Path, argv: list[str], config: str = "") -> Runtime:
    hints = tmp_path / "hints"
    hints.write_text(". 3600000 NS a.root.\na.root. 3600000 A 127.8.0.1\n")
    path = None
    if config:
        path = tmp_path / "resolver.toml"
        path.write_text(config)
    _, flags = parse_command_line(["--root-hints", str(hints), *argv])
    settings = load_settings(path, flags)
    return build_service(settings, load_root_hints(str(hints)), flags)


def test_defaults_are_the_safe_choices(tmp_path: Path) -> None:
    built = runtime(tmp_path, [])
    transport = built.transport
    assert transport is not None
    assert transport.sockets.max_uses == 1  # a fresh port per query
    assert not transport.caps.enabled and transport.cookies is not None
    service = built.service
    assert service.cookies is not None and service.max_udp_size == 1232
    assert service.pending.per_client == 256


def test_flags_set_each_of_them(tmp_path: Path) -> None:
    built = runtime(tmp_path, [
        "--upstream-port-reuse", "--use-caps-for-id", "--caps-exempt", "Broken.Example",
        "--no-upstream-cookies", "--no-answer-cookies", "--max-udp-size", "4096",
        "--pending-per-client", "0", "--tcp-connections-per-client", "4",
    ])  # fmt: skip
    transport = built.transport
    assert transport is not None
    assert transport.sockets.max_uses == 16 and transport.cookies is None
    assert transport.caps.enabled and not transport.caps.wanted("192.0.2.1", "www.broken.example.")
    assert built.service.cookies is None and built.service.max_udp_size == 4096
    assert built.service.pending.per_client == 0
    assert built.settings.tcp_connections_per_client == 4


@pytest.mark.parametrize("value", ["511", "65536"])
def test_max_udp_size_out_of_range_is_refused(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse_command_line(["--max-udp-size", value])
    assert stopped.value.code == 2 and "between 512 and 65535" in capsys.readouterr().err


def test_a_cookie_secret_must_be_32_hex_digits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_command_line(["--cookie-secret", "abc"])
    assert "32 hex digits" in capsys.readouterr().err


def test_a_reload_applies_the_reloadable_ones(tmp_path: Path) -> None:
    built = runtime(tmp_path, [], "max-udp-size = 1232\n")
    (tmp_path / "resolver.toml").write_text(
        "max-udp-size = 4096\nuse-caps-for-id = true\npending-per-client = 10\n"
        'cookie-secret = ["' + "ab" * 16 + '"]\nanswer-cookies = true\n'
        "upstream-port-reuse = true\n"
    )
    ok, text = built.reload()
    assert ok, text
    assert "upstream-port-reuse" in text.split("needs a restart:")[1]
    service = built.service
    assert service.max_udp_size == 4096 and service.pending.per_client == 10
    assert service.cookies is not None and service.cookies.secrets == (bytes([0xAB] * 16),)
    assert built.transport is not None and built.transport.caps.enabled
    assert built.transport.sockets.max_uses == 1  # a restart is needed for that one


@pytest.fixture(scope="module")
def big_udp(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResolverProcess]:
    running = ResolverProcess(lab, tmp_path_factory.mktemp("udp4096"), "--max-udp-size", "4096")
    try:
        yield running
    finally:
        assert running.stop() == 0


def test_max_udp_size_4096_lets_a_3_kb_answer_through_udp(big_udp: ResolverProcess) -> None:
    """(At the default, 1232, the same answer is truncated: test_listener's
    test_large_answer_truncated_over_udp_and_whole_over_tcp.)"""
    for _ in range(2):  # the normal path, then the wire cache's fast path
        whole = dig(big_udp.port, "big.example.com", "TXT", "+bufsize=4096", "+ignore")
        assert "tc" not in whole.flags and whole.counts[1] == 1
        small = dig(big_udp.port, "big.example.com", "TXT", "+bufsize=1232", "+ignore")
        assert "tc" in small.flags  # the client's own size still caps it
