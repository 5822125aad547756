"""The floors of the package: each imports only the floors below it (pyproject.toml's
import-linter contracts: ops > serve > validate > iterate > dnssec > cache | net | local |
policy > wire; the data path without operations, the engine without the validator's
implementation nor sockets, raw packets in wire, the lab apart).  CI runs ``lint-imports``
too; this keeps the rule in the suite, so a change that breaks it fails where it is made."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUN = "from importlinter.cli import lint_imports; raise SystemExit(lint_imports())"


def test_every_import_contract_is_kept() -> None:
    run = subprocess.run([sys.executable, "-c", RUN], cwd=REPO, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "7 kept, 0 broken" in run.stdout, run.stdout
