"""Zone transfers from a primary, as a secondary asks for them: SOA, AXFR and IXFR over TCP.

- :func:`query_soa` asks the primary for the zone's SOA (RFC 1034 section 4.3.5:
  a secondary compares serials before transferring).
- :func:`transfer` asks for the zone: AXFR (RFC 5936) without a serial, IXFR
  (RFC 1995) with the serial we hold.  An IXFR answer is one of three shapes: the
  current SOA alone (we are up to date), the differences (the new SOA, then for
  each version an old SOA, the records deleted, a newer SOA, the records added,
  and the new SOA again at the end), or the whole zone as AXFR sends it.

Each message is checked (its ID, QR, opcode, RCODE NOERROR, no TC, the question
echoed when present, RFC 5936 section 2.2), every record must be of class IN and
at or below the zone (out-of-zone data fails the transfer, RFC 5936 section
3.3), and a transfer is complete only when the closing SOA arrives with the
serial of the opening one: a connection closed before it, a message that does
not parse, a silence longer than ``idle`` seconds, a transfer longer than
``timeout`` seconds or larger than ``max_records`` records is an
:class:`XfrError` saying which, and the caller keeps the zone it had.

A full transfer hands its records to ``sink`` as they arrive, so a million-record
zone is never held twice as records; differences are collected (they are small)
and returned.  No TSIG: the primary is whoever the operator configured, reached
over TCP from a source it can check (RFC 5936 section 6).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from resolver.wire import (
    CLASS_IN,
    Header,
    Message,
    Opcode,
    Question,
    Rcode,
    ResourceRecord,
    RRType,
    WireError,
    parse_message,
    write_message,
    write_query,
)
from resolver.wire.names import is_subdomain, name_key
from resolver.wire.rdata import SOA

CONNECT_TIMEOUT = 5.0
IDLE_TIMEOUT = 30.0  # seconds between two messages of a transfer
TRANSFER_TIMEOUT = 600.0  # seconds for a whole transfer
SERIAL_HALF = 1 << 31


class XfrError(Exception):
    """A transfer or SOA query that failed: the message says how, for the log."""


class XfrKind(Enum):
    FULL = "axfr"  # the whole zone (an AXFR, or an IXFR answered with the whole zone)
    INCREMENTAL = "ixfr"  # differences from our serial
    UP_TO_DATE = "up-to-date"  # the primary has the serial we have


Changes = tuple[list[ResourceRecord], list[ResourceRecord]]  # (deleted, added) of a version


@dataclass
class Transfer:
    """What a transfer brought: its kind, the zone's new SOA, and for IXFR the changes."""

    kind: XfrKind
    soa: ResourceRecord
    steps: list[Changes] = field(default_factory=list)
    records: int = 0
    messages: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Primary:
    """Where a zone is transferred from."""

    address: str
    port: int = 53

    def __str__(self) -> str:
        return f"{self.address}@{self.port}"


def newer(a: int, b: int) -> bool:
    """Serial ``a`` is later than ``b`` (RFC 1982 section 3.2, 32-bit serial arithmetic)."""
    return a != b and (a - b) % (1 << 32) < SERIAL_HALF


def soa_serial(rr: ResourceRecord) -> int:
    assert isinstance(rr.rdata, SOA)
    return int(rr.rdata.serial)


def ixfr_query(zone: str, msg_id: int, serial: int) -> bytes:
    """An IXFR query: the question, and our SOA (only its serial matters) in authority
    (RFC 1995 section 3)."""
    ours = ResourceRecord(zone, RRType.SOA, CLASS_IN, 0, SOA(".", ".", serial, 0, 0, 0, 0))
    question = Question(zone, RRType.IXFR, CLASS_IN)
    return write_message(Message(Header(id=msg_id), [question], [], [ours], []))


