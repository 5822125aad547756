"""Aggressive use of the validated NSEC/NSEC3 cache (RFC 8198; resolver.validate.aggressive).

The engine on the signed world of resolver.lab.forged_attacks, counting what it asks:
after one negative answer (or one wildcard expansion), other questions in the same
proven ranges are answered secure without an upstream query, with the records that
prove them; never from unvalidated or opt-out ranges, never past the TTLs, within a
bounded number of records.  Deckard's nsec_aggr_cache and nsec3_aggr_cache run the same
on real zone data (tests/deckard/known-differences no longer lists them).
"""

from __future__ import annotations

import pytest

from resolver.cache.records import Security
from resolver.lab import forged_attacks
from resolver.lab.forged_world import World
from resolver.wire import CLASS_IN, Rcode, ResourceRecord, RRType
from resolver.wire.dnssec_rdata import NSEC, RRSIG
from resolver.wire.rdata import SOA
from tests.fakes import FakeClock
from tests.test_validator_attacks import Validating


@pytest.fixture(scope="module")
def world() -> World:
    return forged_attacks.build()


class Counted(Validating):
    def asks(self, qname: str, qtype: str) -> tuple[int, int, int, list[str]]:
        """(rcode, security, upstream queries it took, answer and proof as text)."""
        before = len(self.net.log)
        answer = self.ask(qname, qtype)
        records = answer.answer + (answer.sigs or []) + answer.authority + (answer.proof or [])
        texts = [rr.to_text() for rr in records]
        return answer.rcode, answer.security, len(self.net.log) - before, texts


def in_kept_range(node: Counted, zone: str) -> str:
    """A name the kept ranges deny (for NSEC3 the hash order decides which)."""
    validator = node.validator
    assert validator.aggressive is not None
    for number in range(200):
        name = f"n{number}.{zone}"
        if validator.aggressive.synthesise(name, RRType.A) is not None:
            return name
    raise AssertionError("no name falls in the kept ranges")


@pytest.mark.parametrize("zone", ["aggr.", "aggr3."])
def test_nxdomain_and_nodata_from_proven_ranges(world: World, zone: str) -> None:
    node = Counted(world)
    rcode, security, asked, _ = node.asks(f"nothing.{zone}", "A")
    assert (rcode, security) == (Rcode.NXDOMAIN, Security.SECURE) and asked > 0
    other = in_kept_range(node, zone)  # another name, never asked upstream
    rcode, security, asked, texts = node.asks(other, "A")
    assert (rcode, security, asked) == (Rcode.NXDOMAIN, Security.SECURE, 0)
    assert any(" SOA " in t for t in texts) and any(" RRSIG " in t for t in texts)
    assert any((" NSEC " if zone == "aggr." else " NSEC3 ") in t for t in texts)
    rcode, _, asked, _ = node.asks(f"a.{zone}", "TXT")  # NODATA from the server
    assert rcode == Rcode.NOERROR and asked > 0
    rcode, security, asked, texts = node.asks(f"a.{zone}", "MX")  # the same NSEC says it
    assert (rcode, security, asked) == (Rcode.NOERROR, Security.SECURE, 0)
    assert not [t for t in texts if " MX " in t]
    assert node.asks(f"a.{zone}", "A")[2] > 0  # the NSEC lists A: never denied


@pytest.mark.parametrize("zone", ["aggr.", "aggr3."])
def test_wildcard_answers_are_expanded_again(world: World, zone: str) -> None:
    """RFC 8198 section 5.3: the expansion of *.w for x.w, kept with its RRSIG, answers
    y.w and a deeper name, with the proof that those names do not exist."""
    node = Counted(world)
    rcode, security, asked, _ = node.asks(f"x.w.{zone}", "TXT")
    assert (rcode, security) == (Rcode.NOERROR, Security.SECURE) and asked > 0
    validator = node.validator
    assert validator.aggressive is not None
    names = [f"y{n}.w.{zone}" for n in range(50)] + [f"deep.er{n}.w.{zone}" for n in range(50)]
    # NSEC: every name below w is in the kept range; NSEC3: those whose hash is.
    kept = [n for n in names if validator.aggressive.synthesise(n, RRType.TXT) is not None]
    shallow = [n for n in kept if n.startswith("y")]
    deep = [n for n in kept if n.startswith("deep")]
    assert shallow and deep
    for name in (shallow[0], deep[0]):
        rcode, security, asked, texts = node.asks(name, "TXT")
        assert (rcode, security, asked) == (Rcode.NOERROR, Security.SECURE, 0), name
        assert f'{name} ' in texts[0] and '"aggressive"' in texts[0]
        assert any(t.startswith(f"{name} ") and " RRSIG TXT " in t for t in texts)
    assert node.validator.aggressive is not None
    assert node.validator.aggressive.synthesised >= 2


