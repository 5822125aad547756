"""Poisoning through the data itself: MaginotDNS and the bailiwick rules, each with the
attacker's server that tries it; ours and Unbound on the same hierarchy.

    /work/shared/tools/offline python -m scripts.reliability.poison [--no-unbound]
        [--only maginot,bailiwick]

The attacker wants clients to get 203.0.113.66 for names it does not own, or its server
(127.8.34.1, 127.8.41.1) asked for them.  Every check asks a fresh resolver a name the
attack aimed at, after the attack, and compares with what the real server says.

``maginot`` (MaginotDNS, Li et al., USENIX Security 2023; BIND's CVE-2021-25220): the
resolver forwards ``fwd.`` to a forwarder (127.8.40.1) and ``corp.pub.`` to another
(127.8.43.1, honest), and iterates for the rest.  The ``fwd.`` forwarder is hostile (or
poisoned): its answers carry a CNAME out of the zone with the target's address
(``www.victim.``), NS RRsets for ``victim.`` and ``pub.`` pointing at the attacker, and
addresses for names outside ``fwd.`` in the additional section.  The reverse: ``pub.``'s
authoritative server (iterated) answers ``www.pub.`` with a CNAME into the forward zone
``corp.pub.`` and an address for it, which only the ``corp.pub.`` forwarder may give.

``bailiwick`` (RFC 2181 section 5.4.1; Kaminsky-era scrubbing rules; Unbound's
CVE-2025-11411 for the promiscuous NS RRsets): the attacker's zone ``evil.shared.``
(127.8.34.1) answers with glue for its sibling ``ns.victim.shared.`` and for
``ns.victim.`` in another TLD, with a referral upwards to ``shared.`` and to the root,
and with answers that carry the sibling's NS RRset and records in all sections; and the
replies of ``inj.shared.``'s server carry an NS RRset for its own zone pointing at the
attacker (in authority, in the answer section of other questions, with NXDOMAIN and
NODATA), as a spoofed or fragmented reply would (the off-path part is issue 21's other
half: here the records simply arrive).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from scripts.reliability.peers import Outcome, Peer, ask, peer_names, running
from scripts.reliability.upstreams import BrokenLab, Role, leaf_zone, respond, root_role

SHARED, EVIL, VICTIM_SHARED, INJ = "127.8.33.1", "127.8.34.1", "127.8.35.1", "127.8.36.1"
FORWARDER, ATTACKER_NS, VICTIM, HONEST, PUB, FWD_PUBLIC = (
    "127.8.40.1", "127.8.41.1", "127.8.42.1", "127.8.43.1", "127.8.44.1", "127.8.45.1",
)  # fmt: skip
ATTACKER_ADDRESS = "203.0.113.66"
ATTACKER_SERVERS = {EVIL, ATTACKER_NS}
DAY = 86400

CONFIG = f"""[forward-zones."fwd."]
forwarders = ["{FORWARDER}@53"]
[forward-zones."corp.pub."]
forwarders = ["{HONEST}@53"]
"""
UNBOUND_CLAUSES = f"""forward-zone:
    name: "fwd."
    forward-addr: {FORWARDER}
forward-zone:
    name: "corp.pub."
    forward-addr: {HONEST}
