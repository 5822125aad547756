"""The lab's zone files served by real authoritative software: one NSD per server role.

Each role of a topology (``tests.lab.topology.SERVERS`` by default) gets its own
NSD process bound only to that role's 127.x.y.z addresses on port 53, so a
resolver walks root -> TLD -> authoritative exactly as on the Internet.  What NSD
cannot imitate is said here rather than faked:

- ``refused``: an NSD that serves no zone answers REFUSED, as the lab's does;
- ``silent``: nothing is started, so the address is dead rather than silent;
- ``poison``, ``wrong_first``: served normally (NSD does not misbehave).

NSD's response rate limiting is off (``rrl-ratelimit: 0``): every resolver here
queries from one address and would otherwise see replies dropped.  Processes run
in the foreground (``nsd -d``), so the PIDs are ours; :meth:`NsdLab.stop` ends
exactly those.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.message
import dns.query
import dns.rcode

from tests.lab.topology import SERVERS, ServerRole, zone_file
from tests.lab.topology import hints_text as lab_hints_text

ZONES_DIR = Path(__file__).resolve().parent.parent / "lab" / "zones"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0


class NsdError(RuntimeError):
    """NSD could not be started (the message includes its log)."""


def _tool(name: str) -> str | None:
    """A Debian tool by name; /usr/sbin is not on every user's PATH."""
    found = shutil.which(name)
    if found is None and Path("/usr/sbin", name).exists():
        found = str(Path("/usr/sbin", name))
    return found


def nsd_binary() -> str | None:
    return _tool("nsd")


def _conf(role: ServerRole, workdir: Path, zones_dir: Path, port: int) -> str:
    addresses = "".join(f"    ip-address: {address}\n" for address in role.addresses)
    zones = "".join(
        f'zone:\n    name: "{origin}"\n    zonefile: "{zone_file(origin)}"\n'
        for origin in role.zones
    )
    return (
        "server:\n"
        f"{addresses}"
        f"    port: {port}\n"
        "    server-count: 1\n"
        '    username: ""\n'
        '    chroot: ""\n'
        f'    zonesdir: "{zones_dir}"\n'
        f'    pidfile: "{workdir}/nsd.pid"\n'
        f'    zonelistfile: "{workdir}/zone.list"\n'
        f'    xfrdfile: "{workdir}/xfrd.state"\n'
        f'    xfrdir: "{workdir}"\n'
        f'    logfile: "{workdir}/nsd.log"\n'
        '    database: ""\n'
        "    verbosity: 1\n"
        "    hide-version: yes\n"
        "    refuse-any: no\n"
        "    rrl-ratelimit: 0\n"
        "    tcp-count: 256\n"
        "remote-control:\n"
        "    control-enable: no\n"
        f"{zones}"
    )


class NsdLab:
    """Start one NSD per role; ``roles`` and ``zones_dir`` can describe any hierarchy."""

    def __init__(
        self,
        workdir: Path,
        roles: Iterable[ServerRole] = SERVERS,
        zones_dir: Path = ZONES_DIR,
        port: int = 53,
        hints: str | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.roles = tuple(roles)
        self.zones_dir = Path(zones_dir)
        self.port = port
        self._hints = hints
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> NsdLab:
        binary = nsd_binary()
        if binary is None:
            raise NsdError("nsd is not installed (Debian package nsd)")
        try:
            for role in self.roles:
                if role.behaviour == "silent":
                    continue  # NSD cannot be silent: the address stays dead
                self._start_role(binary, role)
            for role in self.roles:
                if role.name in self.processes:
                    self._wait_ready(role)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_role(self, binary: str, role: ServerRole) -> None:
        directory = self.workdir / role.name
        directory.mkdir(parents=True, exist_ok=True)
        conf = directory / "nsd.conf"
        conf.write_text(_conf(role, directory, self.zones_dir, self.port))
        checker = _tool("nsd-checkconf") or "nsd-checkconf"
        check = subprocess.run([checker, str(conf)], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise NsdError(f"nsd-checkconf {conf}: {check.stderr or check.stdout}")
        self.processes[role.name] = subprocess.Popen(
            [binary, "-d", "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(directory / "stderr.log").open("wb"),
        )

    def _wait_ready(self, role: ServerRole) -> None:
        """Bounded wait until every address of the role answers (REFUSED counts)."""
        process = self.processes[role.name]
        origin = role.zones[0] if role.zones else "."
        deadline = time.monotonic() + READY_TIMEOUT
        for address in role.addresses:
            while True:
                if process.poll() is not None:
                    raise NsdError(f"nsd for {role.name} exited: {self.log(role.name)}")
                try:
                    query = dns.message.make_query(origin, "SOA")
                    reply = dns.query.udp(query, address, port=self.port, timeout=0.5)
                    if role.zones and reply.rcode() != dns.rcode.NOERROR:
                        raise NsdError(f"{role.name} {address}: {dns.rcode.to_text(reply.rcode())}")
                    break
                except dns.exception.Timeout:
                    if time.monotonic() > deadline:
                        raise NsdError(
                            f"nsd for {role.name} not answering on {address}: {self.log(role.name)}"
                        ) from None

    def log(self, name: str) -> str:
        directory = self.workdir / name
        texts = [p.read_text(errors="replace") for p in directory.glob("*.log") if p.exists()]
        return " | ".join(t.strip() for t in texts if t.strip())[-2000:]

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes.values():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def __enter__(self) -> NsdLab:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- hints -------------------------------------------------------------------------

    def hints_text(self) -> str:
        """Root hints for this hierarchy (the lab's by default; hints carry no port)."""
        return self._hints if self._hints is not None else lab_hints_text()

    def write_hints(self, path: Path) -> Path:
        path.write_text(self.hints_text())
        return path
