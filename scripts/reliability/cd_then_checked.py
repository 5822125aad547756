"""CD=1, then CD=0 (the differential tester's "cd" stage as an attack): a client asks for
data whose signatures expired with CD=1, so the resolver fetches it unchecked, and
at once another asks for it with CD=0.  RFC 4035 section 4.7: what was cached unchecked
is validated before a CD=0 client gets it; CoreDNS served it (CVE-2024-0874).

    scripts/offline .venv/bin/python -m scripts.reliability.cd_then_checked [--runs 40]

Each run serves the hierarchy of ``tests/differential/attacks/cd-then-checked.json``
(``bad.test.`` signed, its signatures expired) with NSD, starts this resolver and
Unbound afresh, and asks both ``www.bad.test. A`` with CD=1, then with CD=0.  Counted
per resolver: the CD=0 answers that carry the expired data, and those with AD set.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from resolver.lab.differential import replay

CASE = (
    Path(__file__).resolve().parents[2]
    / "tests"
    / "differential"
    / "attacks"
    / "cd-then-checked.json"
)
FORGED = "192.0.2.66"  # www.bad.test.'s address, under an expired signature


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args(argv)
    counts = {who: {"answered": 0, "with_ad": 0} for who in ("ours", "unbound")}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="cd-then-checked-") as workdir:
            _recorded, (mine, theirs) = replay(CASE, Path(workdir))
        for who, outcome in (("ours", mine), ("unbound", theirs)):
            if any(FORGED in line for line in outcome.answer):
                counts[who]["answered"] += 1
                counts[who]["with_ad"] += int(outcome.ad)
    print(json.dumps({"runs": args.runs, **counts}, indent=1))
    return 1 if counts["ours"]["answered"] else 0


if __name__ == "__main__":
    sys.exit(main())
