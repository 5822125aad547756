"""A signed hierarchy that attacks the validator asking it (issue 20), zone by zone.

Every zone below the root is signed correctly and has a DS at the root; the attack is in
what its server sends for one or two (name, type) questions, the way an on-path attacker
(or the zone's own hostile operator, for KeyTrap) would send it:

==============  ============================================================================
zone            attack
==============  ============================================================================
signer.         ``www.signer. A`` forged, signed by the attacker's key with the signer name
                ``www.signer.`` (a name of the zone, no zone cut), and that key as
                ``www.signer. DNSKEY``; the DS question is answered honestly (a signed
                NODATA).  ``ghost.signer.`` the same for a name that does not exist (the DS
                question gets a signed NXDOMAIN).  RFC 4035 5.3.1, RFC 6840 4.1 and 4.4.
keytrap.        CVE-2023-50387: the DNSKEY RRset holds ``KEYTRAP_KEYS`` RSA keys sharing the
                key tag of the zone's real key, and any ``NAME.keytrap. A`` comes with
                ``KEYTRAP_SIGS`` RRSIGs of that tag, none valid (three servers).
nsec3trap.      CVE-2023-50868: an NXDOMAIN for any name below it (the attack asks names
                of 100 labels) whose proof is ``NSEC3_CHAINS`` NSEC3 records (validly
                signed), each of its own chain (a 255-octet salt, 150 iterations), so that
                proving it means hashing every label once per chain (three servers).
downgrade.      The DS set names an ECDSA key and a key of an unsupported algorithm (253);
                ``www.downgrade. A`` is forged with only a signature of algorithm 253
                (the ECDSA one stripped): a supported algorithm exists, so this is bogus,
                not insecure (RFC 4035 5.2, RFC 6840 5.11).
weak.           The DS set names an ECDSA and an RSA key; ``www.weak. A`` comes with the RSA
                signature only: RFC 6840 5.11 says any algorithm of the DS set may
                validate, so it is secure (the honest data).
digest.         The DS set has a SHA-256 DS for the zone's key and a SHA-1 DS for the
                attacker's; the attacker serves its own DNSKEY RRset and data: SHA-1 DS
                records are ignored when SHA-256 ones exist (RFC 4509 section 3).
replay.         Data from elsewhere glued on: ``www.child.replay.`` signed by the parent
                zone (cross-zone), ``www.replay. A`` with the RRSIG of ``other.replay. A``,
                ``old.replay. A`` with an expired signature, ``x.wild.replay. TXT`` expanded
                from the wildcard without the NSEC that proves x.wild does not exist, and
                ``nothing.child.replay.`` denied with the parent zone's NSEC.
bogus.          Every signature expired: the zone a negative trust anchor is for.
aggr.           An honest NSEC zone with a wildcard, for aggressive use of NSEC (RFC 8198).
aggr3.          The same with NSEC3.
optout.         The same with NSEC3 opt-out on every record (no NXDOMAIN proves secure).
shared.         shared. and its signed child sub.shared. on one server.
==============  ============================================================================

:func:`build` makes the world (keys are made at each call) and :data:`ATTACKS` lists the
questions with what a validator must answer.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass
from typing import Literal

import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.RRSIG
import dns.rrset

from .forged_world import Server, World, delegation, zone_text
from .forged_zones import (
    DAY,
    IN,
    TTL,
    VALID,
    Algorithm,
    Forgery,
    Key,
    SignedZone,
    Validity,
    copy_rrset,
    dnskey_text,
    ds_text,
    fake_rrsig,
    new_key,
    nsec3param,
    response,
    rsa_key_with_tag,
    sign,
)

ROOT_ADDRESS = "127.9.0.1"
KEYTRAP_KEYS = 100
KEYTRAP_SIGS = 100
TRAP_SERVERS = 3  # a validator that tries the next server after bogus data pays again
KEYTRAP_BITS = 4096  # the largest RSA key a validator takes (RFC 3110): the dearest check
NSEC3_CHAINS = 100
NSEC3_LABELS = 100
NSEC3_ITERATIONS = 150  # the most either resolver hashes (RFC 9276 section 3.2)
UNSUPPORTED_ALGORITHM = 253  # PRIVATEDNS: no validator has it
FORGED_ADDRESS = "6.6.6.6"

Outcome = Literal["secure", "insecure", "bogus"]


@dataclass(frozen=True)
class Attack:
    """A question and what a validator must answer: ``bogus`` (SERVFAIL with an Extended
    DNS Error among ``info_codes``), ``secure`` (the honest data, AD) or ``insecure``."""

    id: str
    qname: str
    qtype: str
    outcome: Outcome
    note: str
    info_codes: tuple[int, ...] = (6,)
    forged: str = FORGED_ADDRESS  # what the attacker wants answered: never in an answer


def deep_name(label: str = "a") -> str:
    """A name of NSEC3_LABELS labels below nsec3trap., its first label ``label``."""
    return f"{label}." + "a." * (NSEC3_LABELS - 1) + "nsec3trap."


DEEP_NAME = deep_name()

ATTACKS: list[Attack] = [
    Attack("signer-nodata", "www.signer.", "A", "bogus",
           "RRSIG signer www.signer. (no zone cut), its DS NODATA honest", (6, 9, 10)),
    Attack("signer-nxdomain", "ghost.signer.", "A", "bogus",
           "RRSIG signer ghost.signer. (no such name), its DS NXDOMAIN honest", (6, 9, 10)),
    Attack("keytrap", "www.keytrap.", "A", "bogus",
           f"{KEYTRAP_KEYS} DNSKEYs with one key tag, {KEYTRAP_SIGS} RRSIGs of that tag",
           (6,), "192.0.2.30"),
    Attack("nsec3-hashing", DEEP_NAME, "A", "bogus",
           f"NXDOMAIN for {NSEC3_LABELS} labels with {NSEC3_CHAINS} NSEC3 chains "
           f"({NSEC3_ITERATIONS} iterations, 255-octet salts)", (6, 12, 27), "NXDOMAIN"),
    Attack("downgrade-unsupported", "www.downgrade.", "A", "bogus",
           "DS algorithms 13 and 253; the answer signed with 253 only", (6, 10)),
    Attack("downgrade-weaker", "www.weak.", "A", "secure",
           "DS algorithms 13 and 8; the answer signed with 8 only (RFC 6840 5.11)"),
    Attack("digest-downgrade", "www.digest.", "A", "bogus",
           "DS SHA-256 for the zone's key, SHA-1 for the attacker's (RFC 4509 3)", (6, 9)),
    Attack("cross-zone", "www.child.replay.", "A", "bogus",
           "child data signed by the parent zone (signer above the zone cut)", (6, 9, 10)),
    Attack("other-name", "www.replay.", "A", "bogus",
           "the RRSIG of other.replay. A on www.replay. A (same address)", (6,),
           "192.0.2.10"),
    Attack("expired-replay", "old.replay.", "A", "bogus",
           "an old address with its signature that expired a month ago", (7,)),
    Attack("wildcard-without-proof", "x.wild.replay.", "TXT", "bogus",
           "a wildcard expansion without the NSEC proving x.wild does not exist", (6, 12),
           '"wildcard"'),
    Attack("nsec-wrong-zone", "nothing.child.replay.", "A", "bogus",
           "NXDOMAIN from the child proved with the parent zone's NSEC", (6, 12), "NXDOMAIN"),
    Attack("honest", "ok.replay.", "A", "secure", "an honest answer of the same hierarchy"),
]  # fmt: skip
ATTACKS_BY_ID = {attack.id: attack for attack in ATTACKS}


class _Builder:
    def __init__(self, now: float) -> None:
        self.now = now
        self.servers: dict[str, Server] = {}
        self.ds: dict[str, list[str]] = {}  # origin -> DS lines for the root
        self.zone_servers: dict[str, list[Server]] = {}  # origin -> its servers
        self.next_address = 1

    def server(self, origin: str, name: str = "") -> Server:
        address = f"127.9.{self.next_address}.1"
        self.next_address += 1
        server = Server(address, name or f"ns1.{origin}")
        self.servers[address] = server
        return server

    def add(self, server: Server, zone: SignedZone) -> SignedZone:
        server.zones.append(zone)
        return zone


def build(
    now: float | None = None,
    *,
    keytrap_keys: int = KEYTRAP_KEYS,
    keytrap_sigs: int = KEYTRAP_SIGS,
    nsec3_chains: int = NSEC3_CHAINS,
) -> World:
    """The world: a signed root on :data:`ROOT_ADDRESS` and one server per zone below."""
    b = _Builder(time.time() if now is None else now)
    children = [
        _signer(b), _keytrap(b, keytrap_keys, keytrap_sigs), _nsec3trap(b, nsec3_chains),
        _downgrade(b), _weak(b), _digest(b), _replay(b), _shared(b), _bogus(b), _aggr(b), _aggr3(b),
        _optout(b),
    ]  # fmt: skip
    root_server = Server(ROOT_ADDRESS, "a.root-servers.net.")
    root_key = new_key()
    body = "".join(delegation(origin, b.zone_servers[origin], b.ds[origin])
                   for origin, _ in children)  # fmt: skip
    root = SignedZone(".", zone_text(".", root_server, body), [root_key], now=b.now)
    root_server.zones.append(root)
    return World({ROOT_ADDRESS: root_server, **b.servers}, root_key)


def _signed(b: _Builder, origin: str, body: str, keys: list[Key] | None = None,
            servers: int = 1, **extra: object) -> tuple[str, Server, SignedZone]:  # fmt: skip
    """A signed zone on ``servers`` servers (ns1, ns2, ... of the zone), its DS for the
    root made from its first key."""
    server = b.server(origin)
    others = [b.server(origin, f"ns{n}.{origin}") for n in range(2, servers + 1)]
    keys = keys if keys is not None else [new_key()]
    text = zone_text(origin, server, body, others)
    zone = SignedZone(origin, text, keys, now=b.now, **extra)  # type: ignore[arg-type]
    for each in (server, *others):
        b.add(each, zone)
    b.zone_servers[origin] = [server, *others]
    b.ds[origin] = [ds_text(origin, keys[0])]
    return origin, server, zone


# -- hole 1: a signer name chosen by the data ---------------------------------------------


def _signer(b: _Builder) -> tuple[str, Server]:
    origin, server, zone = _signed(b, "signer.", "www A 192.0.2.1\nwww AAAA 2001:db8::1\n")
    attacker = new_key()
    for name in ("www.signer.", "ghost.signer."):
        zone.forgeries[(name, "A")] = _forged_answer(name, "A", FORGED_ADDRESS, attacker, name, b)
        key_rrset = dns.rrset.from_text(name, TTL, "IN", "DNSKEY", attacker.dnskey.to_text())
        zone.forgeries[(name, "DNSKEY")] = _fixed([key_rrset, sign(key_rrset, attacker, name,
                                                                   now=b.now)])  # fmt: skip
    return origin, server


def _forged_answer(name: str, rrtype: str, rdata: str, key: Key, signer: str, b: _Builder,
                   validity: Validity = VALID) -> Forgery:  # fmt: skip
    rrset = dns.rrset.from_text(name, TTL, "IN", rrtype, rdata)
    return _fixed([rrset, sign(rrset, key, signer, now=b.now, validity=validity)])


def _fixed(answer: list[dns.rrset.RRset], authority: list[dns.rrset.RRset] | None = None,
           rcode: dns.rcode.Rcode = dns.rcode.NOERROR) -> Forgery:  # fmt: skip
    """A forgery that always sends these sections."""

    def forge(zone: SignedZone, query: dns.message.Message) -> dns.message.Message:
        reply = response(query)
        reply.set_rcode(rcode)
        reply.answer += [copy_rrset(r, r.name) for r in answer]
        reply.authority += [copy_rrset(r, r.name) for r in authority or []]
        return reply

    return forge


# -- KeyTrap and NSEC3 hashing -------------------------------------------------------------


def _keytrap(b: _Builder, keys: int, sigs: int) -> tuple[str, Server]:
    real = new_key(Algorithm.RSASHA256)
    fakes = "".join(
        f"@ DNSKEY {dnskey_text(256, 8, rsa_key_with_tag(real.tag, KEYTRAP_BITS))}\n"
        for _ in range(keys)
    )
    origin, server, zone = _signed(b, "keytrap.", fakes + "www A 192.0.2.30\n", [real],
                                   servers=TRAP_SERVERS)  # fmt: skip

    def trap(zone: SignedZone, query: dns.message.Message) -> dns.message.Message:
        """Any name below keytrap.: its A record and ``sigs`` RRSIGs of the key tag, none
        valid (distinct names, so that caches do not spare a resolver the work)."""
        qname = query.question[0].name
        www = dns.rrset.from_text(qname, TTL, "IN", "A", "192.0.2.30")
        sigset = dns.rrset.RRset(qname, IN, dns.rdatatype.RRSIG, dns.rdatatype.A)
        sigset.update_ttl(TTL)
        for _ in range(sigs):
            rdata = fake_rrsig(www, 8, real.tag, origin, KEYTRAP_BITS // 8, b.now)
            assert isinstance(rdata, dns.rdtypes.ANY.RRSIG.RRSIG)
            signature = bytearray(rdata.signature)
            signature[0] &= 0x7F  # below every modulus: each check is a full RSA operation
            sigset.add(rdata.replace(signature=bytes(signature)))
        reply = response(query)
        reply.answer += [www, sigset]
        return reply

    zone.forgeries[("*.keytrap.", "A")] = trap
    return origin, server


def _nsec3trap(b: _Builder, chains: int) -> tuple[str, Server]:
    key = new_key()
    param = nsec3param()
    origin, server, zone = _signed(b, "nsec3trap.", "www A 192.0.2.40\n", [key],
                                   servers=TRAP_SERVERS, nsec3=param)  # fmt: skip
    records: list[dns.rrset.RRset] = []
    for _ in range(chains):
        owner = base64.b32hexencode(os.urandom(20)).decode().lower() + "." + origin
        following = base64.b32hexencode(os.urandom(20)).decode()
        text = f"1 0 {NSEC3_ITERATIONS} {os.urandom(255).hex()} {following} A RRSIG"
        rrset = dns.rrset.from_text(owner, 60, "IN", "NSEC3", text)
        records += [rrset, sign(rrset, key, origin, now=b.now)]
    # Any name below nsec3trap. (the attack asks names of NSEC3_LABELS labels).
    zone.forgeries[("*.nsec3trap.", "A")] = _fixed([], zone.soa() + records, dns.rcode.NXDOMAIN)
    return origin, server


# -- downgrades -----------------------------------------------------------------------------


def _downgrade(b: _Builder) -> tuple[str, Server]:
    unsupported = base64.b64encode(os.urandom(64)).decode()
    body = f"@ DNSKEY 257 3 {UNSUPPORTED_ALGORITHM} {unsupported}\nwww A 192.0.2.50\n"
    origin, server, zone = _signed(b, "downgrade.", body)
    weak = zone.rrset("downgrade.", dns.rdatatype.DNSKEY)
    assert weak is not None
    odd = next(k for k in weak if k.algorithm == UNSUPPORTED_ALGORITHM)
    ds = dns.dnssec.make_ds(origin, odd, "SHA256", policy=dns.dnssec.allow_all_policy)
    b.ds[origin].append(f"{origin} {TTL} IN DS {ds}")
    forged = dns.rrset.from_text("www.downgrade.", TTL, "IN", "A", FORGED_ADDRESS)
    sig = dns.rrset.RRset(forged.name, IN, dns.rdatatype.RRSIG, dns.rdatatype.A)
    sig.update_ttl(TTL)
    sig.add(fake_rrsig(forged, UNSUPPORTED_ALGORITHM, dns.dnssec.key_id(odd), origin, 64, b.now))
    zone.forgeries[("www.downgrade.", "A")] = _fixed([forged, sig])
    return origin, server


def _weak(b: _Builder) -> tuple[str, Server]:
    strong, weak = new_key(), new_key(Algorithm.RSASHA256)
    origin, server, zone = _signed(b, "weak.", "www A 192.0.2.60\n", [strong, weak])
    b.ds[origin].append(ds_text(origin, weak))
    www = zone.rrset("www.weak.", dns.rdatatype.A)
    sigs = zone.signatures(dns.name.from_text("www.weak."), dns.rdatatype.A)
    assert www is not None and sigs is not None
    rsa_only = dns.rrset.RRset(sigs.name, IN, dns.rdatatype.RRSIG, dns.rdatatype.A)
    rsa_only.update_ttl(sigs.ttl)
    for rdata in sigs:
        if rdata.algorithm == Algorithm.RSASHA256:
            rsa_only.add(rdata)
    zone.forgeries[("www.weak.", "A")] = _fixed([www, rsa_only])
    return origin, server


def _digest(b: _Builder) -> tuple[str, Server]:
    real, attacker = new_key(), new_key()
    origin, server, zone = _signed(b, "digest.", "www A 192.0.2.70\n", [real])
    b.ds[origin] = [ds_text(origin, real, "SHA256"), ds_text(origin, attacker, "SHA1")]
    keys = dns.rrset.from_text(origin, TTL, "IN", "DNSKEY", attacker.dnskey.to_text())
    zone.forgeries[(origin, "DNSKEY")] = _fixed([keys, sign(keys, attacker, origin,
                                                            now=b.now)])  # fmt: skip
    zone.forgeries[("www.digest.", "A")] = _forged_answer(
        "www.digest.", "A", FORGED_ADDRESS, attacker, origin, b)  # fmt: skip
    return origin, server


# -- replayed and cross-zone data ------------------------------------------------------------


def _replay(b: _Builder) -> tuple[str, Server]:
    key = new_key()
    child_server = b.server("child.replay.")
    child_key = new_key()
    child = b.add(child_server, SignedZone(
        "child.replay.", zone_text("child.replay.", child_server, "www A 192.0.2.80\n"),
        [child_key], now=b.now))  # fmt: skip
    body = (
        "www A 192.0.2.11\nother A 192.0.2.10\nold A 192.0.2.12\nok A 192.0.2.13\n"
        "alpha A 192.0.2.14\n"
        '*.wild TXT "wildcard"\n'
        + delegation("child.replay.", child_server, [ds_text("child.replay.", child_key)])
    )
    origin, server, zone = _signed(b, "replay.", body, [key])
    # Cross-zone: the parent's key over a name of the child, sent by the child's server.
    child.forgeries[("www.child.replay.", "A")] = _forged_answer(
        "www.child.replay.", "A", FORGED_ADDRESS, key, origin, b)  # fmt: skip
    # Another name's signature: other.replay. A has the address the attacker wants.
    other_sig = zone.signatures(dns.name.from_text("other.replay."), dns.rdatatype.A)
    assert other_sig is not None
    glued = copy_rrset(other_sig, dns.name.from_text("www.replay."))
    wanted = dns.rrset.from_text("www.replay.", TTL, "IN", "A", "192.0.2.10")
    zone.forgeries[("www.replay.", "A")] = _fixed([wanted, glued])
    # An expired signature over the old address.
    zone.forgeries[("old.replay.", "A")] = _forged_answer(
        "old.replay.", "A", FORGED_ADDRESS, key, origin, b,
        Validity(inception=-60 * DAY, expiration=-30 * DAY))  # fmt: skip
    # A wildcard expansion without its proof.
    zone.forgeries[("x.wild.replay.", "TXT")] = _without_authority
    # The child's NXDOMAIN proved with the parent's NSEC at the cut.
    cut_nsec = zone.nsec_at(dns.name.from_text("child.replay."))
    child.forgeries[("nothing.child.replay.", "A")] = _fixed(
        [], child.soa() + cut_nsec, dns.rcode.NXDOMAIN)  # fmt: skip
    b.ds[origin] = [ds_text(origin, key)]
    return origin, server


def _without_authority(zone: SignedZone, query: dns.message.Message) -> dns.message.Message:
    reply = zone.honest(query)
    reply.authority = []
    return reply


# -- honest zones for the other features ----------------------------------------------------


def _shared(b: _Builder) -> tuple[str, Server]:
    """shared. and its signed child sub.shared. on one server: an answer for a name of the
    child comes from the child zone without a referral (the signer is below the cut)."""
    child_key = new_key()
    body = "www A 192.0.2.110\n" + f"sub NS ns1.shared.\n{ds_text('sub.shared.', child_key)}\n"
    origin, server, _ = _signed(b, "shared.", body)
    child_text = zone_text("sub.shared.", server, "www A 192.0.2.111\n")
    b.add(server, SignedZone("sub.shared.", child_text, [child_key], now=b.now))
    return origin, server


def _bogus(b: _Builder) -> tuple[str, Server]:
    """Every signature expired a day ago: bogus, unless a negative trust anchor says not to
    validate it (RFC 7646)."""
    origin, server, _ = _signed(b, "bogus.", "www A 192.0.2.90\n",
                                validity=Validity(-31 * DAY, -DAY))  # fmt: skip
    return origin, server


AGGR_BODY = 'a A 192.0.2.100\nm A 192.0.2.101\nz A 192.0.2.102\n*.w TXT "aggressive"\n'


def _aggr(b: _Builder) -> tuple[str, Server]:
    origin, server, _ = _signed(b, "aggr.", AGGR_BODY)
    return origin, server


def _optout(b: _Builder) -> tuple[str, Server]:
    """NSEC3 with opt-out on every record: no NXDOMAIN of it is provably secure."""
    origin, server, _ = _signed(b, "optout.", AGGR_BODY, nsec3=nsec3param(), opt_out=True)
    return origin, server


def _aggr3(b: _Builder) -> tuple[str, Server]:
    origin, server, _ = _signed(b, "aggr3.", AGGR_BODY, nsec3=nsec3param())
    return origin, server
