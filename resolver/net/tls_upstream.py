"""DNS over TLS to forwarders (RFC 7858 section 3; RFC 8310's strict profile).

A forward zone with ``tls = true`` has its forwarders asked over TLS, as Unbound's
``forward-tls-upstream``:

- **Authentication** (RFC 8310 section 8.1): the server's certificate must chain to
  the system's trusted authorities, or to ``tls-ca-file``, and name the server's
  authentication name (``tls-auth-name``, or ``ADDRESS@PORT#NAME``), checked as a
  host name (RFC 6125).  Anything else fails the exchange, as unreachable: the strict
  profile never falls back to plain DNS.  TLS 1.2 at least, ALPN ``dot``.
- **Connections are kept and reused** (RFC 7858 section 3.4, RFC 7766 section 6.2.1):
  a pool per server (address, port, name, authority) of at most
  :data:`MAX_CONNECTIONS`, each carrying up to :data:`MAX_OUTSTANDING` queries at once
  (pipelined, answers matched by ID and question, in any order), closed after
  :data:`IDLE_TIMEOUT` seconds without a query outstanding.  A connection being made
  is shared by the exchanges that arrive meanwhile, and finishes in the background if
  the exchange that started it gives up.
- **Reconnects**: a connection the server closed (its idle timeout, a restart) is
  dropped; a query that was on a reused connection when it closed is asked once more
  on a new one, if time is left.  A server that cannot be reached or authenticated
  fails the exchange, and the engine tries the zone's next forwarder (failover as over
  UDP; its server selection backs off the failing one).
- Queries are padded to a multiple of 128 octets (RFC 8467 section 4.1), carry EDNS
  (1232, DO as asked); a FORMERR or NOTIMP without EDNS is asked again without it, as
  over UDP.

:class:`TlsForwarders` is the :class:`~resolver.net.contract.Network` the service
uses: a table from (address, port) to the TLS settings of that forwarder, consulted
for each exchange; every other exchange goes to the UDP/TCP transport unchanged.  The
engine knows nothing of it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn

import structlog

from resolver.net.contract import ExchangeFailed, Failure, Network, Query, Reply
from resolver.net.sockets import random_numbers
from resolver.wire import (
    CLASS_IN,
    EDNS_PAYLOAD,
    Message,
    Rcode,
    WireError,
    parse_message,
    write_query,
)
from resolver.wire.names import name_key
from resolver.wire.raw import QUERY_BLOCK, pad

log = structlog.get_logger("resolver.net.tls_upstream")

TLS_PORT = 853
MAX_CONNECTIONS = 4  # per server
MAX_OUTSTANDING = 64  # queries in flight on one connection
IDLE_TIMEOUT = 20.0  # seconds a connection stays open with nothing outstanding
CONNECT_TIMEOUT = 5.0  # TCP and TLS handshakes, in the background


@dataclass(frozen=True)
class TlsServer:
    """A forwarder asked over TLS, and how it is authenticated."""

    address: str
    port: int
    auth_name: str  # the name its certificate must show (RFC 8310 section 8.1)
    ca_file: str | None = None  # the authority to trust; None: the system's


def client_context(ca_file: str | None) -> ssl.SSLContext:
    """Verification against ``ca_file`` or the system store, host name checked."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["dot"])
    return context


def _matches(reply: Message, qname: str, qtype: int) -> bool:
    if not reply.header.qr or len(reply.question) != 1:
        return False
    got = reply.question[0]
    return got.rrtype == qtype and got.rrclass == CLASS_IN and name_key(got.name) == name_key(qname)


class _Asked:
    """One query waiting on a connection for its reply."""

    __slots__ = ("future", "qname", "qtype", "received", "sent")

    def __init__(self, future: asyncio.Future[Message], qname: str, qtype: int) -> None:
        self.future = future
        self.qname = qname
        self.qtype = qtype
        self.sent = b""  # the query as written on the connection (its ID ours)
        self.received = b""  # the reply as it came


