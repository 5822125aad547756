"""One observer interface for what happens during a resolution.

The engine reports each step (an upstream exchange and what came back, a
sub-lookup starting or ending, a limit hit) by calling an observer with an
event name and fields.  The default observer writes structlog lines; the trace
script prints hops for a person; tests record events.  Nothing in the engine
prints.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import structlog

# Events at warning level: a person running the resolver wants to see these.
WARNING_EVENTS = frozenset({"lame", "limit"})


class Observer(Protocol):
    def __call__(self, event: str, **fields: Any) -> None: ...


def wants_every_hop(observer: Observer) -> bool:
    """False when an observer would drop routine hop events (a log above debug level).

    The engine then skips building them, which is most of an event's cost; lame
    servers and limits are reported all the same.
    """
    return bool(getattr(observer, "wants_every_hop", True))


class LogObserver:
    """Sends events to structlog: exchanges at debug, lame servers and limits at warning."""

    def __init__(self, logger: Any = None) -> None:
        self.log = logger if logger is not None else structlog.get_logger("resolver.iterate.engine")
        try:
            self.wants_every_hop = bool(self.log.is_enabled_for(logging.DEBUG))
        except AttributeError:  # a logger without level filtering logs everything
            self.wants_every_hop = True

    def __call__(self, event: str, **fields: Any) -> None:
        if event == "hop" and fields.get("outcome") == "lame":
            self.log.warning("lame_server", **fields)
        elif event in WARNING_EVENTS:
            self.log.warning(event, **fields)
        else:
            self.log.debug(event, **fields)
