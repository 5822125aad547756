"""Resident memory per cached single-record RRset (not a test: a measurement).

Fills the record cache (and, separately, the wire-level answer cache the listener
keeps beside it) with N distinct single-record A RRsets, as a resolver's cache
looks after N different questions, and reports the growth of the process's
resident set size divided by N.  Then both together as the service keeps them:
each answer stored, then released by the record cache (the answer holds the
RRset for it: resolver/cache/held.py), so a name asked once is kept once.

    taskset -c 1 python benchmarks/bench_memory.py [--entries 100000]

Each figure is measured in a fresh process of its own (``--fill``).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resolver.cache.answers import AnswerCache
from resolver.cache.records import RecordCache, Trust
from resolver.wire import (
    CLASS_IN,
    Header,
    Message,
    Question,
    ResourceRecord,
    RRType,
    write_message,
    write_query,
)
from resolver.wire.raw import question_key
from resolver.wire.rdata import A


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def names(count: int) -> list[str]:
    # Realistic lengths: "host123.zone45.example-provider.com."
    return [f"host{i}.zone{i % 997}.example-provider.com." for i in range(count)]


def fill_record_cache(count: int) -> tuple[RecordCache, int]:
    owners = names(count)
    gc.collect()
    before = rss_bytes()
    cache = RecordCache(max_entries=count)
    for i, owner in enumerate(owners):
        address = f"198.51.{(i >> 8) & 255}.{i & 255}"
        record = ResourceRecord(owner, RRType.A, CLASS_IN, 3600, A(address))
        cache.store_rrset([record], Trust.AUTHORITATIVE)
    del owners  # the cache keeps its own references to the names it needs
    gc.collect()
    return cache, rss_bytes() - before


def fill_answer_cache(count: int, records: RecordCache | None = None) -> tuple[AnswerCache, int]:
    """The answer cache filled; with ``records``, each RRset stored there first and
    released once its answer is stored, as the listener does."""
    owners = names(count)
    gc.collect()
    before = rss_bytes()
    cache = AnswerCache(max_entries=count)
    if records is not None:
        records.attach(cache)
    for i, owner in enumerate(owners):
        query = write_query(owner, RRType.A, 1, edns_payload=None)
        key = question_key(query)
        assert key is not None
        record = ResourceRecord(owner, RRType.A, CLASS_IN, 3600, A(f"198.51.100.{i & 255}"))
        response = Message(
            Header(1, 1, 0, 0, 0, 1, 1), [Question(owner, RRType.A)], [record], [], [], None
        )
        if records is not None:
            records.store_rrset([record], Trust.AUTHORITATIVE)
        cache.store(key, write_message(response))
        if records is not None:
            assert records.release(owner, RRType.A, key.key, [record])
    del owners
    gc.collect()
    return cache, rss_bytes() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--fill", choices=("records", "answers", "linked"),
                        help="measure this one only, print the bytes of growth")  # fmt: skip
    args = parser.parse_args()
    count = args.entries
    if args.fill:  # one measurement, in this fresh process: bytes of growth
        print(FILLS[args.fill](count))
        return
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        "?",
    )
    print(
        f"# machine: {os.cpu_count()} CPUs (nproc), {model}; "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"recordclass {version('recordclass')}"
    )
    print(f"# command: {' '.join([sys.executable, *sys.argv])}")
    grown = {}
    for fill in FILLS:  # each in a process of its own, so that no freed page is reused
        command = [sys.executable, __file__, "--entries", str(count), "--fill", fill]
        grown[fill] = int(subprocess.run(command, capture_output=True, text=True,
                                         check=True).stdout)  # fmt: skip
    print(
        f"record cache: {count} RRsets, RSS +{grown['records'] / 1e6:.1f} MB, "
        f"{grown['records'] / count:.0f} bytes per single-record RRset"
    )
    print(
        f"answer cache: {count} answers, RSS +{grown['answers'] / 1e6:.1f} MB, "
        f"{grown['answers'] / count:.0f} bytes per cached answer"
    )
    both = grown["records"] + grown["answers"]
    print(f"both, each keeping its own copy: {both / count:.0f} bytes")
    print(
        f"both, the answer holding the RRset for the record cache (what the running "
        f"resolver keeps per name asked once): RSS +{grown['linked'] / 1e6:.1f} MB, "
        f"{grown['linked'] / count:.0f} bytes per name"
    )


def _records(count: int) -> int:
    records, grown = fill_record_cache(count)
    assert len(records) == count
    return grown


def _answers(count: int) -> int:
    answers, grown = fill_answer_cache(count)
    assert len(answers) == count
    return grown


def _linked(count: int) -> int:
    records = RecordCache(max_entries=count)
    answers, grown = fill_answer_cache(count, records)
    assert len(answers) == count and len(records) == 0
    return grown


FILLS: dict[str, Callable[[int], int]] = {
    "records": _records,
    "answers": _answers,
    "linked": _linked,
}


if __name__ == "__main__":
    main()
