"""One resolver process: the service built from :class:`Settings`, and what a reload changes.

:func:`build_service` is the one place the pieces are put together (caches,
engine, network, listener service); a new engine option is added there.

A reload (SIGHUP, or ``resolver-control reload``) reads the configuration file
again, the command line still overriding it, and changes in place what can be
changed without a restart: log level and format, the query log, the access list,
the TTL bounds (for data stored from then on; the wire answer cache, whose TTLs
were written with the old bounds, is emptied), the cache size (shrinking evicts
the least recently used), and whatever the reload hooks own: the local zones
(default zones, hosts file, zone files: the zones whose contents changed are
flushed from the wire answer cache, where local answers may be) and the forward
and stub zones (the engine's configured zones are replaced, and what was learnt
at or below a zone that changed is flushed from both caches; the table of TLS
forwarders, and the certificate of the encrypted listeners, read again from its files:
:mod:`resolver.ops.encrypted`).  Nothing is
rebuilt, so the cache stays and queries in flight finish as they started.
Addresses, ports, workers, the root hints, the address families, the control
socket and the metrics endpoint are bound at start-up: a change to them is
logged as needing a restart.  A configuration that does not
load is logged with its error, and the one in force stays.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import structlog

from resolver.cache.answers import AnswerCache
from resolver.cache.records import RecordCache
from resolver.iterate.engine import IterativeEngine
from resolver.iterate.forwarding import ConfiguredZone, ConfiguredZones, Server, ZoneKind
from resolver.iterate.hints import RootHints
from resolver.iterate.servers import ServerSelection
from resolver.iterate.stale import StalePolicy
from resolver.iterate.zonelimit import ZoneRateLimit
from resolver.local import LocalZones, load_local_zones
from resolver.net.caps import CaseKeeping
from resolver.net.sockets import DEFAULT_MAX_USES, REUSE_MAX_USES
from resolver.net.tls_upstream import TlsForwarders
from resolver.net.transport import UpstreamTransport
from resolver.ops.autotrust import AutoTrust
from resolver.ops.config import (
    Settings,
    SettingsError,
    changed_keys,
    configured_anchors,
    load_settings,
)
from resolver.ops.encrypted import tls_forwarders, tls_forwarders_hook
from resolver.ops.exposition import Sample, cache_samples, samples
from resolver.ops.logs import set_format, set_level
from resolver.ops.negative import configure as configure_negative
from resolver.ops.options import BY_KEY
from resolver.ops.policy_feeds import PolicyFeeds, build_policy, policy_hook
from resolver.ops.sections import DelegatedZone
from resolver.ops.sharedsetup import build_tier, shared_hook
from resolver.ops.upstream import upstream_addresses
from resolver.serve.access import AccessList
from resolver.serve.cookies import ServerCookies, parse_secret
from resolver.serve.dnstap import DnstapJournal, DnstapSink, TappedNetwork
from resolver.serve.listener import ResolverService
from resolver.serve.stats import CountingNetwork, ServiceStats
from resolver.validate import Validator, validator

log = structlog.get_logger("resolver.ops.runtime")

# A reload hook gets the new settings, loads what it owns from them (raising ValueError
# or SettingsError to reject the reload, nothing changed yet) and returns the function
# that puts it in force.  Every hook is prepared before any is applied.
ReloadHook = Callable[[Settings], Callable[[], None]]


class Runtime:
    """The service of one process with its caches, counters and the settings in force."""

    def __init__(
        self,
        settings: Settings,
        flags: Mapping[str, object],
        stats: ServiceStats,
        records: RecordCache,
        answers: AnswerCache,
        engine: IterativeEngine,
        service: ResolverService,
        validator: Validator | None = None,
    ) -> None:
        self.settings = settings
        self.flags = dict(flags)  # the command line: it overrides the file at every reload
        self.stats = stats
        self.records = records
        self.answers = answers
        self.engine = engine
        self.service = service
        self.validator = validator  # the engine's judge when validating (None: off)
        self.reload_hooks: list[ReloadHook] = []
        self.autotrust: AutoTrust | None = None  # RFC 5011 (auto-trust-anchor-file)
        self.policy_feeds: PolicyFeeds | None = None  # response policy: its sources
        self.transport: UpstreamTransport | None = None  # set by build_service

    def samples(self) -> list[Sample]:
        """Every counter of this process, for ``stats`` and ``/metrics``."""
        records, answers = self.records, self.answers
        return [
            *samples(self.stats),
            *cache_samples("records", records.hits, records.misses, records.evictions,
                           len(records)),
            *cache_samples("answers", answers.hits, answers.misses, answers.evictions,
                           len(answers)),
            ("resolutions_in_flight", (), self.service.in_flight),
            ("prefetches", (("result", "started"),), self.service.prefetch.started),
            ("prefetches", (("result", "refreshed"),), self.service.prefetch.refreshed),
        ]  # fmt: skip

    def reload(self) -> tuple[bool, str]:
        """Read the configuration again and apply it: (True, what changed) or (False, why
        not, the old configuration staying in force).  Logged either way."""
        worker = os.getpid()
        try:
            new = load_settings(self.settings.config, self.flags)
            appliers = [hook(new) for hook in self.reload_hooks]
        except (SettingsError, ValueError) as error:
            self.stats.reloads["error"] = self.stats.reloads.get("error", 0) + 1
            log.warning("reload_failed", error=str(error), worker=worker)
            return False, f"configuration not reloaded, the old one stays: {error}"
        changed = changed_keys(self.settings, new)
        fixed = [k for k in changed if k in BY_KEY and not BY_KEY[k].reloadable]
        applied = [k for k in changed if k not in fixed]
        self._apply(new)
        for apply in appliers:
            apply()
        kept: dict[str, Any] = {BY_KEY[k].field: self.settings.value(k) for k in fixed}
        self.settings = replace(new, **kept)
        self.stats.reloads["ok"] = self.stats.reloads.get("ok", 0) + 1
        if fixed:
            log.warning("needs_restart", keys=fixed, worker=worker)
        source = str(new.config) if new.config else "no configuration file"
        log.info("reloaded", config=source, changed=applied, worker=worker)
        text = f"reloaded ({source}): " + (", ".join(applied) or "nothing changed")
        if fixed:
            text += f"; needs a restart: {', '.join(fixed)}"
        return True, text

    def _apply(self, new: Settings) -> None:
        old = self.settings
        set_format(new.log_format)
        set_level(new.log_level)
        self.service.configure(query_log=new.query_log)
        self.engine.reconfigure(qname_minimisation=new.qname_minimisation)
        if new.allow != old.allow:
            self.service.access = AccessList(new.allow)
        self.engine.reconfigure(ttl_bounds=(new.min_ttl, new.max_ttl))
        self.service.ratelimit.configure(new.ip_ratelimit, new.ip_ratelimit_mode)
        self.service.prefetch.enable(new.prefetch)
        if (new.zone_ratelimit, new.zone_ratelimit_factor) != (
            old.zone_ratelimit,
            old.zone_ratelimit_factor,
        ):
            self.engine.reconfigure(zone_limit=zone_rate_limit(new))  # counts start again
        if new.cache_size != old.cache_size:
            self.engine.reconfigure(cache_size=new.cache_size)
        configure_validation(self, new)  # aggressive NSEC, negative trust anchors
        apply_forgery_settings(self, new)


def configure_validation(runtime: Runtime, settings: Settings) -> None:
    """The validator's settings that a reload may change: aggressive use of NSEC (RFC
    8198) on or off, and the configuration's negative trust anchors (RFC 7646)."""
    if runtime.validator is None:
        return
    runtime.validator.reconfigure(aggressive=settings.aggressive_nsec)
    configure_negative(runtime, settings.negative_trust_anchors)


