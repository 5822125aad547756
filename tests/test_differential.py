"""The differential tester's own parts, without servers: the generator (seeded, valid,
replayable), the comparison (what is normalised, what is a difference), the
known-differences file, and the fronts' rewriting of replies.

The runs against NSD and Unbound are in tests/interop/test_differential.py.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from resolver.lab.differences import (
    FIELDS,
    KnownDifferencesError,
    Outcome,
    TtlBounds,
    classify,
    differing,
    load_known,
    outcome,
    parse_known,
)
from resolver.lab.differential import MODES
from resolver.lab.front import question_key, strip_negative
from resolver.lab.generated import generate
from resolver.lab.generated_model import Hierarchy, Question, hierarchy_seed
from resolver.lab.nsd import find_tool

ROOT = Path(__file__).resolve().parent.parent
KNOWN = ROOT / "tests" / "differential" / "known-differences"
CASES = sorted((ROOT / "tests" / "differential" / "cases").glob("*.json"))
SEEDS = [hierarchy_seed(23, index) for index in range(40)]


# -- the generator ---------------------------------------------------------------------------


def test_a_seed_makes_the_same_hierarchy() -> None:
    assert generate(SEEDS[0]).dumps() == generate(SEEDS[0]).dumps()
    assert generate(SEEDS[0]).dumps() != generate(SEEDS[1]).dumps()


def test_hierarchy_seeds_are_stable() -> None:
    """A run's hierarchies are named by these seeds in reports: they must not drift."""
    assert hierarchy_seed(1, 0) == 106032415542778
    assert hierarchy_seed(1, 0) != hierarchy_seed(2, 0) != hierarchy_seed(1, 1)


@pytest.mark.parametrize("seed", SEEDS[:10])
def test_json_round_trip(seed: int) -> None:
    hierarchy = generate(seed)
    again = Hierarchy.from_json(json.loads(hierarchy.dumps()))
    assert again == hierarchy


def _addresses(hierarchy: Hierarchy) -> set[str]:
    served = {a for server in hierarchy.servers for a in server.addresses}
    return served | {f.address for f in hierarchy.fronts} | set(hierarchy.dead)


@pytest.mark.parametrize("seed", SEEDS)
def test_every_address_is_on_loopback_and_in_the_plan(seed: int) -> None:
    hierarchy = generate(seed)
    for address in _addresses(hierarchy):
        assert ipaddress.ip_address(address) in ipaddress.ip_network("127.0.0.0/8")
    assert {s.addresses[0].split(".")[1] for s in hierarchy.servers} == {"50"}
    assert {f.address.split(".")[1] for f in hierarchy.fronts} <= {"51"}
    assert {d.split(".")[1] for d in hierarchy.dead} <= {"52"}
    for front in hierarchy.fronts:  # a front relays to a server of the hierarchy
        assert any(front.backend in s.addresses for s in hierarchy.servers)


@pytest.mark.parametrize("seed", SEEDS)
def test_questions_are_distinct_and_tagged(seed: int) -> None:
    hierarchy = generate(seed, questions=50)
    asked = [(q.qname.lower(), q.qtype) for q in hierarchy.questions]
    assert len(asked) == len(set(asked)) == 50
    assert all(q.qname.endswith(".") for q in hierarchy.questions)


def test_the_generator_reaches_every_case() -> None:
    """Over a few dozen hierarchies, every awkward case the issue lists comes up."""
    tags: set[str] = set()
    changes = signed = 0
    for seed in SEEDS:
        hierarchy = generate(seed)
        tags.update(tag for zone_tags in hierarchy.zone_tags.values() for tag in zone_tags)
        tags.update(tag for question in hierarchy.questions for tag in question.tags)
        changes += hierarchy.change is not None
        signed += hierarchy.signing.signed
    wanted = {
        "glueless", "sibling-glue", "missing-glue", "glue-mismatch", "ns-in-parent",
        "ns-cycle", "ns-differ", "lame", "dead", "slow", "drop", "strip-soa", "v6only",
        "tcp", "ttl0", "ttl-max", "ent", "wildcard", "wildcard-cname", "wildcard-ent",
        "cname-chain", "cname-loop", "dname", "dname-chain", "dname-loop", "dname-growing",
        "nxdomain", "nodata", "signed", "insecure", "nsec3", "broken-signature",
        "cut-below-ent", "parent-server", "change",
    }  # fmt: skip
    assert wanted <= tags, wanted - tags
    assert 0 < changes < len(SEEDS) and 0 < signed < len(SEEDS)


@pytest.mark.skipif(find_tool("nsd-checkzone") is None and os.environ.get("CI") != "true",
                    reason="nsd-checkzone missing (apt-get install nsd)")  # fmt: skip
