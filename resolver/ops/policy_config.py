"""The configuration of response policy: ``[[policy-zone]]`` and ``[[blocklist]]`` tables.

Each is an array of tables in the TOML file, one table per source, applied in
the order written: every ``[[policy-zone]]`` first, then every ``[[blocklist]]``
(the first zone with a matching rule wins, RPZ section 5.4)::

    [[policy-zone]]
    name = "rpz.example."            # the zone's apex
    primary = "192.0.2.53@5353"      # transferred (AXFR, IXFR), or: file = "PATH"
    action-override = "given"        # or nxdomain, nodata, passthru, drop, tcp-only,
                                     # cname (with cname = "garden.example."), null,
                                     # disabled (matches logged, never applied)
    ede = "blocked"                  # or filtered, censored, none (RFC 8914 15, 17, 16)
    log = true                       # one line per applied rule

    [[blocklist]]
    file = "/etc/resolver/ads.txt"   # hosts, domain list, ||domain^ forms
    allowlist = "/etc/resolver/allow.txt"
    action = "nxdomain"              # or any action-override value but given
    name = "ads"                     # for logs, metrics and resolver-control (default:
                                     # the file's name)

Both take ``max-entries`` (default 5,000,000: a source with more is refused, the
one loaded before it kept).  Each parser gives a tuple of :class:`PolicySource`
or raises ValueError naming the table and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from resolver.ops.sections import server, zone_name
from resolver.policy import Override
from resolver.wire.ede import EdeCode

# RFC 8914 sections 4.16-4.18: the operator's own policy, a requirement from outside (a
# court, a regulator), a filter the client chose (a family or ad-blocking service).
EDE_CODES: dict[str, EdeCode | None] = {"blocked": EdeCode.BLOCKED, "censored": EdeCode.CENSORED,
                                    "filtered": EdeCode.FILTERED, "none": None}  # fmt: skip
MAX_ENTRIES = 5_000_000
ZONE_KEYS = ("name", "file", "primary", "action-override", "cname", "ede", "log", "max-entries")
LIST_KEYS = ("file", "name", "allowlist", "action", "cname", "ede", "log", "max-entries")


@dataclass(frozen=True)
class PolicySource:
    """One policy zone or blocklist as configured, checked."""

    kind: str  # "rpz" or "blocklist"
    name: str  # an RPZ zone's apex; a blocklist's name
    file: str | None = None
    primary: str | None = None  # ADDRESS or ADDRESS@PORT
    allowlist: str | None = None
    override: Override = Override.GIVEN
    cname: str | None = None
    ede: EdeCode | None = EdeCode.BLOCKED
    log: bool = True
    max_entries: int = MAX_ENTRIES

    @property
    def origin(self) -> str:
        """Where its data comes from, in words."""
        if self.primary is not None:
            return f"primary {self.primary}"
        return f"file {self.file}"


def _checked(table: object, what: str, known: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ValueError(f"{what} must be a table, not {table!r}")
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ValueError(f"{what}: unknown key {unknown[0]!r} (known: {', '.join(known)})")
    for key in ("name", "file", "primary", "allowlist", "action", "action-override", "cname",
                "ede"):  # fmt: skip
        if key in table and (not isinstance(table[key], str) or not table[key]):
            raise ValueError(f"{what}: {key} must be a non-empty string, not {table[key]!r}")
    if not isinstance(table.get("log", True), bool):
        raise ValueError(f"{what}: log must be true or false, not {table['log']!r}")
    entries = table.get("max-entries", MAX_ENTRIES)
    if not isinstance(entries, int) or isinstance(entries, bool) or entries < 1:
        raise ValueError(f"{what}: max-entries must be a whole number above 0, not {entries!r}")
    return table


def _common(table: dict[str, Any], what: str, action_key: str) -> dict[str, Any]:
    """The keys both kinds share, checked: the override, its cname, ede, log, max-entries."""
    default = "given" if action_key == "action-override" else "nxdomain"
    text = table.get(action_key, default)
    choices = [o.value for o in Override if action_key == "action-override" or o.value != "given"]
    if text not in choices:
        raise ValueError(f"{what}: {action_key} {text!r} is not one of {', '.join(choices)}")
    override = Override(text)
    cname = table.get("cname")
    if (override is Override.CNAME) != (cname is not None):
        raise ValueError(f'{what}: cname is needed with {action_key} = "cname", and only then')
    ede = table.get("ede", "blocked")
    if ede not in EDE_CODES:
        raise ValueError(f"{what}: ede {ede!r} is not one of {', '.join(EDE_CODES)}")
    return {
        "override": override,
        "cname": zone_name(cname) if cname is not None else None,
        "ede": EDE_CODES[ede],
        "log": table.get("log", True),
        "max_entries": table.get("max-entries", MAX_ENTRIES),
    }


def _tables(value: object, section: str) -> list[object]:
    if not isinstance(value, list):
        raise ValueError(f"[[{section}]] is an array of tables (write [[{section}]], twice "
                         f"brackets), not {value!r}")  # fmt: skip
    return value


def parse_policy_zones(value: object) -> tuple[PolicySource, ...]:
    """``[[policy-zone]]`` tables: name, and file or primary; optional keys as above."""
    sources = []
    for number, raw in enumerate(_tables(value, "policy-zone"), 1):
        what = f"policy zone {number}"
        table = _checked(raw, what, ZONE_KEYS)
        if "name" not in table:
            raise ValueError(f"{what}: no name (the zone's apex)")
        name = zone_name(table["name"])
        what = f"policy zone {name}"
        if ("file" in table) == ("primary" in table):
            raise ValueError(f"{what}: give either file or primary (ADDRESS or ADDRESS@PORT)")
        primary = server(table["primary"]) if "primary" in table else None
        common = _common(table, what, "action-override")
        sources.append(PolicySource("rpz", name, table.get("file"), primary, **common))
    _unique(sources)
    return tuple(sources)


def parse_blocklists(value: object) -> tuple[PolicySource, ...]:
    """``[[blocklist]]`` tables: file; optional keys as above."""
    sources = []
    for number, raw in enumerate(_tables(value, "blocklist"), 1):
        what = f"blocklist {number}"
        table = _checked(raw, what, LIST_KEYS)
        if "file" not in table:
            raise ValueError(f"{what}: no file (the list to read)")
        name = table.get("name") or PurePath(table["file"]).name
        common = _common(table, f"blocklist {name}", "action")
        sources.append(
            PolicySource("blocklist", name, table["file"], None, table.get("allowlist"), **common)
        )
    _unique(sources)
    return tuple(sources)


def _unique(sources: list[PolicySource]) -> None:
    seen: set[str] = set()
    for source in sources:
        key = source.name.lower()
        if key in seen:
            raise ValueError(f"{source.name} is configured twice (give each a distinct name)")
        seen.add(key)
