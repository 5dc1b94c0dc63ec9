"""Checks a workflow must pass before it exists: ports, cycles, and size caps.

``IssueSeverity`` and ``ValidationIssue`` are Kailash's types for describing one
finding (severity, category, code, message, node, hint).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kailash_nb import sdk_exceptions as errors
from kailash_nb.nodes.node import Node
from kailash_nb.sdk_exceptions import close_matches
from kailash_nb.workflow.connection import Connection
from kailash_nb.workflow.cycles import CycleSpec

if TYPE_CHECKING:
    import networkx as nx

__all__ = [
    "IssueSeverity",
    "ValidationIssue",
    "check_connections",
    "check_cycles",
    "cycle_members",
    "missing_input",
]


class IssueSeverity(enum.Enum):
    """How serious a ``ValidationIssue`` is (Kailash's values)."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass
class ValidationIssue:
    """One finding about a workflow, as Kailash describes it.

    Attributes:
        severity: how serious it is.
        category: the area (``"parameter"``, ``"cycle"``, ...).
        code: a short stable code (``"PAR001"``).
        message: what is wrong.
        node_id: the node concerned, if any.
        cycle_id: the cycle concerned, if any.
        suggestion: what to do about it.
        documentation_link: where to read more.
    """

    severity: IssueSeverity
    category: str
    code: str
    message: str
    node_id: str | None = None
    cycle_id: str | None = None
    suggestion: str | None = None
    documentation_link: str | None = None


def check_connections(nodes: Mapping[str, Node], connections: Iterable[Connection]) -> None:
    """Every connection joins existing nodes and ends on an input its target accepts.

    Raises:
        sdk_exceptions.ConnectionError: unknown node, unknown or dunder input.
    """
    for connection in connections:
        for role, node_id in (
            ("source", connection.source_node),
            ("target", connection.target_node),
        ):
            if node_id not in nodes:
                raise errors.ConnectionError(
                    f"connection {connection}: {role} node {node_id!r} does not exist"
                    f"{close_matches(node_id, nodes)}"
                )
        if not connection.source_output or not all(connection._path):
            raise errors.ConnectionError(
                f"connection {connection}: the source output path is empty or has an empty part"
            )
        target = nodes[connection.target_node]
        name = connection.target_input
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("__"):
            raise errors.ConnectionError(
                f"connection {connection}: target input {name!r} is not a valid input name"
            )
        missing = missing_input(target, name, connection.target_node)
        if missing:
            raise errors.ConnectionError(
                f"connection {connection}: {missing}; its inputs are {sorted(target.parameters)}"
            )


def check_cycles(graph: nx.DiGraph, cycles: Iterable[CycleSpec]) -> None:
    """Only declared cycles exist, each closes a real loop, and none overlap.

    ``graph`` holds every node and every non-cycle connection.

    Raises:
        WorkflowValidationError: a loop made of ordinary connections (unmarked cycle).
        CycleConfigurationError: a cycle edge that closes no loop, or two cycles
            sharing nodes.
    """
    import networkx as nx

    loop = None
    if not nx.is_directed_acyclic_graph(graph):
        loop = nx.find_cycle(graph)
    if loop:
        path = " -> ".join([edge[0] for edge in loop] + [loop[0][0]])
        raise errors.WorkflowValidationError(
            f"workflow has an unmarked cycle: {path}; declare it with "
            "create_cycle(id).connect(source, target, mapping).max_iterations(n).build()"
        )
    owner: dict[str, str] = {}
    for cycle in cycles:
        members = cycle_members(graph, cycle)
        for node_id in members:
            other = owner.setdefault(node_id, cycle.cycle_id)
            if other != cycle.cycle_id:
                raise errors.CycleConfigurationError(
                    f"cycles {other!r} and {cycle.cycle_id!r} both contain node {node_id!r}; "
                    "overlapping or nested cycles are not supported"
                )


def cycle_members(graph: nx.DiGraph, cycle: CycleSpec) -> list[str]:
    """Nodes of ``cycle`` in execution order: every node on a path from a cycle
    target to a cycle source.

    Raises:
        CycleConfigurationError: an edge whose target is not upstream of its source.
    """
    import networkx as nx

    members: set[str] = set()
    for connection in cycle.connections:
        source, target = connection.source_node, connection.target_node
        if source == target:
            members.add(source)
            continue
        if not nx.has_path(graph, target, source):
            raise errors.CycleConfigurationError(
                f"cycle {cycle.cycle_id!r}: edge {connection} closes no loop; node {target!r} "
                f"must be upstream of {source!r} through ordinary connections"
            )
        downstream = nx.descendants(graph, target) | {target}
        upstream = nx.ancestors(graph, source) | {source}
        members |= downstream & upstream
    return list(nx.lexicographical_topological_sort(graph.subgraph(members)))


def missing_input(node: Node, name: str, node_id: str | None = None) -> str | None:
    """Why ``node`` cannot take an input called ``name`` (``"node 'x' (Type) has no input
    'y'"`` with close matches), or ``None`` when it can.

    ``node_id`` is the node's id in the workflow (``node.id`` when not given; a node
    class whose ``__init__`` sets its own ``id`` may disagree with the workflow)."""
    if node.accepts_extra_inputs or name in node.parameters:
        return None
    return (
        f"node {node_id or node.id!r} ({node.type_name()}) has no input {name!r}"
        f"{close_matches(name, node.parameters)}"
    )
