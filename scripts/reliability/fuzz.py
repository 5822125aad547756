"""Coverage-guided fuzzing (atheris, libFuzzer) of what reads bytes from strangers.

    python -m scripts.reliability.fuzz TARGET [libFuzzer flags...]
    python -m scripts.reliability.fuzz wire -runs=2000000 -seed=1
    python -m scripts.reliability.fuzz listener -max_total_time=600 -seed=1 CORPUS_DIR
    coverage run --include='resolver/*' -m scripts.reliability.fuzz --replay wire CORPUS_DIR

Targets (each checks more than "does not raise"):

``wire``      :func:`resolver.wire.parse_message`: any input either parses or raises
              WireError (nothing else); what parses is written back by
              :func:`write_message` and parses again to the same sections.
``key``       :func:`resolver.wire.raw.question_key`, the fast path's key: never
              raises; when it gives a key and the full parser accepts the packet, the key
              is that parse's question (name case folded, type, class, EDNS or not), so a
              cached answer can never be served for another question.
``listener``  :class:`resolver.serve.listener.ResolverService`'s ``take`` and ``finish``
              with a fake engine (answers, NXDOMAIN, SERVFAIL, a large TXT that must be
              truncated over UDP), over UDP and TCP, rate limit on: every packet is
              answered or dropped without an exception; an answer has the query's ID and
              QR=1, parses, and fits the transport (UDP: 512 without EDNS, at most 1232);
              the rate limit's truncated answer, when it gives one, has the ID, QR and TC,
              parses, and is no longer than the query.

Seeds (valid queries and responses built with dnspython) go into the corpus
directory given, or a temporary one; libFuzzer adds what finds new coverage.  A
crash writes the input to ``crash-*`` (``-artifact_prefix=DIR/``) and exits 1; an
input that runs longer than ``-timeout`` seconds is a hang.  The last line libFuzzer
prints (``#N DONE cov: C ft: F``) gives the inputs tried and the edges and features
covered; :func:`summary` reads it.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris
import dns.edns
import dns.message
import dns.rrset

with atheris.instrument_imports(include=["resolver"]):
    from resolver.cache.answers import AnswerCache
    from resolver.cache.records import RecordCache
    from resolver.iterate.answer import Answer, FailureKind, servfail
    from resolver.iterate.engine import IterativeEngine
    from resolver.iterate.hints import parse_root_hints
    from resolver.iterate.pipeline import Transaction
    from resolver.iterate.request import Transport
    from resolver.net.contract import Query, Reply
    from resolver.serve.access import AccessList
    from resolver.serve.listener import Pending, ResolverService
    from resolver.wire import (
        CLASS_IN,
        HEADER_SIZE,
        ResourceRecord,
        RRType,
        WireError,
        parse_message,
        write_message,
    )
    from resolver.wire.names import name_to_wire
    from resolver.wire.raw import question_key, truncated
    from resolver.wire.rdata import SOA, TXT, A

TARGETS = ("wire", "key", "listener")
DONE = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+)")


# -------------------------------------------------------------------- wire


def fuzz_wire(data: bytes) -> None:
    try:
        message = parse_message(data)
    except WireError:
        return
    try:
        wire = write_message(message)
    except WireError as error:
        if "longer than 65535" in str(error):
            return  # compression of the input beat ours: too big to write, said so
        raise
    again = parse_message(wire)
    assert again.header == message.header, (again.header, message.header)
    for section in ("question", "answer", "authority", "additional"):
        assert getattr(again, section) == getattr(message, section), section
    assert again.edns == message.edns


# -------------------------------------------------------------------- key


def fuzz_key(data: bytes) -> None:
    key = question_key(data)
    if key is None:
        return
    assert HEADER_SIZE < key.end <= len(data)
    try:
        message = parse_message(data)
    except WireError:
        return  # nothing is ever stored under a key the parser rejects
    assert len(message.question) == 1
    question = message.question[0]
    wire = name_to_wire(question.name).lower()
    expected = wire + question.rrtype.to_bytes(2, "big") + question.rrclass.to_bytes(2, "big")
    assert key.key[:-1] == expected, (key.key, expected)
    # The last byte says what else shapes the answer: EDNS (1), DO (2), AD (4), CD (8).
    edns = message.edns
    flags = (1 if edns is not None else 0) | (2 if edns is not None and edns.dnssec_ok else 0)
    flags |= (4 if message.header.ad else 0) | (8 if message.header.cd else 0)
    assert key.key[-1] == flags, (key.key, flags)


# -------------------------------------------------------------------- listener


class NoNetwork:
    async def exchange(self, query: Query) -> Reply:
        raise AssertionError("the fuzzed service walked")


class FakeEngine(IterativeEngine):
    """The engine's pipeline with a walk that answers at once, by the first label: nx*
    NXDOMAIN, fail* SERVFAIL, big* a TXT too large for UDP, anything else one A record;
    nothing in the cache for RD=0."""

    def __init__(self) -> None:
        hints = parse_root_hints(". 3600 NS a.root.\na.root. 3600 A 127.0.0.1\n")
        super().__init__(NoNetwork(), RecordCache(), hints)

    def from_cache(self, qname: str, qtype: int, stale: bool = False) -> Answer | None:
        return None

    async def _walk(self, tx: Transaction) -> Answer:
        name = tx.name
        label = name.lower()
        if label.startswith("fail"):
            return servfail(FailureKind.NO_REACHABLE_AUTHORITY, "fuzz")
        if label.startswith("nx"):
            soa = SOA("ns.fuzz.", "host.fuzz.", 1, 2, 3, 4, 60)
            return Answer(3, [], [ResourceRecord("fuzz.", RRType.SOA, CLASS_IN, 60, soa)], 1)
        if label.startswith("big"):
            txt = TXT(tuple(bytes([65 + i % 26]) * 255 for i in range(8)))
            return Answer(0, [ResourceRecord(name, RRType.TXT, CLASS_IN, 60, txt)], [], 1)
        return Answer(0, [ResourceRecord(name, RRType.A, CLASS_IN, 60, A("192.0.2.1"))], [], 1)


def listener_target() -> Callable[[bytes], None]:
    service = ResolverService(
        FakeEngine(),
        AnswerCache(1000),
        AccessList(["192.0.2.0/24"]),
        clock=lambda: 1000.0,
    )
    service.ratelimit.configure(1_000_000, "truncate")  # on: its path is fuzzed too
    loop = asyncio.new_event_loop()
    clients = ("127.0.0.1", "192.0.2.7", "198.51.100.7", "::1")

    def fuzz_listener(data: bytes) -> None:
        for i, transport in enumerate((Transport.UDP, Transport.TCP)):
            client = clients[(len(data) + i) % len(clients)]
            outcome = service.take(data, client, transport)
            if isinstance(outcome, Pending):
                response = loop.run_until_complete(service.finish(outcome))
            else:
                response = outcome
            if response is None:
                assert len(data) < HEADER_SIZE or data[2] & 0x80 or transport is Transport.UDP
                continue
            assert response[:2] == data[:2] and response[2] & 0x80
            parsed = parse_message(response)
            if transport is Transport.UDP:
                assert len(response) <= 1232
                if parsed.edns is None:
                    assert len(response) <= 512
        assert not service.in_flight
        cut = truncated(data)  # what a rate-limited query gets (limits are per second here)
        if cut is not None:
            assert cut[:2] == data[:2] and cut[2] & 0x82 == 0x82 and len(cut) <= len(data)
            assert parse_message(cut).header.tc == 1

    return fuzz_listener


# -------------------------------------------------------------------- seeds and running


def seeds() -> list[bytes]:
    """Valid queries and responses: what the fuzzer starts from."""
    out = []
    for name, rdtype, edns in [("www.example.com.", "A", False), ("WwW.ExAmPlE.", "AAAA", 0),
                               ("nx.example.", "MX", 0), ("big.example.", "TXT", 0),
                               ("fail.example.", "NS", False), (".", "DNSKEY", 0),
                               ("a.b.c.d.e.f.", "TYPE65", 0)]:  # fmt: skip
        query = dns.message.make_query(name, rdtype, use_edns=edns)
        out.append(query.to_wire())
    cookie = dns.message.make_query("example.", "A", use_edns=0,
                                    options=[dns.edns.GenericOption(10, b"12345678")])  # fmt: skip
    out.append(cookie.to_wire())
    response = dns.message.make_response(dns.message.make_query("www.example.com.", "A"))
    response.answer.append(dns.rrset.from_text("www.example.com.", 300, "IN", "CNAME", "a.ex.com."))
    response.answer.append(dns.rrset.from_text("a.ex.com.", 300, "IN", "A", "192.0.2.1"))
    response.authority.append(dns.rrset.from_text("ex.com.", 300, "IN", "NS", "ns1.ex.com."))
    response.additional.append(dns.rrset.from_text("ns1.ex.com.", 300, "IN", "A", "192.0.2.53"))
    response.additional.append(dns.rrset.from_text("ns1.ex.com.", 30, "IN", "AAAA", "2001:db8::5"))
    out.append(response.to_wire())
    soa = dns.message.make_response(dns.message.make_query("nx.example.", "A", use_edns=0))
    soa.authority.append(dns.rrset.from_text(
        "example.", 60, "IN", "SOA", "ns.example. host.example. 1 2 3 4 60"))  # fmt: skip
    soa.answer.append(dns.rrset.from_text("example.", 60, "IN", "TXT", '"a" "bc"'))
    soa.answer.append(dns.rrset.from_text("example.", 60, "IN", "MX", "10 mail.example."))
    soa.answer.append(dns.rrset.from_text("_s._tcp.example.", 60, "IN", "SRV", "1 2 53 t.example."))
    soa.answer.append(dns.rrset.from_text("example.", 60, "IN", "DS", "1 8 2 " + "ab" * 32))
    out.append(soa.to_wire())
    return out


def target(name: str) -> Callable[[bytes], None]:
    if name == "wire":
        return fuzz_wire
    if name == "key":
        return fuzz_key
    return listener_target()


def summary(output: str) -> tuple[int, int, int] | None:
    """(inputs tried, edges covered, features) from libFuzzer's last DONE line."""
    found = DONE.findall(output)
    if not found:
        return None
    runs, cov, ft = found[-1]
    return int(runs), int(cov), int(ft)


def replay(name: str, directory: Path) -> int:
    """Run every input of a corpus through a target once (for line coverage with
    ``coverage run -m scripts.reliability.fuzz --replay TARGET DIR``); how many ran."""
    check = target(name)
    files = sorted(p for p in directory.iterdir() if p.is_file())
    for path in files:
        check(path.read_bytes())
    return len(files)


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[0] == "--replay":
        print(f"{replay(argv[1], Path(argv[2]))} inputs replayed")
        return
    if not argv or argv[0] not in TARGETS:
        sys.exit(f"usage: python -m scripts.reliability.fuzz {{{','.join(TARGETS)}}} "
                 "[libFuzzer flags] [CORPUS_DIR]")  # fmt: skip
    name, flags = argv[0], argv[1:]
    corpus = [f for f in flags if not f.startswith("-")]
    if not corpus:
        corpus = [tempfile.mkdtemp(prefix=f"fuzz-{name}-")]
        flags.append(corpus[0])
    directory = Path(corpus[0])
    directory.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds()):
        (directory / f"seed-{i}").write_bytes(seed)
    atheris.Setup([sys.argv[0], *flags], target(name))
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv[1:])
