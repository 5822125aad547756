"""Real clients against our resolver on the NSD hierarchy: dig and kdig, UDP and TCP,
with and without EDNS.  Each must get the answer the lab case expects."""

from __future__ import annotations

import re
import subprocess

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from resolver.lab.cases import CASES_BY_ID, Answer, LabCase
from resolver.lab.nsd import find_tool

pytestmark = pytest.mark.interop

CASE_IDS = ["glue", "glueless", "cname-chain", "cname-nxdomain", "nxdomain", "tcp", "srv", "aaaa"]

MODES = {
    "udp-edns": {"dig": ["+edns=0"], "kdig": ["+edns=0"]},
    "udp-noedns": {"dig": ["+noedns"], "kdig": ["+noedns"]},
    "tcp-edns": {"dig": ["+tcp", "+edns=0"], "kdig": ["+tcp", "+edns=0"]},
    "tcp-noedns": {"dig": ["+tcp", "+noedns"], "kdig": ["+tcp", "+noedns"]},
}

STATUS = re.compile(r"status: ([A-Z]+)")
# The transport of the reply shown: dig ";; SERVER: 127.0.0.1#2053(127.0.0.1) (UDP)",
# kdig ";; From 127.0.0.1@2053(UDP) in 0.4 ms".
TRANSPORT = re.compile(r"^;; (?:SERVER: \S+ \(|From \S+\()(UDP|TCP)\)", re.MULTILINE)
TRUNCATED = {"dig": ";; Truncated, retrying in TCP mode.", "kdig": "truncated reply from"}
EDNS_SHOWN = {"dig": "; EDNS: version: 0", "kdig": ";; Version: 0;"}


def parse(output: str) -> tuple[str, Answer]:
    """The status and the answer section of dig's or kdig's default output."""
    status = STATUS.search(output)
    assert status, output
    records = set()
    in_answer = False
    for line in output.splitlines():
        if line.startswith(";; ANSWER SECTION"):
            in_answer = True
            continue
        if in_answer and (not line.strip() or line.startswith(";;")):
            in_answer = False
        if in_answer:
            owner, _ttl, rdclass, rdtype, rdata = line.split(None, 4)
            parsed = dns.rdata.from_text(
                dns.rdataclass.from_text(rdclass), dns.rdatatype.from_text(rdtype), rdata
            )
            records.add((owner.lower(), rdtype, parsed.to_text()))
    return status.group(1), frozenset(records)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("client", ["dig", "kdig"])
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_client_gets_the_expected_answer(client: str, mode: str, case_id: str, ours: int) -> None:
    case: LabCase = CASES_BY_ID[case_id]
    binary = find_tool(client)
    assert binary is not None
    patience = ["+tries=1", "+time=10"] if client == "dig" else ["+retry=0", "+timeout=10"]
    command = [binary, "@127.0.0.1", "-p", str(ours), case.qname, case.qtype,
               *patience, *MODES[mode][client]]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    status, answer = parse(result.stdout)
    assert status == case.rcode, output
    assert answer == case.answer, output
    # Over UDP the big TXT comes back truncated (TC=1) and the client retries over TCP.
    over_udp = mode.startswith("udp")
    truncated = over_udp and case_id == "tcp"
    assert (TRUNCATED[client] in output) == truncated, output
    transport = TRANSPORT.findall(output)
    assert transport == ["UDP" if over_udp and not truncated else "TCP"], output
    # An OPT record in the reply exactly when the query had one (RFC 6891 §7).
    assert (EDNS_SHOWN[client] in output) == mode.endswith("-edns"), output
