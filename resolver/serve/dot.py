"""DNS over TLS for clients (RFC 7858): the TCP service of :mod:`resolver.serve.listener`
inside TLS, on ``--tls-port``.

Everything RFC 7766 asks of a TCP connection is the TCP listener's own code, reused
by subclassing (:class:`DotConnection` is a ``_TcpConnection``): the 2-byte length
prefix, pipelined queries answered as they complete (out of order), at most
``MAX_PIPELINED`` in progress before reading stops, the idle timeout counted from the
last answer, a client that does not read its answers dropped.  What TLS adds:

- the cap on open connections counts a connection from its first byte, and at the cap
  the one longest in its handshake is given up for the new one
  (:class:`resolver.serve.tls.Admission`);
- the handshake (:func:`resolver.serve.tls.accept_tls`), bounded by
  ``HANDSHAKE_TIMEOUT``; the idle timeout starts when it is done;
- the service is told the transport is ``Transport.TLS`` (TCP rules: no truncation; counted
  and logged as ``tls``);
- ``ip-ratelimit`` (the service's, in ``ResolverService.take``): a query counts against
  its client address's account, shared with UDP and DoH, and over the limit gets
  REFUSED with an Extended DNS Error at once (:func:`resolver.serve.ratelimit.refused`),
  never nothing: a dropped query would hold one of the client's ``MAX_PIPELINED``
  places until it gave up;
- EDNS padding (RFC 7830): the answer to a query that carried the Padding option is
  padded to a multiple of 468 octets (RFC 8467 section 4.1), whether it came from the
  wire cache or from a resolution.
"""

from __future__ import annotations

import asyncio
from typing import cast

import structlog

from resolver.iterate.request import Transport
from resolver.serve import tcp
from resolver.serve.listener import Pending, ResolverService
from resolver.serve.tcp import MAX_TCP_CONNECTIONS, _TcpConnection
from resolver.serve.tls import Admission, ServerCertificate, accept_tls
from resolver.wire.raw import RESPONSE_BLOCK, has_padding, pad, repad

log = structlog.get_logger("resolver.serve.dot")

TRANSPORT = Transport.TLS


def padded(packet: bytes, response: bytes | None) -> bytes | None:
    """The response padded to RFC 8467's block when the query asked for padding."""
    if response is not None and has_padding(packet):
        return pad(response, RESPONSE_BLOCK)
    return response


class PaddingService:
    """The service as a TLS connection sees it: the same answers, padded when asked."""

    def __init__(self, service: ResolverService) -> None:
        self.service = service

    def take(self, packet: bytes, client: str, transport: Transport) -> bytes | Pending | None:
        outcome = self.service.take(packet, client, transport)
        if isinstance(outcome, bytes):
            return padded(packet, outcome)
        return outcome

    async def finish(self, pending: Pending) -> bytes | None:
        return padded(pending.packet, await self.service.finish(pending))

    def failed(self, pending: Pending) -> bytes | None:
        return padded(pending.packet, self.service.failed(pending))


class DotListener:
    """RFC 7858 service on one socket: the TCP listener's connections, inside TLS."""

    def __init__(
        self,
        service: ResolverService,
        certificate: ServerCertificate,
        max_connections: int = MAX_TCP_CONNECTIONS,
    ) -> None:
        self.service = service
        self.certificate = certificate
        self.admission = Admission(max_connections, service.stats, TRANSPORT)
        # What the TCP connection code calls (take, finish, failed): the service, padded.
        self.padding = cast(ResolverService, PaddingService(service))

    @property
    def open(self) -> int:
        return self.admission.open

    # What a connection asks of its listener (resolver.serve.tcp.ConnectionHost): TCP's
    # idle timeouts, shorter as the connections fill the cap; the cap itself is the TLS
    # Admission's, which gives up the connection longest in its handshake.
    def base_timeout(self) -> float:
        return tcp.TCP_IDLE_TIMEOUT  # read at each use: tests lower the module's constant

    def idle_timeout(self) -> float:
        return tcp.pressure_timeout(self.admission.open, self.admission.max_connections)

    def became_busy(self, connection: _TcpConnection) -> None:
        pass

    def became_idle(self, connection: _TcpConnection) -> None:
        pass

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?",)
        if not self.admission.admit(writer, str(peer[0])):
            writer.close()
            return
        try:
            await DotConnection(self, reader, writer, str(peer[0])).serve()
        except asyncio.CancelledError:
            # Shutting down with the connection open.  Python 3.11's stream server logs a
            # handler that ends cancelled as an error ("Exception in callback"): end quietly.
            writer.transport.abort()
        except Exception:
            log.exception("internal_error", client=str(peer[0]), transport=TRANSPORT.value)
        finally:
            self.admission.release(writer)
            writer.close()


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
        super().__init__(listener, reader, writer, client)
        self.listener: DotListener = listener
        self.service = listener.padding  # answers padded when the query asked (RFC 7830)

    def framed(self, response: bytes) -> bytes:
        """As over TCP (the keepalive option), and a padded answer padded again so that
        the Padding option stays last and the length a multiple of the block."""
        framed = super().framed(response)
        if framed is not response and has_padding(response):
            return repad(framed, RESPONSE_BLOCK)
        return framed

    async def serve(self) -> None:
        context = self.listener.certificate.dot  # the one in force now (a reload replaces it)
        stats = self.listener.service.stats
        raw = self.writer
        accepted = await accept_tls(self.reader, raw, context, stats, TRANSPORT, self.client)
        if accepted is None:
            return
        self.listener.admission.handshake_done(raw)
        self.reader, self.writer = accepted
        self.idle_since = self.loop.time()  # idle from the end of the handshake
        try:
            await super().serve()
        finally:
            self.writer.close()  # close_notify, then the connection
