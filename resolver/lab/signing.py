"""DNSSEC for the NSD lab: every zone signed with ``ldns-signzone`` when the lab starts.

Keys and signed zones are generated into the NSD work directory at each start (never kept
in the repository), children before parents, so that each child's DS record can be added
to its parent's zone before the parent is signed (RFC 4035 section 2.4).  The root's KSK
becomes the trust anchor, written as a DS record in master-file format, which both
Unbound (``trust-anchor-file:``) and this resolver (``--trust-anchor-file``) read.

Keys are ECDSA P-256 with SHA-256 (algorithm 13, RFC 6605: what most signed zones use
today) unless :attr:`Signing.algorithms` says otherwise for a zone, a KSK and a ZSK per
zone (or one combined key per zone, :attr:`Signing.combined_key`, for hierarchies of
thousands of zones); signatures are valid from an hour ago for
:attr:`Signing.validity_days`; denial of existence is NSEC unless a zone is listed in
:attr:`Signing.nsec3` (by default with no extra iterations and no salt, RFC 9276).

A zone may be broken on purpose (:data:`FLAWS`); :func:`lab_signing` adds a server with
one zone per flaw under ``lab.``, one per other algorithm, and NSEC3 zones (plain, with
too many iterations, with opt-out over an unsigned child) to the lab's hierarchy.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from resolver.lab.topology import ServerRole, zone_file

ALGORITHM = "ECDSAP256SHA256"
RSA_BITS = "2048"
TOOLS = ("ldns-keygen", "ldns-signzone")
DS_TTL = 300  # the TTL of the DS records added to parents and of the trust anchor line

Flaw = Literal[
    "expired", "not-yet-valid", "ds-without-key", "missing-signatures", "bad-signature", "insecure"
]
FLAWS: dict[Flaw, str] = {
    "expired": "every signature expired a day ago (its DS at the parent is right)",
    "not-yet-valid": "every signature's inception is ten days ahead",
    "ds-without-key": "the parent's DS names a key the zone does not have",
    "missing-signatures": "the parent has a DS for it, but the zone is served unsigned",
    "bad-signature": "the signature over www A is altered after signing (one byte flipped)",
    "insecure": "an unsigned zone with no DS at its parent: an insecure delegation",
}
"""What each deliberate flaw does (the zone is otherwise signed like every other)."""

BAD_SIGNATURE_OWNER = "www"
"""The owner (relative to the zone) whose A RRset's signature ``bad-signature`` alters."""


class SigningError(RuntimeError):
    """A key could not be made or a zone could not be signed (the message has the tool's
    output)."""


@dataclass(frozen=True)
class Nsec3:
    """NSEC3 parameters (RFC 5155): SHA-1, no salt, ``iterations`` extra hashes."""

    iterations: int = 0
    opt_out: bool = False

    def flags(self) -> list[str]:
        return ["-n", "-t", str(self.iterations), "-s", "", *(["-p"] if self.opt_out else [])]


@dataclass(frozen=True)
class Signing:
    """How a hierarchy is signed, and which zones are added to it for that.

    ``flaws``          origin -> a deliberate flaw (:data:`FLAWS`);
    ``nsec3``          origin -> NSEC3 parameters, for zones signed with NSEC3, not NSEC;
    ``algorithms``     origin -> an ``ldns-keygen -a`` algorithm other than :data:`ALGORITHM`;
    ``extra_roles``    servers added to the hierarchy (for the zones below);
    ``extra_zones``    origin -> master-file text of a zone those servers serve;
    ``delegations``    parent origin -> master-file text added to the parent (NS, glue);
    ``combined_key``   one key (flags 257) signs everything, instead of a KSK and a ZSK.
    """

    flaws: Mapping[str, Flaw] = field(default_factory=dict)
    nsec3: Mapping[str, Nsec3] = field(default_factory=dict)
    algorithms: Mapping[str, str] = field(default_factory=dict)
    extra_roles: tuple[ServerRole, ...] = ()
    extra_zones: Mapping[str, str] = field(default_factory=dict)
    delegations: Mapping[str, str] = field(default_factory=dict)
    combined_key: bool = False
    validity_days: int = 30


# -- the lab's DNSSEC cases ----------------------------------------------------------------

DNSSEC_ADDRESS = "127.3.9.1"
DNSSEC_ZONES: dict[str, Flaw | None] = {
    "expired.lab.": "expired",
    "notyet.lab.": "not-yet-valid",
    "nokey.lab.": "ds-without-key",
    "nosigs.lab.": "missing-signatures",
    "badsig.lab.": "bad-signature",
    "insecure.lab.": "insecure",
    "nsec3.lab.": None,
    "nsec3-iter.lab.": None,
    "optout.lab.": None,
    "child.optout.lab.": "insecure",
    "rsasha1.lab.": None,
    "rsasha256.lab.": None,
    "rsasha512.lab.": None,
    "ecdsa384.lab.": None,
    "ed25519.lab.": None,
    "ed448.lab.": None,
}
"""The zones :func:`lab_signing` adds under ``lab.``, all on one server, and their flaw."""

