"""dnsdist in front of N resolver nodes sharing a Redis cache tier, on loopback addresses.

Run it in a namespace with only loopback (it refuses otherwise, unless --allow-routes), as
root there (every piece listens on port 53 of its own 127.10.x.y address); from a checkout
installed with ``pip install '.[lab,shared-cache]'`` (Redis's client is the shared-cache extra):

    scripts/offline .venv/bin/python scripts/cluster.py --nodes 3 --seconds 300 \
        --command 'dig @127.10.0.53 www.google.com'

``--command`` runs a shell command in the same namespace once everything answers, then
stops the cluster (its exit status is the command's); without it the cluster runs for
``--seconds``.  To ask it questions yourself, start it in the background of a shell in
the namespace: ``scripts/offline sh -c '.venv/bin/python scripts/cluster.py & exec sh'``.

It starts the offline lab (``resolver-lab``: the simulated hierarchy on port 5300;
``--upstream nsd`` serves the same zones with NSD on port 53), a ``redis-server``
(127.10.2.1:6379, no persistence), N resolver nodes (127.10.1.1 ... 127.10.1.N, each
with ``[shared-cache]`` pointing at that Redis unless ``--no-shared``) and
``dnsdist`` (127.10.0.53:53, consistent hashing on the query name: ``--policy``),
prints ``dig`` commands to try, and stops everything it started (by PID, in reverse
order) at Ctrl-C, SIGTERM or after ``--seconds``.  The dnsdist configuration it
writes has the shape of ``deploy/dnsdist.conf`` (the documented example).

:class:`Cluster` is the same machinery for the tests (tests/test_cluster.py) and the
benchmark (benchmarks/bench_cluster.py): start, stop or pause Redis, kill a node, read a
node's counters (``resolver-control stats``) and dnsdist's view of its backends.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from resolver.lab.unbound import nodefault_flags, unbound_conf  # noqa: E402
from resolver.wire import parse_message, write_query  # noqa: E402

FRONT = "127.10.0.53"  # dnsdist
WEB = (FRONT, 8083)  # dnsdist's web server and API (backend states, counters)
API_KEY = "cluster"
REDIS = ("127.10.2.1", 6379)
NODE_NET = "127.10.1."  # node i (from 1) is 127.10.1.i
PORT = 53
POLICIES = ("chashed", "leastOutstanding", "roundrobin", "firstAvailable")
TOOLS = ("redis-server", "dnsdist", "dig")
READY_TIMEOUT = 15.0
# chashed puts a node on its hash ring at as many points as its weight, drawn at random each
# time dnsdist starts: at the default weight of 1, three nodes split the names by three
# random arcs (seen in CI: 36 names out of 36 on one node).
HASH_POINTS = 100


def missing_tools(tools: Sequence[str] = TOOLS) -> list[str]:
    return [tool for tool in tools if shutil.which(tool) is None]


def cluster_problem(tools: Sequence[str] = TOOLS) -> str | None:
    """Why a cluster cannot start here (a missing tool, port 53 not ours), or None."""
    absent = missing_tools(tools)
    if absent:
        return f"missing {', '.join(absent)} (apt-get install redis-server dnsdist bind9-dnsutils)"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.10.255.254", PORT))
    except OSError as error:
        return (
            f"cannot bind port {PORT} on loopback ({error.strerror}): run as root in a "
            "namespace with only loopback (scripts/offline CMD, or unshare -rn)"
        )
    return None


def node_address(number: int) -> str:
    return f"{NODE_NET}{number}"


def dnsdist_conf(
    backends: Sequence[tuple[str, str, int]],
    listen: tuple[str, int] = (FRONT, PORT),
    policy: str = "chashed",
    web: tuple[str, int] | None = WEB,
) -> str:
    """A dnsdist configuration balancing over ``backends`` ((name, address, port) each);
    the same settings as deploy/dnsdist.conf, with the addresses given."""
    lines = [
        "-- written by scripts/cluster.py; see deploy/dnsdist.conf for what each line does",
        f'setLocal("{listen[0]}:{listen[1]}")',
        'setACL({"127.0.0.0/8"})',
        'setSecurityPollSuffix("")',
        "setVerboseHealthChecks(true)",
        "setConsistentHashingBalancingFactor(1.5)",
    ]
    for name, address, port in backends:
        lines.append(
            f'newServer({{address="{address}:{port}", name="{name}", weight={HASH_POINTS}, '
            'checkName="localhost.", checkType="A", mustResolve=true, checkInterval=1, '
            "checkTimeout=500, maxCheckFailures=2, rise=1})"
        )
    lines.append(f"setServerPolicy({policy})")
    if web is not None:
        lines += [
            f'webserver("{web[0]}:{web[1]}")',
            f'setWebserverConfig({{apiKey="{API_KEY}", acl="127.0.0.0/8"}})',
        ]
    return "\n".join(lines) + "\n"


def ask(address: str, port: int, name: str, rrtype: int = 1, timeout: float = 1.0) -> int | None:
    """One UDP query; the RCODE of the answer, None if none came."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(write_query(name, rrtype, 4242, rd=True), (address, port))
            return parse_message(sock.recv(65535)).rcode
        except OSError:
            return None


