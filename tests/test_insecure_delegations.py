"""Unsigned children of signed parents, proved insecure from the parent's own proof, on a
signed in-process world (the differential tester's cases, issue 23):

- ``stripped-ds-denial``: the parent's servers strip the proof from negative answers, so
  its ``child DS`` NODATA proves nothing; the referral to the child carried the NSEC that
  proves there is no DS (RFC 4035 section 3.1.4), with TTL 0 (the parent's SOA minimum):
  the cache cannot keep it, the question uses it (RFC 1035 section 3.2.1);

- ``parent-hosted-insecure``: an unsigned child served by its signed parent's own server,
  which answers for it with no referral between: the child's insecurity is proved by the
  parent's signed DS denial with the NS bit (RFC 4035 section 5.2), asked label by label
  below the signed zone;

and what an attacker may try against them: a referral to a signed child that drops the DS
and carries an NSEC replayed from another, insecure, delegation, and unsigned data that
claims a deeper zone, get nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from resolver.cache.records import Security
from resolver.lab.forged_world import Server, World, delegation
from resolver.lab.forged_zones import TTL, SignedZone, copy_rrset, ds_text, new_key, response
from resolver.wire import Rcode
from tests.test_validator_attacks import Validating

ROOT = "127.0.0.1"
PARENT = "127.0.0.2"
CHILD = "127.0.0.3"
SIGNED_CHILD = "127.0.0.4"


def _text(origin: str, server: Server, body: str, minimum: int) -> str:
    rname = "hostmaster." + (origin if origin != "." else "")
    return (f"$ORIGIN {origin}\n$TTL {TTL}\n"
            f"@ SOA {server.name} {rname} 1 1800 900 604800 {minimum}\n"
            f"@ NS {server.name}\n{body}")  # fmt: skip


def _stripped(zone: SignedZone, query: dns.message.Message) -> dns.message.Message | None:
    """The parent's servers leave the authority section out of negative answers."""
    reply = zone.honest(query)
    if reply.answer or any(r.rdtype == dns.rdatatype.NS for r in reply.authority):
        return None  # an answer or a referral: as it is
    reply.authority.clear()
    return reply


def world() -> tuple[World, SignedZone]:
    """``.`` -> ``strip.`` (signed, NSEC TTL 0, strips negative answers) ->
    ``child.strip.`` (unsigned, no DS) and ``signed.strip.`` (signed, with DS)."""
    root_server = Server(ROOT, "a.root.")
    parent_server = Server(PARENT, "ns1.strip.")
    child_server = Server(CHILD, "ns.child.strip.")
    signed_server = Server(SIGNED_CHILD, "ns.signed.strip.")
    child = SignedZone("child.strip.", _text("child.strip.", child_server,
                       f"ns A {CHILD}\nwww A 192.0.2.1\n", 300), [])  # fmt: skip
    signed_key = new_key()
    signed = SignedZone("signed.strip.", _text("signed.strip.", signed_server,
                        f"ns A {SIGNED_CHILD}\nwww A 192.0.2.2\n", 300),
                        [signed_key])  # fmt: skip
    parent_key = new_key()
    body = (f"ns1 A {PARENT}\n" + delegation("child.strip.", child_server)
            + delegation("signed.strip.", signed_server, [ds_text("signed.strip.", signed_key)]))
    parent = SignedZone("strip.", _text("strip.", parent_server, body, 0), [parent_key])
    for name in ("*.strip.",):
        for rrtype in ("DS", "A", "AAAA", "TXT"):
            parent.forgeries[(name, rrtype)] = _stripped
    root_key = new_key()
    root_body = delegation("strip.", parent_server, [ds_text("strip.", parent_key)])
    root = SignedZone(".", _text(".", root_server, f"a.root. A {ROOT}\n{root_body}", 300),
                      [root_key])  # fmt: skip
    root_server.zones.append(root)
    parent_server.zones.append(parent)
    child_server.zones.append(child)
    signed_server.zones.append(signed)
    servers = {s.address: s for s in (root_server, parent_server, child_server, signed_server)}
    return World(servers, root_key), parent


def test_the_referrals_proof_makes_the_child_insecure_when_the_cache_cannot_keep_it() -> None:
    built, parent = world()
    nsec = parent.rrset("child.strip.", dns.rdatatype.NSEC)
    assert nsec is not None and nsec.ttl == 0  # the case: a proof the cache does not keep
    answer = Validating(built).ask("www.child.strip.", "A")
    assert answer.rcode == Rcode.NOERROR, answer.failure
    assert answer.security == Security.INSECURE
    assert [rr.to_text() for rr in answer.answer] == ["www.child.strip. 300 A 192.0.2.1"]


