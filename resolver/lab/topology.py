"""The lab's simulated DNS internet: which server answers for which zone, and where.

Address scheme (every lab server listens on the same port, default 5300):

=================  ==========================================================
127.1.0.N          root servers: a.root-servers.net 127.1.0.1, b 127.1.0.2
                   (both alive); c.root-servers.net 127.1.0.3 is a *dead* hint.
                   They also serve the ``root-servers.net.`` zone.
127.2.T.N          TLD servers, T = 1 com, 2 net, 3 org, 4 lab, 5 arpa,
                   6 in-addr.arpa (N = 1, 2 for the two servers of a TLD).
127.3.Z.N          well-behaved servers of second-level and deeper zones
                   (Z numbers the provider, N its servers).
127.4.Z.N          misbehaving servers, each next to (or instead of) a working one:
                   lame (REFUSED), dead (nothing bound), silent, poison, wrong-first.
=================  ==========================================================

Answer data (A/AAAA that are not name servers) only uses documentation ranges
(192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32); nothing ever
contacts them.

Delegations with nothing behind them on purpose:

* ``loop1.com NS ns.loop2.net`` and ``loop2.net NS ns.loop1.com``, no glue anywhere:
  a delegation loop, unresolvable, so the zones have no file and no server.
* the addresses in :data:`DEAD_ADDRESSES` appear in zone data (and the root hints)
  but nothing is bound there.

For a later NSD-based tier serving the same files on the same addresses: "normal" roles map
directly; the "refused" role serves no zone, so an NSD there answers REFUSED as well; the
silent, wrong-first and poison behaviours have no NSD equivalent (keep the dnspython servers
for those addresses, or leave those cases out of that tier).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ZONES_DIR = Path(__file__).resolve().parent / "zones"
"""The lab's zone files, installed with the package (package data of ``resolver.lab``)."""

Behaviour = Literal["normal", "refused", "silent", "wrong_first", "poison"]
"""How a server role answers.

normal       an RFC 1034 authoritative server for its zones.
refused      a lame server: REFUSED to every query (it serves no zone).
silent       binds UDP and TCP, reads queries, never answers.
wrong_first  over UDP, for every query first a reply with a wrong ID, then one with the
             right ID but a wrong question, then the correct reply (TCP: correct only).
poison       a normal answer plus out-of-bailiwick junk: ``www.example.com. A 203.0.113.66``
             in the answer and additional sections and ``example.com. NS ns1.poison.com.``
             in the authority section.
"""

BEHAVIOURS: tuple[Behaviour, ...] = ("normal", "refused", "silent", "wrong_first", "poison")


@dataclass(frozen=True)
class ServerRole:
    """One authoritative server: the same zones served on each of its addresses."""

    name: str
    addresses: tuple[str, ...]
    zones: tuple[str, ...]
    """Zone origins, absolute, lower case ("." for the root); file: :func:`zone_file`."""
    behaviour: Behaviour = "normal"


def zone_file(origin: str) -> str:
    """File name (in ``zones_dir``) of the zone with this absolute origin."""
    if origin == ".":
        return "root.zone"
    return origin.rstrip(".") + ".zone"


ROOT_HINTS: tuple[tuple[str, str], ...] = (
    ("a.root-servers.net.", "127.1.0.1"),
    ("b.root-servers.net.", "127.1.0.2"),
    ("c.root-servers.net.", "127.1.0.3"),  # dead: nothing listens there
)

DEAD_ADDRESSES: frozenset[str] = frozenset(
    {
        "127.1.0.3",  # c.root-servers.net, a dead root hint
        "127.4.2.1",  # ns1.dead.com, next to the working ns2.dead.com
    }
)

SERVERS: tuple[ServerRole, ...] = (
    # roots
    ServerRole("root", ("127.1.0.1", "127.1.0.2"), (".", "root-servers.net.")),
    # TLDs
    ServerRole("com", ("127.2.1.1", "127.2.1.2"), ("com.",)),
    ServerRole("net", ("127.2.2.1", "127.2.2.2"), ("net.",)),
    ServerRole("org", ("127.2.3.1",), ("org.",)),
    ServerRole("lab", ("127.2.4.1",), ("lab.",)),
    ServerRole("arpa", ("127.2.5.1",), ("arpa.",)),
    ServerRole("in-addr-arpa", ("127.2.6.1",), ("in-addr.arpa.",)),
    # well-behaved second-level and deeper zones
    ServerRole("example-com", ("127.3.1.1", "127.3.1.2"), ("example.com.",)),
    ServerRole("chain-com", ("127.3.2.1",), ("chain.com.",)),
    ServerRole("chain-net", ("127.3.3.1",), ("chain.net.",)),
    ServerRole("chain-org", ("127.3.4.1",), ("chain.org.",)),
    ServerRole("provider-net", ("127.3.5.1",), ("provider.net.", "noglue.org.")),
    ServerRole("example-net", ("127.3.6.1",), ("example.net.", "2.0.192.in-addr.arpa.")),
    ServerRole("google-com", ("127.3.7.1",), ("google.com.",)),
    ServerRole("deep-lab", ("127.3.8.1",), ("deep.lab.",)),
    ServerRole("a-deep-lab", ("127.3.8.2",), ("a.deep.lab.",)),
    ServerRole("b-a-deep-lab", ("127.3.8.3",), ("b.a.deep.lab.",)),
    # misbehaving servers, each with a working partner where the zone needs one
    ServerRole("lame-com-refused", ("127.4.1.1",), (), "refused"),
    ServerRole("lame-com", ("127.4.1.2",), ("lame.com.",)),
    ServerRole("dead-com", ("127.4.2.2",), ("dead.com.",)),  # ns1 127.4.2.1 is dead
    ServerRole("silent-com-silent", ("127.4.3.1",), ("silent.com.",), "silent"),
    ServerRole("silent-com", ("127.4.3.2",), ("silent.com.",)),
    ServerRole("poison-com", ("127.4.4.1",), ("poison.com.",), "poison"),
    ServerRole("wrongid-com", ("127.4.5.1",), ("wrongid.com.",), "wrong_first"),
)


def all_zones() -> tuple[str, ...]:
    """Every zone origin some server serves (each has a file in ``zones_dir``)."""
    seen: dict[str, None] = {}
    for role in SERVERS:
        for origin in role.zones:
            seen.setdefault(origin, None)
    return tuple(seen)


def hints_text() -> str:
    """Root hints in the InterNIC ``named.root`` format (including the dead hint)."""
    lines = [
        ";       Root hints for the resolver test lab (resolver.lab), InterNIC named.root format.",
        ";       c.root-servers.net (127.1.0.3) is deliberately dead: nothing listens there.",
        ";",
    ]
    for name, address in ROOT_HINTS:
        lines.append(f"{'.':<24} 3600000      NS    {name}")
        lines.append(f"{name:<24} 3600000      A     {address}")
        lines.append(";")
    lines.append("; End of file")
    return "\n".join(lines) + "\n"


def write_hints_file(path: str | Path, text: str) -> Path:
    """Write hints atomically (a temporary file renamed into place), so a script that
    waits for ``path`` to appear never reads half a file."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path
