"""A name server's address that fails validation (the differential tester's
``bogus-ns-address``, issue 23), and the attacker who forges it, on a signed in-process
world: ``good.`` (signed, DS at the root) and ``plain.`` (unsigned: no DS) both have their
only name server, ``ns.bad.``, in the signed zone ``bad.``.

- honest but broken: ``ns.bad. A`` carries a signature that does not verify, with the
  right address: ``good.``'s answers are validated from its own DS, so the address takes
  the walk there (RFC 4035 section 2.2; Unbound asks with CD=1) and the answer is secure;
- forged: ``ns.bad. A`` points to the attacker's server, which serves its own ``good.``
  and ``plain.``: the client gets SERVFAIL, never the attacker's data: ``good.``'s
  forged answers do not validate, and ``plain.``, whose answers nothing would validate,
  never uses the bogus address; ``ns.bad. A`` itself is never answered.
"""

from __future__ import annotations

import dns.message
import dns.rrset

from resolver.cache.records import Security
from resolver.lab.forged_world import Server, World, delegation, zone_text
from resolver.lab.forged_zones import TTL, SignedZone, copy_rrset, ds_text, new_key, response, sign
from resolver.net.contract import ExchangeFailed, Failure
from resolver.wire import Rcode, RRType
from tests.test_validator_attacks import Validating, texts

ROOT = "127.0.0.1"
BAD = "127.0.0.2"
GOOD = "127.0.0.3"
ATTACKER = "127.0.0.66"
FORGED = "203.0.113.66"


def world(address: str) -> World:
    """The world, with ``ns.bad. A`` answered as ``address`` under a signature by a key
    that is not ``bad.``'s (bogus)."""
    root_server, bad_server = Server(ROOT, "a.root."), Server(BAD, "ns1.bad.")
    good_server, attacker = Server(GOOD, "ns.bad."), Server(ATTACKER, "ns.bad.")
    bad_key, good_key, root_key, forger = new_key(), new_key(), new_key(), new_key()
    bad = SignedZone("bad.", zone_text("bad.", bad_server, f"ns A {GOOD}\n"), [bad_key])
    forged = dns.rrset.from_text("ns.bad.", TTL, "IN", "A", address)
    forged_sig = sign(forged, forger, "bad.")

    def forge(zone: SignedZone, query: dns.message.Message) -> dns.message.Message:
        reply = response(query)
        reply.answer += [copy_rrset(r, r.name) for r in (forged, forged_sig)]
        return reply

    bad.forgeries[("ns.bad.", "A")] = forge
    bad_server.zones.append(bad)
    www = "www A 192.0.2.1\n"
    good_server.zones += [
        SignedZone("good.", zone_text("good.", good_server, www), [good_key]),
        SignedZone("plain.", zone_text("plain.", good_server, www), []),
    ]
    evil = f"www A {FORGED}\n"
    attacker.zones += [
        SignedZone("good.", zone_text("good.", attacker, evil), [forger]),
        SignedZone("plain.", zone_text("plain.", attacker, evil), []),
    ]
    body = (delegation("bad.", bad_server, [ds_text("bad.", bad_key)])
            + delegation("good.", good_server, [ds_text("good.", good_key)])
            + delegation("plain.", good_server))  # fmt: skip
    root = SignedZone(".", zone_text(".", root_server, f"a.root. A {ROOT}\n" + body), [root_key])
    root_server.zones.append(root)
    servers = [root_server, bad_server, good_server, attacker]
    return World({s.address: s for s in servers}, root_key)


def test_a_bogus_address_of_a_signed_zones_server_still_reaches_it() -> None:
    validating = Validating(world(GOOD))
    answer = validating.ask("www.good.", "A")
    assert answer.rcode == Rcode.NOERROR, answer.failure
    assert answer.security == Security.SECURE
    assert texts(answer) == ["www.good. 300 A 192.0.2.1"]
    # The address itself stays bogus: no client gets it, from the cache or afresh.
    address = validating.ask("ns.bad.", "A")
    assert address.rcode == Rcode.SERVFAIL and not address.answer
    kept = validating.cache.get_rrset("ns.bad.", RRType.A)
    assert kept is not None and kept.security == Security.BOGUS
    again = validating.ask("txt.good.", "TXT")  # the cut of good. again, from the cache
    assert again.rcode == Rcode.NXDOMAIN and again.security == Security.SECURE, again.failure
    # A cut built from the cache takes the bogus address for good. (it has a DS), never
    # for plain. (none): the differential run's NS cycle through a bogus zone needed the
    # first, a DNSKEY lookup of the zone finding no server otherwise.
    finder = validating.engine.env.finder
    assert finder.addresses_of("ns.bad.", "good.") == [GOOD]
    assert finder.addresses_of("ns.bad.", "plain.") == []