def test_a_replayed_referral_proof_does_not_make_a_signed_child_insecure() -> None:
    """The attacker's referral to ``signed.strip.``: no DS, and the (genuine, signed)
    NSEC of ``child.strip.`` instead, whose owner is not the child, so it proves nothing
    about ``signed.strip.``; the signed child's forged answer is not taken insecure."""
    built, parent = world()
    nsec = parent.rrset("child.strip.", dns.rdatatype.NSEC)
    sig = parent.signatures(dns.name.from_text("child.strip."), dns.rdatatype.NSEC)
    ns = parent.rrset("signed.strip.", dns.rdatatype.NS)
    assert nsec is not None and sig is not None and ns is not None

    def referral(zone: SignedZone, query: dns.message.Message) -> dns.message.Message:
        reply = response(query)
        reply.flags &= ~dns.flags.AA
        reply.authority += [copy_rrset(r, r.name) for r in (ns, nsec, sig)]
        return reply

    parent.forgeries[("*.signed.strip.", "A")] = referral
    signed_zone = built.zone("signed.strip.")
    forged = dns.rrset.from_text("www.signed.strip.", TTL, "IN", "A", "203.0.113.66")

    def unsigned(zone: SignedZone, query: dns.message.Message) -> dns.message.Message:
        reply = response(query)
        reply.answer.append(copy_rrset(forged, forged.name))
        return reply

    signed_zone.forgeries[("www.signed.strip.", "A")] = unsigned
    answer = Validating(built).ask("www.signed.strip.", "A")
    assert not any("203.0.113.66" in rr.to_text() for rr in answer.answer)
    assert answer.rcode == Rcode.SERVFAIL or answer.security == Security.SECURE


# ---------------------------------------------------------------- parent-hosted-insecure

HOST = "127.0.0.5"


def hosting_world(minimum: int = 300) -> World:
    """``.`` -> ``par.`` (signed) on one server that also serves ``kid.par.`` (unsigned,
    no DS) and ``sig.par.`` (signed, DS): the server answers for the children itself,
    with no referral between (the differential tester's parent-hosted-insecure)."""
    root_server, host = Server(ROOT, "a.root."), Server(HOST, "ns.par.")
    sig_key, par_key, root_key = new_key(), new_key(), new_key()
    kid = SignedZone("kid.par.", _text("kid.par.", host, "www A 192.0.2.7\n", 300), [])
    sig = SignedZone("sig.par.", _text("sig.par.", host, "www A 192.0.2.8\n", 300), [sig_key])
    body = (f"ns A {HOST}\nwww A 192.0.2.9\n" + delegation("kid.par.", host)
            + delegation("sig.par.", host, [ds_text("sig.par.", sig_key)]))  # fmt: skip
    par = SignedZone("par.", _text("par.", host, body, minimum), [par_key])
    root_body = delegation("par.", host, [ds_text("par.", par_key)]) + f"ns.par. A {HOST}\n"
    root = SignedZone(".", _text(".", root_server, f"a.root. A {ROOT}\n{root_body}", 300),
                      [root_key])  # fmt: skip
    root_server.zones.append(root)
    host.zones += [par, kid, sig]

    def nxdomain(zone: SignedZone, query: dns.message.Message) -> dns.message.Message:
        reply = response(query)  # the lab signs no denial in an unsigned zone: by hand
        reply.set_rcode(dns.rcode.NXDOMAIN)
        reply.authority += zone.soa()
        return reply

    kid.forgeries[("nx.kid.par.", "A")] = nxdomain
    return World({ROOT: root_server, HOST: host}, root_key)


def test_an_unsigned_child_served_by_its_signed_parents_server_is_insecure() -> None:
    validating = Validating(hosting_world())
    soa = validating.ask("kid.par.", "SOA")
    assert soa.rcode == Rcode.NOERROR and soa.security == Security.INSECURE, soa.failure
    www = validating.ask("www.kid.par.", "A")
    assert www.rcode == Rcode.NOERROR and www.security == Security.INSECURE, www.failure
    assert [rr.to_text() for rr in www.answer] == ["www.kid.par. 300 A 192.0.2.7"]
    missing = validating.ask("nx.kid.par.", "A")  # the child's unsigned SOA, from its server
    assert missing.rcode == Rcode.NXDOMAIN and missing.security == Security.INSECURE
    signed = validating.ask("www.sig.par.", "A")  # the signed child beside it: still secure
    assert signed.rcode == Rcode.NOERROR and signed.security == Security.SECURE, signed.failure


def _unsigned_answer(name: str, address: str) -> Callable[[SignedZone, dns.message.Message],
                                                           dns.message.Message]:  # fmt: skip
    forged = dns.rrset.from_text(name, TTL, "IN", "A", address)

    def forge(zone: SignedZone, query: dns.message.Message) -> dns.message.Message:
        reply = response(query)
        reply.answer.append(copy_rrset(forged, forged.name))
        return reply

    return forge


@pytest.mark.parametrize("minimum", [300, 0])
def test_unsigned_data_claiming_a_deeper_zone_gets_the_attacker_nothing(minimum: int) -> None:
    """The attacker answers unsigned data for names of the signed zones, as if a child
    zone held them: ``www.par.`` (a name of par. itself), ``a.b.par.`` (nothing there)
    and ``www.sig.par.`` (a signed child): par.'s own signed proofs show no insecure
    delegation at any name between, so each is bogus, after one DS question per name
    between, even when the proofs have TTL 0 (``minimum``)."""
    built = hosting_world(minimum)
    forged = "203.0.113.77"
    for name in ("www.par.", "a.b.par."):
        built.zone("par.").forgeries[(name, "A")] = _unsigned_answer(name, forged)
    built.zone("sig.par.").forgeries[("www.sig.par.", "A")] = _unsigned_answer(
        "www.sig.par.", forged)  # fmt: skip
    validating = Validating(built)
    for name in ("www.par.", "a.b.par.", "www.sig.par."):
        answer = validating.ask(name, "A")
        assert answer.rcode == Rcode.SERVFAIL, (name, answer.security, answer.answer)
        assert not any(forged in rr.to_text() for rr in answer.answer), name
        assert answer.failure is not None and "limit" not in answer.failure.text, name
        assert answer.upstream_queries <= 12, (name, answer.upstream_queries)
