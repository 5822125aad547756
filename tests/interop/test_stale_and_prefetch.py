"""Serve-stale and prefetch through the running service, on NSD, asked with dig.

A two-server hierarchy of its own (a root and ``stale.``, on 127.79.0.x) so that a
test can stop the zone's server: its records have TTLs of seconds, so they
expire while the test waits.  Two resolvers run side by side, one with the
feature and one without, and see the same hierarchy.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from resolver.lab.nsd import NsdLab
from resolver.lab.topology import ServerRole
from tests.test_listener import ResolverProcess, dig

ROOT, LEAF = "127.79.0.1", "127.79.0.2"
ROOT_ZONE = f"""$ORIGIN .
$TTL 300
@ SOA a.root. host.root. 1 1800 900 604800 60
@ NS a.root.
a.root. A {ROOT}
stale. NS ns.stale.
ns.stale. A {LEAF}
"""
LEAF_ZONE = f"""$ORIGIN stale.
$TTL 300
@ SOA ns hostmaster 1 1800 900 604800 2
@ NS ns
ns A {LEAF}
short 2 A 192.0.2.50
pre 20 A 192.0.2.60
"""


@pytest.fixture
def hierarchy(interop_ready: None, tmp_path: Path) -> Iterator[NsdLab]:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "root").write_text(ROOT_ZONE)
    (tmp_path / "src" / "stale").write_text(LEAF_ZONE)
    lab = NsdLab(
        tmp_path / "nsd",
        roles=(ServerRole("root", (ROOT,), (".",)), ServerRole("leaf", (LEAF,), ("stale.",))),
        zone_files={".": tmp_path / "src" / "root", "stale.": tmp_path / "src" / "stale"},
        hints=f". 3600000 NS a.root.\na.root. 3600000 A {ROOT}\n",
    )
    with lab:
        yield lab


@contextlib.contextmanager
def resolvers(
    lab: NsdLab, tmp_path: Path, without: str
) -> Iterator[tuple[ResolverProcess, ResolverProcess]]:
    """Two resolvers on the hierarchy: as configured by default, and with ``without``."""
    with_it = ResolverProcess(lab, _mkdir(tmp_path / "with"))  # type: ignore[arg-type]
    try:
        other = ResolverProcess(lab, _mkdir(tmp_path / "without"), without)  # type: ignore[arg-type]
        try:
            yield with_it, other
        finally:
            assert other.stop() == 0
    finally:
        assert with_it.stop() == 0


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def test_a_stopped_zone_server_gets_stale_answers(hierarchy: NsdLab, tmp_path: Path) -> None:
    """RFC 8767: the record expired and its only server is gone: the answer comes from the
    expired data, TTL 30, with EDE 3; the next client gets it at once (the servers are not
    asked again for 30 s); without serve-stale, SERVFAIL."""
    with resolvers(hierarchy, tmp_path, "--no-serve-stale") as (ours, plain):
        _stale_scenario(hierarchy, ours, plain)


def _stale_scenario(hierarchy: NsdLab, ours: ResolverProcess, plain: ResolverProcess) -> None:
    for resolver in (ours, plain):
        first = dig(resolver.port, "short.stale.", "A")
        assert first.status == "NOERROR" and first.ttls == [2]
    leaf = hierarchy.processes["leaf"]
    leaf.terminate()
    leaf.wait(timeout=10)
    time.sleep(2.5)  # the A record expired
    stale = dig(ours.port, "short.stale.", "A", "+timeout=5")
    assert stale.status == "NOERROR", stale.text
    assert stale.answer == {("short.stale.", "A", "192.0.2.50")} and stale.ttls == [30]
    assert stale.ede.startswith("3 (Stale Answer)"), stale.text
    again = dig(ours.port, "short.stale.", "A")
    assert again.ttls == [30] and again.ede.startswith("3")
    # No new attempt within the 30 s recheck: the query log says no upstream query.
    assert ours.queries("127.0.0.1", "short.stale.")[-1]["upstream"] == 0
    failed = dig(plain.port, "short.stale.", "A", "+timeout=15")
    assert failed.status == "SERVFAIL", failed.text


def test_a_name_asked_near_its_expiry_is_refreshed_in_the_background(
    hierarchy: NsdLab, tmp_path: Path
) -> None:
    """Asked in the last tenth of its TTL, the answer comes from the cache as usual and a
    refresh starts; a moment later the cache holds the name with its whole TTL again.
    Without prefetch the old answer runs out."""
    with resolvers(hierarchy, tmp_path, "--no-prefetch") as (ours, plain):
        _prefetch_scenario(ours, plain)


def _prefetch_scenario(ours: ResolverProcess, plain: ResolverProcess) -> None:
    for resolver in (ours, plain):
        assert dig(resolver.port, "pre.stale.", "A").ttls == [20]
    time.sleep(18.2)  # into the last tenth (2 s)
    for resolver in (ours, plain):
        late = dig(resolver.port, "pre.stale.", "A")
        assert late.ttls[0] <= 2, late.text  # from the cache: nobody waited
    time.sleep(0.5)
    refreshed = dig(ours.port, "pre.stale.", "A")
    assert refreshed.ttls[0] >= 17, refreshed.text
    assert dig(plain.port, "pre.stale.", "A").ttls[0] <= 2
