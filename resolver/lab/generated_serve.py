"""A generated hierarchy on the air: zone files written, signed as planned, one NSD per
server (resolver/lab/nsd.py), the misbehaving fronts (resolver/lab/front.py), and the
delegation change applied on demand.

Signing uses resolver/lab/signing.py (``ldns-signzone``, new keys at each start, children
before parents, the root's KSK as the trust anchor); the signatures the plan breaks are
altered afterwards (one byte flipped).  What changes later (the parent of a delegation
that moves, and the moved zone as its new servers serve it) is signed with the zone's own
keys, so the chain of trust is the same before and after.

Starting a hierarchy of a dozen servers takes about 0.2 s unsigned and 0.3-1 s signed
(NSD loads small zones at once), so each hierarchy gets fresh NSD processes rather than
reloading a shared set.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rdataclass
import dns.rdatatype

from resolver.lab.front import Fronts
from resolver.lab.generated_model import Hierarchy, Server
from resolver.lab.nsd import NsdError, NsdLab
from resolver.lab.signing import (
    Nsec3,
    SignedHierarchy,
    Signing,
    SigningError,
    alter_signature,
    parent_of,
    sign_hierarchy,
)
from resolver.lab.topology import ServerRole, zone_file

RELOAD_TIMEOUT = 10.0
VALIDITY = 30 * 86400


def _roles(servers: tuple[Server, ...]) -> tuple[ServerRole, ...]:
    return tuple(ServerRole(s.name, s.addresses, s.zones) for s in servers)


def zone_of(origins: list[str], owner: str) -> str:
    """The deepest of ``origins`` at or above ``owner``."""
    found = [o for o in origins if o == "." or owner == o or owner.endswith("." + o)]
    return max(found, key=len)


class ServedHierarchy:
    def __init__(self, hierarchy: Hierarchy, workdir: Path, port: int = 53) -> None:
        self.hierarchy = hierarchy
        self.workdir = Path(workdir)
        self.port = port
        self.signed: SignedHierarchy | None = None
        self.paths: dict[str, dict[str, Path]] = {}
        """Variant ("" main) -> origin -> the file NSD serves."""
        self.labs: dict[str, NsdLab] = {}
        self.fronts = Fronts(hierarchy.fronts, port)

    # -- zone files --------------------------------------------------------------------------

    def _write(self, variant: str, origin: str, text: str) -> Path:
        path = self.workdir / "zones" / (variant or "main") / zone_file(origin)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def _is_signed(self, origin: str) -> bool:
        plan = self.hierarchy.signing
        return plan.signed and plan.flaws.get(origin) != "insecure"

    def _signing(self) -> Signing:
        plan = self.hierarchy.signing
        return Signing(
            flaws=plan.flaws,
            nsec3={
                o: Nsec3(opt_out=kind == "nsec3-optout")
                for o, kind in plan.denial.items()
                if kind != "nsec"
            },
        )

    def prepare(self) -> None:
        """Write (and sign) every zone file of every variant."""
        hierarchy = self.hierarchy
        main = {o: self._write("", o, text) for o, text in hierarchy.zones.items()}
        if hierarchy.signing.signed:
            self.signed = sign_hierarchy(self.workdir / "dnssec", main, self._signing())
            main = dict(self.signed.zone_paths)
            for owner, rtype in hierarchy.signing.broken:
                path = main[zone_of(list(main), owner)]
                path.write_text(alter_signature(path.read_text(), owner, rtype))
        self.paths[""] = main
        for variant, zones in hierarchy.variants.items():
            self.paths[variant] = {o: self._sign_again(variant, o, t) for o, t in zones.items()}

    def _sign_again(self, variant: str, origin: str, text: str) -> Path:
        """A later version of a zone, signed with the keys it was first signed with (and
        its children's DS records, as at the first signing)."""
        unsigned = self._write(variant, origin, text)
        if self.signed is None or not self._is_signed(origin):
            return unsigned
        keys = self.workdir / "dnssec" / "keys" / (origin.rstrip(".") or "root")
        bases = sorted(path.stem for path in keys.glob("K*.private"))
        origins = list(self.hierarchy.zones)
        children = [o for o in origins if o != origin and parent_of(o, origins) == origin]
        ds = "".join(f"{line}\n" for child in children for line in self.signed.ds.get(child, ()))
        unsigned.write_text(f"{text}\n$ORIGIN {origin}\n{ds}")
        signed = unsigned.with_suffix(".signed")
        now = time.time()
        denial = self.hierarchy.signing.denial.get(origin, "nsec")
        nsec3 = Nsec3(opt_out=denial == "nsec3-optout").flags() if denial != "nsec" else []
        command = ["ldns-signzone", "-o", origin, "-f", str(signed),
                   "-i", _timestamp(now - 3600), "-e", _timestamp(now + VALIDITY), *nsec3,
                   str(unsigned), *bases]  # fmt: skip
        done = subprocess.run(command, cwd=keys, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SigningError(f"{' '.join(command)}: {done.stderr.strip()}")
        return signed

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> ServedHierarchy:
        try:
            self.prepare()
            servers = self.hierarchy.servers
            for variant in {s.variant for s in servers}:
                roles = _roles(tuple(s for s in servers if s.variant == variant))
                lab = NsdLab(self.workdir / f"nsd-{variant or 'main'}", roles=roles,
                             port=self.port, hints=self.hierarchy.hints_text(),
                             zone_files=self.paths[variant])  # fmt: skip
                self.labs[variant] = lab
                lab.start()
            self.fronts.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.fronts.stop()
        for lab in self.labs.values():
            lab.stop()
        self.labs.clear()

    def __enter__(self) -> ServedHierarchy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def trust_anchor(self) -> Path | None:
        return None if self.signed is None else self.signed.trust_anchor

    def write_hints(self, path: Path) -> Path:
        path.write_text(self.hierarchy.hints_text())
        return path

    # -- the change ----------------------------------------------------------------------------

    def apply_change(self) -> None:
        """The parent delegates the zone to its new servers from now on (the old ones keep
        serving it): the parent's file replaced, its NSDs reloaded (SIGHUP), and a bounded
        wait until each serves the new version."""
        change = self.hierarchy.change
        if change is None:
            raise ValueError("this hierarchy has no change")
        path = self.paths[""][change.parent]
        new = self._sign_again("changed", change.parent, change.parent_text)
        path.write_text(new.read_text())
        lab = self.labs[""]
        for server in self.hierarchy.servers:
            if change.parent in server.zones and server.variant == "":
                lab.processes[server.name].send_signal(1)  # SIGHUP: NSD reads its zones again
                for address in server.addresses:
                    self._wait_serial(address, change.parent, 2)

    def _wait_serial(self, address: str, origin: str, serial: int) -> None:
        deadline = time.monotonic() + RELOAD_TIMEOUT
        query = dns.message.make_query(origin, "SOA")
        query.flags &= ~dns.flags.RD
        while time.monotonic() < deadline:
            try:
                reply = dns.query.udp(query, address, port=self.port, timeout=0.5)
                soa = reply.find_rrset(reply.answer, reply.question[0].name,
                                       dns.rdataclass.IN, dns.rdatatype.SOA)  # fmt: skip
                if soa[0].serial == serial:
                    return
            except (dns.exception.Timeout, OSError, KeyError):
                pass  # not up again yet, or still the old zone's answer
            time.sleep(0.05)
        raise NsdError(f"{address} did not serve {origin} serial {serial} after reloading")


def _timestamp(seconds: float) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(seconds))
