"""Response policy: RPZ zones and blocklists, compiled into rules and matched against queries.

A floor beside :mod:`resolver.local`, importing only :mod:`resolver.wire`: the
words (:mod:`.rules`: triggers, actions, overrides), the lookup structures for a
million names (:mod:`.index`), one compiled source (:mod:`.zone`), the readers
of RPZ zones (:mod:`.rpz`, RPZ draft-vixie-dnsop-dns-rpz-00) and of downloaded
blocklists (:mod:`.blocklist`), and the decision with its precedence across
zones (:mod:`.decide`).  Nothing here does I/O or builds a response: the
service's policy step (:mod:`resolver.serve.policy_step`) asks
:class:`Policy` and answers; transfers are :mod:`resolver.net.xfr`.
"""

from resolver.policy.blocklist import BlocklistError, read_lists
from resolver.policy.decide import Match, Policy, PolicySlot, ZoneOptions
from resolver.policy.index import NameIndex, PrefixIndex, name_wire, parse_address
from resolver.policy.rpz import RpzError, ZoneReader, apply_changes, build_zone
from resolver.policy.rules import Action, Override, Rule, Trigger
from resolver.policy.zone import PolicyZone

__all__ = [
    "Action",
    "BlocklistError",
    "Match",
    "NameIndex",
    "Override",
    "Policy",
    "PolicySlot",
    "PolicyZone",
    "PrefixIndex",
    "RpzError",
    "Rule",
    "Trigger",
    "ZoneOptions",
    "ZoneReader",
    "apply_changes",
    "build_zone",
    "name_wire",
    "parse_address",
    "read_lists",
]
