"""Composing node definitions into a ``WorkflowBuilder``, applying the wiring rules.

For each input of each node, the first match wins:

1. an explicit input of the definition (``inputs={"rows": "clean.result"}``);
2. connections made with ``connect("a.result -> b.rows")`` (several may feed one
   input, as the engine allows);
3. a function parameter named after another node: that node's primary output;
4. otherwise nothing: the input is a workflow parameter (its default from the
   signature, or required).

An explicit input naming a node that is not defined is kept aside as *dangling*:
the workflow still composes, and running the node that needs it fails clearly.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from kailash_nb.notebook.cache import Incoming
from kailash_nb.notebook.definitions import NodeDefinition
from kailash_nb.notebook.errors import NotebookError
from kailash_nb.notebook.refs import ConnectionSpec
from kailash_nb.sdk_exceptions import close_matches
from kailash_nb.workflow.builder import WorkflowBuilder

__all__ = ["Composition", "Wiring", "compose", "incoming_edges", "wiring"]

#: ``(source, output, target, input)``.
Edge = tuple[str, str, str, str]


@dataclass
class Wiring:
    """Every connection between the definitions, without building anything.

    Attributes:
        connections: every connection, in the order it was added.
        dangling: ``(node, input, missing source)`` for explicit inputs from
            nodes that are not defined.
    """

    connections: list[Edge]
    dangling: list[tuple[str, str, str]]

    def incoming(self) -> dict[str, list[Incoming]]:
        """``{node: [(input, source, output), ...]}`` for the cache's key chain."""
        incoming: dict[str, list[Incoming]] = {}
        for source, output, target, name in self.connections:
            incoming.setdefault(target, []).append((name, source, output))
        return incoming

    def upstream(self, node_id: str) -> set[str]:
        """``node_id`` and every node it needs, directly or not."""
        return _reachable(node_id, {(t, s) for s, _, t, _ in self.connections}) | {node_id}

    def downstream(self, node_id: str) -> set[str]:
        """Every node that needs ``node_id``, directly or not."""
        return _reachable(node_id, {(s, t) for s, _, t, _ in self.connections})

    def check_dangling(self, scope: Collection[str], defined: Collection[str]) -> None:
        """Raise for a dangling input of a node in ``scope``.

        Raises:
            NotebookError: names the node, the input and close matches for the source.
        """
        for node_id, name, source in self.dangling:
            if node_id in scope:
                raise NotebookError(
                    f"node {node_id!r} takes input {name!r} from node {source!r}, which is not "
                    f"defined{close_matches(source, defined)}; define {source!r} again or "
                    f"redefine {node_id!r}"
                )


@dataclass
class Composition(Wiring):
    """The definitions as a builder, with every connection it holds.

    Attributes:
        builder: a fresh ``WorkflowBuilder`` (nothing built yet).
        connections: every connection, in the order it was added.
        dangling: ``(node, input, missing source)`` for explicit inputs from
            nodes that are not defined.
    """

    builder: WorkflowBuilder = field(default_factory=WorkflowBuilder)


def compose(
    definitions: Mapping[str, NodeDefinition],
    manual: Sequence[ConnectionSpec],
    include: Collection[str] | None = None,
) -> Composition:
    """Compose ``definitions`` (only the ids in ``include``, if given) and the
    connections made with ``connect`` into a ``Composition``.

    Raises:
        KailashException: a connection the builder refuses (unknown node).
    """
    wired = wiring(definitions, manual, include)
    builder = WorkflowBuilder()
    for definition in definitions.values():
        if include is None or definition.node_id in include:
            builder.add_node(definition.builder_node(), definition.node_id, definition.config)
    for edge in wired.connections:
        builder.add_connection(*edge)
    return Composition(wired.connections, wired.dangling, builder)


def wiring(
    definitions: Mapping[str, NodeDefinition],
    manual: Sequence[ConnectionSpec],
    include: Collection[str] | None = None,
) -> Wiring:
    """The connections ``compose`` makes, without a builder (cheap: no node is
    instantiated); only the ids in ``include``, if given."""
    connections: list[Edge] = []
    dangling: list[tuple[str, str, str]] = []
    for definition in definitions.values():
        if include is None or definition.node_id in include:
            edges, missing = incoming_edges(definition, definitions, manual, include)
            connections.extend(edges)
            dangling.extend(missing)
    return Wiring(connections, dangling)


def incoming_edges(
    definition: NodeDefinition,
    definitions: Mapping[str, NodeDefinition],
    manual: Sequence[ConnectionSpec],
    include: Collection[str] | None = None,
) -> tuple[list[Edge], list[tuple[str, str, str]]]:
    """The connections into one node, and its dangling explicit inputs."""
    target = definition.node_id
    edges: list[Edge] = []
    dangling: list[tuple[str, str, str]] = []

    def wire(source: str, output: str | None, name: str) -> None:
        edge = (source, output or definitions[source].output, target, name)
        if source in definitions and (include is None or source in include) and edge not in edges:
            edges.append(edge)

    fed = set()
    for name, reference in definition.inputs.items():
        fed.add(name)
        if reference.node_id in definitions:
            wire(reference.node_id, reference.output, name)
        else:
            dangling.append((target, name, reference.node_id))
    for spec in manual:
        if spec.target_node == target:
            fed.add(spec.target_input)
            wire(spec.source.node_id, spec.source.output, spec.target_input)
    for name in definition.parameter_names():
        if name not in fed and name != target and name in definitions:
            wire(name, None, name)
    return edges, dangling


def _reachable(start: str, arcs: set[tuple[str, str]]) -> set[str]:
    following: dict[str, set[str]] = {}
    for origin, destination in arcs:
        following.setdefault(origin, set()).add(destination)
    found: set[str] = set()
    pending = [start]
    while pending:
        for node_id in following.get(pending.pop(), ()):
            if node_id not in found:
                found.add(node_id)
                pending.append(node_id)
    return found
