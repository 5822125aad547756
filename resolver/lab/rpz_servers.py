"""Primaries serving response policy zones, and Unbound using them: the RPZ interop lab.

- :class:`NsdPrimary`: NSD serving zone files on one address and port, giving
  AXFR to loopback (``provide-xfr``) and sending NOTIFY to the resolvers listed
  (``notify``) when a zone file changes and it is reloaded (SIGHUP: NSD reads the
  zone files whose time changed).  Debian 12's NSD (4.6) serves no IXFR (that
  came with ``store-ixfr`` in NSD 4.7): an IXFR query gets the whole zone, as RFC
  1995 section 4 allows.
- :class:`KnotPrimary`: Knot DNS (``knotd``) serving the same files with
  ``zonefile-load: difference`` and a journal, so that a reloaded file with a
  higher serial becomes an IXFR (RFC 1995) of the differences; it sends NOTIFY too.
- :class:`RpzUnbound`: Unbound resolving on a lab with ``rpz:`` clauses (the
  ``respip`` module: ``module-config: "respip validator iterator"``), each zone
  from a file or transferred from a primary.

Every process runs in the foreground in its own session; :meth:`stop` ends
exactly the processes started here (SIGTERM, a bounded wait, then SIGKILL).
This module uses dnspython only, like the rest of the lab.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode

from resolver.lab.nsd import find_tool
from resolver.lab.unbound import NODEFAULT_ZONES, UnboundProcess, unbound_conf

READY_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0

Target = tuple[str, int]  # (address, port) of a resolver to NOTIFY


class Primary:
    """An authoritative server process serving ``zones`` (origin -> file) on one
    address and port; ready once it answers the first zone's SOA with AA."""

    name = "primary"

    def __init__(
        self,
        workdir: Path,
        zones: Mapping[str, Path],
        port: int,
        address: str = "127.0.0.1",
        notify: Sequence[Target] = (),
    ) -> None:
        self.workdir = Path(workdir)
        self.zones = {origin: Path(path).resolve() for origin, path in zones.items()}
        self.port = port
        self.address = address
        self.notify = list(notify)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def spec(self) -> str:
        """``ADDRESS@PORT``, as Unbound's ``primary:`` and our ``primary`` take it."""
        return f"{self.address}@{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> Primary:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / "stderr.log").open("wb") as stderr:
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=stderr, start_new_session=True,
            )  # fmt: skip
        origin = next(iter(self.zones))
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log()}")
            try:
                query = dns.message.make_query(origin, "SOA")
                query.flags &= ~dns.flags.RD
                reply = dns.query.udp(query, self.address, port=self.port, timeout=0.5)
                if reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA:
                    return self
            except (dns.exception.Timeout, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} not serving {origin}: {self.log()}")
            time.sleep(0.05)

    def serial(self, origin: str) -> int | None:
        """The serial it serves for ``origin`` now (None: not served)."""
        query = dns.message.make_query(origin, "SOA")
        query.flags &= ~dns.flags.RD
        reply = dns.query.udp(query, self.address, port=self.port, timeout=2)
        for rrset in reply.answer:
            return int(rrset[0].serial)
        return None

    def reload(self) -> None:
        """Read the changed zone files again (and NOTIFY the resolvers)."""
        raise NotImplementedError

    def wait_serial(self, origin: str, serial: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.serial(origin) != serial:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} still serves {self.serial(origin)}: {self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        texts = [p.read_text(errors="replace") for p in self.workdir.glob("*.log")]
        return " | ".join(t.strip() for t in texts if t.strip())[-3000:]

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # its own session: pgid == pid
            process.wait()

    def __enter__(self) -> Primary:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class NsdPrimary(Primary):
    name = "nsd"

    def command(self) -> list[str]:
        directory = self.workdir
        notify = "".join(f"    notify: {address}@{port} NOKEY\n" for address, port in self.notify)
        zones = "".join(
            f'zone:\n    name: "{origin}"\n    zonefile: "{path}"\n'
            "    provide-xfr: 127.0.0.0/8 NOKEY\n"
            f"{notify}"
            for origin, path in self.zones.items()
        )
        conf = directory / "nsd.conf"
        conf.write_text(
            "server:\n"
            f"    ip-address: {self.address}\n"
            f"    port: {self.port}\n"
            "    server-count: 1\n"
            '    username: ""\n'
            '    chroot: ""\n'
            f'    zonesdir: "{directory}"\n'
            f'    pidfile: "{directory}/nsd.pid"\n'
            f'    zonelistfile: "{directory}/zone.list"\n'
            f'    xfrdfile: "{directory}/xfrd.state"\n'
            f'    xfrdir: "{directory}"\n'
            f'    logfile: "{directory}/nsd.log"\n'
            '    database: ""\n'
            "    verbosity: 2\n"
            "    rrl-ratelimit: 0\n"
            "remote-control:\n"
            "    control-enable: no\n"
            f"{zones}"
        )
        return [find_tool("nsd") or "nsd", "-d", "-c", str(conf)]

    def reload(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)


class KnotPrimary(Primary):
    """knotd keeping the differences between versions of its zone files (IXFR)."""

    name = "knotd"

    def command(self) -> list[str]:
        directory = self.workdir
        remotes = "".join(
            f"  - id: resolver{i}\n    address: {address}@{port}\n"
            for i, (address, port) in enumerate(self.notify)
        )
        notify = ", ".join(f"resolver{i}" for i in range(len(self.notify)))
        zones = "".join(
            f"  - domain: {origin}\n    file: {path}\n    acl: transfer\n"
            + (f"    notify: [{notify}]\n" if notify else "")
            for origin, path in self.zones.items()
        )
        (directory / "db").mkdir(parents=True, exist_ok=True)  # the journal lives there
        conf = directory / "knot.conf"
        conf.write_text(
            "server:\n"
            f"    rundir: {directory}\n"
            f"    listen: {self.address}@{self.port}\n"
            "log:\n"
            "  - target: stderr\n"
            "    any: info\n"
            "database:\n"
            f"    storage: {directory}/db\n" + (f"remote:\n{remotes}" if remotes else "") + "acl:\n"
            "  - id: transfer\n"
            "    address: 127.0.0.0/8\n"
            "    action: transfer\n"
            "template:\n"
            "  - id: default\n"
            f"    storage: {directory}\n"
            "    zonefile-sync: -1\n"  # never write the zone back over our file
            "    zonefile-load: difference\n"  # a reloaded file becomes a journal entry
            "    journal-content: changes\n"
            "    serial-policy: increment\n"
            "zone:\n"
            f"{zones}"
        )
        return [find_tool("knotd") or "knotd", "-c", str(conf)]

    def reload(self) -> None:
        """SIGHUP: knotd reads its configuration again and the zone files that changed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)


def rpz_clause(name: str, *, zonefile: Path | None = None, primary: str | None = None,
               extra: str = "", log: bool = True) -> str:  # fmt: skip
    """An ``rpz:`` clause of Unbound's configuration (``rpz-log`` as ``log`` says)."""
    source = f'    zonefile: "{zonefile}"\n' if zonefile is not None else ""
    if primary is not None:
        source += f"    primary: {primary}\n"
    return f'rpz:\n    name: "{name}"\n{source}    rpz-log: {"yes" if log else "no"}\n{extra}'


class RpzUnbound(UnboundProcess):
    """Unbound with the ``respip`` module and ``rpz:`` clauses (:func:`rpz_clause`)."""

    def __init__(
        self,
        workdir: Path,
        hints: Path,
        port: int,
        clauses: Sequence[str],
        nodefault_zones: tuple[str, ...] = NODEFAULT_ZONES,
        modules: str = "respip validator iterator",
        server: str = "",
    ) -> None:
        """``server``: more lines for the ``server:`` clause (local-zone lines, say)."""
        super().__init__(workdir, hints, port, nodefault_zones=nodefault_zones)
        self.rpz_clauses = list(clauses)
        self.modules = modules
        self.server = server

    def command(self) -> list[str]:
        conf = self.workdir / "unbound.conf"
        self.workdir.mkdir(parents=True, exist_ok=True)
        text = unbound_conf(self.workdir, self.hints, self.port, 0, self.nodefault_zones)
        text = text.replace('module-config: "iterator"\n', f'module-config: "{self.modules}"\n'
                            + self.server)  # fmt: skip
        text = text.replace("remote-control:", "".join(self.rpz_clauses) + "remote-control:")
        conf.write_text(text)
        return [find_tool("unbound") or "unbound", "-d", "-c", str(conf)]
