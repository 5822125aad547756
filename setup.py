"""The build: the resolver's core compiled with mypyc where it can be, pure Python otherwise.

``pip install .`` compiles the modules listed in COMPILED (the per-question path: codec,
caches, transport, engine, validation, the listener's fast path) to C extensions with mypyc
when it finds a C compiler and Python's headers (on Debian: ``apt-get install gcc
python3-dev``), and installs the same package as plain Python when it does not, or when
the compilation fails: the build never fails for lack of a compiler.  The service says
which it got in its start-up line (``core=compiled`` or ``core=python``; see
:mod:`resolver.compiled`).  ``RESOLVER_PURE_PYTHON=1`` forces the pure-Python build (CI
runs the suite both ways).  Why mypyc and not Cython, with the figures, is in
docs/performance.md ("Compiling the core").

The metadata is in pyproject.toml; this file only adds the optional extensions.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import sysconfig
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent

# The modules compiled, as paths relative to this file.  A module left out stays Python
# and works with compiled ones (mypyc treats its classes as ordinary objects): the
# recordclass types (mypyc classes cannot have a metaclass) live in modules of their own
# that are not listed, so the cached records keep their compact layout.
COMPILED = [
    # the codec (rdata.py and dnssec_rdata.py, the recordclass rdata types, stay Python:
    # rdata.py says why; the basic types' parsers are compiled, in rdata_parse.py)
    "resolver/wire/names.py",
    "resolver/wire/header.py",
    "resolver/wire/message.py",
    "resolver/wire/rdata_parse.py",
    "resolver/wire/rdata_base.py",
    "resolver/wire/rdata_text.py",
    "resolver/wire/ede.py",
    "resolver/wire/raw/opt.py",
    "resolver/wire/raw/question.py",
    # the caches
    "resolver/cache/answers.py",
    "resolver/cache/entries.py",
    "resolver/cache/held.py",
    "resolver/cache/lru.py",
    "resolver/cache/records.py",
    # the transport (not TLS, XFR)
    "resolver/net/caps.py",
    "resolver/net/contract.py",
    "resolver/net/cookies.py",
    "resolver/net/routes.py",
    "resolver/net/sockets.py",
    "resolver/net/transport.py",
    # the engine; kept pure: engine.py (the tests' fake engines subclass IterativeEngine,
    # and Python classes cannot subclass a compiled one), judge.py (NoJudge, likewise),
    # events.py (mypyc takes a dataclass's ClassVar for a field), limits.py and hints.py
    # (start-up only)
    "resolver/iterate/answer.py",
    "resolver/iterate/classify.py",
    "resolver/iterate/forwarding.py",
    "resolver/iterate/judging.py",
    "resolver/iterate/lookup.py",
    "resolver/iterate/minimise.py",
    "resolver/iterate/pipeline.py",
    "resolver/iterate/plan.py",
    "resolver/iterate/remember.py",
    "resolver/iterate/request.py",
    "resolver/iterate/resolution.py",
    "resolver/iterate/servers.py",
    "resolver/iterate/stale.py",
    "resolver/iterate/steps.py",
    "resolver/iterate/zonecut.py",
    "resolver/iterate/zonelimit.py",
    # validation
    "resolver/validate/aggressive.py",
    "resolver/validate/learn.py",
    "resolver/validate/sentinel.py",
    "resolver/validate/trust.py",
    "resolver/validate/validator.py",
    "resolver/dnssec/budget.py",
    "resolver/dnssec/canonical.py",
    "resolver/dnssec/denial.py",
    "resolver/dnssec/keys.py",
    "resolver/dnssec/nsec.py",
    "resolver/dnssec/nsec3.py",
    "resolver/dnssec/proofs.py",
    "resolver/dnssec/verify.py",
    # the listener's fast path
    "resolver/serve/access.py",
    "resolver/serve/cookies.py",
    "resolver/serve/listener.py",
    "resolver/serve/responses.py",
    "resolver/serve/stats.py",
    "resolver/local/zones.py",
]

# Shared code of all compiled modules, one extension inside the package (mypyc's "group").
GROUP = "resolver.compiled_core"
METADATA_COMMANDS = {"egg_info", "dist_info", "sdist"}  # pip's steps that build nothing
EDITABLE_COMMANDS = {"editable_wheel", "develop"}  # pip install -e (the build is in place)


def say(text: str) -> None:
    print(f"resolver build: {text}", file=sys.stderr)


def why_not_compiled() -> str | None:
    """Why the core is built as pure Python here (None: compile it)."""
    if os.environ.get("RESOLVER_PURE_PYTHON", "") not in ("", "0"):
        return "RESOLVER_PURE_PYTHON is set"
    if sys.implementation.name != "cpython":
        return f"{sys.implementation.name} is not CPython"
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler}; on Debian: apt-get install gcc python3-dev)"
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not headers.is_file():
        return f"no Python headers ({headers}; on Debian: apt-get install python3-dev)"
    try:
        import mypyc.build  # noqa: F401  (the build requirement of pyproject.toml)
    except ImportError:
        return "mypyc is not installed (pip install mypy)"
    return None


def in_place_builds() -> list[Path]:
    """Compiled modules an editable install (``pip install -e .``) left next to the sources,
    which Python would import instead of the .py files."""
    package = ROOT / "resolver"
    return sorted({path for suffix in EXTENSION_SUFFIXES for path in package.rglob(f"*{suffix}")})


@functools.cache
def mypyc_extensions() -> list[Extension]:
    """The compiled modules, generated by mypyc (a type check, then C) into build/."""
    from mypyc.build import mypycify

    say(f"compiling {len(COMPILED)} modules with mypyc")
    # Type-checked for the compilation only (CI runs mypy --strict on its own): the other
    # packages (structlog, uvloop, cryptography...) are plain objects, whatever is installed
    # where pip runs, so every build compiles the same code.
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    options = ["--config-file", "", "--ignore-missing-imports", "--no-site-packages",
               "--python-version", version]  # fmt: skip
    os.environ.setdefault("MYPYPATH", str(ROOT / "stubs"))
    return list(mypycify([*options, *COMPILED], opt_level="3", group_name=GROUP))


class BuildExtOrPure(build_ext):
    """``build_ext`` that compiles the core, or leaves it pure Python when mypyc or the C
    compiler fails, removing what it built (a compiled module without the shared part
    cannot be imported).  mypyc runs when the extensions are built, not when pip only asks
    for the requirements or the metadata."""

    def finalize_options(self) -> None:
        metadata_only = set(getattr(self.distribution, "commands", ())) <= METADATA_COMMANDS
        if self.distribution.ext_modules == [PLACEHOLDER] and not metadata_only:
            try:
                self.distribution.ext_modules = mypyc_extensions()
            except (SystemExit, Exception) as error:  # mypyc reports a type error and exits
                say(f"pure Python: mypyc failed ({error!r})")
                self.distribution.ext_modules = []
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1
        super().finalize_options()

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:
            say(f"pure Python: the C compilation failed ({error})")
            for output in self.get_outputs():
                Path(output).unlink(missing_ok=True)
            self.extensions = []
        if self.inplace:  # an earlier build's module no longer in COMPILED shadows its source
            names = [self.get_ext_filename(self.get_ext_fullname(e.name)) for e in self.extensions]
            built = {ROOT / name for name in names}
            for stale in in_place_builds():
                if stale not in built:
                    stale.unlink(missing_ok=True)


def extensions() -> list[Extension]:
    """A placeholder for the compiled core (BuildExtOrPure makes the real ones), or none."""
    reason = why_not_compiled()
    if reason is not None:
        say(f"pure Python: {reason}")
        if EDITABLE_COMMANDS & set(sys.argv):  # this tree is now pure: drop what an
            for stale in in_place_builds():  # earlier editable install compiled into it
                stale.unlink(missing_ok=True)
        return []
    return [PLACEHOLDER]


# Where setup() learns that the package has extensions (so the wheel is tagged for this
# platform); BuildExtOrPure replaces it with mypyc's when it builds.
PLACEHOLDER = Extension(f"{GROUP}__mypyc", sources=[])

if __name__ == "__main__":  # as pip runs it (tests/test_build.py imports it)
    setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExtOrPure})
