"""Hosts files (``/etc/hosts``, hosts(5)) read as DNS records.

Each line is an address, then a canonical name and any aliases, separated by
spaces or tabs; ``#`` starts a comment.  Every name gets an A or AAAA record
for the address (names are absolute: ``printer`` is ``printer.``, as the
resolver has no search list), and each address gets one PTR record, to the
first name given for it in the file (as Knot Resolver's hints module and
dnsmasq do), so ``dig -x`` works for the hosts too.  An IPv6 address with a
zone index (``fe80::1%lo0``, as macOS ships) is used without it.

Every error is a :class:`HostsError` whose message starts ``file:line:``, so a
reload can say what is wrong and keep the data it had.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from resolver.wire import CLASS_IN, ResourceRecord, RRType
from resolver.wire.names import BadName, name_key, name_to_wire, normalize
from resolver.wire.rdata import AAAA, PTR, A

HOSTS_TTL = 3600  # seconds: Unbound's default TTL for local-data


class HostsError(ValueError):
    """A hosts file that cannot be used; the message says ``source:line: why``."""


def parse_hosts(text: str, source: str = "<hosts>", ttl: int = HOSTS_TTL) -> list[ResourceRecord]:
    """The A, AAAA and PTR records a hosts file gives, in file order."""
    records: list[ResourceRecord] = []
    reversed_addresses: set[str] = set()
    for lineno, raw in enumerate(text.splitlines(), 1):
        fields = raw.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) < 2:
            raise HostsError(f"{source}:{lineno}: an address without a name: {raw.strip()!r}")
        try:
            address = ipaddress.ip_address(fields[0].split("%", 1)[0])
            names = [_host_name(field) for field in fields[1:]]
        except ValueError as error:
            raise HostsError(f"{source}:{lineno}: {error}") from None
        text_address = str(address)
        for name in names:
            if address.version == 4:
                records.append(ResourceRecord(name, RRType.A, CLASS_IN, ttl, A(text_address)))
            else:
                records.append(ResourceRecord(name, RRType.AAAA, CLASS_IN, ttl, AAAA(text_address)))
        if text_address not in reversed_addresses:
            reversed_addresses.add(text_address)
            records.append(
                ResourceRecord(address.reverse_pointer + ".", RRType.PTR, CLASS_IN, ttl,
                               PTR(names[0]))
            )  # fmt: skip
    return records


def _host_name(text: str) -> str:
    """A host name as absolute DNS text; ValueError saying why it is not one."""
    try:
        name = normalize(text if text.endswith(".") else text + ".")
        name_to_wire(name)  # the 255-octet limit
    except BadName as error:
        raise ValueError(f"bad host name {text!r}: {error}") from None
    if name_key(name) == ".":
        raise ValueError(f"bad host name {text!r}")
    return name


def load_hosts(path: str | Path, ttl: int = HOSTS_TTL) -> list[ResourceRecord]:
    """Read and parse a hosts file; errors name the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise HostsError(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise HostsError(f"{path}: not UTF-8 text") from None
    return parse_hosts(text, str(path), ttl)