def apply_forgery_settings(runtime: Runtime, settings: Settings) -> None:
    """The reloadable settings of issue 21 (0x20, server cookies, UDP size, DNSBomb)."""
    service = runtime.service
    service.cookies = server_cookies(settings)
    service.max_udp_size = settings.max_udp_size
    service.pending.per_client = settings.pending_per_client
    transport = runtime.transport
    if transport is not None:
        transport.caps.enabled = settings.use_caps_for_id
        transport.caps.exempt = CaseKeeping(exempt=settings.caps_exempt).exempt


def server_cookies(settings: Settings) -> ServerCookies | None:
    """Server cookies for clients as the settings say (None: answer-cookies off)."""
    if not settings.answer_cookies:
        return None
    return ServerCookies(parse_secret(secret) for secret in settings.cookie_secret)


def upstream_transport(settings: Settings) -> UpstreamTransport:
    """The network to the authoritative servers as the settings say."""
    return UpstreamTransport(
        port=settings.upstream_port,
        max_uses=REUSE_MAX_USES if settings.upstream_port_reuse else DEFAULT_MAX_USES,
        caps=CaseKeeping(settings.use_caps_for_id, settings.caps_exempt),
        cookies=settings.upstream_cookies,
    )


def stale_policy(settings: Settings) -> StalePolicy | None:
    """Serve-stale as the settings say (None: off)."""
    if not settings.serve_stale:
        return None
    return StalePolicy(window=settings.stale_max_age,
                       client_timeout=settings.stale_client_timeout / 1000)  # fmt: skip


def zone_rate_limit(settings: Settings) -> ZoneRateLimit | None:
    """The per-zone upstream limit as the settings say (None: off)."""
    if not settings.zone_ratelimit:
        return None
    return ZoneRateLimit(settings.zone_ratelimit, settings.zone_ratelimit_factor)


def configured_zones(settings: Settings) -> ConfiguredZones:
    """The engine's forward and stub zones from the settings' sections."""
    return ConfiguredZones(
        ConfiguredZone(
            zone.zone,
            ZoneKind.STUB if zone.stub else ZoneKind.FORWARD,
            [Server.parse(server.partition("#")[0]) for server in zone.servers],  # #: TLS name
            zone.fallback,
        )
        for zone in settings.delegated_zones()
    )


