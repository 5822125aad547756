"""The lab's zone files served by real authoritative software: one NSD per server role.

Each role of a topology (``resolver.lab.topology.SERVERS`` by default) gets its own
NSD process bound only to that role's 127.x.y.z addresses on port 53, so a
resolver walks root -> TLD -> authoritative exactly as on the Internet.  What NSD
cannot imitate is said here rather than faked (see :data:`NOT_REPRODUCED`):

- ``refused``: an NSD that serves no zone answers REFUSED to everything, as the
  lab's lame server does (checked at start-up);
- ``silent``: nothing is started, so the address is *dead* (a resolver gets an
  ICMP port unreachable at once) rather than silent (a timeout);
- ``poison``, ``wrong_first``: the zones are served normally (NSD does not misbehave).

The addresses in :data:`resolver.lab.topology.DEAD_ADDRESSES` are in no role, so
nothing is bound there, as in the lab.

NSD's response rate limiting is off (``rrl-ratelimit: 0``): every resolver here
queries from one address and would otherwise see replies dropped.  Each NSD runs
in the foreground (``nsd -d``) in its own session, so the PIDs are ours:
:meth:`NsdLab.stop` sends SIGTERM to exactly those, waits a bounded time, then
SIGKILLs the process group (NSD forks a server child).

Signed (``signed=True``, or a :class:`resolver.lab.signing.Signing`): at start-up every
zone is signed with ``ldns-signzone`` into the work directory, each DS placed in its
parent, and the root's KSK written as :attr:`NsdLab.trust_anchor`; on the lab's own
hierarchy ``signed=True`` also adds the deliberately broken zones of
:func:`resolver.lab.signing.lab_signing` (expired signatures, a DS without its key, ...).

Reuse (the cold-cache benchmark serves ~2,000 generated zones with it)::

    NsdLab(workdir, roles=my_roles, zones_dir=my_dir)          # another hierarchy
    NsdLab(workdir, roles=(*SERVERS, extra_role),              # the lab plus more:
           zone_files={"bulk.com.": path},                     #   a file from anywhere
           zone_additions={"com.": "bulk NS ns1.bulk\\nns1.bulk A 127.5.0.1\\n"},
           )                                                   #   delegations in com.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode

from resolver.lab.signing import SignedHierarchy, Signing, lab_signing, sign_hierarchy
from resolver.lab.topology import SERVERS, ZONES_DIR, ServerRole, write_hints_file, zone_file
from resolver.lab.topology import hints_text as lab_hints_text

READY_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0

NOT_REPRODUCED: dict[str, str] = {
    "silent": "NSD cannot be silent: nothing is started, so the address is dead instead",
    "poison": "NSD adds no out-of-bailiwick junk: the zone is served normally",
    "wrong_first": "NSD sends no wrong-ID or wrong-question reply: the zone is served normally",
}
"""Lab behaviours NSD cannot imitate, and what the NSD lab does instead."""


class NsdError(RuntimeError):
    """NSD could not be started (the message includes its log)."""


def find_tool(name: str) -> str | None:
    """A Debian tool by name; /usr/sbin is not on every user's PATH."""
    found = shutil.which(name)
    if found is None and Path("/usr/sbin", name).exists():
        found = str(Path("/usr/sbin", name))
    return found


def nsd_binary() -> str | None:
    return find_tool("nsd")


def nsd_conf(role: ServerRole, workdir: Path, zone_paths: Mapping[str, Path], port: int) -> str:
    """An NSD configuration serving ``role``'s zones on its addresses only."""
    addresses = "".join(f"    ip-address: {address}\n" for address in role.addresses)
    zones = "".join(
        f'zone:\n    name: "{origin}"\n    zonefile: "{zone_paths[origin]}"\n'
        for origin in role.zones
    )
    return (
        "server:\n"
        f"{addresses}"
        f"    port: {port}\n"
        "    server-count: 1\n"
        '    username: ""\n'  # stay root: no privilege drop needed inside the namespace
        '    chroot: ""\n'
        f'    zonesdir: "{workdir}"\n'
        f'    pidfile: "{workdir}/nsd.pid"\n'
        f'    zonelistfile: "{workdir}/zone.list"\n'
        f'    xfrdfile: "{workdir}/xfrd.state"\n'
        f'    xfrdir: "{workdir}"\n'
        f'    logfile: "{workdir}/nsd.log"\n'
        '    database: ""\n'  # zone files only, no nsd.db
        "    verbosity: 1\n"
        "    hide-version: yes\n"
        "    refuse-any: no\n"
        "    rrl-ratelimit: 0\n"  # one client address sends everything
        "    tcp-count: 256\n"
        "remote-control:\n"
        "    control-enable: no\n"
        f"{zones}"
    )


