"""Upstream UDP sockets: each on a random port, connected to one server.

RFC 5452 section 9.2 asks for an unpredictable source port as well as an
unpredictable ID for each query, so that an off-path attacker has to guess
both (about 31 bits) to slip in a forged reply.  By default every query gets a
socket of its own (``max_uses`` 1), as in Unbound, BIND and Knot Resolver:

- a socket is bound to a port drawn at random from 1024-65535 (not the
  kernel's smaller ephemeral range) and connected to one server (address and
  port), so the kernel drops datagrams from anyone else and reports ICMP
  errors;
- it is closed as soon as its exchange ends (a reply accepted, a timeout, an
  error): a port is open for one query and at most that query's timeout, so a
  port found open by inference (SAD DNS, 2020: ICMP rate limits reveal which
  ports are open) is good for one query's ID guessing at most, and is closed
  before the next one goes out.

Reusing a socket saves the CPU of opening one (about 11 us in Python on the
machine of docs/performance.md: socket, bind, connect, registering with the
loop, closing), and is an opt-in (``upstream-port-reuse``, ``max_uses`` above
1): a socket is then used again *only for the same server* (a port revealed to
one server, an attacker's own, say, is never used to talk to another), for at
most a random number of queries (1 to ``max_uses``), one at a time, and closed
``max_age`` seconds after it was opened whatever its uses.  The trade: a port
is then open for up to ``max_age`` seconds and carries up to ``max_uses``
queries, so an attacker who finds it open (SAD DNS) has several queries to aim
at instead of one.

Each socket is registered with the event loop once, with a callback that
hands every datagram to the exchange waiting on it (:class:`Receiver`), or
drops it when none is: a late or duplicate reply never reaches the next query,
which has a new random ID anyway.
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import secrets
import socket
import time
from collections.abc import Callable
from typing import Protocol

DEFAULT_MAX_USES = 1  # a fresh port per query (RFC 5452 section 9.2)
REUSE_MAX_USES = 16  # queries per port with upstream-port-reuse (the opt-in)
DEFAULT_MAX_AGE = 2.0  # seconds
MAX_IDLE = 512  # idle sockets kept over all servers; beyond that a returned one is closed
RECEIVE_SIZE = 65535  # the largest DNS message over UDP

Server = tuple[str, int]


class RandomPool:
    """Unpredictable numbers (RFC 5452 section 9), drawn from the OS in bulk."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.buffer = b""
        self.offset = 0

    def u16(self) -> int:
        if self.offset + 2 > len(self.buffer):
            self.buffer, self.offset = secrets.token_bytes(self.size), 0
        value = self.buffer[self.offset] << 8 | self.buffer[self.offset + 1]
        self.offset += 2
        return value

    def token(self, size: int) -> bytes:
        """``size`` unpredictable bytes (at most the pool's size)."""
        if self.offset + size > len(self.buffer):
            self.buffer, self.offset = secrets.token_bytes(self.size), 0
        start = self.offset
        self.offset += size
        return self.buffer[start : self.offset]

    def below(self, bound: int) -> int:
        """A number in [0, bound), bound at most 65536 (rejection sampling: no bias)."""
        limit = 65536 - 65536 % bound
        while True:
            value = self.u16()
            if value < limit:
                return value % bound


random_numbers = RandomPool()


def random_port() -> int:
    while True:
        port = random_numbers.u16()
        if port >= 1024:  # not a privileged port
            return port


class Receiver(Protocol):
    """What waits on a socket: it gets each datagram, or the error reading gave."""

    def datagram(self, data: bytes) -> bool:
        """Take one datagram; True once the exchange is over (nothing more to read)."""
        ...

    def error(self, error: OSError) -> None: ...


