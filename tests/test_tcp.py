"""TCP under pressure (resolver.serve.tcp): eviction of idle connections at the cap, the
per-client limit, fairness between networks, the idle timeout shortened and announced
(RFC 7766 section 6.2.3, RFC 7828); in-process with the fake engine of
tests/test_hostile.py, then 720 hostile connections against the running service
(scripts/reliability/tcp_pressure.py, whose full runs with Unbound beside ours are in
docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import dns.message

import resolver.serve.tcp as tcp_module
from resolver.serve.tcp import TcpListener
from scripts.reliability.common import frame, query
from scripts.reliability.tcp_pressure import run as pressure
from tests.test_hostile import _reply, service

WAIT = 5.0


async def serve(**kwargs: Any) -> tuple[asyncio.Server, int, TcpListener]:
    listener = TcpListener(service(), **kwargs)
    server = await asyncio.start_server(listener, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], listener


async def connect(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def ask(port: int, source: str, name: str = "fresh.example.", edns: bool = False) -> bytes:
    reader, writer = await connect(port, source)
    try:
        writer.write(frame(query(name, qid=7, edns=edns)))
        return await asyncio.wait_for(_reply(reader), WAIT)
    finally:
        writer.close()


async def closed_soon(reader: asyncio.StreamReader, within: float = 1.0) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), within) == b""
    except (TimeoutError, ConnectionError):
        return False


def test_at_the_cap_a_new_client_evicts_the_connection_idle_longest() -> None:
    async def scenario() -> tuple[list[bool], bytes, int]:
        server, port, listener = await serve(max_connections=10)
        async with server:
            held = []
            for i in range(10):  # ten networks, one idle connection each, oldest first
                held.append(await connect(port, f"127.81.{i}.1"))
                await asyncio.sleep(0.01)
            reply = await ask(port, "127.0.0.1")
            # At once: at the cap the idle timeout is short (0.5 s), and would close them all.
            closed = await asyncio.gather(*(closed_soon(reader, 0.1) for reader, _ in held))
            for _, writer in held:
                writer.close()
            return list(closed), reply, listener.evicted

    closed, reply, evicted = asyncio.run(scenario())
    assert closed == [True] + [False] * 9 and evicted == 1
    assert reply[:2] == (7).to_bytes(2, "big") and reply[3] & 0xF == 0


def test_one_address_gets_at_most_per_client_connections() -> None:
    async def scenario() -> tuple[int, int]:
        server, port, listener = await serve(per_client=4)
        async with server:
            streams = [await connect(port, "127.82.0.1") for _ in range(10)]
            refused = sum([await closed_soon(r, 0.3) for r, _ in streams])
            still = listener.open
            for _, writer in streams:
                writer.close()
            return refused, still

    assert asyncio.run(scenario()) == (6, 4)


def test_a_network_with_its_share_or_just_evicted_does_not_evict() -> None:
    """Cap 8, per client 4: a /24 holding 4 may not push others out; nor may a network
    that just lost a connection to eviction, while a newcomer may."""

    async def scenario() -> tuple[bool, bool, bool, bytes]:
        server, port, _listener = await serve(max_connections=8, per_client=4)
        async with server:
            full = [await connect(port, f"127.83.0.{i + 1}") for i in range(4)]
            others = [await connect(port, f"127.84.{i}.1") for i in range(4)]
            fifth = await connect(port, "127.83.0.9")  # its /24 holds 4 already
            share_refused = await closed_soon(fifth[0], 0.3)
            newcomer = await connect(port, "127.85.0.1")  # evicts the oldest: full[0]
            evicted = await closed_soon(full[0][0], 0.3)
            again = await connect(port, "127.83.0.1")  # the evicted network, at once
            retry_refused = await closed_soon(again[0], 0.3)
            reply = await ask(port, "127.86.0.1")  # another newcomer is still admitted
            for _, writer in [*full, *others, fifth, newcomer, again]:
                writer.close()
            return share_refused, evicted, retry_refused, reply

    share_refused, evicted, retry_refused, reply = asyncio.run(scenario())
    assert share_refused and evicted and retry_refused
    assert reply[3] & 0xF == 0


def test_a_connection_with_a_query_in_progress_is_never_evicted() -> None:
    async def scenario() -> tuple[bool, bytes]:
        svc = service(delay=0.5)
        listener = TcpListener(svc, max_connections=1)
        server = await asyncio.start_server(listener, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await connect(port, "127.87.0.1")
            writer.write(frame(query("busy.example.", qid=3)))
            await asyncio.sleep(0.05)
            newcomer, other = await connect(port, "127.88.0.1")
            refused = await closed_soon(newcomer, 0.3)
            reply = await asyncio.wait_for(_reply(reader), WAIT)
            writer.close()
            other.close()
            return refused, reply

    refused, reply = asyncio.run(scenario())
    assert refused and reply[:2] == (3).to_bytes(2, "big")


def keepalive_of(reply: bytes) -> float | None:
    for option in dns.message.from_wire(reply).options:
        if option.otype == 11:
            return int.from_bytes(option.to_wire(), "big") / 10
    return None


def test_the_idle_timeout_shrinks_under_pressure_and_is_announced() -> None:
    """RFC 7828: answers to EDNS queries over TCP carry the idle timeout granted: 10 s
    while the listener is quiet, shorter as the connections fill the cap; idle
    connections are then closed at the shorter timeout."""

    async def scenario() -> tuple[float | None, float | None, float | None, float, bool]:
        server, port, _listener = await serve(max_connections=10)
        async with server:
            quiet = keepalive_of(await ask(port, "127.89.0.1", edns=True))
            plain = keepalive_of(await ask(port, "127.89.0.1"))
            held = [await connect(port, f"127.90.{i}.1") for i in range(8)]  # 80% of the cap
            busy = keepalive_of(await ask(port, "127.89.0.2", edns=True))
            started = time.monotonic()
            closed = await closed_soon(held[0][0], 3.0)
            took = time.monotonic() - started
            for _, writer in held:
                writer.close()
            return quiet, plain, busy, took, closed

    quiet, plain, busy, took, closed = asyncio.run(scenario())
    assert quiet == tcp_module.TCP_IDLE_TIMEOUT == 10.0
    assert plain is None  # no EDNS in the query, no option in the answer
    assert busy == 0.5 and closed and took < 1.5


def test_720_hostile_connections_and_a_new_client_is_answered_within_2_s(tmp_path: Path) -> None:
    """The issue's target, against the running service: 720 hostile connections, each from
    a /24 of its own, silent, dripping or idle after one query, reopened as soon as they
    are closed; a new client every 0.25 s is answered over TCP within 2 s."""
    result = pressure("ours", tmp_path, 720, 8.0, "many")
    assert result["hostile_opened"] >= 720
    # One probe in the run may miss on a loaded machine (the full runs: none missed).
    assert result["probe_failed"] <= 1 and result["probe_answered_within_2s"] >= 12, result
    assert result["internal_errors"] == 0
