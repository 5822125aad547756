"""Signed zones made and served with dnspython, for attacking a validator (issue 20).

A :class:`SignedZone` is a zone signed at start-up with keys made on the spot (NSEC, or
NSEC3 when asked) and answered the way an authoritative server answers (RFC 1034 section
4.3.2 with RFC 4035 section 3.1): the RRSIGs of every RRset it sends, NSEC records proving
NODATA, NXDOMAIN and wildcard answers, referrals with the DS RRset or the NSEC proving
there is none.  A :class:`World` is a signed hierarchy of such zones on loopback
addresses, with its root hints and trust anchor, and *forgeries*: for a (name, type) a
function that builds the reply an on-path attacker (or the zone's own hostile operator)
sends instead of the honest one.

This module, like the rest of the lab, uses none of the resolver's code: dnspython and
``cryptography`` make and check everything here, so the lab stays an independent oracle.
The servers that put a world on the network are :mod:`resolver.lab.forged_server`; the
attacks themselves are :mod:`resolver.lab.forged_attacks`.
"""

from __future__ import annotations

import base64
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.DNSKEY
import dns.rdtypes.ANY.NSEC3PARAM
import dns.rrset
import dns.zone
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from dns.dnssectypes import Algorithm as Algorithm  # re-exported for the attacks

IN = dns.rdataclass.IN
DAY = 86400
TTL = 300
NEGATIVE_TTL = 60

Reply = dns.message.Message
Forgery = Callable[["SignedZone", dns.message.Message], Reply | None]
"""Given the zone and the query, the reply to send instead of the honest one (None: the
honest one after all)."""


# -- keys ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """A key pair and its DNSKEY record (flags 257: one key signs everything)."""

    private: Any
    dnskey: dns.rdtypes.ANY.DNSKEY.DNSKEY

    @property
    def tag(self) -> int:
        return dns.dnssec.key_id(self.dnskey)

    @property
    def algorithm(self) -> int:
        return int(self.dnskey.algorithm)


def new_key(algorithm: Algorithm = Algorithm.ECDSAP256SHA256, flags: int = 257) -> Key:
    """A fresh key of ``algorithm`` (ECDSA P-256, RSA/SHA-256 2048 bits, or Ed25519)."""
    private: Any
    if algorithm == Algorithm.ECDSAP256SHA256:
        private = ec.generate_private_key(ec.SECP256R1())
    elif algorithm in (Algorithm.RSASHA256, Algorithm.RSASHA1):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif algorithm == Algorithm.ED25519:
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"no key generator for algorithm {algorithm}")
    dnskey = dns.dnssec.make_dnskey(private.public_key(), algorithm, flags=flags)
    return Key(private, dnskey)


def dnskey_text(flags: int, algorithm: int, key: bytes) -> str:
    return f"{flags} 3 {algorithm} {base64.b64encode(key).decode()}"


def key_tag(flags: int, algorithm: int, key: bytes) -> int:
    """RFC 4034 appendix B over a DNSKEY's rdata."""
    wire = struct.pack("!HBB", flags, 3, algorithm) + key
    total = sum(wire[0::2]) << 8
    total += sum(wire[1::2])
    total += (total >> 16) & 0xFFFF
    return total & 0xFFFF


