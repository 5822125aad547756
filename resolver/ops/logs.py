"""structlog set-up: one event per line, key=value for a terminal or JSON for programs.

Events go straight to a file through structlog's own logger (not the standard
library's ``logging``, which is a bottleneck: structlog docs/performance.md),
and a filtered level costs one comparison.

Loggers are cached on first use (fast), yet a reload can still change the level
and the format: the level is read from this module at each call (structlog's
own filtering loggers bake it into the class, so a cached logger would keep the
old one), and the last processor is a renderer this module can switch.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

LEVELS = ("debug", "info", "warning", "error")
_NUMBERS = {name: getattr(logging, name.upper()) for name in LEVELS}

_threshold = logging.INFO  # the least severe level logged; read at every call


class LevelFilteredLogger(structlog.BoundLoggerBase):
    """The bound logger of the whole process: drops events below the current level."""

    def debug(self, event: str | None = None, **kw: Any) -> Any:
        if _threshold > logging.DEBUG:
            return None
        return self._proxy_to_logger("debug", event, **kw)

    def info(self, event: str | None = None, **kw: Any) -> Any:
        if _threshold > logging.INFO:
            return None
        return self._proxy_to_logger("info", event, **kw)

    def warning(self, event: str | None = None, **kw: Any) -> Any:
        if _threshold > logging.WARNING:
            return None
        return self._proxy_to_logger("warning", event, **kw)

    def error(self, event: str | None = None, **kw: Any) -> Any:
        return self._proxy_to_logger("error", event, **kw)

    def critical(self, event: str | None = None, **kw: Any) -> Any:
        return self._proxy_to_logger("critical", event, **kw)

    def exception(self, event: str | None = None, **kw: Any) -> Any:
        kw.setdefault("exc_info", True)
        return self._proxy_to_logger("error", event, **kw)

    def is_enabled_for(self, level: int) -> bool:
        return level >= _threshold


class _SwitchableRenderer:
    """The last processor: renders with whichever renderer the format asks for now."""

    def __init__(self) -> None:
        self.render: Any = structlog.processors.JSONRenderer()

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        return self.render(logger, method, event)


_renderer = _SwitchableRenderer()
_stream: TextIO = sys.stderr


def set_level(level: str) -> None:
    """Log ``level`` and more severe events from now on, in every logger."""
    global _threshold
    if level not in _NUMBERS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    _threshold = _NUMBERS[level]


def set_format(fmt: str) -> None:
    """Render events as ``console`` (key=value) or ``json`` lines from now on."""
    if fmt == "json":
        _renderer.render = structlog.processors.JSONRenderer()
    elif fmt == "console":
        _renderer.render = structlog.dev.ConsoleRenderer(colors=_stream.isatty())
    else:
        raise ValueError(f"log format must be console or json, not {fmt!r}")


def configure_logging(
    fmt: str = "console", level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog for the whole process (call once, before the first event);
    :func:`set_level` and :func:`set_format` change it later."""
    global _stream
    _stream = stream or sys.stderr
    set_format(fmt)
    set_level(level)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _renderer,
        ],
        wrapper_class=LevelFilteredLogger,
        # One write per line (message and newline together), so that the lines of several
        # --workers sharing one stderr never interleave.
        logger_factory=structlog.WriteLoggerFactory(file=_stream),
        cache_logger_on_first_use=True,
    )
