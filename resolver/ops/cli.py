"""The command line: ``python -m resolver --port 2053`` (or the installed ``resolver``).

The settings come from :mod:`resolver.ops.config` (defaults, then ``--config
FILE``, then the flags).  This module binds what the resolver listens on, forks
the ``--workers``, and runs each process's event loop with its signals: SIGINT
and SIGTERM stop it, SIGHUP reloads the configuration (the first process passes
the signal on to every worker, so each reloads).  Everything that cannot be
bound (a port in use, a control socket another resolver holds) is one line on
stderr and exit status 2, before any worker starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import os
import resource
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from resolver import compiled
from resolver.iterate.engine import MAX_IN_FLIGHT
from resolver.iterate.hints import HintsError, RootHints, load_root_hints
from resolver.ops.config import (
    Settings,
    SettingsError,
    build_parser,
    control_socket_path,
    load_settings,
    metrics_endpoint,
    parse_command_line,
)
from resolver.ops.control import (
    ControlServer,
    ControlSocket,
    Front,
    WorkerLink,
    bind_control_socket,
    serve_link,
)
from resolver.ops.encrypted import (
    Encrypted,
    bind_encrypted,
    certificate_hook,
    load_certificate,
    start_encrypted,
)
from resolver.ops.logs import configure_logging
from resolver.ops.options import OFF
from resolver.ops.runtime import build_service, install_dnstap
from resolver.serve.listener import MAX_TCP_CONNECTIONS, TcpListener, UdpListener

__all__ = ["build_parser", "main"]

log = structlog.get_logger("resolver")


def _validation(settings: Settings) -> str:
    """What the start-up line says about DNSSEC validation, and why when it is off."""
    if settings.anchors is not None:
        zones = ", ".join(settings.anchors.zones)
        return f"validating from trust anchors for {zones}"
    if not settings.dnssec:
        return "off (dnssec = false)"
    return "off: custom root hints without a trust-anchor-file"


class UsageError(Exception):
    """A problem with how the resolver was started: one line, exit status 2."""


def _reason(error: OSError) -> str:
    """Why a bind failed, in words: uvloop wraps the OSError that has the errno."""
    cause: BaseException | None = error
    while isinstance(cause, OSError):
        if cause.errno:
            return os.strerror(cause.errno)
        cause = cause.__cause__
    return str(error)


def _load_hints(path: str) -> RootHints:
    try:
        return load_root_hints(path)
    except HintsError as error:
        raise UsageError(str(error)) from None


# Connections the kernel completes before we accept them: room for a new client while
# hostile ones reconnect as fast as they can (serve/tcp.py; capped by net.core.somaxconn).
TCP_BACKLOG = 1024
UDP_RECEIVE_BUFFER = 4 << 20  # room for bursts while the loop is busy (capped by rmem_max)
Listening = list[tuple[socket.socket, socket.socket]]  # (UDP, TCP) per address


def bind_sockets(addresses: list[str], port: int, reuse_port: bool) -> Listening:
    """UDP and TCP sockets bound on every address; a failure is one UsageError line.

    With several workers each process binds its own sockets with SO_REUSEPORT and
    the kernel spreads clients among them.
    """
    bound: Listening = []
    try:
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            bound.append((udp, tcp))
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            for sock in (udp, tcp):
                if reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
            try:
                udp.bind((address, port))
                tcp.bind((address, port))
            except OSError as error:
                raise UsageError(
                    f"cannot listen on {address} port {port}: {_reason(error)}"
                ) from None
            tcp.listen(TCP_BACKLOG)
            for sock in (udp, tcp):
                sock.setblocking(False)
    except BaseException:
        for pair in bound:
            for sock in pair:
                sock.close()
        raise
    return bound


@dataclass
class Process:
    """What one process serves with: its settings, its sockets, and its place among the
    workers (the first process has the control socket, the metrics endpoint and a link
    to each worker; a worker has its end of one link)."""

    settings: Settings
    flags: dict[str, object]
    hints: RootHints
    sockets: Listening
    control: ControlSocket | None = None
    metrics: socket.socket | None = None
    links: list[WorkerLink] = field(default_factory=list)
    link: socket.socket | None = None  # a worker's end of its link to the first process
    children: list[int] = field(default_factory=list)
    encrypted: Encrypted | None = None  # DNS over TLS and HTTPS (resolver.ops.encrypted)


async def serve(process: Process) -> None:
    """Answer on the process's sockets until SIGINT or SIGTERM; reload on SIGHUP."""
    settings = process.settings
    runtime = build_service(settings, process.hints, process.flags)
    service = runtime.service
    loop = asyncio.get_running_loop()
    closers: list[Callable[[], object]] = []
    for udp_sock, tcp_sock in process.sockets:
        udp, _ = await loop.create_datagram_endpoint(lambda: UdpListener(service), sock=udp_sock)
        tcp_listener = TcpListener(service, per_client=settings.tcp_connections_per_client)
        tcp = await asyncio.start_server(tcp_listener, sock=tcp_sock)
        closers += [udp.close, tcp.close]
    if settings.dnstap not in (None, OFF):  # view: dnstap, client and upstream messages
        closers.append(install_dnstap(runtime, str(settings.dnstap)).close)
    closers += await start_encrypted(process.encrypted, service)
    runtime.reload_hooks.append(certificate_hook(process.encrypted))
    front = Front(runtime, process.links)
    if process.control is not None:
        server = await asyncio.start_unix_server(ControlServer(front), sock=process.control.sock)
        closers.append(server.close)
    if process.metrics is not None:
        # Imported only when wanted: prometheus-client and the web view are a tenth of
        # the start-up time (docs/performance.md, "Start-up").
        from resolver.ops.metrics import MetricsServer
        from resolver.ops.webview import WebView

        web = WebView(settings, process.hints, front)  # view: the web view, same address
        served = MetricsServer(front.samples, web)
        metrics = await asyncio.start_server(served, sock=process.metrics)
        closers.append(metrics.close)
    if process.link is not None:
        linked = asyncio.ensure_future(serve_link(process.link, runtime))
        closers.append(linked.cancel)
    if runtime.autotrust is not None:  # RFC 5011 probes; the first process writes the file
        runtime.autotrust.writes = process.link is None
        probing = asyncio.ensure_future(runtime.autotrust.run())
        closers.append(probing.cancel)
    freeze_start_up()
    first: dict[str, object] = {}
    if process.link is None:  # the first process says where it can be reached
        control = process.control.path if process.control is not None else None
        first = {"control": control, "metrics": settings.metrics}
    log.info(
        "started", addresses=list(settings.address), port=settings.port,
        hints=process.hints.source, roots=len(process.hints.servers),
        upstream_port=settings.upstream_port, cache_size=settings.cache_size,
        config=str(settings.config) if settings.config else None, worker=os.getpid(),
        dnssec=_validation(settings), loop=loop_name(loop), core=compiled.core(), **first,
    )  # fmt: skip

    def hang_up() -> None:
        for pid in process.children:  # every worker reloads, each for itself
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)
        runtime.reload()

    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, hang_up)
    await stop.wait()
    log.info("stopping", worker=os.getpid())
    for close in closers:
        close()


