"""Blocklists in the forms people download them, compiled into a policy zone's QNAME rules.

Each line is read for itself, whatever form it has (one file may mix them):

=============================  ===============================================
line                           blocks
=============================  ===============================================
``0.0.0.0 ads.example``        ``ads.example.`` (a hosts file: every name after
                               the address; the hosts of every machine,
                               ``localhost`` and the like, are left out)
``ads.example``                ``ads.example.`` (a plain list of domains)
``*.ads.example``              every name below ``ads.example.`` (not itself)
``||ads.example^``             ``ads.example.`` and every name below it
                               (the ad blockers' form; ``$important`` is allowed)
``|ads.example^``              ``ads.example.`` only
``@@||ads.example^``           nothing: an exception (as ``@@`` says in ad
                               blockers), which wins over any block of the list
=============================  ===============================================

Exact names are exact as in AdGuard Home's and Pi-hole's reading of hosts and
domain lists; ``||name^`` covers the subtree, as ad blockers mean it.  Comments
(``#``, ``!``, ``[Adblock Plus 2.0]``) and blank lines are skipped; so are lines
that are no DNS rule (a URL, a cosmetic rule ``##.ad``, a rule with other ``$``
modifiers, a name that is not one): they are counted and the first is kept for
the log line, since real lists carry them by the thousand.  A list in which no
line is a rule is refused (it is not a blocklist: an HTML error page, say), and
so is a list with more names than its limit.

An allowlist is read the same way, every rule in it an exception.
"""

from __future__ import annotations

import ipaddress
import re

from resolver.policy.index import NameIndex, name_wire
from resolver.policy.rules import NXDOMAIN_RULE, PASSTHRU_RULE, Rule
from resolver.policy.zone import PolicyZone
from resolver.wire.names import BadName

COMMENTS = ("#", "!", "[")
# Names of the machine itself that hosts files carry (Debian's, macOS's, Windows'):
# never blocked, whatever the list says.
HOST_NAMES = frozenset(
    {"localhost", "localhost.localdomain", "local", "broadcasthost", "ip6-localhost",
     "ip6-loopback", "ip6-localnet", "ip6-mcastprefix", "ip6-allnodes", "ip6-allrouters",
     "ip6-allhosts", "0.0.0.0"}
)  # fmt: skip
ALLOWED_MODIFIERS = ("", "important")
# What a name in a list may be: letters, digits, hyphens and underscores (SRV-style and
# tracking names use them), dot-separated; anything else is no name (a URL, a path, a rule).
HOST_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


class BlocklistError(ValueError):
    """A list that cannot be used: the message names it and says why."""


class ListReader:
    """Reads lines into the zone's block and allow indexes, counting what it left out."""

    def __init__(
        self, zone: PolicyZone, source: str, max_entries: int, allow_all: bool, rule: Rule
    ) -> None:
        self.zone = zone
        self.rule = rule  # what a block does (the list's action)
        self.source = source
        self.max_entries = max_entries
        self.allow_all = allow_all  # an allowlist: every rule is an exception
        self.rules = 0
        self.skipped = 0
        self.first_skipped = ""

    def read(self, text: str) -> None:
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith(COMMENTS):
                continue
            try:
                self._line(line)
            except BlocklistError:
                raise
            except ValueError as error:
                self.skipped += 1
                if not self.first_skipped:
                    self.first_skipped = f"{self.source}:{lineno}: {error}"

    def _line(self, line: str) -> None:
        allow = self.allow_all
        if line.startswith("@@"):
            allow, line = True, line[2:]
        if line.startswith("|"):
            self._adblock(line, allow)
            return
        fields = line.split()
        for i, field in enumerate(fields):  # a comment starts a word (example.org##.ad: no)
            if field.startswith("#"):
                fields = fields[:i]
                break
        if not fields:
            return
        if len(fields) > 1 or _is_address(fields[0]):
            self._hosts(fields)
            return
        name = fields[0]
        if name.startswith("*."):
            self._add(name[2:], allow, exact=False, below=True)
        else:
            self._add(name, allow, exact=True, below=False)

    def _adblock(self, line: str, allow: bool) -> None:
        subtree = line.startswith("||")
        body, _, modifiers = line.lstrip("|").partition("$")
        if modifiers not in ALLOWED_MODIFIERS:
            raise ValueError(f"modifier ${modifiers} is not a DNS rule we apply")
        if not body.endswith("^") and not body.endswith("^|"):
            raise ValueError(f"{line!r} does not end in ^: not a whole name")
        name = body.rstrip("|").removesuffix("^")
        self._add(name, allow, exact=True, below=subtree)

    def _hosts(self, fields: list[str]) -> None:
        if not _is_address(fields[0]):
            raise ValueError(f"{fields[0]!r} is not an address (a hosts line starts with one)")
        for name in fields[1:]:
            if name.lower() not in HOST_NAMES:
                self._add(name, self.allow_all, exact=True, below=False)

    def _add(self, name: str, allow: bool, exact: bool, below: bool) -> None:
        name = _ascii(name)
        if not HOST_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a domain name")
        try:
            key = name_wire(name + ".")
        except BadName as error:
            raise ValueError(str(error)) from None
        if key == b"\x00":
            raise ValueError("the root is not blocked")
        index = self._allow() if allow else self.zone.qname
        rule = PASSTHRU_RULE if allow else self.rule
        if exact:
            index.exact[key] = rule
        if below:
            index.below[key] = rule
        self.rules += 1
        if self.rules > self.max_entries:
            raise BlocklistError(f"{self.source}: more than {self.max_entries} entries "
                                 "(max-entries)")  # fmt: skip

    def _allow(self) -> NameIndex:
        if self.zone.allow is None:
            self.zone.allow = NameIndex()
        return self.zone.allow


def _ascii(name: str) -> str:
    """An internationalised name in its ASCII form (IDNA), as DNS carries it."""
    name = name.rstrip(".")
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{name!r} is not a domain name") from None


def _is_address(text: str) -> bool:
    if not (text[:1].isdigit() or ":" in text):
        return False  # most lines are names: no exception raised to learn it
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def read_lists(
    name: str, texts: list[tuple[str, str, bool]], max_entries: int, rule: Rule = NXDOMAIN_RULE
) -> tuple[PolicyZone, list[ListReader]]:
    """A blocklist's zone from its files: ``(source, text, is_allowlist)`` each, the list
    first; a block does ``rule`` (an exception is always PASSTHRU).  BlocklistError if a
    list has no rule at all or too many."""
    zone = PolicyZone(name)
    readers = []
    for source, text, allowlist in texts:
        reader = ListReader(zone, source, max_entries, allowlist, rule)
        reader.read(text)
        if reader.rules == 0 and reader.skipped:
            why = f" (first line left out: {reader.first_skipped})" if reader.first_skipped else ""
            raise BlocklistError(f"{source}: no usable entry, not a blocklist{why}")
        zone.skipped += reader.skipped
        readers.append(reader)
    return zone, readers
