"""Signatures and proofs recorded in Deckard's scenarios (CZ.NIC, BSD licence): data nobody
here made.  The 2015 root and cz. of iter_validate, and the RFC 5155 example zone signed
with RSASHA1-NSEC3-SHA1 of the val_nsec3_b* scenarios, with the outcome each scenario
expects (AD set, AD clear, or SERVFAIL)."""

from __future__ import annotations

import calendar
import time

import pytest

from resolver.dnssec import (
    DenialReason,
    DenialStatus,
    KeyStatus,
    SigStatus,
    parse_trust_anchors,
    prove_nodata,
    prove_nxdomain,
    prove_wildcard_answer,
    root_trust_anchors,
    validate_dnskeys,
    verify_rrset,
)
from resolver.wire import ResourceRecord
from resolver.wire.zonefile import parse_zone


def rrset_of(records: list[ResourceRecord], owner: str, rrtype: int) -> list[ResourceRecord]:
    return [r for r in records if r.name == owner and r.rrtype == rrtype]


# ---------------------------------------------------------------- real signatures of 2015

# The root and cz. as Deckard recorded them for its iter_validate scenario (CZ.NIC, BSD
# licence), with its trust anchor (root KSK-2010, tag 19036) and its validation time.
DECKARD_TIME = 1437625000
DECKARD_ANCHOR = (
    ". 3600 IN DS 19036 8 2 49AAC11D7B6F6446702E54A1607371607A1A41855200FD2CE1CDDE32F24E8FB5"
)
DECKARD_RECORDS = (
    ". 172800 IN DNSKEY 256 3 8 (\n"
    "    AwEAAa67bQck1JjopOOFc+iMISFcp/osWrEst2wbKbuQSUWu77QC9UHL\n"
    "    ipiHgWN7JlqVAEjKITZz49hhkLmOpmLK55pTq+RD2kwoyNWk9cvpc+tS\n"
    "    nIxT7i93O+3oVeLYjMWrkDAz7K45rObbHDuSBwYZKrcSIUCZnCpNMUtn PFl/04cb )\n"
    ". 172800 IN DNSKEY 257 3 8 (\n"
    "    AwEAAagAIKlVZrpC6Ia7gEzahOR+9W29euxhJhVVLOyQbSEW0O8gcCjF\n"
    "    FVQUTf6v58fLjwBd0YI0EzrAcQqBGCzh/RStIoO8g0NfnfL2MTJRkxoX\n"
    "    bfDaUeVPQuYEhg37NZWAJQ9VnMVDxP/VHL496M/QZxkjf5/Efucp2gaD\n"
    "    X6RS6CXpoY68LsvPVjR0ZSwzz1apAzvN9dlzEheX7ICJBBtuA6G3LQpz\n"
    "    W5hOA2hzCTMjJPJ8LbqF6dsV6DoBQzgul0sGIcGOYl7OyQdXfZ57relS\n"
    "    Qageu+ipAdTTJ25AsRTAoub8ONGcLmqrAmRLKBP1dfwhYB4N7knNnulq QxA+Uk1ihz0= )\n"
    ". 172800 IN RRSIG DNSKEY 8 0 172800 20150804235959 20150721000000 19036 . (\n"
    "    n9FwNj80Zik2Rr2zTB4F17ydFpiZfUIv8v/XAz4EbSgRxQgFT+TCz3FW\n"
    "    i4O7tW5REXUVNHtULiS7fxKLsHZNDPev8DA20DXAw3eEIDi9pDi01O/e\n"
    "    4GnljpkPnP8d5zA62Dob4cxgmhjjFTvhIjtDsH5Dd4jmyHsgBboy4grZ\n"
    "    uJNdsez76gD4Ad6WlosZn5Hj5JwqaxZlRph/6I3va4rkp4c32w5DwaQ7\n"
    "    WSne8ffMHX9r7Dn6EbT3FfvnXFDNPE1P6r+qzTzC0t+M/F4R3H+VOdqg\n"
    "    cRJcBG6zGCh9ZErhAeoiJh1WAfpjpzx+TUMzqxZCjSC/XL+l2YMKVHtF 8WNg/w== )\n"
    ". 518400 IN NS a.root-servers.net.\n"
    ". 518400 IN NS b.root-servers.net.\n"
    ". 518400 IN NS c.root-servers.net.\n"
    ". 518400 IN NS d.root-servers.net.\n"
    ". 518400 IN NS e.root-servers.net.\n"
    ". 518400 IN NS f.root-servers.net.\n"
    ". 518400 IN NS g.root-servers.net.\n"
    ". 518400 IN NS h.root-servers.net.\n"
    ". 518400 IN NS i.root-servers.net.\n"
    ". 518400 IN NS j.root-servers.net.\n"
    ". 518400 IN NS k.root-servers.net.\n"
    ". 518400 IN NS l.root-servers.net.\n"
    ". 518400 IN NS m.root-servers.net.\n"
    ". 518400 IN RRSIG NS 8 0 518400 20150802050000 20150723040000 1518 . (\n"
    "    JSoL4/wQXh7vzoY/m98WYbpr2/S66u4RQi/UhkSrR3JmPZaWRRERDFm6\n"
    "    RRrFY6GWt4CP61X9rvshuVT+0OhluXqYpEatoHEDgur+PKf3+dTAmcgQ\n"
    "    4RzsahwhQ42Y9fDgJ2nNVMcN97HEIH+qMv0FWjU9b7wJ2iYlDL1ZoAVu TKE= )\n"
    "cz. 18000 IN DNSKEY 256 3 10 (\n"
    "    AwEAAbwKeyKB5fuLe16/N5MR6OoG/PO8uxEob7HoIjK0w0wNjwINYb2w\n"
    "    edLtzhVlA4HJ0AUUBuZiNj41hlJ474SOBlsAA7BQdtbL1V0Ksk8IC5Z8\n"
    "    3ldU9Mp+ynkj9p9Cl2UOBmoVFYfkbwz0BsOptcXruYA52Ayc9rHrmDPI /0Y8gZAL )\n"
    "cz. 18000 IN DNSKEY 257 3 10 (\n"
    "    AwEAAay0hi4HN2r/BqMQTpIPIVDyjmyF+9ZWvr5Lewx+q+947o/GrRv4\n"
    "    FGFfkZxf9CFfYVUf0jG5Yq4i06pGVNwJl81HS9Ux2oeHRXUvgtLnl5He\n"
    "    RVLL+zgI5byx9HSNr4bPO8ZEn5OjoayhkNyGSFr4VWrzQk/K02vLP4d1\n"
    "    cCEzUQy30eyZto2/tG5ZwCU/iRkS1PJOcOW98hiFIfFDZv1XjbEpqEYh\n"
    "    T2PATs6rt+BKwSHKGISmg1PNdg+y0rItemYMWr1f9BGAdtTWoPCPCYPj\n"
    "    OZMPoIyA4tMscD+ww54Jf/QNoHccY4hO1yHiuAXG7SUn8jo0IKQ9W7JJ xES0aqFCX/0= )\n"
    "cz. 18000 IN NS a.ns.nic.cz.\n"
    "cz. 18000 IN NS b.ns.nic.cz.\n"
    "cz. 18000 IN NS c.ns.nic.cz.\n"
    "cz. 18000 IN NS d.ns.nic.cz.\n"
    "cz. 18000 IN RRSIG DNSKEY 10 1 18000 20150802000000 20150719000000 54576 cz. (\n"
    "    K04ONpLX3wseqHhUu2QLBY7wzSUszVlut5mC6jpCAqbfhgIvGMnyoWP5\n"
    "    lKwSvCLmjie0j1HSv8Q4OmoYGz8L+P/FGAzK4LhMturHrDtHkpuGvQJ6\n"
    "    //UsHQhf4iwCg5tEeHI4ZvaMmqRZI3FhBnSh0OyFjGO73FRbBU9nDrOM\n"
    "    sPB1iCUfRfZhQU0sB/rj82ykBUma280sO1aRp3gmQHc/SVNbFfCL1Z8D\n"
    "    htBP6sy4Jh0z3Z40d4CFZ8ZCBsIloHO44/GvXGePtr2dW4gJsoU1619B\n"
    "    Jz+6cuTRh5RJBiweUNb/nwjBP8fNRkzH1CbjomC2FpDMnBXw7jE1GUiY vLW9Gg== )\n"
    "cz. 18000 IN RRSIG DNSKEY 10 1 18000 20150805131929 20150723140842 39788 cz. (\n"
    "    KhyRPt4TYVYH7VAsfn39tY66+5P8bgZhG83d33oogLuqQEPgsxt/tu0c\n"
    "    snrUA11Ub+4wOK3MslD5/gTyBuDtT9dk4FbRr3WeUZ4DNn5laYO3AcYx\n"
    "    SAU3Vn3dZ8orWFxEwTKNhH5QthPdHj8p8097KRHiPo/DGEnFpYdocEws WJ4= )\n"
    "cz. 18000 IN RRSIG NS 10 1 18000 20150802132511 20150721120844 39788 cz. (\n"
    "    pf5UzinUesHzGQTav/1NxGW0AifCmzLW3S8X9tWDRwx7XSKGac7QVXgp\n"
    "    nMNyb/NiSho9oj+ZTaQpBZQaTri+brHT4W/nE0TofqZlyYiaABb9xgxJ\n"
    "    LgjLkt+OVcJsM3a+q+QEGSt+skNlZVDQeR+sztbuORiZXAqhxumxD8iy zZ8= )\n"
    "cz. 86400 IN DS 54576 10 2 (\n"
    "    397E50C85EDE9CDE33F363A9E66FD1B216D788F8DD438A57A423A386 869C8F06 )\n"
    "cz. 86400 IN RRSIG DS 8 1 86400 20150802050000 20150723040000 1518 . (\n"
    "    fEz3NpYRzgeBjKrLMpht3KFOQ0t6U2wikIaOt1HcmFvurxtPkZVvqdb0\n"
    "    QBQfvh8DoEXDbvpcikzMIO9XYLzzs10X/m91ybGiWzcTVcU+prVGZJP9\n"
    "    zZrvYAIWrpxoC4deKD+vOoNZXGnLfffi6lmGn7QRZaH0LVKjn33cIaPQ 9EM= )\n"
)


