"""Our resolver and Unbound, side by side, on the lab's zones served by NSD.

Both start with empty caches and resolve every lab case from the root hints.
For each case the RCODE and the answer RRsets must be the same (names compared
without case, records in any order), TTLs must not exceed the zone's, and both
must give what the lab case expects.  Where NSD cannot imitate a lab server
(silent, poison, wrong-first: see tests/interop/nsd_lab.py) the case still runs:
the question is answered by the working servers, which is what it checks.
"""

from __future__ import annotations

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.lab.cases import CASES, LabCase, answer_of

pytestmark = pytest.mark.interop

ZONE_TTL_MAX = 300  # the largest TTL of any answer record in tests/lab/zones


def ask(port: int, case: LabCase) -> dns.message.Message:
    """Ask as a stub resolver does: UDP, TCP after TC=1, up to 3 tries of 5 seconds."""
    query = dns.message.make_query(case.qname, case.qtype, use_edns=0, payload=1232)
    for attempt in range(3):
        try:
            reply, _ = dns.query.udp_with_fallback(query, "127.0.0.1", port=port, timeout=5)
            return reply
        except dns.exception.Timeout:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_same_answer_as_unbound(case: LabCase, ours: int, unbound: int) -> None:
    theirs = ask(unbound, case)
    mine = ask(ours, case)
    assert dns.rcode.to_text(mine.rcode()) == dns.rcode.to_text(theirs.rcode()), case.note
    assert answer_of(mine) == answer_of(theirs), case.note
    assert dns.rcode.to_text(mine.rcode()) == case.rcode
    assert answer_of(mine) == case.answer
    for rrset in mine.answer:
        assert rrset.ttl <= ZONE_TTL_MAX
    # Minimal responses, like Unbound's minimal-responses: yes (which we set there).
    assert not mine.flags & dns.flags.AA
    assert mine.flags & dns.flags.RA
    assert not mine.additional
