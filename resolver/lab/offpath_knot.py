"""Knot DNS (``knotd``, Debian's ``knot``) as an authoritative server with DNS cookies, for
the off-path forgery tests: a real implementation of RFC 7873 on the server side.

Its ``mod-cookies`` module (default settings) answers every query whose Server Cookie
is missing or not its own with BADCOOKIE and a fresh Server Cookie (``badcookie-slip``
1), so a client must handle BADCOOKIE to get any answer from it.  It serves the zones
given as master-file text on 127.0.0.1 and the addresses given, one port, in the
foreground (the PID is ours to end).
"""

from __future__ import annotations

from pathlib import Path

from resolver.lab.nsd import find_tool
from resolver.lab.unbound import ServerProcess


def knotd_binary() -> str | None:
    return find_tool("knotd")


class KnotProcess(ServerProcess):
    """knotd serving ``zones`` (origin -> master-file text) with cookies on ``port``."""

    name = "knotd"

    def __init__(
        self,
        workdir: Path,
        port: int,
        zones: dict[str, str],
        addresses: tuple[str, ...] = (),
        cookies: bool = True,
    ) -> None:
        super().__init__(workdir, port)
        self.zones = zones
        self.addresses = addresses
        self.cookies = cookies

    def config(self) -> str:
        work = self.workdir
        listen = "".join(f"    listen: {a}@{self.port}\n" for a in ("127.0.0.1", *self.addresses))
        zones = ""
        for origin, text in self.zones.items():
            path = work / f"{origin.rstrip('.') or 'root'}.zone"
            path.write_text(text)
            zones += f"  - domain: {origin}\n    file: {path}\n"
        cookies = (
            "mod-cookies:\n  - id: default\n"
            "template:\n  - id: default\n    global-module: mod-cookies/default\n"
            if self.cookies
            else ""
        )
        return (
            f"server:\n{listen}    rundir: {work}\n    user: root:root\n"
            "log:\n  - target: stderr\n    any: info\n"
            f"database:\n    storage: {work}\n{cookies}zone:\n{zones}"
        )

    def command(self) -> list[str]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "knot.conf"
        conf.write_text(self.config())
        return [knotd_binary() or "knotd", "-c", str(conf)]
