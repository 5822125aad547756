"""A simulated DNS internet on loopback for testing the recursive resolver.

Root, TLD and deeper authoritative servers (dnspython based) on 127.x.y.z addresses, all on
one port (default 5300); see :mod:`resolver.lab.topology` for the address scheme and
:mod:`resolver.lab.cases` for the expected answers a recursive resolver should give.

    with Lab() as lab:
        lab.write_hints(tmp / "root.hints")
        ...  # python -m resolver --root-hints tmp/root.hints --upstream-port 5300
"""

from .cases import CASES, LabCase, answer_of
from .server import DEFAULT_PORT, Lab, LabError, QueryRecord
from .topology import DEAD_ADDRESSES, ROOT_HINTS, SERVERS, ZONES_DIR, ServerRole

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