def local_zones(settings: Settings) -> LocalZones:
    """The local zones of the settings: read by load_settings, or read now."""
    return (
        settings.local if settings.local is not None else load_local_zones(settings.local_sources())
    )


def _changed_delegations(old: Settings, new: Settings) -> list[str]:
    """Forward and stub zones added, removed or changed between two settings."""
    before: dict[str, DelegatedZone] = {z.zone.lower(): z for z in old.delegated_zones()}
    after: dict[str, DelegatedZone] = {z.zone.lower(): z for z in new.delegated_zones()}
    return sorted(
        (after.get(key) or before[key]).zone
        for key in set(before) | set(after)
        if before.get(key) != after.get(key)
    )


def zones_hook(runtime: Runtime) -> ReloadHook:
    """The reload hook of the local zones and the forward and stub zones."""

    def prepare(new: Settings) -> Callable[[], None]:
        local = local_zones(new)  # a file that no longer loads rejects the reload here
        configured = configured_zones(new)
        changed_local = runtime.engine.local.changed(local)
        changed_delegations = _changed_delegations(runtime.settings, new)

        def apply() -> None:
            engine = runtime.engine
            engine.reconfigure(local=local, zones=configured if changed_delegations else None)
            flushed = sum(runtime.answers.flush_zone(zone) for zone in changed_local)
            for zone in changed_delegations:
                flushed += sum(engine.flush(zone))
            if changed_local or changed_delegations:
                log.info("zones_reloaded", local_changed=changed_local,
                         delegations_changed=changed_delegations, flushed=flushed,
                         local_zones=len(local), worker=os.getpid())  # fmt: skip

        return apply

    return prepare


def install_dnstap(runtime: Runtime, target: str) -> DnstapSink:
    """dnstap for one process (``--dnstap``): its sink, the engine's network tapped and
    the service's journal."""
    settings = runtime.settings
    address = settings.address[0] if len(settings.address) == 1 else None
    sink = DnstapSink(target, runtime.stats, address)
    engine = runtime.engine
    engine.reconfigure(network=TappedNetwork(engine.network, sink, settings.upstream_port))
    runtime.service.configure(dnstap=DnstapJournal(sink, settings.port))
    return sink


def build_service(
    settings: Settings, hints: RootHints, flags: Mapping[str, object] | None = None
) -> Runtime:
    """Everything one process answers with, from its settings."""
    stats = ServiceStats()
    records = RecordCache(settings.cache_size, min_ttl=settings.min_ttl, max_ttl=settings.max_ttl)
    transport = upstream_transport(settings)
    # Forwarders of zones with tls = true are asked over TLS (resolver.net.tls_upstream);
    # every other exchange goes through the transport the settings made.
    forwarders = TlsForwarders(transport, tls_forwarders(settings), settings.upstream_port,
                               stats.upstream_tls)  # fmt: skip
    network = CountingNetwork(forwarders, stats)
    judge = validator(settings.anchors) if settings.anchors else None
    engine = IterativeEngine(
        network,
        records,
        hints,
        selection=ServerSelection(),
        addresses=upstream_addresses(hints, settings.ipv4_only, settings.ipv6_only),
        qname_minimisation=settings.qname_minimisation,
        zones=configured_zones(settings),
        local=local_zones(settings),
        judge=judge,
        priming=settings.priming,
        stale=stale_policy(settings),
        zone_limit=zone_rate_limit(settings),
    )
    answers = AnswerCache(settings.cache_size)
    service = ResolverService(
        engine, answers, AccessList(settings.allow), query_log=settings.query_log, stats=stats
    )
    service.ratelimit.configure(settings.ip_ratelimit, settings.ip_ratelimit_mode)
    service.prefetch.enable(settings.prefetch)
    runtime = Runtime(settings, flags or {}, stats, records, answers, engine, service, judge)
    configure_validation(runtime, settings)
    if settings.auto_trust_anchor_file and judge is not None:
        runtime.autotrust = AutoTrust(settings.auto_trust_anchor_file, engine, judge,
                                      configured_anchors(settings),
                                      add_holddown=settings.add_holddown,
                                      del_holddown=settings.del_holddown)  # fmt: skip
    runtime.transport = transport
    apply_forgery_settings(runtime, settings)
    runtime.reload_hooks.append(zones_hook(runtime))
    runtime.reload_hooks.append(tls_forwarders_hook(forwarders))
    # scale: the shared tier, None unless [shared-cache]; response policy: none without a
    # policy zone or blocklist.
    feeds = runtime.policy_feeds = build_policy(settings, runtime)
    service.configure(shared=build_tier(settings, stats, engine),
                      policy=feeds.step if feeds is not None else None)  # fmt: skip
    runtime.reload_hooks.append(shared_hook(runtime))
    runtime.reload_hooks.append(policy_hook(runtime))
    return runtime
