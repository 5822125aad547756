"""Whether the resolver's core runs compiled (mypyc) or as Python source.

``pip install .`` compiles the core's modules (the list is ``COMPILED`` in setup.py) to C
extensions with mypyc when it finds a C compiler and Python's headers, and installs the
same package as pure Python when it does not, or with ``RESOLVER_PURE_PYTHON=1``: the same
behaviour either way, at a different cost in CPU.  The start-up line says which
(``core=compiled`` or ``core=python``), as it says ``loop=uvloop``.

A compiled module sits next to its source and Python imports it first, so in an editable
install (``pip install -e .``) an edited source is not what runs until the next install:
:func:`stale` finds such modules (tests/test_build.py fails on them).
"""

from __future__ import annotations

import importlib.util
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

# One of the compiled modules: the core is compiled exactly when this one is.
PROBE = "resolver.wire.names"
PACKAGE = Path(__file__).resolve().parent


def _is_extension(path: str | None) -> bool:
    return path is not None and path.endswith(tuple(EXTENSION_SUFFIXES))


def core() -> str:
    """``"compiled"`` when the core's modules are C extensions, ``"python"`` otherwise."""
    spec = importlib.util.find_spec(PROBE)
    return "compiled" if spec is not None and _is_extension(spec.origin) else "python"


def _extensions() -> dict[Path, str]:
    """The package's C extensions: each file with its module's dotted name."""
    found = {}
    for suffix in EXTENSION_SUFFIXES:  # the longest first: .cpython-311-x86_64-linux-gnu.so
        for path in PACKAGE.rglob(f"*{suffix}"):
            if path not in found:
                module = path.relative_to(PACKAGE.parent).with_name(path.name[: -len(suffix)])
                found[path] = ".".join(module.parts)
    return found


def compiled_modules() -> list[str]:
    """The package's modules present as C extensions (dotted names)."""
    return sorted(_extensions().values())


def stale() -> list[str]:
    """Compiled modules of a source checkout older than the source beside them: Python
    runs the old code.  (An installed copy's files are all written by pip at once.)"""
    if not (PACKAGE.parent / "setup.py").is_file():
        return []
    older = []
    for path, module in _extensions().items():
        source = PACKAGE.parent.joinpath(*module.split(".")).with_suffix(".py")
        if source.is_file() and source.stat().st_mtime > path.stat().st_mtime:
            older.append(module)
    return sorted(older)