NSEC3_ZONES: dict[str, Nsec3] = {
    "nsec3.lab.": Nsec3(),
    # Above the 150 of RFC 9276 section 3.2 (and of both resolvers): its proofs are insecure.
    "nsec3-iter.lab.": Nsec3(iterations=200),
    # child.optout.lab. is an unsigned delegation the NSEC3 chain skips (RFC 5155 6).
    "optout.lab.": Nsec3(opt_out=True),
}

ALGORITHM_ZONES: dict[str, str] = {
    "rsasha1.lab.": "RSASHA1",  # 5: RFC 8624 says MUST validate, NOT RECOMMENDED to sign
    "rsasha256.lab.": "RSASHA256",  # 8
    "rsasha512.lab.": "RSASHA512",  # 10
    "ecdsa384.lab.": "ECDSAP384SHA384",  # 14
    "ed25519.lab.": "ED25519",  # 15
    "ed448.lab.": "ED448",  # 16
}


def www_address(origin: str) -> str:
    """The address of ``www`` in one of :data:`DNSSEC_ZONES` (192.0.2.160 and up)."""
    return f"192.0.2.{160 + list(DNSSEC_ZONES).index(origin)}"


def case_zone_text(origin: str, index: int) -> str:
    """A small zone: apex NS, ``www`` A and AAAA, a wildcard below an empty non-terminal,
    a CNAME; enough for an answer, NODATA, NXDOMAIN and a wildcard answer."""
    return (
        f"$ORIGIN {origin}\n$TTL 300\n"
        f"@ SOA ns1 hostmaster 2024010101 1800 900 604800 60\n"
        f"@ NS ns1\nns1 A {DNSSEC_ADDRESS}\n"
        f"www A 192.0.2.{160 + index}\nwww AAAA 2001:db8::{160 + index:x}\n"
        f'*.wild TXT "wildcard of {origin}"\n'
        "alias CNAME www\n"
    )


def lab_signing() -> Signing:
    """The lab signed, plus one zone per flaw and an NSEC3 zone under ``lab.``."""
    zones = tuple(DNSSEC_ZONES)
    delegations = "".join(
        f"{origin} NS ns1.{origin}\nns1.{origin} A {DNSSEC_ADDRESS}\n"
        for origin in zones
        if parent_of(origin, zones) is None
    )
    return Signing(
        flaws={origin: flaw for origin, flaw in DNSSEC_ZONES.items() if flaw is not None},
        nsec3=NSEC3_ZONES,
        algorithms=ALGORITHM_ZONES,
        extra_roles=(ServerRole("dnssec-lab", (DNSSEC_ADDRESS,), zones),),
        extra_zones={origin: case_zone_text(origin, i) for i, origin in enumerate(zones)},
        delegations={
            "lab.": delegations,
            "optout.lab.": f"child NS ns1.child\nns1.child A {DNSSEC_ADDRESS}\n",
        },
    )


# -- signing ------------------------------------------------------------------------------


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


@dataclass
class SignedHierarchy:
    """What :func:`sign_hierarchy` made: the files NSD serves and the trust anchor."""

    zone_paths: dict[str, Path]
    trust_anchor: Path | None
    """The root's KSK as a DS line (None if the root is not in the hierarchy)."""
    ds: dict[str, list[str]]
    """Origin -> the DS lines added to its parent (empty for an insecure delegation)."""


def _run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SigningError(f"{' '.join(command)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def _keygen(directory: Path, origin: str, ksk: bool, algorithm: str = ALGORITHM) -> str:
    """A new key for ``origin`` in ``directory``; returns its base name (Kname+alg+tag)."""
    flags = ["-k"] if ksk else []
    if algorithm.startswith("RSA"):
        flags += ["-b", RSA_BITS]
    return _run(["ldns-keygen", "-a", algorithm, *flags, origin], directory).strip()


def _ds_line(directory: Path, base: str, origin: str) -> str:
    """The SHA-256 DS (``ldns-keygen -k`` writes it next to the key) with an explicit TTL."""
    fields = (directory / f"{base}.ds").read_text().split()
    # "owner IN DS tag alg digest-type digest"
    tag, algorithm, digest_type, digest = fields[3:7]
    return f"{origin} {DS_TTL} IN DS {tag} {algorithm} {digest_type} {digest}"


def _timestamp(seconds: float) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(seconds))


def _validity(flaw: Flaw | None, now: float, days: int) -> tuple[float, float]:
    day = 86400.0
    if flaw == "expired":
        return now - 31 * day, now - day
    if flaw == "not-yet-valid":
        return now + 10 * day, now + (10 + days) * day
    return now - 3600, now + days * day


def alter_signature(text: str, owner: str, covered: str) -> str:
    """``text`` (a signed zone, one record per line) with one byte of the signature over
    ``owner``'s ``covered`` RRset flipped: the record is intact, its signature is wrong."""
    lines = text.splitlines()
    for number, line in enumerate(lines):
        fields = line.split()
        if len(fields) > 5 and fields[0].lower() == owner.lower() and fields[3] == "RRSIG":
            if fields[4] != covered:
                continue
            signature = bytearray(base64.b64decode(fields[-1]))
            signature[-1] ^= 0xFF
            fields[-1] = base64.b64encode(bytes(signature)).decode()
            lines[number] = "\t".join(fields)
            return "\n".join(lines) + "\n"
    raise SigningError(f"no RRSIG over {owner} {covered} to alter")


