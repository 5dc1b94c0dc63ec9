"""The session's wiring and shape keys, kept up to date one definition at a time.

Defining a node in a cell changes only the connections that touch it and the keys
of the nodes downstream of it, so ``rewire`` recomputes the incoming connections of
the node and of the nodes that read it (by explicit input, by ``connect`` or by a
parameter named after it), and ``define`` the shape keys of the node and of its
downstream. Nodes reading a global that a cell has rebound since (``SCALE = 3``) are
recomputed too, with their downstream; everything else keeps what it had. A full
``rebuild`` computes the same values from scratch (after ``remove``, ``connect``,
...)::

    state = WiringState()
    state.rebuild(definitions, manual)
    state.rewire("clean", definitions, manual)   # after definitions["clean"] changed
    state.define("clean", definitions)           # the nodes whose shape was recomputed
    state.wiring.connections, state.shapes["clean"]

Shape keys only drive the stale marks; a run recomputes every key it uses (reusing
fingerprints whose inputs are the same objects), so a value mutated in place is
always seen by the cache, and its stale mark appears at the next run (or change
that recomputes everything).

Node instances of function nodes are kept per definition, so a run builds its
``Workflow`` without instantiating every node again (``build``).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from graphlib import TopologicalSorter
from typing import Any

from kailash_nb.nodes.node import Node
from kailash_nb.notebook.cache import chain_keys
from kailash_nb.notebook.composition import Edge, Wiring, incoming_edges
from kailash_nb.notebook.definitions import NodeDefinition
from kailash_nb.notebook.fingerprint import combine, global_reads, rebound
from kailash_nb.notebook.refs import ConnectionSpec
from kailash_nb.workflow.builder import WorkflowBuilder
from kailash_nb.workflow.connection import Connection
from kailash_nb.workflow.graph import Workflow
from kailash_nb.workflow.validation import check_connections

__all__ = ["WiringState"]


class WiringState:
    """Connections, dangling inputs and shape keys of a session's definitions.

    Attributes:
        wiring: every connection and dangling input, as ``compose`` makes them.
        shapes: each node's key from its definition and its upstream, without run
            parameters (what ``run_plan.shape_keys`` computes).
    """

    def __init__(self) -> None:
        self._wiring: Wiring | None = Wiring([], [])
        self._order: list[str] = []
        self._position: dict[str, int] = {}
        self.shapes: dict[str, str] = {}
        self._into: dict[str, tuple[list[Edge], list[tuple[str, str, str]]]] = {}
        self._reads: dict[str, set[str]] = {}  # node -> names it may take inputs from
        self._readers: dict[str, set[str]] = {}  # name -> nodes that may read it
        self._own: dict[str, str] = {}
        self._reads_globals: dict[str, list[tuple[dict[str, Any], str, Any]]] = {}
        self._instances: dict[str, tuple[tuple[Any, ...], Node]] = {}
        # The last workflow built of each part (``None``: the whole), for reuse.
        self._built: dict[frozenset[str] | None, tuple[Wiring, str, Workflow]] = {}

    # -- updating ---------------------------------------------------------------------
    def rebuild(
        self, definitions: Mapping[str, NodeDefinition], manual: Sequence[ConnectionSpec]
    ) -> None:
        """Recompute everything from ``definitions`` and ``manual``."""
        self._into = {
            node_id: incoming_edges(definition, definitions, manual)
            for node_id, definition in definitions.items()
        }
        self._reads, self._readers = {}, {}
        for node_id, definition in definitions.items():
            self._index(node_id, definition, manual)
        self._order, self._wiring, self._built = list(definitions), None, {}
        self._position = {node_id: index for index, node_id in enumerate(self._order)}
        memo: dict[int, str] = {}
        self._own = {node_id: d.digest(memo) for node_id, d in definitions.items()}
        self._reads_globals = {n: global_reads(d.function) for n, d in definitions.items()}
        self.shapes = chain_keys(self._own, self.wiring.incoming())
        self._instances = {n: v for n, v in self._instances.items() if n in definitions}

    def define(self, node_id: str, definitions: Mapping[str, NodeDefinition]) -> set[str]:
        """``definitions[node_id]`` was added or replaced (and ``rewire`` called):
        recompute the shape keys of it, of the nodes reading a global that a cell has
        rebound since, and of their downstream; returns those nodes."""
        roots = {node_id} | {
            other
            for other, reads in self._reads_globals.items()
            if reads and other != node_id and rebound(reads)
        }
        affected = set(roots)
        for root in roots:
            affected |= self.downstream(root)
        for target in affected:  # reused digests are checked, so this is cheap
            self._own[target] = definitions[target].digest({})
            self._reads_globals[target] = global_reads(definitions[target].function)
        graph = {
            target: {source for source, _, _, _ in self._into[target][0] if source in affected}
            for target in affected
        }
        for target in TopologicalSorter(graph).static_order():
            feeds = sorted(
                (name, source, output, self.shapes[source])
                for source, output, _, name in self._into[target][0]
                if source in self.shapes
            )
            self.shapes[target] = combine(self._own[target], *("|".join(feed) for feed in feeds))
        return affected

    def refresh(self, shapes: Mapping[str, str]) -> None:
        """Take the shape keys a run computed afresh (a global a node reads may have
        changed since the node was defined)."""
        self.shapes.update(shapes)

    def rewire(
        self,
        node_id: str,
        definitions: Mapping[str, NodeDefinition],
        manual: Sequence[ConnectionSpec],
    ) -> None:
        """Recompute the connections into ``node_id`` and into the nodes reading it."""
        self._unindex(node_id)
        self._index(node_id, definitions[node_id], manual)
        for target in {node_id} | self._readers.get(node_id, set()):
            self._into[target] = incoming_edges(definitions[target], definitions, manual)
        if node_id not in self._position:
            self._position[node_id] = len(self._order)
            self._order.append(node_id)
        self._wiring, self._built = None, {}

    # -- reading ----------------------------------------------------------------------
    @property
    def wiring(self) -> Wiring:
        """Every connection and dangling input, as ``compose`` makes them."""
        if self._wiring is None:
            connections: list[Edge] = []
            dangling: list[tuple[str, str, str]] = []
            for node_id in self._order:
                edges, missing = self._into[node_id]
                connections += edges
                dangling += missing
            self._wiring = Wiring(connections, dangling)
        return self._wiring

    def touching(self, node_id: str) -> list[Edge]:
        """The connections into or out of ``node_id``, in ``wiring`` order."""
        targets = {node_id} | self._readers.get(node_id, set())
        return [
            edge
            for target in sorted(targets, key=self._position.__getitem__)
            for edge in self._into[target][0]
            if node_id in (edge[0], edge[2])
        ]

    def downstream(self, node_id: str) -> set[str]:
        """Every node that needs ``node_id``, directly or not."""
        found: set[str] = set()
        pending = [node_id]
        while pending:
            source = pending.pop()
            for target in self._readers.get(source, ()):
                if target not in found and any(edge[0] == source for edge in self._into[target][0]):
                    found.add(target)
                    pending.append(target)
        return found

    def check_around(
        self, node_id: str, definitions: Mapping[str, NodeDefinition], name: str
    ) -> bool:
        """Build ``node_id`` with its neighbours and the connections touching it (the
        only part of the workflow a new definition can make invalid); False if the
        connections now form a cycle (a full build then reports it).

        Raises:
            KailashException: the node or a connection touching it would not build.
        """
        edges = self.touching(node_id)
        members = {node_id} | {edge[0] for edge in edges} | {edge[2] for edge in edges}
        chosen = {m: definitions[m] for m in sorted(members, key=self._position.__getitem__)}
        # The same checks, in the same order, as composing and building everything.
        builder = WorkflowBuilder()
        for member, definition in chosen.items():
            template = definition.builder_node()
            if definition.function is not None:
                template = self._instance(member, definition)
            builder.add_node(template, member, definition.config)
        for edge in edges:
            builder.add_connection(*edge)
        nodes = {member: self._node(member, definition) for member, definition in chosen.items()}
        check_connections(nodes, [Connection(*edge) for edge in edges])
        return node_id not in self.downstream(node_id)

    def build(
        self,
        definitions: Mapping[str, NodeDefinition],
        name: str,
        include: Collection[str] | None = None,
    ) -> Workflow:
        """The workflow of ``definitions`` (only ``include``, if given), as
        ``compose(...).builder.build(name=name)`` makes it, reusing the instances of
        function nodes whose function is unchanged. When every node is a function node
        and nothing changed since the last build of the same part, that workflow is
        returned again (it is not changed by running it).

        Raises:
            KailashException: a node or connection that does not build.
        """
        chosen = {
            node_id: definition
            for node_id, definition in definitions.items()
            if include is None or node_id in include
        }
        ordered = {
            node_id: self._node(node_id, definition) for node_id, definition in chosen.items()
        }
        wiring = self.wiring
        part = None if include is None else frozenset(include)
        reusable = all(definition.function is not None for definition in chosen.values())
        last = self._built.get(part)
        if (
            reusable
            and last is not None
            and last[0] is wiring
            and last[1] == name
            and len(last[2].nodes) == len(ordered)
            and all(last[2].nodes.get(n) is node for n, node in ordered.items())
        ):
            return last[2]
        connections = [
            Connection(*edge)
            for edge in wiring.connections
            if edge[0] in ordered and edge[2] in ordered
        ]
        workflow = Workflow(
            workflow_id=str(uuid.uuid4()),
            name=name,
            nodes=ordered,
            connections=connections,
        )
        if reusable:
            self._built[part] = (wiring, name, workflow)
        return workflow

    # -- internals --------------------------------------------------------------------
    def _node(self, node_id: str, definition: NodeDefinition) -> Node:
        """A node instance: a function node's is reused while its function is the same;
        a typed node is instantiated every time (it may hold resources)."""
        if definition.function is not None:
            return self._instance(node_id, definition)
        builder = WorkflowBuilder()
        builder.add_node(definition.builder_node(), node_id, definition.config)
        return builder.workflow_arguments()["nodes"][node_id]

    def _instance(self, node_id: str, definition: NodeDefinition) -> Node:
        function = definition.function
        key = (
            definition,
            getattr(function, "__code__", None),
            getattr(function, "__defaults__", None),
            getattr(function, "__kwdefaults__", None),
        )
        cached = self._instances.get(node_id)
        if cached is not None and all(a is b for a, b in zip(cached[0], key, strict=True)):
            return cached[1]
        builder = WorkflowBuilder()
        builder.add_node(definition.builder_node(), node_id, definition.config)
        node = builder.workflow_arguments()["nodes"][node_id]
        self._instances[node_id] = (key, node)
        return node

    def _index(
        self, node_id: str, definition: NodeDefinition, manual: Sequence[ConnectionSpec]
    ) -> None:
        reads = {reference.node_id for reference in definition.inputs.values()}
        reads.update(definition.parameter_names())
        reads.update(spec.source.node_id for spec in manual if spec.target_node == node_id)
        self._reads[node_id] = reads
        for name in reads:
            self._readers.setdefault(name, set()).add(node_id)

    def _unindex(self, node_id: str) -> None:
        for name in self._reads.pop(node_id, ()):
            readers = self._readers.get(name)
            if readers is not None:
                readers.discard(node_id)
