"""The web view, on the ``--metrics`` address: see a resolution, and the live state.

    /                      a form (name, type) and the live state
    /trace?name=N&type=T   N resolved from the root with a fresh trace, drawn
    /trace.svg?name=N&...  the drawing alone (image/svg+xml), as ``resolver-trace --svg``
    /state                 the live state as JSON (the page refreshes itself from it)

A trace is what ``resolver-trace`` does: a fresh engine with empty caches walks
from the root hints (:func:`resolver.ops.trace.trace_engine`, validating as the
service does), and :mod:`resolver.ops.drawing` draws its events server-side as
SVG.  The page needs nothing from elsewhere (no CDN, no build step, no framework):
HTML, the SVG, and a few lines of inline script that refresh the live numbers.

A trace makes upstream queries with none of the caches' help, so it is bounded: one
at a time (another request meanwhile gets 503), at most ``TRACE_BURST`` in a row
and then one every ``1 / TRACE_RATE`` seconds (429 past that), a time budget of
``TRACE_BUDGET`` seconds, at most ``MAX_EVENTS`` events kept; and only for clients
the service's access list lets resolve (``--allow``: loopback by default), as the
metrics address itself is loopback only unless configured.

Names come from whoever types them and from servers: every string shown is escaped
(:func:`resolver.ops.drawing.escape`), the live page's script writes text with
``textContent`` only, and a Content-Security-Policy runs no script but the page's
own (a per-response nonce), so a name with markup in it is shown as text.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

import structlog

from resolver.iterate.hints import RootHints
from resolver.net.transport import UpstreamTransport
from resolver.ops.config import Settings
from resolver.ops.control import Front, execute
from resolver.ops.drawing import draw, escape
from resolver.ops.livestate import Reading, combine, reading, summarise
from resolver.ops.trace import RecordedTrace, trace_engine
from resolver.ops.traced import Start, TraceEvent, cut_short
from resolver.wire import RRType
from resolver.wire.names import BadName, normalize

log = structlog.get_logger("resolver.ops.webview")

TRACE_BUDGET = 5.0  # seconds a web trace may take (the engine's own budget)
TRACE_RATE = 0.5  # traces a second, sustained
TRACE_BURST = 5  # traces in a row before the rate applies
MAX_EVENTS = 5000  # events of one trace kept for the drawing
MAX_QUERY = 2048  # characters of a query string
TYPES = ("A", "AAAA", "NS", "MX", "TXT", "SOA", "CNAME", "DS", "DNSKEY", "PTR", "SRV", "CAA")


@dataclass
class Page:
    status: str
    kind: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _text(status: str, message: str) -> Page:
    return Page(status, "text/plain; charset=utf-8", f"{message}\n".encode())


class TraceBucket:
    """A token bucket: ``burst`` traces in a row, then ``rate`` a second."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self.at = clock()

    def take(self) -> float:
        """0 if a trace may start now, else the seconds to wait."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class WebView:
    """The pages of the web view (served by :class:`resolver.ops.metrics.MetricsServer`)."""

    def __init__(
        self,
        settings: Settings,
        hints: RootHints,
        front: Front,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.hints = hints
        self.front = front
        self.clock = clock
        self.running = asyncio.Lock()
        self.bucket = TraceBucket(TRACE_RATE, TRACE_BURST, clock)
        self.last: Reading | None = None  # the counters at the previous /state

    # ---------------------------------------------------------------- routing

    async def respond(self, path: str, query: str, peer: str) -> Page | None:
        """The page at ``path``, None if the web view has none there."""
        if len(query) > MAX_QUERY:
            return _text("414 URI Too Long", "query string too long")
        if path == "/":
            return self._html(self._form("", "A") + await self._state_html())
        if path == "/state":
            body = json.dumps(await self.state()).encode()
            return Page("200 OK", "application/json", body, (("Cache-Control", "no-store"),))
        if path in ("/trace", "/trace.svg"):
            return await self._trace_page(path, parse_qs(query, max_num_fields=8), peer)
        return None

    async def _trace_page(self, path: str, params: dict[str, list[str]], peer: str) -> Page:
        name_text = params.get("name", [""])[0].strip()
        type_text = params.get("type", ["A"])[0].strip() or "A"
        form = self._form(name_text, type_text)
        if not name_text:
            return self._html(form)
        try:
            qname = normalize(name_text)
            qtype = RRType.from_text(type_text)
        except (BadName, ValueError) as error:
            message = f"cannot trace {name_text!r} {type_text!r}: {error}"
            return self._html(form + f'<p class="error">{escape(message)}</p>', "400 Bad Request")
        refused = self._refusal(peer)
        if refused is not None:
            return refused
        async with self.running:
            events = await self.trace(qname, qtype)
        svg = draw(events)
        if path == "/trace.svg":
            return Page("200 OK", "image/svg+xml", svg.encode(), (("Cache-Control", "no-store"),))
        link = f"/trace.svg?name={quote(qname)}&amp;type={quote(RRType.text(qtype))}"
        return self._html(form + f'<section id="trace">{svg}<p><a href="{link}">the drawing '
                          f"alone (SVG)</a></p></section>")  # fmt: skip

    def _refusal(self, peer: str) -> Page | None:
        """Why this trace may not run now (not allowed, busy, too many), or None."""
        if not self.front.runtime.service.access.allows(peer):
            return _text("403 Forbidden", "traces are for clients the resolver serves (--allow)")
        if self.running.locked():
            return Page("503 Service Unavailable", "text/plain; charset=utf-8",
                        b"a trace is running: try again in a moment\n",
                        (("Retry-After", "1"),))  # fmt: skip
        wait = self.bucket.take()
        if wait:
            return Page("429 Too Many Requests", "text/plain; charset=utf-8",
                        f"too many traces: try again in {wait:.0f} s\n".encode(),
                        (("Retry-After", str(max(1, round(wait)))),))  # fmt: skip
        return None

    # ---------------------------------------------------------------- a trace

    async def trace(self, qname: str, qtype: int) -> list[TraceEvent]:
        """The events of one fresh resolution of (qname, qtype), summary included."""
        settings = self.settings
        recorded = RecordedTrace(limit=MAX_EVENTS)
        transport = UpstreamTransport(port=settings.upstream_port)
        engine = trace_engine(
            recorded, self.hints, port=settings.upstream_port, anchors=settings.anchors,
            budget=TRACE_BUDGET, ipv4_only=settings.ipv4_only, ipv6_only=settings.ipv6_only,
            qname_minimisation=settings.qname_minimisation, network=transport,
        )  # fmt: skip
        recorded.header(Start(qname, RRType.text(qtype), self.hints.source, settings.upstream_port))
        started = self.clock()
        try:
            async with asyncio.timeout(TRACE_BUDGET + 1):
                result = await engine.resolve(qname, qtype)
            recorded.summary(result, (self.clock() - started) * 1000)
        except TimeoutError:
            recorded.events.append(cut_short("the trace ran out of time"))
        finally:
            transport.sockets.close()
        log.info("web_trace", qname=qname, qtype=RRType.text(qtype),
                 events=len(recorded.events), dropped=recorded.dropped)  # fmt: skip
        return recorded.events

    # ---------------------------------------------------------------- the live state

    async def state(self) -> dict[str, Any]:
        """The live numbers: rates since the previous call, counters, servers, SERVFAILs."""
        front = self.front
        samples = await front.samples()
        mine = await execute(front.runtime, "state", None)
        theirs = await asyncio.gather(*(link.ask("state", None) for link in front.links))
        now = reading(samples, self.clock())
        before = self.last or Reading(now.at - 1e-9, now.queries, now.hits, now.lookups)
        self.last = now
        return summarise(samples, combine([mine, *theirs]), now, before)

    async def _state_html(self) -> str:
        try:
            state = await self.state()
        except Exception as error:  # a worker that does not answer, say
            return f'<section id="state"><p class="error">{escape(error)}</p></section>'
        return render_state(state)

    # ---------------------------------------------------------------- HTML

    @staticmethod
    def _form(name: str, rrtype: str) -> str:
        options = "".join(f'<option value="{t}"></option>' for t in TYPES)
        return (
            '<form action="/trace" method="get"><label>name <input name="name" size="40" '
            f'value="{escape(name)}" autofocus></label> <label>type <input name="type" size="8" '
            f'list="types" value="{escape(rrtype)}"></label><datalist id="types">{options}'
            "</datalist> <button>trace from the root</button></form>"
        )

    def _html(self, body: str, status: str = "200 OK") -> Page:
        nonce = secrets.token_urlsafe(16)
        policy = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
                  "connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
                  "frame-ancestors 'none'")  # fmt: skip
        page = PAGE.replace("{nonce}", nonce).replace("{body}", body)  # the body last: it is data
        headers = (("Content-Security-Policy", policy), ("Cache-Control", "no-store"))
        return Page(status, "text/html; charset=utf-8", page.encode(), headers)


def _row(cells: list[object], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{escape(cell)}</{tag}>" for cell in cells) + "</tr>"


def render_state(state: dict[str, Any]) -> str:
    """The live state as HTML (the script redraws the same from /state)."""
    rate = state.get("cache_hit_rate_total")
    numbers = [
        ("queries a second", state["queries_per_second"]),
        ("queries", int(state["queries"])),
        ("cache hit rate", "-" if rate is None else f"{rate:.1%}"),
        ("SERVFAIL answers", int(state["servfail_total"])),
        ("upstream queries", int(state["upstream_queries"])),
        ("resolutions in flight", int(state["in_flight"])),
    ]
    peak = max((count for _b, count in state["latency_ms"]), default=0) or 1
    bars = "".join(
        f"<tr><td>&le; {escape(bound)}{'' if bound == '+Inf' else ' ms'}</td><td>"
        f'<span class="bar" style="width:{200 * count / peak:.0f}px"></span> {int(count)}</td></tr>'
        for bound, count in state["latency_ms"]
    )
    servers = "".join(_row([a, f"{ms} ms", f]) for a, ms, f in state["servers"])
    servfails = "".join(
        _row([time.strftime("%H:%M:%S", time.localtime(at)), name, qtype, code, text])
        for at, name, qtype, code, text in state["servfails"]
    )
    return (
        '<section id="state"><h2>Live</h2><table id="numbers">'
        + "".join(_row([k, v]) for k, v in numbers)
        + '</table><h3>Answer latency</h3><table id="latency">' + bars + "</table>"
        "<h3>Slowest upstream servers (smoothed RTT)</h3><table id=\"servers\">"
        + _row(["address", "RTT", "failures"], "th") + servers + "</table>"
        '<h3>Recent SERVFAILs</h3><table id="servfails">'
        + _row(["time", "name", "type", "EDE", "why"], "th") + servfails + "</table></section>"
    )  # fmt: skip


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>resolver</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #202124; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.5em; } h3 { font-size: 1em; }
table { border-collapse: collapse; } td, th { padding: 2px 10px 2px 0; text-align: left; }
td { font-family: monospace; } .error { color: #b3261e; font-weight: bold; }
.bar { display: inline-block; height: 10px; background: #1f5fae; }
#trace { overflow-x: auto; margin-top: 1em; border: 1px solid #dadce0; }
</style></head><body>
<h1><a href="/">resolver</a>: see a resolution</h1>
{body}
<p><a href="/metrics">/metrics</a> &middot; <a href="/state">/state</a></p>
<script nonce="{nonce}">
// Refresh the live numbers every 2 s; text only (textContent), never markup.
(function () {
  const section = document.getElementById("state");
  if (!section) return;
  function fill(id, rows) {
    const table = document.getElementById(id);
    const head = table.querySelector("th") ? table.rows[0] : null;
    table.replaceChildren(...(head ? [head] : []));
    for (const cells of rows) {
      const tr = table.insertRow();
      for (const cell of cells) {
        const td = tr.insertCell();
        if (cell instanceof Node) td.append(cell); else td.textContent = String(cell);
      }
    }
  }
  function bar(width, count) {
    const span = document.createElement("span");
    span.className = "bar"; span.style.width = width + "px";
    const wrap = document.createElement("span");
    wrap.append(span, " " + count);
    return wrap;
  }
  async function refresh() {
    try {
      const s = await (await fetch("/state", {cache: "no-store"})).json();
      const rate = s.cache_hit_rate_total;
      fill("numbers", [["queries a second", s.queries_per_second], ["queries", s.queries],
        ["cache hit rate", rate === null ? "-" : (rate * 100).toFixed(1) + "%"],
        ["SERVFAIL answers", s.servfail_total], ["upstream queries", s.upstream_queries],
        ["resolutions in flight", s.in_flight]]);
      const peak = Math.max(1, ...s.latency_ms.map((b) => b[1]));
      fill("latency", s.latency_ms.map((b) => ["\\u2264 " + b[0] + (b[0] === "+Inf" ? "" : " ms"),
        bar(Math.round(200 * b[1] / peak), b[1])]));
      fill("servers", s.servers.map((v) => [v[0], v[1] + " ms", v[2]]));
      fill("servfails", s.servfails.map((v) => [new Date(v[0] * 1000).toLocaleTimeString(),
        v[1], v[2], v[3], v[4]]));
    } catch (e) { /* the resolver restarting: try again next time */ }
  }
  setInterval(refresh, 2000);
})();
</script>
</body></html>
"""
