"""RFC 5011 automated trust anchor updates (resolver.dnssec.autotrust, resolver.ops.autotrust).

First the state machine alone, driven with a fake clock through a whole KSK rollover
(a new key pending for the add hold-down, then trusted, the old one revoked by its own
signature, then forgotten) and the cases that must not move it (a revoke bit without the
key's own signature, a key gone during its hold-down).  Then a lab root rolling its KSK:
the forged world's root re-signed at each stage, probed by the service's AutoTrust on a
validating engine with a fake clock, the state file rewritten at each step, and the old
key, once revoked, no longer enough to sign the root.  Last, the running service with
``--auto-trust-anchor-file`` writes the file it started from.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import dns.dnssec
import dns.name
import dns.rrset
import pytest

from resolver.cache.records import Security
from resolver.dnssec import key_tag, parse_trust_anchors
from resolver.dnssec.autotrust import (
    DAY,
    KeyState,
    TrustPoint,
    format_state,
    parse_state,
    trusted,
    update,
)
from resolver.lab import forged_attacks
from resolver.lab.forged_server import ForgedServers
from resolver.lab.forged_zones import Key, SignedZone, Validity, ds_text, new_key, sign
from resolver.lab.unbound import OurResolver, free_port
from resolver.ops.autotrust import AutoTrust
from resolver.wire import Rcode, ResourceRecord
from resolver.wire.dnssec_rdata import DNSKEY
from resolver.wire.zonefile import parse_zone
from tests.fakes import FakeClock
from tests.test_validator_attacks import Validating

T0 = 1_800_000_000.0


def revoked(key: Key) -> Key:
    """The same key with its REVOKE bit set (flags 257 + 128: another key tag)."""
    dnskey = dns.dnssec.make_dnskey(key.private.public_key(), key.dnskey.algorithm, flags=385)
    return Key(key.private, dnskey)


def keyset(published: list[Key], signers: list[Key], now: float,
           ) -> tuple[list[ResourceRecord], list[ResourceRecord]]:  # fmt: skip
    """The root's DNSKEY RRset and its RRSIGs, as the engine would pass them."""
    rrset = dns.rrset.RRset(dns.name.root, 1, 48)
    rrset.update_ttl(3600)
    for key in published:
        rrset.add(key.dnskey)
    text = rrset.to_text() + "\n" + "\n".join(
        sign(rrset, key, ".", now=now).to_text() for key in signers)  # fmt: skip
    records = parse_zone(text)
    return ([rr for rr in records if isinstance(rr.rdata, DNSKEY)],
            [rr for rr in records if not isinstance(rr.rdata, DNSKEY)])  # fmt: skip


def states(point: TrustPoint) -> dict[int, str]:
    """Key tag (of the key without its REVOKE bit) -> state."""
    return {
        key_tag(DNSKEY(k.dnskey.flags & ~128, k.dnskey.protocol, k.dnskey.algorithm,
                       k.dnskey.key)): k.state.value
        for k in point.keys
    }  # fmt: skip


def tag(key: Key) -> int:
    return key.tag


def initial(key: Key) -> TrustPoint:
    (point,) = parse_state(ds_text(".", key) + "\n")
    return point


def test_a_whole_rollover_with_the_hold_downs() -> None:
    old, new = new_key(), new_key()
    point = initial(old)
    assert [rr.rrtype for rr in trusted(point)] == [43]  # the configured DS, to start
    changes = update(point, *keyset([old], [old], T0), T0)
    assert states(point) == {tag(old): "VALID"} and len(changes) == 1
    assert [rr.rdata for rr in trusted(point)] == [keyset([old], [], T0)[0][0].rdata]
    # Day 1: the new KSK published, signed by the old: pending for 30 days.
    update(point, *keyset([old, new], [old], T0 + DAY), T0 + DAY)
    assert states(point) == {tag(old): "VALID", tag(new): "ADDPEND"}
    update(point, *keyset([old, new], [old], T0 + 20 * DAY), T0 + 20 * DAY)
    assert states(point)[tag(new)] == "ADDPEND" and len(trusted(point)) == 1
    update(point, *keyset([old, new], [old], T0 + 31 * DAY), T0 + 31 * DAY)
    assert states(point) == {tag(old): "VALID", tag(new): "VALID"} and len(trusted(point)) == 2
    # Day 40: the old key revoked, signing the RRset itself: out at once.
    gone = revoked(old)
    update(point, *keyset([gone, new], [gone, new], T0 + 40 * DAY), T0 + 40 * DAY)
    assert states(point) == {tag(old): "REVOKED", tag(new): "VALID"}
    assert [rr.rdata for rr in trusted(point)] == [keyset([new], [], T0)[0][0].rdata]
    # Thirty days later the revoked key is forgotten.
    update(point, *keyset([new], [new], T0 + 71 * DAY), T0 + 71 * DAY)
    assert states(point) == {tag(new): "VALID"}


