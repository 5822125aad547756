#!/bin/sh
# Run the whole test suite inside a fresh network namespace that has only loopback,
# so no test can send a packet off this machine (every lab server is on 127.x.y.z).
# Needs root, or unprivileged user namespaces; without either it says so and runs
# the tests as they are (they only ever use loopback addresses).
# Extra arguments go to pytest:  scripts/test.sh -k listener -x
# PYTHON names the interpreter with the dev extra installed (default: python3).
set -e
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# tests/test_readme.py installs the README's commands into a fresh virtual environment
# inside the namespace, where no package index answers (and tests/test_docs.py the
# docs' cluster command, which adds the shared-cache extra).  Fill a wheelhouse with what
# `pip install '.[lab,shared-cache]'` needs (the dependencies and the build requirements of
# pyproject.toml: setuptools, and mypy for the compiled core) while the network is still
# there; it is kept until pyproject.toml or the interpreter changes.
WHEELHOUSE=${RESOLVER_WHEELHOUSE:-$PWD/build/wheelhouse}
filled_for="$("$PYTHON" -c 'import sys; print(sys.version)') [lab,shared-cache]"
build_requires=$("$PYTHON" -c 'import tomllib
print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))')
if [ ! -f "$WHEELHOUSE/filled" ] || [ pyproject.toml -nt "$WHEELHOUSE/filled" ] ||
  [ "$(cat "$WHEELHOUSE/filled")" != "$filled_for" ]; then
  rm -rf "$WHEELHOUSE"
  # The project's own wheel is thrown away: built pure, not compiled for nothing.
  # shellcheck disable=SC2086  # one word per requirement
  if RESOLVER_PURE_PYTHON=1 "$PYTHON" -m pip wheel -q --wheel-dir "$WHEELHOUSE" $build_requires \
    wheel '.[lab,shared-cache]'; then
    rm -f "$WHEELHOUSE"/resolver-*.whl  # the README builds the project itself
    echo "$filled_for" >"$WHEELHOUSE/filled"
  else
    echo "scripts/test.sh: could not fill $WHEELHOUSE (no package index?);" \
      "tests/test_readme.py will say so" >&2
  fi
fi
export RESOLVER_WHEELHOUSE="$WHEELHOUSE"

inner="ip link set lo up && exec \"\$0\" -m pytest \"\$@\""
if [ "$(id -u)" = 0 ] && unshare --net true 2>/dev/null; then
  exec unshare --net -- sh -c "$inner" "$PYTHON" "$@"
elif unshare --user --map-root-user --net true 2>/dev/null; then
  exec unshare --user --map-root-user --net -- sh -c "$inner" "$PYTHON" "$@"
else
  echo "scripts/test.sh: cannot create a network namespace here; running on the host's loopback" >&2
  exec "$PYTHON" -m pytest "$@"
fi