def test_the_2015_root_and_cz_validate() -> None:
    records = parse_zone(DECKARD_RECORDS, source="iter_validate.rpl")
    sigs = rrset_of(records, ".", 46) + rrset_of(records, "cz.", 46)
    anchors = parse_trust_anchors(DECKARD_ANCHOR).for_zone(".")
    root = validate_dnskeys(".", rrset_of(records, ".", 48), sigs, anchors, DECKARD_TIME)
    assert root.status is KeyStatus.SECURE  # RSASHA256, KSK 19036
    assert verify_rrset(rrset_of(records, ".", 2), sigs, root.keys, DECKARD_TIME).valid
    cz_ds = rrset_of(records, "cz.", 43)
    assert verify_rrset(cz_ds, sigs, root.keys, DECKARD_TIME).valid  # signed by the root ZSK
    cz = validate_dnskeys("cz.", rrset_of(records, "cz.", 48), sigs, cz_ds, DECKARD_TIME)
    assert cz.status is KeyStatus.SECURE  # RSASHA512, KSK 54576
    ns = verify_rrset(rrset_of(records, "cz.", 2), sigs, cz.keys, DECKARD_TIME)
    assert ns.valid and ns.ttl == 18000
    # A week after the signatures expired, the same data is expired.
    later = DECKARD_TIME + 14 * 86400
    assert validate_dnskeys(".", rrset_of(records, ".", 48), sigs, anchors, later).reason is (
        SigStatus.EXPIRED
    )
    # And the shipped root anchors (KSK-2017 and KSK-2024) do not vouch for KSK-2010.
    today = root_trust_anchors().for_zone(".")
    verdict = validate_dnskeys(".", rrset_of(records, ".", 48), sigs, today, DECKARD_TIME)
    assert (verdict.status, verdict.reason) == (KeyStatus.BOGUS, SigStatus.NO_MATCHING_KEY)


