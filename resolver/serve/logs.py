"""structlog set-up: one event per line, key=value for a terminal or JSON for programs.

Events go straight to a file through structlog's own logger (not the standard
library's ``logging``, which is a bottleneck: structlog docs/performance.md),
and filtered levels cost a no-op call.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

LEVELS = ("debug", "info", "warning", "error")


def configure_logging(
    fmt: str = "console", level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog for the whole process (call once, before the first event)."""
    if fmt not in ("console", "json"):
        raise ValueError(f"log format must be console or json, not {fmt!r}")
    stream = stream or sys.stderr
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        # One write per line (message and newline together), so that the lines of several
        # --workers sharing one stderr never interleave.
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
