"""DNS over TLS for clients (RFC 7858): the TCP service of :mod:`resolver.serve.listener`
inside TLS, on ``--tls-port``.

Everything RFC 7766 asks of a TCP connection is the TCP listener's own code, reused
by subclassing (:class:`DotListener` is a ``TcpListener``, :class:`DotConnection` a
``_TcpConnection``): the 2-byte length prefix, pipelined queries answered as they
complete (out of order), at most ``MAX_PIPELINED`` in progress before reading stops,
the idle timeout counted from the last answer, a client that does not read its answers
dropped, and the cap on open connections, which a connection counts against from its
first byte (before its handshake).  What TLS adds:

- the handshake (:func:`resolver.serve.tls.accept_tls`), bounded by
  ``HANDSHAKE_TIMEOUT``; the idle timeout starts when it is done;
- the service is told the transport is ``"tls"`` (TCP rules: no truncation; counted
  and logged as ``tls``);
- EDNS padding (RFC 7830): the answer to a query that carried the Padding option is
  padded to a multiple of 468 octets (RFC 8467 section 4.1), whether it came from the
  wire cache or from a resolution.
"""

from __future__ import annotations

import asyncio
from typing import cast

from resolver.serve.listener import (
    MAX_TCP_CONNECTIONS,
    Pending,
    ResolverService,
    TcpListener,
    _TcpConnection,
)
from resolver.serve.tls import ServerCertificate, accept_tls
from resolver.wire.padding import RESPONSE_BLOCK, has_padding, pad

TRANSPORT = "tls"


def padded(packet: bytes, response: bytes | None) -> bytes | None:
    """The response padded to RFC 8467's block when the query asked for padding."""
    if response is not None and has_padding(packet):
        return pad(response, RESPONSE_BLOCK)
    return response


class PaddingService:
    """The service as a TLS connection sees it: the same answers, padded when asked."""

    def __init__(self, service: ResolverService) -> None:
        self.service = service

    def take(self, packet: bytes, client: str, transport: str) -> bytes | Pending | None:
        outcome = self.service.take(packet, client, transport)
        if isinstance(outcome, bytes):
            return padded(packet, outcome)
        return outcome

    async def finish(self, pending: Pending) -> bytes | None:
        return padded(pending.packet, await self.service.finish(pending))

    def failed(self, pending: Pending) -> bytes | None:
        return padded(pending.packet, self.service.failed(pending))


class DotListener(TcpListener):
    """RFC 7858 service on one socket: the TCP listener's connections, inside TLS."""

    def __init__(
        self,
        service: ResolverService,
        certificate: ServerCertificate,
        max_connections: int = MAX_TCP_CONNECTIONS,
    ) -> None:
        super().__init__(service, max_connections)
        self.certificate = certificate
        # What the TCP connection code calls (take, finish, failed): the service, padded.
        self.padding = cast(ResolverService, PaddingService(service))

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stats = self.service.stats
        if self.open >= self.max_connections:
            stats.connections_refused[TRANSPORT] = stats.connections_refused.get(TRANSPORT, 0) + 1
        stats.connections[TRANSPORT] = stats.connections.get(TRANSPORT, 0) + 1
        try:
            await super().__call__(reader, writer)
        except asyncio.CancelledError:
            # Shutting down with the connection open.  Python 3.11's stream server logs a
            # handler that ends cancelled as an error ("Exception in callback"): end quietly.
            writer.transport.abort()
        finally:
            stats.connections[TRANSPORT] -= 1

    def connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str
    ) -> _TcpConnection:
        return DotConnection(self, reader, writer, client)


class DotConnection(_TcpConnection):
    """One DNS over TLS client: the handshake, then the TCP connection's loop."""

    transport = TRANSPORT

    def __init__(
        self,
        listener: DotListener,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: str,
    ) -> None:
        super().__init__(listener.padding, reader, writer, client)
        self.listener = listener

    async def serve(self) -> None:
        context = self.listener.certificate.dot  # the one in force now (a reload replaces it)
        stats = self.listener.service.stats
        accepted = await accept_tls(self.reader, self.writer, context, stats, TRANSPORT,
                                    self.client)  # fmt: skip
        if accepted is None:
            return
        self.reader, self.writer = accepted
        self.idle_since = self.loop.time()  # idle from the end of the handshake
        try:
            await super().serve()
        finally:
            self.writer.close()  # close_notify, then the connection