class _ZoneSigner:
    def __init__(self, workdir: Path, signing: Signing, now: float) -> None:
        self.workdir = workdir
        self.signing = signing
        self.now = now

    def keys(self, origin: str) -> tuple[Path, list[str], str]:
        """Directory, key base names to sign with, and the DS line for the parent."""
        directory = self.workdir / "keys" / (origin.rstrip(".") or "root")
        directory.mkdir(parents=True, exist_ok=True)
        algorithm = self.signing.algorithms.get(origin, ALGORITHM)
        ksk = _keygen(directory, origin, True, algorithm)
        bases = [ksk]
        if not self.signing.combined_key:
            bases.append(_keygen(directory, origin, False, algorithm))
        ds = _ds_line(directory, ksk, origin)
        if self.signing.flaws.get(origin) == "ds-without-key":
            # A KSK the zone never publishes: the parent's DS matches no DNSKEY.
            ds = _ds_line(directory, _keygen(directory, origin, True, algorithm), origin)
        return directory, bases, ds

    def sign(self, origin: str, source: Path, children_ds: list[str]) -> tuple[Path, str | None]:
        """Sign one zone (its children's DS lines added); returns the file NSD serves and
        the DS line for its parent (None: an insecure delegation)."""
        name = zone_file(origin)
        unsigned = self.workdir / "unsigned" / name
        unsigned.parent.mkdir(parents=True, exist_ok=True)
        additions = "".join(f"{line}\n" for line in children_ds)
        unsigned.write_text(f"{source.read_text()}\n$ORIGIN {origin}\n{additions}")
        flaw = self.signing.flaws.get(origin)
        if flaw == "insecure":
            return unsigned, None
        directory, bases, ds = self.keys(origin)
        if flaw == "missing-signatures":
            return unsigned, ds
        signed = self.workdir / "signed" / name
        signed.parent.mkdir(parents=True, exist_ok=True)
        inception, expiration = _validity(flaw, self.now, self.signing.validity_days)
        nsec3 = self.signing.nsec3[origin].flags() if origin in self.signing.nsec3 else []
        _run(
            ["ldns-signzone", "-o", origin, "-f", str(signed), "-i", _timestamp(inception),
             "-e", _timestamp(expiration), *nsec3, str(unsigned), *bases],
            directory,
        )  # fmt: skip
        if flaw == "bad-signature":
            owner = f"{BAD_SIGNATURE_OWNER}.{origin}"
            signed.write_text(alter_signature(signed.read_text(), owner, "A"))
        return signed, ds


def parent_of(origin: str, origins: Iterable[str]) -> str | None:
    """The closest enclosing zone of ``origin`` among ``origins``."""
    candidates = set(origins)
    labels = origin.rstrip(".").split(".") if origin != "." else []
    for cut in range(1, len(labels) + 1):
        parent = ".".join(labels[cut:]) + "." if cut < len(labels) else "."
        if parent in candidates:
            return parent
    return None


def sign_hierarchy(
    workdir: Path,
    sources: Mapping[str, Path],
    signing: Signing,
    now: float | None = None,
    workers: int = 2,
) -> SignedHierarchy:
    """Sign every zone of ``sources`` (origin -> unsigned file), deepest first, each
    parent with its children's DS records; write the root's DS as the trust anchor."""
    missing = missing_tools()
    if missing:
        raise SigningError(f"missing {', '.join(missing)} (apt-get install ldnsutils)")
    workdir.mkdir(parents=True, exist_ok=True)
    signer = _ZoneSigner(workdir, signing, time.time() if now is None else now)
    parents = {origin: parent_of(origin, sources) for origin in sources}
    children_ds: dict[str, list[str]] = {origin: [] for origin in sources}
    zone_paths: dict[str, Path] = {}
    ds: dict[str, list[str]] = {}
    depths = sorted({_depth(origin) for origin in sources}, reverse=True)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for depth in depths:  # a level's zones at once; their parents are all shallower
            level = [origin for origin in sources if _depth(origin) == depth]
            results = pool.map(
                lambda o: signer.sign(o, sources[o], children_ds[o]), level
            )  # fmt: skip
            for origin, (path, line) in zip(level, results, strict=True):
                zone_paths[origin] = path
                ds[origin] = [line] if line else []
                parent = parents[origin]
                if line and parent is not None:
                    children_ds[parent].append(line)
    anchor = None
    if ds.get("."):
        anchor = workdir / "root.ds"
        anchor.write_text(f"; the lab root's KSK, made when the lab started\n{ds['.'][0]}\n")
    return SignedHierarchy(zone_paths, anchor, ds)


def _depth(origin: str) -> int:
    return 0 if origin == "." else origin.rstrip(".").count(".") + 1
