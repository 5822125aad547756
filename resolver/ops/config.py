"""The resolver's settings: built-in defaults, then a TOML file (``--config``), then flags.

One table, :data:`resolver.ops.options.OPTIONS`, declares every setting once:
its key (the TOML key, and the command-line flag ``--key``), its type, how its
value is checked, its help text, and whether a reload (SIGHUP,
``resolver-control reload``) may change it.  The command line and the file are
both read through that table here, so they cannot drift apart, and
:class:`Settings` is the one typed value the rest of the service is built from.

A flag replaces the file's value (for lists too: ``--allow`` on the command line
replaces the file's ``allow``).  Every mistake in a file is one
:class:`SettingsError` naming the file, the line (tomllib gives it for syntax
errors; for a key or a value it is found by reading the file's lines) and the
key; the command line turns it into one line on stderr and exit status 2.

Sections (``[name]`` tables) hold what does not fit one key: ``[local-zones]``
(zone files), ``[forward-zones]`` and ``[stub-zones]`` (by zone name); each is a
parser registered in :data:`SECTIONS`, so adding one is one line there.  A
section nobody registered is an error, as an unknown key is: a typo must not be
silently ignored.

The local zones (default zones, hosts file, zone files) are read by
:func:`load_settings` itself, so a file that does not load stops the resolver at
start-up and makes a reload fail, like any other mistake; the zones read are
``Settings.local``.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

from resolver.dnssec import TrustAnchorError, TrustAnchors, load_trust_anchors, root_trust_anchors
from resolver.iterate.hints import DEFAULT_HINTS
from resolver.local import LocalSources, LocalZones, load_local_zones
from resolver.ops.autotrust import load_points, merged
from resolver.ops.options import BY_KEY, OFF, OPTIONS, Option, split_host_port
from resolver.ops.policy_config import parse_blocklists, parse_policy_zones
from resolver.ops.sections import (
    DelegatedZone,
    no_duplicates,
    parse_forward_zones,
    parse_local_zones,
    parse_stub_zones,
)
from resolver.ops.sharedsetup import SECTION as SHARED_CACHE
from resolver.ops.sharedsetup import parse_shared_cache
from resolver.serve.dnstap import target_problem


class SettingsError(Exception):
    """A setting that cannot be used: one line saying where and why (exit status 2)."""


# Sections a configuration file may have: name -> parser of the table's contents (raising
# ValueError with the reason).  Registering one is the only change a new section needs;
# its parsed value is in Settings.sections under the same name.
SECTIONS: dict[str, Callable[[Any], object]] = {
    "local-zones": parse_local_zones,
    "forward-zones": parse_forward_zones,
    "stub-zones": parse_stub_zones,
    SHARED_CACHE: parse_shared_cache,  # [shared-cache]: resolver.ops.sharedsetup
    # Arrays of tables ([[name]], a list of tables): response policy, in order.
    "policy-zone": parse_policy_zones,  # resolver.ops.policy_config
    "blocklist": parse_blocklists,
}


@dataclass(frozen=True)
class Settings:
    """Every setting of one running resolver, checked; built by :func:`load_settings`."""

    port: int = 2053
    address: tuple[str, ...] = ("127.0.0.1",)
    allow: tuple[str, ...] = ()
    root_hints: str = str(DEFAULT_HINTS)
    upstream_port: int = 53
    ipv4_only: bool = False
    ipv6_only: bool = False
    qname_minimisation: bool = True
    priming: bool = True
    dnssec: bool = True
    trust_anchor_file: str | None = None
    cache_size: int = 100_000
    min_ttl: int = 0
    max_ttl: int = 86400
    serve_stale: bool = True
    stale_max_age: int = 86400
    stale_client_timeout: int = 1800  # milliseconds
    prefetch: bool = True
    log_format: str = "console"
    log_level: str = "info"
    query_log: bool = False
    default_local_zones: bool = True
    nodefault: tuple[str, ...] = ()
    hosts_file: str | None = None  # None or OFF: none
    workers: int = 1
    control_socket: str | None = None  # None: the default place; OFF: none
    metrics: str | None = None  # ADDR:PORT, or None: off
    dnstap: str | None = None  # unix:PATH or file:PATH, or None: off (resolver.serve.dnstap)
    ip_ratelimit: int = 0  # queries per second per client address; 0: off
    ip_ratelimit_mode: str = "truncate"
    zone_ratelimit: int = 0  # queries per second to one zone cut's servers; 0: off
    zone_ratelimit_factor: int = 10  # over it, one in this many is sent anyway
    aggressive_nsec: bool = True  # RFC 8198
    negative_trust_anchors: tuple[str, ...] = ()  # RFC 7646
    auto_trust_anchor_file: str | None = None  # RFC 5011
    add_holddown: int = 30 * 86400
    del_holddown: int = 30 * 86400
    # Off-path forgery and resource exhaustion (issue 21)
    upstream_port_reuse: bool = False  # a fresh source port per upstream query
    use_caps_for_id: bool = False
    caps_exempt: tuple[str, ...] = ()
    upstream_cookies: bool = True
    answer_cookies: bool = True
    cookie_secret: tuple[str, ...] = ()  # hex; () draws a random one at start
    max_udp_size: int = 1232
    tcp_connections_per_client: int = 32
    pending_per_client: int = 256
    tls_port: int | None = None  # DNS over TLS (resolver.serve.dot); None: off
    https_port: int | None = None  # DNS over HTTPS (resolver.serve.doh); None: off
    tls_certificate: str | None = None  # PEM files of both, read again at each reload
    tls_key: str | None = None
    config: Path | None = None  # the file they were read from, read again at a reload
    sections: Mapping[str, object] = field(default_factory=dict, hash=False)
    # The local zones these settings describe, read by load_settings (not compared: a
    # reload compares their contents itself, to flush what changed).
    local: LocalZones | None = field(default=None, compare=False, hash=False, repr=False)
    # The trust anchors validation starts from (None: no validation), read likewise.
    anchors: TrustAnchors | None = field(default=None, compare=False, hash=False, repr=False)

    def value(self, key: str) -> object:
        return getattr(self, BY_KEY[key].field)

    def delegated_zones(self) -> tuple[DelegatedZone, ...]:
        """The forward and stub zones, in that order."""
        forward = self.sections.get("forward-zones", ())
        stub = self.sections.get("stub-zones", ())
        assert isinstance(forward, tuple) and isinstance(stub, tuple)
        return forward + stub

    def local_sources(self) -> LocalSources:
        """Where the local zones come from, as :mod:`resolver.local` takes it."""
        files = self.sections.get("local-zones", ())
        assert isinstance(files, tuple)
        hosts = None if self.hosts_file in (None, OFF) else self.hosts_file
        delegated = tuple(zone.zone for zone in self.delegated_zones())
        return LocalSources(self.default_local_zones, self.nodefault, hosts, zone_files=files,
                            delegated=delegated)  # fmt: skip


def changed_keys(old: Settings, new: Settings) -> list[str]:
    """The keys (and section names) whose values differ between two settings."""
    keys = [o.key for o in OPTIONS if old.value(o.key) != new.value(o.key)]
    names = sorted(set(old.sections) | set(new.sections))
    return keys + [f"[{n}]" for n in names if old.sections.get(n) != new.sections.get(n)]


# -- reading a file -----------------------------------------------------------------------


def _line_of(text: str, key: str, section: str | None) -> int | None:
    """The line where ``key`` is set (in ``[section]``, or at the top when None)."""
    current: str | None = None
    quoted = re.escape(key)
    setting = re.compile(rf"\s*(?:{quoted}|\"{quoted}\"|'{quoted}')\s*=")
    header = re.compile(r"\s*\[+\s*([^\]]*?)\s*\]+")
    for number, line in enumerate(text.splitlines(), 1):
        opened = header.match(line)
        if opened:
            table = opened[1].split(".", 1)[0].strip().strip("\"'")  # [name."sub"] too
            if section is None and table == key:
                return number  # the header of a table named like the key
            current = opened[1].strip("\"'")
        elif current == section and setting.match(line):
            return number
    return None


def _fail(path: Path, text: str, key: str, message: str, section: str | None = None) -> NoReturn:
    line = _line_of(text, key, section)
    where = f"{path} line {line}" if line is not None else str(path)
    raise SettingsError(f"{where}: {message}")


def _typed(option: Option, value: object) -> object:
    """The file's value checked against the option's type and rules; ValueError if bad."""
    kind_name = {int: "a whole number", str: "a string", bool: "true or false",
                 list: "a list of strings"}[option.kind]  # fmt: skip
    if option.kind is list and isinstance(value, str):
        value = [value]  # one address where a list is expected: a list of one
    if option.kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"must be {kind_name}, not {value!r}")
        check = option.check or (lambda v: v)
        return tuple(check(v) for v in value)
    if not isinstance(value, option.kind) or (option.kind is int and isinstance(value, bool)):
        raise ValueError(f"must be {kind_name}, not {value!r}")
    if option.choices and value not in option.choices:
        raise ValueError(f"{value!r} is not one of {', '.join(option.choices)}")
    return option.check(value) if option.check else value


def read_file(path: Path) -> tuple[dict[str, Any], dict[str, object]]:
    """(field -> value, section -> parsed) from a TOML file; SettingsError if anything is off."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise SettingsError(f"cannot read configuration {path}: {reason}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{path}: {error}") from None  # the message has line and column
    values: dict[str, Any] = {}
    sections: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict) or (isinstance(value, list) and key in SECTIONS):
            parse = SECTIONS.get(key)
            if parse is None:
                known = ", ".join(f"[{s}]" for s in SECTIONS) or "none yet"
                _fail(path, text, key, f"unknown section [{key}] (known sections: {known})")
            try:
                sections[key] = parse(value)
            except ValueError as error:
                _fail(path, text, key, f"[{key}]: {error}")
            continue
        option = BY_KEY.get(key)
        if option is None:
            close = difflib.get_close_matches(key.replace("_", "-"), list(BY_KEY), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            _fail(path, text, key, f"unknown key {key!r}{hint}")
        try:
            values[option.field] = _typed(option, value)
        except ValueError as error:
            _fail(path, text, key, f"{key}: {error}")
    return values, sections


def load_settings(config: Path | None, flags: Mapping[str, object]) -> Settings:
    """Defaults, overridden by the file ``config`` (if any), overridden by ``flags``
    (field -> value, only the flags given); SettingsError if the result is not usable."""
    values: dict[str, Any] = {}
    sections: dict[str, object] = {}
    if config is not None:
        values, sections = read_file(config)
    values.update(flags)
    settings = replace(Settings(), **values, config=config, sections=sections)
    if settings.ipv4_only and settings.ipv6_only:
        raise SettingsError("ipv4-only and ipv6-only exclude each other")
    if settings.min_ttl > settings.max_ttl:
        where = " on the command line" if {"min_ttl", "max_ttl"} <= set(flags) else ""
        raise SettingsError(
            f"min-ttl ({settings.min_ttl}) is larger than max-ttl ({settings.max_ttl}){where}"
        )
    dnstap = target_problem(settings.dnstap, settings.workers)
    if dnstap is not None:
        raise SettingsError(dnstap)
    encrypted = [k for k in ("tls_port", "https_port") if getattr(settings, k) is not None]
    if encrypted and not (settings.tls_certificate and settings.tls_key):
        keys = " and ".join(k.replace("_", "-") for k in encrypted)
        verb = "need" if len(encrypted) > 1 else "needs"
        raise SettingsError(f"{keys} {verb} tls-certificate and tls-key")
    delegated = [zone.zone for zone in settings.delegated_zones()]
    try:
        no_duplicates(delegated)
    except ValueError as error:
        raise SettingsError(f"{error}: in [forward-zones] and [stub-zones]") from None
    try:
        local = load_local_zones(settings.local_sources())
    except ValueError as error:
        raise SettingsError(str(error)) from None
    return replace(settings, local=local, anchors=trust_anchors(settings))


def trust_anchors(settings: Settings) -> TrustAnchors | None:
    """Where validation starts: a trust anchor file, or with the shipped root hints the
    shipped root KSKs (tags 20326 and 38696).  Custom root hints without an anchor file
    (a lab, a private root) mean no validation: the shipped keys could not sign them."""
    if not settings.dnssec:
        return None
    base = configured_anchors(settings)
    if settings.auto_trust_anchor_file:  # RFC 5011: its zones' anchors are its own
        try:
            return merged(base, load_points(settings.auto_trust_anchor_file))
        except TrustAnchorError as error:
            raise SettingsError(f"auto-trust-anchor-file: {error}") from None
    return base


def configured_anchors(settings: Settings) -> TrustAnchors | None:
    """The anchors of trust-anchor-file, or the shipped root KSKs with the shipped hints."""
    if settings.trust_anchor_file:
        try:
            return load_trust_anchors(settings.trust_anchor_file)
        except TrustAnchorError as error:
            raise SettingsError(f"trust-anchor-file: {error}") from None
    if Path(settings.root_hints).resolve() == Path(DEFAULT_HINTS).resolve():
        return root_trust_anchors()
    return None


# -- the command line ---------------------------------------------------------------------


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (no usage block), status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


class VersionAction(argparse.Action):
    """``--version``: the installed package's version, looked up only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the version and exit")  # fmt: skip

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> NoReturn:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("resolver")
        except PackageNotFoundError:  # run from a checkout without an install
            installed = "(not installed)"
        print(f"{parser.prog} {installed}")
        parser.exit(0)


def _flag_type(option: Option) -> Callable[[str], object]:
    """Text from the command line to the option's value, with the same checks as a file."""

    def convert(text: str) -> object:
        value: object = text
        if option.kind is int:
            try:
                value = int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        try:
            return option.check(value) if option.check else value
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = option.key  # argparse names the type in some messages
    return convert


def add_option(parser: argparse.ArgumentParser, option: Option) -> None:
    flag = f"--{option.key}"
    common: dict[str, Any] = {"dest": option.field, "default": argparse.SUPPRESS,
                              "help": option.help}  # fmt: skip
    if option.kind is bool:
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
    elif option.kind is list:
        parser.add_argument(flag, action="append", type=_flag_type(option),
                            metavar=option.metavar, **common)  # fmt: skip
    elif option.choices:
        parser.add_argument(flag, choices=option.choices, **common)
    else:
        parser.add_argument(flag, type=_flag_type(option), metavar=option.metavar, **common)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="resolver",
        description="Iterative recursive DNS resolver: answers clients by walking from the "
        "root servers down to the authoritative ones.",
        epilog="Every option can also be set in the --config file (the key is the option "
        "without its dashes); the command line wins.  SIGHUP reloads the file.",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        default=argparse.SUPPRESS,
        help="TOML configuration file (see resolver.toml); flags override it",
    )
    parser.add_argument("--version", action=VersionAction)
    for option in OPTIONS:
        add_option(parser, option)
    return parser


