"""Where the policy's zones come from, and keeping them current: files, transfers, reloads.

:func:`build_policy` makes the service's :class:`~resolver.serve.policy_step.PolicyStep`
from the settings' ``[[policy-zone]]`` and ``[[blocklist]]`` tables
(:mod:`resolver.ops.policy_config`), one :class:`Feed` per source, in order:

- a file (an RPZ master file, or a blocklist and its allowlist) is read at start-up
  (a file that does not load stops the resolver there, as a local zone does) and
  again at each reload if it changed (size, time or inode), in a worker thread
  (:mod:`resolver.ops.policy_files`): the loop goes on answering, with the data in
  force, until the new data is compiled and logged (``policy_zone_loaded``);
- a zone with a ``primary`` starts empty and is transferred in the background
  (:mod:`resolver.net.xfr`): AXFR first, then at each SOA refresh (RFC 1034
  section 4.3.5: the SOA's refresh, or its retry after a failure, between
  :data:`MIN_TIMER` and one day) the serial is compared and IXFR asked, AXFR when
  IXFR fails; a NOTIFY from the primary (RFC 1996) starts the refresh at once.  A
  zone past its SOA expire without a successful refresh is logged, and kept.

Whatever fails (a file that does not read or parse, a malformed RPZ record, a
list with no rule, a source over ``max-entries``, a transfer cut half way) is one
warning line naming the source and why, and the data loaded before stays in
force.  A change of response-IP, NSDNAME or NSIP rules empties the wire answer
cache, whose answers were judged by the old rules (QNAME and client-IP rules are
looked at before it on every query, so their changes need nothing).

``resolver-control policy list`` lists the sources with their serial and size;
``policy reload NAME`` reads a file again, or transfers the whole zone again
(AXFR); ``policy refresh NAME`` checks a transferred zone's serial now and
transfers what changed (a file: read again if it changed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from resolver.net.xfr import Primary, XfrError, XfrKind, newer, query_soa, soa_serial, transfer
from resolver.ops.config import SettingsError
from resolver.ops.policy_config import PolicySource
from resolver.ops.policy_files import (
    PolicyLoadError,
    Signature,
    answer_rules,
    compiled_with,
    load_file_source,
    options_of,
    signature_of,
    sources_of,
)
from resolver.policy import Policy, PolicySlot, PolicyZone, RpzError, ZoneReader, apply_changes
from resolver.policy.rules import Trigger
from resolver.serve.policy_step import PolicyStep
from resolver.serve.responses import make_response
from resolver.wire import Message, Rcode, RRType
from resolver.wire.names import name_key
from resolver.wire.rdata import SOA

if TYPE_CHECKING:
    from resolver.cache.answers import AnswerCache
    from resolver.ops.config import Settings
    from resolver.ops.runtime import ReloadHook, Runtime

log = structlog.get_logger("resolver.serve.policy")

MIN_TIMER = 2.0  # seconds: the shortest refresh or retry a primary's SOA may ask for
MAX_TIMER = 86400.0
FIRST_RETRY = 5.0  # seconds between tries while a zone was never transferred


# -------------------------------------------------------------------- one source


@dataclass
class Feed:
    """One source: its slot in the policy and what is known of its loading."""

    source: PolicySource
    slot: PolicySlot
    signature: Signature = ()
    compiled: tuple[object, ...] = ()  # what the data was compiled with (compiled_with)
    loaded: float | None = None  # wall-clock time of the data in force
    last_ok: float | None = None  # monotonic time of the last good load or refresh check
    error: str | None = None  # the last failure, until the next success
    expired_logged: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    # One refresh at a time (the timer's, a NOTIFY's, resolver-control's): two transfers
    # applying differences to one zone would each find it changed under them.
    busy: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def primary(self) -> Primary | None:
        if self.source.primary is None:
            return None
        address, _, port = self.source.primary.partition("@")
        return Primary(address, int(port) if port else 53)


class PolicyFeeds:
    """Every source of one service's policy, and the work that keeps them current."""

    def __init__(self, step: PolicyStep, flush: Callable[[], int]) -> None:
        self.step = step
        self.flush = flush  # empties the wire answer cache; returns how many went
        self.feeds: dict[str, Feed] = {}
        self._loading: set[asyncio.Task[object]] = set()  # file reads in worker threads
        step.feeds = self
        step.stats.policy_entries = lambda: {
            name: len(f.slot.zone) for name, f in self.feeds.items()
        }

    # ---------------------------------------------------------------- configuration

    def configure(self, sources: tuple[PolicySource, ...], starting: bool) -> None:
        """Put ``sources`` in force, in their order: new ones loaded, changed ones loaded
        again, gone ones dropped.  At start-up a file that does not load raises
        PolicyLoadError; later it is logged and the data it had stays."""
        old = self.feeds
        feeds: dict[str, Feed] = {}
        for source in sources:
            key = name_key(source.name)
            feed = old.get(key)
            if feed is not None and (feed.source.kind, feed.source.file, feed.source.primary) != (
                source.kind, source.file, source.primary,
            ):  # fmt: skip
                # Another file or primary: its data stays in force until the new is loaded
                # (transferred whole: its serial is not the new primary's to compare).
                self._stop(feed)
                feed = Feed(source, PolicySlot(source.name, feed.slot.zone))
            if feed is None:
                feed = Feed(source, PolicySlot(source.name, PolicyZone(source.name)))
            feed.source = source
            feed.slot.configure(options_of(source))
            feeds[key] = feed
            if source.file is not None and starting:
                self._load_file(feed)
        for key, feed in old.items():
            if key not in feeds:
                self._stop(feed)
        before = [answer_rules(f.slot.zone) for f in old.values()]
        self.feeds = feeds
        self.step.install(Policy([feed.slot for feed in feeds.values()]))
        if before != [answer_rules(f.slot.zone) for f in feeds.values()] and not starting:
            self._flushed("configuration")
        self.start()
        if not starting:
            files = [feed for feed in feeds.values() if feed.source.file is not None]
            self._soon(self._load_files(files, force=False))

    def start(self) -> None:
        """Start following the primaries (once an event loop runs)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        for feed in self.feeds.values():
            if feed.primary is not None and feed.task is None:
                feed.task = asyncio.ensure_future(self._follow(feed))

    def _stop(self, feed: Feed) -> None:
        if feed.task is not None:
            feed.task.cancel()
            feed.task = None

    def stop(self) -> None:
        for feed in self.feeds.values():
            self._stop(feed)

    # ---------------------------------------------------------------- loading

    def _soon(self, work: Coroutine[Any, Any, object]) -> None:
        """Run ``work`` on the event loop (kept until it is done), or now without one."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(work)
            return
        task = asyncio.ensure_future(work)
        self._loading.add(task)
        task.add_done_callback(self._loading.discard)

    async def _load_files(self, feeds: list[Feed], force: bool) -> list[str]:
        return [await self._load_later(feed, force) for feed in feeds]

    async def _load_later(self, feed: Feed, force: bool) -> str:
        """Read a file source again in a worker thread, so that the event loop answers
        meanwhile; put it in force unless the source was replaced in the meantime."""
        source = feed.source
        signature = signature_of(source)
        same = signature == feed.signature and feed.compiled == compiled_with(source)
        if not force and feed.loaded is not None and same:
            return f"{source.name}: unchanged"
        started = time.monotonic()
        try:
            zone = await asyncio.to_thread(load_file_source, source)
        except PolicyLoadError as error:
            if self.feeds.get(name_key(source.name)) is feed:
                self._failed(feed, str(error))
            return f"{error}; the data loaded before stays"
        if self.feeds.get(name_key(source.name)) is not feed:
            return f"{source.name}: reconfigured while it was read; not used"
        feed.signature, feed.compiled = signature, compiled_with(source)
        self._install(feed, zone, "file", started)
        return f"{source.name}: loaded from {source.file}, {len(zone)} entries"

    def _load_file(self, feed: Feed) -> None:
        """Read a file source now (start-up): PolicyLoadError if it does not load."""
        started = time.monotonic()
        zone = load_file_source(feed.source)
        feed.signature, feed.compiled = signature_of(feed.source), compiled_with(feed.source)
        self._install(feed, zone, "file", started)

    def _install(self, feed: Feed, zone: PolicyZone, how: str, started: float) -> None:
        """Put new data for a source in force."""
        answers_changed = answer_rules(feed.slot.zone) != answer_rules(zone)
        feed.slot.zone = zone
        self._succeeded(feed, how, started)
        if answers_changed:
            self._flushed(feed.source.name)

    def _succeeded(self, feed: Feed, how: str, started: float, changes: int | None = None) -> None:
        feed.loaded, feed.last_ok, feed.error, feed.expired_logged = (
            time.time(), time.monotonic(), None, False,
        )  # fmt: skip
        self.step.policy.refresh()
        self._count(feed, "ok")
        zone = feed.slot.zone
        log.info("policy_zone_loaded", zone=feed.source.name, how=how, serial=zone.serial,
                 entries=len(zone), changes=changes,
                 seconds=round(time.monotonic() - started, 3))  # fmt: skip

    def _failed(self, feed: Feed, error: str) -> None:
        feed.error = error
        self._count(feed, "error")
        zone = feed.slot.zone
        log.warning("policy_zone_not_loaded", zone=feed.source.name, error=error,
                    kept_serial=zone.serial, kept_entries=len(zone))  # fmt: skip

    def _count(self, feed: Feed, result: str) -> None:
        loads = self.step.stats.policy_loads
        key = (feed.source.name, result)
        loads[key] = loads.get(key, 0) + 1

    def _flushed(self, why: str) -> None:
        count = self.flush()
        if count:
            log.info("policy_answers_flushed", reason=why, answers=count)

    # ---------------------------------------------------------------- transfers

    async def _follow(self, feed: Feed) -> None:
        """Keep a transferred zone current, until cancelled.  NOTIFYs come at most once
        per MIN_TIMER seconds into a refresh: a flood of them (a spoofed source address
        is easy over UDP) costs the primary one SOA query every two seconds at most."""
        while True:
            started = time.monotonic()
            ok = await self.refresh(feed)
            feed.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._delay(feed, ok)):
                    await feed.wake.wait()
            await asyncio.sleep(max(started + MIN_TIMER - time.monotonic(), 0.0))

    def _delay(self, feed: Feed, ok: bool) -> float:
        soa = feed.slot.zone.soa
        if soa is None or not isinstance(soa.rdata, SOA):
            return FIRST_RETRY
        timer = soa.rdata.refresh if ok else soa.rdata.retry
        late = feed.last_ok is not None and time.monotonic() - feed.last_ok > soa.rdata.expire
        if late and not feed.expired_logged:
            feed.expired_logged = True
            log.warning("policy_zone_expired", zone=feed.source.name, serial=soa.rdata.serial,
                        kept="no refresh within the SOA expire: kept in force")  # fmt: skip
        return min(max(float(timer), MIN_TIMER), MAX_TIMER)

    async def refresh(self, feed: Feed, full: bool = False) -> bool:
        """Check the primary's serial and transfer what changed (everything when
        ``full``).  False (logged) when it failed."""
        async with feed.busy:
            return await self._refresh(feed, full)

    async def _refresh(self, feed: Feed, full: bool) -> bool:
        primary = feed.primary
        assert primary is not None
        name = feed.source.name
        serial = None if full or feed.loaded is None else feed.slot.zone.serial
        started = time.monotonic()
        try:
            if serial is not None:
                soa = await query_soa(primary, name)
                if not newer(soa_serial(soa), serial):
                    feed.last_ok, feed.error = time.monotonic(), None
                    return True
                try:
                    await self._transfer(feed, primary, serial, started)
                    return True
                except (XfrError, RpzError) as error:
                    log.info("policy_ixfr_failed", zone=name, primary=str(primary),
                             error=str(error), then="axfr")  # fmt: skip
            await self._transfer(feed, primary, None, started)
        except (XfrError, RpzError, OSError) as error:
            self._failed(feed, f"{name}: transfer from {primary}: {error}")
            return False
        return True

    async def _transfer(
        self, feed: Feed, primary: Primary, serial: int | None, started: float
    ) -> None:
        source = feed.source
        reader = ZoneReader(source.name, source.max_entries)
        result = await transfer(primary, source.name, reader.add, serial=serial,
                                max_records=source.max_entries)  # fmt: skip
        if result.kind is XfrKind.FULL:
            self._install(feed, reader.finish(), "axfr", started)
        elif result.kind is XfrKind.INCREMENTAL:
            zone = feed.slot.zone
            changed = apply_changes(zone, result.steps, result.soa)
            self._succeeded(feed, "ixfr", started, len(changed))
            if any(place[0] is not Trigger.QNAME and place[0] is not Trigger.CLIENT_IP
                   for place in changed):  # fmt: skip
                self._flushed(source.name)
        else:
            feed.last_ok, feed.error = time.monotonic(), None

    # ---------------------------------------------------------------- NOTIFY and control

    def notify(self, query: Message, client: str) -> Message:
        """The answer to a NOTIFY (RFC 1996): accepted from a zone's primary only, and
        then the zone is refreshed at once; REFUSED otherwise."""
        question = query.question[0] if len(query.question) == 1 else None
        feed = self.feeds.get(name_key(question.name)) if question is not None else None
        primary = feed.primary if feed is not None else None
        if question is None or question.rrtype != RRType.SOA or primary is None:
            log.warning("notify_refused", client=client, reason="not a zone transferred here")
            return make_response(query, Rcode.REFUSED, with_question=question is not None)
        if client != primary.address:
            log.warning("notify_refused", client=client, zone=question.name,
                        reason=f"not from its primary {primary}")  # fmt: skip
            return make_response(query, Rcode.REFUSED)
        assert feed is not None
        log.info("notify", zone=question.name, client=client)
        feed.wake.set()
        response = make_response(query, Rcode.NOERROR)
        response.header.aa = 1
        return response

    def listing(self) -> list[str]:
        lines = []
        for feed in self.feeds.values():
            zone, source = feed.slot.zone, feed.source
            loaded = "never"
            if feed.loaded is not None:
                loaded = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(feed.loaded))
            where = f"primary={source.primary}" if source.primary else f"file={source.file}"
            serial = zone.serial if zone.serial is not None else "-"
            line = (f"{source.name} kind={source.kind} {where} serial={serial} "
                    f"entries={len(zone)} action={source.override.value} "
                    f"loaded={loaded}")  # fmt: skip
            lines.append(line + (f" error={feed.error!r}" if feed.error else ""))
        return lines

    async def command(self, words: list[str]) -> list[str]:
        """``list``, ``reload NAME`` or ``refresh NAME``; ValueError if it makes no sense."""
        if words == ["list"]:
            return self.listing()
        if len(words) != 2 or words[0] not in ("reload", "refresh"):
            raise ValueError("policy takes list, reload NAME or refresh NAME")
        feed = self.feeds.get(name_key(words[1])) or self.feeds.get(name_key(words[1] + "."))
        if feed is None:
            raise ValueError(f"no policy zone or blocklist named {words[1]!r}")
        if feed.primary is None:
            text = await self._load_later(feed, force=words[0] == "reload")
            if feed.error is not None:
                raise ValueError(text)
            return [text]
        ok = await self.refresh(feed, full=words[0] == "reload")
        zone = feed.slot.zone
        if not ok:
            raise ValueError(f"{feed.error}; serial {zone.serial} stays")
        return [f"{feed.source.name}: serial {zone.serial}, {len(zone)} entries"]


