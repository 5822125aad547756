"""Our dnstap beside Unbound's (1.17, built with --enable-dnstap), on the NSD lab.

Both resolvers send dnstap to an ``fstrm_capture`` each (Unix socket, the bidirectional
Frame Streams handshake), the same questions are asked of both with dig, and BIND's
``dnstap-read`` reads both captures: the same message types for the same queries (a
client query and response for each question asked; resolver queries and responses for
the cold ones only, none for an answer from the cache), the same questions upstream for
a CNAME chain across zones.  The number of upstream exchanges may differ (each resolver
chooses its own path through the delegations); it is not compared.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from resolver.lab.unbound import OurResolver, UnboundProcess, free_port
from tests.test_dnstap import Capture

pytestmark = pytest.mark.interop

UNBOUND_DNSTAP = """dnstap:
    dnstap-enable: yes
    dnstap-socket-path: "{socket}"
    dnstap-bidirectional: yes
    dnstap-send-identity: yes
    dnstap-send-version: yes
    dnstap-log-resolver-query-messages: yes
    dnstap-log-resolver-response-messages: yes
    dnstap-log-client-query-messages: yes
    dnstap-log-client-response-messages: yes
"""
QUESTIONS = ["www.google.com", "www.google.com", "www.chain.com", "nx.example.com"]


class TappedUnbound(UnboundProcess):
    """Unbound with its dnstap going to ``socket``."""

    def __init__(self, workdir: Path, hints: Path, port: int, socket: Path) -> None:
        super().__init__(workdir, hints, port)
        self.socket = socket

    def command(self) -> list[str]:
        command = super().command()
        conf = self.workdir / "unbound.conf"
        conf.write_text(conf.read_text() + UNBOUND_DNSTAP.format(socket=self.socket))
        return command


def ask_all(port: int) -> None:
    for name in QUESTIONS:
        subprocess.run(["dig", "@127.0.0.1", "-p", str(port), name, "+tries=1", "+time=5"],
                       capture_output=True, timeout=30, check=True)  # fmt: skip


@pytest.fixture(scope="module")
def captures(
    nsd_hints: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, list[dict[str, str]]]]:
    """What each resolver's dnstap said about QUESTIONS, read by dnstap-read."""
    out: dict[str, list[dict[str, str]]] = {}
    for who in ("ours", "unbound"):
        workdir = tmp_path_factory.mktemp(f"dnstap-{who}")
        reader = Capture(workdir)
        try:
            tap = f"unix:{reader.socket}"
            server = (
                OurResolver(workdir / "r", nsd_hints, free_port(), "--dnstap", tap)
                if who == "ours"
                else TappedUnbound(workdir / "r", nsd_hints, free_port(), reader.socket)
            )
            with server:
                if who == "ours":  # its writer connects in its own thread: wait for it
                    deadline = time.monotonic() + 10
                    while "dnstap_connected" not in server.log():
                        assert time.monotonic() < deadline, server.log()
                        time.sleep(0.05)
                ask_all(server.port)
                # Unbound's dnstap thread writes in its own time, and what it holds at
                # SIGTERM is lost: give it a moment (ours writes what it holds at exit).
                time.sleep(1.5)
            out[who] = reader.stop()
        finally:
            if reader.process.poll() is None:
                reader.process.kill()
    yield out


def client_messages(messages: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    return [(m["kind"], m["proto"], m["question"]) for m in messages if m["kind"] in ("CQ", "CR")]


def test_the_same_client_messages_for_the_same_queries(
    captures: dict[str, list[dict[str, str]]],
) -> None:
    ours, unbound = (client_messages(captures[who]) for who in ("ours", "unbound"))
    # The start-up probe (OurResolver and UnboundProcess ask a question to see that the
    # server answers) comes first in each; the questions asked here come after it.
    tail = len(QUESTIONS) * 2
    assert ours[-tail:] == unbound[-tail:]
    expected = [(kind, "UDP", f"{name}/IN/A") for name in QUESTIONS for kind in ("CQ", "CR")]
    assert ours[-tail:] == expected


def upstream_between(messages: list[dict[str, str]], question: str, nth: int) -> set[str]:
    """The message types between the nth client query for ``question`` and its response."""
    kinds = [(m["kind"], m["question"]) for m in messages]
    starts = [i for i, k in enumerate(kinds) if k == ("CQ", question)]
    start = starts[nth]
    end = next(i for i in range(start, len(kinds)) if kinds[i] == ("CR", question))
    return {kind for kind, _ in kinds[start + 1 : end]}


def test_cold_questions_go_upstream_and_a_cached_one_does_not(
    captures: dict[str, list[dict[str, str]]],
) -> None:
    for who, messages in captures.items():
        assert upstream_between(messages, "www.google.com/IN/A", 0) == {"RQ", "RR"}, who
        assert upstream_between(messages, "www.google.com/IN/A", 1) == set(), who
        assert upstream_between(messages, "www.chain.com/IN/A", 0) == {"RQ", "RR"}, who


def test_the_cname_chain_asks_the_same_questions_upstream(
    captures: dict[str, list[dict[str, str]]],
) -> None:
    chain = {"www.chain.com/IN/A", "a.chain.net/IN/A", "b.chain.org/IN/A"}
    for who, messages in captures.items():
        asked = {m["question"] for m in messages if m["kind"] == "RQ"}
        answered = {m["question"] for m in messages if m["kind"] == "RR"}
        assert chain <= asked and chain <= answered, (who, sorted(asked))


def test_every_message_is_read_back(captures: dict[str, list[dict[str, str]]]) -> None:
    """dnstap-read parsed every frame of ours as it did Unbound's (a line each)."""
    for who, messages in captures.items():
        assert messages and all(int(m["size"]) >= 12 for m in messages), who  # a DNS header
        servers = {m["server"] for m in messages if m["kind"] in ("RQ", "RR")}
        assert servers and all(server.endswith(":53") for server in servers), who  # the NSD lab