class _Connection:
    """One TLS connection to a server, carrying pipelined queries."""

    def __init__(self, pool: TlsUpstream, server: TlsServer) -> None:
        self.pool = pool
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.waiting: dict[int, _Asked] = {}
        self.writer: asyncio.StreamWriter | None = None
        self.closed = False
        self.answered = 0  # replies received: a connection that answered is a reused one
        self.idle_timer: asyncio.TimerHandle | None = None
        self.ready = asyncio.ensure_future(self._connect())
        # Whoever waited may have given up: the failure is then read here, not lost.
        self.ready.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def _connect(self) -> None:
        server = self.server
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                reader, self.writer = await asyncio.open_connection(
                    server.address, server.port, ssl=self.pool.context(server.ca_file),
                    server_hostname=server.auth_name, ssl_handshake_timeout=CONNECT_TIMEOUT,
                )  # fmt: skip
        except ssl.SSLCertVerificationError as error:
            reason = f"tls: certificate verify failed: {error.verify_message}"
            self._failed(Failure.UNREACHABLE, reason, warn=True)
        except ssl.SSLError as error:
            self._failed(Failure.UNREACHABLE, f"tls: {error.reason or error}", warn=True)
        except TimeoutError:
            self._failed(Failure.TIMEOUT, "tls: no connection")
        except OSError as error:
            self._failed(Failure.UNREACHABLE, f"tls: {error.strerror or error}")
        self.pool.count("opened")
        self.reading = asyncio.ensure_future(self._read(reader))
        self._idle()

    def _failed(self, failure: Failure, detail: str, warn: bool = False) -> NoReturn:
        self.closed = True
        self.pool.forget(self)
        self.pool.count("failed")
        if warn:  # an operator's problem (a certificate, a name): say so
            server = self.server
            log.warning("tls_upstream_failed", server=server.address, port=server.port,
                        name=server.auth_name, reason=detail)  # fmt: skip
        raise ExchangeFailed(failure, self.server.address, detail)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        reason = "closed by the server"
        try:
            while True:
                length = int.from_bytes(await reader.readexactly(2), "big")
                self._reply(await reader.readexactly(length))
        except asyncio.IncompleteReadError:
            pass
        except (OSError, ssl.SSLError) as error:
            reason = str(error)
        finally:
            self.close(reason)

    def _reply(self, data: bytes) -> None:
        asked = self.waiting.get(int.from_bytes(data[:2], "big")) if len(data) >= 2 else None
        if asked is None or asked.future.done():
            log.debug("reply_ignored", reason="no query with this id", server=self.server.address,
                      proto="tls")  # fmt: skip
            return
        try:
            message = parse_message(data)
        except WireError as error:
            failed = ExchangeFailed(Failure.MALFORMED, self.server.address, f"tls: {error}")
            asked.future.set_exception(failed)
            return
        if not _matches(message, asked.qname, asked.qtype):
            log.warning("reply_ignored", reason="wrong question", server=self.server.address,
                        proto="tls")  # fmt: skip
            return
        self.answered += 1
        asked.received = data
        asked.future.set_result(message)

    def full(self) -> bool:
        return len(self.waiting) >= MAX_OUTSTANDING

    def ask(self, wire: bytes, qname: str, qtype: int) -> tuple[int, _Asked]:
        """Send a query (its ID chosen here, unique on this connection)."""
        if self.closed or self.writer is None or self.writer.is_closing():
            raise ExchangeFailed(Failure.CONNECTION_CLOSED, self.server.address, "tls: closed")
        msg_id = random_numbers.u16()
        while msg_id in self.waiting:
            msg_id = random_numbers.u16()
        future: asyncio.Future[Message] = self.loop.create_future()
        asked = self.waiting[msg_id] = _Asked(future, qname, qtype)
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        message = asked.sent = msg_id.to_bytes(2, "big") + wire[2:]
        self.writer.write(len(message).to_bytes(2, "big") + message)
        return msg_id, asked

    def done(self, msg_id: int) -> None:
        self.waiting.pop(msg_id, None)
        if not self.waiting:
            self._idle()

    def _idle(self) -> None:
        if not self.closed and self.idle_timer is None:
            self.idle_timer = self.loop.call_later(IDLE_TIMEOUT, self.close, "idle")

    def close(self, reason: str) -> None:
        """Close it and fail what it still carries (CONNECTION_CLOSED)."""
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if not self.closed:
            self.closed = True
            self.pool.forget(self)
            log.debug("tls_upstream_closed", server=self.server.address, reason=reason)
        for asked in self.waiting.values():
            if not asked.future.done():
                asked.future.set_exception(ExchangeFailed(
                    Failure.CONNECTION_CLOSED, self.server.address, f"tls: {reason}"))  # fmt: skip
        if self.writer is not None and not self.writer.is_closing():
            self.writer.close()


