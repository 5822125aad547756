"""This resolver and Unbound side by side on one generated hierarchy, set up alike.

Both resolve from the hierarchy's root hints on port 53 of 127.x.y.z, validate from its
root KSK when it is signed (neither validates an unsigned one), minimise QNAMEs (RFC
9156; ours by default, Unbound ``qname-minimisation: yes``), ask over IPv4 only (ours
``--ipv4-only``, Unbound ``do-ip6: no``), give minimal responses, keep the ``harden-*``
defaults, hand the same default local zones back to the hierarchy, and neither serves
stale data, prefetches, or synthesises answers from cached NSEC records (RFC 8198: ours
does not implement it, so Unbound's ``aggressive-nsec`` is off).

A *cold* question is asked after flushing both caches through their control sockets:
ours ``flush-zone .`` (records, whole answers, zone cuts), Unbound ``flush_zone .``
(RRsets, messages, keys) and ``flush_bogus``.  Each keeps what it learnt about the
servers (round-trip times, lameness: Unbound's infrastructure cache, our server
selection) and ours keeps its key cache (the chain of trust, which does not change within
a hierarchy).  Each resolver is a new process for each hierarchy.
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.query

from resolver.lab.differences import Outcome, TtlBounds, outcome
from resolver.lab.generated_model import Question
from resolver.lab.unbound import (
    NODEFAULT_ZONES,
    OurResolver,
    UnboundProcess,
    free_port,
    unbound_binary,
    validator_conf,
)

ASK_TIMEOUT = 5.0  # a stub resolver's usual wait for one try (resolv.conf "timeout:5")
CONTROL_TIMEOUT = 10.0
UNBOUND_SOURCE = "127.0.0.2"
OUR_FLAGS = ("--no-serve-stale", "--no-prefetch", "--ipv4-only", "--log-level", "warning")


def reference_conf(workdir: Path, hints: Path, port: int, trust_anchor: Path | None) -> str:
    """Unbound set up as this resolver is (module docstring), with a control socket."""
    local = "".join(f'    local-zone: "{zone}" nodefault\n' for zone in NODEFAULT_ZONES)
    modules = "validator iterator" if trust_anchor else "iterator"
    return (
        "server:\n"
        f"    interface: 127.0.0.1@{port}\n"
        f"    port: {port}\n"
        "    do-ip6: no\n"
        "    do-daemonize: no\n"
        '    chroot: ""\n'
        '    username: ""\n'
        f'    directory: "{workdir}"\n'
        f'    pidfile: "{workdir}/unbound.pid"\n'
        f'    logfile: "{workdir}/unbound.log"\n'
        "    use-syslog: no\n"
        "    verbosity: 1\n"
        "    num-threads: 1\n"
        f'    module-config: "{modules}"\n'
        f'    root-hints: "{hints}"\n'
        "    do-not-query-localhost: no\n"
        # Its queries leave from 127.0.0.2, ours from 127.0.0.1: a front that drops every
        # other query for a question counts each resolver's queries apart.
        f"    outgoing-interface: {UNBOUND_SOURCE}\n"
        "    access-control: 127.0.0.0/8 allow\n"
        "    minimal-responses: yes\n"
        "    qname-minimisation: yes\n"
        "    aggressive-nsec: no\n"
        "    prefetch: no\n"
        "    serve-expired: no\n"
        # Answer the client even after a long walk (dead servers): the client waits
        # ASK_TIMEOUT, Unbound's default would drop replies older than 1.9 s.
        "    discard-timeout: 0\n"
        f"{local}"
        f"{validator_conf(trust_anchor)}"
        "remote-control:\n"
        "    control-enable: yes\n"
        f'    control-interface: "{workdir}/control.sock"\n'
    )


class ReferenceUnbound(UnboundProcess):
    def command(self) -> list[str]:
        conf = self.workdir / "unbound.conf"
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf.write_text(reference_conf(self.workdir, self.hints, self.port, self.trust_anchor))
        return [unbound_binary() or "unbound", "-d", "-c", str(conf)]

    def control(self, *command: str) -> str:
        """One ``unbound-control`` command over the local socket (its protocol: a
        ``UBCT1`` line, then the output until the socket closes)."""
        return _exchange(self.workdir / "control.sock", f"UBCT1 {' '.join(command)}\n")

    def flush(self) -> None:
        for command in (("flush_zone", "."), ("flush_bogus",)):
            reply = self.control(*command)
            if "error" in reply.lower():
                raise RuntimeError(f"unbound-control {' '.join(command)}: {reply.strip()}")


def _exchange(path: Path, request: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(CONTROL_TIMEOUT)
        sock.connect(str(path))
        sock.sendall(request.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def flush_ours(resolver: OurResolver) -> None:
    reply = _exchange(resolver.workdir / "control.sock", "flush-zone .\n")
    if not reply.startswith("ok"):
        raise RuntimeError(f"resolver-control flush-zone .: {reply.strip()}")


def ask(port: int, question: Question, timeout: float = ASK_TIMEOUT,
        checking_disabled: bool = False) -> dns.message.Message | None:  # fmt: skip
    """One question as a validating stub asks it: DO=1, EDNS 1232, TCP after TC=1, and
    CD=1 when ``checking_disabled`` (a stub that validates on its own, RFC 4035 section
    3.2.2); None when nothing came back in time."""
    query = dns.message.make_query(question.qname, question.qtype, use_edns=0, payload=1232,
                                   want_dnssec=True)  # fmt: skip
    if checking_disabled:
        query.flags |= dns.flags.CD
    try:
        reply, _ = dns.query.udp_with_fallback(query, "127.0.0.1", port=port, timeout=timeout)
    except dns.exception.Timeout:
        return None
    return reply


class Referees:
    """Both resolvers, new processes, on one served hierarchy."""

    def __init__(self, workdir: Path, hints: Path, trust_anchor: Path | None,
                 bounds: TtlBounds) -> None:  # fmt: skip
        self.bounds = bounds
        validation = (
            ("--trust-anchor-file", str(trust_anchor)) if trust_anchor else ("--no-dnssec",)
        )
        self.ours = OurResolver(workdir / "ours", hints, free_port(), *OUR_FLAGS, *validation)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ask-unbound")
        self.unbound = ReferenceUnbound(workdir / "unbound", hints, free_port(),
                                        trust_anchor=trust_anchor)  # fmt: skip

    def start(self) -> Referees:
        try:
            self.ours.start()
            self.unbound.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.ours.stop()
        self.unbound.stop()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Referees:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def flush(self) -> None:
        flush_ours(self.ours)
        self.unbound.flush()

    def ask(self, question: Question, checking_disabled: bool = False) -> tuple[Outcome, Outcome]:
        """Both at once (the fronts tell their queries apart by source address)."""
        theirs = self._pool.submit(self._ask, self.unbound.port, question, checking_disabled)
        return self._ask(self.ours.port, question, checking_disabled), theirs.result()

    def _ask(self, port: int, question: Question, checking_disabled: bool = False) -> Outcome:
        try:
            reply = ask(port, question, checking_disabled=checking_disabled)
            return outcome(reply, question, self.bounds)
        except dns.exception.DNSException as error:  # a reply that does not parse
            return Outcome("MALFORMED", text=f"{type(error).__name__}: {error}")

    def alive(self) -> str | None:
        """Which resolver has exited, if one has (a crash is a finding of its own)."""
        for process in (self.ours, self.unbound):
            if process.process is None or process.process.poll() is not None:
                return f"{process.name} exited: {process.log()[-500:]}"
        return None
