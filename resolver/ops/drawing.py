"""A traced resolution drawn as SVG: the walk from the root and the chain of trust.

The input is the list of events a trace records (:mod:`resolver.ops.traced`; ``resolver-trace
--json`` prints the same, one object a line): a start, the engine's hops, sub-lookups,
judgements and limits, and a summary.  :func:`read_walk` turns them into a tree (a
sub-lookup is a branch holding the hops it needed), :func:`trust_chain` gathers the
DNSSEC judgements into the chain of trust (per zone: the DS RRset at the parent and
the zone's DNSKEY RRset; per answer: the zone whose RRSIG covered it), and
:func:`draw` lays both out as one SVG picture, server-side, with no script: the web
view (:mod:`resolver.ops.webview`) puts it in its page and ``resolver-trace --svg``
writes it to a file.

Everything drawn comes from servers or from whoever typed the name, so every string
goes through :func:`escape` (names may hold ``<`` or ``&``: RFC 2181 section 11 lets
a label hold any octet).  Elements carry ``class`` and ``data-*`` attributes (zone,
server, state) so that a test, or a person's browser tools, can find what is drawn.
"""

from __future__ import annotations

import base64
import binascii
import html
from dataclasses import dataclass, field

from resolver.dnssec.keys import key_tag
from resolver.iterate.classify import Kind
from resolver.iterate.events import Hop, Judged, LimitHit, SubLookup, SubLookupDone, outcome_word
from resolver.iterate.plan import Purpose
from resolver.ops.traced import (
    Start,
    Summary,
    TraceEvent,
    outcome_text,
    short_record,
    why,
)
from resolver.wire import Rcode, RRType
from resolver.wire.dnssec_rdata import DNSKEY

HOP_WIDTH = 120  # characters of what came back drawn on a hop's line

# Layout, in pixels: a monospace font of FONT px is about CHAR px a character.
FONT = 12
CHAR = 7.3
ROW = 22
INDENT = 26
MARGIN = 16
MIN_WIDTH = 900

STATE_COLOURS = {"secure": "#1b7f3b", "insecure": "#8a6d00", "bogus": "#b3261e",
                 "unchecked": "#5f6368", "indeterminate": "#b3261e"}  # fmt: skip
OUTCOME_COLOURS = {"referral": "#1f5fae", "answer": "#1b7f3b", "cname": "#7b3fb0",
                   "dname": "#7b3fb0", "nxdomain": "#8a6d00", "nodata": "#8a6d00"}  # fmt: skip
FAILED = "#b3261e"  # lame, timeout, unreachable, malformed...


def escape(text: object) -> str:
    """Text for SVG or HTML, as text: ``<``, ``>``, ``&`` and both quotes escaped."""
    return html.escape(str(text), quote=True)


# -------------------------------------------------------------------- the walk as a tree


@dataclass
class HopRow:
    zone: str
    server: str
    address: str
    rtt_ms: float | None
    question: str
    outcome: str
    text: str
    tcp: bool


@dataclass
class Verdict:
    name: str
    qtype: str
    zone: str
    security: str
    reason: str


@dataclass
class Limit:
    text: str


@dataclass
class Branch:
    """A sub-lookup and what it needed; ``result`` is set when it ended."""

    qname: str
    qtype: str
    purpose: Purpose
    zone: str
    items: list[Item] = field(default_factory=list)
    rcode: str = ""
    found: list[str] = field(default_factory=list)
    ended: bool = False


Item = HopRow | Verdict | Limit | Branch


@dataclass
class Walk:
    qname: str
    qtype: str
    items: list[Item]
    summary: Summary | None


def _hop_text(hop: Hop) -> str:
    """What came back, for a drawing: key material counted, not spelled out."""
    if hop.outcome is Kind.ANSWER and hop.qtype in (RRType.DNSKEY, RRType.DS) and hop.records:
        return f"answer: {len(hop.records)} {RRType.text(hop.qtype)}"
    return outcome_text(hop)


def _hop(hop: Hop) -> HopRow:
    return HopRow(hop.zone, hop.server, hop.address, hop.rtt_ms,
                  f"{hop.qname} {RRType.text(hop.qtype)}", outcome_word(hop.outcome),
                  _hop_text(hop), hop.tcp)  # fmt: skip


