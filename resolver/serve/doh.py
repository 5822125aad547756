"""DNS over HTTPS for clients (RFC 8484) on ``--https-port``: the listener, what a request
means, what it gets back, and HTTP/1.1.  HTTP/2 is :mod:`resolver.serve.doh_h2`.

- ``GET /dns-query?dns=BASE64URL`` (no padding, RFC 8484 section 6) and
  ``POST /dns-query`` with ``Content-Type: application/dns-message``; the body of the
  answer is the DNS response, ``Content-Type: application/dns-message``, with
  ``Cache-Control: max-age=N``, N the smallest TTL of its answer and authority records
  (section 5.1; 0 when it has none, a SERVFAIL say).
- Bad requests get an HTTP status, never a DNS answer: 404 for another path, 405 for
  another method, 415 for a POST of another media type, 400 for a missing or
  undecodable ``dns`` parameter, an empty message or a packet that is not a DNS query
  (shorter than a header, or a response), 413 for a message over 65535 octets.  A
  query the service answers with an error (FORMERR, REFUSED for a client outside
  ``allow``...) is a 200 with that DNS response, as RFC 8484 section 4.2.1 says.
- The connection: HTTP/2 when the client chose ``h2`` by ALPN (or sent HTTP/2's
  preface without ALPN), HTTP/1.1 otherwise.  The same bounds as TCP: the cap on open
  connections (counted from the first byte, the one longest in its handshake given up
  at the cap: :class:`resolver.serve.tls.Admission`), the handshake timeout, the idle timeout
  counted from the last answer, at most ``MAX_PIPELINED`` answers in progress per
  connection before reading stops, a client that does not read its answers dropped;
  and for HTTP/2 at most 100 streams open at once and bodies held to the flow-control
  windows (:mod:`resolver.serve.doh_h2`).
- Access control is the service's (``allow``, REFUSED in the DNS response).  The
  per-client rate limit (``ip-ratelimit``) counts each DoH query against its client
  address's account, the one its UDP and DoT queries count against too
  (:mod:`resolver.serve.ratelimit`); over it the request gets 429 Too Many Requests
  with ``Retry-After: 1`` (RFC 6585 section 4) at once, before any DNS work, and the
  connection and its other streams go on; counted in ``queries_ratelimited`` and the
  statuses, not journaled (the query log and dnstap see DNS messages, and none was
  answered).  Checked once the request is known to carry a DNS query (a bad request
  gets its own status, and costs no more than a 429).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

import h11
import structlog

from resolver.iterate.request import Transport
from resolver.serve import tcp
from resolver.serve.dot import padded
from resolver.serve.listener import MAX_TCP_CONNECTIONS, Pending, ResolverService
from resolver.serve.tls import READ_SIZE, Admission, ServerCertificate, accept_tls
from resolver.wire import WireError
from resolver.wire.raw import smallest_ttl

log = structlog.get_logger("resolver.serve.doh")

TRANSPORT = Transport.HTTPS
PATH = "/dns-query"
MEDIA_TYPE = "application/dns-message"
MAX_MESSAGE = 65535
MAX_HEADERS = 16384  # the most octets of request line and headers (HTTP/1.1)
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
TOO_BIG = "a DNS message is at most 65535 octets"
_BASE64URL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

Headers = list[tuple[bytes, bytes]]


@dataclass
class HttpResponse:
    status: int
    headers: Headers
    body: bytes


def _error(status: int, text: str) -> HttpResponse:
    body = (text + "\n").encode()
    return HttpResponse(status, [(b"content-type", b"text/plain; charset=utf-8")], body)


def decode_dns_parameter(value: str) -> bytes | None:
    """The DNS message of a GET's ``dns`` parameter (base64url, RFC 4648 section 5,
    without padding; padding is accepted as well), or None if it is not that."""
    raw = value.encode("ascii", "replace").rstrip(b"=")
    if not raw or not set(raw) <= _BASE64URL or len(raw) % 4 == 1:
        return None
    try:
        return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        return None


def dns_parameter(query: str) -> str | None:
    """The ``dns`` parameter of a query string (the first, percent-decoded if need be)."""
    for field in query.split("&"):
        name, equals, value = field.partition("=")
        if name == "dns" and equals:
            return unquote(value) if "%" in value else value
    return None


def _media_type(value: bytes | None) -> str:
    """A Content-Type without its parameters, lower case."""
    return (value or b"").split(b";", 1)[0].strip().decode("latin-1").lower()


def query_of(method: str, target: str, content_type: bytes | None,
             body: bytes) -> bytes | HttpResponse:  # fmt: skip
    """The DNS query a request carries, or the error response it gets."""
    path, _, query = target.partition("?")
    if path != PATH:
        return _error(404, f"DNS queries are served at {PATH}")
    if method == "GET":
        value = dns_parameter(query)
        if value is None:
            return _error(400, "no dns parameter")
        packet = decode_dns_parameter(value)
        if packet is None:
            return _error(400, "the dns parameter is not base64url")
    elif method == "POST":
        if _media_type(content_type) != MEDIA_TYPE:
            return _error(415, f"the body must be {MEDIA_TYPE}")
        packet = body
    else:
        response = _error(405, "GET or POST")
        response.headers.append((b"allow", b"GET, POST"))
        return response
    if not packet:
        return _error(400, "an empty DNS message")
    if len(packet) > MAX_MESSAGE:
        return _error(413, TOO_BIG)
    return packet


def too_many_requests() -> HttpResponse:
    """429 for a client over ``ip-ratelimit`` (RFC 6585 section 4): try again in a second,
    when its account has room again (the limit's burst is one second's worth)."""
    response = _error(429, "rate limited (ip-ratelimit): retry in a second")
    response.headers.append((b"retry-after", b"1"))
    return response


def dns_response(response: bytes) -> HttpResponse:
    """A 200 carrying a DNS response, cacheable for its smallest TTL."""
    try:
        ttl = smallest_ttl(response)
    except WireError:
        ttl = None
    headers = [(b"content-type", MEDIA_TYPE.encode()),
               (b"cache-control", f"max-age={ttl or 0}".encode())]  # fmt: skip
    return HttpResponse(200, headers, response)


class DohListener:
    """RFC 8484 service on one socket: TLS, then HTTP/2 or HTTP/1.1."""

    def __init__(
        self,
        service: ResolverService,
        certificate: ServerCertificate,
        max_connections: int = MAX_TCP_CONNECTIONS,
    ) -> None:
        self.service = service
        self.certificate = certificate
        self.admission = Admission(max_connections, service.stats, TRANSPORT)

    @property
    def open(self) -> int:
        return self.admission.open

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?",)
        client = str(peer[0])
        if not self.admission.admit(writer, client):
            writer.close()
            return
        try:
            await self._serve(reader, writer, client)
        except asyncio.CancelledError:
            writer.transport.abort()  # shutting down (see resolver.serve.dot: end quietly)
        except Exception:
            log.exception("internal_error", client=client, transport=TRANSPORT.value)
        finally:
            self.admission.release(writer)
            writer.close()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str
    ) -> None:
        context = self.certificate.https
        accepted = await accept_tls(reader, writer, context, self.service.stats, TRANSPORT, client)
        if accepted is None:
            return
        self.admission.handshake_done(writer)
        tls_reader, tls_writer = accepted
        try:
            protocol = tls_writer.stream.tls.selected_alpn_protocol()
            first = b""
            if protocol is None:  # no ALPN: HTTP/2 with prior knowledge shows its preface
                try:
                    async with asyncio.timeout(tcp.TCP_IDLE_TIMEOUT):
                        first = await tls_reader.read(READ_SIZE)
                except (TimeoutError, ConnectionError):
                    return
                protocol = "h2" if first.startswith(H2_PREFACE[: len(first)]) and first else None
            if protocol == "h2":
                from resolver.serve.doh_h2 import Http2Connection

                await Http2Connection(self, tls_reader, tls_writer, client, first).serve()
            else:
                await Http1Connection(self, tls_reader, tls_writer, client, first).serve()
        finally:
            tls_writer.close()

    def start(self, method: str, target: str, content_type: bytes | None, body: bytes,
              client: str) -> HttpResponse | tuple[bytes, Pending]:  # fmt: skip
        """The response at once (a bad request, an answer from the wire cache, a refusal),
        or the query and its resolution to :meth:`finish`."""
        query = query_of(method, target, content_type, body)
        if isinstance(query, HttpResponse):
            log.debug("https_bad_request", client=client, status=query.status,
                      method=method, target=target[:100])  # fmt: skip
            return self.counted(query)
        limit = self.service.ratelimit
        if limit.rate and limit.limited(client, self.service.clock()):  # counted there
            return self.counted(too_many_requests())
        outcome = self.service.take(query, client, TRANSPORT)
        if isinstance(outcome, Pending):
            return query, outcome
        return self.finished(query, outcome)

    async def finish(self, query: bytes, pending: Pending) -> HttpResponse:
        try:
            outcome = await self.service.finish(pending)
        except Exception:
            log.exception("internal_error", client=pending.client, transport=TRANSPORT.value)
            outcome = self.service.failed(pending)
        return self.finished(query, outcome)

    def finished(self, query: bytes, outcome: bytes | None) -> HttpResponse:
        if outcome is None:  # dropped by the service: shorter than a header, or a response
            return self.counted(_error(400, "not a DNS query"))
        return self.counted(dns_response(padded(query, outcome) or outcome))

    async def answer(self, method: str, target: str, content_type: bytes | None, body: bytes,
                     client: str) -> HttpResponse:  # fmt: skip
        """The response to one request (:meth:`start`, then :meth:`finish` if needed)."""
        started = self.start(method, target, content_type, body, client)
        if isinstance(started, HttpResponse):
            return started
        return await self.finish(*started)

    def counted(self, response: HttpResponse) -> HttpResponse:
        status = self.service.stats.https_status
        status[response.status] = status.get(response.status, 0) + 1
        return response


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


class _Closed(Exception):
    """The HTTP/1.1 client is gone, or must be: stop serving the connection."""


class Http1Connection:
    """HTTP/1.1 (h11): one request at a time, kept alive, under the idle timeout."""

    def __init__(self, listener: DohListener, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, client: str, first: bytes) -> None:  # fmt: skip
        self.listener = listener
        self.reader = reader
        self.writer = writer
        self.client = client
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADERS)
        if first:
            self.h11.receive_data(first)
        self.idle_since = asyncio.get_running_loop().time()

    async def serve(self) -> None:
        while True:
            try:
                response = await self._next()
            except _Closed:
                return
            if not await self._send(response):
                return
            if self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is not h11.DONE:
                return
            try:
                self.h11.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _next(self) -> HttpResponse:
        """The response to the next request, read whole before the idle deadline (a slow
        client is cut off there, as over TCP)."""
        deadline = self.idle_since + tcp.TCP_IDLE_TIMEOUT
        request: h11.Request | None = None
        body = bytearray()
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    event = await self._event()
                    if isinstance(event, h11.Request):
                        request = event
                        length = header(event.headers, b"content-length")
                        if length is not None and length.isdigit() and int(length) > MAX_MESSAGE:
                            return self._closing(_error(413, TOO_BIG))
                        if self.h11.they_are_waiting_for_100_continue:
                            go_on = h11.InformationalResponse(status_code=100, headers=[])
                            self.writer.write(self.h11.send(go_on) or b"")
                    elif isinstance(event, h11.Data):
                        body += event.data
                        if len(body) > MAX_MESSAGE:
                            return self._closing(_error(413, TOO_BIG))
                    elif isinstance(event, h11.EndOfMessage) and request is not None:
                        break
        except TimeoutError:
            raise _Closed from None
        except h11.RemoteProtocolError as error:
            return self._closing(_error(error.error_status_hint, "not an HTTP/1.1 request"))
        assert request is not None
        target = request.target.decode("latin-1")
        return await self.listener.answer(
            request.method.decode("latin-1"), target,
            header(request.headers, b"content-type"), bytes(body), self.client,
        )  # fmt: skip

    async def _event(self) -> h11.Event:
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await self.reader.read(READ_SIZE)
                except ConnectionError:
                    raise _Closed from None
                self.h11.receive_data(data)
                continue
            if not isinstance(event, h11.Event) or isinstance(event, h11.ConnectionClosed):
                raise _Closed  # PAUSED (cannot be, one request at a time), or the client left
            return event

    @staticmethod
    def _closing(response: HttpResponse) -> HttpResponse:
        response.headers.append((b"connection", b"close"))
        return response

    async def _send(self, response: HttpResponse) -> bool:
        """Write the response; False when the connection is done for."""
        headers = [*response.headers, (b"content-length", str(len(response.body)).encode())]
        try:
            data = self.h11.send(h11.Response(status_code=response.status, headers=headers))
            data = (data or b"") + (self.h11.send(h11.Data(data=response.body)) or b"")
            data += self.h11.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            return False
        self.writer.write(data)
        try:
            async with asyncio.timeout(tcp.TCP_IDLE_TIMEOUT):
                await self.writer.drain()
        except TimeoutError:
            log.warning("https_closed", client=self.client, reason="answers not read")
            self.writer.transport.abort()
            return False
        except ConnectionError:
            return False
        self.idle_since = asyncio.get_running_loop().time()
        return True
