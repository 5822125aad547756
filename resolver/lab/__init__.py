"""A simulated DNS internet on loopback for testing the recursive resolver.

Root, TLD and deeper authoritative servers (dnspython based) on 127.x.y.z addresses, all on
one port (default 5300); see :mod:`resolver.lab.topology` for the address scheme and
:mod:`resolver.lab.cases` for the expected answers a recursive resolver should give.

    with Lab() as lab:
        lab.write_hints(tmp / "root.hints")
        ...  # resolver --root-hints tmp/root.hints --upstream-port 5300

The names below are loaded on first use, so that ``resolver-lab`` (resolver.lab.cli) can
start without dnspython and say how to install it (``pip install 'resolver[lab]'``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cases import CASES, LabCase, answer_of
    from .server import DEFAULT_PORT, Lab, LabError, QueryRecord
    from .topology import DEAD_ADDRESSES, ROOT_HINTS, SERVERS, ZONES_DIR, ServerRole

_HOME: dict[str, str] = {
    **dict.fromkeys(("CASES", "LabCase", "answer_of"), ".cases"),
    **dict.fromkeys(("DEFAULT_PORT", "Lab", "LabError", "QueryRecord"), ".server"),
    **dict.fromkeys(
        ("DEAD_ADDRESSES", "ROOT_HINTS", "SERVERS", "ZONES_DIR", "ServerRole"), ".topology"
    ),
}

__all__ = [
    "CASES",
    "DEAD_ADDRESSES",
    "DEFAULT_PORT",
    "ROOT_HINTS",
    "SERVERS",
    "ZONES_DIR",
    "Lab",
    "LabCase",
    "LabError",
    "QueryRecord",
    "ServerRole",
    "answer_of",
]


def __getattr__(name: str) -> Any:  # PEP 562: import the module that holds it when asked
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home, __name__), name)