def rsa_key_with_tag(tag: int, bits: int = 2048, flags: int = 256) -> bytes:
    """The key field of an RSA DNSKEY (exponent 65537, a random odd modulus: no private
    key exists) whose key tag is ``tag``: KeyTrap's colliding keys (RFC 3110 section 2).
    The last two octets of the modulus are chosen to make the sum come out right."""
    prefix = b"\x03\x01\x00\x01"  # exponent length 3, exponent 65537
    while True:
        modulus = bytearray(os.urandom(bits // 8))
        modulus[0] |= 0x80
        modulus[-2:] = b"\x00\x00"
        base = key_tag(flags, Algorithm.RSASHA256, prefix + bytes(modulus))
        for delta in (0, 1, 2, -1, -2):  # the fold of the carry moves the sum by one or two
            word = (tag - base + delta) % (1 << 16)
            modulus[-2:] = word.to_bytes(2, "big")
            key = prefix + bytes(modulus)
            if word & 1 and key_tag(flags, Algorithm.RSASHA256, key) == tag:
                return key


# -- signing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Validity:
    """When signatures are valid, in seconds relative to when the world is made."""

    inception: int = -3600
    expiration: int = 30 * DAY


VALID = Validity()


def sign(
    rrset: dns.rrset.RRset,
    key: Key,
    signer: str,
    *,
    now: float | None = None,
    validity: Validity = VALID,
    ttl: int | None = None,
) -> dns.rrset.RRset:
    """An RRSIG RRset over ``rrset`` by ``key``, naming ``signer`` (any name: a forger
    chooses it)."""
    start = time.time() if now is None else now
    rrsig = dns.dnssec.sign(
        rrset, key.private, dns.name.from_text(signer), key.dnskey,
        inception=start + validity.inception, expiration=start + validity.expiration,
    )  # fmt: skip
    out = dns.rrset.RRset(rrset.name, IN, dns.rdatatype.RRSIG, rrset.rdtype)
    out.update_ttl(rrset.ttl if ttl is None else ttl)
    out.add(rrsig)
    return out


def fake_rrsig(
    rrset: dns.rrset.RRset, algorithm: int, tag: int, signer: str, size: int, now: float
) -> dns.rdata.Rdata:
    """An RRSIG over ``rrset`` that looks right (fields, validity) and is random bytes."""
    labels = len(rrset.name) - 1 - (1 if rrset.name.labels[0] == b"*" else 0)
    text = (
        f"{dns.rdatatype.to_text(rrset.rdtype)} {algorithm} {labels} {rrset.ttl} "
        f"{_stamp(now + 30 * DAY)} {_stamp(now - 3600)} {tag} {signer} "
        f"{base64.b64encode(os.urandom(size)).decode()}"
    )
    return dns.rdata.from_text(IN, dns.rdatatype.RRSIG, text)


def copy_rrset(
    rrset: dns.rrset.RRset | dns.rdataset.Rdataset, name: dns.name.Name, ttl: int | None = None
) -> dns.rrset.RRset:
    """A new RRset of ``rrset``'s records at ``name`` (an expansion, a copy to change)."""
    out = dns.rrset.RRset(name, IN, rrset.rdtype, rrset.covers)
    out.update_ttl(rrset.ttl if ttl is None else ttl)  # first: it only lowers a set's TTL
    for rdata in rrset:
        out.add(rdata)
    return out


def nsec3param(iterations: int = 0, salt: str = "-") -> dns.rdtypes.ANY.NSEC3PARAM.NSEC3PARAM:
    """NSEC3 parameters: SHA-1, no flags (RFC 5155 section 4)."""
    rdata = dns.rdata.from_text(IN, dns.rdatatype.NSEC3PARAM, f"1 0 {iterations} {salt}")
    assert isinstance(rdata, dns.rdtypes.ANY.NSEC3PARAM.NSEC3PARAM)
    return rdata


def _stamp(seconds: float) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(seconds))


def ds_text(origin: str, key: Key, digest: str = "SHA256") -> str:
    ds = dns.dnssec.make_ds(origin, key.dnskey, digest, policy=dns.dnssec.allow_all_policy)
    return f"{origin} {TTL} IN DS {ds.to_text()}"


# -- one signed zone ----------------------------------------------------------------------


@dataclass
class SignedZone:
    """A zone, signed when made (unless ``keys`` is empty), and its answers."""

    origin: str
    text: str
    keys: list[Key] = field(default_factory=list)
    nsec3: dns.rdtypes.ANY.NSEC3PARAM.NSEC3PARAM | None = None
    opt_out: bool = False  # every NSEC3 with the opt-out flag (RFC 5155 section 6)
    validity: Validity = VALID
    now: float = field(default_factory=time.time)
    forgeries: dict[tuple[str, str], Forgery] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.name = dns.name.from_text(self.origin)
        self.zone = dns.zone.from_text(self.text, self.origin, relativize=False)
        if self.keys and self.nsec3 is not None:
            self._sign_nsec3()
        elif self.keys:
            with self.zone.writer() as txn:
                dns.dnssec.sign_zone(
                    self.zone, txn, keys=[(k.private, k.dnskey) for k in self.keys],
                    inception=self.now + self.validity.inception,
                    expiration=self.now + self.validity.expiration,
                    nsec3=self.nsec3, dnskey_ttl=TTL,
                )  # fmt: skip
        self.names = self._names()
        self.nsec_chain = sorted(
            n for n, node in self.zone.nodes.items()
            if node.get_rdataset(IN, dns.rdatatype.NSEC) is not None
        )  # fmt: skip

    def _sign_nsec3(self) -> None:
        """Sign with an NSEC3 chain (RFC 5155 section 7.1; dnspython signs NSEC only)."""
        assert self.nsec3 is not None
        start, end = self.now + self.validity.inception, self.now + self.validity.expiration
        with self.zone.writer() as txn:
            for key in self.keys:
                txn.add(self.name, TTL, key.dnskey)
            txn.add(self.name, TTL, self.nsec3)
        secure: dict[dns.name.Name, set[int]] = {}
        for name, node in self.zone.nodes.items():
            cut = self.cut_above(name, include=True)
            if cut is not None and cut != name:
                continue  # glue below a cut: not authoritative
            types = {rds.rdtype for rds in node.rdatasets}
            if cut == name:
                types &= {dns.rdatatype.NS, dns.rdatatype.DS}
            secure[name] = types
        for name in list(secure):
            parent = name.parent() if name != self.name else name
            while parent != self.name and parent not in secure:
                secure[parent] = set()  # an empty non-terminal
                parent = parent.parent()
        with self.zone.writer() as txn:
            for name, types in secure.items():
                signable = [t for t in types if t != dns.rdatatype.NS or name == self.name]
                for rdtype in signable:
                    rrset = self.rrset(name, rdtype)
                    assert rrset is not None
                    for key in self.keys:
                        txn.add(name, rrset.ttl, dns.dnssec.sign(
                            rrset, key.private, self.name, key.dnskey,
                            inception=start, expiration=end))  # fmt: skip
                if signable:
                    types.add(dns.rdatatype.RRSIG)
            hashed = sorted(
                (dns.dnssec.nsec3_hash(n, self.nsec3.salt, self.nsec3.iterations, "SHA1"), t)
                for n, t in secure.items()
            )  # fmt: skip
            for index, (digest, types) in enumerate(hashed):
                following = hashed[(index + 1) % len(hashed)][0]
                bitmap = " ".join(dns.rdatatype.to_text(dns.rdatatype.RdataType.make(t))
                                  for t in sorted(types))  # fmt: skip
                salt = self.nsec3.salt.hex() or "-"
                flags = 1 if self.opt_out else 0
                text = f"1 {flags} {self.nsec3.iterations} {salt} {following} {bitmap}"
                rrset = dns.rrset.from_text(f"{digest}.{self.origin}", NEGATIVE_TTL, "IN",
                                            "NSEC3", text.strip())  # fmt: skip
                txn.add(rrset)
                for key in self.keys:
                    txn.add(rrset.name, rrset.ttl, dns.dnssec.sign(
                        rrset, key.private, self.name, key.dnskey,
                        inception=start, expiration=end))  # fmt: skip

    def _names(self) -> set[dns.name.Name]:
        """Every name of the zone, empty non-terminals included (not NSEC3 owners)."""
        names = {self.name}
        for name, node in self.zone.nodes.items():
            if node.get_rdataset(IN, dns.rdatatype.NSEC3) is not None:
                continue
            while name != self.name and name not in names:
                names.add(name)
                name = name.parent()
        return names

    # ------------------------------------------------------------ records

    def rrset(self, name: dns.name.Name | str, rdtype: int) -> dns.rrset.RRset | None:
        name = dns.name.from_text(name) if isinstance(name, str) else name
        node = self.zone.get_node(name)
        rdtype = dns.rdatatype.RdataType.make(rdtype)
        found = node.get_rdataset(IN, rdtype) if node is not None else None
        if found is None:
            return None
        return copy_rrset(found, name)

    def signatures(self, name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
        node = self.zone.get_node(name)
        covers = dns.rdatatype.RdataType.make(rdtype)
        found = node.get_rdataset(IN, dns.rdatatype.RRSIG, covers) if node is not None else None
        if found is None:
            return None
        return copy_rrset(found, name)

    def with_sigs(self, name: dns.name.Name, rdtype: int) -> list[dns.rrset.RRset]:
        """The RRset and its RRSIGs (when the zone is signed)."""
        found = [self.rrset(name, rdtype), self.signatures(name, rdtype)]
        return [r for r in found if r is not None]

    def soa(self) -> list[dns.rrset.RRset]:
        """The SOA for a negative answer: TTL capped at MINIMUM (RFC 2308 section 3)."""
        records = self.with_sigs(self.name, dns.rdatatype.SOA)
        for rrset in records:
            rrset.update_ttl(NEGATIVE_TTL)
        return records

    def cut_above(self, qname: dns.name.Name, include: bool) -> dns.name.Name | None:
        """The delegation point at or (``include``) above qname, below the apex."""
        name = qname if include else qname.parent()
        while name != self.name and name.is_subdomain(self.name):
            node = self.zone.get_node(name)
            if node is not None and node.get_rdataset(IN, dns.rdatatype.NS) is not None:
                return name
            name = name.parent()
        return None

    # ------------------------------------------------------------ NSEC proofs

    def nsec_at(self, name: dns.name.Name) -> list[dns.rrset.RRset]:
        return self.with_sigs(name, dns.rdatatype.NSEC)

    def covering_nsec(self, name: dns.name.Name) -> list[dns.rrset.RRset]:
        """The NSEC whose owner sorts before ``name`` and whose next name after it."""
        before = [owner for owner in self.nsec_chain if owner < name]
        owner = before[-1] if before else self.nsec_chain[-1]
        return self.nsec_at(owner)

    # ------------------------------------------------------------ answering

    def respond(self, query: dns.message.Message) -> Reply:
        question = query.question[0]
        rdtype = dns.rdatatype.to_text(question.rdtype)
        forge = self.forgeries.get((question.name.to_text().lower(), rdtype))
        name = question.name
        while forge is None and len(name) > 1:  # "*.zone." forges every name below it
            name = name.parent()
            forge = self.forgeries.get(("*." + name.to_text().lower(), rdtype))
        if forge is not None:
            forged = forge(self, query)
            if forged is not None:
                return forged
        return self.honest(query)

    def honest(self, query: dns.message.Message) -> Reply:
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        reply = response(query)
        cut = self.cut_above(qname, include=qtype != dns.rdatatype.DS)
        if cut is not None and not (qtype == dns.rdatatype.DS and cut == qname):
            return self._referral(reply, cut)
        if qname in self.names:
            data = self.with_sigs(qname, qtype)
            if data:
                reply.answer += data
                return reply
            cname = self.with_sigs(qname, dns.rdatatype.CNAME)
            if cname:
                reply.answer += cname
                return reply
            reply.authority += self.soa() + self._nodata_proof(qname)
            return reply
        return self._missing(reply, qname, qtype)

    def _referral(self, reply: Reply, cut: dns.name.Name) -> Reply:
        reply.flags &= ~dns.flags.AA
        ns = self.rrset(cut, dns.rdatatype.NS)
        assert ns is not None
        reply.authority.append(ns)
        ds = self.with_sigs(cut, dns.rdatatype.DS)
        reply.authority += ds if ds else self._nodata_proof(cut)
        for rdata in ns:
            for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                glue = self.rrset(rdata.target, rdtype) if rdata.target.is_subdomain(
                    self.name) else None  # fmt: skip
                if glue is not None:
                    reply.additional.append(glue)
        return reply

    def _nodata_proof(self, qname: dns.name.Name) -> list[dns.rrset.RRset]:
        if self.nsec3 is not None:
            return self._nsec3_records(self._nsec3_owner(qname))
        found = self.nsec_at(qname)
        return found if found else self.covering_nsec(qname)  # an empty non-terminal

    def _missing(self, reply: Reply, qname: dns.name.Name, qtype: int) -> Reply:
        encloser = qname.parent()
        while encloser not in self.names:
            encloser = encloser.parent()
        wildcard = dns.name.Name((b"*", *encloser.labels))
        if wildcard in self.names:
            data = self.with_sigs(wildcard, qtype)
            if data:  # RFC 4035 section 3.1.3.3: the expansion and proof qname does not exist
                reply.answer += [copy_rrset(rrset, qname) for rrset in data]
                reply.authority += self._next_closer_proof(qname, encloser)
                return reply
            reply.authority += self.soa() + self._next_closer_proof(qname, encloser)
            reply.authority += self._nodata_proof(wildcard)
            if self.nsec3 is not None:  # RFC 5155 section 7.2.5: and the closest encloser
                reply.authority += self._nsec3_records(self._nsec3_owner(encloser))
            return _unique(reply)
        reply.set_rcode(dns.rcode.NXDOMAIN)
        reply.authority += self.soa() + self._next_closer_proof(qname, encloser)
        if self.nsec3 is not None:
            reply.authority += self._nsec3_records(self._nsec3_owner(encloser))
            reply.authority += self._nsec3_cover(wildcard)
        else:
            reply.authority += self.covering_nsec(wildcard)
        return _unique(reply)

    def _next_closer_proof(
        self, qname: dns.name.Name, encloser: dns.name.Name
    ) -> list[dns.rrset.RRset]:
        if self.nsec3 is None:
            return self.covering_nsec(qname)
        next_closer = dns.name.Name(qname.labels[-(len(encloser) + 1) :])
        return self._nsec3_cover(next_closer)

    # ------------------------------------------------------------ NSEC3 (RFC 5155 section 7.2)

    def _nsec3_owner(self, name: dns.name.Name) -> dns.name.Name:
        assert self.nsec3 is not None
        digest = dns.dnssec.nsec3_hash(name, self.nsec3.salt, self.nsec3.iterations, "SHA1")
        return dns.name.from_text(digest, self.name)

    def _nsec3_records(self, owner: dns.name.Name) -> list[dns.rrset.RRset]:
        return self.with_sigs(owner, dns.rdatatype.NSEC3)

    def _nsec3_cover(self, name: dns.name.Name) -> list[dns.rrset.RRset]:
        target = self._nsec3_owner(name).labels[0].upper()
        owners = sorted(
            (n.labels[0].upper(), n) for n, node in self.zone.nodes.items()
            if node.get_rdataset(IN, dns.rdatatype.NSEC3) is not None
        )  # fmt: skip
        before = [owner for label, owner in owners if label < target]
        return self._nsec3_records(before[-1] if before else owners[-1][1])


def response(query: dns.message.Message) -> Reply:
    """An empty authoritative response to ``query`` (EDNS and DO as asked)."""
    reply = dns.message.make_response(query, our_payload=1232)
    reply.flags |= dns.flags.AA
    reply.flags &= ~dns.flags.RA
    return reply


def _unique(reply: Reply) -> Reply:
    """Each RRset once per section (an NSEC may prove two things)."""
    for section in (reply.answer, reply.authority):
        kept: list[dns.rrset.RRset] = []
        for rrset in section:
            if not any(r.name == rrset.name and r.rdtype == rrset.rdtype
                       and r.covers == rrset.covers for r in kept):  # fmt: skip
                kept.append(rrset)
        section[:] = kept
    return reply
