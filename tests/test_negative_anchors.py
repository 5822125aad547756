"""Negative trust anchors (RFC 7646): resolver.validate.trust, resolver.ops.negative and
``resolver-control nta``.

An operator facing a signed zone whose signatures broke turns its validation off for a
while: the zone (bogus. of the forged world: every signature expired) is answered as
insecure, other zones stay validated, and removing the anchor (or its expiry) brings
the SERVFAIL back.  Last, through the running service: ``resolver-control nta`` and the
``negative-trust-anchors`` setting, asked with dig.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from resolver.cache.records import Security
from resolver.dnssec import parse_trust_anchors
from resolver.lab import forged_attacks
from resolver.lab.forged_server import ForgedServers
from resolver.lab.forged_world import World
from resolver.lab.unbound import OurResolver, free_port
from resolver.validate.trust import TrustCache
from resolver.wire import Rcode
from tests.fakes import FakeClock
from tests.test_validator_attacks import Validating

BOGUS = "www.bogus."  # 192.0.2.90, every signature of bogus. expired a day ago


@pytest.fixture(scope="module")
def world() -> World:
    return forged_attacks.build()


def test_anchors_cover_their_zone_and_expire() -> None:
    clock = FakeClock()
    trust = TrustCache(parse_trust_anchors(". 3600 IN DS 1 8 2 " + "00" * 32), clock)
    assert trust.negative_anchor("www.example.") is None
    trust.add_negative("example.", clock() + 60)
    assert trust.negative_anchor("www.EXAMPLE.") == "example."
    assert trust.negative_anchor("example.") == "example."
    assert trust.negative_anchor("other.") is None and trust.negative_anchor("le.") is None
    clock.advance(61)
    assert trust.negative_anchor("www.example.") is None and trust.negative == {}


def test_a_broken_zone_under_an_anchor_is_insecure_and_others_stay_validated(
    world: World,
) -> None:
    node = Validating(world)
    answer = node.ask(BOGUS, "A")
    assert answer.rcode == Rcode.SERVFAIL and answer.failure is not None
    assert answer.failure.info_code == 7  # signature expired
    node.validator.trust.add_negative("bogus.")
    node.cache.flush_zone("bogus.")
    answer = node.ask(BOGUS, "A")
    assert (answer.rcode, answer.security) == (Rcode.NOERROR, Security.INSECURE)
    assert [rr.rdata.to_text() for rr in answer.answer] == ["192.0.2.90"]
    assert node.ask("ok.replay.", "A").security == Security.SECURE
    assert node.ask("nothing.bogus.", "A").security == Security.INSECURE


def test_the_command_is_checked() -> None:
    from resolver.ops import negative

    assert negative.parse(["add", "Example.COM"]) == "add Example.COM. 3600"  # case kept
    assert negative.parse(["add", "example.com.", "60"]) == "add example.com. 60"
    assert negative.parse(["remove", "example.com"]) == "remove example.com."
    assert negative.parse(["list"]) == "list"
    for words in ([], ["drop", "x."], ["add"], ["add", "x.", "0"], ["add", "x.", "604801"],
                  ["add", "x.", "ten"], ["list", "x."], ["remove", "a..b"]):  # fmt: skip
        with pytest.raises(negative.NtaError):
            negative.parse(words)


# ---------------------------------------------------------------- the running service


def dig(port: int, name: str) -> tuple[str, str, list[str], list[int]]:
    """(status, flags, answer lines, EDE codes) of ``dig +dnssec``."""
    done = subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(port), name, "A", "+dnssec", "+tries=1", "+time=10"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    out = done.stdout
    status = re.search(r"status: (\w+)", out)
    flags = re.search(r";; flags: ([a-z ]+);", out)
    assert status and flags, out + done.stderr
    section = out.split(";; ANSWER SECTION:")[-1] if ";; ANSWER SECTION:" in out else ""
    answer = [line for line in section.splitlines() if line and not line.startswith(";")]
    return status[1], flags[1], answer, [int(code) for code in re.findall(r"EDE: (\d+)", out)]


def control(socket_path: Path, *words: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "resolver.ops.control", "--control-socket", str(socket_path),
         *words], capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def service(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    tuple[int, Path, Path]]:  # fmt: skip
    """(port, control socket, configuration file) of the service validating the world."""
    if shutil.which("dig") is None:
        pytest.fail("dig is missing (apt-get install bind9-dnsutils)")
    work = tmp_path_factory.mktemp("nta")
    (work / "hints").write_text(world.hints_text())
    (work / "anchor").write_text(world.anchor_text())
    config = work / "resolver.toml"
    config.write_text("")
    upstream = free_port()
    with ForgedServers(world, upstream), OurResolver(
        work / "node", work / "hints", free_port(), "--config", str(config),
        "--trust-anchor-file", str(work / "anchor"), upstream_port=upstream,
    ) as resolver:  # fmt: skip
        yield resolver.port, work / "node" / "control.sock", config


def test_nta_through_resolver_control_and_dig(service: tuple[int, Path, Path]) -> None:
    port, sock, _ = service
    status, flags, answer, codes = dig(port, BOGUS)
    assert (status, answer, codes) == ("SERVFAIL", [], [7])
    assert control(sock, "nta", "add", "bogus.", "600") == (0, "added bogus. for 600 s\n")
    status, flags, answer, codes = dig(port, BOGUS)
    assert status == "NOERROR" and "ad" not in flags.split() and codes == []
    assert "192.0.2.90" in answer[0]  # with its RRSIG, for a DO client to judge itself
    rc, listed = control(sock, "nta", "list")
    assert rc == 0 and re.fullmatch(r"bogus\. (600|59\d) s left\n", listed), listed
    status, flags, _, _ = dig(port, "ok.replay.")  # another zone: still validated
    assert status == "NOERROR" and "ad" in flags.split()
    assert control(sock, "nta", "remove", "bogus.") == (0, "removed bogus.\n")
    assert dig(port, BOGUS)[0] == "SERVFAIL"
    rc, said = control(sock, "nta", "remove", "bogus.")
    assert rc == 1 and "no negative trust anchor for bogus." in said
    rc, said = control(sock, "nta", "add", "bogus.", "forever")
    assert rc == 1 and "lifetime" in said


def test_nta_from_the_configuration_with_a_reload(service: tuple[int, Path, Path]) -> None:
    port, sock, config = service
    config.write_text('negative-trust-anchors = ["bogus."]\n')
    try:
        rc, said = control(sock, "reload")
        assert rc == 0 and "negative-trust-anchors" in said, said
        status, flags, answer, _ = dig(port, BOGUS)
        assert status == "NOERROR" and "ad" not in flags.split() and answer
        assert control(sock, "nta", "list") == (0, "bogus. configured\n")
        rc, said = control(sock, "nta", "remove", "bogus.")
        assert rc == 1 and "in the configuration" in said
    finally:
        config.write_text("")
        assert control(sock, "reload")[0] == 0
    assert dig(port, BOGUS)[0] == "SERVFAIL"
