"""The encrypted transports put into the service: from the settings to bound sockets,
running listeners and reload hooks (used by :mod:`resolver.ops.cli` and
:mod:`resolver.ops.runtime`).

- Clients: ``tls-port`` (DNS over TLS, :mod:`resolver.serve.dot`) and ``https-port``
  (DNS over HTTPS, :mod:`resolver.serve.doh`) on every ``address``, with the
  certificate and key of ``tls-certificate`` and ``tls-key``.  The files are read at
  start-up (a pair that does not load stops the resolver with one line) and again at
  every reload; the ports are bound at start-up (a change needs a restart).  With
  ``--workers`` each process binds its own sockets (SO_REUSEPORT) and inherits the
  contexts made before the fork (so the session tickets of one work with all, until a
  reload makes new contexts in each).
- Forwarders: the table of the forward zones' TLS servers that
  :class:`resolver.net.tls_upstream.TlsForwarders` consults, rebuilt at each reload.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from resolver.net.tls_upstream import TlsForwarders, TlsServer
from resolver.ops.config import Settings, SettingsError
from resolver.serve.doh import DohListener
from resolver.serve.dot import DotListener
from resolver.serve.listener import ResolverService
from resolver.serve.tls import ServerCertificate, TlsError

log = structlog.get_logger("resolver.ops.encrypted")

Hook = Callable[[Settings], Callable[[], None]]  # resolver.ops.runtime.ReloadHook
BACKLOG = 128


@dataclass
class Encrypted:
    """What one process serves DNS over TLS and HTTPS with."""

    certificate: ServerCertificate
    sockets: list[tuple[str, socket.socket]]  # ("tls" or "https", listening socket)

    def close(self) -> None:
        for _kind, sock in self.sockets:
            sock.close()


def wanted(settings: Settings) -> list[tuple[str, int]]:
    """The encrypted listeners the settings ask for: (transport, port)."""
    ports = [("tls", settings.tls_port), ("https", settings.https_port)]
    return [(kind, port) for kind, port in ports if port is not None]


def load_certificate(settings: Settings) -> ServerCertificate | None:
    """The contexts of the certificate and key (None when no encrypted port is asked);
    SettingsError, one line, if they do not load."""
    if not wanted(settings):
        return None
    assert settings.tls_certificate and settings.tls_key  # load_settings checked
    try:
        return ServerCertificate(settings.tls_certificate, settings.tls_key)
    except TlsError as error:
        raise SettingsError(str(error)) from None


def bind_encrypted(
    settings: Settings, certificate: ServerCertificate | None, reuse_port: bool
) -> Encrypted | None:
    """The listening TCP sockets of the encrypted transports on every address; a port
    that cannot be had is SettingsError, one line."""
    if certificate is None:
        return None
    bound = Encrypted(certificate, [])
    try:
        for kind, port in wanted(settings):
            for address in settings.address:
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                bound.sockets.append((kind, sock))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    sock.bind((address, port))
                except OSError as error:
                    what = "DNS over TLS" if kind == "tls" else "DNS over HTTPS"
                    raise SettingsError(f"cannot listen on {address} port {port} ({what}): "
                                        f"{error.strerror}") from None  # fmt: skip
                sock.listen(BACKLOG)
                sock.setblocking(False)
    except BaseException:
        bound.close()
        raise
    return bound


async def start_encrypted(
    encrypted: Encrypted | None, service: ResolverService
) -> list[Callable[[], object]]:
    """Serve on the bound sockets; the closers of the servers started."""
    if encrypted is None:
        return []
    closers: list[Callable[[], object]] = []
    ports = {kind: sock.getsockname()[1] for kind, sock in encrypted.sockets}
    log.info("encrypted_listening", tls_port=ports.get("tls"), https_port=ports.get("https"),
             certificate=encrypted.certificate.files[0])  # fmt: skip
    dot = DotListener(service, encrypted.certificate)
    doh = DohListener(service, encrypted.certificate)
    for kind, sock in encrypted.sockets:
        handler = dot if kind == "tls" else doh
        server = await asyncio.start_server(handler, sock=sock)
        closers.append(server.close)
    return closers


def certificate_hook(encrypted: Encrypted | None) -> Hook:
    """The reload hook of the certificate: the files read again (a pair that does not load
    rejects the reload)."""

    def prepare(new: Settings) -> Callable[[], None]:
        if encrypted is None or not (new.tls_certificate and new.tls_key):
            return lambda: None  # no encrypted listener, or a restart is needed anyway
        try:
            return encrypted.certificate.prepare(new.tls_certificate, new.tls_key)
        except TlsError as error:
            raise SettingsError(str(error)) from None

    return prepare


# -------------------------------------------------------------------- TLS forwarders


def tls_forwarders(settings: Settings) -> dict[tuple[str, int], TlsServer]:
    """(address, port) -> how to reach and authenticate it, for every forwarder of a forward
    zone with ``tls = true`` (servers written ``ADDRESS@PORT#NAME`` by the sections)."""
    table: dict[tuple[str, int], TlsServer] = {}
    for zone in settings.delegated_zones():
        if zone.stub or not zone.tls:
            continue
        for text in zone.servers:
            where, _, name = text.partition("#")
            address, _, port = where.partition("@")
            table[(address, int(port))] = TlsServer(address, int(port), name, zone.tls_ca_file)
    return table


def tls_forwarders_hook(forwarders: TlsForwarders) -> Hook:
    """The reload hook of the TLS forwarders' table."""

    def prepare(new: Settings) -> Callable[[], None]:
        table = tls_forwarders(new)
        return lambda: forwarders.replace(table)

    return prepare
