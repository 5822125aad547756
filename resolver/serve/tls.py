"""TLS for the encrypted listeners (DNS over TLS, DNS over HTTPS): the certificate and key
from files, the contexts made from them, their reload, and TLS over an accepted stream.

- Contexts: TLS 1.2 and 1.3 only (RFC 8310 section 9, RFC 7525), no renegotiation (a
  client-driven CPU sink), no compression; ALPN ``dot`` for DNS over TLS (the IANA
  registered identifier) and ``h2``, ``http/1.1`` for DNS over HTTPS (RFC 8484 section
  5.2 recommends HTTP/2).  A client offering none of them is served all the same.
  Session resumption is OpenSSL's: session tickets (TLS 1.3 and 1.2) and its server
  session cache, both per context, that is per process and per reload.
- Reload: SIGHUP (or ``resolver-control reload``) reads the certificate and the key
  again (they may have been renewed in place under the same names) into new contexts;
  connections open keep the session they have, new ones get the new certificate.  A
  pair that does not load rejects the reload, and the contexts in force stay.
- The handshake is done here, over the plain stream the listener accepted
  (:class:`TlsStream`, :mod:`ssl` with memory BIOs), not by the event loop's own TLS
  transport: so the connection counts against the listener's cap from its first byte,
  a handshake that never ends is cut at :data:`HANDSHAKE_TIMEOUT`, and reading stays
  pulled by the reader (a client that sends without reading is held back by TCP,
  as over plain TCP).  It is also the one way that works on uvloop, whose
  ``start_tls`` for a server-side connection fails its handshakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import Any

import structlog

from resolver.iterate.request import Transport
from resolver.serve.stats import ServiceStats

log = structlog.get_logger("resolver.serve.tls")

HANDSHAKE_TIMEOUT = 10.0  # seconds from a connection's opening to its finished handshake
READ_SIZE = 65536
ALPN_DOT = ("dot",)
ALPN_HTTPS = ("h2", "http/1.1")
TICKETS = 2  # TLS 1.3 session tickets sent after each full handshake (OpenSSL's default)


class TlsError(ValueError):
    """A certificate or key that cannot be used: one line saying which and why."""


def server_context(certificate: str, key: str, alpn: tuple[str, ...]) -> ssl.SSLContext:
    """A server context with the certificate chain and key of these files."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.num_tickets = TICKETS
    context.set_alpn_protocols(list(alpn))
    for path in (certificate, key):  # OpenSSL's errors do not say which file
        try:
            with open(path, "rb"):
                pass
        except OSError as error:
            raise TlsError(f"cannot read {path}: {error.strerror}") from None
    try:
        context.load_cert_chain(certificate, key)
    except ssl.SSLError as error:
        reason = error.reason or str(error)
        if "KEY_VALUES_MISMATCH" in str(error):
            reason = "the key does not belong to the certificate"
        raise TlsError(
            f"tls-certificate {certificate} and tls-key {key} cannot be used: {reason}"
        ) from None
    return context


