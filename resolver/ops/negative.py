"""Negative trust anchors (RFC 7646) in the running service: the configuration's and the
operator's (``resolver-control nta``).

An operator facing a signed zone whose signatures broke (an expired signature, a key
rollover gone wrong) can tell the resolver not to validate it for a while: names at and
below a negative trust anchor are answered as insecure (no AD, no SERVFAIL for being
bogus), everything else is validated as before.  What the caches hold of the zone is
flushed when an anchor is added or removed, so that its data is judged afresh.

- ``negative-trust-anchors = ["zone.", ...]`` in the configuration: in force as long as
  it lists them (Unbound's ``domain-insecure``); a reload applies a change.
- ``resolver-control nta add ZONE [SECONDS]``: for SECONDS (default
  :data:`DEFAULT_LIFETIME`, an hour, as BIND's ``nta-lifetime``; at most
  :data:`MAX_LIFETIME`, a week, as BIND: RFC 7646 section 2 wants them temporary);
  ``nta remove ZONE``; ``nta list``.  They live in memory, for every worker, until they
  expire or the resolver restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import TYPE_CHECKING

import structlog

from resolver.ops.sections import zone_name
from resolver.validate import TrustCache
from resolver.wire.names import name_key

if TYPE_CHECKING:
    from resolver.ops.runtime import Runtime

log = structlog.get_logger("resolver.ops.negative")

DEFAULT_LIFETIME = 3600
MAX_LIFETIME = 7 * 86400


class NtaError(ValueError):
    """An ``nta`` command that cannot be run as asked."""


def _trust(runtime: Runtime) -> TrustCache:
    validator = runtime.validator
    if validator is None:
        raise NtaError("validation is off (dnssec = false): there is nothing to turn off")
    return validator.trust


def forget(runtime: Runtime, zone: str) -> None:
    """Flush what the caches and the chain of trust hold at and below ``zone``."""
    runtime.engine.flush(zone)  # the validator's chain of trust and ranges with the rest


def configure(runtime: Runtime, zones: tuple[str, ...]) -> list[str]:
    """The configuration's anchors: those it no longer lists removed, new ones added (the
    operator's stay).  Returns the zones that changed."""
    validator = runtime.validator
    if validator is None:
        return []
    trust = validator.trust
    wanted = {name_key(zone): zone for zone in zones}
    changed = []
    for key, nta in list(trust.negative.items()):
        if nta.configured and key not in wanted:
            trust.remove_negative(nta.zone)
            changed.append(nta.zone)
    for key, zone in wanted.items():
        current = trust.negative.get(key)
        if current is None or not current.configured:
            trust.add_negative(zone, math.inf, configured=True)
            changed.append(zone)
    for zone in changed:
        forget(runtime, zone)
    return changed


def parse(words: list[str]) -> str:
    """``add ZONE [SECONDS]``, ``remove ZONE`` or ``list``, checked and normalised."""
    if not words or words[0] not in ("add", "remove", "list"):
        raise NtaError("nta takes add ZONE [SECONDS], remove ZONE or list")
    action, rest = words[0], words[1:]
    if action == "list":
        if rest:
            raise NtaError("nta list takes no argument")
        return action
    if not rest or len(rest) > (2 if action == "add" else 1):
        raise NtaError(f"nta {action} takes a ZONE" + (" [SECONDS]" if action == "add" else ""))
    try:
        zone = zone_name(rest[0])
    except ValueError as error:
        raise NtaError(str(error)) from None
    if action == "remove":
        return f"remove {zone}"
    seconds = rest[1] if len(rest) == 2 else str(DEFAULT_LIFETIME)
    if not seconds.isdigit() or not 1 <= int(seconds) <= MAX_LIFETIME:
        raise NtaError(f"the lifetime is 1 to {MAX_LIFETIME} seconds, not {seconds!r}")
    return f"add {zone} {int(seconds)}"


def command(runtime: Runtime, request: str) -> list[str]:
    """Run a parsed ``nta`` request in this process; the lines to show."""
    words = request.split()
    trust = _trust(runtime)
    if words[0] == "list":
        now = trust.clock()
        return [
            f"{nta.zone} {'configured' if nta.configured else f'{int(nta.expires - now)} s left'}"
            for nta in trust.negative_anchors()
        ]
    zone = words[1]
    if words[0] == "remove":
        found = trust.negative.get(name_key(zone))
        if found is None:
            raise NtaError(f"no negative trust anchor for {zone}")
        if found.configured:
            raise NtaError(f"{zone} is in the configuration (negative-trust-anchors)")
        trust.remove_negative(zone)
        forget(runtime, zone)
        log.info("nta_removed", zone=zone)
        return [f"removed {zone}"]
    current = trust.negative.get(name_key(zone))
    if current is not None and current.configured:
        return [f"{zone} is in the configuration already"]
    seconds = int(words[2])
    expires = trust.clock() + seconds
    trust.add_negative(zone, expires)
    forget(runtime, zone)
    log.warning("nta_added", zone=zone, seconds=seconds)
    with contextlib.suppress(RuntimeError):  # no loop: a test driving it by hand
        asyncio.get_running_loop().call_later(seconds, _expired, runtime, zone, expires)
    return [f"added {zone} for {seconds} s"]


def _expired(runtime: Runtime, zone: str, expires: float) -> None:
    """An operator's anchor ran out: what was cached under it (insecure) is flushed, so the
    zone is validated again at once, not when that data's TTL ends."""
    validator = runtime.validator
    if validator is None:
        return
    current = validator.trust.negative.get(name_key(zone))
    if current is not None and current.expires != expires:
        return  # added again since, or replaced by the configuration's
    validator.trust.remove_negative(zone)
    forget(runtime, zone)
    log.info("nta_expired", zone=zone)
