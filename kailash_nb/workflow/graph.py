"""``Workflow``: a validated graph of node instances, ready to run.

A workflow is made by ``WorkflowBuilder.build()`` or ``Workflow.from_dict()``, or
Kailash's way: ``Workflow(workflow_id, name)`` then ``add_node``/``connect``. Nodes,
connections and cycles (``create_cycle``) may be added, never removed or changed;
every addition is validated at once. ``graph`` is a networkx
``DiGraph`` with one vertex per node and one edge per connected pair.
"""

from __future__ import annotations

import os
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from kailash_nb import sdk_exceptions as errors
from kailash_nb.nodes.node import Node
from kailash_nb.sdk_exceptions import close_matches
from kailash_nb.workflow.connection import Connection, CyclicConnection, NodeOptions
from kailash_nb.workflow.cycles import CycleBuilder, CycleSpec
from kailash_nb.workflow.draft import WorkflowDraft
from kailash_nb.workflow.node_instance import NodeInstance
from kailash_nb.workflow.plan import ExecutionPlan
from kailash_nb.workflow.serialization import (
    dump_json,
    dump_yaml,
    load_json,
    load_yaml,
    workflow_arguments_from_dict,
    workflow_to_dict,
)
from kailash_nb.workflow.validation import (
    check_connections,
    check_cycles,
    cycle_members,
    missing_input,
)

if TYPE_CHECKING:
    import networkx as nx
    from pydantic import BaseModel

    from kailash_nb.workflow.state import WorkflowStateWrapper

# Connection, CyclicConnection and NodeInstance are importable from here, as from
# Kailash's ``kailash.workflow.graph``.
__all__ = ["Connection", "CyclicConnection", "NodeInstance", "Workflow"]

#: ``(source, target, data)``: one edge as ``separate_dag_and_cycle_edges`` lists it.
_Edge = tuple[str, str, dict[str, Any]]


