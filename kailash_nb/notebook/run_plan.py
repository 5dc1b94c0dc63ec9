"""Planning a notebook run: what to build, which parameters to pass, what is cached.

``plan_run`` composes the workflow (or the part one node needs), splits the run
parameters the way the engine will, computes every node's cache key and picks
the cached outputs that are still valid.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kailash_nb.notebook.cache import OutputCache, chain_keys
from kailash_nb.notebook.composition import Wiring, compose, wiring
from kailash_nb.notebook.definitions import NodeDefinition
from kailash_nb.notebook.fingerprint import combine, fingerprint_value
from kailash_nb.notebook.refs import ConnectionSpec
from kailash_nb.workflow.graph import Workflow

__all__ = ["RunPlan", "plan_run", "shape_keys"]


@dataclass
class RunPlan:
    """Everything one run needs, computed before it starts.

    Attributes:
        workflow: what the engine runs (the whole workflow, or the target's part).
        parameters: the run parameters to pass (those the part does not use dropped).
        cached: ``{node: outputs}`` still valid, handed to the engine.
        keys: each node's cache key for this run.
        shapes: each node's key without run parameters (for stale tracking).
        scope: the nodes in the run, in definition order.
        received: the run parameters each node receives.
        before: each node's state before the run (restored if it is not reached).
    """

    workflow: Workflow
    parameters: dict[str, Any]
    cached: dict[str, dict[str, Any]]
    keys: dict[str, str]
    shapes: dict[str, str]
    scope: list[str]
    received: dict[str, dict[str, Any]]
    before: dict[str, str] = field(default_factory=dict)


def shape_keys(
    definitions: Mapping[str, NodeDefinition],
    composition: Wiring,
    memo: dict[int, str] | None = None,
) -> dict[str, str]:
    """Each node's key from its definition and its upstream, without run parameters."""
    memo = {} if memo is None else memo
    own = {node_id: definition.digest(memo) for node_id, definition in definitions.items()}
    return chain_keys(own, composition.incoming())


def plan_run(
    name: str,
    definitions: Mapping[str, NodeDefinition],
    manual: Sequence[ConnectionSpec],
    cache: OutputCache,
    *,
    target: str | None,
    params: dict[str, Any],
    no_cache: bool,
    wired: Wiring | None = None,
    build: Callable[[Collection[str] | None], Workflow] | None = None,
) -> RunPlan:
    """Plan a run of the workflow ``name`` (or of ``target`` and its upstream).

    A node's key chains its definition's fingerprint, the run parameters it
    receives (workflow-level ones it declares and does not get from a connection,
    and node-keyed ones) and the keys of its sources. ``wired`` is the definitions'
    ``wiring`` when the caller keeps it; ``build(include)`` builds the workflow (only
    the ids in ``include``, if not ``None``) as ``compose(...).builder.build`` does.

    Raises:
        NotebookError: a node in the run takes an input from an undefined node.
        WorkflowValidationError: unknown parameters (checked against the whole
            workflow, with close matches).
    """
    composition = wired if wired is not None else wiring(definitions, manual)
    if build is None:

        def build(include: Collection[str] | None) -> Workflow:
            return compose(definitions, manual, include=include).builder.build(name=name)

    needed = composition.upstream(target) if target is not None else set(definitions)
    scope = [node_id for node_id in definitions if node_id in needed]
    composition.check_dangling(scope, definitions)
    full = build(None)
    by_node, flat = full.plan.split_parameters(params)
    if target is None:
        workflow, parameters = full, dict(params)
    else:
        workflow = build(needed)
        parameters = {
            key: value
            for key, value in params.items()
            if key in needed or any(key in flat.get(node_id, {}) for node_id in scope)
        }
    incoming = composition.incoming()
    received: dict[str, dict[str, Any]] = {}
    for node_id in scope:
        connected = {name for name, _, _ in incoming.get(node_id, ())}
        values = {k: v for k, v in flat.get(node_id, {}).items() if k not in connected}
        values.update(by_node.get(node_id, {}))
        received[node_id] = values
    memo: dict[int, str] = {}
    own = {node_id: definitions[node_id].digest(memo) for node_id in scope}
    nothing = fingerprint_value([], memo)  # most nodes receive no run parameter
    keys = chain_keys(
        {
            n: combine(
                own[n],
                fingerprint_value(sorted(received[n].items()), memo) if received[n] else nothing,
            )
            for n in scope
        },
        incoming,
    )
    in_cycles = {m for cycle in workflow.cycles for m in workflow.cycle_members(cycle)}
    cached: dict[str, dict[str, Any]] = {}
    if not no_cache:
        for node_id in scope:
            outputs = cache.lookup(node_id, keys[node_id])
            if outputs is not None and node_id not in in_cycles:
                cached[node_id] = outputs
    return RunPlan(
        workflow=workflow,
        parameters=parameters,
        cached=cached,
        keys=keys,
        shapes=chain_keys(own, incoming),
        scope=scope,
        received=received,
    )
