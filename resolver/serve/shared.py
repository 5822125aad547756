"""A cache tier shared by several resolver nodes, in Redis (``[shared-cache]``; off by default).

Several nodes behind a load balancer (dnsdist: ``deploy/dnsdist.conf``) each keep
their own caches; this tier lets a name one node resolved be an answer on every
other, as Unbound's ``cachedb`` module does with Redis.  It is two steps of the
engine's pipeline (:mod:`resolver.iterate.pipeline`, placed by
:mod:`resolver.serve.steps`):

1. after the wire answer cache (the listener's fast path), the local zones and the
   record cache: a hit there never asks Redis, and nor does a name of a local zone
   (node configuration, not DNS data: never read from nor written to the tier),
   nor a question another client's walk is resolving already (it joins that walk);
2. the read (:meth:`SharedTier.before`): ``GET`` and ``PTTL`` of the question's key
   in one round trip; a value is decoded and checked (:mod:`resolver.serve.sharedwire`:
   a trust boundary) and answered like an answer of the engine's, TTLs counted down;
3. otherwise the engine walks from the root, and the write (:meth:`SharedTier.after`)
   offers its answer (NOERROR or NXDOMAIN, never a SERVFAIL; with validation on only
   secure or insecure data, never bogus nor unchecked) in the background with its
   remaining TTL as the Redis expiry (``SET key value EX lifetime``).  The client
   never waits for a write.  The resolver's own questions (prefetch, key lookups)
   neither read nor write.

The key is ``key-prefix`` + the question's name (case folded) + ``/`` + its type:
``resolver:www.example.com./A``.  One value holds the whole answer with its
RRSIGs, proofs and DNSSEC state, and each node shapes it for its client (DO, CD,
AD), so the client's flags are not in the key: one entry serves every client.
Nodes whose configurations differ (local zones aside, which never reach the
tier) should use different prefixes.

Redis slow or down never makes a client wait longer than ``connect-timeout-ms``
plus ``read-timeout-ms`` nor fail: the lookup counts an error and the query goes
on to the engine.  The first error of an outage is logged (``shared_cache_down``,
warning) and the tier is skipped for a second, then tried by one query at a time
with the pause doubling up to 30 seconds; the first success logs
``shared_cache_up``.  Counters (``resolver-control stats``, ``/metrics``):
``shared_cache_lookups{result=hit|miss|error|rejected|skipped}``,
``shared_cache_writes{result=ok|error|skipped|too_large}`` and the gauge
``shared_cache_up``.

Redis is a trust boundary (issue 20): anyone who can write to it can put any bytes
there, the DNSSEC state of a value included.  So a validating node does not take that
state on trust.  With ``hmac-keys`` configured, values are authenticated with
HMAC-SHA256 under a key the nodes share (:func:`resolver.serve.sharedwire.seal`; two
keys are accepted during a rotation, the first one signs) and a value without a valid
tag is refused: only a node holding a key could have written it, after validating it.
Without keys, a validating node validates every value again with its own chain of
trust (:func:`resolver.serve.sharedcheck.revalidate`: the RRSIGs and proofs are in the
value; the keys it lacks are looked up as for its own answers); one that does not validate is
counted as ``bogus`` and the question walked; Unbound's ``cachedb`` sits behind its
validator for the same reason.  A node that does not validate serves values as
unchecked data (never AD).

The ``redis`` library (with hiredis, ``pip install 'resolver[shared-cache]'``) is
imported only when the section is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import structlog

from resolver.cache.records import Security
from resolver.iterate.answer import Answer
from resolver.iterate.engine import IterativeEngine
from resolver.iterate.pipeline import Transaction
from resolver.serve.sharedcheck import revalidate
from resolver.serve.sharedwire import (
    BadValue,
    accepted_states,
    decode,
    encode,
    seal,
    shareable,
    unseal,
)
from resolver.serve.stats import ServiceStats
from resolver.wire import RRType
from resolver.wire.names import name_key

log = structlog.get_logger("resolver.serve.shared")

SECTION = "shared-cache"
URL_SCHEMES = ("redis", "rediss", "unix")
MAX_LOOKUPS = 32  # Redis lookups in flight at once; beyond, a query goes straight on
MAX_WRITES = 64  # writes waiting for Redis; beyond, an answer is not written
RETRY_FIRST = 1.0  # seconds the tier is skipped after the first error of an outage
RETRY_MAX = 30.0  # the longest pause between two tries while it is down
BAD_VALUE_LOG_INTERVAL = 10.0  # seconds between two warnings about bad values
LOOKUP_RESULTS = ("hit", "miss", "error", "rejected", "skipped", "bogus")
MIN_HMAC_KEY = 32  # characters of a shared key (HMAC-SHA256: RFC 2104 section 3)

WRITE_RESULTS = ("ok", "error", "skipped", "too_large")


# -- the section ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SharedCacheSettings:
    """The ``[shared-cache]`` section, checked."""

    url: str  # redis://[[user]:password@]host:port/db, rediss://... (TLS), unix:///path
    key_prefix: str = "resolver:"
    connect_timeout_ms: int = 100
    read_timeout_ms: int = 100
    max_ttl: int = 86400  # values with a longer TTL are refused (and written capped to it)
    max_value_size: int = 65536  # bytes; larger values are neither written nor read
    hmac_keys: tuple[str, ...] = ()  # shared secrets: the first signs, each verifies

    @property
    def keys(self) -> tuple[bytes, ...]:
        return tuple(key.encode() for key in self.hmac_keys)

    @property
    def timeout(self) -> float:
        """The longest a query waits for Redis, seconds."""
        return (self.connect_timeout_ms + self.read_timeout_ms) / 1000


def shown_url(url: str) -> str:
    """The URL for the log: without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    netloc += f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=netloc))