"""


def _under(qname: dns.name.Name, zone: str) -> bool:
    return qname.is_subdomain(dns.name.from_text(zone))


# -------------------------------------------------------------------- the servers


def hostile_forwarder(query: dns.message.Message) -> dns.message.Message:
    """The ``fwd.`` forwarder: every answer plants records for ``victim.`` and ``pub.``."""
    question = query.question[0]
    qname = question.name.to_text()
    if not _under(question.name, "fwd."):
        return respond(query, aa=False, ra=True, rcode=dns.rcode.REFUSED)
    planted_ns = [f"victim. {DAY} NS ns.attacker.", f"pub. {DAY} NS ns.attacker."]
    planted = [f"ns.attacker. {DAY} A {ATTACKER_NS}", f"ns.victim. {DAY} A {ATTACKER_NS}",
               f"www2.victim. {DAY} A {ATTACKER_ADDRESS}"]  # fmt: skip
    if qname.startswith("chain."):  # a CNAME out of the zone, with the target's address
        answer = [f"{qname} {DAY} CNAME www.victim.", f"www.victim. {DAY} A {ATTACKER_ADDRESS}"]
    else:
        answer = [f"{qname} 300 A 192.0.2.40"]
    return respond(query, aa=False, ra=True, answer=answer, authority=planted_ns,
                   additional=planted)  # fmt: skip


def honest_forwarder(query: dns.message.Message) -> dns.message.Message:
    """The ``corp.pub.`` forwarder: 192.0.2.43 for every name of its zone."""
    question = query.question[0]
    if not _under(question.name, "corp.pub."):
        return respond(query, aa=False, ra=True, rcode=dns.rcode.REFUSED)
    return respond(query, aa=False, ra=True, answer=[f"{question.name} 300 A 192.0.2.43"])


def hostile_pub(query: dns.message.Message) -> dns.message.Message | None:
    """``pub.``'s authoritative server: ``www.pub.`` is a CNAME into the forward zone
    ``corp.pub.``, with an address for it and an NS RRset taking it over."""
    question = query.question[0]
    if question.name.to_text() != "www.pub." or question.rdtype != dns.rdatatype.A:
        return None  # the zone: 192.0.2.44 for every name
    return respond(query, answer=["www.pub. 300 CNAME www.corp.pub.",
                                  f"www.corp.pub. {DAY} A {ATTACKER_ADDRESS}"],
                   authority=[f"corp.pub. {DAY} NS ns.attacker."],
                   additional=[f"ns.attacker. {DAY} A {ATTACKER_NS}"])  # fmt: skip


def evil(query: dns.message.Message) -> dns.message.Message:
    """``evil.shared.``: sibling and out-of-bailiwick glue, upward referrals, records for
    its sibling in every section; for a name of another zone (asked because a delegation
    was hijacked), the attacker's address."""
    question = query.question[0]
    qname = question.name.to_text()
    sibling_glue = [f"ns.victim.shared. {DAY} A {EVIL}", f"ns.victim. {DAY} A {EVIL}",
                    f"www.victim.shared. {DAY} A {ATTACKER_ADDRESS}"]  # fmt: skip
    if _under(question.name, "ref.evil.shared."):
        return respond(query, aa=False,
                       authority=["ref.evil.shared. 300 NS ns.victim.shared.",
                                  "ref.evil.shared. 300 NS ns.ref.evil.shared."],
                       additional=[f"ns.ref.evil.shared. 300 A {EVIL}", *sibling_glue])  # fmt: skip
    if _under(question.name, "up.evil.shared."):  # to the parent
        return respond(query, aa=False, authority=[f"shared. {DAY} NS ns.evil.shared."],
                       additional=[f"ns.evil.shared. {DAY} A {EVIL}"])  # fmt: skip
    if _under(question.name, "root.evil.shared."):  # to the root
        return respond(query, aa=False, authority=[f". {DAY} NS ns.evil.shared."],
                       additional=[f"ns.evil.shared. {DAY} A {EVIL}"])  # fmt: skip
    if _under(question.name, "ans.evil.shared."):
        return respond(query, answer=[f"{qname} 300 A 192.0.2.34",
                                      f"www.victim.shared. {DAY} A {ATTACKER_ADDRESS}"],
                       authority=[f"victim.shared. {DAY} NS ns.evil.shared.",
                                  f"shared. {DAY} NS ns.evil.shared."],
                       additional=[f"ns.evil.shared. {DAY} A {EVIL}", *sibling_glue])  # fmt: skip
    if _under(question.name, "evil.shared."):
        address = EVIL if qname.startswith("ns.") else "192.0.2.34"
        return respond(query, answer=[f"{qname} 300 A {address}"])
    return respond(query, answer=[f"{qname} 300 A {ATTACKER_ADDRESS}"])