# -------------------------------------------------------------------- the service's side


def build_policy(settings: Settings, runtime: Runtime) -> PolicyFeeds | None:
    """The policy sources of a new service, their step in ``feeds.step`` (None without
    any source); SettingsError if a file does not load."""
    sources = sources_of(settings)
    if not sources:
        return None
    step = PolicyStep(Policy(), runtime.stats, runtime.engine, runtime.records)
    feeds = PolicyFeeds(step, lambda: _emptied(runtime.answers))
    try:
        feeds.configure(sources, starting=True)
    except PolicyLoadError as error:
        raise SettingsError(str(error)) from None
    return feeds


def _emptied(answers: AnswerCache) -> int:
    """Empty the wire answer cache; how many answers it held."""
    count = len(answers)
    answers.clear()
    return count


def policy_hook(runtime: Runtime) -> ReloadHook:
    """The reload hook of the policy: sources added, changed, dropped; files read again."""

    def prepare(new: Settings) -> Callable[[], None]:
        sources = sources_of(new)

        def apply() -> None:
            feeds = runtime.policy_feeds
            if not sources:
                if feeds is not None:
                    feeds.stop()
                runtime.policy_feeds = None
                runtime.service.configure(policy=None)
                return
            if feeds is None:
                step = PolicyStep(Policy(), runtime.stats, runtime.engine, runtime.records)
                feeds = runtime.policy_feeds = PolicyFeeds(step, lambda: _emptied(runtime.answers))
            feeds.configure(sources, starting=False)
            runtime.service.configure(policy=feeds.step)

        return apply

    return prepare


async def policy_command(runtime: Runtime, line: str) -> Any:
    """``resolver-control policy ...`` in this process: its output lines."""
    feeds = runtime.policy_feeds
    if feeds is None:
        if line == "list":
            return ["no policy zone or blocklist is configured"]
        raise ValueError("no policy zone or blocklist is configured")
    return await feeds.command(line.split())