# ---------------------------------------------------------------- NSEC3, RFC 5155's zone

# The val_nsec3_b* scenarios: their anchor, their clock, the example zone's keys, and the
# NSEC3 records (opt-out, 12 iterations, salt aabbccdd) of their responses, deduplicated.
NSEC3_ANCHOR = (
    "example. DNSKEY 257 3 7 AwEAAcUlFV1vhmqx6NSOUOq2R/dsR7Xm3upJ ( j7IommWSpJABVfW8Q0rOvXdM6kzt"
    "+TAu92L9 AbsUdblMFin8CVF3n4s= )"
)
NSEC3_TIME = calendar.timegm(time.strptime("20120420235959", "%Y%m%d%H%M%S"))
NSEC3_RECORDS = (
    "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom.example. 3600 IN NSEC3 1 1 12 AABBCCDD (\n"
    "    2t7b4g4vsa5smi47k61mv5bv1a22bojr NS SOA MX RRSIG DNSKEY NSEC3PARAM )\n"
    "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom.example. 3600 IN RRSIG NSEC3 7 2 (\n"
    "    3600 20150420235959 20051021000000 40430 example.\n"
    "    OSgWSm26B+cS+dDL8b5QrWr/dEWhtCsKlwKLIBHYH6blRxK9rC0bMJPwQ4mLIuw8\n"
    "    5H2EY762BOCXJZMnpuwhpA== )\n"
    "35mthgpgcu1qg68fab165klnsnk3dpvl.example. 3600 IN NSEC3 1 1 12 AABBCCDD (\n"
    "    b4um86eghhds6nea196smvmlo4ors995 NS DS RRSIG )\n"
    "35mthgpgcu1qg68fab165klnsnk3dpvl.example. 3600 IN RRSIG NSEC3 7 2 (\n"
    "    3600 20150420235959 20051021000000 40430 example.\n"
    "    g6jPUUpduAJKRljUsN8gB4UagAX0NxY9shwQAynzo8EUWH+z6hEIBlUTPGj15eZl\n"
    "    l6VhQqgZXtAIR3chwgW+SA== )\n"
    "b4um86eghhds6nea196smvmlo4ors995.example. 3600 IN NSEC3 1 1 12 AABBCCDD (\n"
    "    gjeqe526plbf1g8mklp59enfd789njgi MX RRSIG )\n"
    "b4um86eghhds6nea196smvmlo4ors995.example. 3600 IN RRSIG NSEC3 7 2 (\n"
    "    3600 20150420235959 20051021000000 40430 example.\n"
    "    ZkPG3M32lmoHM6pa3D6gZFGB/rhL//Bs3Omh5u4m/CUiwtblEVOaAKKZd7S959Oe\n"
    "    iX43aLX3pOv0TSTyiTxIZg== )\n"
    "example. 3600 IN DNSKEY 256 3 7 (\n"
    "    AwEAAaetidLzsKWUt4swWR8yu0wPHPiUi8LUsAD0QPWU+wzt89epO6tHzkMBVDkC\n"
    "    7qphQO2hTY4hHn9npWFRw5BYubE= )\n"
    "example. 3600 IN DNSKEY 257 3 7 (\n"
    "    AwEAAcUlFV1vhmqx6NSOUOq2R/dsR7Xm3upJj7IommWSpJABVfW8Q0rOvXdM6kzt\n"
    "    +TAu92L9AbsUdblMFin8CVF3n4s= )\n"
    "example. 3600 IN RRSIG DNSKEY 7 1 (\n"
    "    3600 20150420235959 20051021000000 12708 example.\n"
    "    AuU4juU9RaxescSmStrQks3Gh9FblGBlVU31uzMZ/U/FpsUb8aC6QZS+sTsJXnLn\n"
    "    z7flGOsmMGQZf3bH+QsCtg== )\n"
    "ji6neoaepv8b5o6k4ev33abha8ht9fgc.example. 3600 IN NSEC3 1 1 12 AABBCCDD (\n"
    "    k8udemvp1j2f7eg6jebps17vp3n8i58h )\n"
    "ji6neoaepv8b5o6k4ev33abha8ht9fgc.example. 3600 IN RRSIG NSEC3 7 2 (\n"
    "    3600 20150420235959 20051021000000 40430 example.\n"
    "    gPkFp1s2QDQ6wQzcg1uSebZ61W33rUBDcTj72F3kQ490fEdp7k1BUIfbcZtPbX3Y\n"
    "    CpE+sIt0MpzVSKfTwx4uYA== )\n"
    "k8udemvp1j2f7eg6jebps17vp3n8i58h.example. 3600 IN NSEC3 1 1 12 AABBCCDD (\n"
    "    kohar7mbb8dc2ce8a9qvl8hon4k53uhi )\n"
    "k8udemvp1j2f7eg6jebps17vp3n8i58h.example. 3600 IN RRSIG NSEC3 7 2 (\n"
    "    3600 20150420235959 20051021000000 40430 example.\n"
    "    FtXGbvF0+wf8iWkyo73enAuVx03klN+pILBKS6qCcftVtfH4yVzsEZquJ27NHR7r\n"
    "    uxJWDNMtOtx7w9WfcIg62A== )\n"
    "q04jkcevqvmu85r014c7dkba38o0ji5r.example. 3600 IN NSEC3 1 1 12 AABBCCDD (\n"
    "    r53bq7cc2uvmubfu5ocmm6pers9tk9en A RRSIG )\n"
    "q04jkcevqvmu85r014c7dkba38o0ji5r.example. 3600 IN RRSIG NSEC3 7 2 (\n"
    "    3600 20150420235959 20051021000000 40430 example.\n"
    "    hV5I89b+4FHJDATp09g4bbN0R1F845CaXpL3ZxlMKimoPAyqletMlEWwLfFia7sd\n"
    "    pSzn+ZlNNlkxWcLsIlMmUg== )\n"
    "r53bq7cc2uvmubfu5ocmm6pers9tk9en.example. 3600 IN NSEC3 1 1 12 AABBCCDD (\n"
    "    t644ebqk9bibcna874givr6joj62mlhv MX RRSIG )\n"
    "r53bq7cc2uvmubfu5ocmm6pers9tk9en.example. 3600 IN RRSIG NSEC3 7 2 (\n"
    "    3600 20150420235959 20051021000000 40430 example.\n"
    "    aupviViruXs4bDg9rCbezzBMf9h1ZlDvbW/CZFKulIGXXLj8B/fsDJarXVDA9bnU\n"
    "    oRhEbKp+HF1FWKW7RIJdtQ== )\n"
    "a.z.w.example. 3600 IN MX 1 ai.example.\n"
    "a.z.w.example. 3600 IN RRSIG MX 7 2 (\n"
    "    3600 20150420235959 20051021000000 40430 example.\n"
    "    CikebjQwGQPwijVcxgcZcSJKtfynugtlBiKb9FcBTrmOoyQ4InoWVudhCWsh/URX\n"
    "    3lc4WRUMivEBP6+4KS3ldA== )\n"
)
OPT_OUT = (DenialStatus.INSECURE, DenialReason.OPT_OUT)  # AD clear: RFC 5155 section 9.2