def injector(query: dns.message.Message) -> dns.message.Message:
    """``inj.shared.``'s server, its replies carrying an NS RRset for its own zone that
    points at the attacker (what an off-path spoofer would add to them)."""
    question = query.question[0]
    qname = question.name.to_text()
    zone = "inj.shared."
    promiscuous = [f"{zone} {DAY} NS ns.evil.shared."]
    glue = [f"ns.evil.shared. {DAY} A {EVIL}"]
    soa = f"{zone} 60 SOA ns.{zone} h.{zone} 1 3600 900 604800 60"
    if not _under(question.name, zone):
        return respond(query, rcode=dns.rcode.REFUSED)
    if qname == zone and question.rdtype == dns.rdatatype.NS:
        return respond(query, answer=[f"{zone} 300 NS ns.{zone}"],
                       additional=[f"ns.{zone} 300 A {INJ}"])  # fmt: skip
    if qname.startswith("ns."):
        return respond(query, answer=[f"{qname} 300 A {INJ}"])
    if qname.startswith("nx-"):
        return respond(query, rcode=dns.rcode.NXDOMAIN, authority=[soa, *promiscuous],
                       additional=glue)  # fmt: skip
    if question.rdtype != dns.rdatatype.A:  # NODATA
        return respond(query, authority=[soa, *promiscuous], additional=glue)
    answer = [f"{qname} 300 A 192.0.2.36"]
    if qname.startswith("ans-"):  # the NS RRset in the answer section of an A question
        return respond(query, answer=answer + promiscuous, additional=glue)
    return respond(query, answer=answer, authority=promiscuous, additional=glue)


def roles() -> list[Role]:
    tlds = {"shared.": SHARED, "victim.": VICTIM, "attacker.": ATTACKER_NS, "pub.": PUB,
            "fwd.": FWD_PUBLIC}  # fmt: skip
    delegations = {zone: [(f"ns.{zone}", address)] for zone, address in tlds.items()}
    children = {"evil": EVIL, "victim": VICTIM_SHARED, "inj": INJ}
    shared = "".join(f"{c} NS ns.{c}\nns.{c} A {a}\n" for c, a in children.items())
    return [
        root_role(delegations),
        Role("shared", (SHARED,), {"shared.": leaf_zone("shared.", "ns.shared.", SHARED, shared)}),
        Role("evil", (EVIL,), generator=evil),
        Role("victim-shared", (VICTIM_SHARED,), {"victim.shared.": leaf_zone(
            "victim.shared.", "ns.victim.shared.", VICTIM_SHARED, "* A 192.0.2.35\n")}),
        Role("inj", (INJ,), generator=injector),
        Role("victim", (VICTIM,), {"victim.": leaf_zone("victim.", "ns.victim.", VICTIM,
                                                        "* A 192.0.2.42\n")}),
        Role("attacker", (ATTACKER_NS,), {"attacker.": leaf_zone(
            "attacker.", "ns.attacker.", ATTACKER_NS, f"* A {ATTACKER_ADDRESS}\n")},
            generator=lambda q: None if _under(q.question[0].name, "attacker.") else respond(
                q, answer=[f"{q.question[0].name} 300 A {ATTACKER_ADDRESS}"])),
        Role("pub", (PUB,), {"pub.": leaf_zone("pub.", "ns.pub.", PUB, "* A 192.0.2.44\n")},
             generator=hostile_pub),
        Role("fwd-public", (FWD_PUBLIC,), {"fwd.": leaf_zone("fwd.", "ns.fwd.", FWD_PUBLIC,
                                                             "* A 192.0.2.45\n")}),
        Role("forwarder", (FORWARDER,), generator=hostile_forwarder),
        Role("honest-forwarder", (HONEST,), generator=honest_forwarder),
    ]  # fmt: skip


# -------------------------------------------------------------------- the attacks