class Workflow:
    """A validated workflow: it only grows (``add_node``, ``connect``, ``create_cycle``),
    and every addition is checked at once.

    Two metadata entries, written by ``WorkflowBuilder`` as Kailash writes them, shape
    the parameters of every run: ``workflow_parameters`` (``{name: value}``, defaults
    delivered like workflow-level run parameters) and ``_workflow_inputs`` /
    ``parameter_mappings`` (``{node_id: {parameter: input}}``: a workflow-level run
    parameter ``parameter`` is delivered to that node's ``input``).

    Attributes:
        workflow_id: unique id (a uuid4 string unless given).
        name: human name, shown in runs, events and the widget.
        nodes: read-only mapping of node id to node instance.
        connections: every connection, cycle edges included.
        cycles: the declared cycles.
        graph: networkx ``DiGraph`` of the nodes; edge attribute ``connections``
            lists the connections between the two nodes, and ``mapping``
            (``{output: input}``), ``from_output`` and ``to_input`` describe them as
            Kailash's graph edges do (a string for one connection, lists for several).

    Raises:
        ConnectionError: a connection to a missing node or input.
        WorkflowValidationError: an unmarked cycle.
        CycleConfigurationError: a declared cycle that is not a loop, or overlaps another.
    """

    def __init__(
        self,
        workflow_id: str | None = None,
        name: str | None = None,
        description: str = "",
        version: str = "1.0.0",
        author: str = "",
        metadata: dict[str, Any] | None = None,
        *,
        nodes: Mapping[str, Node] | None = None,
        connections: list[Connection] | tuple[Connection, ...] = (),
        cycles: list[CycleSpec] | tuple[CycleSpec, ...] = (),
        node_options: Mapping[str, NodeOptions] | None = None,
    ) -> None:
        self.workflow_id = workflow_id or str(uuid.uuid4())
        self.name = name or f"Workflow-{self.workflow_id[:8]}"
        nodes = nodes or {}
        self.description = description
        self.version = version
        self.author = author
        self.metadata = dict(metadata or {})
        self.nodes: Mapping[str, Node] = MappingProxyType(dict(nodes))
        self.node_options: Mapping[str, NodeOptions] = MappingProxyType(dict(node_options or {}))
        for node_id in self.node_options:
            if node_id not in self.nodes:
                raise errors.WorkflowValidationError(
                    f"node options given for unknown node {node_id!r}"
                    f"{close_matches(node_id, self.nodes)}"
                )
        self._dag_connections = tuple(connections)
        self.cycles: tuple[CycleSpec, ...] = ()
        check_connections(self.nodes, self._dag_connections)
        self.graph = self._build_graph()
        check_cycles(self.graph, ())
        for cycle in cycles:
            self._add_cycle(cycle)
        self._default_parameters, self._input_mappings = _workflow_inputs(self.nodes, self.metadata)
        self._plan: ExecutionPlan | None = None
        self._kahn_order: tuple[str, ...] | None = None

    # -- structure ----------------------------------------------------------------
    @property
    def connections(self) -> tuple[Connection, ...]:
        """Every connection, cycle edges last."""
        return self._dag_connections + tuple(c for cycle in self.cycles for c in cycle.connections)

    def get_node(self, node_id: str) -> Node:
        """The node instance with id ``node_id``.

        Raises:
            WorkflowValidationError: no such node (close matches listed).
        """
        try:
            return self.nodes[node_id]
        except KeyError:
            raise errors.WorkflowValidationError(
                f"workflow {self.name!r} has no node {node_id!r}"
                f"{close_matches(node_id, self.nodes)}"
            ) from None

    def cycle_members(self, cycle: CycleSpec) -> list[str]:
        """The node ids inside ``cycle``, in execution order."""
        return cycle_members(self.graph, cycle)

    def execution_order(self) -> list[str]:
        """Node ids in the order a sequential run visits them (ties broken by id)."""
        import networkx as nx

        return list(nx.lexicographical_topological_sort(self.graph))

    def get_execution_order(self) -> tuple[str, ...]:
        """Node ids in topological order of the ordinary connections (Kailash's order).

        Kahn's algorithm as Kailash runs it: the nodes without inputs in sorted order
        first, then each node's successors, in sorted order, as their last input is
        placed. Cycle edges are left out, so a cycle's nodes appear once.
        """
        if self._kahn_order is None:
            waiting = {node_id: self.graph.in_degree(node_id) for node_id in self.graph}
            queue = deque(sorted(node_id for node_id, count in waiting.items() if not count))
            order: list[str] = []
            while queue:
                node_id = queue.popleft()
                order.append(node_id)
                for successor in sorted(self.graph.successors(node_id)):
                    waiting[successor] -= 1
                    if not waiting[successor]:
                        queue.append(successor)
            self._kahn_order = tuple(order)
        return self._kahn_order

    def validate(self, runtime_parameters: dict[str, Any] | None = None) -> None:
        """Check that every required input is provided, counting ``runtime_parameters``
        (the ``parameters`` a run will be given) as Kailash's ``validate`` does.

        The graph itself (unknown nodes and inputs, unmarked cycles) was already checked
        when the workflow was made, so only the inputs remain to check.

        Raises:
            WorkflowValidationError: a required input that neither config, connection nor
                ``runtime_parameters`` provides, or malformed ``runtime_parameters``.
        """
        by_node, flat_by_node = self.plan.split_parameters(runtime_parameters)
        self.plan.check_required(by_node, flat_by_node)

    def has_cycles(self) -> bool:
        """True when the workflow declares at least one cycle."""
        return bool(self.cycles)

    def separate_dag_and_cycle_edges(self) -> tuple[tuple[_Edge, ...], tuple[_Edge, ...]]:
        """``(dag_edges, cycle_edges)``, each a tuple of ``(source, target, data)`` with
        ``data`` laid out as Kailash's graph edges: ``mapping`` (``{output: input}``),
        ``from_output`` and ``to_input`` (a string for one connection, lists for
        several); cycle edges also carry ``cycle``, ``cycle_id``, ``max_iterations``,
        ``convergence_check`` and ``timeout`` (and ``memory_limit``, ``condition``,
        ``parent_cycle``, always ``None`` here). The data dicts are fresh copies.
        """
        dag_edges = tuple(
            (source, target, _edge_data(connections))
            for (source, target), connections in _by_pair(self._dag_connections).items()
        )
        cycle_edges = []
        for cycle in self.cycles:
            for (source, target), connections in _by_pair(cycle.connections).items():
                data = _edge_data(connections)
                data.update(cycle.to_dict())
                data.update(memory_limit=None, condition=None, parent_cycle=None)
                cycle_edges.append((source, target, data))
        return dag_edges, tuple(cycle_edges)

    def get_cycle_groups(self) -> dict[str, list[_Edge]]:
        """The cycle edges of ``separate_dag_and_cycle_edges`` grouped by cycle id:
        ``{cycle_id: [(source, target, data), ...]}``, cycles in declaration order."""
        groups: dict[str, list[_Edge]] = {}
        for source, target, data in self.separate_dag_and_cycle_edges()[1]:
            groups.setdefault(data["cycle_id"], []).append((source, target, data))
        return groups

    def add_node(self, node_id: str, node_or_type: str | type[Node] | Node, **config: Any) -> None:
        """Add a node to this workflow, Kailash's way of building one without a builder:
        ``Workflow("wf-1", "etl")`` then ``add_node`` and ``connect``.

        ``node_or_type`` is a registered type name, a ``Node`` subclass (both made with
        ``config``) or a ``Node`` instance (its class and config, overlaid with
        ``config``, make the workflow's own instance).

        Raises:
            WorkflowValidationError: duplicate or invalid id, or an unknown node type.
            NodeConfigurationError: ``config`` does not fit the node's parameters.
        """
        if node_id in self.nodes:
            raise errors.WorkflowValidationError(
                f"Node ID {node_id!r} already exists in workflow {self.name!r}"
            )
        draft = WorkflowDraft()
        draft.add_node(node_or_type, node_id, config)
        (node,) = draft.workflow_arguments(self.workflow_id)["nodes"].values()
        self.nodes = MappingProxyType({**self.nodes, node_id: node})
        self.graph.add_node(node_id, node=node, type=node.type_name())
        self._changed()

    def connect(
        self,
        source_node: str,
        target_node: str,
        mapping: dict[str, str] | None = None,
        cycle: bool = False,
        **cycle_options: Any,
    ) -> None:
        """Connect ``source_node`` outputs to ``target_node`` inputs by ``mapping``
        (``{output: input}``; Kailash's default ``{"output": "input"}`` when omitted).

        As in Kailash, ``cycle=True`` is refused: declare cycles with ``create_cycle``.

        Raises:
            ConnectionError: unknown node or input, self-connection, duplicate.
            WorkflowValidationError: the connection closes an unmarked cycle, or
                ``cycle=True``.
        """
        if cycle or cycle_options:
            raise errors.WorkflowValidationError(
                "connect(..., cycle=True) is not supported (nor in Kailash since 1.0); "
                "declare the cycle with workflow.create_cycle(id).connect(source, target, "
                "mapping).max_iterations(n).build()"
            )
        mapping = {"output": "input"} if mapping is None else mapping
        if not isinstance(mapping, dict) or not mapping:
            raise errors.ConnectionError(
                f"connect({source_node!r}, {target_node!r}): mapping must be a non-empty "
                "{output: input} dict"
            )
        for node_id, role in ((source_node, "source"), (target_node, "target")):
            if node_id not in self.nodes:
                raise errors.UnknownNodeError(
                    f"{role.capitalize()} node {node_id!r} not found in workflow "
                    f"{self.name!r}: connect({source_node!r}, {target_node!r}) names {role} "
                    f"node {node_id!r}, which has not been added"
                    f"{close_matches(str(node_id), self.nodes)}; add it with add_node first"
                )
        if source_node == target_node:
            raise errors.ConnectionError(
                f"Cannot connect node {source_node!r} to itself: a node cannot feed itself; "
                "use create_cycle(id) for a loop"
            )
        added = tuple(
            Connection(source_node, output, target_node, target_input)
            for output, target_input in mapping.items()
        )
        for connection in added:
            if connection in self._dag_connections:
                raise errors.ConnectionError(f"connection {connection} was already added")
        check_connections(self.nodes, added)
        graph = self.graph.copy()
        _add_edges(graph, added)
        check_cycles(graph, self.cycles)
        self.graph = graph
        self._dag_connections += added
        self._changed()

    def create_cycle(self, cycle_id: str) -> CycleBuilder:
        """Declare a cycle on this workflow; see ``kailash_nb.workflow.cycles``."""
        return CycleBuilder(cycle_id, self._add_cycle)

    def create_state_wrapper(self, state_model: BaseModel) -> WorkflowStateWrapper[Any]:
        """Wrap the pydantic model ``state_model`` for immutable updates
        (``update_in``, ``batch_update``, ``merge``); see ``kailash_nb.workflow.state``.

        Raises:
            TypeError: ``state_model`` is not a pydantic model.
        """
        from kailash_nb.workflow.state import WorkflowStateWrapper

        return WorkflowStateWrapper(state_model)

    @property
    def plan(self) -> ExecutionPlan:
        """The precomputed schedule the engine follows (built on first use)."""
        if self._plan is None:
            self._plan = ExecutionPlan(
                self.nodes,
                self.node_options,
                self._dag_connections,
                [(cycle, self.cycle_members(cycle)) for cycle in self.cycles],
                default_parameters=self._default_parameters,
                input_mappings=self._input_mappings,
            )
        return self._plan

    # -- serialization ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The workflow as a JSON-ready dict in Kailash's layout.

        Raises:
            ExportException: a node's config holds a value JSON cannot carry
                (a function from ``from_function``, an object).
        """
        return workflow_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Workflow:
        """Rebuild a workflow from ``to_dict()`` output (or a hand-written definition)."""
        return cls(**workflow_arguments_from_dict(data))

    def to_json(self, indent: int | None = 2) -> str:
        """``to_dict()`` as JSON text."""
        return dump_json(self.to_dict(), indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> Workflow:
        """Rebuild a workflow from ``to_json()`` text."""
        return cls.from_dict(load_json(text))

    def to_yaml(self) -> str:
        """``to_dict()`` as YAML text."""
        return dump_yaml(self.to_dict())

    @classmethod
    def from_yaml(cls, text: str | bytes) -> Workflow:
        """Rebuild a workflow from YAML text (safe loader only)."""
        return cls.from_dict(load_yaml(text))

    def save(self, path: str | os.PathLike[str], format: str = "json") -> None:  # noqa: A002 - Kailash's name
        """Write ``to_json()`` (``format="json"``) or ``to_yaml()`` (``"yaml"``) to
        the file ``path``, replacing it.

        Raises:
            ValueError: a format other than ``"json"`` or ``"yaml"`` (as in Kailash).
            ExportException: a node's config holds a value a definition cannot carry.
        """
        writers = {"json": self.to_json, "yaml": self.to_yaml}
        if format not in writers:
            raise ValueError(f"Unsupported format: {format!r}; use 'json' or 'yaml'")
        text = writers[format]()
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)

    def __repr__(self) -> str:
        edges = len(self.connections)
        return (
            f"<Workflow {self.name}: {len(self.nodes)} node{'s' * (len(self.nodes) != 1)}, "
            f"{edges} edge{'s' * (edges != 1)}>"
        )

    def __str__(self) -> str:
        edges = len(self.connections)
        return (
            f"Workflow {self.name!r} (ID: {self.workflow_id}) with {len(self.nodes)} "
            f"node{'s' * (len(self.nodes) != 1)} and {edges} connection{'s' * (edges != 1)}"
        )

    # -- internals ----------------------------------------------------------------
    def _build_graph(self) -> nx.DiGraph:
        import networkx as nx  # imported on first build: it is slow to import

        graph = nx.DiGraph()
        for node_id, node in self.nodes.items():
            graph.add_node(node_id, node=node, type=node.type_name())
        _add_edges(graph, self._dag_connections)
        return graph

    def _add_cycle(self, cycle: CycleSpec) -> None:
        if any(existing.cycle_id == cycle.cycle_id for existing in self.cycles):
            raise errors.CycleConfigurationError(
                f"workflow {self.name!r} already has a cycle {cycle.cycle_id!r}"
            )
        check_connections(self.nodes, cycle.connections)
        check_cycles(self.graph, (*self.cycles, cycle))
        self.cycles = (*self.cycles, cycle)
        self._changed()

    def _changed(self) -> None:
        """Forget what was computed from the graph (a node, edge or cycle was added)."""
        self._plan = None
        self._kahn_order = None


def _add_edges(graph: nx.DiGraph, connections: Iterable[Connection]) -> None:
    """Add ``connections`` to ``graph``: one edge per node pair, its attributes
    ``connections`` (the list) and Kailash's ``mapping``/``from_output``/``to_input``."""
    for connection in connections:
        edge = (connection.source_node, connection.target_node)
        listed = (
            [*graph.edges[edge]["connections"], connection]
            if graph.has_edge(*edge)
            else [connection]
        )
        graph.add_edge(*edge, connections=listed, **_edge_data(listed))