def read_walk(events: list[TraceEvent]) -> Walk:
    """The events of one trace as a tree: sub-lookups hold what happened while they ran."""
    start = next((e for e in events if isinstance(e, Start)), None)
    summary = next((e for e in events if isinstance(e, Summary)), None)
    top: list[Item] = []
    open_branches: list[Branch] = []
    for event in events:
        items = open_branches[-1].items if open_branches else top
        if isinstance(event, Hop):
            items.append(_hop(event))
        elif isinstance(event, SubLookup):
            branch = Branch(event.qname, RRType.text(event.qtype), event.purpose, event.zone)
            items.append(branch)
            open_branches.append(branch)
        elif isinstance(event, SubLookupDone) and open_branches:
            branch = open_branches.pop()
            branch.rcode = Rcode.text(event.rcode)
            branch.found = list(event.addresses)
            branch.ended = True
        elif isinstance(event, Judged):
            items.append(Verdict(event.owner, RRType.text(event.qtype), event.zone,
                                 event.security.name.lower(), event.reason))  # fmt: skip
        elif isinstance(event, LimitHit):
            where = f" (a name server of {event.zone})" if event.zone is not None else ""
            items.append(Limit(f"limit: {event.limit.value} at {event.qname}{where}"))
    qname, qtype = (start.qname, start.qtype) if start is not None else ("", "")
    return Walk(qname, qtype, top, summary)


# -------------------------------------------------------------------- the chain of trust


@dataclass
class TrustZone:
    """One zone of the chain: its DS RRset at the parent and its DNSKEY RRset."""

    zone: str
    ds: Verdict | None = None
    ds_records: list[str] | None = None  # None: not looked up in this trace
    dnskey: Verdict | None = None
    keys: list[str] = field(default_factory=list)  # "tag KSK|ZSK alg N"

    @property
    def state(self) -> str:
        states = [v.security for v in (self.ds, self.dnskey) if v is not None]
        if "bogus" in states:
            return "bogus"
        if self.ds is not None and self.ds_records == [] and self.dnskey is None:
            return "insecure"  # no DS at the parent, proven: the zone is unsigned
        if "insecure" in states:
            return "insecure"
        return "secure" if states else "unchecked"


def _labels(zone: str) -> list[str]:
    return [label for label in zone.lower().rstrip(".").split(".") if label][::-1]


def _within(zone: str, parent: str) -> bool:
    inner, outer = _labels(zone), _labels(parent)
    return inner[: len(outer)] == outer and len(inner) > len(outer)


def describe_key(rdata: str) -> str:
    """``257 3 13 BASE64`` as ``12345 KSK alg 13`` (the key tag of RFC 4034 appendix B)."""
    try:
        flags, protocol, algorithm, key = rdata.split(None, 3)
        dnskey = DNSKEY(int(flags), int(protocol), int(algorithm),
                        base64.b64decode("".join(key.split()), validate=True))  # fmt: skip
    except (ValueError, binascii.Error):
        return short_record(rdata)
    kind = "KSK" if dnskey.flags & 1 else "ZSK"
    return f"{key_tag(dnskey)} {kind} alg {dnskey.algorithm}"


def _branches(items: list[Item]) -> list[Branch]:
    out: list[Branch] = []
    for item in items:
        if isinstance(item, Branch):
            out.append(item)
            out.extend(_branches(item.items))
    return out


def _verdicts(items: list[Item]) -> list[Verdict]:
    out: list[Verdict] = []
    for item in items:
        if isinstance(item, Verdict):
            out.append(item)
        elif isinstance(item, Branch):
            out.extend(_verdicts(item.items))
    return out


