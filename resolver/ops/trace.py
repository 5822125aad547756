"""Trace one iterative resolution from the root, hop by hop (like ``dig +trace``).

    resolver-trace NAME [TYPE] [--root-hints FILE] [--upstream-port N] [--json] [--svg FILE]
    python scripts/trace.py ...   (the same, from a checkout)

The engine starts from the root hints with an empty cache and reports every
upstream exchange through an observer; this script prints one line per hop as
it happens: the zone cut, the server name and address asked, the round-trip
time and what came back.  Sub-lookups (addresses of name servers that came
without glue, the DS and DNSKEY RRsets validation needs) are indented under the
hop that needed them, and each DNSSEC judgement is a line of its own (secure,
insecure, or bogus and why).  A summary line ends the trace, with the answer's
validation state.

Validation is on as in the service: from the shipped root KSKs with the shipped
hints, from ``--trust-anchor-file`` with other hints (a lab), off with
``--no-dnssec``.

``--svg FILE`` also writes the resolution as a drawing (:mod:`resolver.ops.drawing`),
the one the web view shows at ``/trace`` of the ``--metrics`` address.  The engine a
trace runs on is built by :func:`trace_engine`, which the web view uses too.

With the default hints (the repository's ``named.root``) this talks to the real
root servers.  For the test lab: ``--root-hints lab.hints --upstream-port 5300``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import TextIO

import structlog

from resolver.cache.records import RecordCache, Security
from resolver.dnssec import TrustAnchors
from resolver.iterate.answer import Answer
from resolver.iterate.engine import IterativeEngine
from resolver.iterate.events import Event, Hop, Judged, Observer, SubLookup, SubLookupDone
from resolver.iterate.hints import DEFAULT_HINTS, HintsError, RootHints, load_root_hints
from resolver.iterate.limits import Limits
from resolver.iterate.plan import Purpose
from resolver.iterate.servers import ServerSelection
from resolver.net.contract import Network
from resolver.net.transport import UpstreamTransport
from resolver.ops.config import (
    OneLineParser,
    Settings,
    SettingsError,
    VersionAction,
    trust_anchors,
)
from resolver.ops.drawing import draw
from resolver.ops.options import server_port
from resolver.ops.traced import (
    Start,
    Summary,
    TraceEvent,
    as_json,
    outcome_text,
    security_text,
    summary_of,
    why,
)
from resolver.ops.upstream import upstream_addresses
from resolver.validate import validator
from resolver.wire import Rcode, RRType
from resolver.wire.names import BadName, normalize

EXIT_RESOLVED = 0
EXIT_UNRESOLVED = 1
EXIT_USAGE = 2

EPILOG = """\
exit status:
  0  the name resolved: NOERROR (with an answer, or NODATA) or NXDOMAIN
  1  it did not: SERVFAIL (no server answered, or a resolution limit was hit)
  2  bad usage: unknown type, bad name, unreadable or unusable root hints, an --svg
     file that cannot be written