def parse_command_line(argv: Sequence[str] | None) -> tuple[Path | None, dict[str, object]]:
    """(--config, the other flags given as field -> value); exits 2 on a bad flag."""
    given = dict(vars(build_parser().parse_args(argv)))
    config = given.pop("config", None)
    for key, value in given.items():
        if isinstance(value, list):
            given[key] = tuple(value)
    return (config.resolve() if config is not None else None), given


# -- the control socket's default place ---------------------------------------------------


def default_control_socket(
    euid: int | None = None,
    environ: Mapping[str, str] | None = None,
    run_dir: str = "/run",
    port: int = Settings.port,
) -> str:
    """Where the control socket is when nobody says: like unbound's and kresd's run
    directories for root, the user's runtime directory otherwise, /tmp as a last resort;
    named after the resolver's port, so that resolvers on one host (a lab and a real one,
    two test runs) each have their own and ``resolver-control --port N`` finds the one
    answering on N instead of whichever started first."""
    euid = os.geteuid() if euid is None else euid
    environ = os.environ if environ is None else environ
    if euid == 0 and os.access(run_dir, os.W_OK):
        return f"{run_dir}/resolver/control-{port}.sock"
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isdir(runtime):
        return f"{runtime}/resolver-control-{port}.sock"
    return f"/tmp/resolver-control-{euid}-{port}.sock"


def control_socket_path(settings: Settings) -> str | None:
    """The control socket of these settings: None when it is turned off."""
    if settings.control_socket == OFF:
        return None
    return settings.control_socket or default_control_socket(port=settings.port)


def metrics_endpoint(settings: Settings) -> tuple[str, int] | None:
    if settings.metrics in (None, OFF):
        return None
    return split_host_port(settings.metrics)
