"""Zone transfers (resolver.net.xfr) and the policy sources that follow a primary
(resolver.ops.policy_feeds), against a scripted primary on loopback: complete AXFR and
IXFR, and the hostile ones (cut half way, a message cut short, a wrong ID, out-of-zone
data, a primary gone silent, too many records), each one clear error, the policy in
force kept.  The same against real NSD and Knot is tests/interop/test_policy_unbound.py."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Iterator
from typing import Any

import dns.message
import dns.rcode
import dns.rrset
import pytest
from structlog.testing import capture_logs

from resolver.lab.unbound import free_port
from resolver.net.xfr import Primary, XfrError, XfrKind, newer, query_soa, transfer
from resolver.ops.policy_config import PolicySource
from resolver.ops.policy_feeds import PolicyFeeds
from resolver.policy import Policy, ZoneReader
from resolver.policy.index import name_wire
from resolver.serve.policy_step import PolicyStep
from resolver.serve.stats import ServiceStats
from resolver.wire import Header, Message, Opcode, Question, RRType, write_message

ZONE = "rpz.example."


def soa(serial: int) -> dns.rrset.RRset:
    data = f"localhost. hostmaster.localhost. {serial} 2 2 3600 30"
    return dns.rrset.from_text(ZONE, 60, "IN", "SOA", data)


def rule(owner: str, target: str = ".") -> dns.rrset.RRset:
    return dns.rrset.from_text(f"{owner}.{ZONE}", 60, "IN", "CNAME", target)


Script = Callable[[dns.message.Message], list[Any]]  # what to send: messages, bytes, pauses


def answer(query: dns.message.Message, *rrsets: dns.rrset.RRset, question: bool = True,
           rcode: int = dns.rcode.NOERROR, msg_id: int | None = None) -> bytes:  # fmt: skip
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    if not question:
        response.question = []
    response.answer = list(rrsets)
    if msg_id is not None:
        response.id = msg_id
    return response.to_wire()


def framed(wire: bytes) -> bytes:
    return struct.pack("!H", len(wire)) + wire


class FakePrimary:
    """A TCP server on loopback answering each query with what ``script`` says: bytes are
    sent framed, a float is a pause, "cut" sends half a message and closes."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.port = free_port()
        self.queries: list[dns.message.Message] = []

    async def __aenter__(self) -> FakePrimary:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            query = dns.message.from_wire(await reader.readexactly(length))
            self.queries.append(query)
            for step in self.script(query):
                if isinstance(step, float):
                    await asyncio.sleep(step)
                elif step == "cut":
                    writer.write(framed(answer(query, soa(9)))[:20])
                    break
                else:
                    writer.write(framed(step))
                await writer.drain()
        finally:
            writer.close()

    @property
    def primary(self) -> Primary:
        return Primary("127.0.0.1", self.port)


def full_zone(serial: int, names: list[str]) -> Script:
    """An AXFR (or IXFR answered with the whole zone): SOA, rules one per message, SOA."""

    def script(query: dns.message.Message) -> list[Any]:
        if query.question[0].rdtype == dns.rdatatype.SOA:
            return [answer(query, soa(serial))]
        first = answer(query, soa(serial))
        return [first, *(answer(query, rule(n), question=False) for n in names),
                answer(query, soa(serial), question=False)]  # fmt: skip

    return script


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def fetch(script: Script, serial: int | None = None, **kwargs: Any) -> tuple[Any, ZoneReader]:
    reader = ZoneReader(ZONE, 1000)
    async with FakePrimary(script) as fake:
        result = await transfer(fake.primary, ZONE, reader.add, serial=serial, **kwargs)
    return result, reader


# -- complete transfers ---------------------------------------------------------------------


def test_axfr_in_several_messages() -> None:
    result, reader = run(fetch(full_zone(3, ["a.example", "b.example", "c.example"])))
    zone = reader.finish()
    assert result.kind is XfrKind.FULL and result.messages == 5 and result.records == 5
    assert zone.serial == 3 and len(zone) == 3


def test_ixfr_of_two_versions() -> None:
    def script(query: dns.message.Message) -> list[Any]:
        assert query.authority[0][0].serial == 5  # our serial, sent in authority (RFC 1995)
        return [answer(query, soa(7), soa(5), rule("gone.example"), soa(6), rule("new.example")),
                answer(query, soa(6), soa(7), rule("last.example", "*."), soa(7),
                       question=False)]  # fmt: skip

    result, _ = run(fetch(script, serial=5))
    assert result.kind is XfrKind.INCREMENTAL and result.soa.rdata.serial == 7
    (deleted1, added1), (deleted2, added2) = result.steps
    assert [r.name for r in deleted1] == ["gone.example.rpz.example."]
    assert [r.name for r in added1] == ["new.example.rpz.example."]
    assert deleted2 == [] and [r.name for r in added2] == ["last.example.rpz.example."]


