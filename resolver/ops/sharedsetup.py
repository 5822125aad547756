"""``[shared-cache]``: the section checked, the tier built, and replaced at a reload.

The tier itself (:class:`resolver.serve.shared.SharedTier`) is a step of the data path;
this is the operator's side of it: the keys of the section and what they may be
(:func:`parse_shared_cache`), the tier the settings ask for (:func:`build_tier`), and
the reload hook that replaces it, closing the old one's connections in the background.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import structlog

from resolver.iterate.engine import IterativeEngine
from resolver.serve.shared import (
    MIN_HMAC_KEY,
    SECTION,
    URL_SCHEMES,
    SharedCacheSettings,
    SharedTier,
    shown_url,
)
from resolver.serve.stats import ServiceStats

if TYPE_CHECKING:
    from resolver.ops.config import Settings
    from resolver.ops.runtime import ReloadHook, Runtime

log = structlog.get_logger("resolver.serve.shared")

__all__ = ["SECTION", "build_tier", "parse_shared_cache", "shared_hook", "shared_settings"]


_KEYS: dict[str, tuple[type, Callable[[Any], bool], str]] = {
    "url": (str, lambda v: urlsplit(v).scheme in URL_SCHEMES,
            f"a Redis URL ({', '.join(s + '://' for s in URL_SCHEMES)})"),
    "key-prefix": (str, lambda v: len(v) <= 256, "at most 256 characters"),
    "connect-timeout-ms": (int, lambda v: 1 <= v <= 10_000, "1 to 10000 milliseconds"),
    "read-timeout-ms": (int, lambda v: 1 <= v <= 10_000, "1 to 10000 milliseconds"),
    "max-ttl": (int, lambda v: 1 <= v <= 2**31 - 1, "1 to 2147483647 seconds"),
    "max-value-size": (int, lambda v: 512 <= v <= 1 << 20, "512 to 1048576 bytes"),
    "hmac-keys": (list, lambda v: 1 <= len(v) <= 2 and all(
        isinstance(k, str) and len(k) >= MIN_HMAC_KEY for k in v),
        f"one or two keys (two during a rotation) of at least {MIN_HMAC_KEY} characters"),
}  # fmt: skip


def parse_shared_cache(table: dict[str, Any]) -> SharedCacheSettings:
    """The ``[shared-cache]`` table as settings; ValueError naming the key that is wrong."""
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _KEYS:
            raise ValueError(f"unknown key {key!r} (keys: {', '.join(_KEYS)})")
        kind, check, wanted = _KEYS[key]
        if not isinstance(value, kind) or isinstance(value, bool) or not check(value):
            raise ValueError(f"{key}: {value!r} is not {wanted}")
        values[key.replace("-", "_")] = tuple(value) if isinstance(value, list) else value
    if "url" not in values:
        raise ValueError("url is required (redis://HOST:PORT/DB)")
    if importlib.util.find_spec("redis") is None:
        raise ValueError("needs the redis library: pip install 'resolver[shared-cache]'")
    return SharedCacheSettings(**values)


def shared_settings(settings: Settings) -> SharedCacheSettings | None:
    section = settings.sections.get(SECTION)
    assert section is None or isinstance(section, SharedCacheSettings)
    return section


def build_tier(
    settings: Settings, stats: ServiceStats, engine: IterativeEngine
) -> SharedTier | None:
    """The tier the settings ask for, or None when ``[shared-cache]`` is absent."""
    configured = shared_settings(settings)
    return SharedTier(configured, stats, engine) if configured is not None else None


_closing: set[asyncio.Task[None]] = set()  # tiers replaced by a reload, being closed


def _close_later(tier: SharedTier) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no event loop running (a reload outside the service): nothing open
        return
    closing = loop.create_task(tier.close())
    _closing.add(closing)
    closing.add_done_callback(_closing.discard)


def shared_hook(runtime: Runtime) -> ReloadHook:
    """The reload hook of ``[shared-cache]``: a changed section replaces the tier (the old
    one's connections closed in the background); a removed one turns it off."""

    def prepare(new: Settings) -> Callable[[], None]:
        before, after = shared_settings(runtime.settings), shared_settings(new)
        if before == after:
            return lambda: None

        def apply() -> None:
            service = runtime.service
            old = service.shared
            tier = SharedTier(after, runtime.stats, runtime.engine) if after is not None else None
            service.configure(shared=tier)
            if tier is None:
                runtime.stats.shared_up = None
            if old is not None:
                _close_later(old)
            log.info("shared_cache_reloaded", url=shown_url(after.url) if after else None,
                     worker=os.getpid())  # fmt: skip

        return apply

    return prepare
