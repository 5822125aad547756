"""Server cookies for our clients (RFC 7873 section 5.2, RFC 9018 interoperable cookies).

A client that sends a COOKIE option gets one back: its Client Cookie and a Server
Cookie of ours, which it sends with its next queries.  A valid Server Cookie
proves the client received our earlier answer at the address it claims (an
off-path sender forging that address never saw it), so such a query is exempt
from ``ip-ratelimit`` (as BIND and Knot do): a real client behind a busy
address keeps its service while floods from forged addresses are limited.

The Server Cookie is RFC 9018's (section 4), which BIND, Knot and PowerDNS
share, so servers of one anycast group can share a secret: Version 1 | Reserved
(3 bytes of 0) | Timestamp (32 bits, seconds) | Hash, where Hash is SipHash-2-4,
keyed with the 128-bit server secret, of Client Cookie | Version | Reserved |
Timestamp | Client IP (4 or 16 bytes).  A cookie is valid from 5 minutes in the
future to 1 hour in the past (section 4.3); a valid one less than half an hour
old is sent back as it came, a newer one is made otherwise.

The secret is ``cookie-secret`` (32 hex digits; several: the first makes new
cookies, all are accepted, which is how a secret is rotated: add the new one
first, remove the old one an hour later), or drawn at random when the process
starts (before the workers fork: they share it).  Checking a cookie costs one
SipHash; the last Server Cookie made for each (client address, Client Cookie)
is remembered (bounded), so a client sending it back costs a lookup.

A COOKIE option of a forbidden length is FORMERR (RFC 7873 section 5.2.2).
"""

from __future__ import annotations

import ipaddress
import secrets
import struct
import time
from collections.abc import Callable, Iterable

from resolver.wire.raw import COOKIE, option, split_cookie

VERSION = b"\x01\x00\x00\x00"  # Version 1, Reserved
PAST_LIMIT = 3600  # seconds: an older Timestamp is invalid (RFC 9018 section 4.3)
FUTURE_LIMIT = 300  # seconds: a Timestamp further ahead is invalid
REUSE_FOR = 1800  # seconds: a valid cookie younger than this is sent back unchanged
MAX_REMEMBERED = 65536  # (client, Client Cookie) -> the Server Cookie made for it
RESPONSE_OPTION_SIZE = 4 + 8 + 16  # the COOKIE option we add to an answer
RANDOM_SECRET = secrets.token_bytes(16)  # drawn at import: shared by forked workers

_MASK = 0xFFFFFFFFFFFFFFFF
_U32 = struct.Struct("!I")


def siphash24(key: bytes, data: bytes) -> bytes:
    """SipHash-2-4 (Aumasson and Bernstein, 2012) of ``data`` with a 16-byte ``key``: the
    8-byte result, little-endian as the reference code writes it."""
    k0 = int.from_bytes(key[:8], "little")
    k1 = int.from_bytes(key[8:16], "little")
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573
    size = len(data)
    whole = size - size % 8
    last = (size & 0xFF) << 56 | int.from_bytes(data[whole:], "little")
    for at in range(0, whole + 8, 8):
        m = int.from_bytes(data[at : at + 8], "little") if at < whole else last
        v3 ^= m
        for _ in range(2):
            v0 = (v0 + v1) & _MASK
            v1 = ((v1 << 13) | (v1 >> 51)) & _MASK ^ v0
            v0 = ((v0 << 32) | (v0 >> 32)) & _MASK
            v2 = (v2 + v3) & _MASK
            v3 = ((v3 << 16) | (v3 >> 48)) & _MASK ^ v2
            v0 = (v0 + v3) & _MASK
            v3 = ((v3 << 21) | (v3 >> 43)) & _MASK ^ v0
            v2 = (v2 + v1) & _MASK
            v1 = ((v1 << 17) | (v1 >> 47)) & _MASK ^ v2
            v2 = ((v2 << 32) | (v2 >> 32)) & _MASK
        v0 ^= m
    v2 ^= 0xFF
    for _ in range(4):
        v0 = (v0 + v1) & _MASK
        v1 = ((v1 << 13) | (v1 >> 51)) & _MASK ^ v0
        v0 = ((v0 << 32) | (v0 >> 32)) & _MASK
        v2 = (v2 + v3) & _MASK
        v3 = ((v3 << 16) | (v3 >> 48)) & _MASK ^ v2
        v0 = (v0 + v3) & _MASK
        v3 = ((v3 << 21) | (v3 >> 43)) & _MASK ^ v0
        v2 = (v2 + v1) & _MASK
        v1 = ((v1 << 17) | (v1 >> 47)) & _MASK ^ v2
        v2 = ((v2 << 32) | (v2 >> 32)) & _MASK
    return (v0 ^ v1 ^ v2 ^ v3).to_bytes(8, "little")


