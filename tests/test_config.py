"""The settings (resolver/ops/config.py): defaults, the TOML file, the command line over it,
and one clear error for every mistake; the example resolver.toml documents every key.

In-process for the rules; through ``python -m resolver`` for what a user sees (one line on
stderr, exit status 2).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.rrset
import pytest
from structlog.testing import capture_logs

from resolver.cache.records import RecordCache, Trust
from resolver.iterate.hints import RootHints, load_root_hints
from resolver.lab.topology import hints_text
from resolver.ops import config as config_module
from resolver.ops.config import (
    Settings,
    SettingsError,
    build_parser,
    changed_keys,
    control_socket_path,
    default_control_socket,
    load_settings,
    metrics_endpoint,
    parse_command_line,
)
from resolver.ops.options import OPTIONS, split_host_port
from resolver.ops.runtime import build_service
from resolver.wire import CLASS_IN, ResourceRecord, RRType
from resolver.wire.raw import question_key
from resolver.wire.rdata import A

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "resolver.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "resolver.toml"
    path.write_text(text)
    return path


def error_of(path: Path, flags: dict[str, object] | None = None) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(path, flags or {})
    return str(caught.value)


# -- layering: defaults <- file <- flags ---------------------------------------------------


def test_defaults_are_the_flags_defaults() -> None:
    settings = load_settings(None, {})
    assert settings == Settings()
    assert (settings.port, settings.address, settings.cache_size) == (2053, ("127.0.0.1",), 100000)
    assert settings.control_socket is None and settings.metrics is None


def test_file_overrides_defaults_and_flags_override_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'port = 5353\nallow = ["10.0.0.0/8", "192.0.2.7"]\nquery-log = true\n'
                           'address = "::1"\nlog-level = "debug"\n')  # fmt: skip
    from_file = load_settings(path, {})
    assert from_file.port == 5353
    assert from_file.allow == ("10.0.0.0/8", "192.0.2.7/32")  # normalised as networks
    assert from_file.address == ("::1",)  # one string where a list goes: a list of one
    assert from_file.query_log is True and from_file.log_level == "debug"
    assert from_file.config == path
    _, flags = parse_command_line(["--port", "6000", "--allow", "172.16.0.0/12", "--no-query-log"])
    both = load_settings(path, flags)
    assert both.port == 6000
    assert both.allow == ("172.16.0.0/12",)  # replaced, not appended
    assert both.query_log is False
    assert both.log_level == "debug"  # not given on the command line: the file's


def test_command_line_gives_only_what_was_typed() -> None:
    config, flags = parse_command_line(["--cache-size", "10", "--address", "127.0.0.2",
                                        "--address", "::1", "--config", "x.toml"])  # fmt: skip
    assert flags == {"cache_size": 10, "address": ("127.0.0.2", "::1")}
    assert config == Path("x.toml").resolve()


def test_every_option_is_a_flag_and_a_key() -> None:
    flags = {s for action in build_parser()._actions for s in action.option_strings}
    for option in OPTIONS:
        assert f"--{option.key}" in flags
        assert hasattr(Settings(), option.field)
    assert {"--config", "--query-log", "--no-query-log", "--ipv6-only", "--no-ipv6-only",
            "--no-qname-minimisation"} <= flags


# -- the example file ------------------------------------------------------------------------


def test_example_documents_every_key_and_changes_nothing() -> None:
    text = EXAMPLE.read_text()
    for option in OPTIONS:
        set_or_shown = re.search(rf"^#? ?{re.escape(option.key)} = ", text, re.MULTILINE)
        assert set_or_shown, f"{option.key} is not in resolver.toml"
        # a comment right above it says what it does and whether a reload applies it
        before = text[: set_or_shown.start()].rstrip("\n").rsplit("\n\n", 1)[-1]
        assert before.startswith("#") and "reload: " in before, option.key
    settings = load_settings(EXAMPLE, {})
    assert changed_keys(Settings(), settings) == []


def test_example_commented_values_are_valid(tmp_path: Path) -> None:
    """The values shown commented out (paths, the metrics address) load when uncommented."""
    text = EXAMPLE.read_text()
    shown = re.findall(r"^# ([a-z-]+ = .+)$", text, re.MULTILINE)
    shown_keys = {line.split(" = ")[0] for line in shown}
    assert shown_keys == {"root-hints", "control-socket", "metrics", "hosts-file",
                          "trust-anchor-file", "dnstap", "auto-trust-anchor-file", "tls-port",
                          "https-port", "tls-certificate", "tls-key"}  # fmt: skip
    hosts = tmp_path / "hosts"
    hosts.write_text("192.0.2.7 printer\n")
    anchors = tmp_path / "root.key"
    anchors.write_text(". 3600 IN DS 20326 8 2 " + "AB" * 32 + "\n")
    kept = [line.replace("/etc/hosts", str(hosts)).replace("/etc/resolver/root.key", str(anchors))
            for line in shown if not line.startswith("root-hints")]  # fmt: skip
    path = write(tmp_path, "\n".join(kept))
    settings = load_settings(path, {})
    assert settings.metrics == "127.0.0.1:9153"
    assert settings.dnstap == "unix:/run/dnstap.sock"
    assert settings.control_socket == "/run/resolver/control.sock"
    assert settings.hosts_file == str(hosts)
    assert settings.anchors is not None and settings.anchors.zones == ["."]


def test_example_sections_load(tmp_path: Path) -> None:
    """The sections shown commented out load when uncommented (zone files made for them)."""
    text = EXAMPLE.read_text()
    shown = re.findall(r"^#   (.+)$", text, re.MULTILINE)
    assert any(line.startswith("[stub-zones") for line in shown)
    body = "\n".join(shown)
    for apex, path in re.findall(r'^"([^"]+)" = "(/[^"]+)"$', body, re.MULTILINE):
        made = tmp_path / Path(path).name
        made.write_text(f"$ORIGIN {apex}\n@ 3600 SOA ns hostmaster 1 2 3 4 5\nhost 60 A 10.1.2.3\n")
        body = body.replace(path, str(made))
    settings = load_settings(write(tmp_path, body), {})
    assert set(settings.sections) == {"local-zones", "forward-zones", "stub-zones", "shared-cache"}
    assert [(z.zone, z.stub, z.servers, z.fallback) for z in settings.delegated_zones()] == [
        (".", False, ("192.0.2.55@853#dns.example", "192.0.2.56@8853#dns2.example"), False),
        ("corp.example.", False, ("192.0.2.53", "192.0.2.54@5353"), False),
        ("private.", True, ("10.0.0.53", "10.0.0.54@5353"), False),
    ]
    assert settings.local is not None
    found = settings.local.lookup("host.10.in-addr.arpa.", RRType.A)
    assert found is not None and [rr.to_text() for rr in found.answer] == [
        "host.10.in-addr.arpa. 60 A 10.1.2.3"
    ]


# -- mistakes --------------------------------------------------------------------------------


def test_unknown_key_names_it_its_line_and_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "# comment\nport = 53\n\ncache_size = 10\n")
    assert error_of(path) == f"{path} line 4: unknown key 'cache_size' (did you mean 'cache-size'?)"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("port = 70000", 1, "port: 70000 is not a port number"),
        ("port = '53'", 1, "port: must be a whole number, not '53'"),
        ("ipv6-only = 1", 1, "ipv6-only: must be true or false, not 1"),
        ("cache-size = 0", 1, "cache-size: must be at least 1, not 0"),
        ("\nmax-ttl = -5", 2, "max-ttl: a TTL is between 0 and 2147483647 seconds"),
        ("address = ['127.0.0.1', 'localhost']", 1, "address: 'localhost' is not an IP address"),
        ("allow = [10]", 1, "allow: must be a list of strings, not [10]"),
        ("log-format = 'xml'", 1, "log-format: 'xml' is not one of console, json"),
        ("metrics = '9153'", 1, "metrics: '9153' is not ADDRESS:PORT (IPv6 as [ADDRESS]:PORT)"),
        ("workers = true", 1, "workers: must be a whole number, not True"),
        ("control-socket = '/tmp/" + "x" * 120 + "'", 1,
         "control-socket: a Unix socket path is at most 107 bytes"),
    ],
)  # fmt: skip
def test_bad_value_names_the_key_and_line(tmp_path: Path, text: str, line: int,
                                          message: str) -> None:  # fmt: skip
    path = write(tmp_path, text + "\n")
    assert error_of(path) == f"{path} line {line}: {message}"


def test_syntax_error_has_tomllibs_line(tmp_path: Path) -> None:
    path = write(tmp_path, "port = 53\nallow = [\n\ncache-size 5\n")
    message = error_of(path)
    assert message.startswith(f"{path}: ")
    assert "(at line 4, column 1)" in message


def test_unknown_section_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "port = 53\n\n[local-zone]\nexample = 'static'\n")
    assert error_of(path) == (
        f"{path} line 3: unknown section [local-zone] (known sections: [local-zones], "
        "[forward-zones], [stub-zones], [shared-cache], [policy-zone], [blocklist])"
    )


def test_a_registered_section_is_one_line_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forward_zones(table: dict[str, object]) -> dict[str, object]:
        if not all(isinstance(v, list) for v in table.values()):
            raise ValueError("each zone takes a list of addresses")
        return table

    monkeypatch.setitem(config_module.SECTIONS, "shared-cache", forward_zones)
    path = write(tmp_path, "[shared-cache]\n'corp.example.' = ['192.0.2.53']\n")
    settings = load_settings(path, {})
    assert settings.sections == {"shared-cache": {"corp.example.": ["192.0.2.53"]}}
    assert changed_keys(Settings(), settings) == ["[shared-cache]"]
    bad = write(tmp_path, "port = 1\n[shared-cache]\n'corp.example.' = '192.0.2.53'\n")
    assert error_of(bad) == f"{bad} line 2: [shared-cache]: each zone takes a list of addresses"


def test_min_ttl_above_max_ttl(tmp_path: Path) -> None:
    path = write(tmp_path, "min-ttl = 600\n")
    with pytest.raises(SettingsError, match=r"^min-ttl \(600\) is larger than max-ttl \(60\)$"):
        load_settings(path, {"max_ttl": 60})


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    assert error_of(path) == f"cannot read configuration {path}: No such file or directory"


# -- through the command ---------------------------------------------------------------------


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "resolver", *args], capture_output=True,
                          text=True, timeout=20, stdin=subprocess.DEVNULL)  # fmt: skip


@pytest.mark.parametrize(
    "text",
    ["portt = 53\n", "port = 'x'\n", "[dnssec]\n", "port = \n", "min-ttl = 9\nmax-ttl = 8\n"],
    ids=["unknown-key", "bad-type", "unknown-section", "syntax", "min-above-max"],
)
def test_a_bad_file_is_one_line_and_status_2(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    result = run("--config", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"resolver: {path}") or line.startswith("resolver: min-ttl")


def test_config_file_missing_through_the_command(tmp_path: Path) -> None:
    result = run("--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert result.stderr == (
        f"resolver: cannot read configuration {tmp_path / 'nope.toml'}: No such file or directory\n"
    )


# -- small parts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:9153", ("127.0.0.1", 9153)), ("[::1]:80", ("::1", 80)),
     ("[2001:DB8::1]:9", ("2001:db8::1", 9))],
)  # fmt: skip
def test_split_host_port(text: str, expected: tuple[str, int]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize("text", ["::1:80", "localhost:80", "[127.0.0.1]:80", "1.2.3.4:70000",
                                  "1.2.3.4", ":80"])  # fmt: skip
def test_split_host_port_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        split_host_port(text)


def test_metrics_off_unless_asked() -> None:
    assert metrics_endpoint(Settings()) is None
    assert metrics_endpoint(Settings(metrics="none")) is None
    assert metrics_endpoint(Settings(metrics="[::1]:9153")) == ("::1", 9153)


def test_default_control_socket(tmp_path: Path) -> None:
    """One per port: two resolvers on a host do not share one (resolver-control --port)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    runtime = tmp_path / "user"
    runtime.mkdir()
    assert default_control_socket(0, {}, str(run_dir)) == f"{run_dir}/resolver/control-2053.sock"
    assert default_control_socket(0, {}, str(run_dir), 53) == f"{run_dir}/resolver/control-53.sock"
    unwritable = str(tmp_path / "no-such-run")
    assert default_control_socket(0, {}, unwritable) == "/tmp/resolver-control-0-2053.sock"
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    assert default_control_socket(1000, env, str(run_dir), 5353) == (
        f"{runtime}/resolver-control-5353.sock"
    )
    assert default_control_socket(1000, {}, str(run_dir)) == "/tmp/resolver-control-1000-2053.sock"
    gone = {"XDG_RUNTIME_DIR": str(tmp_path / "gone")}
    assert default_control_socket(1000, gone, str(run_dir)) == (
        "/tmp/resolver-control-1000-2053.sock"
    )
    assert control_socket_path(Settings(port=53)) == default_control_socket(port=53)


