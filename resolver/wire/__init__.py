"""The wire format: bytes in, values out, and back (RFC 1035 section 4, RFC 6891, RFC 3597).

Owns domain names (:mod:`.names`), record data (:mod:`.rdata`: the basic types and
the parser registry; :mod:`.dnssec_rdata`: the DNSSEC types; :mod:`.rdata_base`: what
they share), the header (:mod:`.header`: flags, codes, size limits), whole messages
(:mod:`.message`), and master files (:mod:`.zonefile`, with record data read from
text in :mod:`.rdata_text`).
It imports nothing else of the resolver; every other layer reads and writes
DNS through it.  Malformed input raises :class:`WireError` and nothing else.
"""

from resolver.wire.header import (
    EDNS_PAYLOAD,
    HEADER_SIZE,
    UDP_PLAIN,
    Header,
    Opcode,
    Rcode,
    is_response,
    rcode_of,
    response_from_header,
)
from resolver.wire.message import (
    CLASS_IN,
    Edns,
    Message,
    MessageWriter,
    Question,
    ResourceRecord,
    RRType,
    parse_message,
    write_message,
    write_query,
)
from resolver.wire.names import WireError

__all__ = [
    "CLASS_IN",
    "EDNS_PAYLOAD",
    "HEADER_SIZE",
    "UDP_PLAIN",
    "Edns",
    "Header",
    "Message",
    "MessageWriter",
    "Opcode",
    "Question",
    "RRType",
    "Rcode",
    "ResourceRecord",
    "WireError",
    "is_response",
    "parse_message",
    "rcode_of",
    "response_from_header",
    "write_message",
    "write_query",
]
