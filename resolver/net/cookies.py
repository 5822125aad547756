"""DNS cookies towards upstream servers (RFC 7873 section 5.1 and 5.3, RFC 9018 section 3).

Every UDP query carries a COOKIE option: our Client Cookie for that server, and
the Server Cookie it last gave us, if any.  The Client Cookie is a keyed hash
(BLAKE2b, 64 bits) of the server's address under a secret drawn at start, so it
differs per server (RFC 7873 section 5.1: a cookie seen by one server tells
nothing about the one sent to another) and cannot be predicted off path.

A reply is checked against it (:meth:`CookieJar.check`):

- a reply carrying a COOKIE option whose Client Cookie is not ours is a forgery
  (only the server saw our cookie): dropped, and the exchange waits on;
- a reply without a COOKIE option from a server that has given us a Server Cookie
  is dropped too: a server that implements cookies answers every query that has
  one with one (RFC 7873 section 5.2), so once a server is known to do cookies an
  off-path forger has 64 more bits to guess.  If only such replies come until the
  exchange times out, the server is taken to have stopped doing cookies
  (:meth:`CookieJar.forget`) and the next try accepts replies without one;
- a valid Server Cookie is kept for the next queries (at most
  :data:`MAX_SERVERS` servers, the oldest forgotten first).

BADCOOKIE (extended RCODE 23) with our Client Cookie and a fresh Server Cookie
is asked again once with it, then over TCP (RFC 7873 section 5.3).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from enum import Enum

from resolver.wire.raw import (
    COOKIE,
    SERVER_COOKIE_MAX,
    SERVER_COOKIE_MIN,
    cookie_shape_ok,
    option,
    split_cookie,
)

MAX_SERVERS = 8192  # servers whose Server Cookie is kept; then the oldest go
SERVER_COOKIE_LIFETIME = 3600.0  # seconds a Server Cookie is sent back (RFC 9018: 1 h valid)


class CookieCheck(Enum):
    """What a reply's COOKIE option says about it."""

    ACCEPTED = "accepted"  # ours, or no option from a server not known to do cookies
    WRONG_COOKIE = "wrong client cookie"  # not our Client Cookie: a forgery
    MISSING = "no cookie from a cookie server"  # the server always sent one before


class CookieJar:
    """Our Client Cookies and the Server Cookies learnt, per server address."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.secret = secrets.token_bytes(16)
        self.clock = clock
        self.client: dict[str, bytes] = {}  # server address -> our Client Cookie
        self.server: dict[str, tuple[bytes, float]] = {}  # -> its Server Cookie, when learnt
        self.options: dict[str, bytes] = {}  # -> the COOKIE option to send it, made once

    def client_cookie(self, address: str) -> bytes:
        cookie = self.client.get(address)
        if cookie is None:
            if len(self.client) >= MAX_SERVERS:
                del self.client[next(iter(self.client))]
            cookie = hashlib.blake2b(address.encode(), key=self.secret, digest_size=8).digest()
            self.client[address] = cookie
        return cookie

    def server_cookie(self, address: str) -> bytes:
        """The Server Cookie to send back to ``address`` (b"" if none, or too old)."""
        known = self.server.get(address)
        if known is None:
            return b""
        if self.clock() - known[1] > SERVER_COOKIE_LIFETIME:
            del self.server[address]
            return b""
        return known[0]

    def option(self, address: str) -> bytes:
        """The COOKIE option of a query to ``address`` (kept until what it holds changes)."""
        made = self.options.get(address)
        if made is not None:  # (learning or forgetting a Server Cookie drops it)
            known = self.server.get(address)
            if known is None or self.clock() - known[1] <= SERVER_COOKIE_LIFETIME:
                return made
        made = option(COOKIE, self.client_cookie(address) + self.server_cookie(address))
        if len(self.options) >= MAX_SERVERS:
            self.options.clear()
        self.options[address] = made
        return made

    def check(self, address: str, options: tuple[tuple[int, bytes], ...]) -> CookieCheck:
        """Judge a reply's EDNS options; a valid Server Cookie in it is remembered."""
        value = next((v for code, v in options if code == COOKIE), None)
        if value is None:
            return CookieCheck.MISSING if address in self.server else CookieCheck.ACCEPTED
        client, server = split_cookie(value)
        if not cookie_shape_ok(value) or client != self.client_cookie(address):
            return CookieCheck.WRONG_COOKIE
        if SERVER_COOKIE_MIN <= len(server) <= SERVER_COOKIE_MAX:
            known = self.server.pop(address, None)  # kept in order of learning: oldest first
            if known is None or known[0] != server:
                self.options.pop(address, None)
            if len(self.server) >= MAX_SERVERS:
                del self.server[next(iter(self.server))]
            self.server[address] = (server, self.clock())
        return CookieCheck.ACCEPTED

    def forget(self, address: str) -> None:
        """``address`` no longer answers with cookies: stop expecting them."""
        self.server.pop(address, None)
        self.options.pop(address, None)