def test_ixfr_up_to_date_and_ixfr_as_whole_zone() -> None:
    result, _ = run(fetch(lambda q: [answer(q, soa(5))], serial=5))
    assert result.kind is XfrKind.UP_TO_DATE
    result, reader = run(fetch(full_zone(6, ["a.example"]), serial=5))
    assert result.kind is XfrKind.FULL and len(reader.finish()) == 1


def test_serial_arithmetic_wraps() -> None:
    assert newer(1, 0) and newer(0, 2**32 - 1) and not newer(5, 5) and not newer(2**31 + 5, 5)


def test_soa_query() -> None:
    async def ask() -> int:
        async with FakePrimary(full_zone(42, [])) as fake:
            return int((await query_soa(fake.primary, ZONE)).rdata.serial)

    assert run(ask()) == 42


# -- hostile transfers -----------------------------------------------------------------------


HOSTILE: dict[str, tuple[Script, str]] = {
    "closed before the closing SOA": (
        lambda q: [answer(q, soa(3), rule("a.example")),
                   answer(q, rule("b.example"), question=False)],
        "connection closed after 3 records, before the closing SOA"),
    "a message cut short": (
        lambda q: [answer(q, soa(3), rule("a.example")), "cut"],
        "connection closed in the middle of message 2"),
    "a wrong ID": (lambda q: [answer(q, soa(3), msg_id=(q.id + 1) % 65536)],
                   "not the answer to our query"),
    "refused": (lambda q: [answer(q, rcode=dns.rcode.REFUSED)], "the primary answered REFUSED"),
    "out-of-zone data": (
        lambda q: [answer(q, soa(3), dns.rrset.from_text("www.victim.example.", 60, "IN", "A",
                                                         "192.0.2.1"))],
        "outside the zone"),
    "no question in the first message": (lambda q: [answer(q, soa(3), question=False)],
                                         "does not echo the question"),
    "the closing SOA of another version": (
        lambda q: [answer(q, soa(3), rule("a.example"), soa(4))], "the closing SOA has serial 4"),
    "records after the end": (
        lambda q: [answer(q, soa(3), soa(3), rule("a.example"))], "records after the closing SOA"),
    "a silent primary": (lambda q: [answer(q, soa(3)), 2.0], "no message for 0.3 seconds"),
    "no SOA first": (lambda q: [answer(q, rule("a.example"))], "does not start with the SOA"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_transfer_is_one_clear_error(case: str) -> None:
    script, why = HOSTILE[case]
    with pytest.raises(XfrError, match=why):
        run(fetch(script, idle=0.3))


def test_more_records_than_the_limit() -> None:
    with pytest.raises(XfrError, match="more than 3 records"):
        run(fetch(full_zone(3, [f"n{i}.example" for i in range(10)]), max_records=3))


def test_nobody_listening() -> None:
    async def nobody() -> None:
        await transfer(Primary("127.0.0.1", free_port()), ZONE, lambda rr: None)

    with pytest.raises(XfrError, match="cannot connect"):
        run(nobody())


# -- a source following a primary -------------------------------------------------------------


@pytest.fixture
def feeds() -> Iterator[PolicyFeeds]:
    step = PolicyStep(Policy(), ServiceStats(), None, None)  # type: ignore[arg-type]
    flushed: list[int] = []
    feeds = PolicyFeeds(step, lambda: flushed.append(1) or 0)  # type: ignore[func-returns-value]
    yield feeds
    feeds.stop()


def blocked(feeds: PolicyFeeds, name: str) -> bool:
    return feeds.step.policy.early(name_wire(name), "192.0.2.1")


def test_a_transfer_cut_half_way_keeps_the_policy_in_force(feeds: PolicyFeeds) -> None:
    versions: list[Script] = [full_zone(1, ["a.example", "b.example"])]
    fake = FakePrimary(lambda q: versions[0](q))
    source = PolicySource("rpz", ZONE, primary=f"127.0.0.1@{fake.port}")
    feeds.configure((source,), starting=True)  # outside an event loop: no refresh task
    feed = feeds.feeds[ZONE]

    async def scenario() -> list[dict[str, Any]]:
        async with fake:
            assert await feeds.refresh(feed) and blocked(feeds, "a.example.")
            # Serial 2 announced, and its transfer cut after the first records.
            versions[0] = lambda q: (
                [answer(q, soa(2))] if q.question[0].rdtype == dns.rdatatype.SOA
                else [answer(q, soa(2), rule("c.example")),
                      answer(q, rule("d.example"), question=False)]
            )  # fmt: skip
            with capture_logs() as logs:
                assert not await feeds.refresh(feed)
            assert feed.slot.zone.serial == 1 and blocked(feeds, "b.example.")
            assert not blocked(feeds, "c.example.")
            return logs

    logs = run(scenario())
    failed = [e for e in logs if e["event"] == "policy_zone_not_loaded"]
    assert len(failed) == 1 and failed[0]["kept_serial"] == 1
    assert "connection closed after 3 records, before the closing SOA" in failed[0]["error"]
    assert feeds.step.stats.policy_loads == {(ZONE, "ok"): 1, (ZONE, "error"): 1}


def test_ixfr_changes_then_a_bad_ixfr_falls_back_to_axfr(feeds: PolicyFeeds) -> None:
    versions: list[Script] = [full_zone(1, ["a.example"])]
    fake = FakePrimary(lambda q: versions[0](q))
    source = PolicySource("rpz", ZONE, primary=f"127.0.0.1@{fake.port}")
    feeds.configure((source,), starting=True)
    feed = feeds.feeds[ZONE]

    async def scenario() -> None:
        async with fake:
            assert await feeds.refresh(feed)

            def ixfr(q: dns.message.Message) -> list[Any]:
                if q.question[0].rdtype == dns.rdatatype.SOA:
                    return [answer(q, soa(2))]
                return [answer(q, soa(2), soa(1), rule("a.example"), soa(2), rule("b.example"),
                               rule("*.a-much-longer-name.example"), soa(2))]  # fmt: skip

            versions[0] = ixfr
            with capture_logs() as logs:
                assert await feeds.refresh(feed)
            assert [e["how"] for e in logs if e["event"] == "policy_zone_loaded"] == ["ixfr"]
            assert not blocked(feeds, "a.example.") and blocked(feeds, "b.example.")
            assert blocked(feeds, "x.a-much-longer-name.example.")  # a wildcard of a new length

            # An IXFR deleting what we do not hold: our copy is not the primary's; AXFR.
            def bad_ixfr(q: dns.message.Message) -> list[Any]:
                if q.question[0].rdtype == dns.rdatatype.IXFR:
                    return [answer(q, soa(3), soa(2), rule("never.example"), soa(3), soa(3))]
                return full_zone(3, ["z.example"])(q)

            versions[0] = bad_ixfr
            with capture_logs() as logs:
                assert await feeds.refresh(feed)
            events = [e["event"] for e in logs]
            assert events == ["policy_ixfr_failed", "policy_zone_loaded"]
            assert feed.slot.zone.serial == 3 and blocked(feeds, "z.example.")

    run(scenario())


def notify(name: str, rrtype: int = RRType.SOA) -> Message:
    return Message(Header(id=7, opcode=Opcode.NOTIFY), [Question(name, rrtype)], [], [], [])


def test_notify_only_from_the_zone_primary(feeds: PolicyFeeds) -> None:
    source = PolicySource("rpz", ZONE, primary="127.0.0.5@5300")
    feeds.configure((source,), starting=True)
    feed = feeds.feeds[ZONE]
    with capture_logs() as logs:
        assert feeds.notify(notify(ZONE), "127.0.0.6").rcode == dns.rcode.REFUSED
        assert feeds.notify(notify("other.example."), "127.0.0.5").rcode == dns.rcode.REFUSED
        assert not feed.wake.is_set()
        response = feeds.notify(notify(ZONE), "127.0.0.5")
    assert response.rcode == dns.rcode.NOERROR and response.header.aa and feed.wake.is_set()
    assert write_message(response)  # a well-formed answer
    assert [e["event"] for e in logs] == ["notify_refused", "notify_refused", "notify"]


def test_a_flood_of_notifies_costs_the_primary_one_query_per_two_seconds(
    feeds: PolicyFeeds,
) -> None:
    fake = FakePrimary(full_zone(1, ["a.example"]))
    source = PolicySource("rpz", ZONE, primary=f"127.0.0.1@{fake.port}")
    feeds.configure((source,), starting=True)
    feed = feeds.feeds[ZONE]

    async def scenario() -> list[int]:
        async with fake:
            feeds.start()  # the refresh task, as the service runs it
            deadline = asyncio.get_running_loop().time() + 3.0
            while asyncio.get_running_loop().time() < deadline:  # 300 NOTIFYs in 3 s
                feed.wake.set()
                await asyncio.sleep(0.01)
            feeds.stop()
            return [q.question[0].rdtype for q in fake.queries]

    asked = run(scenario())
    assert asked[0] == dns.rdatatype.AXFR  # the first transfer
    assert 1 <= asked.count(dns.rdatatype.SOA) <= 2, asked  # then a serial check per 2 s