class _Stream:
    """One TCP connection to the primary: messages in and out, each checked."""

    def __init__(self, primary: Primary, zone: str, qtype: int, deadline: float, idle: float):
        self.primary = primary
        self.zone = zone
        self.qtype = qtype
        self.deadline = deadline
        self.idle = idle
        self.msg_id = secrets.randbelow(1 << 16)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.messages = 0

    async def open(self, query: bytes) -> None:
        try:
            async with asyncio.timeout(min(CONNECT_TIMEOUT, self._left())):
                self.reader, self.writer = await asyncio.open_connection(
                    self.primary.address, self.primary.port
                )
        except (OSError, TimeoutError) as error:
            raise XfrError(f"cannot connect to {self.primary}: {_why(error)}") from None
        self.writer.write(len(query).to_bytes(2, "big") + query)

    def _left(self) -> float:
        return max(self.deadline - time.monotonic(), 0.001)

    async def next(self) -> Message | None:
        """The next message, checked; None when the primary closed between two messages."""
        assert self.reader is not None
        try:
            async with asyncio.timeout(min(self.idle, self._left())):
                prefix = await self.reader.read(2)
                if not prefix:
                    return None
                if len(prefix) == 1:
                    prefix += await self.reader.readexactly(1)
                data = await self.reader.readexactly(int.from_bytes(prefix, "big"))
        except TimeoutError:
            late = time.monotonic() >= self.deadline
            raise XfrError("the transfer took too long" if late else
                           f"no message for {self.idle:g} seconds") from None  # fmt: skip
        except asyncio.IncompleteReadError:
            raise XfrError(
                f"connection closed in the middle of message {self.messages + 1}"
            ) from None
        except OSError as error:
            raise XfrError(f"connection to {self.primary} failed: {_why(error)}") from None
        try:
            message = parse_message(data)
        except WireError as error:
            raise XfrError(f"message {self.messages + 1} does not parse: {error}") from None
        self._check(message)
        self.messages += 1
        return message

    def _check(self, message: Message) -> None:
        header = message.header
        if header.id != self.msg_id or not header.qr or header.opcode != Opcode.QUERY:
            raise XfrError("a message that is not the answer to our query (ID, QR or opcode)")
        if message.rcode != Rcode.NOERROR:
            raise XfrError(f"the primary answered {Rcode.text(message.rcode)}")
        if header.tc:
            raise XfrError("a truncated message (TC=1) over TCP")
        for question in message.question:
            if name_key(question.name) != name_key(self.zone) or question.rrtype != self.qtype:
                raise XfrError(f"the answer is for {question.name} type {question.rrtype}")
        if self.messages == 0 and not message.question:
            raise XfrError("the first message does not echo the question (RFC 5936 2.2.1)")

    def close(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()


def _why(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


async def query_soa(primary: Primary, zone: str, timeout: float = 10.0) -> ResourceRecord:
    """The zone's SOA as the primary has it now (asked over TCP)."""
    stream = _Stream(primary, zone, RRType.SOA, time.monotonic() + timeout, timeout)
    try:
        await stream.open(write_query(zone, RRType.SOA, stream.msg_id, edns_payload=None))
        message = await stream.next()
    finally:
        stream.close()
    if message is None:
        raise XfrError(f"{primary} closed the connection without answering")
    for rr in message.answer:
        if rr.rrtype == RRType.SOA and name_key(rr.name) == name_key(zone):
            return rr
    raise XfrError(f"{primary} has no SOA for {zone} (not authoritative?)")


async def transfer(
    primary: Primary,
    zone: str,
    sink: Callable[[ResourceRecord], None],
    *,
    serial: int | None = None,
    max_records: int = 10_000_000,
    timeout: float = TRANSFER_TIMEOUT,
    idle: float = IDLE_TIMEOUT,
) -> Transfer:
    """Transfer ``zone``: AXFR when ``serial`` is None, else IXFR from that serial.  The
    records of a full transfer go to ``sink`` (the opening SOA first, the closing one not
    again); an exception from ``sink`` stops the transfer and is raised as it is."""
    started = time.monotonic()
    qtype = RRType.AXFR if serial is None else RRType.IXFR
    stream = _Stream(primary, zone, qtype, started + timeout, idle)
    query = (
        write_query(zone, qtype, stream.msg_id, edns_payload=None)
        if serial is None
        else ixfr_query(zone, stream.msg_id, serial)
    )
    reading = _Reading(zone, sink, serial, max_records)
    try:
        await stream.open(query)
        while not reading.done:
            message = await stream.next()
            if message is None:
                raise XfrError(reading.cut_short())
            for rr in message.answer:
                reading.take(rr)
        result = reading.result()
    finally:
        stream.close()
    result.messages = stream.messages
    result.seconds = time.monotonic() - started
    return result


class _Reading:
    """The records of a transfer, one at a time: which shape it has, and when it ends."""

    def __init__(
        self, zone: str, sink: Callable[[ResourceRecord], None], serial: int | None, limit: int
    ):
        self.zone = zone
        self.sink = sink
        self.serial = serial
        self.limit = limit
        self.first: ResourceRecord | None = None  # the opening SOA: the version we get
        self.kind: XfrKind | None = None
        self.count = 0
        self.done = False
        self.steps: list[Changes] = []
        self.adding = False  # IXFR: in the additions of the current step

    def take(self, rr: ResourceRecord) -> None:
        if self.done:
            raise XfrError(f"records after the closing SOA ({rr.name} {RRType.text(rr.rrtype)})")
        self._check(rr)
        self.count += 1
        if self.count > self.limit:
            raise XfrError(f"more than {self.limit} records (max-entries)")
        if self.first is None:
            if rr.rrtype != RRType.SOA or name_key(rr.name) != name_key(self.zone):
                raise XfrError(f"the transfer does not start with the SOA of {self.zone}")
            self.first = rr
            if self.serial is not None and not newer(soa_serial(rr), self.serial):
                self.kind, self.done = XfrKind.UP_TO_DATE, True
            return
        is_soa = rr.rrtype == RRType.SOA
        if self.kind is None:  # the second record says what this is (RFC 1995 section 4)
            if self.serial is not None and is_soa and soa_serial(rr) == self.serial:
                self.kind = XfrKind.INCREMENTAL
                self.steps.append(([], []))
                return
            self.kind = XfrKind.FULL
            self.sink(self.first)
        if self.kind is XfrKind.FULL:
            if is_soa:
                self._closing(rr)
            else:
                self.sink(rr)
            return
        self._incremental(rr, is_soa)

    def _incremental(self, rr: ResourceRecord, is_soa: bool) -> None:
        assert self.first is not None
        if not is_soa:
            self.steps[-1][1 if self.adding else 0].append(rr)
            return
        if self.adding:  # the end, or the old SOA of the next version
            if soa_serial(rr) == soa_serial(self.first):
                self._closing(rr)
                return
            self.steps.append(([], []))
            self.adding = False
            return
        self.adding = True  # the SOA of the version the additions make

    def _closing(self, rr: ResourceRecord) -> None:
        assert self.first is not None
        if soa_serial(rr) != soa_serial(self.first):
            raise XfrError(f"the closing SOA has serial {soa_serial(rr)}, "
                           f"the opening one {soa_serial(self.first)}")  # fmt: skip
        self.done = True

    def _check(self, rr: ResourceRecord) -> None:
        if rr.rrclass != CLASS_IN:
            raise XfrError(f"{rr.name}: class {rr.rrclass} in an IN zone")
        if not is_subdomain(rr.name, self.zone):
            raise XfrError(f"{rr.name} is outside the zone {self.zone} (RFC 5936 section 3.3)")
        if rr.rrtype == RRType.SOA and name_key(rr.name) != name_key(self.zone):
            raise XfrError(f"an SOA at {rr.name}, below the apex")

    def cut_short(self) -> str:
        if self.first is None:
            return "connection closed before the first record"
        return f"connection closed after {self.count} records, before the closing SOA"

    def result(self) -> Transfer:
        assert self.first is not None and self.kind is not None
        steps = self.steps if self.kind is XfrKind.INCREMENTAL else []
        return Transfer(self.kind, self.first, steps, self.count)
