"""``resolver-control``: commands to a running resolver over a Unix socket, as
``unbound-control`` and ``kresctl`` do.

Commands: ``stats`` (counters as ``key=value`` lines), ``flush NAME`` (one name,
every type), ``flush-zone NAME`` (the name and everything below it),
``flush-negative`` (NXDOMAIN, NODATA and SERVFAIL entries), ``dump`` (the cache
as zone-file lines with the TTLs left), ``reload`` (as SIGHUP) and ``nta add ZONE
[SECONDS]``, ``nta remove ZONE``, ``nta list`` (negative trust anchors, RFC 7646:
:mod:`resolver.ops.negative`).

The protocol is one line each way and then the body: the client sends
``COMMAND [NAME]\\n``; the resolver answers ``ok\\n`` and the output, or
``error: WHY\\n``, and closes.  The socket is mode 0600 (owner only: flushing and
dumping the cache are the operator's).

With ``--workers N`` only the first process listens on the socket.  Before it
forks, it makes one socket pair per worker; each worker answers commands on its
end (:func:`serve_link`), and the first process runs a command on itself and on
every worker (:class:`Front`), then combines the results: ``stats`` sums the
counters, ``dump`` lists each process's cache under a comment naming it, the
flushes add up what they removed, ``reload`` reports each process.  The metrics
endpoint gathers its numbers the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import stat
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from resolver.ops import negative
from resolver.ops.config import (
    OneLineParser,
    Settings,
    SettingsError,
    VersionAction,
    control_socket_path,
    default_control_socket,
    load_settings,
)
from resolver.ops.dump import dump_lines
from resolver.ops.exposition import Sample, as_text, from_json, merge, to_json
from resolver.ops.livestate import process_state
from resolver.ops.options import OFF
from resolver.ops.policy_feeds import policy_command  # response policy
from resolver.ops.runtime import Runtime
from resolver.wire.names import BadName, normalize

log = structlog.get_logger("resolver.ops.control")

COMMANDS = {  # command -> (takes a name, help)
    "stats": (False, "counters as key=value lines (summed over --workers)"),
    "flush": (True, "remove NAME from the cache, every type"),
    "flush-zone": (True, "remove NAME and every name below it from the cache"),
    "flush-negative": (False, "remove every NXDOMAIN, NODATA and SERVFAIL entry"),
    "dump": (False, "the cache as zone-file lines, TTLs as they are now"),
    "reload": (False, "read the configuration again (as SIGHUP)"),
    "nta": (
        True,
        "negative trust anchors (RFC 7646): nta add ZONE [SECONDS] (default 3600), "
        "nta remove ZONE, nta list",
    ),
    # Response policy (resolver.ops.policy_feeds): NAME is list, reload ZONE or refresh ZONE.
    "policy": (True, "list: policy zones and blocklists; reload ZONE, refresh ZONE"),
}
MAX_REQUEST = 1024  # bytes of one request line
LINK_FRAME = struct.Struct("!I")
LINK_TIMEOUT = 30.0  # seconds a worker has to answer one command
CLIENT_TIMEOUT = 60.0
DEFAULT_PORT = Settings.port  # the resolver's own default port


class CommandError(Exception):
    """A command that cannot be run as asked: the client gets ``error: ...``."""


# -------------------------------------------------------------------- one process


def _removed(counts: tuple[int, int]) -> dict[str, int]:
    return {"records": counts[0], "answers": counts[1]}


async def execute(runtime: Runtime, command: str, name: str | None) -> Any:
    """Run a command in this process; the result is plain data (JSON for the links)."""
    records, answers = runtime.records, runtime.answers
    if command == "stats":
        return to_json(runtime.samples())
    if command in ("flush", "flush-zone"):
        assert name is not None
        # Every table the engine derived from the records goes with them (zone cuts,
        # unusable delegations, the chain of trust, RFC 8198 ranges, stale failures), so
        # a flushed server address or key is not used again.
        return _removed(runtime.engine.flush(name, below=command == "flush-zone"))
    if command == "flush-negative":
        return _removed(runtime.engine.flush_negative())
    if command == "dump":
        return await dump_lines(records, answers)
    if command == "reload":
        ok, text = runtime.reload()
        return {"ok": ok, "text": text}
    if command == "state":  # view: the web view's live page (links only, not for clients)
        return process_state(runtime)
    if command == "nta":
        assert name is not None
        try:
            return negative.command(runtime, name)
        except negative.NtaError as error:
            raise CommandError(str(error)) from None
    if command == "policy":  # response policy: list, reload ZONE, refresh ZONE
        try:
            return await policy_command(runtime, name or "")
        except ValueError as error:
            raise CommandError(str(error)) from None
    raise CommandError(f"unknown command {command!r}")


def parse_request(line: str) -> tuple[str, str | None]:
    """``COMMAND [NAME]`` checked: the command known, a name where one is needed."""
    words = line.split()
    if not words:
        raise CommandError("empty request")
    command, args = words[0], words[1:]
    if command not in COMMANDS:
        raise CommandError(f"unknown command {command!r} (commands: {', '.join(COMMANDS)})")
    if command == "nta":
        try:
            return command, negative.parse(args)
        except negative.NtaError as error:
            raise CommandError(str(error)) from None
    if command == "policy":  # its words are checked by resolver.ops.policy_feeds
        return command, " ".join(args)
    takes_name = COMMANDS[command][0]
    if len(args) != int(takes_name):
        raise CommandError(f"{command} takes {'one name' if takes_name else 'no argument'}")
    if not takes_name:
        return command, None
    try:
        return command, normalize(args[0])
    except BadName as error:
        raise CommandError(f"{args[0]!r} is not a domain name: {error}") from None


# -------------------------------------------------------------------- the workers' links


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    (length,) = LINK_FRAME.unpack(await reader.readexactly(LINK_FRAME.size))
    return json.loads(await reader.readexactly(length))


def _frame(data: Any) -> bytes:
    body = json.dumps(data).encode()
    return LINK_FRAME.pack(len(body)) + body


async def serve_link(sock: socket.socket, runtime: Runtime) -> None:
    """A worker's side of its link to the first process: run each command it sends."""
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    try:
        while True:
            try:
                command, name = await _read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return  # the first process is gone; PR_SET_PDEATHSIG ends this one
            try:
                reply = {"ok": True, "result": await execute(runtime, command, name)}
            except Exception as error:  # reported to the operator, not fatal to the worker
                log.exception("control_error", command=command)
                reply = {"ok": False, "error": str(error)}
            writer.write(_frame(reply))
            await writer.drain()
    finally:
        writer.close()


