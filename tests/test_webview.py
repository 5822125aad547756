"""The web view (resolver/ops/webview.py, drawing.py, livestate.py) on the lab.

A resolver runs with ``--metrics``; its pages are fetched over HTTP and loaded in
headless Chromium (Debian's ``chromium``), which draws them: the test reads the DOM
Chromium built (``--dump-dom``) to check what is drawn (zones, servers, outcomes, the
sub-lookups) and keeps a screenshot (``tmp_path / "trace.png"``, its path printed).  A
name with markup in it must come back as text.  ``resolver-trace --svg`` writes the same
drawing.  The signed lab's chain of trust is in tests/interop/test_webview_signed.py.

Without Chromium the browser tests are skipped with the reason, except in CI (CI=true),
where that is a failure.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
from test_listener import ResolverProcess

from resolver.cache.records import Security
from resolver.iterate.classify import Kind
from resolver.iterate.events import Hop, Judged, LimitHit, SubLookup, SubLookupDone
from resolver.iterate.hints import DEFAULT_HINTS, load_root_hints
from resolver.iterate.limits import Limit
from resolver.iterate.plan import Purpose
from resolver.lab import Lab
from resolver.lab.unbound import free_port
from resolver.ops.config import Settings
from resolver.ops.drawing import draw, read_walk, trust_chain
from resolver.ops.traced import Start, Summary, TraceEvent
from resolver.ops.webview import TraceBucket, WebView
from resolver.serve.access import AccessList
from resolver.wire import Rcode, RRType

ROOT = Path(__file__).resolve().parent.parent
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
HOSTILE = '<img src=x onerror="document.title=1">.com'


def get(port: int, target: str, source: str = "127.0.0.1") -> tuple[int, dict[str, str], str]:
    """(status, headers, body) of one GET from ``source``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20,
                                            source_address=(source, 0))  # fmt: skip
    try:
        connection.request("GET", target)
        reply = connection.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read().decode()
    finally:
        connection.close()


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        reason = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"web view browser test cannot run in CI: {reason}")
        pytest.skip(reason)
    return path


def browse(url: str, profile: Path, *flags: str) -> str:
    """What headless Chromium prints for ``url`` (the DOM with --dump-dom)."""
    done = subprocess.run(
        [chromium(), *BROWSER_FLAGS, f"--user-data-dir={profile}", *flags, url],
        capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def elements(dom: str, cls: str) -> list[dict[str, str]]:
    """The data-* attributes of each element whose class starts with ``cls``."""
    out = []
    for match in re.finditer(rf'<g class="{cls}[^"]*"([^>]*)>', dom):
        out.append(dict(re.findall(r'data-([\w-]+)="([^"]*)"', match[1])))
    return out


@pytest.fixture(scope="module")
def web(
    lab: Lab, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, ResolverProcess]]:
    """A resolver on the lab with the web view."""
    port = free_port()
    running = ResolverProcess(lab, tmp_path_factory.mktemp("web"), "--metrics",
                              f"127.0.0.1:{port}")  # fmt: skip
    try:
        yield port, running
    finally:
        assert running.stop() == 0


# -- in the browser ----------------------------------------------------------------------


