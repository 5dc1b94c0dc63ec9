"""``WorkflowBuilder``: assemble a workflow step by step, then ``build()`` it.

The builder is mutable and cheap (nothing is instantiated until ``build``), which
suits notebooks where cells add and replace nodes one at a time::

    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "load", {"code": "result = [1, 2, 3]"})
    builder.add_node("PythonCodeNode", "total", {"code": "result = sum(rows)"})
    builder.add_connection("load", "result", "total", "rows")
    results, run_id = LocalRuntime().execute(builder.build())
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kailash_nb.nodes.node import Node
from kailash_nb.sdk_exceptions import WorkflowValidationError
from kailash_nb.workflow.connection import WORKFLOW_INPUT, Connection
from kailash_nb.workflow.draft import WorkflowDraft, _NodeSpec
from kailash_nb.workflow.graph import Workflow
from kailash_nb.workflow.serialization import fill_draft

__all__ = ["WorkflowBuilder"]

# Builder metadata that shapes run parameters; left out of the workflow when empty.
_INPUT_SETTINGS = frozenset({"workflow_parameters", "parameter_mappings", "_workflow_inputs"})


class WorkflowBuilder(WorkflowDraft):
    """Mutable description of a workflow; ``build()`` returns a validated ``Workflow``.

    Nodes are given by registered type name, by ``Node`` subclass or by instance
    (its class and config are reused; ``build`` makes a fresh instance). Connection
    mistakes that can be seen at once (unknown node, self-connection, duplicate)
    raise at once; everything that needs the node classes (unknown type, bad config,
    unknown input, cycles) raises at ``build()``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._metadata: dict[str, Any] = {}
        self._input_connections: list[Connection] = []

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> WorkflowBuilder:
        """A builder holding the nodes, connections and cycles of definition ``config``.

        Reads Kailash's layouts (``nodes`` as a list of ``{id, type, parameters}`` or a
        dict of ``{type, parameters}``; connections as ``from_node``/``from_output``/
        ``to_node``/``to_input`` or the short ``from``/``to``, defaulting to output
        ``result`` and input ``input``) and kailash_nb's own ``Workflow.to_dict()``
        layout. Every other top-level key (``name``, ``description``, ``version``,
        ``author``, ``workflow_id``, ``metadata``, anything else) becomes the builder's
        metadata, used by ``build()``.

        Raises:
            WorkflowValidationError: malformed definition (a node without id or type, a
                connection without its nodes, ...).
        """
        builder = fill_draft(cls(), config)
        builder._metadata = {
            key: value for key, value in config.items() if key not in ("nodes", "connections")
        }
        return builder

    # -- Kailash's builder API ---------------------------------------------------------
    @property
    def nodes(self) -> dict[str, dict[str, Any]]:
        """The nodes added so far as Kailash lists them: ``{node_id: {"type": name,
        "config": config}}`` (plus ``"class"`` for a node given by class and
        ``"instance"`` for one given by instance). Each ``config`` is the builder's own
        dict: changing it changes the node. Setting ``nodes[node_id] = {"type": ...,
        "config": {...}}`` adds or replaces a node; deleting one removes it."""
        return _BuilderNodes(self)

    @property
    def connections(self) -> list[Connection]:
        """The ordinary (non-cycle) connections added so far, then the workflow-input
        connections ``add_input_connection`` added (source ``WORKFLOW_INPUT``)."""
        return [*self._connections, *self._input_connections]

    @property
    def workflow_parameters(self) -> dict[str, Any]:
        """The defaults ``set_workflow_parameters`` collected (a live dict, as in Kailash)."""
        return self._metadata.setdefault("workflow_parameters", {})

    @property
    def parameter_mappings(self) -> dict[str, dict[str, str]]:
        """The mappings ``add_parameter_mapping`` collected (a live dict, as in Kailash)."""
        return self._metadata.setdefault("parameter_mappings", {})

    def add_node_type(
        self, node_type: str, node_id: str | None = None, config: dict[str, Any] | None = None
    ) -> str:
        """Add a node by registered type name; ``add_node`` with a string type."""
        if not isinstance(node_type, str):
            raise WorkflowValidationError(
                f"add_node_type needs a registered type name, got {node_type!r}; use add_node "
                "for classes and instances"
            )
        return self.add_node(node_type, node_id, config)

    def add_node_instance(self, node_instance: Node, node_id: str | None = None) -> str:
        """Add a configured node instance (its class and config are reused)."""
        if not isinstance(node_instance, Node):
            raise WorkflowValidationError(
                f"add_node_instance needs a Node instance, got {type(node_instance).__name__}"
            )
        return self.add_node(node_instance, node_id)

    def update_node(self, node_id: str, config_updates: dict[str, Any]) -> WorkflowBuilder:
        """Merge ``config_updates`` into the config of node ``node_id``; returns the builder.

        Raises:
            WorkflowValidationError: unknown node, or updates that are not a dict.
        """
        self._require_node(node_id, "update")
        if not isinstance(config_updates, dict):
            raise WorkflowValidationError(
                f"update_node({node_id!r}, ...): the updates must be a dict, got "
                f"{type(config_updates).__name__}"
            )
        self._nodes[node_id].config.update(config_updates)
        return self

    def set_workflow_parameters(self, **parameters: Any) -> WorkflowBuilder:
        """Default workflow-level parameters for every run of the built workflow (run
        parameters override them); kept in the workflow's metadata as
        ``workflow_parameters``. Returns the builder."""
        self._metadata.setdefault("workflow_parameters", {}).update(parameters)
        return self

    def add_workflow_inputs(
        self, input_node_id: str, input_mappings: dict[str, str]
    ) -> WorkflowBuilder:
        """Deliver workflow-level run parameters to inputs of ``input_node_id``:
        ``{parameter_name: input_name}``, kept in metadata as ``_workflow_inputs``.

        Raises:
            WorkflowValidationError: unknown node or a mapping that is not a dict.
        """
        return self._map_inputs("_workflow_inputs", input_node_id, input_mappings)

    def add_input_connection(
        self, to_node: str, to_input: str, from_workflow_param: str
    ) -> WorkflowBuilder:
        """Deliver the workflow-level run parameter ``from_workflow_param`` to input
        ``to_input`` of ``to_node`` (``add_workflow_inputs(to_node,
        {from_workflow_param: to_input})``). ``connections`` lists it as a connection
        from ``WORKFLOW_INPUT`` (``"__workflow_input__"``), as Kailash does.

        Raises:
            WorkflowValidationError: unknown node, or names that are not strings.
        """
        self._map_inputs("_workflow_inputs", to_node, {from_workflow_param: to_input})
        connection = Connection(WORKFLOW_INPUT, from_workflow_param, to_node, to_input)
        if connection not in self._input_connections:
            self._input_connections.append(connection)
        return self

    def remove_node(self, node_id: str) -> None:
        """Remove ``node_id`` with its connections (workflow-input ones included) and
        the cycles through it."""
        super().remove_node(node_id)
        self._input_connections = [c for c in self._input_connections if c.target_node != node_id]

    def add_parameter_mapping(self, node_id: str, mappings: dict[str, str]) -> WorkflowBuilder:
        """Like ``add_workflow_inputs`` (kept in metadata as ``parameter_mappings``)."""
        return self._map_inputs("parameter_mappings", node_id, mappings)

    def clear(self) -> WorkflowBuilder:
        """Remove every node, connection, cycle and metadata entry; returns the builder."""
        WorkflowDraft.__init__(self)
        self._metadata = {}
        self._input_connections = []
        return self

    def _map_inputs(self, key: str, node_id: str, mappings: dict[str, str]) -> WorkflowBuilder:
        self._require_node(node_id, "map inputs of")
        if not isinstance(mappings, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in mappings.items()
        ):
            raise WorkflowValidationError(
                f"input mappings of node {node_id!r} must be a dict of parameter name -> "
                f"input name, got {mappings!r:.80}"
            )
        self._metadata.setdefault(key, {}).setdefault(node_id, {}).update(mappings)
        return self

    def set_metadata(self, **metadata: Any) -> WorkflowBuilder:
        """Add workflow metadata used by ``build()`` (``name``, ``description``,
        ``version``, ``author`` and free keys); returns the builder."""
        self._metadata.update(metadata)
        return self

    def build(self, workflow_id: str | None = None, **settings: Any) -> Workflow:
        """Instantiate every node and return a validated ``Workflow``.

        ``settings`` (overriding ``set_metadata``/``from_dict`` metadata) may hold
        ``name``, ``description``, ``version``, ``author`` and ``metadata`` (a dict);
        other keys are added to the workflow's metadata.

        Raises:
            WorkflowValidationError: unknown node type (close matches listed),
                unmarked cycle, or connection to an unknown input.
            NodeConfigurationError: a node's config does not fit its parameters.
        """
        merged = {
            key: value
            for key, value in {**self._metadata, **settings}.items()
            if not (key in _INPUT_SETTINGS and not value)
        }
        nested = merged.pop("metadata", None) or {}
        if not isinstance(nested, dict):
            raise WorkflowValidationError(f"metadata must be a dict, got {type(nested).__name__}")
        workflow_id = workflow_id or merged.pop("workflow_id", None)
        merged.pop("workflow_id", None)
        name = merged.pop("name", None)
        description = merged.pop("description", "")
        version = merged.pop("version", "1.0.0")
        author = merged.pop("author", "")
        return Workflow(
            **self.workflow_arguments(
                None if workflow_id is None else str(workflow_id),
                name=name,
                description=str(description or ""),
                version=str(version or "1.0.0"),
                author=str(author or ""),
                metadata={**nested, **merged},
            )
        )