class UpstreamSocket:
    """One UDP socket on a random port, connected to one server, registered with the loop."""

    __slots__ = ("born", "fd", "receiver", "server", "sock", "uses_left")

    def __init__(self, server: Server, uses: int, now: float) -> None:
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        # SOCK_NONBLOCK at creation: one system call fewer than setblocking(False); the C
        # socket type itself, without socket.socket's Python layer (its __init__ and
        # close(), which count references for makefile(), never used here).
        sock = _socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        try:
            for _ in range(10):
                try:
                    sock.bind(("", random_port()))
                    break
                except OSError as error:
                    if error.errno != errno.EADDRINUSE:
                        raise
            else:
                sock.bind(("", 0))  # the kernel's choice, still randomised on Linux
            sock.connect(server)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.fd = sock.fileno()
        self.server = server
        self.uses_left = uses
        self.born = now
        self.receiver: Receiver | None = None

    def readable(self) -> None:
        """The loop's callback: every datagram waiting goes to the receiver, or nowhere."""
        sock = self.sock
        while True:
            try:
                data = sock.recv(RECEIVE_SIZE)
            except BlockingIOError:
                return
            except OSError as error:  # an ICMP error for what we sent (port unreachable...)
                if self.receiver is not None:
                    self.receiver.error(error)
                return
            receiver = self.receiver
            if receiver is not None and receiver.datagram(data) and self.uses_left <= 1:
                # Its last exchange is over and the socket is closed next: whatever else
                # is queued dies with it, no need for one more recv() to find out.
                return


class SocketPool:
    """The idle upstream sockets of one event loop, by server (see the module docstring)."""

    def __init__(
        self,
        max_uses: int = DEFAULT_MAX_USES,
        max_age: float = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= max_uses <= 65536:
            raise ValueError("max_uses must be between 1 and 65536")
        self.max_uses = max_uses
        self.max_age = max_age
        self.clock = clock
        self.loop: asyncio.AbstractEventLoop | None = None
        self.idle: dict[Server, list[UpstreamSocket]] = {}
        self.idle_count = 0
        self.opened = 0  # sockets opened so far (for tests and counters)
        self._sweep: asyncio.TimerHandle | None = None

    def take(self, server: Server, loop: asyncio.AbstractEventLoop) -> UpstreamSocket:
        """A socket for one exchange with ``server`` on ``loop`` (the running one): an
        idle one at random, or a new one.  Raises OSError when none can be opened."""
        if loop is not self.loop:
            self.close()  # a new loop (tests run several): the old registrations are gone
            self.loop = loop
        now = self.clock()
        sockets = self.idle.get(server) if self.max_uses > 1 else None
        while sockets:
            last = len(sockets) - 1
            chosen = random_numbers.below(last + 1) if last else 0
            sockets[chosen], sockets[last] = sockets[last], sockets[chosen]
            upstream = sockets.pop()
            self.idle_count -= 1
            if now - upstream.born < self.max_age:
                return upstream
            self._retire(upstream)
        uses = 1 + random_numbers.below(self.max_uses) if self.max_uses > 1 else 1
        upstream = UpstreamSocket(server, uses, now)
        try:
            loop.add_reader(upstream.fd, upstream.readable)
        except BaseException:
            upstream.sock.close()
            raise
        self.opened += 1
        return upstream

    def give_back(self, upstream: UpstreamSocket, healthy: bool) -> None:
        """The exchange is over; ``healthy`` False (a timeout, an error) closes the socket."""
        upstream.receiver = None
        upstream.uses_left -= 1
        if (
            not healthy
            or upstream.uses_left <= 0
            or self.idle_count >= MAX_IDLE
            or self.clock() - upstream.born >= self.max_age
            or self.loop is None
        ):
            self._retire(upstream)
            return
        self.idle.setdefault(upstream.server, []).append(upstream)
        self.idle_count += 1
        if self._sweep is None:
            self._sweep = self.loop.call_later(self.max_age, self._expire)

    def _expire(self) -> None:
        """Close the idle sockets past their age; come back while any are left."""
        self._sweep = None
        now = self.clock()
        for server, sockets in list(self.idle.items()):
            keep = [s for s in sockets if now - s.born < self.max_age]
            for upstream in sockets:
                if now - upstream.born >= self.max_age:
                    self._retire(upstream)
            self.idle_count -= len(sockets) - len(keep)
            if keep:
                self.idle[server] = keep
            else:
                del self.idle[server]
        if self.idle_count and self.loop is not None and not self.loop.is_closed():
            self._sweep = self.loop.call_later(self.max_age, self._expire)

    def _retire(self, upstream: UpstreamSocket) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            # uvloop's remove_reader returns None where asyncio's returns a bool: called as a
            # plain callable, the compiled module does not check its result's type.
            stop_reading: Callable[[int], object] = loop.remove_reader
            stop_reading(upstream.fd)
        upstream.sock.close()

    def close(self) -> None:
        """Close every idle socket (those in use are closed as their exchanges end)."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for sockets in self.idle.values():
            for upstream in sockets:
                self._retire(upstream)
        self.idle.clear()
        self.idle_count = 0