def test_the_browser_draws_the_walk_with_its_zones_servers_and_branches(
    web: tuple[int, ResolverProcess], tmp_path: Path
) -> None:
    port, _ = web
    url = f"http://127.0.0.1:{port}/trace?name=www.noglue.org&type=A"
    dom = browse(url, tmp_path / "profile", "--dump-dom")
    hops = elements(dom, "hop")
    assert ("org.", "ns1.nic.org.", "127.2.3.1") in {(h["zone"], h["server"], h["address"])
                                                    for h in hops}  # fmt: skip
    assert {h["zone"] for h in hops} >= {".", "org.", "net.", "provider.net.", "noglue.org."}
    last = hops[-1]
    assert (last["zone"], last["server"], last["address"], last["outcome"]) == (
        "noglue.org.", "ns1.provider.net.", "127.3.5.1", "answer")  # fmt: skip
    assert all(float(h["rtt-ms"]) >= 0 for h in hops)
    branches = elements(dom, "sublookup")
    assert ("ns1.provider.net.", "glueless") in {(b["qname"], b["purpose"]) for b in branches}
    question = elements(dom, "question")[0]
    assert (question["qname"], question["qtype"], question["rcode"]) == (
        "www.noglue.org.", "A", "NOERROR")  # fmt: skip
    screenshot = tmp_path / "trace.png"
    browse(url, tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1400,900")
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot of the trace page: {screenshot}")


def test_the_front_page_shows_the_form_and_the_live_state(
    web: tuple[int, ResolverProcess], tmp_path: Path
) -> None:
    port, resolver = web
    # Something to see: a SERVFAIL (the lab's delegation loop) with its EDE.
    assert get(port, "/trace?name=www.loop1.com&type=A")[0] == 200
    subprocess.run(["dig", "@127.0.0.1", "-p", str(resolver.port), "www.loop1.com", "+tries=1"],
                   capture_output=True, timeout=30)  # fmt: skip
    dom = browse(f"http://127.0.0.1:{port}/", tmp_path / "profile", "--dump-dom")
    assert '<form action="/trace"' in dom and 'name="name"' in dom
    assert "queries a second" in dom and 'id="latency"' in dom
    servfails = re.search(r'<table id="servfails">(.*?)</table>', dom, re.S)
    assert servfails and "www.loop1.com." in servfails[1], dom
    assert re.search(r"<td>\d+</td><td>[^<]+</td>", servfails[1])  # an EDE code and its text
    servers = re.search(r'<table id="servers">(.*?)</table>', dom, re.S)
    assert servers and re.search(r"<td>127\.\d+\.\d+\.\d+</td><td>[\d.]+ ms</td>", servers[1])
    screenshot = tmp_path / "front.png"
    browse(f"http://127.0.0.1:{port}/", tmp_path / "profile", f"--screenshot={screenshot}",
           "--window-size=1200,1000")  # fmt: skip
    print(f"screenshot of the front page: {screenshot}")


def test_a_name_with_markup_is_shown_as_text(
    web: tuple[int, ResolverProcess], tmp_path: Path
) -> None:
    port, _ = web
    url = f"http://127.0.0.1:{port}/trace?name={quote(HOSTILE)}&type=A"
    dom = browse(url, tmp_path / "profile", "--dump-dom")
    assert "<img" not in dom  # no element made from the name
    assert "&lt;img" in dom  # the name shown, as text
    assert "<title>resolver</title>" in dom  # the onerror handler never ran
    status, headers, body = get(port, f"/trace?name={quote(HOSTILE)}&type=%3Cb%3E")
    assert status == 400 and "<b>" not in body and "&lt;b&gt;" in body
    assert "script-src 'nonce-" in headers["Content-Security-Policy"]


# -- over HTTP -----------------------------------------------------------------------------


def test_state_is_json_with_the_live_numbers(web: tuple[int, ResolverProcess]) -> None:
    port, resolver = web
    subprocess.run(["dig", "@127.0.0.1", "-p", str(resolver.port), "www.google.com"],
                   capture_output=True, timeout=30)  # fmt: skip
    status, headers, body = get(port, "/state")
    state = json.loads(body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert state["queries"] >= 1 and state["processes"] == 1
    assert [bound for bound, _ in state["latency_ms"]][-1] == "+Inf"
    assert sum(count for _, count in state["latency_ms"]) >= state["queries"] - 1
    assert state["servers"] and all(len(server) == 3 for server in state["servers"])


def test_a_client_outside_allow_gets_no_trace() -> None:
    """Loopback is always allowed (as for DNS), so the refusal is checked in-process."""
    access = AccessList(["192.0.2.0/28"])
    front = SimpleNamespace(runtime=SimpleNamespace(service=SimpleNamespace(access=access)))
    view = WebView(Settings(), load_root_hints(DEFAULT_HINTS), front)  # type: ignore[arg-type]
    refused = view._refusal("198.51.100.1")
    assert refused is not None and refused.status == "403 Forbidden"
    assert view._refusal("192.0.2.1") is None and view._refusal("127.0.0.1") is None


def test_unknown_paths_and_methods(web: tuple[int, ResolverProcess]) -> None:
    port, _ = web
    assert get(port, "/nothing")[0] == 404
    assert get(port, "/trace?" + "x" * 3000)[0] == 414
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", "/trace", body=b"name=x")
    assert connection.getresponse().status == 405
    connection.close()


def test_traces_are_rate_limited(lab: Lab, tmp_path: Path) -> None:
    port = free_port()
    resolver = ResolverProcess(lab, tmp_path, "--metrics", f"127.0.0.1:{port}")
    try:
        replies = [get(port, "/trace?name=www.google.com&type=A") for _ in range(8)]
        statuses = [status for status, _, _ in replies]
        assert statuses[:5] == [200] * 5 and 429 in statuses, statuses  # a burst of 5, then 0.5/s
        refused = next(reply for reply in replies if reply[0] == 429)
        assert int(refused[1]["Retry-After"]) >= 1 and "too many traces" in refused[2]
    finally:
        assert resolver.stop() == 0


def test_traces_run_one_at_a_time() -> None:
    """A second trace while one runs gets 503 at once (in-process: a trace held open)."""
    front = SimpleNamespace(runtime=SimpleNamespace(service=SimpleNamespace(access=AccessList())))
    view = WebView(Settings(), load_root_hints(DEFAULT_HINTS), front)  # type: ignore[arg-type]
    started, release = asyncio.Event(), asyncio.Event()

    async def held(qname: str, qtype: int) -> list[dict[str, Any]]:
        started.set()
        await release.wait()
        return [{"event": "start", "qname": qname, "qtype": "A"}]

    view.trace = held  # type: ignore[method-assign]

    async def both() -> tuple[Any, Any]:
        first = asyncio.ensure_future(view.respond("/trace", "name=a.example&type=A", "127.0.0.1"))
        await started.wait()
        second = await view.respond("/trace", "name=b.example&type=A", "127.0.0.1")
        release.set()
        return await first, second

    first, second = asyncio.run(both())
    assert (first.status, second.status) == ("200 OK", "503 Service Unavailable")
    assert ("Retry-After", "1") in second.headers


def test_resolver_trace_writes_the_same_drawing(lab: Lab, lab_hints: Path, tmp_path: Path) -> None:
    svg = tmp_path / "trace.svg"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "trace.py"), "www.chain.com", "--root-hints",
         str(lab_hints), "--upstream-port", str(lab.port), "--svg", str(svg)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    drawn = svg.read_text()
    assert drawn.startswith("<svg xmlns=") and drawn.endswith("</svg>\n")
    outcomes = [h["outcome"] for h in elements(drawn, "hop")]
    assert outcomes.count("cname") >= 2 and outcomes[-1] == "answer"  # the CNAME jumps
    assert "\u21aa CNAME to a.chain.net." in drawn
    unwritable = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "trace.py"), "www.chain.com", "--root-hints",
         str(lab_hints), "--upstream-port", str(lab.port), "--svg", str(tmp_path / "no" / "x")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert unwritable.returncode == 2 and "cannot write" in unwritable.stderr