@pytest.fixture(scope="module")
def example() -> tuple[list[ResourceRecord], list[ResourceRecord]]:
    """The records, and the example zone's keys as validated from the anchor."""
    records = parse_zone(NSEC3_RECORDS, source="val_nsec3_b*.rpl")
    anchors = parse_trust_anchors(NSEC3_ANCHOR).for_zone("example.")
    sigs = [r for r in records if r.rrtype == 46]
    verdict = validate_dnskeys(
        "example.", rrset_of(records, "example.", 48), sigs, anchors, NSEC3_TIME
    )
    assert verdict.status is KeyStatus.SECURE  # RSASHA1-NSEC3-SHA1, 512-bit keys
    return records, list(verdict.keys)


def nsec3s(records: list[ResourceRecord], *prefixes: str) -> list[ResourceRecord]:
    return [r for r in records if r.rrtype == 50 and r.name.startswith(prefixes)]


def test_every_nsec3_is_signed(
    example: tuple[list[ResourceRecord], list[ResourceRecord]],
) -> None:
    records, keys = example
    sigs = [r for r in records if r.rrtype == 46]
    found = nsec3s(records, "")
    assert len(found) == 7
    for record in found:
        assert verify_rrset([record], sigs, keys, NSEC3_TIME).valid
        assert verify_rrset([record], sigs, keys, NSEC3_TIME + 4 * 365 * 86400).status is (
            SigStatus.EXPIRED
        )


