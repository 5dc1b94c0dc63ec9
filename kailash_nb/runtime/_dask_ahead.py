"""Submitting ahead: which nodes ``DaskExecutor`` may hand to dask before the engine
asks for them, and the per-run record of what it handed.

Waiting for each node's completion on the client before submitting its dependents
costs every dependency level a round trip (worker -> scheduler -> client -> scheduler
-> worker). So when a node is submitted, the executor also submits, with the node's
future as a dependency, each downstream node whose inputs the engine will resolve the
same way whatever the node produces (:class:`AheadPlan`); dask starts it as soon as
its sources finish. When the engine then asks for that node, with the inputs it
resolved, the executor *adopts* the task submitted ahead if they are the same inputs
(``DaskExecutor``'s ``_same_inputs``), and submits afresh otherwise. The engine's decisions do not
change: a node's outputs are still checked (manifest) before its dependents are
considered, and a node submitted ahead that the engine never asks for is released.

A node is submitted ahead only when the engine cannot decide differently:

- it is outside every cycle, has no cached output, and no node upstream of it is a
  branching node (so it is never skipped) - its inputs each have one connection (no
  ``None`` precedence to apply);
- every source is done or is itself submitted, outside a cycle, with no retries and no
  timeout (a retried source would have a new task);
- the run has no guard (access checks are asked when the engine reaches the node) and
  no ``max_concurrent_nodes``.

What differs from waiting: a run stopped by a failure elsewhere releases the tasks it
submitted ahead, but one a worker already started runs to its end (its outputs are
discarded), where ``LocalRuntime`` would not have started it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kailash_nb.workflow.plan import CycleUnit

if TYPE_CHECKING:
    from distributed import Future

    from kailash_nb.workflow.connection import Connection
    from kailash_nb.workflow.plan import ExecutionPlan

__all__ = ["AheadPlan", "RunAhead", "Submitted", "clean_source"]


class AheadPlan:
    """What one plan allows to be submitted ahead (computed once per plan)."""

    def __init__(self, plan: ExecutionPlan, outgoing: dict[str, tuple[Connection, ...]]) -> None:
        in_cycles = {
            member for unit in plan.units if isinstance(unit, CycleUnit) for member in unit.members
        }
        successors: dict[str, tuple[str, ...]] = {
            node_id: tuple(dict.fromkeys(c.target_node for c in connections))
            for node_id, connections in outgoing.items()
        }
        may_skip: set[str] = set()
        frontier = [node_id for node_id, branching in plan.is_branching.items() if branching]
        while frontier:
            for target in successors[frontier.pop()]:
                if target not in may_skip:
                    may_skip.add(target)
                    frontier.append(target)
        #: Each node's downstream nodes (ordinary connections and cycle edges).
        self.successors = successors
        #: Nodes outside every cycle.
        self.acyclic = frozenset(plan.nodes) - in_cycles
        #: Nodes that may be submitted ahead, with their ``(input, connection)`` pairs.
        self.targets: dict[str, tuple[tuple[str, Connection], ...]] = {}
        for node_id, sources in plan.inputs.items():
            if (
                not sources
                or node_id in in_cycles
                or node_id in may_skip
                or any(len(connections) != 1 for _, connections in sources)
                or any(plan.is_branching[c.source_node] for _, cs in sources for c in cs)
            ):
                continue
            self.targets[node_id] = tuple((name, connections[0]) for name, connections in sources)


@dataclass
class Submitted:
    """A task submitted ahead: its future, the inputs it was given and its key."""

    future: Future
    kwargs: dict[str, Any]
    key: str


@dataclass
class RunAhead:
    """One run's tasks in flight: every submitted node's future until the engine has
    its outputs, and the tasks submitted ahead that the engine has not adopted yet."""

    pending: dict[str, Future] = field(default_factory=dict)
    ahead: dict[str, Submitted] = field(default_factory=dict)
    #: Submitting ahead is allowed for this run (no guard, no node concurrency cap).
    enabled: bool = True

    def release(self) -> list[str]:
        """Forget the tasks submitted ahead and never adopted; their keys."""
        keys = [submitted.key for submitted in self.ahead.values()]
        self.ahead.clear()
        self.pending.clear()
        return keys


def clean_source(run: Any, node_id: str, plan: AheadPlan) -> bool:
    """True when ``node_id``'s task, once submitted, is the only one it will have: no
    retries, no timeout, outside every cycle."""
    if node_id not in plan.acyclic:
        return False
    timeout, retries = run.settings.attempts(run.plan.options.get(node_id))
    return not retries and timeout is None