def test_changed_keys() -> None:
    old = Settings()
    new = Settings(port=1, allow=("10.0.0.0/8",), log_level="debug")
    assert changed_keys(old, new) == ["port", "allow", "log-level"]
    assert changed_keys(old, old) == []


# -- a reload, in-process (Runtime): what changes, what stays ----------------------------------


@pytest.fixture
def hints(tmp_path: Path) -> RootHints:
    path = tmp_path / "lab.hints"
    path.write_text(hints_text())
    return load_root_hints(path)


def _fill(records: RecordCache, count: int) -> None:
    for i in range(count):
        rr = ResourceRecord(f"n{i}.example.", RRType.A, CLASS_IN, 300, A("192.0.2.1"))
        records.store_rrset([rr], Trust.AUTHORITATIVE)


def test_reload_applies_what_it_can_in_place(tmp_path: Path, hints: RootHints) -> None:
    config = write(tmp_path, "cache-size = 10\n")
    runtime = build_service(load_settings(config, {}), hints)
    records, service = runtime.records, runtime.service
    _fill(records, 10)
    answers_before = runtime.answers
    config.write_text("cache-size = 4\nallow = ['192.0.2.0/24']\nquery-log = true\n"
                      "min-ttl = 30\nmax-ttl = 600\nworkers = 3\n")  # fmt: skip
    with capture_logs() as logs:
        ok, text = runtime.reload()
    assert ok, text
    assert text == (f"reloaded ({config}): allow, cache-size, min-ttl, max-ttl, query-log; "
                    "needs a restart: workers")  # fmt: skip
    assert runtime.records is records and runtime.answers is answers_before  # not rebuilt
    assert len(records) == 4 and records.max_entries == 4 and records.evictions == 6
    assert (records.min_ttl, records.max_ttl) == (30, 600)
    assert service.access.allows("192.0.2.7") and service.query_log
    assert runtime.settings.workers == 1  # what runs, not what the file says
    assert runtime.settings.cache_size == 4
    events = [(e["event"], e["log_level"]) for e in logs]
    assert events == [("needs_restart", "warning"), ("reloaded", "info")]