@pytest.mark.parametrize(
    ("scenario", "prefixes", "expected"),
    [
        ("val_nsec3_b1_nameerror", ("0p9m", "b4um", "35mt"), OPT_OUT),  # NXDOMAIN, no AD
        ("val_nsec3_b1_nameerror_noce", ("0p9m", "35mt"), DenialStatus.NOT_PROVED),  # SERVFAIL
        ("val_nsec3_b1_nameerror_nonc", ("b4um", "35mt"), DenialStatus.NOT_PROVED),
        ("val_nsec3_b1_nameerror_nowc", ("0p9m", "b4um"), DenialStatus.NOT_PROVED),
    ],
)
def test_b1_name_error(
    example: tuple[list[ResourceRecord], list[ResourceRecord]],
    scenario: str,
    prefixes: tuple[str, ...],
    expected: object,
) -> None:
    result = prove_nxdomain("a.c.x.w.example.", nsec3s(example[0], *prefixes), "example.")
    got = (result.status, result.reason) if isinstance(expected, tuple) else result.status
    assert got == expected, scenario


def test_b21_empty_non_terminal(
    example: tuple[list[ResourceRecord], list[ResourceRecord]],
) -> None:
    records = example[0]
    assert prove_nodata("y.w.example.", 1, nsec3s(records, "ji6n"), "example.").proved  # AD
    # val_nsec3_b21_nodataent_wr: the record of a.example instead, SERVFAIL.
    wrong = prove_nodata("y.w.example.", 1, nsec3s(records, "35mt"), "example.")
    assert wrong.status is DenialStatus.NOT_PROVED


