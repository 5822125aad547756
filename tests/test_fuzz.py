"""Coverage-guided fuzzing, short and deterministic: each target of
scripts/reliability/fuzz.py for a few thousand inputs with a fixed seed, the inputs
longer runs found to break something are regression tests next to the code they broke.

atheris ships as a wheel for CPython 3.11 on x86_64 and is in the dev extra; where it
cannot be installed the test is skipped saying so, except in CI, where that fails.
The long runs and their numbers: docs/reliability.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from resolver import compiled

ROOT = Path(__file__).resolve().parent.parent
RUNS = {"wire": 20_000, "key": 20_000, "listener": 3_000}
MIN_COVERAGE = {"wire": 150, "key": 100, "listener": 300}  # edges: a run that fuzzes nothing fails


def _atheris_or_skip() -> None:
    try:
        import atheris  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("atheris is not installed (pip install -e '.[dev]')")
        pytest.skip("atheris is not installed (pip install atheris: a wheel for CPython/x86_64)")


def source_tree(destination: Path) -> Path:
    """Where the fuzzer runs: this checkout, or, when its core is compiled, a copy of the
    package and the scripts without the compiled modules.  atheris instruments Python
    bytecode: compiled code gives it no coverage to steer by (the source is the same)."""
    if compiled.core() == "python":
        return ROOT
    skip = shutil.ignore_patterns("*.so", "*.c", "__pycache__")
    for part in ("resolver", "scripts"):
        shutil.copytree(ROOT / part, destination / part, ignore=skip)
    return destination


@pytest.mark.parametrize("target", sorted(RUNS))
def test_short_fuzz_run(target: str, tmp_path: Path) -> None:
    _atheris_or_skip()
    from scripts.reliability.fuzz import summary

    where = source_tree(tmp_path / "source")
    done = subprocess.run(
        [sys.executable, "-m", "scripts.reliability.fuzz", target, f"-runs={RUNS[target]}",
         "-seed=1", "-timeout=5", f"-artifact_prefix={tmp_path}/", str(tmp_path / "corpus")],
        capture_output=True, text=True, timeout=120, cwd=where, check=False,
    )  # fmt: skip
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name not in ("corpus", "source"))
    assert done.returncode == 0 and crashes == [], done.stderr[-4000:]
    found = summary(done.stderr)
    assert found is not None, done.stderr[-2000:]
    runs, edges, _features = found
    assert runs == RUNS[target]
    assert edges >= MIN_COVERAGE[target], found
