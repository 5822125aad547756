"""The README's commands, run as a new user would, in a fresh virtual environment.

The blocks are the fenced ones right after a ``<!-- readme-test: NAME -->`` comment in
README.md: ``install`` (venv, pip install, the resolver), ``query`` (dig), ``tests``
(the test command), ``lab`` (the offline tour) and ``trace-sample`` (its printed trace).

The suite runs inside a network namespace with only loopback, where no package index
answers: pip installs from the wheelhouse that scripts/test.sh fills before entering it
(``PIP_NO_INDEX=1 PIP_FIND_LINKS=$RESOLVER_WHEELHOUSE``), the commands themselves stay as
written.  The resolver of the install command never walks the real root here: it runs
with the lab's hints added.  Missing pieces (no wheelhouse, no dig, no unshare) skip
these tests with the reason, except in CI, where they fail.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest

from resolver.lab import Lab

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"^<!-- readme-test: ([\w-]+) -->\n```[a-z]*\n(.*?)^```$", re.M | re.S)
INSTALLED_COMMANDS = ("resolver", "resolver-trace", "resolver-control", "resolver-lab")
RESOLVER_PORT = 2053  # the README's
INSTALL_TIMEOUT = 600  # the install compiles the core where it finds a C compiler
BLOCK_TIMEOUT = 120


def readme_blocks() -> dict[str, str]:
    blocks = {name: text for name, text in BLOCK.findall(README.read_text())}
    assert set(blocks) >= {"install", "query", "tests", "lab", "trace-sample"}, blocks.keys()
    return blocks


def missing(reason: str) -> None:
    """Skip on a developer's machine; in CI a missing piece is a failure."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"README test cannot run in CI: {reason}")
    pytest.skip(f"README test skipped: {reason}")


def offline_pip_environment() -> dict[str, str]:
    """This process's environment, with pip pointed at the wheelhouse only."""
    wheelhouse = Path(os.environ.get("RESOLVER_WHEELHOUSE", ROOT / "build" / "wheelhouse"))
    if not (wheelhouse / "filled").is_file():
        missing(f"no wheelhouse at {wheelhouse}: run the suite through scripts/test.sh")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheelhouse), PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


NOT_IN_A_CLONE = (
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
)


def copy_checkout(destination: Path) -> Path:
    """The working tree as a fresh clone would have it: tracked and unignored files only
    (no .venv, build/ or caches of this checkout)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=False,
    ) if shutil.which("git") else None  # fmt: skip
    if listed is None or listed.returncode != 0:  # a tarball, or no git: the same by hand
        return Path(
            shutil.copytree(ROOT, destination, ignore=shutil.ignore_patterns(*NOT_IN_A_CLONE))
        )
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def run(command: str, cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(
        ["sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{command}\nexit {done.returncode}\n{done.stdout}{done.stderr}"
    return done.stdout


def install_steps() -> tuple[str, list[str]]:
    """The install command split into its setup and the resolver command it ends with."""
    *setup, serve = readme_blocks()["install"].strip().split(" && ")
    assert setup and shlex.split(serve)[0] == ".venv/bin/resolver", serve
    return " && ".join(setup), shlex.split(serve)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this checkout where the README's install command has run."""
    env = offline_pip_environment()
    if shutil.which("python3") is None:
        missing("no python3 on PATH")
    directory = copy_checkout(tmp_path_factory.mktemp("readme") / "checkout")
    setup, _ = install_steps()
    run(setup, directory, env, INSTALL_TIMEOUT)
    return directory


@pytest.fixture(scope="module")
def lab_block_tools() -> None:
    for tool in ("dig", "ip", "unshare"):
        if shutil.which(tool) is None:
            missing(f"{tool} is not installed (apt-get install bind9-dnsutils iproute2)")
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        missing(f"unshare -rn fails here: {probe.stderr.strip()}")