def test_b4_wildcard_answer(
    example: tuple[list[ResourceRecord], list[ResourceRecord]],
) -> None:
    records, keys = example
    answer = rrset_of(records, "a.z.w.example.", 15)
    verdict = verify_rrset(answer, rrset_of(records, "a.z.w.example.", 46), keys, NSEC3_TIME)
    assert verdict.valid and verdict.wildcard == "*.w.example."
    assert verdict.rrsig is not None
    result = prove_wildcard_answer(
        "a.z.w.example.", verdict.rrsig.labels, nsec3s(records, "q04j"), "example."
    )
    assert (result.status, result.reason) == OPT_OUT  # val_nsec3_b4_wild: no AD


def test_b5_wildcard_no_data(
    example: tuple[list[ResourceRecord], list[ResourceRecord]],
) -> None:
    records = example[0]
    full = prove_nodata("a.z.w.example.", 28, nsec3s(records, "k8ud", "q04j", "r53b"), "example.")
    assert (full.status, full.reason) == OPT_OUT
    # val_nsec3_b5_wcnodata_nowc: without the wildcard's record, still no AD (opt-out).
    nowc = prove_nodata("a.z.w.example.", 28, nsec3s(records, "k8ud", "q04j"), "example.")
    assert (nowc.status, nowc.reason) == OPT_OUT
    # _noce and _nonc: SERVFAIL.
    for prefixes in (("q04j", "r53b"), ("k8ud", "r53b")):
        result = prove_nodata("a.z.w.example.", 28, nsec3s(records, *prefixes), "example.")
        assert result.status is DenialStatus.NOT_PROVED