def test_what_must_not_move_the_state() -> None:
    old, new, other = new_key(), new_key(), new_key()
    point = initial(old)
    update(point, *keyset([old], [old], T0), T0)
    # A revoke bit the key does not sign itself revokes nothing (anyone can set a bit).
    fake = revoked(old)
    update(point, *keyset([fake, new], [new, old], T0 + DAY), T0 + DAY)
    assert states(point)[tag(old)] == "VALID"
    # A key gone during its hold-down starts again from nothing when it comes back.
    update(point, *keyset([old, other], [old], T0 + 2 * DAY), T0 + 2 * DAY)
    update(point, *keyset([old], [old], T0 + 10 * DAY), T0 + 10 * DAY)
    assert tag(other) not in states(point)
    update(point, *keyset([old, other], [old], T0 + 32 * DAY), T0 + 32 * DAY)
    assert states(point)[tag(other)] == "ADDPEND"
    # A trusted key missing is still trusted, and Valid again when it is back.
    update(point, *keyset([new], [new], T0 + 33 * DAY), T0 + 33 * DAY)
    assert states(point)[tag(old)] == "MISSING" and len(trusted(point)) == 1
    update(point, *keyset([old], [old], T0 + 34 * DAY), T0 + 34 * DAY)
    assert states(point)[tag(old)] == "VALID"


def test_the_state_file_round_trips_and_is_an_anchor_file() -> None:
    old, new = new_key(), new_key()
    point = initial(old)
    update(point, *keyset([old, new], [old], T0), T0)
    point.next_probe = T0 + 3600
    text = format_state([point])
    (again,) = parse_state(text)
    assert (states(again), again.next_probe, again.last_success) == (states(point), T0 + 3600,
                                                                      T0)  # fmt: skip
    assert len(parse_trust_anchors(text).for_zone(".")) == 2  # read as a plain anchor file


# ---------------------------------------------------------------- a lab root rolls its KSK


def resign_root(world: forged_attacks.World, keys: list[Key], now: float) -> None:
    """The world's root signed again with ``keys``, valid from ``now``."""
    server = world.servers[forged_attacks.ROOT_ADDRESS]
    old = next(z for z in server.zones if z.origin == ".")
    server.zones.remove(old)
    server.zones.append(SignedZone(".", old.text, keys, now=now,
                                   validity=Validity(-3600, 90 * DAY)))  # fmt: skip


def test_a_lab_root_rolls_its_ksk(tmp_path: Path) -> None:
    clock = FakeClock(time.time())
    world = forged_attacks.build(now=clock())
    old = world.root_key
    state = tmp_path / "root.key"
    state.write_text(world.anchor_text())  # the DS of the old KSK, as IANA publishes it
    node = Validating(world, clock)
    autotrust = AutoTrust(state, node.engine, node.validator, None, clock=clock)
    autotrust.install()

    def probe() -> list[str]:
        return asyncio.run(autotrust.probe(autotrust.points[0]))

    def secure() -> bool:
        """A root-signed answer (the world's other zones were signed for 30 days only)."""
        node.cache.clear()
        answer = node.ask("replay.", "DS")
        return answer.rcode == Rcode.NOERROR and answer.security == Security.SECURE

    assert probe() and secure()
    assert ";;state=VALID" in state.read_text() and " DS " not in state.read_text()
    new = new_key()
    clock.advance(DAY)
    resign_root(world, [old, new], clock())
    probe()
    assert state.read_text().count(";;state=ADDPEND") == 1 and secure()
    clock.advance(31 * DAY)
    resign_root(world, [old, new], clock())
    probe()
    assert state.read_text().count(";;state=VALID") == 2
    clock.advance(DAY)
    resign_root(world, [revoked(old), new], clock())
    assert any("REVOKED" in change for change in probe())
    assert state.read_text().count(";;state=VALID") == 1 and secure()
    # Whoever still holds the old key can no longer sign the root.
    resign_root(world, [old], clock())
    assert not secure()
    assert not list(tmp_path.glob(".*.tmp"))  # every write was whole


# ---------------------------------------------------------------- the running service


def test_the_service_keeps_its_auto_trust_anchor_file(tmp_path: Path) -> None:
    world = forged_attacks.build()
    (tmp_path / "hints").write_text(world.hints_text())
    state = tmp_path / "root.key"
    state.write_text(world.anchor_text())
    upstream = free_port()
    with ForgedServers(world, upstream), OurResolver(
        tmp_path / "node", tmp_path / "hints", free_port(), "--auto-trust-anchor-file",
        str(state), upstream_port=upstream,
    ):  # fmt: skip
        deadline = time.monotonic() + 20
        while ";;state=VALID" not in state.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
    text = state.read_text()
    assert ";;state=VALID" in text and ";;trust-point=." in text, text
    (point,) = parse_state(text)
    assert point.next_probe - point.last_success >= 3600
    assert [k.state for k in point.keys] == [KeyState.VALID]


def test_a_bad_file_stops_the_service_with_one_line(tmp_path: Path) -> None:
    from resolver.ops.config import SettingsError, load_settings

    bad = tmp_path / "root.key"
    bad.write_text(". 3600 IN A 192.0.2.1\n")
    with pytest.raises(SettingsError, match=r"auto-trust-anchor-file: .*DS or DNSKEY"):
        load_settings(None, {"auto_trust_anchor_file": str(bad)})
