"""Amplification: NXNSAttack delegations, ANY queries, a random-subdomain flood; ours and
Unbound on the same hierarchy.

    /work/shared/tools/offline python -m scripts.reliability.amplify [--questions 50]
        [--ns-names 100] [--flood 20000] [--cache-size 2000] [--json] [--no-unbound]

Hierarchy (:mod:`scripts.reliability.upstreams`, port 53, needs root in the namespace):

- ``attack.`` (127.8.10.1) is the attacker's: ``www.p<N>.attack.`` gets a referral of
  ``p<N>.attack.`` to ``--ns-names`` name servers ``ns<J>.p<N>.victim.`` without glue
  (NXNSAttack, CVE-2020-12667: every one a lookup in the victim's zone);
  ``www.n<N>.attack.`` the nested form: its name servers ``ns<J>.n<N>.sub.attack.`` are
  themselves in zones delegated, again without glue, to names in ``victim.``;
- ``victim.`` (127.8.11.1) has no names but its apex: NXDOMAIN for each of those;
- ``popular.`` (127.8.12.1): ``pop0`` ... ``pop9`` (A, TTL 300) and ``multi`` with A,
  AAAA, TXT, MX and HINFO records, for ANY;
- ``torture.`` (127.8.13.1): the random-subdomain flood's target, NXDOMAIN for all.

Each client question is a name never asked before, so nothing comes from the cache.
Counted at the servers: queries per client question, and how many reached the victim.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset

from resolver.lab.unbound import UnboundProcess, unbound_binary
from scripts.reliability.common import Resolver, free_port, query, rcode, udp_ask
from scripts.reliability.upstreams import BrokenLab, Counts, Role, leaf_zone, root_role

ATTACK, VICTIM, POPULAR, TORTURE = "127.8.10.1", "127.8.11.1", "127.8.12.1", "127.8.13.1"
POPULAR_NAMES = [f"pop{i}.popular." for i in range(10)]


def attacker(ns_names: int) -> Callable[[dns.message.Message], dns.message.Message | None]:
    """The attacker's server: referrals made up per question (see the module's doc)."""
    attack = dns.name.from_text("attack.")

    def referral(query: dns.message.Message) -> dns.message.Message | None:
        qname = query.question[0].name
        if not qname.is_subdomain(attack) or qname == attack:
            return None  # the apex: from the zone
        labels = qname.relativize(attack).labels
        response = dns.message.make_response(query)
        if labels == (b"sub",):
            response.flags |= dns.flags.AA  # an empty non-terminal: NOERROR, no data
            return response
        if labels[-1] == b"sub":  # <x>.sub.attack. and below: the second level
            child = labels[-2].decode()
            cut = dns.name.Name(labels[-2:]).concatenate(attack)
            targets = [f"ns{j}.{child}.victim." for j in range(ns_names)]
        else:
            child = labels[-1].decode()
            cut = dns.name.Name(labels[-1:]).concatenate(attack)
            if child.startswith("n"):  # nested: name servers in zones delegated again
                targets = [f"ns.{child}-{j}.sub.attack." for j in range(ns_names)]
            else:
                targets = [f"ns{j}.{child}.victim." for j in range(ns_names)]
        response.authority.append(dns.rrset.from_text_list(cut, 300, "IN", "NS", targets))
        return response

    return referral


def roles(ns_names: int) -> list[Role]:
    zones = {"attack.": ATTACK, "victim.": VICTIM, "popular.": POPULAR, "torture.": TORTURE}
    delegations = {zone: [(f"ns.{zone}", address)] for zone, address in zones.items()}
    popular = "".join(f"pop{i} 300 A 192.0.2.{i + 1}\n" for i in range(10))
    popular += ('multi A 192.0.2.100\nmulti AAAA 2001:db8::100\nmulti TXT "some text"\n'
                "multi MX 10 mail.popular.\nmulti HINFO \"cpu\" \"os\"\n")  # fmt: skip
    return [
        root_role(delegations),
        Role("attack", (ATTACK,), {"attack.": leaf_zone("attack.", "ns.attack.", ATTACK)},
             generator=attacker(ns_names)),
        Role("victim", (VICTIM,), {"victim.": leaf_zone("victim.", "ns.victim.", VICTIM)}),
        Role("popular", (POPULAR,), {"popular.": leaf_zone("popular.", "ns.popular.", POPULAR,
                                                           popular)}),
        Role("torture", (TORTURE,), {"torture.": leaf_zone("torture.", "ns.torture.", TORTURE)}),
    ]  # fmt: skip


# -------------------------------------------------------------------- NXNS


def nxns(port: int, counts: Counts, prefix: str, questions: int) -> dict[str, Any]:
    counts.reset()
    rcodes: dict[str, int] = {}
    started = time.monotonic()
    slowest = 0.0
    for i in range(questions):
        asked = time.monotonic()
        reply = udp_ask(port, query(f"www.{prefix}{i}.attack.", qid=i + 1), timeout=15)
        slowest = max(slowest, time.monotonic() - asked)
        text = dns.rcode.to_text(rcode(reply)) if reply is not None else "LOST"
        rcodes[text] = rcodes.get(text, 0) + 1
    time.sleep(1.0)  # late sub-lookups still count
    total, victim = counts.total(), counts.total([VICTIM])
    return {"questions": questions, "rcodes": rcodes,
            "upstream_per_question": round(total / questions, 1),
            "victim_per_question": round(victim / questions, 1),
            "seconds": round(time.monotonic() - started, 1),
            "slowest_question_s": round(slowest, 2)}  # fmt: skip


# -------------------------------------------------------------------- ANY


def any_query(port: int) -> dict[str, Any]:
    """``multi.popular. ANY`` (five RRsets at the server) over UDP and TCP."""
    results = {}
    for transport in ("udp", "tcp"):
        message = dns.message.make_query("multi.popular.", "ANY", use_edns=0)
        ask = dns.query.udp if transport == "udp" else dns.query.tcp
        reply = ask(message, "127.0.0.1", timeout=10, port=port)
        rrsets = sorted(dns.rdatatype.to_text(r.rdtype) for r in reply.answer)
        results[transport] = {"rcode": dns.rcode.to_text(reply.rcode()),
                              "tc": bool(reply.flags & dns.flags.TC), "rrsets": rrsets,
                              "size": len(reply.to_wire())}  # fmt: skip
    return results


# -------------------------------------------------------------------- water torture


def torture(resolver_port: int, counts: Counts, flood: int, pid: int | None) -> dict[str, Any]:
    """``flood`` never-seen names under torture. from one client, as fast as it is
    answered (64 outstanding), while another asks the popular names every 20 ms."""
    counts.reset()
    stop = threading.Event()
    popular_asked = [0]
    popular_slow: list[float] = []
    rss: list[int] = []

    def normal_client() -> None:
        n = 0
        while not stop.is_set():
            name = POPULAR_NAMES[n % len(POPULAR_NAMES)]
            started = time.monotonic()
            reply = udp_ask(resolver_port, query(name, qid=n & 0xFFFF), "127.9.1.1", 5)
            popular_slow.append(time.monotonic() - started if reply else 5.0)
            popular_asked[0] += 1
            n += 1
            stop.wait(0.02)

    def sample() -> None:
        while not stop.is_set() and pid is not None:
            status = Path(f"/proc/{pid}/status").read_text()
            rss.extend(int(line.split()[1]) for line in status.splitlines()
                       if line.startswith("VmRSS:"))  # fmt: skip
            stop.wait(1.0)

    for name in POPULAR_NAMES:  # warm: the popular names are cached before the flood
        udp_ask(resolver_port, query(name, qid=7), "127.9.1.1", 5)
    counts.reset()
    threads = [threading.Thread(target=normal_client), threading.Thread(target=sample)]
    for thread in threads:
        thread.start()
    rng = random.Random(15)
    answered = lost = 0
    started = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.9.2.1", 0))
        sock.settimeout(2.0)
        outstanding = 0
        sent = 0
        while sent < flood or outstanding:
            while sent < flood and outstanding < 64:
                label = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789")
                                for _ in range(12))  # fmt: skip
                sock.sendto(query(f"{label}.torture.", qid=sent & 0xFFFF), ("127.0.0.1",
                                                                            resolver_port))
                sent += 1
                outstanding += 1
            try:
                sock.recv(4096)
                answered += 1
            except TimeoutError:
                lost += outstanding
                outstanding = 0
                continue
            outstanding -= 1
    elapsed = time.monotonic() - started
    stop.set()
    for thread in threads:
        thread.join()
    with counts.lock:
        popular_upstream = sum(n for (a, _q), n in counts.by_name.items() if a == POPULAR)
        times = sorted(counts.times.get(TORTURE, []))
    per_second: dict[int, int] = {}
    for t in times:
        per_second[int(t)] = per_second.get(int(t), 0) + 1
    asked = popular_asked[0]
    return {"flood_names": flood, "answered": answered, "lost": lost,
            "seconds": round(elapsed, 1), "client_qps": round(flood / elapsed),
            "victim_queries": len(times),
            "victim_queries_per_name": round(len(times) / flood, 2),
            "victim_peak_qps": max(per_second.values()) if per_second else 0,
            "popular_asked": asked, "popular_upstream": popular_upstream,
            "popular_hit_rate": round(1 - popular_upstream / asked, 4) if asked else None,
            "popular_p99_ms": round(sorted(popular_slow)[int(0.99 * len(popular_slow))] * 1000,
                                    2) if popular_slow else None,
            "rss_kib_first": rss[0] if rss else None, "rss_kib_max": max(rss) if rss else None,
            "rss_kib_last": rss[-1] if rss else None}  # fmt: skip


def flood_names(port: int, names: list[str], source: str = "127.9.2.1") -> tuple[int, int]:
    """Ask every name over UDP, 64 outstanding at a time; (answered, lost)."""
    answered = lost = outstanding = sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(2.0)
        while sent < len(names) or outstanding:
            while sent < len(names) and outstanding < 64:
                sock.sendto(query(names[sent], qid=sent & 0xFFFF), ("127.0.0.1", port))
                sent += 1
                outstanding += 1
            try:
                sock.recv(4096)
            except TimeoutError:
                lost += outstanding
                outstanding = 0
                continue
            answered += 1
            outstanding -= 1
    return answered, lost


def torture_rounds(port: int, counts: Counts, rounds: int, per_round: int) -> dict[str, Any]:
    """In turns, whatever the speed: the popular names once each, then ``per_round``
    never-seen names.  With ``per_round`` above the cache size, a plain LRU has evicted
    every popular name by the next turn; the popular names were asked twice before, so a
    cache that protects entries used more than once keeps them."""
    rng = random.Random(16)
    for _ in range(2):
        for name in POPULAR_NAMES:
            udp_ask(port, query(name, qid=3), "127.9.1.1", 5)
    counts.reset()
    asked = answered = lost = 0
    for _ in range(rounds):
        for name in POPULAR_NAMES:
            asked += udp_ask(port, query(name, qid=4), "127.9.1.1", 5) is not None
        names = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(12))
                 + ".torture." for _ in range(per_round)]  # fmt: skip
        done = flood_names(port, names)
        answered, lost = answered + done[0], lost + done[1]
    with counts.lock:
        upstream = sum(n for (a, _q), n in counts.by_name.items() if a == POPULAR)
    return {"rounds": rounds, "per_round": per_round, "answered": answered, "lost": lost,
            "popular_asked": asked, "popular_upstream": upstream,
            "popular_hit_rate": round(1 - upstream / asked, 4) if asked else None}  # fmt: skip


# -------------------------------------------------------------------- running


def measure(port: int, lab: BrokenLab, questions: int, flood: int, pid: int | None,
            cache_size: int, extra: Callable[[], dict[str, Any]] | None = None,
            ) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {
        "nxns_plain": nxns(port, lab.counts, "p", questions),
        "nxns_nested": nxns(port, lab.counts, "n", questions),
        "any": any_query(port),
    }
    if flood:
        out["torture"] = torture(port, lab.counts, flood, pid)
        out["torture_rounds"] = torture_rounds(port, lab.counts, 5, 2 * cache_size)
    if extra is not None:
        out.update(extra())
    return out


def run(questions: int, ns_names: int, flood: int, cache_size: int, unbound: bool,
        directory: Path, zone_ratelimit: int = 0) -> dict[str, Any]:  # fmt: skip
    results: dict[str, Any] = {"ns_names": ns_names, "cache_size": cache_size,
                               "zone_ratelimit": zone_ratelimit}  # fmt: skip
    flags = ["--cache-size", str(cache_size), "--zone-ratelimit", str(zone_ratelimit)]
    with BrokenLab(directory / "lab", roles(ns_names)) as lab:
        hints = lab.write_hints(directory / "hints")
        with Resolver(directory / "ours", hints, 53, *flags) as ours:

            def cache() -> dict[str, Any]:
                stats = ours.stats()
                return {"cache_entries_records": stats.get("cache_entries.cache.records"),
                        "cache_entries_answers": stats.get("cache_entries.cache.answers"),
                        "cache_evictions": stats.get("cache_evictions.total")}  # fmt: skip

            results["ours"] = measure(ours.port, lab, questions, flood, ours.pid, cache_size,
                                      cache)
        if unbound and unbound_binary() is not None:
            process = UnboundProcess(directory / "unbound", hints, free_port())
            process.start()
            try:
                pid = process.process.pid if process.process else None
                results["unbound"] = measure(process.port, lab, questions, flood, pid,
                                             cache_size)
            finally:
                process.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--ns-names", type=int, default=100)
    parser.add_argument("--flood", type=int, default=20000, help="random names (0: none)")
    parser.add_argument("--cache-size", type=int, default=2000)
    parser.add_argument("--no-unbound", action="store_true")
    parser.add_argument("--zone-ratelimit", type=int, default=0,
                        help="ours with this zone-ratelimit (queries a second per zone cut)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="amplify-") as tmp:
        result = run(args.questions, args.ns_names, args.flood, args.cache_size,
                     not args.no_unbound, Path(tmp), args.zone_ratelimit)  # fmt: skip
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