class _BuilderNodes(dict[str, dict[str, Any]]):
    """``WorkflowBuilder.nodes``: Kailash's dict of node entries; writes go to the builder.

    A ``dict`` (Kailash code checks ``isinstance(builder.nodes, dict)``) filled with the
    entries at the time it was read; setting or deleting a key adds, replaces or
    removes the builder's node as well.
    """

    def __init__(self, builder: WorkflowBuilder) -> None:
        super().__init__((node_id, _entry(spec)) for node_id, spec in builder._nodes.items())
        self._builder = builder

    def __setitem__(self, node_id: str, entry: dict[str, Any]) -> None:
        if not isinstance(entry, Mapping) or "type" not in entry:
            raise WorkflowValidationError(
                f"builder.nodes[{node_id!r}] must be a dict with 'type' (and optionally "
                f"'config'), got {entry!r:.80}; or use add_node"
            )
        node_type = entry.get("class") or entry["type"]
        if node_id in self._builder._nodes:
            self._builder.replace_node(node_id, node_type, entry.get("config"))
        else:
            self._builder.add_node(node_type, node_id, entry.get("config"))
        super().__setitem__(node_id, _entry(self._builder._nodes[node_id]))

    def __delitem__(self, node_id: str) -> None:
        super().__delitem__(node_id)
        self._builder.remove_node(node_id)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Set every given entry, as ``self[node_id] = entry`` does."""
        for node_id, entry in dict(*args, **kwargs).items():
            self[node_id] = entry


def _entry(spec: _NodeSpec) -> dict[str, Any]:
    """Kailash's entry for one node: ``type``, ``config`` (live), ``class``, ``instance``."""
    entry: dict[str, Any] = {"type": spec.type_label, "config": spec.config}
    if not isinstance(spec.node_type, str):
        entry["class"] = spec.node_type
    if spec.instance is not None:
        entry["instance"] = spec.instance
    return entry
