"""What the encrypted-transport tests share: test certificates, a scripted engine, and the
DNS over TLS and DNS over HTTPS listeners served in-process (in a thread of their own, so
that blocking clients, dnspython, curl, kdig, can be used from the test).

The engine answers from the name: ``slowMS.`` after MS milliseconds, ``big...`` a TXT of
about 4 KB, ``nx...`` NXDOMAIN with an SOA (TTL 30), ``fail...`` SERVFAIL, anything else
one A record 192.0.2.1 with TTL 60 (AAAA 2001:db8::1).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resolver.cache.answers import AnswerCache
from resolver.iterate.answer import Answer, FailureKind, servfail
from resolver.serve.access import AccessList
from resolver.serve.doh import DohListener
from resolver.serve.dot import DotListener
from resolver.serve.listener import ResolverService
from resolver.serve.tls import ServerCertificate
from resolver.wire import CLASS_IN, ResourceRecord, RRType
from resolver.wire.rdata import AAAA, SOA, TXT, A
from scripts.reliability.tls_lab import SERVER_NAME, CertificateFiles, make_certificates
from tests.fakes import Scripted

__all__ = [
    "SERVER_NAME",
    "EncryptedServer",
    "ScriptedEngine",
    "client_context",
    "make_certificates",
]

SLOW = re.compile(r"slow(\d+)")


class ScriptedEngine(Scripted):
    """Answers by the name asked (see the module's docstring); counts what it resolves and
    the most resolutions it had at once."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.running = 0
        self.peak = 0
        self.gate: asyncio.Event | None = None

    async def scripted(self, name: str, rrtype: int, checking_disabled: bool) -> Answer:
        self.calls += 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            slow = SLOW.match(name)
            if slow:
                await asyncio.sleep(int(slow.group(1)) / 1000)
            return self.scripted_answer(name, rrtype)
        finally:
            self.running -= 1

    @staticmethod
    def scripted_answer(name: str, rrtype: int) -> Answer:
        if name.startswith("fail"):
            return servfail(FailureKind.NO_REACHABLE_AUTHORITY, "scripted failure")
        if name.startswith("nx"):
            soa = SOA("ns.example.", "host.example.", 1, 3600, 600, 86400, 30)
            zone = name.split(".", 1)[1] or "."
            return Answer(3, [], [ResourceRecord(zone, RRType.SOA, CLASS_IN, 30, soa)], 1)
        if name.startswith("big"):
            txt = TXT(tuple(b"x" * 250 for _ in range(16)))
            return Answer(0, [ResourceRecord(name, RRType.TXT, CLASS_IN, 60, txt)], [], 1)
        if rrtype == RRType.AAAA:
            record = ResourceRecord(name, RRType.AAAA, CLASS_IN, 60, AAAA("2001:db8::1"))
        else:
            record = ResourceRecord(name, RRType.A, CLASS_IN, 60, A("192.0.2.1"))
        return Answer(0, [record], [], 1)


def scripted_service(allow: AccessList | None = None) -> ResolverService:
    return ResolverService(ScriptedEngine(), AnswerCache(), allow)


def client_context(ca: Path, alpn: list[str] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


class EncryptedServer:
    """A DotListener and a DohListener on 127.0.0.1, served by an event loop in a thread."""

    def __init__(
        self,
        certificates: CertificateFiles,
        service: ResolverService | None = None,
        **listener_options: Any,
    ) -> None:
        self.certificates = certificates
        self.service = service or scripted_service()
        self.certificate = ServerCertificate(str(certificates.certificate), str(certificates.key))
        self.options = listener_options
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.dot: DotListener | None = None
        self.doh: DohListener | None = None
        self.servers: list[asyncio.Server] = []
        self.dot_port = self.doh_port = 0

    @property
    def engine(self) -> ScriptedEngine:
        engine = self.service.engine
        assert isinstance(engine, ScriptedEngine)
        return engine

    def call(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` on the server's loop (a coroutine function is awaited)."""

        async def run() -> Any:
            result = function()
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=30)

    async def _start(self) -> None:
        self.dot = DotListener(self.service, self.certificate, **self.options)
        self.doh = DohListener(self.service, self.certificate, **self.options)
        for handler in (self.dot, self.doh):
            self.servers.append(await asyncio.start_server(handler, "127.0.0.1", 0))
        self.dot_port = self.servers[0].sockets[0].getsockname()[1]
        self.doh_port = self.servers[1].sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        for server in self.servers:
            server.close()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()

    def __enter__(self) -> EncryptedServer:
        self.thread.start()
        self.call(self._start)
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(self._stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()
