"""Response policy sources read from files: RPZ master files, blocklists and allowlists.

Read with the same code at start-up (where a file that does not load stops the
resolver) and at a reload (in a worker thread, so that the event loop goes on
answering while a million names are compiled: see
:mod:`resolver.ops.policy_feeds`).  A file larger than ``max-entries`` times
:data:`BYTES_PER_ENTRY` is refused unread (a list ten times too large must not
be read into memory to be found too large).  Every failure is one
:class:`PolicyLoadError` line naming the source, the file and why.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from resolver.ops.policy_config import PolicySource
from resolver.policy import BlocklistError, PolicyZone, ZoneOptions, build_zone, read_lists
from resolver.policy.rules import NXDOMAIN_RULE, Override, Rule, cname_rule, overridden
from resolver.wire.zonefile import iter_zone

if TYPE_CHECKING:
    from resolver.ops.config import Settings

log = structlog.get_logger("resolver.serve.policy")

BYTES_PER_ENTRY = 512  # a file larger than max-entries times this is refused unread
Signature = tuple[tuple[int, int, int], ...]


class PolicyLoadError(Exception):
    """A source that could not be loaded: one line naming it and why."""


def sources_of(settings: Settings) -> tuple[PolicySource, ...]:
    """The configured sources in the order they apply: policy zones, then blocklists."""
    zones = settings.sections.get("policy-zone", ())
    lists = settings.sections.get("blocklist", ())
    assert isinstance(zones, tuple) and isinstance(lists, tuple)
    return zones + lists


def options_of(source: PolicySource) -> ZoneOptions:
    """A zone's options; a blocklist's action is in its rules (its exceptions stay
    PASSTHRU), so only DISABLED stays an override."""
    override = source.override
    if source.kind == "blocklist" and override is not Override.DISABLED:
        override = Override.GIVEN
    return ZoneOptions(override, source.cname, source.ede, source.log)


def block_rule(source: PolicySource) -> Rule:
    """What a blocklist's entry does: its action."""
    target = cname_rule(source.cname) if source.cname else None
    return overridden(NXDOMAIN_RULE, source.override, target)


def compiled_with(source: PolicySource) -> tuple[object, ...]:
    """What a source's compiled data depends on besides its files: a list's action is in
    its rules, a limit decides whether it loads at all."""
    if source.kind == "blocklist":
        return source.file, source.allowlist, source.max_entries, source.override, source.cname
    return source.file, source.max_entries


def signature_of(source: PolicySource) -> tuple[tuple[int, int, int], ...]:
    """What changes when a source's files change (their size, time and inode)."""
    paths = [p for p in (source.file, source.allowlist) if p is not None]
    signature = []
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            signature.append((0, 0, 0))
            continue
        signature.append((info.st_size, info.st_mtime_ns, info.st_ino))
    return tuple(signature)


def _read(path: str, source: PolicySource) -> str:
    try:
        size = os.stat(path).st_size
        if size > source.max_entries * BYTES_PER_ENTRY:
            raise PolicyLoadError(f"{source.name}: {path} is {size} bytes, more than max-entries "
                                  f"({source.max_entries}) can take")  # fmt: skip
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise PolicyLoadError(f"{source.name}: cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise PolicyLoadError(f"{source.name}: {path} is not UTF-8 text") from None


def load_file_source(source: PolicySource) -> PolicyZone:
    """A file source compiled; PolicyLoadError if it cannot be."""
    assert source.file is not None
    if source.kind == "rpz":
        text = _read(source.file, source)
        try:
            return build_zone(source.name, iter_zone(text, source.name, source.file),
                              source.max_entries)  # fmt: skip
        except ValueError as error:  # ZoneFileError, RpzError
            raise PolicyLoadError(f"{source.name}: {error}") from None
    texts = [(source.file, _read(source.file, source), False)]
    if source.allowlist is not None:
        texts.append((source.allowlist, _read(source.allowlist, source), True))
    try:
        zone, readers = read_lists(source.name, texts, source.max_entries, block_rule(source))
    except BlocklistError as error:
        raise PolicyLoadError(f"{source.name}: {error}") from None
    for reader in readers:
        if reader.skipped:
            log.info("blocklist_lines_skipped", list=source.name, file=reader.source,
                     skipped=reader.skipped, first=reader.first_skipped)  # fmt: skip
    return zone


def answer_rules(zone: PolicyZone) -> object:
    """The rules on answers of a zone, comparable (a change empties the wire cache)."""
    return (
        frozenset(zone.response_ip.items()),
        frozenset(zone.nsip.items()),
        frozenset(zone.nsdname.exact.items()),
        frozenset(zone.nsdname.below.items()),
    )