def parse_secret(text: str) -> bytes:
    """A ``cookie-secret`` value: 32 hex digits (128 bits, RFC 9018's SipHash key)."""
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{text!r} is not hexadecimal") from None
    if len(secret) != 16:
        raise ValueError(f"a cookie secret is 32 hex digits (128 bits), not {len(text)}")
    return secret


class ClientCookie:
    """What a query's COOKIE option says: the answer's option, and whether the client
    showed a valid Server Cookie of ours."""

    __slots__ = ("reply_option", "valid")

    def __init__(self, reply_option: bytes, valid: bool) -> None:
        self.reply_option = reply_option
        self.valid = valid


MALFORMED_COOKIE = ClientCookie(b"", False)  # a COOKIE option of a forbidden length


class ServerCookies:
    """Makes and checks RFC 9018 Server Cookies with the configured secrets."""

    def __init__(
        self, secrets_: Iterable[bytes] = (), clock: Callable[[], float] = time.time
    ) -> None:
        self.secrets = tuple(secrets_) or (RANDOM_SECRET,)
        self.clock = clock
        self.made: dict[tuple[str, bytes], bytes] = {}

    def make(self, client_cookie: bytes, client: str, stamp: int, secret: bytes) -> bytes:
        head = VERSION + _U32.pack(stamp & 0xFFFFFFFF)
        return head + siphash24(secret, client_cookie + head + _address_bytes(client))

    def valid(self, client_cookie: bytes, server_cookie: bytes, client: str, now: int) -> bool:
        if len(server_cookie) != 16 or server_cookie[:4] != VERSION:
            return False
        stamp = _U32.unpack_from(server_cookie, 4)[0]
        if not now - PAST_LIMIT <= stamp <= now + FUTURE_LIMIT:
            return False  # (32-bit serial arithmetic is not needed before 2106)
        return any(
            self.make(client_cookie, client, stamp, secret) == server_cookie
            for secret in self.secrets
        )

    def answer(self, value: bytes, client: str) -> ClientCookie:
        """The COOKIE option to answer a well-formed one with, and its verdict."""
        client_cookie, server_cookie = split_cookie(value)
        now = int(self.clock())
        key = (client, client_cookie)
        made = self.made.get(key)
        remembered = server_cookie == made and now - _U32.unpack_from(made, 4)[0] <= PAST_LIMIT
        valid = bool(server_cookie) and (
            remembered or self.valid(client_cookie, server_cookie, client, now)
        )
        if valid and now - _U32.unpack_from(server_cookie, 4)[0] < REUSE_FOR:
            fresh = server_cookie
        elif made is not None and now - _U32.unpack_from(made, 4)[0] < REUSE_FOR:
            fresh = made
        else:
            fresh = self.make(client_cookie, client, now, self.secrets[0])
        if fresh is not made:
            if len(self.made) >= MAX_REMEMBERED:
                self.made.clear()
            self.made[key] = fresh
        return ClientCookie(option(COOKIE, client_cookie + fresh), valid)


_ADDRESSES: dict[str, bytes] = {}


def _address_bytes(client: str) -> bytes:
    """The client's address in network order (IPv4-mapped IPv6 as IPv4), memoised."""
    packed = _ADDRESSES.get(client)
    if packed is None:
        try:
            address = ipaddress.ip_address(client.split("%", 1)[0])
        except ValueError:
            return client.encode()
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        packed = address.packed
        if len(_ADDRESSES) >= MAX_REMEMBERED:
            _ADDRESSES.clear()
        _ADDRESSES[client] = packed
    return packed