"""

# Column widths of a hop line: zone cut, server name, address, round-trip time.
ZONE_WIDTH = 22
SERVER_WIDTH = 22
ADDRESS_WIDTH = 15
RTT_WIDTH = 9
QUESTION_WIDTH = 24  # what was asked: with QNAME minimisation, often less than the name


def _rtt(rtt_ms: float | None) -> str:
    return "-" if rtt_ms is None else f"{rtt_ms:.1f} ms"


class TextTrace:
    """Observer printing hops as aligned columns, sub-lookups indented by depth."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def _print(self, line: str) -> None:
        print(line.rstrip(), file=self.out, flush=True)

    def header(self, start: Start) -> None:
        self._print(f";; tracing {start.qname} {start.qtype} from the root hints in "
                    f"{start.hints} (port {start.port})")  # fmt: skip
        self._print(
            f";; {'zone cut':<{ZONE_WIDTH - 3}} {'server':<{SERVER_WIDTH}} "
            f"{'address':<{ADDRESS_WIDTH}} {'rtt':>{RTT_WIDTH}}  "
            f"{'question':<{QUESTION_WIDTH}} result"
        )

    def __call__(self, event: Event) -> None:
        depth = event.depth or 0
        indent = "  " * depth
        if isinstance(event, Hop):
            zone = f"{indent}{event.zone}"
            question = f"{event.qname} {RRType.text(event.qtype)}"
            tcp = " (tcp)" if event.tcp else ""
            self._print(
                f"{zone:<{ZONE_WIDTH}} {event.server:<{SERVER_WIDTH}} "
                f"{event.address:<{ADDRESS_WIDTH}} {_rtt(event.rtt_ms):>{RTT_WIDTH}}  "
                f"{question:<{QUESTION_WIDTH}} {outcome_text(event)}{tcp}"
            )
        elif isinstance(event, SubLookup):
            purpose = why(event.purpose, event.zone)
            qtype = RRType.text(event.qtype)
            self._print(f"{indent}> sub-lookup {event.qname} {qtype} ({purpose})")
        elif isinstance(event, SubLookupDone):
            records, qtype = event.addresses, RRType.text(event.qtype)
            if event.purpose in (Purpose.KEYS, Purpose.DS):  # key material: how many, not what
                found = f"{len(records)} {qtype}" if records else "none"
            else:
                found = ", ".join(records) or "no address"
            self._print(f"{indent}< {event.qname} {qtype}: {Rcode.text(event.rcode)}, {found}")
        elif isinstance(event, Judged):
            verdict, reason = event.security.name.lower(), event.reason
            self._print(
                f"{indent}= DNSSEC {event.owner} {RRType.text(event.qtype)}: "
                f"{verdict}{f': {reason}' if reason else ''}"
            )
        else:
            where = f" (a name server of {event.zone})" if event.zone is not None else ""
            self._print(f"{indent}!! limit: {event.limit.value} at {event.qname}{where}")

    def summary(self, result: Answer, elapsed_ms: float) -> None:
        rcode = Rcode.text(result.rcode)
        cost = f"{elapsed_ms:.1f} ms, {result.upstream_queries} upstream queries"
        if result.rcode != Rcode.SERVFAIL and result.security != Security.UNCHECKED:
            cost += f", DNSSEC {security_text(result.security)}"
        if result.answer:
            self._print(f";; {rcode}  ({cost})")
            for rr in result.answer:
                self._print(f";;   {rr.to_text()}")
        elif result.authority and rcode in ("NOERROR", "NXDOMAIN"):
            kind = "NODATA" if rcode == "NOERROR" else rcode
            self._print(f";; {kind}  ({cost})")
            for rr in result.authority:
                self._print(f";;   {rr.to_text()}")
        else:
            reason = f": {result.failure.text}" if result.failure else ""
            self._print(f";; {rcode}{reason}  ({cost})")


class RecordedTrace:
    """Observer keeping every event (start and summary included): what
    :mod:`resolver.ops.drawing` draws."""

    def __init__(self, limit: int = 0) -> None:
        self.events: list[TraceEvent] = []
        self.limit = limit  # the most events kept (0: no bound); the summary is always kept
        self.dropped = 0

    def _emit(self, event: TraceEvent) -> None:
        if self.limit and len(self.events) >= self.limit and not isinstance(event, Summary):
            self.dropped += 1
            return
        self.events.append(event)

    def header(self, start: Start) -> None:
        self._emit(start)

    def __call__(self, event: Event) -> None:
        self._emit(event)

    def summary(self, result: Answer, elapsed_ms: float) -> None:
        self._emit(summary_of(result, elapsed_ms))


class JsonTrace(RecordedTrace):
    """Observer printing one JSON object per event (and one for the summary)."""

    def __init__(self, out: TextIO) -> None:
        super().__init__()
        self.out = out

    def _emit(self, event: TraceEvent) -> None:
        print(json.dumps(as_json(event), default=str), file=self.out, flush=True)


class TeeTrace:
    """Two traces fed the same events: one printed, one recorded for ``--svg``."""

    def __init__(self, printed: TextTrace | JsonTrace, recorded: RecordedTrace) -> None:
        self.printed = printed
        self.recorded = recorded

    def header(self, start: Start) -> None:
        self.printed.header(start)
        self.recorded.header(start)

    def __call__(self, event: Event) -> None:
        self.printed(event)
        self.recorded(event)

    def summary(self, result: Answer, elapsed_ms: float) -> None:
        self.printed.summary(result, elapsed_ms)
        self.recorded.summary(result, elapsed_ms)


def resolved(result: Answer) -> bool:
    return result.rcode in (Rcode.NOERROR, Rcode.NXDOMAIN)


