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

from kailash_nb.sdk_exceptions import WorkflowValidationError
from kailash_nb.workflow.draft import WorkflowDraft
from kailash_nb.workflow.graph import Workflow
from kailash_nb.workflow.serialization import fill_draft

__all__ = ["WorkflowBuilder"]


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
        merged = {**self._metadata, **settings}
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
