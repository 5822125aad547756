"""The policy's sources across reloads (resolver.ops.policy_feeds, files): what is read
again and when, what stays in force while it is read or when it fails, the order."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from resolver.ops.policy_config import PolicySource
from resolver.ops.policy_feeds import PolicyFeeds
from resolver.policy import Action, Override, Policy
from resolver.policy.index import name_wire
from resolver.serve.policy_step import PolicyStep
from resolver.serve.stats import ServiceStats


@pytest.fixture
def feeds() -> Iterator[PolicyFeeds]:
    flushed: list[int] = []
    step = PolicyStep(Policy(), ServiceStats(), None, None)  # type: ignore[arg-type]
    feeds = PolicyFeeds(step, lambda: len(flushed))
    yield feeds
    feeds.stop()


def action(feeds: PolicyFeeds, name: str) -> str | None:
    match, _ = feeds.step.policy.before(name_wire(name), name, "192.0.2.1")
    return match.rule.action.value if match is not None else None


def blocklist(path: Path, **options: object) -> PolicySource:
    return PolicySource("blocklist", "ads", file=str(path), **options)  # type: ignore[arg-type]


def touch(path: Path, text: str) -> None:
    """Write, and make sure the time differs from the last write's (coarse clocks)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))


def events(logs: list[dict[str, object]]) -> list[object]:
    return [e["event"] for e in logs]


def test_an_unchanged_file_is_not_read_again(feeds: PolicyFeeds, tmp_path: Path) -> None:
    path = tmp_path / "ads.txt"
    touch(path, "ads.example\n")
    feeds.configure((blocklist(path),), starting=True)
    with capture_logs() as logs:
        feeds.configure((blocklist(path),), starting=False)
    assert events(logs) == []
    touch(path, "ads.example\nmore.example\n")
    with capture_logs() as logs:
        feeds.configure((blocklist(path),), starting=False)
    assert events(logs) == ["policy_zone_loaded"] and action(feeds, "more.example.") == "nxdomain"


def test_a_new_action_compiles_the_list_again(feeds: PolicyFeeds, tmp_path: Path) -> None:
    path = tmp_path / "ads.txt"
    touch(path, "ads.example\n@@ok.ads.example\n")
    feeds.configure((blocklist(path),), starting=True)
    assert action(feeds, "ads.example.") == Action.NXDOMAIN.value
    feeds.configure((blocklist(path, override=Override.NULL),), starting=False)
    assert action(feeds, "ads.example.") == Action.LOCAL_DATA.value
    assert action(feeds, "ok.ads.example.") == Action.PASSTHRU.value  # exceptions stay


def test_another_file_that_fails_keeps_the_old_data(feeds: PolicyFeeds, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    touch(good, "ads.example\n")
    touch(bad, "<html>not a list</html>\n")
    feeds.configure((blocklist(good),), starting=True)
    with capture_logs() as logs:
        feeds.configure((blocklist(bad),), starting=False)
    assert events(logs) == ["policy_zone_not_loaded"]
    assert "no usable entry, not a blocklist" in str(logs[0]["error"])
    assert action(feeds, "ads.example.") == "nxdomain"  # the old file's rules, still


def test_order_and_removal(feeds: PolicyFeeds, tmp_path: Path) -> None:
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    touch(first, "x.example\n")
    touch(second, "x.example\n")
    allow = PolicySource("blocklist", "allow", file=str(first), override=Override.PASSTHRU)
    block = PolicySource("blocklist", "block", file=str(second))
    feeds.configure((allow, block), starting=True)
    assert action(feeds, "x.example.") == "passthru"
    feeds.configure((block, allow), starting=False)
    assert action(feeds, "x.example.") == "nxdomain"
    feeds.configure((allow,), starting=False)
    assert [slot.name for slot in feeds.step.policy.slots] == ["allow"]
    assert feeds.listing()[0].startswith("allow kind=blocklist file=")