# -- the drawing from events ---------------------------------------------------------------


# From the signed lab: example.com.'s KSK (tag 1404) and the DS naming it.
DS_1404 = "1404 13 2 6AC152E8265C2A381D3591676497ACAE15D08092CD5B3FBE84128C72AECC8DD3"
KSK_1404 = ("257 3 13 +keyXpZuniFbPb39+E/DBNZxkdBCYVgaZ+u/I1YdCe3e4CXdi669GE5CbzaH9Rf8r97FFxY"
            "fWu8hPUzP84XPSA==")  # fmt: skip


def _signed_events(answer: str, reason: str = "") -> list[TraceEvent]:
    """A validated trace's events, as the engine reports them (www.example.com.)."""
    ds = SubLookup(1, "example.com.", RRType.DS, "example.com.", Purpose.DS)
    security = Security[answer.upper()]
    return [
        Start("www.example.com.", "A", "hints", 53),
        Hop(0, "example.com.", "ns1.example.com.", "127.3.1.1", "www.example.com.", RRType.A,
            Kind.ANSWER, 0.1, records=["www.example.com. 300 A 192.0.2.1"]),
        SubLookup(1, "example.com.", RRType.DNSKEY, "example.com.", Purpose.KEYS),
        ds,
        Judged(2, "example.com.", RRType.DS, "example.com.", Security.SECURE, ""),
        SubLookupDone(1, "example.com.", RRType.DS, Rcode.NOERROR, [DS_1404], Purpose.DS),
        Judged(1, "example.com.", RRType.DNSKEY, "example.com.", Security.SECURE, ""),
        SubLookupDone(1, "example.com.", RRType.DNSKEY, Rcode.NOERROR, [KSK_1404],
                      Purpose.KEYS),
        Judged(0, "www.example.com.", RRType.A, "example.com.", security, reason),
        Summary("NOERROR" if answer != "bogus" else "SERVFAIL", [], [], reason, 1.0, 3,
                answer),
    ]  # fmt: skip


