"""resolver-lab (resolver/lab/cli.py), run as a user would through scripts/lab.py.

The suite runs in a namespace with only loopback (scripts/test.sh), where the lab may
start; the refusal elsewhere is checked on copies of /proc/net's route tables.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from resolver.lab import cli
from resolver.lab.unbound import free_port

ROOT_ADDRESS = "127.1.0.1"  # every lab server answers on one port: probe it on the root's address

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "lab.py"
START_TIMEOUT = 15.0

ROUTE_HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT"
ETH0_DEFAULT = "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0"
V6 = "00000000000000000000000000000000 00 " * 2 + "00000000 00000001 00000000 00000001"
LO_V6 = f"{V6}       lo"
WLAN_V6 = f"{V6}    wlan0"


def proc_net(tmp_path: Path, route: list[str], ipv6_route: list[str]) -> Path:
    (tmp_path / "route").write_text("\n".join([ROUTE_HEADER, *route]) + "\n")
    (tmp_path / "ipv6_route").write_text("".join(f"{line}\n" for line in ipv6_route))
    return tmp_path


def test_loopback_only_namespace_has_no_outside_routes(tmp_path: Path) -> None:
    # What `unshare -rn` + `ip link set lo up` gives: no IPv4 main-table route, IPv6 on lo.
    tables = proc_net(tmp_path, [], [LO_V6, LO_V6])
    assert cli.routes_off_loopback(tables) == []
    assert cli.refuse_unless_loopback_only(False, tables) is None


def test_routes_through_other_interfaces_are_named(tmp_path: Path) -> None:
    tables = proc_net(tmp_path, [ETH0_DEFAULT], [LO_V6, WLAN_V6])
    assert cli.routes_off_loopback(tables) == ["eth0", "wlan0"]
    refusal = cli.refuse_unless_loopback_only(False, tables)
    assert refusal is not None and "eth0, wlan0" in refusal and "unshare -rn" in refusal
    assert cli.refuse_unless_loopback_only(True, tables) is None  # --allow-routes


def test_the_suite_namespace_is_loopback_only() -> None:
    """The real tables of the namespace scripts/test.sh made (else the lab tests below
    would be refused: say so plainly rather than fail there)."""
    assert cli.routes_off_loopback() == [], "run the suite through scripts/test.sh"


def test_main_refuses_a_routed_namespace_with_status_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "routes_off_loopback", lambda proc_net=None: ["eth0"])
    assert cli.main(["--port", "5399"]) == 2
    assert cli.main(["nsd"]) == 2
    error = capsys.readouterr().err
    assert error.count("resolver-lab: this network namespace routes through eth0") == 2


@pytest.mark.parametrize(
    "args",
    [["--port", "99999"], ["--port", "0"], ["--port", "x"], ["nsd", "--unbound-port", "70000"]],
    ids=["port-too-large", "port-0", "port-not-a-number", "nsd-unbound-port"],
)
def test_a_bad_port_is_one_error_line(args: list[str]) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "is not a port number" in done.stderr and "Traceback" not in done.stderr


def test_version() -> None:
    from importlib.metadata import version

    done = subprocess.run([sys.executable, str(SCRIPT), "--version"], capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0
    assert done.stdout == f"resolver-lab {version('resolver')}\n"


def wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} not written in {START_TIMEOUT} s"
        time.sleep(0.05)


def test_lab_runs_until_sigterm_and_writes_hints_once_it_answers(tmp_path: Path) -> None:
    port, hints = free_port(ROOT_ADDRESS), tmp_path / "lab.root"
    lab = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--port", str(port), "--hints", str(hints)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(hints, lab)
        assert "a.root-servers.net." in hints.read_text()
        query = dns.message.make_query("com.", "NS")
        reply = dns.query.udp(query, "127.1.0.1", port=port, timeout=2.0)
        assert reply.rcode() == dns.rcode.NOERROR  # a referral from the root
        assert [str(rrset.name) for rrset in reply.authority] == ["com."]
    finally:
        lab.send_signal(signal.SIGTERM)
        stdout, stderr = lab.communicate(timeout=15)
    assert lab.returncode == 0, stderr
    assert "; lab stopped" in stderr
    lines = stdout.splitlines()
    assert f"; root hints: {hints}" in lines
    run = f"--root-hints {hints} --upstream-port {port}"
    local = "--nodefault 2.0.192.in-addr.arpa. --nodefault 100.51.198.in-addr.arpa."
    assert any(line.startswith(f"; run:  resolver --port 2053 {run} {local}") for line in lines)
    assert f"; then: resolver-trace www.noglue.org {run}" in lines
    assert ";   dig @127.0.0.1 -p 2053 www.noglue.org. A  # glueless" in lines


def test_a_port_in_use_is_one_error_line() -> None:
    port = free_port(ROOT_ADDRESS)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.2.1.1", port))  # one lab address (com.) already in use
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--port", str(port)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("resolver-lab: lab could not start:")
    assert "Traceback" not in done.stderr


def test_lab_prints_the_hints_when_no_file_is_given(tmp_path: Path) -> None:
    port = free_port(ROOT_ADDRESS)
    lab = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    printed: list[str] = []
    try:
        assert lab.stdout is not None
        # Up to the last line printed at start-up (the lab runs until signalled).
        while not printed or not printed[-1].startswith("; Ctrl-C"):
            line = lab.stdout.readline()
            assert line, f"lab exited: {printed}"
            printed.append(line)
    finally:
        lab.send_signal(signal.SIGTERM)
        _, stderr = lab.communicate(timeout=15)
    assert lab.returncode == 0, stderr
    assert printed[0].startswith(";       Root hints for the resolver test lab")
    stdout = "".join(printed)
    assert "a.root-servers.net.      3600000      A     127.1.0.1" in stdout
    assert "; root hints: printed above (save them as FILE, or run with --hints FILE)" in stdout
    assert f"--root-hints FILE --upstream-port {port}" in stdout


def test_hints_that_cannot_be_written_are_one_error_line_and_the_lab_stops(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--port", str(free_port(ROOT_ADDRESS)),
         "--hints", str(tmp_path / "no-such-directory" / "lab.root")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("resolver-lab: cannot write the hints:")
    assert "Traceback" not in done.stderr


WITHOUT_DNSPYTHON = """import sys
sys.modules["dns"] = None  # as if dnspython were not installed: `import dns` fails
from resolver.lab.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("nsd", [False, True], ids=["dnspython-lab", "nsd"])
def test_without_dnspython_help_works_and_starting_says_what_to_install(nsd: bool) -> None:
    """`pip install .` without the [lab] extra: the command is there, and says what it needs."""
    prefix = ["nsd"] if nsd else []

    def lab(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", WITHOUT_DNSPYTHON, *prefix, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=ROOT)

    assert lab("--help").returncode == 0
    done = lab("--hints", "/nonexistent/never-written")
    assert done.returncode == 2
    assert done.stderr == (
        "resolver-lab: the lab needs dnspython: pip install 'resolver[lab]' "
        "(from a checkout: pip install '.[lab]')\n"
    )
