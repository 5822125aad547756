"""RFC 5011 in the running service: probe the trust points, keep the anchors, write the file.

With ``auto-trust-anchor-file = PATH`` (Unbound's name) the trust anchors of the zones
in that file are kept up to date by the zones themselves: each trust point's DNSKEY
RRset is fetched afresh (validated from the anchors in force) at the RFC 5011 section
2.3 interval (half its TTL, at most 15 days, at least an hour; after a failure a tenth,
at most a day), and :func:`resolver.dnssec.autotrust.update` moves its keys through the
hold-downs.  Every change is logged (``autotrust``, one event per key) and the file is
written again, atomically (a temporary file beside it, fsync, rename), so a crash never
leaves half a file; the anchors the validator uses are replaced at once.

The file starts as a plain anchor file (DS or DNSKEY lines: the root's from IANA, say)
and must be writable by the resolver.  With ``--workers`` every process probes and keeps
its own anchors; only the first writes the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from resolver.cache.records import Security
from resolver.dnssec import TrustAnchorError, TrustAnchors
from resolver.dnssec.autotrust import (
    ADD_HOLDDOWN,
    DEL_HOLDDOWN,
    TrustPoint,
    format_state,
    parse_state,
    refresh_after,
    trusted,
    update,
)
from resolver.iterate.engine import IterativeEngine
from resolver.validate import Validator
from resolver.wire import RRType
from resolver.wire.names import name_key

log = structlog.get_logger("resolver.ops.autotrust")


def load_points(path: str | Path) -> list[TrustPoint]:
    """The trust points of an ``auto-trust-anchor-file``; TrustAnchorError naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        why = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise TrustAnchorError(f"cannot read {path}: {why}") from None
    points = parse_state(text, str(path))
    if not points:
        raise TrustAnchorError(f"{path}: no DS or DNSKEY record")
    return points


def merged(base: TrustAnchors | None, points: list[TrustPoint]) -> TrustAnchors:
    """``base`` with the trust points' anchors in force for their zones (a trust point
    whose anchors were all revoked has none: its zone is not validated, RFC 5011 5)."""
    by_zone = dict(base.by_zone) if base is not None else {}
    for point in points:
        by_zone.pop(name_key(point.zone), None)
        anchors = trusted(point)
        if anchors:
            by_zone[name_key(point.zone)] = tuple(anchors)
    return TrustAnchors(by_zone)


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: a crash leaves the old file or the new one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    with contextlib.suppress(OSError):  # the rename itself made durable
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class AutoTrust:
    """The trust points of one process and the task that probes them."""

    def __init__(
        self,
        path: str | Path,
        engine: IterativeEngine,
        validator: Validator,
        base: TrustAnchors | None = None,
        *,
        add_holddown: float = ADD_HOLDDOWN,
        del_holddown: float = DEL_HOLDDOWN,
        writes: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.engine = engine
        self.validator = validator
        self.base = base
        self.points = load_points(self.path)
        self.add_holddown = add_holddown
        self.del_holddown = del_holddown
        self.writes = writes
        self.clock = clock

    def install(self) -> None:
        """The anchors in force given to the validator (its chain of trust starts anew)."""
        self.validator.set_anchors(merged(self.base, self.points))

    async def probe(self, point: TrustPoint) -> list[str]:
        """Fetch the point's DNSKEY RRset afresh and move its keys on; the changes."""
        answer = await self.engine.resolve(point.zone, RRType.DNSKEY, refresh=True)
        now = self.clock()
        keys = [rr for rr in answer.answer if rr.rrtype == RRType.DNSKEY]
        sigs = answer.sigs or []
        if answer.security != Security.SECURE or not keys:
            point.next_probe = now + refresh_after(keys, sigs, now, failed=True)
            why = answer.failure.text if answer.failure else Security(answer.security).name
            log.warning("autotrust_probe_failed", zone=point.zone, reason=why,
                        retry_in=int(point.next_probe - now))  # fmt: skip
            self._save()
            return []
        changes = update(point, keys, sigs, now, add_holddown=self.add_holddown,
                         del_holddown=self.del_holddown)  # fmt: skip
        point.next_probe = now + refresh_after(keys, sigs, now, failed=False)
        for change in changes:
            log.warning("autotrust", zone=point.zone, change=change)
        if point.revoked_all:
            why = "every trust anchor was revoked: the zone is not validated"
            log.error("autotrust_revoked", zone=point.zone, reason=why)
        if changes:
            self.install()
        self._save()
        return changes

    def _save(self) -> None:
        if not self.writes:
            return
        try:
            write_atomically(self.path, format_state(self.points))
        except OSError as error:
            log.error("autotrust_write_failed", path=str(self.path), error=str(error))

    async def run(self) -> None:
        """Probe each trust point when it is due, until cancelled."""
        while True:
            now = self.clock()
            for point in self.points:
                if point.next_probe <= now:
                    try:
                        await self.probe(point)
                    except Exception:  # the probe must not die of one bad answer
                        log.exception("autotrust_probe_error", zone=point.zone)
                        point.next_probe = now + 3600
            due = min(point.next_probe for point in self.points)
            await asyncio.sleep(max(1.0, min(due - self.clock(), 3600.0)))