def test_a_bad_reload_changes_nothing(tmp_path: Path, hints: RootHints) -> None:
    config = write(tmp_path, "query-log = true\n")
    runtime = build_service(load_settings(config, {}), hints)
    before = runtime.settings
    config.write_text("query-log = false\ncache-size = 'big'\n")
    with capture_logs() as logs:
        ok, text = runtime.reload()
    assert not ok
    assert text == ("configuration not reloaded, the old one stays: "
                    f"{config} line 2: cache-size: must be a whole number, not 'big'")  # fmt: skip
    assert runtime.settings is before and runtime.service.query_log is True
    assert [(e["event"], e["log_level"]) for e in logs] == [("reload_failed", "warning")]
    assert runtime.stats.reloads == {"error": 1}


def test_command_line_still_wins_at_a_reload(tmp_path: Path, hints: RootHints) -> None:
    config = write(tmp_path, "query-log = true\n")
    runtime = build_service(load_settings(config, {"query_log": False}), hints,
                            {"query_log": False})  # fmt: skip
    config.write_text("query-log = true\nallow = ['10.0.0.0/8']\n")
    ok, _ = runtime.reload()
    assert ok and runtime.service.query_log is False
    assert runtime.service.access.allows("10.1.2.3")


def test_reload_hooks_are_all_prepared_before_any_applies(tmp_path: Path,
                                                          hints: RootHints) -> None:  # fmt: skip
    config = write(tmp_path, "")
    runtime = build_service(load_settings(config, {}), hints)
    applied: list[str] = []

    def accepting(settings: Settings) -> Callable[[], None]:
        return lambda: applied.append("local data")

    def rejecting(settings: Settings) -> Callable[[], None]:
        if settings.query_log:
            raise ValueError("forward zone example.: no addresses")
        return lambda: applied.append("forward zones")

    runtime.reload_hooks += [accepting, rejecting]
    config.write_text("query-log = true\n")
    ok, text = runtime.reload()
    assert not ok and text.endswith("forward zone example.: no addresses")
    assert applied == [] and runtime.service.query_log is False
    config.write_text("")
    assert runtime.reload()[0]
    assert applied == ["local data", "forward zones"]


