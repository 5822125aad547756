"""QNAME minimisation (RFC 9156): show each server only as much of the name as it needs.

At a zone cut for ``example.com.``, a resolver looking for ``a.b.example.com.``
asks ``b.example.com. NS`` first, not the whole name: the server learns only
the next label.  A referral moves the cut down; NODATA says the name exists but
is no cut (an empty non-terminal, say), so the next question adds a label; the
whole question is asked once the next label is the name itself.  Like Knot
Resolver the minimised questions are for type NS (Deckard's qmin scenarios
expect that), and like Unbound they are bounded: one label at a time for the
first few, then larger steps, so a name with many labels costs at most
``max_minimised_queries`` extra questions (RFC 9156 section 2.3).
"""

from __future__ import annotations

from resolver.iterate.limits import Limits
from resolver.iterate.zonecut import ZoneCut
from resolver.wire import RRType
from resolver.wire.names import ancestors, label_count, name_key


class Minimiser:
    """How much of the name to show the next server (RFC 9156 section 3)."""

    def __init__(self, enabled: bool, limits: Limits) -> None:
        self.enabled = enabled
        self.limits = limits
        self.labels = 0  # labels known to exist at or below the cut (not a cut themselves)
        self.steps = 0

    def enter(self, cut: ZoneCut) -> None:
        self.labels = max(self.labels, label_count(cut.zone))

    def question(self, name: str, qtype: int, target: str) -> tuple[str, int, bool]:
        """(qname, qtype, minimised) to ask; ``target`` is the name the walk goes to."""
        total = label_count(target)
        if not self.enabled or self.labels >= total:
            return name, qtype, False
        labels = self._next_labels(total)
        if labels >= total and name_key(target) == name_key(name):
            return name, qtype, False
        if labels > total:
            return name, qtype, False
        return ancestors(target)[total - labels], RRType.NS, True

    def _next_labels(self, total: int) -> int:
        # One label at a time for the first few steps, then spread what is left over
        # the steps still allowed (Unbound's MINIMISE_ONE_LAB / MAX_MINIMISE_COUNT).
        if self.steps < self.limits.minimise_one_label:
            return self.labels + 1
        left = self.limits.max_minimised_queries - self.steps
        if left <= 1:
            return total
        return self.labels + max(1, -(-(total - self.labels) // left))

    def deepen(self, asked: str) -> None:
        """The name asked exists but is no zone cut: the next question goes deeper."""
        self.labels = label_count(asked)
        self.steps += 1

    def stop(self) -> None:
        """A server that mishandles minimised questions: ask the whole name from now on."""
        self.enabled = False