class Managed:
    """A process this script started: stopped by its PID, nothing else."""

    def __init__(self, name: str, command: list[str], workdir: Path) -> None:
        self.name = name
        self.command = command
        self.log = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Managed:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signum)

    def stop(self, kill: bool = False) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
            process.kill() if kill else process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


def wait_for(what: str, ready: object, process: Managed, timeout: float = READY_TIMEOUT) -> None:
    """Poll ``ready()`` until true; RuntimeError (with the process's log) if it exits first
    or the time runs out."""
    assert callable(ready)
    deadline = time.monotonic() + timeout
    while not ready():
        if not process.alive():
            raise RuntimeError(f"{what} exited: {process.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:.0f} s: {process.tail()}")
        time.sleep(0.05)


def _accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.3):
            return True
    except OSError:
        return False


class Cluster:
    """Redis, N nodes and dnsdist, started in that order and stopped in the reverse one.

    ``kind`` is ``ours`` (this resolver, ``--workers 1`` each) or ``unbound`` (Unbound
    nodes, each with its own cache: Debian's Unbound has no cachedb module, so they
    share nothing).  ``node_args`` are extra flags for our nodes."""

    def __init__(
        self,
        workdir: Path,
        hints: Path,
        upstream_port: int,
        nodes: int = 2,
        *,
        shared: bool = True,
        policy: str = "chashed",
        kind: str = "ours",
        node_args: Sequence[str] = (),
        cpus: str | None = None,
        front: bool = True,
    ) -> None:
        self.workdir = Path(workdir)
        self.hints = hints
        self.upstream_port = upstream_port
        self.count = nodes
        self.shared = shared and kind == "ours"
        self.policy = policy
        self.kind = kind
        self.node_args = list(node_args)
        self.cpus = cpus  # taskset CPU list for the nodes, if given
        self.front = front  # start dnsdist (False: the nodes alone, asked directly)
        self.redis: Managed | None = None
        self.nodes: dict[int, Managed] = {}
        self.dnsdist: Managed | None = None

    # ------------------------------------------------------------ starting, stopping

    def start(self) -> Cluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            if self.shared:
                self.start_redis()
            for number in range(1, self.count + 1):
                self.nodes[number] = self._start_node(number)
            if self.front:
                self._start_dnsdist()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.dnsdist is not None:
            self.dnsdist.stop()
        for node in self.nodes.values():
            node.stop()
        if self.redis is not None:
            self.redis.stop()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:  # fmt: skip
        self.stop()

    def start_redis(self) -> None:
        """redis-server on REDIS, in memory only; started again after stop_redis()."""
        address, port = REDIS
        command = ["redis-server", "--bind", address, "--port", str(port), "--save", "",
                   "--appendonly", "no", "--dir", str(self.workdir), "--maxmemory", "256mb",
                   "--maxmemory-policy", "volatile-ttl"]  # fmt: skip
        self.redis = Managed("redis", command, self.workdir).start()
        wait_for("redis-server", lambda: _accepts(address, port), self.redis)

    def stop_redis(self) -> None:
        if self.redis is not None:
            self.redis.stop()

    def pause_redis(self, paused: bool) -> None:
        """SIGSTOP (Redis up but answering nothing, as a stalled server) or SIGCONT."""
        assert self.redis is not None
        self.redis.signal(signal.SIGSTOP if paused else signal.SIGCONT)

    def _node_command(self, number: int) -> list[str]:
        address = node_address(number)
        workdir = self.workdir / f"node{number}"
        workdir.mkdir(exist_ok=True)
        if self.kind == "unbound":
            conf = unbound_conf(workdir, self.hints, PORT, cache_entries=1)
            conf = conf.replace(f"interface: 127.0.0.1@{PORT}", f"interface: {address}@{PORT}")
            (workdir / "unbound.conf").write_text(conf)
            command = ["unbound", "-d", "-c", str(workdir / "unbound.conf")]
        else:
            config = workdir / "node.toml"
            config.write_text(self.node_toml())
            command = [sys.executable, "-m", "resolver", "--config", str(config),
                       "--address", address, "--port", str(PORT),
                       "--root-hints", str(self.hints), "--upstream-port",
                       str(self.upstream_port), "--control-socket", str(self.control(number)),
                       *nodefault_flags(), *self.node_args]  # fmt: skip
        return ["taskset", "-c", self.cpus, *command] if self.cpus else command

    def node_toml(self) -> str:
        if not self.shared:
            return "# no shared cache tier\n"
        address, port = REDIS
        return f'[shared-cache]\nurl = "redis://{address}:{port}/0"\nkey-prefix = "lab:"\n'

    def _start_node(self, number: int) -> Managed:
        node = Managed(f"node{number}", self._node_command(number), self.workdir).start()
        address = node_address(number)
        wait_for(node.name, lambda: ask(address, PORT, "localhost.", timeout=0.3) == 0, node)
        return node

    def restart_node(self, number: int) -> None:
        self.nodes[number].stop()
        self.nodes[number] = self._start_node(number)

    def kill_node(self, number: int) -> None:
        """SIGKILL: a node that dies without a word."""
        self.nodes[number].stop(kill=True)

    def _start_dnsdist(self) -> None:
        conf = self.workdir / "dnsdist.conf"
        backends = [(f"node{n}", node_address(n), PORT) for n in self.nodes]
        conf.write_text(dnsdist_conf(backends, policy=self.policy))
        command = ["dnsdist", "--supervised", "--disable-syslog", "-C", str(conf)]
        self.dnsdist = Managed("dnsdist", command, self.workdir).start()

        def every_backend_up() -> bool:
            try:
                return all(b["state"] == "up" for b in self.backends())
            except OSError:
                return False

        wait_for("dnsdist", every_backend_up, self.dnsdist)

    # ------------------------------------------------------------ looking at it

    def control(self, number: int) -> Path:
        return self.workdir / f"node{number}" / "control.sock"

    def stats(self, number: int) -> dict[str, float]:
        """A node's counters (``resolver-control stats``, key=value)."""
        done = subprocess.run(
            [sys.executable, "-m", "resolver.ops.control", "--control-socket",
             str(self.control(number)), "stats"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
        pairs = (line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
        return {key: float(value) for key, value in pairs}

    def backends(self) -> list[dict[str, object]]:
        """dnsdist's backends as its API gives them (name, state, queries, ...)."""
        request = urllib.request.Request(
            f"http://{WEB[0]}:{WEB[1]}/api/v1/servers/localhost", headers={"X-API-Key": API_KEY}
        )
        with urllib.request.urlopen(request, timeout=2) as response:
            servers: list[dict[str, object]] = json.load(response)["servers"]
        return servers

    def backend_state(self, name: str) -> str:
        return next(str(b["state"]) for b in self.backends() if b["name"] == name)

    def wait_backend(self, name: str, state: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.backend_state(name) != state:
            if time.monotonic() > deadline:
                raise RuntimeError(f"dnsdist: {name} not {state} after {timeout:.0f} s")
            time.sleep(0.1)


# -- the command ---------------------------------------------------------------------------


def _lab(args: argparse.Namespace, workdir: Path) -> tuple[Managed | object, Path, int]:
    """The upstream hierarchy: (what to stop, its root hints, its port)."""
    hints = workdir / "lab.root"
    if args.upstream == "nsd":
        from resolver.lab.nsd import NsdLab

        nsd = NsdLab(workdir / "nsd").start()
        nsd.write_hints(hints)
        return nsd, hints, 53
    command = [sys.executable, "-m", "resolver.lab.cli", "--hints", str(hints)]
    lab = Managed("lab", command, workdir).start()
    wait_for("resolver-lab", hints.exists, lab)
    return lab, hints, 5300


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3, choices=range(1, 9), metavar="1..8")
    parser.add_argument("--policy", choices=POLICIES, default="chashed")
    parser.add_argument("--no-shared", action="store_true", help="nodes without [shared-cache]")
    parser.add_argument("--upstream", choices=("lab", "nsd"), default="lab")
    parser.add_argument("--seconds", type=float, default=600.0, help="stop after (max 3600)")
    parser.add_argument("--workdir", type=Path, help="configs and logs (default: a temp dir)")
    parser.add_argument("--command", help="a shell command to run once the cluster answers; "
                        "then stop (the exit status is the command's)")  # fmt: skip
    parser.add_argument("--allow-routes", action="store_true", help="start even where the "
                        "network namespace routes beyond loopback (as resolver-lab)")  # fmt: skip
    args = parser.parse_args(argv)
    from resolver.lab.cli import refuse_unless_loopback_only

    reason = refuse_unless_loopback_only(args.allow_routes) or cluster_problem()
    if reason:
        print(f"cluster: {reason}", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cluster-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stop = {"now": False}
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.update(now=True))
    lab, hints, port = _lab(args, workdir)
    status = 0
    try:
        cluster = Cluster(workdir, hints, port, args.nodes, shared=not args.no_shared,
                          policy=args.policy)  # fmt: skip
        with cluster:
            print(f"; redis: {REDIS[0]}:{REDIS[1]}" if cluster.shared else "; no shared tier")
            for number in cluster.nodes:
                print(f"; node{number}: {node_address(number)} port {PORT}, control "
                      f"{cluster.control(number)}")  # fmt: skip
            print(f"; dnsdist: {FRONT} port {PORT} ({args.policy}); configs, logs: {workdir}")
            print(f";   dig @{FRONT} www.google.com      # through dnsdist")
            print(f";   dig @{node_address(1)} www.google.com   # one node directly")
            if args.command is not None:
                for number in cluster.nodes:  # dnsdist's health checks passed: it answers
                    cluster.wait_backend(f"node{number}", "up")
                print(f"; running: {args.command}", flush=True)
                status = subprocess.run(["sh", "-c", args.command], check=False).returncode
            else:
                print(f"; stops after {args.seconds:.0f} s, or at Ctrl-C / SIGTERM", flush=True)
                deadline = time.monotonic() + min(args.seconds, 3600.0)
                while not stop["now"] and time.monotonic() < deadline:
                    time.sleep(0.2)
    finally:
        stopper = getattr(lab, "stop", None)
        if callable(stopper):
            stopper()
    print("; cluster stopped", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