def test_ttl_bounds_at_a_reload_empty_the_wire_cache(tmp_path: Path, hints: RootHints) -> None:
    config = write(tmp_path, "")
    runtime = build_service(load_settings(config, {}), hints)
    packet = dns.message.make_query("www.example.", "A").to_wire()
    key = question_key(packet)
    assert key is not None
    reply = dns.message.make_response(dns.message.from_wire(packet))
    reply.answer.append(dns.rrset.from_text("www.example.", 3600, "IN", "A", "192.0.2.1"))
    runtime.answers.store(key, reply.to_wire())
    _fill(runtime.records, 3)
    config.write_text("max-ttl = 60\n")
    assert runtime.reload()[0]
    assert len(runtime.answers) == 0  # its TTLs were written with the old ceiling
    assert len(runtime.records) == 3  # the records stay


# -- local zones, forward and stub zones: the keys, the sections, a reload -------------------


def test_local_zone_keys_and_zone_sections(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("192.0.2.7 printer\n")
    zone = tmp_path / "corp.zone"
    zone.write_text("$TTL 60\n@ SOA ns h 1 2 3 4 5\nwww A 10.0.0.1\n")
    path = write(tmp_path, f"hosts-file = '{hosts}'\nnodefault = ['Test', '10.in-addr.arpa']\n"
                           f"[local-zones]\n'Corp.Example' = '{zone}'\n"
                           "[forward-zones.'.']\nforwarders = ['192.0.2.53', '2001:db8::53@5353']\n"
                           "fallback = true\n"
                           "[stub-zones.'private']\nservers = '10.0.0.53'\n")  # fmt: skip
    settings = load_settings(path, {})
    assert settings.nodefault == ("Test.", "10.in-addr.arpa.")
    assert settings.sections["local-zones"] == (("Corp.Example.", str(zone)),)
    assert [(z.zone, z.stub, z.servers, z.fallback) for z in settings.delegated_zones()] == [
        (".", False, ("192.0.2.53", "2001:db8::53@5353"), True),
        ("private.", True, ("10.0.0.53",), False),
    ]
    local = settings.local
    assert local is not None
    assert local.get("test.") is None and local.get("10.in-addr.arpa.") is None
    assert local.get("corp.example.") is not None and local.get("printer.") is not None
    # "none" turns the hosts file off from the command line
    assert load_settings(path, {"hosts_file": "none"}).local.get("printer.") is None  # type: ignore[union-attr]
    off = load_settings(write(tmp_path, "default-local-zones = false\n"), {})
    assert off.local is not None and len(off.local) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nodefault = ['example.com']", "line 1: nodefault: 'example.com' is not one of the "
                                        "default local zones"),
        ("[forward-zones.'corp.']\nforwarders = []", "line 1: [forward-zones]: zone 'corp.': "
                                                     "forwarders must be a list of addresses"),
        ("[forward-zones.'corp.']\nforwarders = ['ns.corp.']",
         "[forward-zones]: zone 'corp.': 'ns.corp.' is not an IP address"),
        ("[forward-zones.'corp.']\nforwarders = ['192.0.2.1@99999']",
         "[forward-zones]: zone 'corp.': '192.0.2.1@99999': '99999' after @ is not a port number"),
        ("[forward-zones.'corp.']\nforwarders = ['192.0.2.1']\nforward-first = true",
         "[forward-zones]: zone 'corp.': unknown key 'forward-first' (known: fallback, "
         "forwarders, tls, tls-auth-name, tls-ca-file)"),
        ("[stub-zones.'corp.']\nservers = ['192.0.2.1']\nfallback = true",
         "[stub-zones]: zone 'corp.': unknown key 'fallback' (known: servers)"),
        ("[stub-zones]\n'corp.' = ['192.0.2.1']", "[stub-zones]: zone 'corp.' must be a table"),
        ("[forward-zones.'corp.']\nforwarders = ['192.0.2.1']\n[stub-zones.'CORP']\n"
         "servers = ['192.0.2.2']", "zone CORP. is given twice: in [forward-zones] and "
                                    "[stub-zones]"),
        ("[local-zones]\n'corp.' = 5", "[local-zones]: zone 'corp.': the value is the path of "
                                       "its zone file, not 5"),
        ("[local-zones]\n'corp.' = '/nonexistent/corp.zone'",
         "/nonexistent/corp.zone:0: cannot read: No such file or directory"),
        ("hosts-file = '/nonexistent/hosts'", "/nonexistent/hosts: cannot read: No such file"),
    ],
)  # fmt: skip
def test_bad_local_and_zone_settings_say_why(tmp_path: Path, text: str, message: str) -> None:
    assert message in error_of(write(tmp_path, text + "\n"))