class ServerCertificate:
    """The contexts of the DNS over TLS and DNS over HTTPS listeners, from one certificate
    and key; :meth:`load` makes new ones (the reload)."""

    def __init__(self, certificate: str, key: str) -> None:
        self.dot, self.https = self.contexts(certificate, key)
        self.files = (certificate, key)

    @staticmethod
    def contexts(certificate: str, key: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        return server_context(certificate, key, ALPN_DOT), server_context(
            certificate, key, ALPN_HTTPS
        )

    def prepare(self, certificate: str, key: str) -> Callable[[], None]:
        """Read the files now (TlsError if they do not load); the function returned puts
        the new contexts in force."""
        dot, https = self.contexts(certificate, key)

        def apply() -> None:
            self.dot, self.https = dot, https
            self.files = (certificate, key)
            log.info("certificate_reloaded", certificate=certificate)

        return apply


# -------------------------------------------------------------------- admission


class Admission:
    """The cap on a listener's open connections, counted from their first byte.

    At the cap, the connection that has been in its handshake longest is given up for
    the new one (a real client finishes its handshake in milliseconds; one that has not
    after the others came is likelier one of a flood of connections that never will),
    and only when every connection has finished its handshake is the new one refused.
    So a flood of silent connections cannot lock real clients out for the handshake
    timeout, as it would if they were refused (the TCP listener's idle flood).
    """

    def __init__(self, max_connections: int, stats: ServiceStats, transport: Transport) -> None:
        self.max_connections = max_connections
        self.stats = stats
        self.transport = transport
        self.open = 0
        self.handshaking: dict[asyncio.StreamWriter, None] = {}  # oldest first

    def admit(self, writer: asyncio.StreamWriter, client: str) -> bool:
        stats, transport = self.stats, self.transport
        if self.open >= self.max_connections:
            if not self.handshaking:
                refused = stats.connections_refused
                refused[transport] = refused.get(transport, 0) + 1
                log.warning(f"{transport.value}_refused", client=client,
                            reason="too many connections")  # fmt: skip
                return False
            oldest = next(iter(self.handshaking))
            del self.handshaking[oldest]
            oldest.transport.abort()  # its handler ends at once and lets its place go
            stats.handshake(transport, "evicted")
        self.open += 1
        stats.connections[transport] = stats.connections.get(transport, 0) + 1
        self.handshaking[writer] = None
        return True

    def handshake_done(self, writer: asyncio.StreamWriter) -> None:
        self.handshaking.pop(writer, None)

    def release(self, writer: asyncio.StreamWriter) -> None:
        self.handshaking.pop(writer, None)
        self.open -= 1
        self.stats.connections[self.transport] -= 1


# -------------------------------------------------------------------- TLS over a stream


class TlsStream:
    """TLS over a plain asyncio stream, driven by the reader: bytes are read from the
    network only when the application asks for more than it has."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, context: ssl.SSLContext
    ) -> None:
        self.raw_reader = reader
        self.raw_writer = writer
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.plain = bytearray()
        self.eof = False

    async def handshake(self) -> None:
        """The server's side of the handshake (the caller bounds it in time); raises
        ssl.SSLError, ConnectionError or asyncio.IncompleteReadError."""
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                await self._receive()
        self.flush()

    def flush(self) -> None:
        """Send what TLS has to send (records, alerts, tickets)."""
        pending = self.outgoing.read()
        if pending and not self.raw_writer.is_closing():
            self.raw_writer.write(pending)

    async def _receive(self) -> None:
        data = await self.raw_reader.read(READ_SIZE)
        if not data:
            self.eof = True
            self.incoming.write_eof()
            raise asyncio.IncompleteReadError(b"", None)
        self.incoming.write(data)

    async def fill(self) -> bool:
        """Decrypt at least one more byte into ``plain``; False at the end of the stream
        (the client's close_notify, or the connection closed)."""
        while True:
            try:
                chunk = self.tls.read(READ_SIZE)
            except ssl.SSLWantReadError:
                self.flush()
                if self.eof:
                    return False
                try:
                    await self._receive()
                except asyncio.IncompleteReadError:
                    return False
                continue
            except ssl.SSLError as error:  # close_notify, or records that do not decrypt
                if not isinstance(error, (ssl.SSLZeroReturnError, ssl.SSLEOFError)):
                    log.debug("tls_error", reason=error.reason or str(error))
                    self.raw_writer.transport.abort()
                return False
            self.flush()  # a TLS 1.3 key update or ticket may want an answer
            if not chunk:
                return False
            self.plain += chunk
            return True

    def write(self, data: bytes) -> None:
        if self.raw_writer.is_closing():
            return
        try:
            self.tls.write(data)
        except ssl.SSLError as error:  # the session broke (an alert, a bad record): done
            log.debug("tls_error", reason=error.reason or str(error))
            self.raw_writer.transport.abort()
            return
        self.flush()

    def close_notify(self) -> None:
        """Say goodbye the TLS way (a close_notify alert), without waiting for the reply."""
        with contextlib.suppress(ssl.SSLError, ValueError):
            self.tls.unwrap()
        with contextlib.suppress(ConnectionError, RuntimeError):
            self.flush()


class TlsReader(asyncio.StreamReader):
    """A StreamReader over a :class:`TlsStream` (what the TCP connection code reads from)."""

    def __init__(self, stream: TlsStream) -> None:
        super().__init__()
        self.stream = stream

    async def readexactly(self, n: int) -> bytes:
        stream = self.stream
        plain = stream.plain
        while len(plain) < n:
            if not await stream.fill():
                partial = bytes(plain)
                plain.clear()
                raise asyncio.IncompleteReadError(partial, n)
        data = bytes(plain[:n])
        del plain[:n]
        return data

    async def read(self, n: int = -1) -> bytes:
        stream = self.stream
        if not stream.plain and not await stream.fill():
            return b""
        size = len(stream.plain) if n < 0 else min(n, len(stream.plain))
        data = bytes(stream.plain[:size])
        del stream.plain[:size]
        return data


class TlsWriter(asyncio.StreamWriter):
    """A StreamWriter over a :class:`TlsStream`: writes are encrypted, drain and abort
    act on the plain connection underneath."""

    def __init__(self, stream: TlsStream) -> None:
        raw = stream.raw_writer
        super().__init__(raw.transport, raw._protocol, None, asyncio.get_running_loop())  # type: ignore[attr-defined]
        self.stream = stream
        self.raw = raw

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.stream.write(bytes(data))

    async def drain(self) -> None:
        await self.raw.drain()

    def is_closing(self) -> bool:
        return self.raw.is_closing()

    def close(self) -> None:
        if not self.raw.is_closing():
            self.stream.close_notify()
        self.raw.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self.stream.tls
        return self.raw.get_extra_info(name, default)


async def accept_tls(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    context: ssl.SSLContext,
    stats: ServiceStats,
    transport: Transport,
    client: str,
) -> tuple[TlsReader, TlsWriter] | None:
    """The handshake of an accepted connection, bounded by HANDSHAKE_TIMEOUT, counted by
    result; the encrypted reader and writer, or None (logged at debug: a scanner or a
    client without our authority is no news)."""
    stream = TlsStream(reader, writer, context)
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            await stream.handshake()
    except TimeoutError:
        stats.handshake(transport, "timeout")
        log.debug("tls_handshake_failed", client=client, transport=transport.value,
                  reason="timeout")  # fmt: skip
        return None
    except (ssl.SSLError, ConnectionError, OSError, asyncio.IncompleteReadError) as error:
        stats.handshake(transport, "failed")
        reason = getattr(error, "reason", None) or type(error).__name__
        log.debug("tls_handshake_failed", client=client, transport=transport.value,
                  reason=reason)  # fmt: skip
        stream.flush()  # the alert, if any
        return None
    stats.handshake(transport, "resumed" if stream.tls.session_reused else "full")
    return TlsReader(stream), TlsWriter(stream)
