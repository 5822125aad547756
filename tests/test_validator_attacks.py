"""The validator against an attacker (issue 20), in process: the engine on a fake network
answered by the hostile signed hierarchy of :mod:`resolver.lab.forged_attacks`.

Each attack of :data:`ATTACKS` must end as it says: bogus (SERVFAIL with its Extended DNS
Error, the forged data nowhere), or secure with the honest data.  KeyTrap and the NSEC3
hashing attack must also stay within the validation budget, counted in signature checks
and NSEC3 hashes.  The same attacks against the running service and Unbound are in
tests/interop/test_validator_attacks.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from resolver.cache.records import RecordCache, Security
from resolver.dnssec import nsec3, parse_trust_anchors, verify
from resolver.iterate.answer import Answer
from resolver.iterate.engine import IterativeEngine
from resolver.iterate.hints import parse_root_hints
from resolver.iterate.servers import ServerSelection
from resolver.lab import forged_attacks
from resolver.lab.forged_attacks import ATTACKS, ATTACKS_BY_ID, Attack
from resolver.lab.forged_world import World
from resolver.validate import validator
from resolver.wire import Rcode, RRType
from tests.fakes import FakeClock, FakeNetwork, Recorder


@pytest.fixture(scope="module")
def world() -> World:
    return forged_attacks.build()


class Validating:
    """A validating engine on the world, with the network it asks."""

    def __init__(self, world: World, clock: FakeClock | None = None) -> None:
        self.clock = clock
        self.net = FakeNetwork(clock)
        for address in world.servers:
            self.net.servers[address] = world.handler(address)
        options: dict[str, Any] = {"clock": clock} if clock is not None else {}
        self.cache = RecordCache(**options)
        anchors = parse_trust_anchors(world.anchor_text())
        self.validator = validator(anchors, clock) if clock is not None else validator(anchors)
        self.engine = IterativeEngine(
            self.net, self.cache, parse_root_hints(world.hints_text()),
            selection=ServerSelection(**options), observer=Recorder(),
            judge=self.validator,
            qname_minimisation=False, **options,
        )  # fmt: skip

    def ask(self, qname: str, qtype: str) -> Answer:
        return asyncio.run(self.engine.resolve(qname, RRType.from_text(qtype)))


def texts(answer: Answer) -> list[str]:
    return [rr.to_text() for rr in answer.answer + answer.authority]


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.id for a in ATTACKS])
def test_attack_gets_nothing(attack: Attack, world: World) -> None:
    answer = Validating(world).ask(attack.qname, attack.qtype)
    assert not any(attack.forged in text for text in texts(answer)), attack.note
    if attack.outcome == "bogus":
        assert answer.rcode == Rcode.SERVFAIL, (attack.note, texts(answer))
        assert answer.failure is not None
        assert answer.failure.info_code in attack.info_codes, (attack.note, answer.failure)
    else:
        assert answer.rcode == Rcode.NOERROR and answer.answer, attack.note
        wanted = Security.SECURE if attack.outcome == "secure" else Security.INSECURE
        assert answer.security == wanted, attack.note


def test_a_signer_below_the_cut_that_is_a_real_zone_still_validates(world: World) -> None:
    """The honest counterpart of hole 1: the server of shared. also serves sub.shared. and
    answers www.sub.shared. from the child zone, no referral in between.  A signer below
    the zone cut asked is fine when the chain of trust proves it a zone (its DS
    validated from the parent's keys)."""
    validating = Validating(world)
    for qtype in ("A", "AAAA"):  # an answer, and a NODATA
        answer = validating.ask("www.sub.shared.", qtype)
        assert answer.rcode == Rcode.NOERROR and answer.security == Security.SECURE, qtype
    assert validating.ask("www.sub.shared.", "A").answer[0].to_text().endswith("192.0.2.111")


# ---------------------------------------------------------------- KeyTrap and NSEC3 hashing


class Counting:
    """Counts calls of a module function, still calling it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
        self.calls = 0
        original: Callable[..., Any] = getattr(module, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counting]:
    yield Counting(monkeypatch, verify, "verify_signature")


@pytest.fixture
def nsec3_hashes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counting]:
    nsec3.nsec3_hash.cache_clear()
    yield Counting(monkeypatch, nsec3, "nsec3_hash")


def test_keytrap_costs_a_bounded_number_of_signature_checks(
    world: World, signature_checks: Counting
) -> None:
    """CVE-2023-50387: 100 keys of one tag times 100 signatures is 10,000 RSA checks per
    server asked (30,000 with the zone's three servers); the budget stops it at
    MAX_SIGNATURES_PER_RRSET per RRset and MAX_SIGNATURE_CHECKS per question, and a
    question that ran out is not retried on the zone's other servers."""
    from resolver.dnssec.budget import MAX_SIGNATURE_CHECKS, MAX_SIGNATURES_PER_RRSET

    attack = ATTACKS_BY_ID["keytrap"]
    answer = Validating(world).ask(attack.qname, attack.qtype)
    assert answer.rcode == Rcode.SERVFAIL
    assert signature_checks.calls <= MAX_SIGNATURE_CHECKS
    assert signature_checks.calls <= 4 * MAX_SIGNATURES_PER_RRSET  # chain + one answer


def test_nsec3_hashing_costs_a_bounded_number_of_hashes(
    world: World, nsec3_hashes: Counting, signature_checks: Counting
) -> None:
    """CVE-2023-50868: 100 chains times 101 names is 10,100 hashes of 151 SHA-1 rounds per
    server asked; more than MAX_NSEC3_RECORDS NSEC3 records in a proof is bogus at once,
    and hashes are bounded by MAX_NSEC3_HASHES per question."""
    from resolver.dnssec.budget import MAX_NSEC3_HASHES, MAX_SIGNATURE_CHECKS

    attack = ATTACKS_BY_ID["nsec3-hashing"]
    answer = Validating(world).ask(attack.qname, attack.qtype)
    assert answer.rcode == Rcode.SERVFAIL
    assert nsec3_hashes.calls <= MAX_NSEC3_HASHES
    assert signature_checks.calls <= MAX_SIGNATURE_CHECKS


def test_the_budget_leaves_honest_answers_alone(world: World) -> None:
    """A cold resolution of ordinary names (chain of trust included) stays far inside the
    budget: these are the limits of an attack, not of a zone."""
    validating = Validating(world)
    for qname, qtype in [("ok.replay.", "A"), ("www.child.replay.", "AAAA"),
                         ("x.wild.aggr3.", "TXT"), ("nothing.aggr3.", "A"),
                         ("a.aggr.", "MX")]:  # fmt: skip
        answer = validating.ask(qname, qtype)
        assert answer.rcode in (Rcode.NOERROR, Rcode.NXDOMAIN), (qname, answer.failure)
        assert answer.security == Security.SECURE, qname
