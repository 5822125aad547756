"""The docs' commands, run as a new user would, from a fresh copy of the checkout where the
README's install command ran (tests/test_readme.py's way: pip from the wheelhouse that
scripts/test.sh fills, the commands as written, inside the suite's loopback-only namespace).

The blocks are the fenced ones right after a ``<!-- docs-test: NAME -->`` comment in
docs/*.md: ``webview`` (the web view and ``resolver-trace --svg`` on the lab), ``dnstap``
(a dnstap file read back by dnstap-read) and ``cluster`` (dnsdist, Redis and three nodes,
a dig run in the cluster's namespace).  Besides: no command in the README or the docs uses
this project's development checkout (``../shared/tools/offline``) or a bare ``python``;
``scripts/offline`` gives a namespace with only loopback; the default control socket is one
per port, so ``resolver-control`` reaches the resolver it names.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_readme import (
    BLOCK_TIMEOUT,
    INSTALL_TIMEOUT,
    copy_checkout,
    install_steps,
    missing,
    offline_pip_environment,
    run,
)

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"^<!-- docs-test: ([\w-]+) -->\n```[a-z]*\n(.*?)^```$", re.M | re.S)


def docs_blocks() -> dict[str, str]:
    blocks = {name: text for doc in DOCS for name, text in BLOCK.findall(doc.read_text())}
    assert set(blocks) >= {"webview", "dnstap", "cluster"}, blocks.keys()
    return blocks


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this checkout where the README's install command has run."""
    env = offline_pip_environment()
    for tool in ("python3", "dig", "ip", "unshare"):
        if shutil.which(tool) is None:
            missing(f"no {tool} on PATH")
    directory = copy_checkout(tmp_path_factory.mktemp("docs") / "checkout")
    setup, _ = install_steps()
    run(setup, directory, env, INSTALL_TIMEOUT)
    return directory


def test_the_webview_block_draws_the_walk_and_writes_the_svg(checkout: Path) -> None:
    svg = Path("/tmp/chain.svg")
    svg.unlink(missing_ok=True)
    stdout = run(docs_blocks()["webview"], checkout, offline_pip_environment(), BLOCK_TIMEOUT)
    hops = next(int(line) for line in stdout.splitlines() if line.strip().isdigit())
    assert hops >= 5, stdout  # ., org., and the glueless branch's ., net., provider.net.
    assert ";;   b.chain.org. 300 A 198.51.100.7" in stdout  # the trace printed as well
    drawn = svg.read_text()
    assert drawn.startswith("<svg") and 'data-zone="chain.net."' in drawn


def test_the_dnstap_block_is_read_back(checkout: Path) -> None:
    if shutil.which("dnstap-read") is None:
        missing("no dnstap-read (apt-get install bind9-dnsutils)")
    stdout = run(docs_blocks()["dnstap"], checkout, offline_pip_environment(), BLOCK_TIMEOUT)
    assert "198.51.100.14" in stdout
    kinds = {line.split()[2] for line in stdout.splitlines() if "/IN/" in line}
    assert kinds == {"CQ", "CR", "RQ", "RR"}, stdout


def test_the_cluster_block_runs_dig_in_the_clusters_namespace(checkout: Path) -> None:
    for tool in ("redis-server", "dnsdist"):
        if shutil.which(tool) is None:
            missing(f"no {tool} (apt-get install redis-server dnsdist)")
    stdout = run(docs_blocks()["cluster"], checkout, offline_pip_environment(), 240)
    assert re.search(r"^www\.google\.com\.\s+\d+\s+IN\s+A\s+198\.51\.100\.14$", stdout, re.M)
    assert "status: NOERROR" in stdout


def test_no_command_needs_the_development_checkout() -> None:
    for doc in [ROOT / "README.md", *DOCS]:
        text = doc.read_text()
        assert "shared/tools/offline" not in text, doc
        blocks = re.findall(r"^```(?:sh)?\n(.*?)^```$", text, re.M | re.S)
        for block in blocks:
            for line in block.splitlines():
                bare = re.match(r"\s*(?:taskset -c \d+ )?python3? (?!-m venv)", line)
                assert not bare, (doc, line)  # .venv/bin/python: the one the install made


def test_scripts_offline_gives_a_namespace_with_only_loopback() -> None:
    done = subprocess.run([str(ROOT / "scripts" / "offline"), "ip", "-o", "link"],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    if done.returncode != 0 and "unshare" in done.stderr:
        missing(f"scripts/offline cannot make a namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    links = [line.split(":")[1].strip() for line in done.stdout.splitlines()]
    assert links == ["lo"] and "UP" in done.stdout
    usage = subprocess.run([str(ROOT / "scripts" / "offline")], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage" in usage.stderr


def test_cluster_takes_the_flags_it_names() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "cluster.py"), "--help"],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert "--allow-routes" in done.stdout and "--command" in done.stdout
    source = (ROOT / "scripts" / "cluster.py").read_text()
    assert "shared/tools" not in source


def started(log: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while "started" not in log.read_text():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def test_two_resolvers_each_have_their_own_default_control_socket(
    tmp_path: Path, lab_hints: Path
) -> None:
    """Neither gives --control-socket: each gets the default of its port, and
    ``resolver-control --port`` reaches the one asked for, not whichever started first."""
    from resolver.lab.unbound import free_port

    ports = [free_port(), free_port()]
    processes = []
    try:
        for port in ports:
            log = tmp_path / f"{port}.log"
            with log.open("wb") as out:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "resolver", "--port", str(port), "--root-hints",
                     str(lab_hints), "--log-format", "json"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=out,
                ))  # fmt: skip
            started(log, processes[-1])
            assert "no_control_socket" not in log.read_text()
        for _ in range(3):  # three questions to the first (a local zone: nothing upstream)
            subprocess.run(["dig", "@127.0.0.1", "-p", str(ports[0]), "localhost.", "+tries=1"],
                           capture_output=True, timeout=30, check=True)  # fmt: skip
        totals = []
        for port in ports:
            done = subprocess.run(
                [sys.executable, "-m", "resolver.ops.control", "--port", str(port), "stats"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            total = re.search(r"^queries\.total=(\d+)$", done.stdout, re.M)
            totals.append(int(total[1]) if total else 0)
        assert totals == [3, 0]  # each port's socket is its own resolver's
        nobody = subprocess.run(
            [sys.executable, "-m", "resolver.ops.control", "--port", "1", "stats"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert nobody.returncode == 1 and "cannot talk to the resolver" in nobody.stderr
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
