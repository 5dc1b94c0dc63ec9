"""``ExecutionPlan``: everything about a workflow's schedule that does not depend
on one run, computed once per workflow so each run only does the work itself."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import CodeType
from typing import Any

from kailash_nb.nodes.node import Node
from kailash_nb.sdk_exceptions import RunParameterError, close_matches
from kailash_nb.workflow.connection import Connection, NodeOptions
from kailash_nb.workflow.cycles import CycleSpec

__all__ = ["CycleUnit", "ExecutionPlan", "InputSources"]

#: ``(input name, connections feeding it in insertion order)`` for one node.
InputSources = tuple[tuple[str, tuple[Connection, ...]], ...]

# A cycle with neither max_iterations nor timeout stops here and reports it.
DEFAULT_CYCLE_ITERATION_CAP = 10_000


@dataclass(frozen=True)
class CycleUnit:
    """A declared cycle scheduled as one unit: its members run in order per iteration."""

    spec: CycleSpec
    members: tuple[str, ...]
    condition: CodeType | None
    #: Node whose outputs the convergence expression reads as bare names.
    source_node: str


class ExecutionPlan:
    """Precomputed schedule of a workflow.

    Units are single node ids or ``CycleUnit``s, in a deterministic topological order
    (ties broken by node id, as in Kailash). ``sequential`` is true when at most one
    unit can ever be ready at a time and every node is synchronous: such a workflow
    runs inline, without an event loop or threads.
    """

    def __init__(
        self,
        nodes: Mapping[str, Node],
        options: Mapping[str, NodeOptions],
        connections: Sequence[Connection],
        cycles: Sequence[tuple[CycleSpec, Sequence[str]]],
        *,
        default_parameters: Mapping[str, Any] | None = None,
        input_mappings: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    ) -> None:
        """Plan the workflow made of ``nodes``, their ``options``, its ordinary
        ``connections`` and its ``cycles``, each with its members in execution order.

        ``default_parameters`` are workflow-level parameters every run starts from;
        ``input_mappings`` maps a workflow-level parameter name to the
        ``(node_id, input)`` pairs it is delivered to."""
        self.nodes = nodes
        self.default_parameters = dict(default_parameters or {})
        self.input_mappings = {key: tuple(pairs) for key, pairs in (input_mappings or {}).items()}
        self.options: dict[str, NodeOptions] = dict(options)
        self.is_async = {node_id: node.is_async for node_id, node in nodes.items()}
        self.is_branching = {node_id: node.is_branching for node_id, node in nodes.items()}

        cycle_of: dict[str, int] = {}
        cycle_units: list[CycleUnit] = []
        for cycle, cycle_members in cycles:
            members = tuple(cycle_members)
            for member in members:
                cycle_of[member] = len(cycle_units)
            cycle_units.append(
                CycleUnit(
                    spec=cycle,
                    members=members,
                    condition=cycle.condition,
                    source_node=cycle.connections[0].source_node,
                )
            )

        self.units, self.successors = self._ordered_units(nodes, connections, cycle_of, cycle_units)
        self.predecessor_counts: list[int] = [0] * len(self.units)
        for targets in self.successors:
            for target in targets:
                self.predecessor_counts[target] += 1
        self.roots = tuple(i for i, count in enumerate(self.predecessor_counts) if count == 0)

        self.inputs: dict[str, InputSources] = self._group_inputs(nodes, connections)
        cycle_connections = [c for cycle, _ in cycles for c in cycle.connections]
        self.cycle_inputs: dict[str, InputSources] = self._group_inputs(nodes, cycle_connections)
        self.cycle_edges: dict[str, tuple[Connection, ...]] = {
            cycle.cycle_id: cycle.connections for cycle, _ in cycles
        }
        self.has_dependents = dict.fromkeys(nodes, False)
        for connection in (*connections, *cycle_connections):
            self.has_dependents[connection.source_node] = True

        self.declared_by: dict[str, tuple[str, ...]] = {}
        for node_id, node in nodes.items():
            for name in node.parameters:
                self.declared_by[name] = (*self.declared_by.get(name, ()), node_id)
        self.unsatisfied: dict[str, tuple[str, ...]] = {}
        for node_id, node in nodes.items():
            fed = {name for name, _ in self.inputs[node_id]} | {
                name for name, _ in self.cycle_inputs[node_id]
            }
            missing = tuple(
                name for name in node._required_names if name not in node.config and name not in fed
            )
            if missing:
                self.unsatisfied[node_id] = missing

        single_file = all(
            len(self.successors[i]) == 1 and self.successors[i][0] == i + 1
            for i in range(len(self.units) - 1)
        )
        self.sequential = (
            single_file
            and not any(self.is_async.values())
            and not any(options.timeout or options.retries for options in self.options.values())
            and not any(cycle.spec.timeout for cycle in cycle_units)
        )

    def split_parameters(
        self, parameters: dict[str, Any] | None
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """Split runtime ``parameters`` into node-keyed ones and workflow-level ones,
        returning ``(by_node, flat_by_node)``: both map node id to its inputs.

        A key equal to a node id must map to a dict of that node's inputs; any other
        key is a workflow-level parameter delivered to every node that declares an
        input of that name.

        Raises:
            RunParameterError: (a ``WorkflowValidationError``) not a dict, dunder
                names, unknown inputs, or a key that is neither a node id nor a
                declared input; its ``kind``, ``node_id`` and ``input_name`` say which.
        """
        if parameters and not isinstance(parameters, dict):
            raise RunParameterError(
                f"parameters must be a dict, got {type(parameters).__name__}", kind="not_a_dict"
            )
        if self.default_parameters:
            parameters = {**self.default_parameters, **(parameters or {})}
        if not parameters:
            return {}, {}
        by_node: dict[str, dict[str, Any]] = {}
        flat_by_node: dict[str, dict[str, Any]] = {}
        for key, value in parameters.items():
            _check_name(key, "parameter")
            node = self.nodes.get(key)
            if node is not None:
                if not isinstance(value, dict):
                    raise RunParameterError(
                        f"parameters[{key!r}] must be a dict of inputs for node {key!r}, got "
                        f"{type(value).__name__}",
                        kind="node_value_not_a_dict",
                        node_id=key,
                    )
                for name in value:
                    _check_name(name, f"input of node {key!r}", key)
                    if not node.accepts_extra_inputs and name not in node.parameters:
                        raise RunParameterError(
                            f"parameters[{key!r}]: node {key!r} ({node.type_name()}) has no input "
                            f"{name!r}{close_matches(name, node.parameters)}; its inputs are "
                            f"{sorted(node.parameters)}",
                            kind="unknown_input",
                            node_id=key,
                            input_name=name,
                        )
                by_node[key] = value
                continue
            mapped = self.input_mappings.get(key)
            if mapped:
                for node_id, name in mapped:
                    flat_by_node.setdefault(node_id, {})[name] = value
                continue
            targets = self.declared_by.get(key)
            if not targets:
                raise RunParameterError(
                    f"parameter {key!r} is neither a node id nor an input any node declares"
                    f"{close_matches(key, [*self.nodes, *self.declared_by])}; pass node inputs "
                    "as parameters={node_id: {input: value}}",
                    kind="unknown_parameter",
                    input_name=key,
                )
            for node_id in targets:
                flat_by_node.setdefault(node_id, {})[key] = value
        return by_node, flat_by_node

    def check_required(
        self, by_node: dict[str, dict[str, Any]], flat_by_node: dict[str, dict[str, Any]]
    ) -> None:
        """Check that every required input is provided by config, connection or the
        run's parameters (``split_parameters``' result).

        Raises:
            RunParameterError: kind ``"missing_required"``, naming every required input
                nobody provides (all of them in ``missing``).
        """
        problems = []
        pairs: list[tuple[str, str]] = []
        for node_id, names in self.unsatisfied.items():
            given = by_node.get(node_id, {}).keys() | flat_by_node.get(node_id, {}).keys()
            missing = [name for name in names if name not in given]
            if missing:
                problems.append(f"node {node_id!r} input {', '.join(map(repr, missing))}")
                pairs += [(node_id, name) for name in missing]
        if problems:
            raise RunParameterError(
                "required inputs are missing: "
                + "; ".join(problems)
                + ". Set them in the node config, connect an output to them, or pass "
                "parameters={node_id: {input: value}}",
                kind="missing_required",
                node_id=pairs[0][0] if len(problems) == 1 else None,
                missing=tuple(pairs),
            )

    @staticmethod
    def _group_inputs(nodes, connections) -> dict[str, InputSources]:
        grouped: dict[str, dict[str, list[Connection]]] = {node_id: {} for node_id in nodes}
        for connection in connections:
            grouped[connection.target_node].setdefault(connection.target_input, []).append(
                connection
            )
        return {
            node_id: tuple((name, tuple(sources)) for name, sources in inputs.items())
            for node_id, inputs in grouped.items()
        }

    @staticmethod
    def _ordered_units(
        nodes: Mapping[str, Node],
        connections: Sequence[Connection],
        cycle_of: dict[str, int],
        cycle_units: list[CycleUnit],
    ) -> tuple[list[str | CycleUnit], list[tuple[int, ...]]]:
        """Units in topological order of the condensed graph (ties by smallest node id)
        and, for each, the indexes of the units that consume its outputs."""
        draft: list[str | CycleUnit] = list(cycle_units)
        draft += [node_id for node_id in nodes if node_id not in cycle_of]
        draft_of: dict[str, int] = {}
        for index, unit in enumerate(draft):
            for node_id in unit.members if isinstance(unit, CycleUnit) else (unit,):
                draft_of[node_id] = index
        edges: list[set[int]] = [set() for _ in draft]
        for connection in connections:
            source = draft_of[connection.source_node]
            target = draft_of[connection.target_node]
            if source != target:
                edges[source].add(target)
        waiting = [0] * len(draft)
        for targets in edges:
            for target in targets:
                waiting[target] += 1

        def sort_key(index: int) -> str:
            unit = draft[index]
            return min(unit.members) if isinstance(unit, CycleUnit) else unit

        ready = [(sort_key(i), i) for i, count in enumerate(waiting) if count == 0]
        heapq.heapify(ready)
        order: list[int] = []
        while ready:
            _, index = heapq.heappop(ready)
            order.append(index)
            for target in edges[index]:
                waiting[target] -= 1
                if waiting[target] == 0:
                    heapq.heappush(ready, (sort_key(target), target))
        position = {draft_index: new_index for new_index, draft_index in enumerate(order)}
        units = [draft[index] for index in order]
        successors = [tuple(sorted(position[t] for t in edges[index])) for index in order]
        return units, successors


def _check_name(name: Any, what: str, node_id: str | None = None) -> None:
    if not isinstance(name, str) or not name:
        raise RunParameterError(
            f"{what} name {name!r} must be a non-empty string",
            kind="bad_name",
            node_id=node_id,
            input_name=name if isinstance(name, str) else None,
        )
    if name.startswith("__"):
        raise RunParameterError(
            f"{what} name {name!r} is not allowed (dunder names)",
            kind="bad_name",
            node_id=node_id,
            input_name=name,
        )