def check(peer: Peer, name: str, expected: str, lab: BrokenLab) -> dict[str, Any]:
    """Ask ``name``; hijacked if the answer holds the attacker's address or one of the
    attacker's servers was asked about it."""
    before = _asked_attacker(lab, name)
    outcome = ask(peer.port, name)
    asked = _asked_attacker(lab, name) - before
    hijacked = ATTACKER_ADDRESS in outcome.addresses or asked > 0
    return {"name": name, "got": outcome.summary(), "expected": expected, "hijacked": hijacked}


def _asked_attacker(lab: BrokenLab, name: str) -> int:
    with lab.counts.lock:
        return sum(lab.counts.by_name[(server, name.lower())] for server in ATTACKER_SERVERS)


def maginot(peer: Peer, lab: BrokenLab) -> dict[str, Any]:
    attack: dict[str, Outcome] = {
        name: ask(peer.port, name) for name in ("chain.fwd.", "plain.fwd.", "www.pub.")
    }
    checks = [
        check(peer, "www.victim.", "192.0.2.42", lab),  # the CNAME target's planted address
        check(peer, "www2.victim.", "192.0.2.42", lab),  # an address in additional
        check(peer, "ns.victim.", "127.8.42.1", lab),
        check(peer, "new.victim.", "192.0.2.42", lab),  # victim. NS planted in authority
        check(peer, "new.pub.", "192.0.2.44", lab),  # pub. NS planted in authority
        check(peer, "www.corp.pub.", "192.0.2.43", lab),  # the reverse: iteration into fwd
    ]
    return _verdict(attack, checks)


def bailiwick(peer: Peer, lab: BrokenLab) -> dict[str, Any]:
    names = (
        "x.ref.evil.shared.",
        "x.up.evil.shared.",
        "x.root.evil.shared.",
        "x.ans.evil.shared.",
        "a.inj.shared.",
        "ans-1.inj.shared.",
        "nx-1.inj.shared.",
    )
    attack = {name: ask(peer.port, name) for name in names}  # fmt: skip
    attack["nodata.inj.shared. TXT"] = ask(peer.port, "nodata.inj.shared.", "TXT")
    checks = [
        check(peer, "www.victim.shared.", "192.0.2.35", lab),  # in the answer and additional
        check(peer, "ns.victim.shared.", VICTIM_SHARED, lab),  # sibling glue
        check(peer, "new.victim.shared.", "192.0.2.35", lab),  # its NS RRset in authority
        check(peer, "ns.victim.", VICTIM, lab),  # glue in another TLD
        check(peer, "new1.shared.", "NXDOMAIN", lab),  # the upward referral
        check(peer, "new.victim.", "192.0.2.42", lab),  # the referral to the root
        check(peer, "b.inj.shared.", "192.0.2.36", lab),  # the promiscuous NS RRsets
        check(peer, "c.inj.shared.", "192.0.2.36", lab),
    ]
    return _verdict(attack, checks)


def _verdict(attack: dict[str, Outcome], checks: list[dict[str, Any]]) -> dict[str, Any]:
    gets = [f"{c['name']} -> {c['got']}" for c in checks if c["hijacked"]]
    return {"attack": {name: outcome.summary() for name, outcome in attack.items()},
            "checks": checks, "attacker_gets": gets, "survived": not gets}  # fmt: skip


SCENARIOS = {"maginot": maginot, "bailiwick": bailiwick}


def run(scenarios: list[str], unbound: bool, directory: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with BrokenLab(directory / "lab", roles()) as lab:
        hints = lab.write_hints(directory / "hints")
        for name in peer_names(unbound):
            for scenario in scenarios:
                with running(name, directory / f"{name}-{scenario}", hints, config=CONFIG,
                             unbound_clauses=UNBOUND_CLAUSES) as peer:  # fmt: skip
                    results.setdefault(scenario, {})[name] = SCENARIOS[scenario](peer, lab)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated")
    parser.add_argument("--no-unbound", action="store_true")
    args = parser.parse_args(argv)
    scenarios = [s for s in args.only.split(",") if s]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    with tempfile.TemporaryDirectory(prefix="poison-") as tmp:
        result = run(scenarios, not args.no_unbound, Path(tmp))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