def trust_chain(walk: Walk) -> tuple[list[TrustZone], list[Verdict]]:
    """The zones of the chain of trust from the root down (a parent before its children),
    and the judgements of the data itself (whose RRSIG, by which zone, covered it)."""
    zones: dict[str, TrustZone] = {}
    covered: list[Verdict] = []
    for verdict in _verdicts(walk.items):
        # A zone's DS RRset is judged at its parent's cut (RFC 4035 section 5: the parent
        # signs it), its DNSKEY RRset at the zone itself: both belong to the zone they name.
        same = verdict.name.lower() == verdict.zone.lower()
        if verdict.qtype == "DS" or (same and verdict.qtype == "DNSKEY"):
            entry = zones.setdefault(verdict.name.lower(), TrustZone(verdict.name))
            if verdict.qtype == "DS":
                entry.ds = verdict
            else:
                entry.dnskey = verdict
        else:
            covered.append(verdict)
    for branch in _branches(walk.items):
        known = zones.get(branch.zone.lower())
        if known is None or not branch.ended:
            continue
        if branch.purpose is Purpose.DS:
            known.ds_records = list(branch.found)
        elif branch.purpose is Purpose.KEYS:
            known.keys = [describe_key(rdata) for rdata in branch.found]
    return sorted(zones.values(), key=lambda z: _labels(z.zone)), covered


def _nesting(zones: list[TrustZone]) -> list[int]:
    """How many zones of the list each one is below (its depth in the drawn tree)."""
    return [sum(_within(z.zone, other.zone) for other in zones) for z in zones]


# -------------------------------------------------------------------- SVG


