"""Fixtures of the interop tier: NSD serving the lab, Unbound and our resolver on it.

The tier needs root (NSD binds port 53 on 127.x.y.z, inside the test namespace)
and Debian's nsd, unbound, dig and kdig.  On a developer's machine without them
it is skipped with the reason; in CI (``CI=true``) a missing piece is a failure.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from resolver.lab.nsd import NsdLab, find_tool
from resolver.lab.unbound import OurResolver, UnboundProcess

TOOLS = ("nsd", "nsd-checkconf", "unbound", "dig", "kdig")


def _missing() -> str | None:
    absent = [tool for tool in TOOLS if find_tool(tool) is None]
    if absent:
        packages = "nsd unbound bind9-dnsutils knot-dnsutils"
        return f"missing {', '.join(absent)} (apt-get install {packages})"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.254.254.254", 53))
    except OSError as error:
        return f"cannot bind port 53 on loopback ({error.strerror}): run as root in scripts/test.sh"
    return None


@pytest.fixture(scope="session")
def interop_ready() -> None:
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"interop tier cannot run in CI: {reason}")
    pytest.skip(f"interop tier skipped: {reason}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        return int(udp.getsockname()[1])


@pytest.fixture(scope="session")
def nsd_lab(interop_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NsdLab]:
    with NsdLab(tmp_path_factory.mktemp("nsd")) as lab:
        yield lab


@pytest.fixture(scope="session")
def nsd_hints(nsd_lab: NsdLab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return nsd_lab.write_hints(tmp_path_factory.mktemp("hints") / "lab.root")


@pytest.fixture(scope="session")
def unbound(nsd_hints: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of an Unbound resolving on the NSD hierarchy, caches empty at start."""
    with UnboundProcess(tmp_path_factory.mktemp("unbound"), nsd_hints, free_port()) as server:
        yield server.port


@pytest.fixture(scope="session")
def ours(nsd_hints: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of our resolver on the NSD hierarchy (upstream port 53)."""
    with OurResolver(tmp_path_factory.mktemp("ours"), nsd_hints, free_port()) as server:
        yield server.port
