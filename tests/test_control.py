"""``resolver-control`` (resolver/ops/control.py) against a running resolver on the lab, and
the cache commands it relies on (RecordCache's flush, dump and resize).

The command is run as a user would (``python -m resolver.ops.control``, the module the
installed ``resolver-control`` runs), against ``python -m resolver`` on the lab with its
control socket in the test's directory.

Run inside the network sandbox:
    /work/shared/tools/offline python -m pytest tests/test_control.py
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.rdata
import dns.rdataclass
import pytest
from structlog.testing import capture_logs
from test_listener import ResolverProcess, dig, new_client

from resolver.cache.answers import AnswerCache
from resolver.cache.records import CachedNegative, CachedRRset, RecordCache, Trust
from resolver.iterate.hints import parse_root_hints
from resolver.lab import Lab
from resolver.ops import dump
from resolver.ops.config import Settings, SettingsError
from resolver.ops.control import CommandError, bind_control_socket, execute, parse_request
from resolver.ops.runtime import build_service
from resolver.wire import CLASS_IN, ResourceRecord, RRType
from resolver.wire.rdata import NS, SOA, A
from tests.fakes import HINTS_TEXT, FakeClock


def control(socket_path: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resolver.ops.control", "--control-socket", str(socket_path),
         *args],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def stats(socket_path: Path) -> dict[str, float]:
    done = control(socket_path, "stats")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert all(re.fullmatch(r"[A-Za-z0-9_.+-]+=[0-9.]+", line) for line in lines), lines
    return {key: float(value) for key, value in (line.split("=", 1) for line in lines)}


@pytest.fixture(scope="module")
def resolver(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResolverProcess]:
    running = ResolverProcess(lab, tmp_path_factory.mktemp("control"))
    try:
        yield running
    finally:
        assert running.stop() == 0


def socket_of(resolver: ResolverProcess) -> Path:
    return resolver.log_path.parent / "control.sock"


# -- the commands ----------------------------------------------------------------------------


def test_socket_is_owner_only(resolver: ResolverProcess) -> None:
    mode = os.stat(socket_of(resolver)).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


def test_stats_counts_queries(resolver: ResolverProcess) -> None:
    before = stats(socket_of(resolver))
    client = new_client()
    for _ in range(3):
        dig(resolver.port, "www.example.com", "A", source=client)
    dig(resolver.port, "+tcp", f"nx-stats-{os.getpid()}.example.com", "A", source=client)
    after = stats(socket_of(resolver))
    assert after["queries.total"] - before.get("queries.total", 0) == 4
    assert after["queries.rcode.NXDOMAIN"] - before.get("queries.rcode.NXDOMAIN", 0) == 1
    assert after["queries.transport.tcp"] - before.get("queries.transport.tcp", 0) == 1
    assert after["cache_hits.cache.answers"] - before.get("cache_hits.cache.answers", 0) >= 2
    assert after["answer_duration_seconds.count"] == after["queries.total"]
    assert after["processes"] == 1 and after["resolutions_in_flight"] == 0
    assert after["upstream_queries"] > 0 and after["cache_entries.cache.records"] > 0


def test_flush_one_name(resolver: ResolverProcess, lab: Lab) -> None:
    client = new_client()
    dig(resolver.port, "sip.example.com", "A", source=client)
    dig(resolver.port, "sip.example.com", "TXT", source=client)
    done = control(socket_of(resolver), "flush", "SIP.example.com")
    assert done.returncode == 0 and done.stderr == ""
    removed = re.fullmatch(r"removed (\d+) record sets or negative entries and (\d+) answers\n",
                           done.stdout)  # fmt: skip
    assert removed and int(removed[1]) >= 2 and int(removed[2]) == 2  # A and TXT: both types
    before = len(lab.queries)
    again = dig(resolver.port, "sip.example.com", "A", source=client)
    assert again.status == "NOERROR"
    asked = [q for q in lab.queries[before:] if q.qname.lower() == "sip.example.com."]
    assert asked and {q.server for q in asked} <= {"127.3.1.1", "127.3.1.2"}  # only the zone
    logged = resolver.queries(client, "sip.example.com.")
    assert [e["cache"] for e in logged] == [False, False, False]


def test_flush_zone_forgets_the_zone_but_not_its_parent(resolver: ResolverProcess,
                                                        lab: Lab) -> None:  # fmt: skip
    client = new_client()
    dig(resolver.port, "host.b.a.deep.lab", "A", source=client)
    done = control(socket_of(resolver), "flush-zone", "a.deep.lab.")
    assert done.returncode == 0
    before = len(lab.queries)
    dig(resolver.port, "host.b.a.deep.lab", "A", source=client)
    servers = {q.server for q in lab.queries[before:]}
    # deep.lab's servers are asked again (the a.deep.lab cut was forgotten), the root and
    # lab. are not (their delegations stayed).
    roots_and_lab = {q.server for q in lab.queries[:before]
                     if q.qname.lower() == "host.b.a.deep.lab." and q.qtype == "A"}  # fmt: skip
    assert servers and not servers & {s for s in roots_and_lab if s.startswith("127.1.")}
    assert [e["cache"] for e in resolver.queries(client)] == [False, False]


def test_flush_negative(resolver: ResolverProcess) -> None:
    client = new_client()
    name = f"nx-flush-{os.getpid()}.example.com"
    for _ in range(2):
        dig(resolver.port, name, "A", source=client)
    done = control(socket_of(resolver), "flush-negative")
    assert done.returncode == 0
    assert re.match(r"removed [1-9]\d* record sets or negative entries and [1-9]", done.stdout)
    dig(resolver.port, name, "A", source=client)
    assert [e["cache"] for e in resolver.queries(client)] == [False, True, False]


def test_dump_is_zone_file_lines(resolver: ResolverProcess) -> None:
    client = new_client()
    dig(resolver.port, "www.example.com", "A", source=client)
    dig(resolver.port, f"nx-dump-{os.getpid()}.example.com", "A", source=client)
    done = control(socket_of(resolver), "dump")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert re.match(r"; \d+ record sets, \d+ negative answers, \d+ SERVFAILs kept", lines[0])
    records = [line for line in lines if not line.startswith(";")]
    for line in records:
        owner, ttl, rdclass, rdtype, rdata = line.split(None, 4)
        assert owner.endswith(".") and rdclass == "IN" and 0 <= int(ttl) <= 86400
        dns.rdata.from_text(dns.rdataclass.IN, rdtype, rdata)  # parses as master-file text
    www = [line for line in records if line.startswith("www.example.com. ")]
    assert len(www) == 1 and www[0].endswith(" IN A 192.0.2.1")
    assert 0 < int(www[0].split()[1]) <= 300
    nx = f"; NXDOMAIN nx-dump-{os.getpid()}.example.com. "
    assert any(line.startswith(nx) and line.endswith("(SOA example.com.)") for line in lines)


def test_reload_through_the_socket(resolver: ResolverProcess) -> None:
    done = control(socket_of(resolver), "reload")
    assert done.returncode == 0
    assert done.stdout == "reloaded (no configuration file): nothing changed\n"
    assert any(e["event"] == "reloaded" for e in resolver.events())


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [(["flush"], 2, "flush takes a NAME"),
     (["stats", "extra"], 2, "stats takes no NAME"),
     (["restart"], 2, "invalid choice: 'restart'"),
     (["flush", "a" * 64 + ".example."], 1, "is not a domain name")],
    ids=["missing-name", "extra-name", "unknown-command", "bad-name"],
)  # fmt: skip
def test_usage_errors(resolver: ResolverProcess, args: list[str], status: int,
                      message: str) -> None:  # fmt: skip
    done = control(socket_of(resolver), *args)
    assert done.returncode == status
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("resolver-control: ") and message in line


def test_nothing_listening(tmp_path: Path) -> None:
    done = control(tmp_path / "none.sock", "stats")
    assert done.returncode == 1
    assert done.stderr == (
        f"resolver-control: cannot talk to the resolver at {tmp_path / 'none.sock'}: "
        "No such file or directory (is it running? --control-socket)\n"
    )


def test_client_finds_the_socket_in_the_config_file(resolver: ResolverProcess,
                                                    tmp_path: Path) -> None:  # fmt: skip
    config = tmp_path / "resolver.toml"
    config.write_text(f"control-socket = '{socket_of(resolver)}'\n")
    command = [sys.executable, "-m", "resolver.ops.control", "--config", str(config), "stats"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "queries.total=" in done.stdout


def test_version() -> None:
    from importlib.metadata import version

    done = subprocess.run([sys.executable, "-m", "resolver.ops.control", "--version"],
                          capture_output=True, text=True, timeout=20)  # fmt: skip
    assert done.returncode == 0
    assert done.stdout == f"resolver-control {version('resolver')}\n"


# -- the socket: in use, stale, workers ------------------------------------------------------


def test_an_explicit_socket_in_use_stops_a_second_resolver(
    resolver: ResolverProcess, lab: Lab, tmp_path: Path
) -> None:
    hints = lab.write_hints(tmp_path / "lab.hints")
    done = subprocess.run(
        [sys.executable, "-m", "resolver", "--port", "0", "--root-hints", str(hints),
         "--control-socket", str(socket_of(resolver))],
        capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == (
        f"resolver: cannot use control socket {socket_of(resolver)}: "
        "another resolver is listening there\n"
    )


def test_the_default_socket_in_use_is_a_warning(tmp_path: Path) -> None:
    path = str(tmp_path / "held.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as held:
        held.bind(path)
        held.listen()
        with capture_logs() as logs:
            assert bind_control_socket(path, explicit=False) is None
        with pytest.raises(SettingsError, match="another resolver is listening there"):
            bind_control_socket(path, explicit=True)
    assert [(e["event"], e["log_level"]) for e in logs] == [("no_control_socket", "warning")]


def test_a_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(path)  # bound, never listening, then closed: what a killed resolver leaves
    bound = bind_control_socket(path, explicit=True)
    assert bound is not None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(path)
    bound.remove()
    assert not os.path.exists(path)
    Path(path).write_text("not a socket")
    with pytest.raises(SettingsError, match="exists and is not a socket"):
        bind_control_socket(path, explicit=True)


def test_workers_every_command_reaches_every_worker(lab: Lab, tmp_path: Path) -> None:
    running = ResolverProcess(lab, tmp_path, "--workers", "2")
    try:
        path = socket_of(running)
        for i in range(20):  # spread over both workers by source port
            dig(running.port, f"w{i}.wild.example.com", "A")
        totals = stats(path)
        assert totals["processes"] == 2
        assert totals["queries.total"] == 20
        workers = {e["worker"] for e in running.events() if e["event"] == "started"}
        assert len(workers) == 2
        dump = control(path, "dump").stdout.splitlines()
        assert {line for line in dump if line.startswith("; process ")} == {
            f"; process {pid}" for pid in workers
        }
        names = {line.split()[0] for line in dump if ".wild.example.com. " in line}
        assert names == {f"w{i}.wild.example.com." for i in range(20)}
        # Besides the 20 answers: with QNAME minimisation, each worker that resolved also
        # learned that wild.example.com. is no zone cut (a NODATA for its NS).
        entries = [line for line in dump if ".wild.example.com. " in line
                   or line.startswith("; NODATA wild.example.com. NS")]  # fmt: skip
        flushed = control(path, "flush-zone", "wild.example.com")
        assert flushed.stdout == (
            f"removed {len(entries)} record sets or negative entries and 20 answers\n"
        )
        assert len(entries) > 20
        reload = control(path, "reload")
        assert reload.returncode == 0
        assert sorted(line.split(":")[0] for line in reload.stdout.splitlines()) == sorted(
            str(pid) for pid in workers
        )
    finally:
        assert running.stop() == 0


# -- in-process: the request line and the record cache's commands ---------------------------


def test_parse_request() -> None:
    assert parse_request("flush WWW.Example.COM\n") == ("flush", "WWW.Example.COM.")
    assert parse_request("stats") == ("stats", None)
    for bad in ("", "flush", "stats x", "drop x", "flush a..b"):
        with pytest.raises(CommandError):
            parse_request(bad)


def _a(name: str, address: str = "192.0.2.1", ttl: int = 300) -> list[ResourceRecord]:
    return [ResourceRecord(name, RRType.A, CLASS_IN, ttl, A(address))]


def _soa(zone: str) -> ResourceRecord:
    rdata = SOA(f"ns1.{zone}", f"hostmaster.{zone}", 1, 1800, 900, 604800, 60)
    return ResourceRecord(zone, RRType.SOA, CLASS_IN, 60, rdata)


def test_record_cache_flushes() -> None:
    cache = RecordCache(clock=FakeClock())
    for name in ("example.com.", "www.example.com.", "a.b.example.com.", "myexample.com.",
                 "WWW.Example.org."):  # fmt: skip
        cache.store_rrset(_a(name), Trust.AUTHORITATIVE)
    cache.store_rrset([ResourceRecord("www.example.com.", RRType.TXT, CLASS_IN, 300,
                                      A("192.0.2.9"))], Trust.AUTHORITATIVE)  # fmt: skip
    cache.store_negative("nx.example.com.", 0, _soa("example.com."))
    cache.store_negative("www.example.org.", RRType.MX, _soa("example.org."))
    assert cache.flush_name("www.EXAMPLE.com") == 2  # A and TXT
    assert cache.flush_name("www.example.org.") == 2  # the RRset (case kept) and NODATA
    assert cache.flush_negative() == 1
    assert cache.flush_zone("example.com") == 2  # example.com. and a.b.example.com.
    assert [e.name for e in cache.dump()] == ["myexample.com."]


def test_record_cache_dump_and_resize() -> None:
    clock = FakeClock()
    cache = RecordCache(clock=clock)
    cache.store_rrset(_a("Short.example.", ttl=5), Trust.AUTHORITATIVE)
    cache.store_rrset(_a("long.example."), Trust.AUTHORITATIVE)
    cache.store_negative("nx.example.", 0, _soa("example."))
    clock.advance(10)
    hits = cache.hits
    dumped = cache.dump()
    assert cache.hits == hits  # a dump is not a lookup
    assert [type(e) for e in dumped] == [CachedRRset, CachedNegative]  # the expired one is gone
    rrset = dumped[0]
    assert isinstance(rrset, CachedRRset)
    assert (rrset.name, rrset.rrtype, rrset.records(clock())[0].ttl) == ("long.example.", 1, 290)
    for i in range(5):
        cache.store_rrset(_a(f"n{i}.example."), Trust.AUTHORITATIVE)
    assert cache.get_rrset("long.example.", RRType.A) is not None  # now the most recent
    evicted = cache.resize(2)
    assert evicted == len(dumped) + 5 + 1 - 2  # the expired entry counts until evicted
    assert {e.name for e in cache.dump()} == {"n4.example.", "long.example."}
    with pytest.raises(ValueError):
        cache.resize(0)


def test_dump_lines_yield_between_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large dump gives the event loop back between slices."""
    monkeypatch.setattr(dump, "SLICE", 10)
    cache = RecordCache(clock=FakeClock())
    for i in range(35):
        cache.store_rrset(_a(f"n{i}.example."), Trust.AUTHORITATIVE)
    ticks = 0

    async def scenario() -> list[str]:
        nonlocal ticks

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        lines = await dump.dump_lines(cache, AnswerCache(clock=FakeClock()))
        task.cancel()
        return lines

    lines = asyncio.run(scenario())
    assert len(lines) == 36 and lines[0].startswith("; 35 record sets")
    assert ticks >= 4


def test_a_flush_reaches_the_zone_cuts_the_engine_keeps(tmp_path: Path) -> None:
    """The cut finder keeps a cut built from records for a second: a flushed server
    address must not be used from it."""
    runtime = build_service(Settings(), parse_root_hints(HINTS_TEXT))
    records, finder = runtime.records, runtime.engine.env.finder
    ns = ResourceRecord("example.com.", RRType.NS, CLASS_IN, 300, NS("ns1.example.com."))
    records.store_rrset([ns], Trust.AUTHORITATIVE)
    records.store_rrset(_a("ns1.example.com.", "192.0.2.53"), Trust.AUTHORITATIVE)
    assert finder.closest("www.example.com.").known() == [("192.0.2.53", "ns1.example.com.")]
    asyncio.run(execute(runtime, "flush", "ns1.example.com."))
    assert finder.closest("www.example.com.").zone != "example.com."  # no address: above