def test_reload_replaces_forward_and_stub_zones_and_flushes_them(
    tmp_path: Path, hints: RootHints
) -> None:
    config = write(tmp_path, "[forward-zones.'corp.example.']\nforwarders = ['192.0.2.53']\n")
    runtime = build_service(load_settings(config, {}), hints)
    finder = runtime.engine.env.finder
    forward = finder.configured.closest("www.corp.example.")
    assert forward is not None and [s.address for s in forward.servers] == ["192.0.2.53"]
    for name in ("www.corp.example.", "www.example."):
        rr = ResourceRecord(name, RRType.A, CLASS_IN, 300, A("192.0.2.1"))
        runtime.records.store_rrset([rr], Trust.AUTHORITATIVE)
    config.write_text("[stub-zones.'corp.example.']\nservers = ['192.0.2.54@5353']\n"
                      "[forward-zones.'.']\nforwarders = ['192.0.2.55']\n")  # fmt: skip
    with capture_logs() as logs:
        ok, text = runtime.reload()
    assert ok and text.endswith("[forward-zones], [stub-zones]")
    stub = finder.configured.closest("www.corp.example.")
    assert stub is not None and stub.kind.value == "stub"
    assert [(s.address, s.port) for s in stub.servers] == [("192.0.2.54", 5353)]
    everything = finder.configured.closest("www.example.")
    assert everything is not None and everything.zone == "."
    # what was learnt under a zone that changed is gone (here "." changed: all of it)
    assert runtime.records.get_rrset("www.corp.example.", RRType.A) is None
    assert runtime.records.get_rrset("www.example.", RRType.A) is None
    reloaded = [e for e in logs if e["event"] == "zones_reloaded"]
    assert reloaded[0]["delegations_changed"] == [".", "corp.example."]


