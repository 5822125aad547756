"""Where each step of the data path goes in the engine's pipeline: the one place a step is
registered.

The engine's own steps (local zones and the record cache before the walk, the local
chain and the judge's last word after it: :meth:`IterativeEngine.core`) stay in
their order; the data path's go around them::

    before:  response policy | local zones, record cache | shared tier (read)
    walk
    after:   local chain, key sentinel | shared tier (write) | response policy

A new step is one module with ``before(tx)`` and/or ``after(tx)`` (see
:mod:`resolver.iterate.pipeline`), configured by the service
(:meth:`ResolverService.configure`) and placed here.
"""

from __future__ import annotations

from resolver.iterate.pipeline import AfterStep, BeforeStep, Pipeline
from resolver.serve.policy_step import PolicyStep
from resolver.serve.shared import SharedTier


def data_path(
    core: Pipeline, *, policy: PolicyStep | None = None, shared: SharedTier | None = None
) -> Pipeline:
    """The engine's pipeline ``core`` with the data path's steps that are configured."""
    before: list[BeforeStep] = []
    after: list[AfterStep] = list(core.after)
    if policy is not None:  # QNAME and client-IP rules, before anything is looked up
        before.append(policy)
    before += core.before
    if shared is not None:  # after the node's own caches, before the walk; then written
        before.append(shared)
        after.append(shared)
    if policy is not None:  # rules on the answer: on what every other step made of it
        after.append(policy)
    return Pipeline(before, core.walk, after)
