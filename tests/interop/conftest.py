"""Fixtures of the interop tier: NSD serving the lab, Unbound and our resolver on it.

The tier needs root (NSD binds port 53 on 127.x.y.z, inside the test namespace)
and Debian's nsd, unbound, dig and kdig; the signed lab also ldns-keygen and
ldns-signzone (ldnsutils).  On a developer's machine without them it is skipped with
the reason; in CI (``CI=true``) a missing piece is a failure.

The unsigned and the signed lab use the same addresses on port 53, so only one runs at
a time: :class:`Hierarchies` keeps the one the current test module needs and stops the
other (each module gets its own resolvers, with empty caches).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from resolver.lab.nsd import NsdLab, find_tool
from resolver.lab.unbound import OurResolver, UnboundProcess, free_port

TOOLS = ("nsd", "nsd-checkconf", "unbound", "dig", "kdig")
SIGNING_TOOLS = ("ldns-keygen", "ldns-signzone")


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


def _not_ready(reason: str | None, what: str) -> None:
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} cannot run in CI: {reason}")
    pytest.skip(f"{what} skipped: {reason}")


@pytest.fixture(scope="session")
def interop_ready() -> None:
    _not_ready(_missing(), "interop tier")


@pytest.fixture(scope="session")
def signing_ready(interop_ready: None) -> None:
    """The signed lab also needs ldns-keygen and ldns-signzone (Debian ldnsutils)."""
    absent = [tool for tool in SIGNING_TOOLS if find_tool(tool) is None]
    reason = f"missing {', '.join(absent)} (apt-get install ldnsutils)" if absent else None
    _not_ready(reason, "signed lab")


class Hierarchies:
    """The NSD lab of this session, unsigned or signed: one at a time on port 53."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.factory = tmp_path_factory
        self.labs: dict[bool, NsdLab] = {}
        self.running: NsdLab | None = None

    def lab(self, signed: bool) -> NsdLab:
        """The lab, started (signed once, on its first start), the other one stopped."""
        lab = self.labs.get(signed)
        if lab is None:
            lab = NsdLab(self.factory.mktemp("nsd-signed" if signed else "nsd"), signed=signed)
            self.labs[signed] = lab
        if self.running is not lab:
            if self.running is not None:
                self.running.stop()
            self.running = None
            lab.start()
            self.running = lab
        return lab

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()
            self.running = None


@pytest.fixture(scope="session")
def hierarchies(
    interop_ready: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hierarchies]:
    labs = Hierarchies(tmp_path_factory)
    try:
        yield labs
    finally:
        labs.stop()


@pytest.fixture(scope="module")
def nsd_lab(hierarchies: Hierarchies) -> NsdLab:
    """The unsigned NSD lab, running for the whole module."""
    return hierarchies.lab(signed=False)


@pytest.fixture(scope="module")
def nsd_hints(nsd_lab: NsdLab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return nsd_lab.write_hints(tmp_path_factory.mktemp("hints") / "lab.root")


@pytest.fixture(scope="module")
def unbound(nsd_hints: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of an Unbound resolving on the NSD hierarchy, caches empty at start."""
    with UnboundProcess(tmp_path_factory.mktemp("unbound"), nsd_hints, free_port()) as server:
        yield server.port


@pytest.fixture(scope="module")
def ours(nsd_hints: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of our resolver on the NSD hierarchy (upstream port 53)."""
    with OurResolver(tmp_path_factory.mktemp("ours"), nsd_hints, free_port()) as server:
        yield server.port


# -- the signed lab ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def signed_lab(signing_ready: None, hierarchies: Hierarchies) -> NsdLab:
    """The lab signed (with its deliberately broken zones), running for the whole module."""
    return hierarchies.lab(signed=True)


@pytest.fixture(scope="module")
def signed_hints(signed_lab: NsdLab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return signed_lab.write_hints(tmp_path_factory.mktemp("signed-hints") / "lab.root")


@pytest.fixture(scope="module")
def validating_unbound(
    signed_lab: NsdLab, signed_hints: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    """The port of an Unbound validating the signed lab from its root KSK."""
    workdir = tmp_path_factory.mktemp("unbound-validating")
    anchor = signed_lab.trust_anchor
    with UnboundProcess(workdir, signed_hints, free_port(), trust_anchor=anchor) as server:
        yield server.port


@pytest.fixture(scope="module")
def validating_ours(
    signed_lab: NsdLab, signed_hints: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    """The port of our resolver validating the signed lab (``--trust-anchor-file``)."""
    workdir = tmp_path_factory.mktemp("ours-validating")
    anchor = str(signed_lab.trust_anchor)
    with OurResolver(workdir, signed_hints, free_port(), "--trust-anchor-file", anchor) as server:
        yield server.port
