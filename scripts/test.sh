#!/bin/sh
# Run the whole test suite inside a fresh network namespace that has only loopback,
# so no test can send a packet off this machine (every lab server is on 127.x.y.z).
# Needs root, or unprivileged user namespaces; without either it says so and runs
# the tests as they are (they only ever use loopback addresses).
# Extra arguments go to pytest:  scripts/test.sh -k listener -x
set -e
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
inner="ip link set lo up && exec \"\$0\" -m pytest \"\$@\""
if [ "$(id -u)" = 0 ] && unshare --net true 2>/dev/null; then
  exec unshare --net -- sh -c "$inner" "$PYTHON" "$@"
elif unshare --user --map-root-user --net true 2>/dev/null; then
  exec unshare --user --map-root-user --net -- sh -c "$inner" "$PYTHON" "$@"
else
  echo "scripts/test.sh: cannot create a network namespace here; running on the host's loopback" >&2
  exec "$PYTHON" -m pytest "$@"
fi