class NsdLab:
    """One NSD per role; ``roles`` and the zone files can describe any hierarchy.

    ``zones_dir``       where a zone's file is looked up by :func:`zone_file` name;
    ``zone_files``      origin -> file anywhere, taking precedence over ``zones_dir``;
    ``zone_additions``  origin -> master-file text appended to that zone (relative
                        names are relative to the origin), e.g. delegations added to
                        a TLD; the merged file is written under ``workdir/zones``;
    ``hints``           root hints text for :meth:`hints_text` (default: the lab's);
    ``signed``          sign every zone at start-up (True: on the lab's own roles with
                        the lab's DNSSEC cases, :func:`~resolver.lab.signing.lab_signing`,
                        on other roles every zone plainly; or a ``Signing`` to say how).
    """

    def __init__(
        self,
        workdir: Path,
        roles: Iterable[ServerRole] = SERVERS,
        zones_dir: Path = ZONES_DIR,
        port: int = 53,
        hints: str | None = None,
        *,
        zone_files: Mapping[str, Path] | None = None,
        zone_additions: Mapping[str, str] | None = None,
        signed: bool | Signing = False,
    ) -> None:
        self.workdir = Path(workdir)
        self.roles = tuple(roles)
        self.zones_dir = Path(zones_dir)
        self.port = port
        self._hints = hints
        self.zone_files = {origin: Path(path) for origin, path in (zone_files or {}).items()}
        self.zone_additions = dict(zone_additions or {})
        self.signing = self._signing(signed)
        self.signed: SignedHierarchy | None = None
        """The signed files and the trust anchor, once :meth:`start` has signed them."""
        if self.signing is not None:
            self.roles = (*self.roles, *self.signing.extra_roles)
            for origin, text in self.signing.delegations.items():
                self.zone_additions[origin] = f"{self.zone_additions.get(origin, '')}\n{text}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.not_started: dict[str, str] = {}
        """Role name -> why no NSD runs for it (a behaviour NSD cannot imitate)."""

    def _signing(self, signed: bool | Signing) -> Signing | None:
        if isinstance(signed, Signing):
            return signed
        if not signed:
            return None
        return lab_signing() if self.roles == SERVERS else Signing()

    # -- zones -------------------------------------------------------------------------

    def source_file(self, origin: str) -> Path:
        """The zone file as given (before :attr:`zone_additions`)."""
        if self.signing is not None and origin in self.signing.extra_zones:
            generated = self.workdir / "sources" / zone_file(origin)
            if not generated.exists():
                generated.parent.mkdir(parents=True, exist_ok=True)
                generated.write_text(self.signing.extra_zones[origin])
            return generated
        return self.zone_files.get(origin) or self.zones_dir / zone_file(origin)

    def zone_path(self, origin: str) -> Path:
        """The file NSD loads for ``origin``: the signed one once signed, else the
        unsigned one (:meth:`unsigned_path`)."""
        if self.signed is not None and origin in self.signed.zone_paths:
            return self.signed.zone_paths[origin].resolve()
        return self.unsigned_path(origin)

    def unsigned_path(self, origin: str) -> Path:
        """The source, or a merged copy with :attr:`zone_additions`."""
        source = self.source_file(origin)
        addition = self.zone_additions.get(origin)
        if addition is None:
            return source.resolve()
        merged = self.workdir / "zones" / zone_file(origin)
        merged.parent.mkdir(parents=True, exist_ok=True)
        merged.write_text(f"{source.read_text()}\n$ORIGIN {origin}\n{addition}\n")
        return merged.resolve()

    def served_zones(self) -> dict[str, Path]:
        """Origin -> file of every zone some started role serves."""
        return {
            origin: self.zone_path(origin)
            for role in self.roles
            if role.name not in self.not_started
            for origin in role.zones
        }

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> NsdLab:
        binary = nsd_binary()
        if binary is None:
            raise NsdError("nsd is not installed (Debian package nsd)")
        try:
            if self.signing is not None and self.signed is None:
                self.sign()
            for role in self.roles:
                reason = NOT_REPRODUCED.get(role.behaviour)
                if role.behaviour == "silent":
                    self.not_started[role.name] = reason or "silent"
                    continue
                self._start_role(binary, role)
            for role in self.roles:
                if role.name in self.processes:
                    self._wait_ready(role)
        except BaseException:
            self.stop()
            raise
        return self

    def sign(self) -> SignedHierarchy:
        """Sign every zone of every role into ``workdir/dnssec`` (new keys each time)."""
        assert self.signing is not None
        origins = {origin: self.unsigned_path(origin) for r in self.roles for origin in r.zones}
        self.signed = sign_hierarchy(self.workdir / "dnssec", origins, self.signing)
        return self.signed

    @property
    def trust_anchor(self) -> Path:
        """The root's KSK as a DS line (a signed lab, once started), for Unbound's
        ``trust-anchor-file:`` and our ``--trust-anchor-file``."""
        if self.signed is None or self.signed.trust_anchor is None:
            raise NsdError("no trust anchor: the lab is not signed, or not started yet")
        return self.signed.trust_anchor

    def _start_role(self, binary: str, role: ServerRole) -> None:
        directory = self.workdir / role.name
        directory.mkdir(parents=True, exist_ok=True)
        paths = {origin: self.zone_path(origin) for origin in role.zones}
        conf = directory / "nsd.conf"
        conf.write_text(nsd_conf(role, directory, paths, self.port))
        checker = find_tool("nsd-checkconf") or "nsd-checkconf"
        check = subprocess.run([checker, str(conf)], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise NsdError(f"nsd-checkconf {conf}: {check.stderr or check.stdout}")
        with (directory / "stderr.log").open("wb") as stderr:
            self.processes[role.name] = subprocess.Popen(
                [binary, "-d", "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # its own process group: the fork is ours too
            )

    def _wait_ready(self, role: ServerRole) -> None:
        """Bounded wait until every address of the role answers its first zone's SOA
        (NOERROR and AA), or REFUSED for a role that serves no zone."""
        process = self.processes[role.name]
        origin = role.zones[0] if role.zones else "."
        expected = dns.rcode.NOERROR if role.zones else dns.rcode.REFUSED
        deadline = time.monotonic() + READY_TIMEOUT
        for address in role.addresses:
            while True:
                if process.poll() is not None:
                    raise NsdError(f"nsd for {role.name} exited: {self.log(role.name)}")
                try:
                    query = dns.message.make_query(origin, "SOA")
                    query.flags &= ~dns.flags.RD
                    reply = dns.query.udp(query, address, port=self.port, timeout=0.5)
                except (dns.exception.Timeout, OSError):
                    if time.monotonic() > deadline:
                        raise NsdError(
                            f"nsd for {role.name} not answering on {address}: {self.log(role.name)}"
                        ) from None
                    time.sleep(0.05)
                    continue
                rcode = reply.rcode()
                if rcode != expected or (role.zones and not reply.flags & dns.flags.AA):
                    raise NsdError(
                        f"nsd for {role.name} on {address}: {origin} SOA gave "
                        f"{dns.rcode.to_text(rcode)}, flags {dns.flags.to_text(reply.flags)}; "
                        f"expected {dns.rcode.to_text(expected)}: {self.log(role.name)}"
                    )
                break

    def log(self, name: str) -> str:
        directory = self.workdir / name
        texts = [p.read_text(errors="replace") for p in directory.glob("*.log") if p.exists()]
        return " | ".join(t.strip() for t in texts if t.strip())[-2000:]

    def stop(self) -> None:
        """SIGTERM every NSD started here, bounded wait, then SIGKILL its process group."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes.values():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # pgid == pid (new session)
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
        """Root hints for this hierarchy (the lab's by default).

        Hints carry no port: a resolver on this lab needs its upstream port set to
        :attr:`port` (``--upstream-port 53`` for ours; Unbound uses 53 anyway).
        """
        return self._hints if self._hints is not None else lab_hints_text()

    def write_hints(self, path: Path) -> Path:
        return write_hints_file(path, self.hints_text())

    def addresses(self) -> list[str]:
        """Every address an NSD of this lab listens on."""
        return [address for role in self.roles if role.name in self.processes
                for address in role.addresses]  # fmt: skip