def connect(settings: SharedCacheSettings) -> Any:
    """An asyncio Redis client for the settings: no retries of its own (a failed command
    is a miss; the tier decides when to try again), its timeouts."""
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return redis.asyncio.Redis.from_url(
        settings.url,
        socket_connect_timeout=settings.connect_timeout_ms / 1000,
        socket_timeout=settings.read_timeout_ms / 1000,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        client_name=f"resolver-{os.getpid()}",
    )


def _errors() -> tuple[type[BaseException], ...]:
    """What a failed Redis command raises: the library's errors, sockets', timeouts."""
    from redis.exceptions import RedisError

    return (RedisError, OSError, TimeoutError)


# -- the tier ------------------------------------------------------------------------------


class SharedTier:
    """One node's link to the shared cache (see the module's description)."""

    def __init__(
        self,
        settings: SharedCacheSettings,
        stats: ServiceStats,
        engine: IterativeEngine,
        client: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.stats = stats
        self.engine = engine
        self.client = client if client is not None else connect(settings)
        self.clock = clock
        self.errors = _errors()
        self.down_since: float | None = None
        self.retry_at = 0.0
        self.pause = RETRY_FIRST
        self.lookups = 0  # in flight
        self.writes: set[asyncio.Task[None]] = set()
        self.bad_logged_at = -BAD_VALUE_LOG_INTERVAL
        self.bad_unlogged = 0
        for result in LOOKUP_RESULTS:
            stats.shared_lookups.setdefault(result, 0)
        for result in WRITE_RESULTS:
            stats.shared_writes.setdefault(result, 0)
        stats.shared_up = 1

    def key(self, qname: str, qtype: int) -> str:
        return f"{self.settings.key_prefix}{name_key(qname)}/{RRType.text(qtype)}"

    async def before(self, tx: Transaction) -> bool:
        """The read: the tier's answer to a client's question the node's own caches did
        not have (validated again unless authenticated), or nothing."""
        request = tx.request
        engine = self.engine
        if request.internal or tx.prefix is not None or engine.walking(tx):
            return False
        qname, qtype = tx.name, request.qtype
        validating = engine.validating
        found = await self.fetch_value(qname, qtype, validating)
        if found is None:
            return False
        shared, authenticated = found
        if not validating or authenticated or request.checking_disabled:
            tx.answer = shared
            return True
        security = await revalidate(engine, qname, qtype, shared)
        if security is not None:
            shared.security = security
            tx.answer = shared
            return True
        self.stats.shared_lookups["bogus"] += 1
        self._bad_value(self.key(qname, qtype), "did not validate")
        return False

    async def after(self, tx: Transaction) -> None:
        """The write: an answer this node's walk found (replacing a value that did not
        validate), offered in the background."""
        answer = tx.answer
        if not tx.walked or tx.prefix is not None or answer is None:
            return
        if answer.upstream_queries > 0 and shareable(answer, self.engine.validating):
            self.offer(tx.name, tx.request.qtype, answer)

    # ------------------------------------------------------------ reading

    async def fetch(self, qname: str, qtype: int, validating: bool) -> Answer | None:
        """The tier's answer to a question, checked (its DNSSEC state as written); None on
        a miss, an error, a bad value."""
        found = await self.fetch_value(qname, qtype, validating)
        return found[0] if found is not None else None

    async def fetch_value(
        self, qname: str, qtype: int, validating: bool
    ) -> tuple[Answer, bool] | None:
        """(the tier's answer, whether it is authenticated) or None (see :meth:`fetch`)."""
        counts = self.stats.shared_lookups
        if self.lookups >= MAX_LOOKUPS or not self._may_try():
            counts["skipped"] += 1
            return None
        key = self.key(qname, qtype)
        self.lookups += 1
        try:
            async with asyncio.timeout(self.settings.timeout):
                pipe = self.client.pipeline(transaction=False)
                pipe.get(key)
                pipe.pttl(key)
                value, pttl = await pipe.execute()
        except self.errors as error:
            counts["error"] += 1
            self._failed(error)
            return None
        finally:
            self.lookups -= 1
        self._succeeded()
        if value is None or pttl == -2 or 0 <= pttl < 1000:
            counts["miss"] += 1  # absent, or expiring within the second: TTL 0 is no answer
            return None
        try:
            if pttl < 0:
                raise BadValue("the key has no expiry")
            if len(value) > self.settings.max_value_size:
                raise BadValue(f"{len(value)} bytes, over max-value-size")
            inner, authenticated = unseal(value, key, self.settings.keys)
            answer = decode(inner, qname, qtype, pttl / 1000, max_ttl=self.settings.max_ttl,
                            states=accepted_states(validating))  # fmt: skip
        except BadValue as error:
            counts["rejected"] += 1
            self._bad_value(key, str(error))
            return None
        counts["hit"] += 1
        if not validating:  # this node vouches for nothing: as its own engine would answer
            answer.security, answer.sigs, answer.proof = Security.UNCHECKED, None, None
        return answer, authenticated

    # ------------------------------------------------------------ writing

    def offer(self, qname: str, qtype: int, answer: Answer) -> None:
        """Write a resolved answer in the background (the client is not kept waiting)."""
        counts = self.stats.shared_writes
        if len(self.writes) >= MAX_WRITES or not self._may_try():
            counts["skipped"] += 1
            return
        value, lifetime = encode(qname, qtype, answer, self.settings.max_ttl)
        key = self.key(qname, qtype)
        value = seal(value, key, self.settings.keys)
        if len(value) > self.settings.max_value_size:
            counts["too_large"] += 1
            return
        task = asyncio.ensure_future(self._write(key, value, lifetime))
        self.writes.add(task)
        task.add_done_callback(self.writes.discard)

    async def _write(self, key: str, value: bytes, lifetime: int) -> None:
        try:
            async with asyncio.timeout(self.settings.timeout):
                await self.client.set(key, value, ex=lifetime)
        except self.errors as error:
            self.stats.shared_writes["error"] += 1
            self._failed(error)
            return
        self.stats.shared_writes["ok"] += 1
        self._succeeded()

    # ------------------------------------------------------------ outages

    def _may_try(self) -> bool:
        """Up, or down and due for a try (which pushes the next one back, so that one
        query at a time probes a tier that is down)."""
        if self.down_since is None:
            return True
        now = self.clock()
        if now < self.retry_at:
            return False
        self.retry_at = now + self.pause
        return True

    def _failed(self, error: BaseException) -> None:
        now = self.clock()
        if self.down_since is None:
            self.down_since, self.pause = now, RETRY_FIRST
            self.stats.shared_up = 0
            log.warning("shared_cache_down", url=shown_url(self.settings.url),
                        error=_describe(error), retry_in=self.pause,
                        worker=os.getpid())  # fmt: skip
        else:
            self.pause = min(self.pause * 2, RETRY_MAX)
        self.retry_at = now + self.pause

    def _succeeded(self) -> None:
        if self.down_since is None:
            return
        down_for = self.clock() - self.down_since
        self.down_since = None
        self.stats.shared_up = 1
        log.info("shared_cache_up", url=shown_url(self.settings.url),
                 down_seconds=round(down_for, 1), worker=os.getpid())  # fmt: skip

    def _bad_value(self, key: str, reason: str) -> None:
        """A warning for a value refused, at most one per interval (a poisoned tier must
        not flood the log), saying how many were not logged since the last one."""
        now = self.clock()
        if now - self.bad_logged_at < BAD_VALUE_LOG_INTERVAL:
            self.bad_unlogged += 1
            return
        log.warning("shared_cache_bad_value", key=key, reason=reason,
                    not_logged_since_last=self.bad_unlogged)  # fmt: skip
        self.bad_logged_at, self.bad_unlogged = now, 0

    async def close(self) -> None:
        """Let the writes in progress end, then close the client's connections."""
        if self.writes:
            await asyncio.wait(self.writes, timeout=self.settings.timeout)
        closing = getattr(self.client, "aclose", None) or self.client.close
        with contextlib.suppress(*self.errors):
            await closing()


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