def _server_port(text: str) -> int:
    try:
        return server_port(int(text))
    except ValueError as error:
        reason = str(error) if text.strip().lstrip("-").isdigit() else f"{text!r} is not a port"
        raise argparse.ArgumentTypeError(reason) from None


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="resolver-trace",
        description="Resolve NAME from the root with an empty cache, printing every hop.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=VersionAction)
    parser.add_argument("name", help="the name to resolve")
    parser.add_argument("type", nargs="?", default="A", help="record type (default A)")
    parser.add_argument(
        "--root-hints",
        type=Path,
        default=DEFAULT_HINTS,
        help="root hints file in named.root format (default: the repository's named.root, "
        "that is, the real root servers)",
    )
    parser.add_argument(
        "--upstream-port",
        type=_server_port,
        default=53,
        metavar="PORT",
        help="port of every upstream server (default 53)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per event")
    parser.add_argument(
        "--svg",
        type=Path,
        metavar="FILE",
        help="also write the resolution as an SVG drawing to FILE (the web view's drawing)",
    )
    parser.add_argument(
        "--no-qname-minimisation",
        dest="qname_minimisation",
        action="store_false",
        help="ask every server the whole name, not only the next label (RFC 9156)",
    )
    family = parser.add_mutually_exclusive_group()
    family.add_argument("--ipv4-only", action="store_true", help="query over IPv4 only")
    family.add_argument("--ipv6-only", action="store_true", help="query over IPv6 only")
    parser.add_argument(
        "--trust-anchor-file",
        type=Path,
        metavar="FILE",
        help="DS or DNSKEY records to validate from (default: the shipped root KSKs with "
        "the shipped root hints; with other hints, no validation without this)",
    )
    parser.add_argument(
        "--no-dnssec", dest="dnssec", action="store_false", help="do not validate (DNSSEC)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1.0,
        help="timeout in seconds of a query to a server not measured yet (default 1.0)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=Limits.time_budget,
        help=f"time budget in seconds for the whole question (default {Limits.time_budget:g})",
    )
    return parser


def _configure_logging() -> None:
    """Engine and transport log lines go to stderr, warnings and worse only."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def _trust_anchors(args: argparse.Namespace) -> TrustAnchors | None:
    """Where validation starts, decided as the service decides it."""
    anchor_file = str(args.trust_anchor_file) if args.trust_anchor_file else None
    return trust_anchors(Settings(root_hints=str(args.root_hints), dnssec=args.dnssec,
                                  trust_anchor_file=anchor_file))  # fmt: skip


def trace_engine(
    observer: Observer,
    hints: RootHints,
    *,
    port: int,
    anchors: TrustAnchors | None,
    timeout: float = 1.0,
    budget: float = Limits.time_budget,
    ipv4_only: bool = False,
    ipv6_only: bool = False,
    qname_minimisation: bool = True,
    network: Network | None = None,
) -> IterativeEngine:
    """A fresh engine for one traced resolution: empty caches, server RTTs unknown, every
    hop reported to ``observer``.  ``resolver-trace`` and the web view build it here; the
    web view passes its own ``network`` (a transport it closes when the trace is done)."""
    return IterativeEngine(
        network if network is not None else UpstreamTransport(port=port),
        RecordCache(),
        hints,
        selection=ServerSelection(initial_timeout=timeout),
        limits=Limits(time_budget=budget),
        observer=observer,
        addresses=upstream_addresses(hints, ipv4_only, ipv6_only),
        qname_minimisation=qname_minimisation,
        judge=validator(anchors) if anchors else None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        qname = normalize(args.name)
    except BadName as error:
        parser.error(f"bad name {args.name!r}: {error}")
    try:
        qtype = RRType.from_text(args.type)
    except ValueError as error:
        parser.error(str(error))
    if not 0 < args.upstream_port < 65536:
        parser.error(f"--upstream-port must be 1..65535, got {args.upstream_port}")
    if args.timeout <= 0 or args.budget <= 0:
        parser.error("--timeout and --budget must be positive")
    try:
        hints = load_root_hints(args.root_hints)
        anchors = _trust_anchors(args)
    except (HintsError, SettingsError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    _configure_logging()

    printed: TextTrace | JsonTrace = JsonTrace(sys.stdout) if args.json else TextTrace(sys.stdout)
    recorded = RecordedTrace()
    trace = TeeTrace(printed, recorded) if args.svg else printed
    engine = trace_engine(
        trace, hints, port=args.upstream_port, anchors=anchors, timeout=args.timeout,
        budget=args.budget, ipv4_only=args.ipv4_only, ipv6_only=args.ipv6_only,
        qname_minimisation=args.qname_minimisation,
    )  # fmt: skip
    trace.header(Start(qname, RRType.text(qtype), str(args.root_hints), args.upstream_port))
    started = time.monotonic()
    try:
        result = asyncio.run(engine.resolve(qname, qtype))
        trace.summary(result, (time.monotonic() - started) * 1000)
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly
        sys.stdout = None  # no flush error at exit
        return EXIT_UNRESOLVED
    if args.svg:
        try:
            args.svg.write_text(draw(recorded.events))
        except OSError as error:
            print(
                f"{parser.prog}: error: cannot write {args.svg}: {error.strerror}", file=sys.stderr
            )
            return EXIT_USAGE
    return EXIT_RESOLVED if resolved(result) else EXIT_UNRESOLVED