class WorkerLink:
    """The first process's side of one worker's link: one command at a time.

    A link that failed once (the worker died, or answered too late) stays failed: a
    late answer must never be taken for the answer to the next command.
    """

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock
        self.broken = ""  # why the link no longer works
        self._lock = asyncio.Lock()
        self._stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def ask(self, command: str, name: str | None) -> Any:
        async with self._lock:
            if not self.broken:
                try:
                    reply = await asyncio.wait_for(self._exchange(command, name), LINK_TIMEOUT)
                except (TimeoutError, asyncio.IncompleteReadError, OSError, RuntimeError) as error:
                    self.broken = type(error).__name__
                    if self._stream is not None:
                        self._stream[1].close()
            if self.broken:
                raise CommandError(f"worker {self.pid} did not answer ({self.broken})")
        if not reply["ok"]:
            raise CommandError(f"worker {self.pid}: {reply['error']}")
        return reply["result"]

    async def _exchange(self, command: str, name: str | None) -> Any:
        if self._stream is None:
            self._stream = await asyncio.open_unix_connection(sock=self.sock)
        reader, writer = self._stream
        writer.write(_frame([command, name]))
        await writer.drain()
        return await _read_frame(reader)


class Front:
    """Runs commands on this process and every worker, and combines what they say."""

    def __init__(self, runtime: Runtime, links: Sequence[WorkerLink] = ()) -> None:
        self.runtime = runtime
        self.links = list(links)

    async def _everywhere(self, command: str, name: str | None) -> list[tuple[int, Any]]:
        mine = await execute(self.runtime, command, name)
        theirs = await asyncio.gather(*(link.ask(command, name) for link in self.links))
        return [(os.getpid(), mine), *zip((link.pid for link in self.links), theirs, strict=True)]

    async def samples(self) -> list[Sample]:
        """Every process's counters, summed."""
        results = await self._everywhere("stats", None)
        return merge(from_json(result) for _pid, result in results)

    async def run(self, command: str, name: str | None) -> list[str]:
        """The output lines of a command; CommandError if it failed anywhere."""
        if command == "stats":
            return as_text(await self.samples())
        results = await self._everywhere(command, name)
        if command == "dump":
            if len(results) == 1:
                return list(results[0][1])
            lines = []
            for pid, result in results:
                lines += [f"; process {pid}", *result]
            return lines
        if command == "nta":  # every process did the same: the first one's words
            return list(results[0][1])
        if command == "policy":  # response policy: each process's lines
            if len(results) == 1:
                return list(results[0][1])
            return [f"{pid}: {line}" for pid, result in results for line in result]
        if command == "reload":
            texts = [f"{pid}: {r['text']}" if len(results) > 1 else r["text"] for pid, r in results]
            if not all(r["ok"] for _pid, r in results):
                raise CommandError("; ".join(texts))
            return texts
        records = sum(r["records"] for _pid, r in results)
        answers = sum(r["answers"] for _pid, r in results)
        return [f"removed {records} record sets or negative entries and {answers} answers"]


class ControlServer:
    """The control socket's connection handler (first process only)."""

    def __init__(self, front: Front) -> None:
        self.front = front

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                line = await reader.readuntil(b"\n")
            command, name = parse_request(line[:MAX_REQUEST].decode("utf-8", "replace"))
            log.info("control", command=command, name=name)
            lines = await self.front.run(command, name)
            writer.write(("ok\n" + "".join(f"{line}\n" for line in lines)).encode())
        except CommandError as error:
            writer.write(f"error: {error}\n".encode())
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.write(b"error: no request line\n")
        except Exception as error:
            log.exception("control_error")
            writer.write(f"error: internal error: {error}\n".encode())
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()