class _Canvas:
    """Rows of SVG elements, one below the other; the width follows the longest row."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.y = MARGIN
        self.width = MIN_WIDTH

    def row(self) -> float:
        """The baseline of a new row."""
        self.y += ROW
        return self.y

    def text(self, x: float, y: float, spans: list[tuple[str, str, str]], cls: str = "") -> None:
        """One line of text made of (class, colour, text) spans."""
        inner = "".join(
            f'<tspan class="{escape(c)}"{f" fill={chr(34)}{colour}{chr(34)}" if colour else ""}>'
            f"{escape(t)}</tspan>"
            for c, colour, t in spans
        )
        length = sum(len(t) for _c, _f, t in spans)
        self.width = max(self.width, int(x + length * CHAR + MARGIN))
        cls_attr = f' class="{escape(cls)}"' if cls else ""
        self.parts.append(f'<text x="{x:.0f}" y="{y:.0f}"{cls_attr}>{inner}</text>')

    def badge(self, x: float, y: float, text: str, colour: str) -> float:
        """Text in a coloured box; returns where the next thing may start."""
        width = len(text) * CHAR + 10
        self.parts.append(
            f'<rect x="{x:.0f}" y="{y - 14:.0f}" width="{width:.0f}" height="18" rx="4" '
            f'fill="{colour}"/><text x="{x + 5:.0f}" y="{y:.0f}" fill="#fff">{escape(text)}</text>'
        )
        self.width = max(self.width, int(x + width + MARGIN))
        return x + width + 8

    def open(self, cls: str, **data: object) -> None:
        attrs = "".join(f' data-{k.replace("_", "-")}="{escape(v)}"' for k, v in data.items())
        self.parts.append(f'<g class="{escape(cls)}"{attrs}>')

    def close(self) -> None:
        self.parts.append("</g>")

    def line(self, x1: float, y1: float, x2: float, y2: float, colour: str = "#9aa0a6") -> None:
        self.parts.append(f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" '
                          f'stroke="{colour}" stroke-width="1.5"/>')  # fmt: skip


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _rtt(rtt_ms: float | None) -> str:
    return "-" if rtt_ms is None else f"{rtt_ms:.1f} ms"


def _draw_hop(canvas: _Canvas, hop: HopRow, depth: int) -> None:
    x = MARGIN + depth * INDENT
    y = canvas.row()
    colour = OUTCOME_COLOURS.get(hop.outcome, FAILED)
    canvas.open(f"hop outcome-{hop.outcome}", zone=hop.zone, server=hop.server,
                address=hop.address, rtt_ms="" if hop.rtt_ms is None else hop.rtt_ms,
                outcome=hop.outcome)  # fmt: skip
    canvas.parts.append(f'<circle cx="{x + 4:.0f}" cy="{y - 4:.0f}" r="4" fill="{colour}"/>')
    after = canvas.badge(x + 14, y, hop.zone, "#3c4043")
    jump = "\u21aa " if hop.outcome in ("cname", "dname") else ""
    canvas.text(after, y, [
        ("server", "#202124", f"{hop.server} {hop.address}"),
        ("rtt", "#5f6368", f"  {_rtt(hop.rtt_ms)}{' tcp' if hop.tcp else ''}  "),
        ("question", "#202124", f"{hop.question} "),
        ("result", colour, f"\u2192 {jump}{_clip(hop.text, HOP_WIDTH)}"),
    ])  # fmt: skip
    canvas.close()


def _draw_verdict(canvas: _Canvas, verdict: Verdict, depth: int) -> None:
    x = MARGIN + depth * INDENT + 14
    y = canvas.row()
    canvas.open(f"verdict state-{verdict.security}", name=verdict.name, qtype=verdict.qtype,
                zone=verdict.zone, state=verdict.security, reason=verdict.reason)  # fmt: skip
    colour = STATE_COLOURS.get(verdict.security, FAILED)
    after = canvas.badge(x, y, f"DNSSEC {verdict.security}", colour)
    why_text = f": {verdict.reason}" if verdict.reason else ""
    canvas.text(after, y, [("judged", "#202124", f"{verdict.name} {verdict.qtype} "
                            f"(signer {verdict.zone}){why_text}")])  # fmt: skip
    canvas.close()


def _draw_branch(canvas: _Canvas, branch: Branch, depth: int) -> None:
    x = MARGIN + depth * INDENT
    purpose = branch.purpose.value
    canvas.open(f"sublookup purpose-{purpose}", qname=branch.qname, qtype=branch.qtype,
                purpose=purpose, zone=branch.zone)  # fmt: skip
    top = canvas.row()
    reason = why(branch.purpose, branch.zone)
    canvas.text(x, top, [("branch", "#1f5fae", f"\u2937 sub-lookup {branch.qname} {branch.qtype}"),
                         ("why", "#5f6368", f"  ({reason})")])  # fmt: skip
    _draw_items(canvas, branch.items, depth + 1)
    bottom = canvas.row()
    if branch.ended:
        if branch.purpose in (Purpose.KEYS, Purpose.DS):
            found = f"{len(branch.found)} {branch.qtype}" if branch.found else "none"
        else:
            found = ", ".join(branch.found) or "no address"
        canvas.text(x + 14, bottom, [("done", "#5f6368", f"\u21a9 {branch.rcode}: {found}")])
    else:
        canvas.text(x + 14, bottom, [("done", FAILED, "\u21a9 did not end")])
    canvas.line(x + 6, top + 5, x + 6, bottom - 4)
    canvas.close()


def _draw_items(canvas: _Canvas, items: list[Item], depth: int) -> None:
    for item in items:
        if isinstance(item, HopRow):
            _draw_hop(canvas, item, depth)
        elif isinstance(item, Branch):
            _draw_branch(canvas, item, depth)
        elif isinstance(item, Verdict):
            _draw_verdict(canvas, item, depth)
        else:
            y = canvas.row()
            canvas.open("limit")
            canvas.text(MARGIN + depth * INDENT, y, [("limit", FAILED, f"!! {item.text}")])
            canvas.close()


def _draw_summary(canvas: _Canvas, walk: Walk) -> None:
    summary = walk.summary
    y = canvas.row()
    security = summary.security if summary is not None else "unchecked"
    rcode = summary.rcode if summary is not None else "no answer"
    canvas.open("question", qname=walk.qname, qtype=walk.qtype, rcode=rcode, state=security)
    canvas.parts.append(f'<text x="{MARGIN}" y="{y:.0f}" font-size="16" font-weight="bold">'
                        f"{escape(walk.qname)} {escape(walk.qtype)}</text>")  # fmt: skip
    y = canvas.row()
    after = canvas.badge(MARGIN, y, rcode, FAILED if rcode == "SERVFAIL" else "#3c4043")
    if summary is not None and security != "unchecked":
        after = canvas.badge(after, y, f"DNSSEC {security}", STATE_COLOURS.get(security, FAILED))
    cost = "the trace ended without a summary"
    if summary is not None:
        elapsed, upstream = summary.elapsed_ms, summary.upstream_queries
        cost = (f"{'?' if elapsed is None else elapsed} ms, "
                f"{'?' if upstream is None else upstream} upstream queries")  # fmt: skip
    reason = f"  {summary.reason}" if summary is not None and summary.reason else ""
    canvas.text(after, y, [("cost", "#5f6368", cost), ("reason", FAILED, reason)])
    records = (summary.answer or summary.authority) if summary is not None else []
    for record in records:
        canvas.text(MARGIN + 14, canvas.row(), [("record", "#202124", short_record(record))])
    canvas.close()


def _draw_chain(canvas: _Canvas, walk: Walk) -> None:
    zones, covered = trust_chain(walk)
    if not zones and not covered:
        return
    canvas.y += ROW // 2
    y = canvas.row()
    canvas.parts.append(f'<text x="{MARGIN}" y="{y:.0f}" font-weight="bold">Chain of trust</text>')
    previous: dict[int, float] = {}
    for zone, depth in zip(zones, _nesting(zones), strict=True):
        x = MARGIN + depth * INDENT
        y = canvas.row()
        if depth and depth - 1 in previous:
            canvas.line(x - INDENT + 8, previous[depth - 1] + 5, x - INDENT + 8, y - 5)
            canvas.line(x - INDENT + 8, y - 5, x - 2, y - 5)
        previous[depth] = y
        canvas.open(f"trust-zone state-{zone.state}", zone=zone.zone, state=zone.state)
        after = canvas.badge(x, y, zone.zone, STATE_COLOURS.get(zone.state, FAILED))
        spans: list[tuple[str, str, str]] = []
        if zone.ds is not None:
            records = [short_record(record) for record in zone.ds_records or []]
            held = "DS " + "; ".join(records) if records else "DS"
            if zone.ds_records == []:
                held = "no DS (proven absent)"
            spans.append(("ds", STATE_COLOURS.get(zone.ds.security, FAILED),
                          f"{held} at the parent: {zone.ds.security}"
                          f"{f' ({zone.ds.reason})' if zone.ds.reason else ''}   "))  # fmt: skip
        elif not depth:
            spans.append(("ds", "#5f6368", "trust anchor   "))
        if zone.dnskey is not None:
            keys = ", ".join(zone.keys) or "keys"
            reason = f" ({zone.dnskey.reason})" if zone.dnskey.reason else ""
            spans.append(("dnskey", STATE_COLOURS.get(zone.dnskey.security, FAILED),
                          f"DNSKEY {keys}: {zone.dnskey.security}{reason}"))  # fmt: skip
        canvas.text(after, y, spans)
        canvas.close()
    for verdict in covered:
        y = canvas.row()
        canvas.open(f"rrsig state-{verdict.security}", name=verdict.name, qtype=verdict.qtype,
                    zone=verdict.zone, state=verdict.security)  # fmt: skip
        colour = STATE_COLOURS.get(verdict.security, FAILED)
        after = canvas.badge(MARGIN, y, f"{verdict.name} {verdict.qtype}", colour)
        reason = f" ({verdict.reason})" if verdict.reason else ""
        canvas.text(after, y, [("covered", colour, f"RRSIG by {verdict.zone}: "
                                f"{verdict.security}{reason}")])  # fmt: skip
        canvas.close()


def draw(events: list[TraceEvent]) -> str:
    """The SVG picture of one traced resolution (a standalone document)."""
    walk = read_walk(events)
    canvas = _Canvas()
    _draw_summary(canvas, walk)
    canvas.y += ROW // 2
    _draw_items(canvas, walk.items, 0)
    _draw_chain(canvas, walk)
    height = canvas.y + MARGIN
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="resolution" width="{canvas.width}" '
        f'height="{height:.0f}" viewBox="0 0 {canvas.width} {height:.0f}" '
        f'font-family="DejaVu Sans Mono, monospace" font-size="{FONT}">'
        f'<rect width="100%" height="100%" fill="#fff"/>' + "".join(canvas.parts) + "</svg>\n"
    )
