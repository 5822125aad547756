"""The web view's chain of trust on the signed lab (NSD, ldns-signzone): the resolver
validates from the lab's root KSK, and ``/trace`` draws each zone secure, the unsigned
delegation insecure, the bad signature bogus with its reason (over HTTP; the browser
tests are in tests/test_webview.py).
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from resolver.lab.nsd import NsdLab
from resolver.lab.unbound import OurResolver, free_port

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def web_port(
    signed_lab: NsdLab, signed_hints: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    port = free_port()
    workdir = tmp_path_factory.mktemp("web-signed")
    with OurResolver(workdir, signed_hints, free_port(), "--trust-anchor-file",
                     str(signed_lab.trust_anchor), "--metrics", f"127.0.0.1:{port}"):  # fmt: skip
        yield port


def drawn(port: int, name: str) -> str:
    url = f"http://127.0.0.1:{port}/trace.svg?name={name}&type=A"
    with urllib.request.urlopen(url, timeout=30) as reply:
        assert reply.status == 200 and reply.headers["Content-Type"] == "image/svg+xml"
        return str(reply.read().decode())


def states(svg: str, cls: str) -> dict[str, str]:
    """zone (or name) -> state of the elements of class ``cls``."""
    found = re.findall(rf'<g class="{cls} [^"]*"[^>]*?data-(?:name|zone)="([^"]*)"[^>]*?'
                       r'data-state="([^"]*)"', svg)  # fmt: skip
    return dict(found)


def test_a_secure_answer_draws_the_whole_chain_secure(web_port: int) -> None:
    svg = drawn(web_port, "www.example.com")
    assert states(svg, "trust-zone") == {".": "secure", "com.": "secure", "example.com.": "secure"}
    assert states(svg, "rrsig")["www.example.com."] == "secure"
    assert re.search(r"DS \d+ 13 2 [0-9A-F]+", svg)  # the DS at the parent, with its key tag
    assert re.search(r"DNSKEY \d+ ZSK alg 13, \d+ KSK alg 13", svg)


def test_an_unsigned_delegation_is_insecure(web_port: int) -> None:
    svg = drawn(web_port, "www.insecure.lab")
    assert states(svg, "trust-zone")["insecure.lab."] == "insecure"
    assert "no DS (proven absent)" in svg
    assert states(svg, "rrsig")["www.insecure.lab."] == "insecure"


def test_a_bad_signature_is_bogus_with_its_reason(web_port: int) -> None:
    svg = drawn(web_port, "www.badsig.lab")
    assert states(svg, "rrsig")["www.badsig.lab."] == "bogus"
    assert "bad signature" in svg
    assert re.search(r'<g class="question"[^>]*data-rcode="SERVFAIL"', svg)
