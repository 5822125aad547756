"""0x20 case randomisation of upstream questions (draft-vixie-dnsext-dns0x20, Unbound's
``use-caps-for-id``): off by default, as in Unbound.

Servers copy the question into their reply byte for byte, so the letters of a
question name whose case was drawn at random are as many more bits an off-path
forger must guess besides the ID and the source port (a name of 12 letters: 12
bits).  A reply whose question has the right letters in another case is not
accepted: it is either a forgery that guessed the ID and the port, or a server
that does not keep the case.  The exchange waits on for the right reply until
its timeout; if only such replies came, the server is taken for one that does
not keep case (:class:`CaseKeeping`) and asked without 0x20 from then on for
:data:`FORGET_AFTER` seconds: the engine's retry after the timeout goes out
plain.  That costs a non-echoing server one timeout, never a wrong answer (Unbound
falls back at once, on the first reply with the wrong case, by asking every server
of the zone without 0x20 and comparing their replies).  Names at or under the
``caps-exempt`` domains are never randomised (Unbound's ``caps-exempt``).

An accepted reply has its question's name put back in the case we were asked,
so the names compressed against it (most owner names of the answer) come out as
the client wrote them (Unbound does the same).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from resolver.net.sockets import random_numbers
from resolver.wire.names import name_key

FORGET_AFTER = 900.0  # seconds a server stays known as not keeping case
MAX_SERVERS = 4096  # servers remembered as not keeping case; then the oldest go

_LETTERS = frozenset(range(0x41, 0x5B)) | frozenset(range(0x61, 0x7B))


def randomise(name: bytes) -> bytes:
    """A name in wire form with the case of each letter drawn at random (label lengths
    are at most 63, below every letter, so they are left alone by construction)."""
    bits = random_numbers.token(len(name))
    return bytes(
        (byte & 0xDF) | (bit & 0x20) if byte in _LETTERS else byte
        for byte, bit in zip(name, bits, strict=True)
    )


def name_end(wire: bytes, start: int) -> int:
    """Just past the uncompressed name at ``start`` (a query's question)."""
    pos = start
    while wire[pos]:
        pos += wire[pos] + 1
    return pos + 1


class CaseKeeping:
    """Which questions go out with 0x20: on, except for servers seen not to keep case and
    names under the exempt domains."""

    def __init__(
        self,
        enabled: bool = False,
        exempt: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self.exempt = frozenset(name_key(name) for name in exempt)
        self.clock = clock
        self.careless: dict[str, float] = {}  # server address -> when it was seen

    def wanted(self, address: str, qname: str) -> bool:
        if not self.enabled:
            return False
        seen = self.careless.get(address)
        if seen is not None:
            if self.clock() - seen < FORGET_AFTER:
                return False
            del self.careless[address]
        if self.exempt:
            key = name_key(qname)
            while True:  # the name, then each of its ancestors up to the root
                if key in self.exempt:
                    return False
                if key == ".":
                    return True
                key = key.split(".", 1)[1] or "."
        return True

    def does_not_keep_case(self, address: str) -> None:
        """``address`` answered only with the wrong case: ask it plainly for a while."""
        if len(self.careless) >= MAX_SERVERS:
            del self.careless[next(iter(self.careless))]
        self.careless[address] = self.clock()
