"""DNS over TCP for clients (RFC 7766), and what it does under pressure.

- A 2-byte length prefix, several queries per connection answered as they
  complete (possibly out of order), at most ``MAX_PIPELINED`` of one connection
  in progress before it is read no further (backpressure).
- A connection is idle when no query is outstanding (RFC 7766 section 6.2.3); the
  idle timeout counts from then (the last answer sent, or the opening), not from
  the last query.  A client that does not read its answers for a whole idle
  timeout is dropped.
- At most ``max_connections`` open (256), at most ``per_client`` of them from
  one client address (``tcp-connections-per-client``, 32; Unbound's
  ``tcp-connection-limit``); beyond that a new connection from that address is
  closed at once.
- Under pressure (RFC 7766 section 6.2.3: "close idle connections... when under
  attack"): with the cap reached, a new connection closes the connection that
  has been idle longest (nothing outstanding, oldest first) and takes its place,
  so connections held open by clients that send nothing, or one byte now and
  then, cannot lock new clients out; a new one is refused when every connection
  has a query in progress, or when its own network (IPv4 /24, IPv6 /56) already
  holds ``per_client`` connections, or lost one to eviction in the last 10 s:
  fairness, a network that has its share, or that reconnects as soon as it is
  pushed out, does not push the others out in turn.  And the idle timeout shrinks as the
  connections fill up (``idle_timeout``: 10 s below half the cap, 2 s up to
  four fifths, 0.5 s beyond, as Unbound's ``edns-tcp-keepalive-timeout`` is
  lowered when its TCP buffers run short), announced to every client that uses
  EDNS in an edns-tcp-keepalive option (RFC 7828) on each answer.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from resolver.iterate.request import Transport
from resolver.wire.raw import add_option, keepalive

if TYPE_CHECKING:
    from resolver.serve.listener import Pending, ResolverService

log = structlog.get_logger("resolver.serve.tcp")

TCP_IDLE_TIMEOUT = 10.0  # seconds a TCP connection may stay open with no query outstanding
MAX_TCP_CONNECTIONS = 256
PER_CLIENT = 32  # connections from one client address (tcp-connections-per-client)
MAX_PIPELINED = 64  # queries of one TCP connection in progress before we stop reading it
EVICTED_WAIT = 10.0  # seconds a network that lost a connection to eviction may not evict
MAX_EVICTED_NETWORKS = 65536
PRESSURE_LOG_EVERY = 10.0  # seconds between two tcp_pressure log lines
# (share of the cap open, idle timeout in seconds): the first level reached applies.
PRESSURE = ((0.8, 0.5), (0.5, 2.0))


class ConnectionHost(Protocol):
    """What a connection asks of the listener that holds it (TcpListener, or DNS over
    TLS's, resolver.serve.dot): the service, the idle timeouts, and its busy/idle moves."""

    @property
    def service(self) -> ResolverService: ...

    def base_timeout(self) -> float: ...

    def idle_timeout(self) -> float: ...

    def became_busy(self, connection: _TcpConnection) -> None: ...

    def became_idle(self, connection: _TcpConnection) -> None: ...


class TcpListener:
    """RFC 7766 service: pipelined queries, out-of-order answers, idle timeout, connection
    caps, and eviction of idle connections under pressure (see the module docstring)."""

    def __init__(
        self,
        service: ResolverService,
        max_connections: int = MAX_TCP_CONNECTIONS,
        per_client: int = PER_CLIENT,
    ) -> None:
        self.service = service
        self.max_connections = max_connections
        self.per_client = per_client  # 0: no limit
        self.connections: set[_TcpConnection] = set()
        self.by_client: dict[str, int] = {}
        self.by_network: dict[object, int] = {}
        self.evicted_networks: dict[object, float] = {}  # network -> when it lost one
        # Connections with nothing outstanding, the longest idle first (dicts keep order).
        self.idle: dict[_TcpConnection, None] = {}
        self.evicted = 0
        self.pressure_counts: dict[str, int] = {}  # since the last tcp_pressure line
        self.pressure_logged = -PRESSURE_LOG_EVERY
        self._timeout = self.base_timeout()

    @property
    def open(self) -> int:
        return len(self.connections)

    def base_timeout(self) -> float:
        return TCP_IDLE_TIMEOUT  # read at each use: tests lower the module's constant

    def idle_timeout(self) -> float:
        """The idle timeout for the connections open now: shorter as they fill the cap."""
        return pressure_timeout(len(self.connections), self.max_connections)

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?",)
        client = str(peer[0])
        if self.per_client and self.by_client.get(client, 0) >= self.per_client:
            self._pressure("refused_per_client", client)
            writer.transport.abort()
            return
        network = _network(client)
        if len(self.connections) >= self.max_connections and not (
            self._may_evict(network) and self._evict_one()
        ):
            self._pressure("refused_at_cap", client)
            writer.transport.abort()
            return
        connection = _TcpConnection(self, reader, writer, client)
        self.connections.add(connection)
        self.by_client[client] = self.by_client.get(client, 0) + 1
        self.by_network[network] = self.by_network.get(network, 0) + 1
        self.idle[connection] = None
        self._pressure_changed()
        try:
            await connection.serve()
        finally:
            self.connections.discard(connection)
            self.idle.pop(connection, None)
            _count_down(self.by_client, client)
            _count_down(self.by_network, network)
            self._timeout = self.idle_timeout()
            writer.close()

    def _may_evict(self, network: object) -> bool:
        """Whether a new connection from ``network`` may push an idle one out: not when
        its network has its share already, nor when one of its connections was evicted
        within EVICTED_WAIT seconds (a network reconnecting as soon as it is evicted does
        not push the others out in turn)."""
        if self.per_client and self.by_network.get(network, 0) >= self.per_client:
            return False
        evicted = self.evicted_networks.get(network)
        return evicted is None or self.loop_time() - evicted >= EVICTED_WAIT

    @staticmethod
    def loop_time() -> float:
        return asyncio.get_running_loop().time()

    def _evict_one(self) -> bool:
        """Close the connection idle longest to make room; False if none is idle."""
        for connection in self.idle:
            del self.idle[connection]
            if len(self.evicted_networks) >= MAX_EVICTED_NETWORKS:
                self.evicted_networks.clear()
            self.evicted_networks[_network(connection.client)] = self.loop_time()
            self.connections.discard(connection)  # its place is taken now, not when it ends
            self.evicted += 1
            self._pressure("evicted", connection.client)
            connection.close()
            return True
        return False

    def _pressure(self, what: str, client: str) -> None:
        """Count a refusal or an eviction; log them, with the last client, at most once per
        PRESSURE_LOG_EVERY seconds (one line per event would let a connection flood fill
        the log as fast as it connects)."""
        self.pressure_counts[what] = self.pressure_counts.get(what, 0) + 1
        now = self.loop_time()
        if now - self.pressure_logged >= PRESSURE_LOG_EVERY:
            log.warning("tcp_pressure", last_client=client, open=len(self.connections),
                        **self.pressure_counts)  # fmt: skip
            self.pressure_logged = now
            self.pressure_counts = {}

    def _pressure_changed(self) -> None:
        """A new connection: if the idle timeout is now shorter, every idle connection's
        deadline moves closer (a connection in the middle of a query keeps its own)."""
        timeout = self.idle_timeout()
        if timeout < self._timeout:
            for connection in self.idle:
                connection.reschedule(timeout)
        self._timeout = timeout

    def became_idle(self, connection: _TcpConnection) -> None:
        self.idle.pop(connection, None)
        if connection in self.connections:
            self.idle[connection] = None  # the newest idle: the last to be evicted

    def became_busy(self, connection: _TcpConnection) -> None:
        self.idle.pop(connection, None)


class _TcpConnection:
    """One client connection: reads queries, answers each as soon as it is ready.

    It is idle when no query is outstanding (RFC 7766 section 6.2.3); the idle timeout
    starts then, that is from the last answer sent (or the connection's opening), and a
    read in progress has its deadline moved when an answer goes out.
    """

    transport = Transport.TCP  # what the service is told; TLS for DoT (resolver.serve.dot)

    def __init__(
        self,
        listener: ConnectionHost,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: str,
    ) -> None:
        self.listener = listener
        self.service = listener.service
        self.reader = reader
        self.writer = writer
        self.client = client
        self.loop = asyncio.get_running_loop()
        self.outstanding = 0
        self.idle_since = self.loop.time()
        self.read_timeout: asyncio.Timeout | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    async def serve(self) -> None:
        reader = self.reader
        while not self.closed:
            timeout = self.listener.idle_timeout()
            deadline = None if self.outstanding else self.idle_since + timeout
            try:
                async with asyncio.timeout_at(deadline) as self.read_timeout:
                    prefix = await reader.readexactly(2)
                    packet = await reader.readexactly(int.from_bytes(prefix, "big"))
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                break
            finally:
                self.read_timeout = None
            self.outstanding += 1
            self.listener.became_busy(self)
            outcome = self.service.take(packet, self.client, self.transport)
            if isinstance(outcome, bytes | None):
                await self._write(outcome)
                continue
            task = asyncio.ensure_future(self._finish(outcome))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            if len(self.tasks) >= MAX_PIPELINED:
                # Backpressure: a client that sends without reading waits for us.
                await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
        if self.tasks and not self.closed:
            await asyncio.wait(self.tasks, timeout=self.listener.base_timeout())

    def close(self) -> None:
        """Evicted: the connection is dropped now, its read ends."""
        self.closed = True
        self.writer.transport.abort()
        self._move_deadline(self.loop.time())

    def reschedule(self, timeout: float) -> None:
        """A shorter idle timeout applies from now on (pressure)."""
        if not self.outstanding:
            self._move_deadline(max(self.idle_since + timeout, self.loop.time()))

    def _move_deadline(self, when: float) -> None:
        """The read in progress, if any, ends at ``when`` (unless it is ending already)."""
        timeout = self.read_timeout
        if timeout is not None and not timeout.expired():
            timeout.reschedule(when)

    def framed(self, response: bytes) -> bytes:
        """The answer as it is sent: with the idle timeout granted on answers to EDNS
        queries (RFC 7828 section 3.3.2)."""
        return add_option(response, keepalive(self.listener.idle_timeout()))

    async def _finish(self, pending: Pending) -> None:
        try:
            response = await self.service.finish(pending)
        except Exception:
            log.exception("internal_error", client=self.client)
            response = self.service.failed(pending)  # as over UDP: the client gets an answer
        await self._write(response)

    async def _write(self, response: bytes | None) -> None:
        writer = self.writer
        if response is not None and not writer.is_closing():
            response = self.framed(response)
            writer.write(len(response).to_bytes(2, "big") + response)
            try:
                async with asyncio.timeout(self.listener.base_timeout()):
                    await writer.drain()  # the write buffer stays bounded
            except TimeoutError:
                # A client that does not read its answers: drop it rather than buffer
                # answers for it without end (RFC 7766 section 6.2.3 lets us close).
                log.warning("tcp_closed", client=self.client, reason="answers not read")
                writer.transport.abort()
            except ConnectionError:
                pass
        self.outstanding -= 1
        if self.outstanding == 0:
            self.idle_since = self.loop.time()
            self.listener.became_idle(self)
            self._move_deadline(self.idle_since + self.listener.idle_timeout())


def pressure_timeout(open_now: int, cap: int) -> float:
    """The idle timeout with ``open_now`` connections of ``cap``: TCP_IDLE_TIMEOUT, shorter
    as they fill the cap (PRESSURE; the DNS over TLS listener uses it too)."""
    share = open_now / cap if cap else 0
    for level, seconds in PRESSURE:
        if share >= level:
            return min(seconds, TCP_IDLE_TIMEOUT)
    return TCP_IDLE_TIMEOUT


def _network(client: str) -> object:
    """The client's network for fairness: IPv4 /24, IPv6 /56 (the address if neither)."""
    if ":" not in client:
        return client.rsplit(".", 1)[0]
    try:
        return ipaddress.IPv6Address(client.split("%", 1)[0]).packed[:7]
    except ValueError:
        return client


def _count_down(counts: dict[Any, int], key: object) -> None:
    left = counts.get(key, 1) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