def _edge_data(connections: list[Connection]) -> dict[str, Any]:
    """Kailash's edge attributes for the connections between one pair of nodes."""
    outputs = [c.source_output for c in connections]
    inputs = [c.target_input for c in connections]
    return {
        "mapping": dict(zip(outputs, inputs, strict=True)),
        "from_output": outputs[0] if len(outputs) == 1 else outputs,
        "to_input": inputs[0] if len(inputs) == 1 else inputs,
    }


def _by_pair(connections: Iterable[Connection]) -> dict[tuple[str, str], list[Connection]]:
    """Connections grouped by (source, target), pairs in order of their first connection."""
    grouped: dict[tuple[str, str], list[Connection]] = {}
    for connection in connections:
        grouped.setdefault((connection.source_node, connection.target_node), []).append(connection)
    return grouped


def _workflow_inputs(
    nodes: Mapping[str, Node], metadata: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, list[tuple[str, str]]]]:
    """The default parameters and parameter mappings held in ``metadata``, checked."""
    defaults = metadata.get("workflow_parameters") or {}
    if not isinstance(defaults, dict):
        raise errors.WorkflowValidationError("metadata 'workflow_parameters' must be a dict")
    mappings: dict[str, list[tuple[str, str]]] = {}
    for key in ("_workflow_inputs", "parameter_mappings"):
        by_node = metadata.get(key) or {}
        if not isinstance(by_node, dict):
            raise errors.WorkflowValidationError(f"metadata {key!r} must be a dict")
        for node_id, mapping in by_node.items():
            node = nodes.get(node_id)
            if node is None:
                raise errors.WorkflowValidationError(
                    f"metadata {key!r} maps inputs of node {node_id!r}, which does not exist"
                    f"{close_matches(str(node_id), nodes)}"
                )
            if not isinstance(mapping, dict):
                raise errors.WorkflowValidationError(
                    f"metadata {key!r}[{node_id!r}] must be a dict of parameter -> input"
                )
            for parameter, name in mapping.items():
                if not isinstance(parameter, str) or not isinstance(name, str):
                    raise errors.WorkflowValidationError(
                        f"metadata {key!r}[{node_id!r}] must map strings to strings"
                    )
                missing = missing_input(node, name, node_id)
                if missing:
                    raise errors.WorkflowValidationError(f"metadata {key!r}: {missing}")
                pair = (node_id, name)
                if pair not in mappings.setdefault(parameter, []):
                    mappings[parameter].append(pair)
    for name in defaults:
        if name not in mappings and not any(name in node.parameters for node in nodes.values()):
            raise errors.WorkflowValidationError(
                f"workflow parameter {name!r} is an input of no node and is mapped to none"
            )
    return dict(defaults), mappings
