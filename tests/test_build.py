"""The build: the core compiled with mypyc where a compiler is found, pure Python otherwise.

CI runs the suite twice: once as the README's install builds it (compiled: CI installs gcc
and python3-dev) and once with ``RESOLVER_PURE_PYTHON=1``; these tests check that each run
tests what it says, that a checkout never runs compiled code older than its source, and
that a machine without a compiler still gets a working install.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from resolver import compiled
from tests.test_cli import hints, running, wait_for_event  # noqa: F401  (hints: a fixture)
from tests.test_readme import copy_checkout, offline_pip_environment

ROOT = Path(__file__).resolve().parent.parent
PURE = os.environ.get("RESOLVER_PURE_PYTHON", "") not in ("", "0")
IN_CI = os.environ.get("CI", "").lower() == "true"
BUILD_TIMEOUT = 300


def listed_in_setup() -> list[str]:
    """setup.py's COMPILED, as dotted module names."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "COMPILED":
            paths = ast.literal_eval(node.value)
            return sorted(path.removesuffix(".py").replace("/", ".") for path in paths)
    raise AssertionError("no COMPILED list in setup.py")


def expected_core() -> str | None:
    """What this run must be testing: pure Python when asked for, compiled in CI otherwise
    (it installs a compiler); on a developer's machine, whatever the install found."""
    if PURE:
        return "python"
    return "compiled" if IN_CI else None


def test_the_core_is_built_as_this_run_says() -> None:
    core = compiled.core()
    assert core == (expected_core() or core), (
        "RESOLVER_PURE_PYTHON=1 pip install -e . removes the compiled modules"
        if PURE
        else "in CI the install must compile the core: is gcc or python3-dev missing?"
    )


def test_every_listed_module_is_compiled_or_none_is() -> None:
    """All or nothing: a compiled module cannot be imported without the shared part, and a
    module missing from a compiled build would run as Python unnoticed."""
    present = compiled.compiled_modules()
    if compiled.core() == "python":
        assert present == []
    else:
        assert present == sorted([*listed_in_setup(), "resolver.compiled_core__mypyc"])


def test_every_listed_module_exists() -> None:
    """A module moved or removed without its line in setup.py's COMPILED would make mypyc
    fail, and every install fall back to pure Python."""
    listed = listed_in_setup()
    assert listed and [m for m in listed if not importlib.util.find_spec(m)] == []


def test_no_compiled_module_is_older_than_its_source() -> None:
    assert compiled.stale() == [], (
        "these sources changed since they were compiled, and Python runs the compiled copy: "
        "pip install -e . again (or RESOLVER_PURE_PYTHON=1 pip install -e . for pure Python)"
    )


def test_the_start_up_line_says_how_the_core_was_built(hints: Path, tmp_path: Path) -> None:  # noqa: F811
    log = tmp_path / "resolver.log"
    with running(hints, log) as (process, _):
        started = wait_for_event(log, "started", process)
    assert started["core"] == compiled.core()
    assert started["core"] == (expected_core() or started["core"])


# ---------------------------------------------------------------- the build's fallbacks


def load_setup() -> ModuleType:
    """setup.py as a module (it calls setup() only when run as a script, as pip runs it)."""
    spec = importlib.util.spec_from_file_location("resolver_setup", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def setup_module() -> Iterator[ModuleType]:
    saved = os.environ.copy()
    try:
        yield load_setup()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("RESOLVER_PURE_PYTHON", "1", "RESOLVER_PURE_PYTHON is set"),
        ("CC", "/nonexistent/cc", "no C compiler (/nonexistent/cc; on Debian: apt-get install"),
    ],
    ids=["asked", "no-compiler"],
)
def test_the_build_says_why_it_is_pure_python(
    setup_module: ModuleType, variable: str, value: str, reason: str
) -> None:
    os.environ.pop("RESOLVER_PURE_PYTHON", None)
    os.environ[variable] = value
    assert setup_module.why_not_compiled().startswith(reason)


def test_a_failing_compilation_leaves_pure_python(
    setup_module: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The C compiler fails on one extension after another was built: neither is kept
    (a compiled module without its shared part cannot be imported), and the build goes on."""
    from setuptools import Distribution, Extension

    (tmp_path / "good.c").write_text(
        '#include <Python.h>\nstatic struct PyModuleDef m = {PyModuleDef_HEAD_INIT, "good"};\n'
        "PyMODINIT_FUNC PyInit_good(void) { return PyModule_Create(&m); }\n"
    )
    (tmp_path / "bad.c").write_text("this is not C\n")
    extensions = [Extension("good", ["good.c"]), Extension("bad", ["bad.c"])]
    distribution = Distribution({"name": "probe", "ext_modules": extensions})
    command = setup_module.BuildExtOrPure(distribution)
    command.inplace = True
    command.parallel = 1
    os.chdir(tmp_path)
    try:
        command.ensure_finalized()
        command.run()
    finally:
        os.chdir(ROOT)
    assert "pure Python: the C compilation failed" in capsys.readouterr().err
    assert command.extensions == []
    assert not list(tmp_path.glob("*.so"))


def test_without_a_compiler_pip_builds_a_pure_python_wheel(tmp_path: Path) -> None:
    """The install on a machine with no C compiler: a wheel for any platform, no C inside.
    Built as pip builds it (its own environment, from the wheelhouse scripts/test.sh fills)."""
    env = offline_pip_environment()
    env.pop("RESOLVER_PURE_PYTHON", None)
    env["CC"] = "/nonexistent/cc"
    checkout = copy_checkout(tmp_path / "checkout")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "dist"), "."],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("resolver-*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as contents:
        names = contents.namelist()
    assert "resolver/wire/names.py" in names
    assert not [name for name in names if name.endswith((".so", ".pyd", ".c"))]
