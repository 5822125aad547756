"""How a generated hierarchy is signed, and the tags that follow from it.

:func:`plan_signing` draws, zone by zone from the root down, whether a zone is signed
(NSEC, NSEC3, NSEC3 with opt-out) or left insecure (no DS at its parent; everything below
an insecure zone is insecure too), a few zone-wide flaws (resolver/lab/signing.py's
expired, not-yet-valid, ds-without-key, missing-signatures) and a few RRsets whose
signature is altered after signing.  :func:`tag_name_server_dependencies` then tags the
zones whose name servers' addresses can only be found through trouble: a zone that will
not validate, or a zone its parent's own server also serves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from resolver.lab.generated_content import Draft, path_of, zone_of
from resolver.lab.generated_model import NsecKind, SigningPlan, ZoneFlaw


def plan_signing(draft: Draft) -> SigningPlan:
    """Three hierarchies in four are signed (the root always, then zone by zone)."""
    rng = draft.rng
    if rng.random() < 0.25:
        return SigningPlan()
    denial: dict[str, NsecKind] = {}
    flaws: dict[str, ZoneFlaw] = {}
    broken: list[tuple[str, str]] = []
    unsigned: set[str] = set()
    for zone in draft.order[1:]:
        parent = draft.parent[zone]
        leaf = zone not in draft.tlds
        if parent in unsigned or rng.random() < (0.15 if leaf else 0.05):
            flaws[zone] = "insecure"
            unsigned.add(zone)
            draft.tag(zone, "insecure")
            continue
        draft.tag(zone, "signed")
        if rng.random() < (0.08 if leaf else 0.02):
            flaw: ZoneFlaw = rng.choice(
                ("expired", "not-yet-valid", "ds-without-key", "missing-signatures")
            )
            flaws[zone] = flaw
            draft.tag(zone, f"flaw-{flaw}")
        if rng.random() < 0.25:
            denial[zone] = "nsec3-optout" if rng.random() < 0.3 else "nsec3"
            draft.tag(zone, denial[zone])
        if leaf and rng.random() < 0.15 and zone not in flaws:
            owner, rtype = _to_break(draft, zone)
            broken.append((owner, rtype))
            draft.features[zone].add("broken-signature")
            draft.name_tags.setdefault(owner, set()).add("broken-signature")
            draft.ask(owner, (rtype,), "broken-signature", weight=3)
    draft.tag(".", "signed")
    return SigningPlan(True, denial, flaws, tuple(broken))


def _to_break(draft: Draft, zone: str) -> tuple[str, str]:
    """An RRset of ``zone`` (its own data, not glue) whose signature will be altered."""
    own = []
    for line in draft.records[zone]:
        owner, _ttl, _class, rtype = line.split()[:4]
        if rtype in ("A", "AAAA", "TXT", "MX", "CNAME", "DNAME") and not owner.startswith("ns"):
            own.append((owner, rtype))
    return draft.rng.choice(sorted(set(own)))


def tag_name_server_dependencies(
    draft: Draft, names: Mapping[str, Sequence[str]], signing: SigningPlan
) -> None:
    """``ns-in-bogus-zone``: some name server's address is in a zone that will not validate
    (a flawed one, or one below it); ``ns-in-stripped-insecure-zone``: in an unsigned zone
    whose signed parent's servers strip negative answers (the proof that it has no DS is
    only in the parent's referrals); ``ns-via-parent-server``: some name server's address is
    reached through a zone its parent's server also serves (or through such a zone in turn).
    ``names``: zone -> the NS names of its delegation."""
    bogus = {zone for zone, flaw in signing.flaws.items() if flaw != "insecure"}
    # Unsigned below a signed parent whose servers strip negative answers: only the
    # parent's referrals carry the proof that there is no DS.
    stripped = {zone for zone, flaw in signing.flaws.items()
                if flaw == "insecure" and (draft.parent.get(zone) or ".") not in signing.flaws
                and "strip-soa" in draft.tags.get(draft.parent.get(zone) or ".", ())}  # fmt: skip
    for zone in draft.order:  # parents first: what is below such a zone is the same
        if draft.parent.get(zone) in bogus:
            bogus.add(zone)
        if draft.parent.get(zone) in stripped:
            stripped.add(zone)
    for zone, ns_names in names.items():
        homes = {zone_of(draft, name) for name in ns_names}
        if homes & bogus and zone not in bogus:
            draft.tag(zone, "ns-in-bogus-zone")
        if homes & stripped and zone not in stripped:
            draft.tag(zone, "ns-in-stripped-insecure-zone")
    wanted = {"parent-server", "ns-via-parent-server"}
    changed = True
    while changed:
        changed = False
        for zone, ns_names in names.items():
            if "ns-via-parent-server" in draft.tags[zone]:
                continue
            homes = {zone_of(draft, name) for name in ns_names} - {zone}
            if any(wanted & draft.tags[z] for h in homes for z in path_of(draft, h)):
                draft.tag(zone, "ns-via-parent-server")
                changed = True