# -------------------------------------------------------------------- the socket


class ControlSocket:
    """The bound control socket, and which file it is (to remove that one only)."""

    def __init__(self, path: str, sock: socket.socket) -> None:
        self.path = path
        self.sock = sock
        self.inode = os.stat(path).st_ino

    def remove(self) -> None:
        """Close it and remove its file, unless something else has replaced it since."""
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)
        self.sock.close()


def bind_control_socket(path: str, explicit: bool) -> ControlSocket | None:
    """The control socket, bound at ``path`` with mode 0600 and listening.

    A stale socket left by a resolver that died is replaced.  If another resolver is
    listening there, or the path cannot be used: a SettingsError when the path was
    asked for, and a warning and no control socket when it is only the default (so
    that a second resolver on the same machine still starts).
    """
    try:
        if os.path.lexists(path):
            _clear_stale(path)
        directory = os.path.dirname(path) or "."
        if directory == "/run/resolver":
            os.makedirs(directory, mode=0o755, exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous = os.umask(0o177)  # created 0600: no moment when others could connect
        try:
            sock.bind(path)
            sock.listen(16)
            sock.setblocking(False)
            return ControlSocket(path, sock)
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(previous)
    except (OSError, SettingsError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        message = f"cannot use control socket {path}: {reason}"
        if explicit:
            raise SettingsError(message) from None
        log.warning("no_control_socket", path=path, reason=reason)
        return None


def _clear_stale(path: str) -> None:
    info = os.lstat(path)
    if not stat.S_ISSOCK(info.st_mode):
        raise SettingsError("it exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            pass  # nobody listens: left by a resolver that did not stop cleanly
        else:
            raise SettingsError("another resolver is listening there")
    if info.st_uid != os.geteuid():
        raise SettingsError("a stale socket owned by another user is in the way")
    os.unlink(path)


# -------------------------------------------------------------------- the command


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="resolver-control",
        description="Send a command to a running resolver over its control socket.",
        epilog="commands:\n" + "\n".join(f"  {c + (' NAME' if n else ''):<20}{h}"
                                         for c, (n, h) in COMMANDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--version", action=VersionAction)
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--control-socket",
        metavar="PATH",
        help="the resolver's control socket (default: the one of the resolver on --port, "
        f"{default_control_socket()} for port {DEFAULT_PORT})",
    )
    where.add_argument(  # the default socket is per port (config.default_control_socket)
        "--port", type=int, default=DEFAULT_PORT, help="the port of the resolver to talk to "
        f"(default {DEFAULT_PORT}), when neither --control-socket nor --config is given",
    )  # fmt: skip
    where.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help="take the control socket from the resolver's configuration file",
    )
    parser.add_argument("command", choices=list(COMMANDS), help="what to do")
    parser.add_argument(
        "name",
        nargs="?",
        help="the domain name of flush and flush-zone; add, remove or list for nta; list, "
        "reload or refresh for policy",
    )
    parser.add_argument(
        "more",
        nargs="*",
        help="nta add and remove: ZONE, and SECONDS; policy reload, refresh: ZONE",
    )
    return parser  # fmt: skip


def _socket_path(args: argparse.Namespace) -> str:
    if args.control_socket:
        return str(args.control_socket)
    if args.config is not None:
        path = control_socket_path(load_settings(args.config, {}))
        if path is None:
            raise SettingsError(f"{args.config} sets control-socket = {OFF!r}")
        return path
    return default_control_socket(port=args.port)


def request(path: str, line: str, timeout: float = CLIENT_TIMEOUT) -> tuple[bool, str]:
    """Send one request line; (ok, the output) from the resolver."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(line.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    status, _, body = b"".join(chunks).decode("utf-8", "replace").partition("\n")
    if status == "ok":
        return True, body
    return False, status.removeprefix("error: ") or "the resolver closed the connection"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    takes_name = COMMANDS[args.command][0]
    if args.more and args.command not in ("nta", "policy"):  # their sub-commands take words
        print(f"resolver-control: {args.command} takes one NAME at most (see --help)",
              file=sys.stderr)  # fmt: skip
        return 2
    if takes_name != (args.name is not None):
        need = "a NAME" if takes_name else "no NAME"
        print(f"resolver-control: {args.command} takes {need} (see --help)", file=sys.stderr)
        return 2
    try:
        path = _socket_path(args)
    except SettingsError as error:
        print(f"resolver-control: {error}", file=sys.stderr)
        return 2
    line = " ".join([args.command, *([args.name] if args.name else []), *args.more])
    try:
        ok, output = request(path, line)
    except OSError as error:
        reason = error.strerror or str(error)
        print(f"resolver-control: cannot talk to the resolver at {path}: {reason} "
              "(is it running? --control-socket)", file=sys.stderr)  # fmt: skip
        return 1
    if not ok:
        print(f"resolver-control: {output}", file=sys.stderr)
        return 1
    sys.stdout.write(output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