def test_the_chain_of_trust_is_read_from_the_judgements() -> None:
    zones, covered = trust_chain(read_walk(_signed_events("secure")))
    assert [(z.zone, z.state, z.keys) for z in zones] == [
        ("example.com.", "secure", ["1404 KSK alg 13"])  # the tag the DS names
    ]
    assert zones[0].ds_records and zones[0].ds_records[0].startswith("1404 13 2 ")
    assert [(v.name, v.zone, v.security) for v in covered] == [
        ("www.example.com.", "example.com.", "secure")
    ]
    bogus = draw(_signed_events("bogus", "www.example.com. A: bad signature"))
    rrsig = elements(bogus, "rrsig")
    assert rrsig == [{"name": "www.example.com.", "qtype": "A", "zone": "example.com.",
                      "state": "bogus"}]  # fmt: skip
    assert "RRSIG by example.com.: bogus (www.example.com. A: bad signature)" in bogus


def test_everything_drawn_is_escaped() -> None:
    evil = "<script>alert(1)</script>"
    events: list[TraceEvent] = [
        Start(evil, "A\"'", evil, 53),
        Hop(0, evil, evil, "&", evil, RRType.A, Kind.ANSWER, records=[evil]),
        Hop(0, evil, evil, "&", evil, RRType.A, Kind.REFERRAL, referral=evil, ns=[evil]),
        Hop(0, evil, evil, "&", evil, RRType.A, Kind.LAME, reason=evil),
        SubLookup(1, evil, RRType.A, evil, Purpose.NS_ADDRESS),
        SubLookupDone(1, evil, RRType.A, Rcode.NOERROR, [evil], Purpose.NS_ADDRESS),
        Judged(0, evil, RRType.A, evil, Security.BOGUS, evil),
        LimitHit(evil, RRType.A, Limit.DELEGATION_LOOP, evil),
        Summary(evil, [evil], [], evil, None, None, evil),
    ]  # fmt: skip
    drawn = draw(events)
    assert "<script" not in drawn and "&lt;script&gt;" in drawn
    assert re.search(r'="[^"]*"[^ />]', drawn) is None  # no attribute left open by a quote


def test_trace_bucket() -> None:
    now = [0.0]
    bucket = TraceBucket(rate=0.5, burst=2, clock=lambda: now[0])
    assert [bucket.take(), bucket.take()] == [0.0, 0.0]
    assert bucket.take() == pytest.approx(2.0)
    now[0] = 2.0
    assert bucket.take() == 0.0