def test_reload_of_local_zones_flushes_their_answers(tmp_path: Path, hints: RootHints) -> None:
    config = write(tmp_path, "")
    runtime = build_service(load_settings(config, {}), hints)
    assert runtime.engine.local.lookup("x.test.", RRType.A) is not None
    for name in ("x.test.", "www.example."):
        packet = dns.message.make_query(name, "A").to_wire()
        key = question_key(packet)
        assert key is not None
        response = dns.message.make_response(dns.message.from_wire(packet))
        response.answer.append(dns.rrset.from_text(name, 300, "IN", "A", "192.0.2.1"))
        runtime.answers.store(key, response.to_wire())
    assert len(runtime.answers) == 2
    config.write_text("nodefault = ['test.']\n")
    ok, text = runtime.reload()
    assert ok and text.endswith(": nodefault")
    assert runtime.engine.local.lookup("x.test.", RRType.A) is None
    assert len(runtime.answers) == 1  # test.'s answer flushed, the other kept


def test_zone_ratelimit_reaches_the_engine(tmp_path: Path, hints: RootHints) -> None:
    off = build_service(load_settings(write(tmp_path, ""), {}), hints)
    assert off.engine.env.zone_limit is None  # off by default, as Unbound's ratelimit
    config = write(tmp_path, "zone-ratelimit = 50\nzone-ratelimit-factor = 0\n")
    limit = build_service(load_settings(config, {}), hints).engine.env.zone_limit
    assert limit is not None and (limit.per_second, limit.factor) == (50, 0)


def test_zone_ratelimit_changes_at_a_reload(tmp_path: Path, hints: RootHints) -> None:
    config = write(tmp_path, "")
    runtime = build_service(load_settings(config, {}), hints)
    config.write_text("zone-ratelimit = 20\n")
    ok, text = runtime.reload()
    limit = runtime.engine.env.zone_limit
    assert ok and "zone-ratelimit" in text and "restart" not in text, text
    assert limit is not None and (limit.per_second, limit.factor) == (20, 10)
    config.write_text("zone-ratelimit = 0\n")
    assert runtime.reload()[0] and runtime.engine.env.zone_limit is None