class TlsUpstream:
    """The connection pools of every TLS server, and exchanges over them."""

    def __init__(
        self, counts: dict[str, int] | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.counts = counts if counts is not None else {}
        self.clock = clock
        self.pools: dict[TlsServer, list[_Connection]] = {}
        self.slots: dict[TlsServer, asyncio.Semaphore] = {}
        self._contexts: dict[str | None, ssl.SSLContext] = {}

    def context(self, ca_file: str | None) -> ssl.SSLContext:
        context = self._contexts.get(ca_file)
        if context is None:
            context = self._contexts[ca_file] = client_context(ca_file)
        return context

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def forget(self, connection: _Connection) -> None:
        pool = self.pools.get(connection.server)
        if pool is not None and connection in pool:
            pool.remove(connection)

    def _connection(self, server: TlsServer, fresh: bool) -> _Connection:
        """An open (or opening) connection with room, a new one if none has room."""
        pool = self.pools.setdefault(server, [])
        if not fresh:
            usable = [c for c in pool if not c.closed and not c.full()]
            if usable:
                return min(usable, key=lambda c: len(c.waiting))
        connection = _Connection(self, server)
        pool.append(connection)
        if len(pool) > MAX_CONNECTIONS:  # the oldest goes once what it carries is answered
            oldest = pool.pop(0)
            if not oldest.waiting:
                oldest.close("replaced")
        return connection

    async def exchange(self, server: TlsServer, query: Query) -> Reply:
        """Ask ``server`` over TLS; raises :class:`ExchangeFailed`."""
        qname, qtype, timeout = query.qname, query.qtype, query.timeout
        recursion_desired, dnssec_ok = query.recursion_desired, query.dnssec_ok
        started = self.clock()
        deadline = asyncio.get_running_loop().time() + timeout
        slots = self.slots.get(server)
        if slots is None:
            slots = self.slots[server] = asyncio.Semaphore(MAX_CONNECTIONS * MAX_OUTSTANDING)
        try:
            async with asyncio.timeout_at(deadline):
                await slots.acquire()
        except TimeoutError:
            raise ExchangeFailed(Failure.TIMEOUT, server.address, "tls: no room") from None
        try:
            self.count("queries")
            wire = write_query(qname, qtype, 0, rd=recursion_desired,
                               edns_payload=EDNS_PAYLOAD, dnssec_ok=dnssec_ok)  # fmt: skip
            message, asked = await self._ask(server, pad(wire, QUERY_BLOCK), qname, qtype,
                                             deadline)  # fmt: skip
            if message.rcode in (Rcode.FORMERR, Rcode.NOTIMP) and message.edns is None:
                wire = write_query(qname, qtype, 0, rd=recursion_desired)  # RFC 6891 section 7
                message, asked = await self._ask(server, wire, qname, qtype, deadline)
        finally:
            slots.release()
        return Reply(message, self.clock() - started, False, asked.sent, asked.received)

    async def _ask(
        self, server: TlsServer, wire: bytes, qname: str, qtype: int, deadline: float
    ) -> tuple[Message, _Asked]:
        for attempt in (1, 2):
            connection = self._connection(server, fresh=attempt == 2)
            reused = connection.answered > 0
            try:
                async with asyncio.timeout_at(deadline):
                    await asyncio.shield(connection.ready)
                    msg_id, asked = connection.ask(wire, qname, qtype)
                    try:
                        return await asked.future, asked
                    finally:
                        connection.done(msg_id)
            except TimeoutError:
                raise ExchangeFailed(Failure.TIMEOUT, server.address, "tls") from None
            except ExchangeFailed as failed:
                # A kept connection the server closed as we used it: once more, afresh.
                if failed.failure is Failure.CONNECTION_CLOSED and reused and attempt == 1:
                    continue
                raise
        raise ExchangeFailed(Failure.CONNECTION_CLOSED, server.address, "tls")

    def close(self) -> None:
        for pool in list(self.pools.values()):
            for connection in list(pool):
                connection.close("shut down")
        self.pools.clear()


class TlsForwarders:
    """A :class:`Network`: exchanges with a TLS forwarder (by address and port) go over
    TLS, every other one to ``inner`` (the UDP/TCP transport) unchanged."""

    def __init__(
        self,
        inner: Network,
        servers: Mapping[tuple[str, int], TlsServer] | None = None,
        default_port: int = 53,
        counts: dict[str, int] | None = None,
    ) -> None:
        self.inner = inner
        self.servers = dict(servers or {})
        self.default_port = default_port
        self.tls = TlsUpstream(counts)

    def replace(self, servers: Mapping[tuple[str, int], TlsServer]) -> None:
        """The table after a reload; connections to servers no longer in it are closed."""
        self.servers = dict(servers)
        kept = set(self.servers.values())
        for server, pool in list(self.tls.pools.items()):
            if server not in kept:
                for connection in list(pool):
                    connection.close("no longer configured")

    async def exchange(self, query: Query) -> Reply:
        if self.servers:
            server = self.servers.get((query.address, query.port or self.default_port))
            if server is not None:
                return await self.tls.exchange(server, query)
        return await self.inner.exchange(query)