def test_ranges_expire_with_their_ttl(world: World) -> None:
    clock = FakeClock(world.zone("aggr.").now)
    node = Counted(world, clock)
    node.asks("nothing.aggr.", "A")
    assert node.asks("nothing2.aggr.", "A")[2] == 0  # between m and ns1, as "nothing"
    clock.advance(61)  # the NSEC TTL and the SOA MINIMUM are 60 s
    assert node.asks("nothing3.aggr.", "A")[2] > 0


def test_opt_out_ranges_never_deny_a_name(world: World) -> None:
    """An NXDOMAIN proved with an opt-out NSEC3 is insecure (an unsigned delegation could
    hide there, RFC 5155 section 6): the next question in the span goes upstream again."""
    node = Counted(world)
    rcode, security, asked, _ = node.asks("nothing.optout.", "A")
    assert (rcode, security) == (Rcode.NXDOMAIN, Security.INSECURE) and asked > 0
    for name in ("n0.optout.", "n1.optout.", "nothing2.optout."):
        rcode, security, asked, _ = node.asks(name, "A")
        assert security == Security.INSECURE and asked > 0, name


def test_bogus_and_unvalidated_ranges_are_not_kept(world: World) -> None:
    node = Counted(world)
    for _ in range(2):  # every signature of bogus. expired: nothing of it is kept
        rcode, _, asked, _ = node.asks("nothing.bogus.", "A")
        assert rcode == Rcode.SERVFAIL and asked > 0
    aggressive = node.validator.aggressive
    assert aggressive is not None
    assert aggressive.synthesise("other.bogus.", RRType.A) is None


def test_off_means_off(world: World) -> None:
    node = Counted(world)
    node.validator.reconfigure(aggressive=False)  # aggressive-nsec = false
    node.asks("nothing.aggr.", "A")
    assert node.asks("nothing2.aggr.", "A")[2] > 0


def nsec(owner: str, following: str) -> list[ResourceRecord]:
    rrsig = RRSIG(RRType.NSEC, 13, 2, 60, 2_000_000_000, 1_000_000, 1, "zone.", b"s")
    return [ResourceRecord(owner, RRType.NSEC, CLASS_IN, 60, NSEC(following, (RRType.A,))),
            ResourceRecord(owner, RRType.RRSIG, CLASS_IN, 60, rrsig)]  # fmt: skip


def test_memory_is_bounded() -> None:
    from resolver.validate.aggressive import AggressiveNsec

    clock = FakeClock()
    kept = AggressiveNsec(clock, max_records=50, max_zones=4)
    soa = ResourceRecord("zone.", RRType.SOA, CLASS_IN, 60,
                         SOA("ns.zone.", "h.zone.", 1, 1, 1, 1, 60))  # fmt: skip
    for number in range(1000):
        zone = f"z{number % 7}.zone."
        records = nsec(f"n{number}.{zone}", f"n{number}a.{zone}")
        kept.learn_denial(zone, [records[0]], [records[1]], soa)
        assert kept.size <= 50
        assert len(kept._zones) <= 4


def test_an_empty_non_terminal_is_denied_with_its_own_proof(world: World) -> None:
    """w.aggr. exists only as the parent of *.w.aggr.: its NODATA is the NSEC whose next
    name is below it, nothing more (the wildcard's NSEC proves nothing about w itself)."""
    node = Counted(world)
    node.asks("x.y.w.aggr.", "A")  # keeps *.w's NSEC (the wildcard, without A)
    node.asks("nothing.aggr.", "A")  # keeps m -> ns1
    node.asks("ns1.aggr.", "TXT")  # keeps ns1 -> *.w: the one before w
    rcode, security, asked, texts = node.asks("w.aggr.", "TXT")
    assert (rcode, security, asked) == (Rcode.NOERROR, Security.SECURE, 0)
    proof = [t.split()[0] for t in texts if t.split()[3] == "NSEC"]
    assert proof == ["ns1.aggr."], texts
