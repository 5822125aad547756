"""Raw wire: what is read from and written to DNS messages as bytes, without parsing them.

The fast path answers most queries from stored bytes, and the transports add options
to messages already written, so a few things are done on raw messages; they are done
here and nowhere else:

- :mod:`.question`: a raw query's question scanned once, the wire cache's key made
  from it and read back (its name, its QTYPE), a stored answer's flags patched for a
  query, the truncated answer a rate-limited query gets;
- :mod:`.opt`: the one walk to a message's OPT record, and the EDNS options read from
  it or added to it there (COOKIE, edns-tcp-keepalive, Padding).
"""

from resolver.wire.raw.opt import (
    BADCOOKIE,
    COOKIE,
    MALFORMED,
    PADDING_OPTION,
    QUERY_BLOCK,
    RESPONSE_BLOCK,
    SERVER_COOKIE_MAX,
    SERVER_COOKIE_MIN,
    TCP_KEEPALIVE,
    add_option,
    add_query_option,
    cookie_shape_ok,
    has_padding,
    keepalive,
    opt_at,
    option,
    pad,
    query_cookie,
    query_option,
    records,
    repad,
    skip_name,
    smallest_ttl,
    split_cookie,
)
from resolver.wire.raw.question import (
    AD_KEY,
    CD_KEY,
    DO_KEY,
    EDNS_KEY,
    QuestionKey,
    answer_flags,
    edns_size,
    key_name,
    key_name_wire,
    key_qtype,
    key_question,
    query_qtype,
    question_key,
    question_name_wire,
    question_of,
    truncated,
)

__all__ = [
    "AD_KEY",
    "BADCOOKIE",
    "CD_KEY",
    "COOKIE",
    "DO_KEY",
    "EDNS_KEY",
    "MALFORMED",
    "PADDING_OPTION",
    "QUERY_BLOCK",
    "RESPONSE_BLOCK",
    "SERVER_COOKIE_MAX",
    "SERVER_COOKIE_MIN",
    "TCP_KEEPALIVE",
    "QuestionKey",
    "add_option",
    "add_query_option",
    "answer_flags",
    "cookie_shape_ok",
    "edns_size",
    "has_padding",
    "keepalive",
    "key_name",
    "key_name_wire",
    "key_qtype",
    "key_question",
    "opt_at",
    "option",
    "pad",
    "query_cookie",
    "query_option",
    "query_qtype",
    "question_key",
    "question_name_wire",
    "question_of",
    "records",
    "repad",
    "skip_name",
    "smallest_ttl",
    "split_cookie",
    "truncated",
]