def use_fastest_loop() -> str:
    """Run every event loop of this process (and of the workers forked from it) on uvloop,
    a dependency, or on asyncio's own loop where uvloop cannot be imported (a platform
    without its wheels).  Returns the name of the loop that will run."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """Which event loop implementation ``loop`` is, for the start-up log line."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


# The cyclic garbage collector collects its young generation once this many more
# container objects were allocated than freed (CPython's default: 700).  Questions in
# flight hold many short-lived ones and the cache grows by long-lived ones, whose
# survival brings on collections of the older generations, the oldest of which walks
# every cached record.  Measured on the benchmark's 40,000 wildcard names, with what
# start-up built frozen: 136-144 us of CPU per name against 150-155 with neither;
# 50,000 did no better than 10,000 (and a larger young generation pauses longer).
GC_YOUNG_THRESHOLD = 10_000


def collect_less_often() -> None:
    """The young generation collected every GC_YOUNG_THRESHOLD allocations, not 700."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def freeze_start_up() -> None:
    """What start-up built (modules, settings, hints, local zones, the service) lives as
    long as the process: out of every collection from now on (``gc.freeze``)."""
    gc.collect()
    gc.freeze()


def _run(process: Process) -> None:
    collect_less_often()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(process))
    finally:
        # The loop put SIGHUP back to its default action (ending the process) as it
        # closed; while the workers are stopped, a reload has nothing left to do.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)


def raise_file_limit(wanted: int = 8192) -> int:
    """Room for one upstream socket per question in flight (MAX_IN_FLIGHT) and the TCP
    clients: raise the soft limit on open files towards the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return int(soft)