def venv_python(checkout: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # Run outside the checkout, so that `import resolver` finds the installed package.
    return subprocess.run(
        [str(checkout / ".venv/bin/python"), "-c", code], cwd=cwd, capture_output=True, text=True
    )


def test_install_gives_the_commands_and_the_lab_without_the_test_extra(
    checkout: Path, tmp_path: Path
) -> None:
    for command in INSTALLED_COMMANDS:
        done = subprocess.run(
            [str(checkout / ".venv/bin" / command), "--help"], capture_output=True, text=True
        )
        assert done.returncode == 0 and "usage:" in done.stdout, (command, done.stderr)
    where = venv_python(
        checkout,
        "import resolver, resolver.lab, dns; from resolver.iterate.hints import DEFAULT_HINTS; "
        "print(resolver.__file__); print(len(list(resolver.lab.ZONES_DIR.glob('*.zone')))); "
        "print(DEFAULT_HINTS)",
        tmp_path,
    )
    assert where.returncode == 0, where.stderr
    package, zones, hints = where.stdout.split()
    venv = checkout / ".venv"
    assert Path(package).is_relative_to(venv), "not an installed copy"
    assert int(zones) >= 20  # the lab's zone files came as package data
    assert Path(hints).is_relative_to(venv) and Path(hints).is_file()  # named.root for real use
    assert venv_python(checkout, "import pytest", tmp_path).returncode != 0  # no test extra


def ask(port: int, qname: str, server: subprocess.Popen[str]) -> dns.message.Message:
    """The server's reply, once it answers (bounded; fails at once if it exited)."""
    query = dns.message.make_query(qname, "A")
    deadline = time.monotonic() + 15
    while True:
        assert server.poll() is None, server.communicate()
        try:
            return dns.query.udp(query, "127.0.0.1", port=port, timeout=1.0)
        except (dns.exception.Timeout, ConnectionError):
            assert time.monotonic() < deadline, "no answer in 15 s"
            time.sleep(0.1)


def test_the_resolver_command_serves_and_dig_gets_the_answer(
    checkout: Path, lab: Lab, lab_hints: Path, lab_block_tools: None
) -> None:
    _, serve = install_steps()
    # The README's command as written, plus the lab's hints: never the real root here.
    command = [*serve, "--root-hints", str(lab_hints), "--upstream-port", str(lab.port)]
    resolver = subprocess.Popen(
        command, cwd=checkout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        ask(RESOLVER_PORT, "www.google.com.", resolver)
        dig = run(readme_blocks()["query"].strip(), checkout, dict(os.environ), 30)
        assert re.search(r"^www\.google\.com\.\s+\d+\s+IN\s+A\s+198\.51\.100\.14$", dig, re.M), dig
        assert "status: NOERROR" in dig
    finally:
        resolver.send_signal(signal.SIGTERM)
        _, stderr = resolver.communicate(timeout=15)
    assert resolver.returncode == 0, stderr
    # The install compiled the core where it could (CI has gcc and python3-dev), and the
    # start-up line says so; RESOLVER_PURE_PYTHON=1 (CI's second run) asks for pure Python.
    pure = os.environ.get("RESOLVER_PURE_PYTHON", "") not in ("", "0")
    core = "python" if pure else "compiled" if os.environ.get("CI") == "true" else r"\w+"
    assert re.search(rf"\bcore={core}\b", stderr), stderr


NAME_LIST = r"(?:[\w-]+\.)+(?:, (?:[\w-]+\.)+)+"  # "ns1.nic.net., ns2.nic.net."


def sorted_items(items: str, separator: str) -> str:
    return separator.join(sorted(items.split(separator)))


def trace_lines(text: str) -> list[str]:
    """Trace output as far as it is deterministic: round-trip times blanked, the spacing
    between columns collapsed, on each hop the server asked blanked (a resolver picks among a
    zone's equally unknown servers at random: ns1 or ns2, a or b root), and the items of
    a list sorted (the lab sends an RRset's records in no fixed order)."""
    lines = []
    for line in text.splitlines():
        line = re.sub(r"\d+\.\d+ ms", "_ ms", line)
        line = re.sub(r"(?<=answer: ).*; .*$", lambda m: sorted_items(m[0], "; "), line)
        line = re.sub(NAME_LIST, lambda m: sorted_items(m[0], ", "), line)
        fields = line.split()
        if len(fields) > 4 and fields[3:5] == ["_", "ms"]:  # cut, server, address, rtt
            fields[1:3] = ["_", "_"]
        indent = line[: len(line) - len(line.lstrip())]  # sub-lookups are nested
        lines.append(indent + " ".join(fields))
    return lines


def test_the_lab_block_runs_as_written_and_prints_the_readme_trace(
    checkout: Path, lab_block_tools: None
) -> None:
    blocks = readme_blocks()
    stdout = run(blocks["lab"], checkout, dict(os.environ), BLOCK_TIMEOUT)
    lines = trace_lines(stdout)
    sample = trace_lines(blocks["trace-sample"])
    assert "www.google.com. 300 IN A 198.51.100.14" in lines
    assert "b.chain.org. 300 IN A 198.51.100.7" in lines
    start = lines.index(sample[0])
    assert lines[start : start + len(sample)] == sample


@pytest.mark.parametrize("step", ["dig", "resolver"])
def test_a_failing_step_fails_the_lab_block_and_stops_what_it_started(
    checkout: Path, lab_block_tools: None, step: str
) -> None:
    block = readme_blocks()["lab"]
    if step == "dig":  # an answer that is not the expected one
        broken = block.replace("grep 198.51.100.14", "grep 198.51.100.99")
    else:  # the resolver cannot start: its hints file does not exist
        serve = "resolver --port 2053 --root-hints"
        broken = block.replace(f"{serve} /tmp/lab.root", f"{serve} /nonexistent")
    assert broken != block
    # capture_output: a process left running would hold the pipes open until the timeout.
    done = subprocess.run(
        ["sh", "-c", broken], cwd=checkout, capture_output=True, text=True, timeout=BLOCK_TIMEOUT
    )
    assert done.returncode != 0, done.stdout
    assert "; lab stopped" in done.stderr  # stopped by its PID, not left behind


def apt_packages(script: str) -> set[str]:
    """The packages an ``apt-get install`` line (continued with backslashes) names."""
    words = " ".join(re.findall(r"apt-get install((?:[^\n]*\\\n)*[^\n]*)", script)).split()
    return {word for word in words if re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", word)}


def test_the_test_command_is_what_ci_runs() -> None:
    """CI (.ci/run) runs the README's test command step by step, on a fresh Debian machine
    with no Python packages (.venv as the README makes it); the README must say the same."""
    ci = (ROOT / ".ci" / "run").read_text()
    ci_lines = [line.strip() for line in ci.splitlines()]
    ci_packages = apt_packages(ci)
    for step in readme_blocks()["tests"].strip().split(" && "):
        words = shlex.split(step)
        if words[:2] == ["apt-get", "install"]:
            wanted = {word for word in words[2:] if not word.startswith("-")}
            assert wanted <= ci_packages, wanted - ci_packages
        elif words != ["apt-get", "update"]:
            assert any(line.startswith(step) for line in ci_lines), f"CI does not run: {step}"