def test_a_forged_address_gets_the_attacker_nothing() -> None:
    validating = Validating(world(ATTACKER))
    for qname in ("www.good.", "www.plain.", "www.good.", "www.plain."):  # cold, then cached
        answer = validating.ask(qname, "A")
        assert answer.rcode == Rcode.SERVFAIL, (qname, texts(answer))
        assert not any(FORGED in text for text in texts(answer)), qname
    address = validating.ask("ns.bad.", "A")
    assert address.rcode == Rcode.SERVFAIL
    assert not any(ATTACKER in text for text in texts(address))
    asked = {qname for where, qname, _ in validating.net.log if where == ATTACKER}
    assert "www.good." in asked  # reached, and its answers judged
    assert not any(qname.endswith("plain.") for qname in asked)  # never for plain.


def test_an_unsigned_zone_does_not_use_a_bogus_address_even_an_honest_one() -> None:
    """The price of the rule: ``plain.`` has no DS, so nothing would check what its
    server says; its bogus (here honest) address is not used: SERVFAIL, as before."""
    answer = Validating(world(GOOD)).ask("www.plain.", "A")
    assert answer.rcode == Rcode.SERVFAIL


LOSSY = "127.0.0.4"
REFUSING = "127.0.0.5"


def test_a_zones_key_lookup_that_needs_its_own_name_servers_address_does_not_poison_it() -> None:
    """Seed 3's hierarchy 42018744449162: ``loop.`` (signed, DS at the root) has two name
    servers inside it: ``ns2.loop.`` glued, lossy (its first DNSKEY reply is lost), and
    ``ns1.loop.`` without glue, lame.  The DNSKEY lookup of ``loop.`` loses its first
    query and looks up ``ns1.loop. A``, whose judgement needs the DNSKEY being looked up
    (a loop: refused).  That refusal says nothing about ``loop.``: it must not leave the
    zone bogus (it did, for a minute: every question below it SERVFAIL, "no validated
    DNSKEY").  The address is used unchecked for the walk and the keys come on the retry."""
    root_server = Server(ROOT, "a.root.")
    lossy, refusing = Server(LOSSY, "ns2.loop."), Server(REFUSING, "ns1.loop.")
    loop_key, root_key = new_key(), new_key()
    lossy.zones.append(SignedZone("loop.", zone_text("loop.", lossy, "www A 192.0.2.1\n",
                                                     [refusing]), [loop_key]))  # fmt: skip
    body = (
        f"a.root. A {ROOT}\nloop. NS ns1.loop.\nloop. NS ns2.loop.\n"
        f"ns2.loop. A {LOSSY}\n{ds_text('loop.', loop_key)}\n"
    )  # ns1.loop.: no glue
    root_server.zones.append(SignedZone(".", zone_text(".", root_server, body), [root_key]))
    world = World({s.address: s for s in (root_server, lossy, refusing)}, root_key)
    validating = Validating(world)
    honest = validating.net.servers[LOSSY]
    lost: set[int] = set()

    def loses_the_first_dnskey(qname: str, qtype: int) -> dns.message.Message:
        if qtype == RRType.DNSKEY and qtype not in lost:
            lost.add(qtype)
            raise ExchangeFailed(Failure.TIMEOUT, LOSSY)
        return honest(qname, qtype)

    validating.net.servers[LOSSY] = loses_the_first_dnskey
    answer = validating.ask("www.loop.", "A")
    assert answer.rcode == Rcode.NOERROR, answer.failure
    assert answer.security == Security.SECURE
    assert texts(answer)[0] == "www.loop. 300 A 192.0.2.1"
    again = validating.ask("nope.loop.", "A")  # the zone is not left bogus
    assert again.rcode == Rcode.NXDOMAIN and again.security == Security.SECURE, again.failure
    # The address judged nothing yet is not kept as bogus: a client asking for it gets it.
    address = validating.ask("ns1.loop.", "A")
    assert address.rcode == Rcode.NOERROR and address.security == Security.SECURE
