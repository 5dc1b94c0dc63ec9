"""``WorkflowDraft``: the nodes, connections and cycles of a workflow being assembled.

A draft is mutable and cheap: nothing is instantiated until ``workflow_arguments``
turns it into what a ``Workflow`` is constructed from. ``WorkflowBuilder`` is a draft
that builds; ``Workflow.from_dict`` fills one from a definition.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kailash_nb import sdk_exceptions as errors
from kailash_nb.nodes.node import Node
from kailash_nb.nodes.registry import NodeRegistry
from kailash_nb.sdk_exceptions import WorkflowValidationError, close_matches
from kailash_nb.workflow.connection import Connection, NodeOptions
from kailash_nb.workflow.cycles import CycleBuilder, CycleSpec

__all__ = ["WorkflowDraft"]

_Draft = TypeVar("_Draft", bound="WorkflowDraft")


@dataclass
class _NodeSpec:
    node_type: str | type[Node]
    config: dict[str, Any]
    options: NodeOptions | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    instance: Node | None = None  # the instance it was given as, if any

    @property
    def type_label(self) -> str:
        return self.node_type if isinstance(self.node_type, str) else self.node_type.type_name()


class WorkflowDraft:
    """Mutable description of a workflow: nodes by id, connections and cycles.

    Connection mistakes that can be seen at once (unknown node, self-connection,
    duplicate) raise at once; everything that needs the node classes (unknown type,
    bad config) raises in ``workflow_arguments``.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, _NodeSpec] = {}
        self._connections: list[Connection] = []
        self._connection_set: set[Connection] = set()
        self._cycles: list[CycleSpec] = []
        self._auto_ids: dict[str, int] = {}

    # -- nodes ----------------------------------------------------------------------
    def add_node(
        self,
        node_type: str | type[Node] | Node | None = None,
        node_id: str | dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        **config_kwargs: Any,
    ) -> str:
        """Add a node and return its id.

        Args:
            node_type: registered type name, ``Node`` subclass, or ``Node`` instance.
            node_id: the id; generated (``<type>_<n>``) when omitted. A dict here is
                taken as ``config`` (``add_node("Type", {...})``).
            config: the node's configuration; keyword arguments are merged into it.

        Raises:
            WorkflowValidationError: duplicate or invalid id, a bad node type, or
                arguments in an order ``add_node`` does not take.
        """
        if node_type is None:
            raise WorkflowValidationError(
                "node_type is required when using keyword arguments: "
                "add_node(node_type='NodeType', node_id='id', config={...})"
            )
        if isinstance(node_id, dict) and config is None:
            node_id, config = None, node_id
        _check_signature(node_type, node_id, config)
        merged = {**(config or {}), **config_kwargs}
        metadata: dict[str, Any] = {}
        instance = None
        if isinstance(node_type, Node):
            instance = node_type
            metadata = dict(node_type.metadata)
            merged = {**node_type.config, **merged}
            node_type = type(node_type)
        spec = _NodeSpec(node_type, merged, metadata=metadata, instance=instance)
        node_id = self._new_id(spec.type_label) if node_id is None else node_id
        self._check_new_id(node_id)
        self._nodes[node_id] = spec
        return node_id

    def replace_node(
        self, node_id: str, node_type: str | type[Node] | Node, config: dict[str, Any] | None = None
    ) -> str:
        """Swap the node ``node_id`` for a new definition, keeping its connections."""
        self._require_node(node_id, "replace")
        options = self._nodes[node_id].options
        del self._nodes[node_id]
        self.add_node(node_type, node_id, config)
        self._nodes[node_id].options = options
        return node_id

    def remove_node(self, node_id: str) -> None:
        """Remove ``node_id`` with its connections and the cycles through it."""
        self._require_node(node_id, "remove")
        del self._nodes[node_id]
        self._connections = [
            c for c in self._connections if node_id not in (c.source_node, c.target_node)
        ]
        self._connection_set = set(self._connections)
        self._cycles = [
            cycle
            for cycle in self._cycles
            if all(node_id not in (c.source_node, c.target_node) for c in cycle.connections)
        ]

    def set_node_options(
        self: _Draft,
        node_id: str,
        *,
        timeout: float | None = None,
        retries: int | None = None,
        retry_delay: float = 0.1,
    ) -> _Draft:
        """Set how the engine runs ``node_id``: per-attempt ``timeout`` and ``retries``.

        Raises:
            WorkflowValidationError: unknown node or invalid values.
        """
        self._require_node(node_id, "configure")
        try:
            self._nodes[node_id].options = NodeOptions(timeout, retries, retry_delay)
        except ValueError as exc:
            raise WorkflowValidationError(f"node {node_id!r}: {exc}") from None
        return self

    @property
    def node_ids(self) -> list[str]:
        """Ids of the nodes added so far, in insertion order."""
        return list(self._nodes)

    # -- connections ----------------------------------------------------------------
    def add_connection(
        self: _Draft, from_node: str, from_output: str, to_node: str, to_input: str
    ) -> _Draft:
        """Connect ``from_node``'s output ``from_output`` (dotted paths allowed) to
        ``to_node``'s input ``to_input``; returns the builder for chaining.

        Raises:
            ConnectionError: unknown node, self-connection, or exact duplicate.
        """
        for value, role in ((from_output, "output"), (to_input, "input")):
            if not isinstance(value, str) or not value:
                raise errors.ConnectionError(
                    f"connection {from_node}.{from_output} -> {to_node}.{to_input}: the {role} "
                    "name must be a non-empty string"
                )
        connection = Connection(from_node, from_output, to_node, to_input)
        for node_id, role in ((from_node, "source"), (to_node, "target")):
            if node_id not in self._nodes:
                raise errors.UnknownNodeError(
                    f"{role.capitalize()} node {node_id!r} not found in workflow: connection "
                    f"{connection} names a node that has not been added"
                    f"{close_matches(str(node_id), self._nodes)}; nodes so far: {self.node_ids}"
                )
        if from_node == to_node:
            raise errors.ConnectionError(
                f"Cannot connect node {from_node!r} to itself ({connection}): a node cannot "
                "feed itself; use create_cycle(id).connect(node, node, mapping) for a loop"
            )
        if connection in self._connection_set:
            raise errors.ConnectionError(f"connection {connection} was already added")
        self._connections.append(connection)
        self._connection_set.add(connection)
        return self

    def connect(
        self: _Draft,
        from_node: str,
        to_node: str,
        mapping: dict[str, str] | None = None,
        from_output: str | None = None,
        to_input: str | None = None,
    ) -> _Draft:
        """Connect two nodes by ``mapping`` (``{output: input}``), or one output to one
        input; with neither, ``data`` to ``data`` (as Kailash does)."""
        if mapping is None:
            mapping = {from_output or "data": to_input or "data"}
        if not isinstance(mapping, dict) or not mapping:
            raise errors.ConnectionError(
                f"connect({from_node!r}, {to_node!r}): mapping must be a non-empty "
                "{output: input} dict"
            )
        for output, target_input in mapping.items():
            self.add_connection(from_node, output, to_node, target_input)
        return self

    def remove_connection(
        self: _Draft, from_node: str, from_output: str, to_node: str, to_input: str
    ) -> _Draft:
        """Remove a connection added earlier.

        Raises:
            ConnectionError: there is no such connection.
        """
        connection = Connection(from_node, from_output, to_node, to_input)
        if connection not in self._connection_set:
            raise errors.ConnectionError(f"there is no connection {connection}")
        self._connections.remove(connection)
        self._connection_set.discard(connection)
        return self

    @property
    def connections(self) -> list[Connection]:
        """The ordinary (non-cycle) connections added so far."""
        return list(self._connections)

    def create_cycle(self, cycle_id: str) -> CycleBuilder:
        """Declare a cycle; see ``kailash_nb.workflow.cycles``."""
        return CycleBuilder(cycle_id, self._add_cycle)

    # -- what a Workflow is made of ------------------------------------------------------
    def workflow_arguments(
        self,
        workflow_id: str | None = None,
        *,
        name: str | None = None,
        description: str = "",
        version: str = "1.0.0",
        author: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Instantiate every node and return the keyword arguments of ``Workflow(...)``.

        Raises:
            WorkflowValidationError: unknown node type (close matches listed).
            NodeConfigurationError: a node's config does not fit its parameters.
        """
        workflow_id = workflow_id or str(uuid.uuid4())
        nodes: dict[str, Node] = {}
        for node_id, spec in self._nodes.items():
            node_class = self._resolve(node_id, spec.node_type)
            node = node_class(**spec.metadata, **spec.config, _node_id=node_id)
            if "id" not in vars(node):  # its __init__ did not call Node.__init__
                node.id = node_id
            nodes[node_id] = node
        return {
            "workflow_id": workflow_id,
            "name": name or f"Workflow-{workflow_id[:8]}",
            "nodes": nodes,
            "connections": self._connections,
            "cycles": self._cycles,
            "node_options": {
                node_id: spec.options for node_id, spec in self._nodes.items() if spec.options
            },
            "description": description,
            "version": version,
            "author": author,
            "metadata": metadata or {},
        }

    # -- internals ----------------------------------------------------------------------
    @staticmethod
    def _resolve(node_id: str, node_type: str | type[Node]) -> type[Node]:
        if not isinstance(node_type, str):
            return node_type
        try:
            return NodeRegistry.get(node_type)
        except errors.NodeConfigurationError as exc:
            raise WorkflowValidationError(
                f"Failed to add node {node_id!r} to workflow: {exc}"
            ) from None

    def _new_id(self, type_label: str) -> str:
        stem = type_label.lower()
        while True:
            count = self._auto_ids.get(stem, 0) + 1
            self._auto_ids[stem] = count
            candidate = f"{stem}_{count}"
            if candidate not in self._nodes:
                return candidate

    def _check_new_id(self, node_id: Any) -> None:
        if not isinstance(node_id, str) or not node_id or len(node_id) > 128:
            raise WorkflowValidationError(
                f"node id {node_id!r} must be a non-empty string of at most 128 characters"
            )
        if "." in node_id or node_id.startswith("__") or not node_id.isprintable():
            raise WorkflowValidationError(
                f"node id {node_id!r} may not contain '.', start with '__' or hold control "
                "characters"
            )
        if node_id in self._nodes:
            raise WorkflowValidationError(
                f"Node ID {node_id!r} already exists in workflow; use "
                f"replace_node({node_id!r}, ...) to change it"
            )

    def _require_node(self, node_id: str, action: str) -> None:
        if node_id not in self._nodes:
            raise WorkflowValidationError(
                f"Node {node_id!r} not found in workflow: cannot {action} it, it has not "
                f"been added{close_matches(str(node_id), self._nodes)}"
            )

    def _add_cycle(self, cycle: CycleSpec) -> None:
        for connection in cycle.connections:
            for node_id in (connection.source_node, connection.target_node):
                if node_id not in self._nodes:
                    raise errors.CycleConfigurationError(
                        f"cycle {cycle.cycle_id!r}: edge {connection} names node {node_id!r}, "
                        f"which has not been added{close_matches(node_id, self._nodes)}"
                    )
        if any(existing.cycle_id == cycle.cycle_id for existing in self._cycles):
            raise errors.CycleConfigurationError(f"cycle {cycle.cycle_id!r} was already declared")
        self._cycles.append(cycle)


def _check_signature(node_type: Any, node_id: Any, config: Any) -> None:
    """Refuse argument orders ``add_node`` does not take, naming the one to write."""
    if isinstance(node_type, str) and isinstance(node_id, type):
        name = getattr(node_id, "__name__", str(node_id))
        raise WorkflowValidationError(
            f"Legacy fluent API add_node({node_type!r}, {name}) is not taken (the form "
            f"Kailash removed in v1.0.0): the type comes first; write add_node({name!r}, "
            f"{node_type!r}, config)"
        )
    valid_type = isinstance(node_type, (str, Node)) or (
        isinstance(node_type, type) and issubclass(node_type, Node)
    )
    if config is not None and not isinstance(config, dict):
        raise WorkflowValidationError(
            f"Invalid add_node signature: the config of node {node_id!r} must be a dict, got "
            f"{type(config).__name__}; write add_node('NodeType', 'node_id', {{'param': value}})"
        )
    if not valid_type:
        raise WorkflowValidationError(
            f"Invalid node type: {node_type!r}. Expected a registered type name (str), a "
            "Node subclass or a Node instance"
        )