@pytest.mark.parametrize("seed", SEEDS[:20])
def test_every_zone_loads_in_nsd(seed: int, tmp_path: Path) -> None:
    """Valid hierarchies: every zone, in every version, passes nsd-checkzone without a
    warning (no CNAME beside other data, nothing below a DNAME, no out-of-zone data)."""
    checker = find_tool("nsd-checkzone")
    assert checker is not None
    hierarchy = generate(seed)
    texts = [*hierarchy.zones.items()]
    texts += [item for zones in hierarchy.variants.values() for item in zones.items()]
    if hierarchy.change is not None:
        texts.append((hierarchy.change.parent, hierarchy.change.parent_text))
    for origin, text in texts:
        path = tmp_path / "zone"
        path.write_text(text)
        done = subprocess.run([checker, origin, str(path)], capture_output=True, text=True,
                              check=False)  # fmt: skip
        output = done.stdout + done.stderr
        assert done.returncode == 0 and "warning" not in output.lower(), (origin, output)


# -- the comparison ------------------------------------------------------------------------------


def _reply(text: str) -> dns.message.Message:
    return dns.message.from_text(text)


def _bounds() -> TtlBounds:
    hierarchy = Hierarchy(0, {
        "test.": "$ORIGIN test.\ntest. 300 IN SOA ns.test. hm.test. 1 2 3 4 60\n"
                 "test. 300 IN NS ns.test.\n"
                 "ns.test. 300 IN A 127.50.1.1\nwww.test. 3600 IN A 192.0.2.1\n"
                 "www.test. 3600 IN A 192.0.2.2\n*.w.test. 100 IN TXT \"x\"\n",
    }, ())  # fmt: skip
    return TtlBounds(hierarchy)


ANSWER = """id 1
opcode QUERY
rcode NOERROR
flags QR RD RA
;QUESTION
www.test. IN A
;ANSWER
{answer}
;AUTHORITY
;ADDITIONAL
"""


def test_order_case_and_ttls_are_normalised() -> None:
    question = Question("www.test.", "A")
    first = outcome(_reply(ANSWER.format(answer="www.test. 3600 IN A 192.0.2.1\n"
                                                "www.test. 3600 IN A 192.0.2.2")), question,
                    _bounds())  # fmt: skip
    second = outcome(_reply(ANSWER.format(answer="WWW.Test. 17 IN A 192.0.2.2\n"
                                                 "www.test. 17 IN A 192.0.2.1")), question,
                     _bounds())  # fmt: skip
    assert differing(first, second) == ()


def test_ttls_above_the_zone_are_reported() -> None:
    question = Question("www.test.", "A")
    high = outcome(_reply(ANSWER.format(answer="www.test. 3601 IN A 192.0.2.1")), question,
                   _bounds())  # fmt: skip
    fine = outcome(_reply(ANSWER.format(answer="www.test. 3600 IN A 192.0.2.1")), question,
                   _bounds())  # fmt: skip
    assert high.ttls == ("www.test. A above 3600",)
    assert differing(high, fine) == ("ttls",)
    # A wildcard's expansion is bound by the wildcard's TTL.
    wild = outcome(_reply(ANSWER.format(answer='a.b.w.test. 101 IN TXT "x"').replace(
        "www.test. IN A", "a.b.w.test. IN TXT")), Question("a.b.w.test.", "TXT"), _bounds())
    assert wild.ttls == ("a.b.w.test. TXT above 100",)


def test_a_failure_is_a_failure() -> None:
    """SERVFAIL and no answer in time are one class; of a failure nothing else counts."""
    servfail = Outcome("SERVFAIL", answer=("www.test. CNAME x.test.",))
    assert differing(servfail, Outcome("TIMEOUT")) == ()
    assert differing(servfail, Outcome("NOERROR")) == ("rcode",)
    assert differing(Outcome("NXDOMAIN", soa=("test.",)), Outcome("NXDOMAIN")) == ("soa",)
    assert differing(Outcome("NOERROR", ad=True), Outcome("NOERROR")) == ("ad",)
    assert set(FIELDS) == {"rcode", "answer", "ad", "soa", "ttls"}


def test_negative_answers_compare_their_soa_owner() -> None:
    nodata = """id 1
opcode QUERY
rcode NOERROR
flags QR RD RA
;QUESTION
www.test. IN MX
;ANSWER
;AUTHORITY
test. 60 IN SOA ns.test. hm.test. 1 2 3 4 60
;ADDITIONAL
"""
    result = outcome(_reply(nodata), Question("www.test.", "MX"), _bounds())
    assert result.soa == ("test.",) and result.ttls == ()
    long = outcome(_reply(nodata.replace("test. 60 IN SOA", "test. 61 IN SOA")),
                   Question("www.test.", "MX"), _bounds())  # fmt: skip
    assert long.ttls == ("test. SOA above 60 (negative TTL)",)  # RFC 2308 section 5


