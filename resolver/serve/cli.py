"""The command line: ``python -m resolver --port 2053`` (or the installed ``resolver``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ipaddress
import os
import resource
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

import structlog

from resolver.cache.answers import AnswerCache
from resolver.cache.records import RecordCache
from resolver.iterate.engine import IterativeEngine
from resolver.iterate.hints import DEFAULT_HINTS, HintsError, RootHints, load_root_hints
from resolver.iterate.servers import ServerSelection
from resolver.net.transport import DEFAULT_PORT, UpstreamTransport
from resolver.serve.listener import (
    MAX_IN_FLIGHT,
    MAX_TCP_CONNECTIONS,
    AccessList,
    ResolverService,
    TcpListener,
    UdpListener,
)
from resolver.serve.logs import LEVELS, configure_logging
from resolver.serve.upstream import upstream_addresses

log = structlog.get_logger("resolver")


class UsageError(Exception):
    """A problem with how the resolver was started: one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (no usage block), status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _reason(error: OSError) -> str:
    """Why a bind failed, in words: uvloop wraps the OSError that has the errno."""
    cause: BaseException | None = error
    while isinstance(cause, OSError):
        if cause.errno:
            return os.strerror(cause.errno)
        cause = cause.__cause__
    return str(error)


def _port(text: str) -> int:
    value = _integer(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port number")
    return value


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from None


def _network(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a CIDR network") from None


def _positive(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _ttl(text: str) -> int:
    value = _integer(text)
    if not 0 <= value <= 2**31 - 1:
        raise argparse.ArgumentTypeError("a TTL is between 0 and 2147483647 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="resolver",
        description="Iterative recursive DNS resolver: answers clients by walking from the "
        "root servers down to the authoritative ones.",
    )
    add = parser.add_argument
    add("--port", type=_port, default=2053, help="port to listen on, UDP and TCP (default 2053)")
    add(
        "--address",
        type=_address,
        action="append",
        help="address to listen on; repeat for several, IPv6 too (default 127.0.0.1)",
    )
    add(
        "--allow",
        type=_network,
        action="append",
        default=[],
        metavar="CIDR",
        help="clients allowed besides loopback; others get REFUSED (repeatable)",
    )
    add(
        "--root-hints",
        metavar="FILE",
        default=str(DEFAULT_HINTS),
        help="root hints file in named.root format (default: the shipped named.root)",
    )
    add(
        "--upstream-port",
        type=_port,
        default=DEFAULT_PORT,
        help="port of every upstream server (default 53; for labs that cannot bind 53)",
    )
    family = parser.add_mutually_exclusive_group()
    family.add_argument(
        "--ipv4-only", action="store_true", help="query upstream servers over IPv4 only"
    )
    family.add_argument(
        "--ipv6-only", action="store_true", help="query upstream servers over IPv6 only"
    )
    add(
        "--no-qname-minimisation",
        dest="qname_minimisation",
        action="store_false",
        help="ask every server the whole name, not only the next label (RFC 9156)",
    )
    add(
        "--cache-size",
        type=_positive,
        default=100_000,
        metavar="ENTRIES",
        help="most record sets (and answers) kept in the cache (default 100000)",
    )
    add("--min-ttl", type=_ttl, default=0, help="floor for cached TTLs, seconds (default 0)")
    add("--max-ttl", type=_ttl, default=86400, help="ceiling for cached TTLs (default 86400)")
    add(
        "--log-format",
        choices=("console", "json"),
        default="console",
        help="key=value lines for a terminal, or one JSON object per line",
    )
    add("--log-level", choices=LEVELS, default="info", help="least severe events logged")
    add("--query-log", action="store_true", help="log one line per client query at info")
    add(
        "--workers",
        type=_positive,
        default=1,
        help="processes answering on the port (SO_REUSEPORT), each with its own cache",
    )
    return parser  # fmt: skip


def _load_hints(path: str) -> RootHints:
    try:
        return load_root_hints(path)
    except HintsError as error:
        raise UsageError(str(error)) from None


def build_service(args: argparse.Namespace, hints: RootHints) -> ResolverService:
    cache = RecordCache(args.cache_size, min_ttl=args.min_ttl, max_ttl=args.max_ttl)
    engine = IterativeEngine(
        UpstreamTransport(port=args.upstream_port),
        cache,
        hints,
        selection=ServerSelection(),
        addresses=upstream_addresses(hints, args.ipv4_only, args.ipv6_only),
        qname_minimisation=args.qname_minimisation,
    )
    answers = AnswerCache(args.cache_size)
    return ResolverService(engine, answers, AccessList(args.allow), query_log=args.query_log)


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
            tcp.listen(128)
            for sock in (udp, tcp):
                sock.setblocking(False)
    except BaseException:
        for pair in bound:
            for sock in pair:
                sock.close()
        raise
    return bound


async def serve(args: argparse.Namespace, hints: RootHints, sockets: Listening) -> None:
    """Answer on the given sockets until SIGINT or SIGTERM."""
    service = build_service(args, hints)
    loop = asyncio.get_running_loop()
    closers: list[Callable[[], object]] = []
    for udp_sock, tcp_sock in sockets:
        udp, _ = await loop.create_datagram_endpoint(lambda: UdpListener(service), sock=udp_sock)
        tcp = await asyncio.start_server(TcpListener(service), sock=tcp_sock)
        closers += [udp.close, tcp.close]
    log.info(
        "started", addresses=args.address or ["127.0.0.1"], port=args.port,
        hints=hints.source, roots=len(hints.servers), upstream_port=args.upstream_port,
        cache_size=args.cache_size, worker=os.getpid(),
    )  # fmt: skip
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("stopping", worker=os.getpid())
    for close in closers:
        close()


def _run(args: argparse.Namespace, hints: RootHints, sockets: Listening) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args, hints, sockets))


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


def run_workers(args: argparse.Namespace, hints: RootHints) -> None:
    """Serve in ``--workers`` processes, each with its own cache, sharing the port."""
    addresses = args.address or ["127.0.0.1"]
    reuse_port = args.workers > 1
    files = raise_file_limit()
    if files < MAX_IN_FLIGHT + MAX_TCP_CONNECTIONS + 64:
        log.warning("few_open_files", limit=files, needed=MAX_IN_FLIGHT + MAX_TCP_CONNECTIONS + 64)
    sockets = bind_sockets(addresses, args.port, reuse_port)  # port in use: fails here, once
    parent = os.getpid()
    children = []
    for _ in range(args.workers - 1):
        pid = os.fork()
        if pid == 0:  # a worker: its own sockets in the same SO_REUSEPORT group
            _end_with_parent(parent)
            for pair in sockets:
                for sock in pair:
                    sock.close()
            status = 0
            try:
                _run(args, hints, bind_sockets(addresses, args.port, reuse_port))
            except BaseException:
                status = 1
            os._exit(status)
        children.append(pid)
    try:
        _run(args, hints, sockets)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children:
            os.waitpid(pid, 0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with status 2 and one line on a bad flag
    if args.min_ttl > args.max_ttl:
        parser.error("--min-ttl is larger than --max-ttl")
    configure_logging(args.log_format, args.log_level)
    try:
        hints = _load_hints(args.root_hints)
        with contextlib.suppress(ImportError):
            import uvloop  # optional: pip install .[fast]

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        run_workers(args, hints)
    except UsageError as error:
        print(f"resolver: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
