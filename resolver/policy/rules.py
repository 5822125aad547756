"""What a response policy says: its triggers, its actions, and one rule.

The words of the RPZ specification (draft-vixie-dnsop-dns-rpz-00, "DNS Response
Policy Zones", as BIND, Unbound, Knot Resolver and PowerDNS Recursor implement
it).  A *trigger* is what a rule looks at (section 5): the client's address, the
query name, an address in the answer, the name or address of a name server the
resolution used.  An *action* is what it does (section 4): answer NXDOMAIN or
NODATA, let the answer through (PASSTHRU), send nothing (DROP), make a UDP client
ask again over TCP (TCP-only), or answer with the rule's own records (local
data, a CNAME among them).

A :class:`Rule` is the action with the records it needs; the rules of the five
special actions carry no records and exist once each (:data:`SPECIAL_RULES`),
so a million-name blocklist holds a million references to one object.  An
operator's *override* (Unbound's ``rpz-action-override``) replaces every rule's
action in one zone when the policy is applied, never in the stored rules.
"""

from __future__ import annotations

from enum import Enum

from recordclass import dataobject

from resolver.wire import CLASS_IN, ResourceRecord, RRType
from resolver.wire.rdata import AAAA, CNAME, A


class Trigger(Enum):
    """What a rule looks at, in the order of precedence within one zone (RPZ section 5.4:
    client IP, then QNAME, then response IP, then NSDNAME, then NSIP)."""

    CLIENT_IP = "client-ip"  # the address the query came from (rpz-client-ip)
    QNAME = "qname"  # the query name, or a name further down its CNAME chain
    RESPONSE_IP = "response-ip"  # an A or AAAA address in the answer (rpz-ip)
    NSDNAME = "nsdname"  # the name of a name server of the answer's zones (rpz-nsdname)
    NSIP = "nsip"  # an address of such a name server (rpz-nsip)


# Triggers that need the answer: the resolution must have happened before they can match.
ANSWER_TRIGGERS = (Trigger.RESPONSE_IP, Trigger.NSDNAME, Trigger.NSIP)


class Action(Enum):
    """What a rule does (RPZ section 4)."""

    NXDOMAIN = "nxdomain"  # CNAME .  : the name does not exist
    NODATA = "nodata"  # CNAME *. : the name exists, without data of the type asked
    PASSTHRU = "passthru"  # CNAME rpz-passthru. : the answer as it is; later rules not tried
    DROP = "drop"  # CNAME rpz-drop. : no response at all
    TCP_ONLY = "tcp-only"  # CNAME rpz-tcp-only. : TC=1 over UDP, the answer over TCP
    LOCAL_DATA = "local-data"  # any other records: the answer is made of them


class Override(Enum):
    """A zone's action override (Unbound's ``rpz-action-override``, BIND's ``policy``):
    every rule of the zone does this instead of what it says."""

    GIVEN = "given"  # no override: each rule's own action
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    PASSTHRU = "passthru"
    DROP = "drop"
    TCP_ONLY = "tcp-only"
    CNAME = "cname"  # a CNAME to the zone's cname target (a walled garden)
    NULL = "null"  # A 0.0.0.0 and AAAA :: (what hosts-file blockers answer)
    DISABLED = "disabled"  # matches are logged, never applied; later zones are tried


class Rule(dataobject, readonly=True, fast_new=True):
    """One trigger's action, and the records a LOCAL_DATA rule answers with (owner names
    as the policy zone wrote them: the answer puts the query name there)."""

    action: Action
    records: tuple[ResourceRecord, ...] = ()


# The CNAME targets that encode an action (RPZ section 4), lower case.
SPECIAL_TARGETS: dict[str, Action] = {
    ".": Action.NXDOMAIN,
    "*.": Action.NODATA,
    "rpz-passthru.": Action.PASSTHRU,
    "rpz-drop.": Action.DROP,
    "rpz-tcp-only.": Action.TCP_ONLY,
}
TARGET_OF: dict[Action, str] = {action: target for target, action in SPECIAL_TARGETS.items()}

# One rule per special action, shared by every trigger that has it.
SPECIAL_RULES: dict[Action, Rule] = {action: Rule(action) for action in TARGET_OF}
NXDOMAIN_RULE = SPECIAL_RULES[Action.NXDOMAIN]
PASSTHRU_RULE = SPECIAL_RULES[Action.PASSTHRU]

OVERRIDE_ACTIONS: dict[Override, Action] = {
    Override.NXDOMAIN: Action.NXDOMAIN,
    Override.NODATA: Action.NODATA,
    Override.PASSTHRU: Action.PASSTHRU,
    Override.DROP: Action.DROP,
    Override.TCP_ONLY: Action.TCP_ONLY,
}

NULL_TTL = 60  # seconds: the TTL of the null answer (A 0.0.0.0, AAAA ::)
NULL_RULE = Rule(
    Action.LOCAL_DATA,
    (
        ResourceRecord(".", RRType.A, CLASS_IN, NULL_TTL, A("0.0.0.0")),
        ResourceRecord(".", RRType.AAAA, CLASS_IN, NULL_TTL, AAAA("::")),
    ),
)


def cname_rule(target: str, ttl: int = NULL_TTL) -> Rule:
    """A LOCAL_DATA rule answering with a CNAME to ``target`` (an override's redirect)."""
    return Rule(Action.LOCAL_DATA, (ResourceRecord(".", RRType.CNAME, CLASS_IN, ttl,
                                                   CNAME(target)),))  # fmt: skip


def overridden(rule: Rule, override: Override, cname: Rule | None) -> Rule:
    """The rule a zone's override makes of ``rule`` (DISABLED is the caller's to handle)."""
    if override is Override.GIVEN or override is Override.DISABLED:
        return rule
    action = OVERRIDE_ACTIONS.get(override)
    if action is not None:
        return SPECIAL_RULES[action]
    if override is Override.NULL:
        return NULL_RULE
    assert cname is not None, "a cname override comes with its target"
    return cname
