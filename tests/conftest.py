"""Shared pytest fixtures: the loopback DNS lab (resolver.lab)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# `tests` has no __init__.py: make `import resolver.lab` work however pytest is started.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from resolver.lab import Lab  # noqa: E402


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The whole lab on port 5300 (run the tests through scripts/test.sh: loopback only)."""
    with Lab() as running:
        yield running


@pytest.fixture
def lab_hints(tmp_path: Path, lab: Lab) -> Path:
    """A root hints file (named.root format) pointing at the running lab."""
    return lab.write_hints(tmp_path / "root.hints")