def _end_with_parent(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when the first process dies, even by
    SIGKILL (Linux prctl PR_SET_PDEATHSIG), so no worker outlives the resolver."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)


def _bind_extras(settings: Settings) -> tuple[ControlSocket | None, socket.socket | None]:
    """The control socket and the metrics socket of the first process (None: not wanted,
    or the default control socket is held by another resolver)."""
    control = None
    path = control_socket_path(settings)
    if path is not None:
        control = bind_control_socket(path, explicit=settings.control_socket is not None)
    endpoint = metrics_endpoint(settings)
    if endpoint is None:
        return control, None
    from resolver.ops.metrics import bind_metrics_socket  # only when wanted, as above

    try:
        return control, bind_metrics_socket(*endpoint)
    except OSError as error:
        if control is not None:
            control.remove()
        raise UsageError(f"cannot serve metrics on {settings.metrics}: {_reason(error)}") from None


def run_workers(settings: Settings, flags: dict[str, object], hints: RootHints) -> None:
    """Serve in ``--workers`` processes, each with its own cache, sharing the port."""
    addresses = list(settings.address)
    reuse_port = settings.workers > 1
    files = raise_file_limit()
    if files < MAX_IN_FLIGHT + MAX_TCP_CONNECTIONS + 64:
        log.warning("few_open_files", limit=files, needed=MAX_IN_FLIGHT + MAX_TCP_CONNECTIONS + 64)
    certificate = load_certificate(settings)  # a certificate that does not load: fails here
    sockets = bind_sockets(addresses, settings.port, reuse_port)  # port in use: fails here, once
    encrypted = None
    try:
        encrypted = bind_encrypted(settings, certificate, reuse_port)
        control, metrics = _bind_extras(settings)
    except BaseException:
        for pair in sockets:
            for sock in pair:
                sock.close()
        if encrypted is not None:
            encrypted.close()
        raise
    first = Process(settings, flags, hints, sockets, control, metrics, encrypted=encrypted)
    parent = os.getpid()
    ours: list[socket.socket] = [s for pair in sockets for s in pair]
    ours += [s for _kind, s in encrypted.sockets] if encrypted is not None else []
    ours += [control.sock] if control is not None else []
    ours += [metrics] if metrics is not None else []
    for _ in range(settings.workers - 1):
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:  # a worker: its own sockets in the same SO_REUSEPORT group
            _end_with_parent(parent)
            for sock in [*ours, parent_end]:
                sock.close()
            status = 0
            try:
                own = bind_sockets(addresses, settings.port, reuse_port)
                own_encrypted = bind_encrypted(settings, certificate, reuse_port)
                _run(Process(settings, flags, hints, own, link=child_end,
                             encrypted=own_encrypted))  # fmt: skip
            except BaseException:
                status = 1
            os._exit(status)
        child_end.close()
        ours.append(parent_end)
        first.children.append(pid)
        first.links.append(WorkerLink(pid, parent_end))
    try:
        _run(first)
    finally:
        for pid in first.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in first.children:
            os.waitpid(pid, 0)
        if control is not None:
            control.remove()


def main(argv: Sequence[str] | None = None) -> int:
    # Until the event loop handles SIGHUP, one arriving must not kill the process (its
    # default action): the configuration is being read anyway.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    config, flags = parse_command_line(argv)  # exits with status 2 and one line on a bad flag
    try:
        settings = load_settings(config, flags)
    except SettingsError as error:
        print(f"resolver: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    try:
        hints = _load_hints(settings.root_hints)
        use_fastest_loop()
        run_workers(settings, flags, hints)
    except (UsageError, SettingsError) as error:
        print(f"resolver: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
