"""The table of the resolver's settings, and the checks of their values.

:data:`OPTIONS` declares every setting once: its key (the TOML key, and the
command-line flag ``--key``), its type, how its value is checked, its help
text, and whether a reload (SIGHUP, ``resolver-control reload``) may change it.
:data:`BY_KEY` finds one by key.  A check takes a typed value and returns the
value to keep, or raises ``ValueError`` with the reason: ports (0-65535), counts,
TTLs (0 to 2**31 - 1, RFC 2181 section 8), IP addresses and CIDR networks,
paths, Unix socket paths (at most 107 bytes, unix(7)), and ``ADDR:PORT``
endpoints (:func:`split_host_port`).

Reading the settings from a file and the command line through this table is
:mod:`resolver.ops.config`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from resolver.ops.sections import default_zone_name, zone_name
from resolver.serve.dnstap import parse_target
from resolver.serve.ratelimit import MODES as RATELIMIT_MODES

LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("console", "json")
OFF = "none"  # the value that turns the control socket or the metrics endpoint off
UNIX_PATH_MAX = 107  # sun_path holds 108 bytes, one for the terminating NUL (unix(7))


# -- checks: a typed value in, the value kept out, or ValueError with the reason ----------


def _port(value: int) -> int:
    if not 0 <= value <= 65535:
        raise ValueError(f"{value} is not a port number")
    return value


def server_port(value: int) -> int:
    # Port 0 is "any port" to bind(), but no server listens on it: a query sent there is lost.
    if not 1 <= value <= 65535:
        raise ValueError(f"{value} is not a server's port (1-65535)")
    return value


def _positive(value: int) -> int:
    if value < 1:
        raise ValueError(f"must be at least 1, not {value}")
    return value


def _not_negative(value: int) -> int:
    if value < 0:
        raise ValueError(f"must be 0 or more, not {value}")
    return value


def _ttl(value: int) -> int:
    if not 0 <= value <= 2**31 - 1:
        raise ValueError("a TTL is between 0 and 2147483647 seconds")
    return value


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


def _network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR network") from None


def _dnstap(value: str) -> str:
    if value != OFF:
        parse_target(value)  # ValueError with the reason
    return value


def _path(value: str) -> str:
    if not value:
        raise ValueError("an empty path")
    return value


def _socket_path(value: str) -> str:
    if value != OFF and len(os.fsencode(_path(value))) > UNIX_PATH_MAX:
        raise ValueError(f"a Unix socket path is at most {UNIX_PATH_MAX} bytes")
    return value


def split_host_port(value: str) -> tuple[str, int]:
    """``ADDR:PORT`` or ``[IPv6]:PORT`` as (address, port); ValueError if it is neither."""
    match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", value)
    if match is None:
        raise ValueError(f"{value!r} is not ADDRESS:PORT (IPv6 as [ADDRESS]:PORT)")
    host = match[1] or match[3]
    if match[1] and ":" not in host:
        raise ValueError(f"{value!r}: brackets are for IPv6 addresses")
    return _address(host), _port(int(match[2] or match[4]))


def _udp_size(value: int) -> int:
    if not 512 <= value <= 65535:
        raise ValueError(f"must be between 512 and 65535 bytes, not {value}")
    return value


def _cookie_secret(value: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{32}", value):
        raise ValueError(f"{value!r} is not 32 hex digits (a 128-bit secret)")
    return value.lower()


def _endpoint(value: str) -> str:
    if value == OFF:
        return value
    host, port = split_host_port(value)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- the table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One setting: TOML key ``key``, flag ``--key``, field ``key`` with dashes as underscores."""

    key: str
    kind: type  # int, str, bool, or list (of str)
    help: str
    check: Callable[[Any], Any] | None = None  # applied to each element of a list
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    reloadable: bool = False  # a reload applies it; otherwise a change needs a restart

    @property
    def field(self) -> str:
        return self.key.replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option("port", int, "port to listen on, UDP and TCP (default 2053)", _port),
    Option("address", list, "address to listen on; repeat for several, IPv6 too "
           "(default 127.0.0.1)", _address),
    Option("allow", list, "clients allowed besides loopback; others get REFUSED (repeatable)",
           _network, metavar="CIDR", reloadable=True),
    Option("root-hints", str, "root hints file in named.root format (default: the shipped "
           "named.root)", _path, metavar="FILE"),
    Option("upstream-port", int, "port of every upstream server (default 53; for labs that "
           "cannot bind 53)", server_port, metavar="PORT"),
    Option("ipv4-only", bool, "query upstream servers over IPv4 only (default: IPv4 and IPv6 "
           "wherever the host has a route)"),
    Option("ipv6-only", bool, "query upstream servers over IPv6 only"),
    Option("qname-minimisation", bool, "ask each server only for the next label of the name "
           "(RFC 9156; default on)", reloadable=True),
    Option("priming", bool, "learn the root's name servers from the root itself before the "
           "first walk and when they expire (RFC 8109; default on; off for test harnesses "
           "that do not script it)"),
    Option("dnssec", bool, "validate answers with DNSSEC (RFC 4033-4035; default on, from the "
           "root KSKs shipped with the package, or from --trust-anchor-file)"),
    Option("trust-anchor-file", str, "DS or DNSKEY records (master-file lines) to validate "
           "from; with custom root hints validation needs one", _path, metavar="FILE"),
    Option("cache-size", int, "most record sets (and answers) kept in the cache (default "
           "100000); lowering it at a reload evicts", _positive, metavar="ENTRIES",
           reloadable=True),
    Option("min-ttl", int, "floor for cached TTLs, seconds (default 0)", _ttl,
           metavar="SECONDS", reloadable=True),
    Option("max-ttl", int, "ceiling for cached TTLs (default 86400)", _ttl, metavar="SECONDS",
           reloadable=True),
    Option("serve-stale", bool, "answer from expired data when a zone's servers cannot be "
           "reached, with TTL 30 and Extended DNS Error 3 (RFC 8767; default on)"),
    Option("stale-max-age", int, "seconds expired data is kept for serve-stale (default "
           "86400)", _positive, metavar="SECONDS"),
    Option("stale-client-timeout", int, "milliseconds a client waits for fresh data before it "
           "gets stale data (default 1800, RFC 8767 section 5)", _positive, metavar="MS"),
    Option("prefetch", bool, "refresh an answer asked for in the last tenth of its TTL, in "
           "the background (default on)", reloadable=True),
    Option("log-format", str, "key=value lines for a terminal, or one JSON object per line",
           choices=LOG_FORMATS, reloadable=True),
    Option("log-level", str, "least severe events logged (default info)", choices=LEVELS,
           reloadable=True),
    Option("query-log", bool, "log one line per client query at info (default off)",
           reloadable=True),
    Option("default-local-zones", bool, "answer the default local zones (localhost, "
           "private and documentation reverse zones, test., invalid., ...: RFC 6303, RFC 6761) "
           "without asking anyone (default on)", reloadable=True),
    Option("nodefault", list, "a default local zone to leave to the DNS, by name (repeatable; "
           "labs whose zones use documentation names)", default_zone_name, metavar="ZONE",
           reloadable=True),
    Option("hosts-file", str, "answer the names of a hosts file (/etc/hosts format) "
           f"authoritatively (default: none; '{OFF}': none)", _path, metavar="FILE",
           reloadable=True),
    Option("workers", int, "processes answering on the port (SO_REUSEPORT), each with its own "
           "cache (default 1)", _positive, metavar="N"),
    Option("control-socket", str, "Unix socket for resolver-control, mode 0600 (default "
           "/run/resolver/control-PORT.sock as root, else in $XDG_RUNTIME_DIR or /tmp; "
           f"'{OFF}': no control socket)", _socket_path, metavar="PATH"),
    Option("metrics", str, "serve Prometheus metrics at http://ADDR:PORT/metrics and the web "
           "view at http://ADDR:PORT/ (default off)", _endpoint, metavar="ADDR:PORT"),
    Option("dnstap", str, "write dnstap query logs (client and upstream queries and responses) "
           "to a Frame Streams reader's Unix socket or to a file (default off)", _dnstap,
           metavar="unix:PATH|file:PATH"),
    Option("ip-ratelimit", int, "queries per second per client address over UDP, DoT and DoH "
           "together (its /24, or IPv6 /64 and /56, get a multiple; TCP is not limited); over "
           "it, UDP gets ip-ratelimit-mode, DoT REFUSED, DoH 429 (default 0: off)",
           _not_negative, metavar="QPS", reloadable=True),
    Option("ip-ratelimit-mode", str, "what a UDP query over ip-ratelimit gets: a truncated "
           "answer (TC=1: a real client retries over TCP, which is not limited) or nothing",
           choices=RATELIMIT_MODES, reloadable=True),
    Option("zone-ratelimit", int, "queries per second sent to the servers of any one zone "
           "cut, against floods of random names under one zone (Unbound's ratelimit; "
           "default 0: off)", _not_negative, metavar="QPS", reloadable=True),
    Option("zone-ratelimit-factor", int, "over zone-ratelimit, one query in this many is "
           "sent all the same, so the zone stays resolvable (0: none; default 10)",
           _not_negative, metavar="N", reloadable=True),
    # DNSSEC hardening (issue 20): resolver.validate.aggressive, resolver.ops.negative,
    # resolver.ops.autotrust.
    Option("aggressive-nsec", bool, "answer NXDOMAIN, NODATA and wildcard answers from "
           "validated NSEC/NSEC3 ranges without asking (RFC 8198; default on)",
           reloadable=True),
    Option("auto-trust-anchor-file", str, "trust anchors kept up to date by RFC 5011 "
           "(Unbound's auto-trust-anchor-file): starts as DS or DNSKEY lines, rewritten by the "
           "resolver, which must be able to write it", _path, metavar="FILE"),
    Option("add-holddown", int, "RFC 5011: seconds a new key must be seen before it is "
           "trusted (default 2592000, 30 days)", _not_negative, metavar="SECONDS"),
    Option("del-holddown", int, "RFC 5011: seconds a revoked key is remembered before it is "
           "forgotten (default 2592000, 30 days)", _not_negative, metavar="SECONDS"),
    Option("negative-trust-anchors", list, "a zone not to validate, its signatures broken "
           "(RFC 7646 negative trust anchor; repeatable; also resolver-control nta)",
           zone_name, metavar="ZONE", reloadable=True),
    # Off-path forgery and resource exhaustion (issue 21): docs/operations.md#forgery
    Option("upstream-port-reuse", bool, "reuse an upstream UDP socket (and so its source "
           "port) for up to 16 queries to the same server within 2 s: less CPU, but an "
           "open port found by an attacker then carries several queries (default off: a "
           "fresh random port per query, RFC 5452 section 9.2)"),
    Option("use-caps-for-id", bool, "0x20: random letter case in upstream questions, a "
           "reply in another case is refused (default off, as Unbound's)", reloadable=True),
    Option("caps-exempt", list, "a domain whose names are asked without 0x20 (repeatable; "
           "servers that do not keep case)", zone_name, metavar="ZONE",
           reloadable=True),
    Option("upstream-cookies", bool, "send DNS cookies to upstream servers and refuse replies "
           "with the wrong one (RFC 7873; default on)"),
    Option("answer-cookies", bool, "answer clients' DNS cookies with server cookies (RFC "
           "7873, RFC 9018); a valid one exempts a query from ip-ratelimit (default on)",
           reloadable=True),
    Option("cookie-secret", list, "server cookie secret, 32 hex digits (repeatable: the "
           "first makes cookies, all are accepted; default: random at start)",
           _cookie_secret, metavar="HEX", reloadable=True),
    Option("max-udp-size", int, "largest answer sent over UDP, bytes (default 1232, DNS Flag "
           "Day 2020; Unbound's max-udp-size)", _udp_size, metavar="BYTES", reloadable=True),
    Option("tcp-connections-per-client", int, "TCP connections one client address may hold "
           "(default 32; 0: no limit; Unbound's tcp-connection-limit)", _not_negative,
           metavar="N"),
    Option("pending-per-client", int, "UDP queries of one client address being resolved at "
           "once, 4 times that for its /24 (IPv6 /56); beyond, dropped (DNSBomb; default "
           "256; 0: no limit)", _not_negative, metavar="N", reloadable=True),
    # The encrypted transports (resolver.serve.tls, dot, doh): off unless a port is given.
    Option("tls-port", int, "port for DNS over TLS on every listening address (RFC 7858; 853 "
           "is its own; default: off); needs tls-certificate and tls-key", _port,
           metavar="PORT"),
    Option("https-port", int, "port for DNS over HTTPS at /dns-query on every listening address "
           "(RFC 8484, HTTP/2 and HTTP/1.1; 443 is its own; default: off); needs "
           "tls-certificate and tls-key", _port, metavar="PORT"),
    Option("tls-certificate", str, "certificate chain (PEM) of the DNS over TLS and HTTPS "
           "listeners, read again at each reload", _path, metavar="FILE", reloadable=True),
    Option("tls-key", str, "private key (PEM) of tls-certificate, read again at each reload",
           _path, metavar="FILE", reloadable=True),
)  # fmt: skip
BY_KEY: Mapping[str, Option] = {option.key: option for option in OPTIONS}