# -- the known-differences file -------------------------------------------------------------------


def test_known_differences_file_parses() -> None:
    known = load_known(KNOWN)
    assert known and len({entry.id for entry in known}) == len(known)
    for entry in known:
        assert entry.why and (entry.kind == "bug" or "RFC" in entry.why or entry.kind == "unbound")


@pytest.mark.parametrize("line", [
    "x rfc", "x maybe tag=a why", "x rfc colour=red why", "x rfc fields=colour why",
])  # fmt: skip
def test_bad_known_lines_are_refused(line: str) -> None:
    with pytest.raises(KnownDifferencesError):
        parse_known(line)


def test_conditions_and_or() -> None:
    (entry,) = parse_known("x rfc tag=a,tag=b+c,ours=SERVFAIL,fields=rcode why")
    question = Question("n.", "A", ("a", "c"))
    servfail, noerror = Outcome("TIMEOUT"), Outcome("NOERROR")
    assert entry.matches(question, "cold", ("rcode",), servfail, noerror)
    assert not entry.matches(Question("n.", "A", ("a",)), "cold", ("rcode",), servfail, noerror)
    assert not entry.matches(question, "cold", ("rcode",), noerror, servfail)
    (timeout,) = parse_known("y unbound unbound=TIMEOUT why")
    assert timeout.matches(question, "cold", ("rcode",), noerror, Outcome("TIMEOUT"))
    assert not timeout.matches(question, "cold", ("rcode",), noerror, Outcome("SERVFAIL"))


def test_every_known_difference_has_a_case_and_each_case_its_line() -> None:
    """Each line is shown by a minimal replay (tests/differential/cases/), and the line
    matches what that replay recorded (a case whose line was deleted is a bug fixed: it
    must now give the same answers, tests/interop/test_differential.py)."""
    known = load_known(KNOWN)
    ids = {entry.id for entry in known}
    shown = set()
    for path in CASES:
        data = json.loads(path.read_text())
        if data["known"] not in ids:
            continue
        question = Question(data["question"]["qname"], data["question"]["qtype"],
                            tuple(data["question"]["tags"]))  # fmt: skip
        ours, theirs = Outcome.from_json(data["ours"]), Outcome.from_json(data["unbound"])
        entry = classify(known, question, data["mode"], tuple(data["fields"]), ours, theirs)
        assert entry is not None and entry.id == data["known"], path.name
        shown.add(entry.id)
    # Only a line that says why it has none may go without a case.
    assert shown == {entry.id for entry in known if "(no minimal case:" not in entry.why}


# -- the fronts ----------------------------------------------------------------------------------


def _negative(rcode: int, aa: bool) -> bytes:
    query = dns.message.make_query("x.test.", "A")
    reply = dns.message.make_response(query)
    reply.set_rcode(rcode)
    if aa:
        reply.flags |= dns.flags.AA
    soa = dns.rrset.from_text("test.", 60, "IN", "SOA", "ns.test. hm.test. 1 2 3 4 60")
    reply.authority.append(soa)
    return reply.to_wire()


@pytest.mark.parametrize("rcode", [dns.rcode.NXDOMAIN, dns.rcode.NOERROR])
def test_strip_soa_removes_the_authority_of_negative_answers(rcode: int) -> None:
    stripped = dns.message.from_wire(strip_negative(_negative(rcode, aa=True)))
    assert stripped.authority == [] and stripped.rcode() == rcode


def test_strip_soa_leaves_referrals_and_answers() -> None:
    referral = _negative(dns.rcode.NOERROR, aa=False)  # no AA: not an authoritative denial
    assert strip_negative(referral) == referral
    assert strip_negative(b"\x00\x01junk") == b"\x00\x01junk"


def test_the_drop_key_ignores_the_query_id_and_case() -> None:
    first = dns.message.make_query("WWW.test.", "A")
    second = dns.message.make_query("www.TEST.", "A")
    assert question_key(first.to_wire()) == question_key(second.to_wire())
    other = dns.message.make_query("www.test.", "AAAA")
    assert question_key(other.to_wire()) != question_key(first.to_wire())


def test_cases_are_replay_files() -> None:
    assert CASES, "tests/differential/cases/ holds the minimal replays"
    for path in CASES:
        data = json.loads(path.read_text())
        Hierarchy.from_json(data["hierarchy"])
        assert data["mode"] in MODES and data["known"]
