"""The NSD hierarchy itself: each role answers for its zones on its own addresses only,
the lame server answers REFUSED, dead (and here also silent) addresses answer nothing,
and a hierarchy can be extended programmatically (as the benchmark does)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from resolver.lab.nsd import NsdLab
from resolver.lab.topology import DEAD_ADDRESSES, SERVERS, ServerRole

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]

SERVED = [(role, address) for role in SERVERS if role.zones for address in role.addresses]


def soa(address: str, origin: str, tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(origin, "SOA")
    query.flags &= ~dns.flags.RD
    ask = dns.query.tcp if tcp else dns.query.udp
    return ask(query, address, port=53, timeout=2)


@pytest.mark.parametrize(
    ("role", "address"), SERVED, ids=[f"{role.name}@{address}" for role, address in SERVED]
)
def test_each_role_is_authoritative_on_its_addresses(
    role: ServerRole, address: str, nsd_lab: NsdLab
) -> None:
    if role.name in nsd_lab.not_started:
        assert role.behaviour == "silent"
        return  # the address is dead instead: see test_dead_and_silent_addresses
    for origin in role.zones:
        for tcp in (False, True):
            reply = soa(address, origin, tcp)
            assert reply.rcode() == dns.rcode.NOERROR
            assert reply.flags & dns.flags.AA
            assert reply.answer[0].name.to_text() == origin


def test_lame_server_refuses(nsd_lab: NsdLab) -> None:
    (lame,) = [role for role in SERVERS if role.behaviour == "refused"]
    for address in lame.addresses:
        assert soa(address, "lame.com.").rcode() == dns.rcode.REFUSED


def test_dead_and_silent_addresses_have_nothing_bound(nsd_lab: NsdLab) -> None:
    silent = {a for role in SERVERS if role.behaviour == "silent" for a in role.addresses}
    assert silent <= {a for role in SERVERS for a in role.addresses} - set(nsd_lab.addresses())
    for address in sorted(DEAD_ADDRESSES | silent):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(2)
            with pytest.raises(ConnectionRefusedError):
                probe.connect((address, 53))


def test_a_role_does_not_answer_on_another_roles_address(nsd_lab: NsdLab) -> None:
    # example.com is served on 127.3.1.1 only by its own NSD; com's server there
    # would give a referral, not an authoritative answer, if binding were shared.
    reply = soa("127.2.1.1", "example.com.")
    assert not reply.flags & dns.flags.AA
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer


def test_extended_hierarchy(interop_ready: None, tmp_path: Path) -> None:
    """Roles, zone files from any directory and additions to a parent zone, as the
    cold-cache benchmark uses them (addresses 127.77.x.y, apart from the lab)."""
    (tmp_path / "src").mkdir()
    root_file = tmp_path / "src" / "anything.root"
    root_file.write_text(
        "$ORIGIN .\n$TTL 300\n@ SOA a.root. host.root. 1 1800 900 604800 60\n"
        "@ NS a.root.\na.root. A 127.77.0.1\n"
    )
    extra_file = tmp_path / "src" / "x.txt"
    extra_file.write_text(
        "$ORIGIN extra.\n$TTL 300\n@ SOA ns hostmaster 1 1800 900 604800 60\n"
        "@ NS ns\nns A 127.77.0.2\nwww A 192.0.2.200\n"
    )
    roles = (
        ServerRole("root", ("127.77.0.1",), (".",)),
        ServerRole("extra", ("127.77.0.2",), ("extra.",)),
    )
    lab = NsdLab(
        tmp_path / "nsd",
        roles=roles,
        zone_files={".": root_file, "extra.": extra_file},
        zone_additions={".": "extra NS ns.extra\nns.extra A 127.77.0.2\n"},
        hints=". 3600000 NS a.root.\na.root. 3600000 A 127.77.0.1\n",
    )
    with lab:
        assert lab.addresses() == ["127.77.0.1", "127.77.0.2"]
        query = dns.message.make_query("www.extra.", "A")
        query.flags &= ~dns.flags.RD
        referral = dns.query.udp(query, "127.77.0.1", port=53, timeout=2)
        assert referral.authority[0].name.to_text() == "extra."
        answer = dns.query.udp(query, "127.77.0.2", port=53, timeout=2)
        assert answer.answer[0][0].to_text() == "192.0.2.200"
        assert "a.root." in lab.write_hints(tmp_path / "hints").read_text()
    assert not lab.processes
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(query, "127.77.0.1", port=53, timeout=0.5)


NSD_LAB_IN_ITS_OWN_NAMESPACE = """set -e
ip link set lo up
"$PYTHON" "$SCRIPT" $SIGNED --hints "$DIR/nsd.root" --workdir "$DIR/work" >"$DIR/out" 2>"$DIR/err" &
LAB=$!
tries=0
until [ -e "$DIR/nsd.root" ] || [ $tries -ge 300 ] || ! kill -0 $LAB; do
  tries=$((tries + 1)); sleep 0.1
done
dig @127.2.1.1 com. SOA +norec +dnssec +tries=1 +time=2 >"$DIR/dig" || true
kill $LAB
status=0; wait $LAB || status=$?
echo $status >"$DIR/status"
"""


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_resolver_lab_nsd_serves_until_sigterm(
    interop_ready: None, tmp_path: Path, signed: bool, request: pytest.FixtureRequest
) -> None:
    """`resolver-lab nsd [--signed]` through scripts/nsd_lab.py, as a user runs it, in a
    loopback-only namespace of its own (the session's NSD lab holds port 53 here)."""
    if signed:
        request.getfixturevalue("signing_ready")
    env = {
        "SIGNED": "--signed" if signed else "",
        "PATH": os.environ["PATH"],
        "PYTHON": sys.executable,
        "SCRIPT": str(ROOT / "scripts" / "nsd_lab.py"),
        "DIR": str(tmp_path),
    }
    done = subprocess.run(
        ["unshare", "-rn", "sh", "-c", NSD_LAB_IN_ITS_OWN_NAMESPACE],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out, err = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
    assert (tmp_path / "status").read_text().strip() == "0", err
    dig = (tmp_path / "dig").read_text()
    assert "status: NOERROR" in dig and " aa" in dig.split("flags:")[1].split(";")[0], dig
    hints = tmp_path / "nsd.root"
    assert "a.root-servers.net." in hints.read_text()
    assert f"; root hints: {hints}" in out.splitlines()
    assert f"--root-hints {hints} --upstream-port 53" in out
    assert "NSD instances on port 53" in out
    assert "; every NSD stopped" in err
    # Signed: com. SOA comes with its RRSIG, and the resolvers are told the trust anchor.
    assert ("IN\tRRSIG\tSOA 13 1 " in dig) == signed, dig
    anchor = tmp_path / "work" / "dnssec" / "root.ds"
    assert (f"--trust-anchor-file {anchor}" in out) == signed, out
    unbound_conf = (tmp_path / "work" / "unbound.conf").read_text()
    assert (f'trust-anchor-file: "{anchor}"' in unbound_conf) == signed
    if signed:  # the root's KSK: ECDSA P-256 (13), a SHA-256 digest (2)
        assert re.search(r"^\. \d+ IN DS \d+ 13 2 [0-9a-f]{64}$", anchor.read_text(), re.M)
