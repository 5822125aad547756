"""Record data (RDATA) of the basic types, opaque data for the rest, and the parser registry.

Each type is a compact, immutable recordclass value.  Names inside NS, CNAME,
SOA, PTR and MX data are decompressed on read and may be compressed on write:
those are the RFC 1035 types, the only ones RFC 3597 section 4 allows that for.
SRV's target is never compressed (RFC 2782), nor is DNAME's (RFC 6672 section
2.5).  Any other type is kept as opaque bytes and written back byte for byte
(RFC 3597).

The DNSSEC types (DS, RRSIG, NSEC, DNSKEY of RFC 4034, NSEC3 and NSEC3PARAM of
RFC 5155) are :mod:`resolver.wire.dnssec_rdata`; :data:`Rdata` is the union of
every type, and :func:`parse_rdata` reads any of them through :data:`PARSERS`
(both in :mod:`resolver.wire.rdata_parse`, re-exported here).  Reading the text form
is :func:`resolver.wire.rdata_text.rdata_from_text`.

The classes stay Python where the core is compiled (recordclass's compact values:
mypyc cannot compile a class with a metaclass), and this module with them: mypyc,
compiling a module that holds them, would dispatch a call on a value of the union
:data:`Rdata` by exact type, and NS's subclasses (CNAME, PTR, DNAME) would fail it.
Their parsers are compiled, in :mod:`resolver.wire.rdata_parse`.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

from recordclass import dataobject

from resolver.wire.dnssec_rdata import DnssecRdata
from resolver.wire.names import NameCache
from resolver.wire.rdata_base import NameWriter

_U16 = struct.Struct("!H")
SOA_TIMERS = struct.Struct("!IIIII")
SRV_FIXED = struct.Struct("!HHH")


class A(dataobject, readonly=True, hashable=True, fast_new=True):
    address: str

    def write(self, out: NameWriter) -> None:
        out.buf += socket.inet_aton(self.address)

    def to_text(self) -> str:
        return self.address


class AAAA(dataobject, readonly=True, hashable=True, fast_new=True):
    address: str

    def write(self, out: NameWriter) -> None:
        out.buf += socket.inet_pton(socket.AF_INET6, self.address)

    def to_text(self) -> str:
        return self.address


class NS(dataobject, readonly=True, hashable=True, fast_new=True):
    target: str

    def write(self, out: NameWriter) -> None:
        out.write_name(self.target, True)

    def to_text(self) -> str:
        return self.target


class CNAME(NS):
    """Same shape as NS: one name (RFC 1035 section 3.3.1)."""


class PTR(NS):
    """Same shape as NS: one name (RFC 1035 section 3.3.12)."""


class DNAME(NS):
    """One name, the target of a subtree's redirection (RFC 6672).  Not an RFC 1035 type:
    its name is never compressed on write (RFC 3597 section 4, RFC 6672 section 2.5)."""

    def write(self, out: NameWriter) -> None:
        out.write_name(self.target, False)


class MX(dataobject, readonly=True, hashable=True, fast_new=True):
    preference: int
    exchange: str

    def write(self, out: NameWriter) -> None:
        out.buf += _U16.pack(self.preference)
        out.write_name(self.exchange, True)

    def to_text(self) -> str:
        return f"{self.preference} {self.exchange}"


class SOA(dataobject, readonly=True, hashable=True, fast_new=True):
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int

    def write(self, out: NameWriter) -> None:
        out.write_name(self.mname, True)
        out.write_name(self.rname, True)
        out.buf += SOA_TIMERS.pack(self.serial, self.refresh, self.retry, self.expire, self.minimum)

    def to_text(self) -> str:
        return (
            f"{self.mname} {self.rname} {self.serial} {self.refresh} "
            f"{self.retry} {self.expire} {self.minimum}"
        )


class TXT(dataobject, readonly=True, hashable=True, fast_new=True):
    strings: tuple[bytes, ...]

    def write(self, out: NameWriter) -> None:
        for string in self.strings:
            out.buf.append(len(string))
            out.buf += string

    def to_text(self) -> str:
        return " ".join(_quote(s) for s in self.strings)


class SRV(dataobject, readonly=True, hashable=True, fast_new=True):
    priority: int
    weight: int
    port: int
    target: str

    def write(self, out: NameWriter) -> None:
        out.buf += SRV_FIXED.pack(self.priority, self.weight, self.port)
        out.write_name(self.target, False)

    def to_text(self) -> str:
        return f"{self.priority} {self.weight} {self.port} {self.target}"


class Opaque(dataobject, readonly=True, hashable=True, fast_new=True):
    """RDATA of a type we do not interpret, kept exactly as received (RFC 3597)."""

    data: bytes

    def write(self, out: NameWriter) -> None:
        out.buf += self.data

    def to_text(self) -> str:
        return f"\\# {len(self.data)} {self.data.hex()}".rstrip()


Rdata = A | AAAA | NS | CNAME | PTR | DNAME | MX | SOA | TXT | SRV | DnssecRdata | Opaque
Parser = Callable[[bytes, int, int, NameCache | None], Rdata]


def _quote(string: bytes) -> str:
    out = []
    for byte in string:
        if byte in b'"\\':
            out.append("\\" + chr(byte))
        elif 0x20 <= byte <= 0x7E:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


# The parsers, compiled apart from the classes (see above); imported last, as they
# build these classes.
from resolver.wire.rdata_parse import PARSERS, parse_rdata  # noqa: E402

__all__ = ["AAAA", "CNAME", "DNAME", "MX", "NS", "PARSERS", "PTR", "SOA", "SRV", "TXT", "A",
           "Opaque", "Parser", "Rdata", "parse_rdata"]  # fmt: skip
