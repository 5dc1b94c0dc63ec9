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

from typing import Any

from kailash_nb.workflow.draft import WorkflowDraft
from kailash_nb.workflow.graph import Workflow

__all__ = ["WorkflowBuilder"]


class WorkflowBuilder(WorkflowDraft):
    """Mutable description of a workflow; ``build()`` returns a validated ``Workflow``.

    Nodes are given by registered type name, by ``Node`` subclass or by instance
    (its class and config are reused; ``build`` makes a fresh instance). Connection
    mistakes that can be seen at once (unknown node, self-connection, duplicate)
    raise at once; everything that needs the node classes (unknown type, bad config,
    unknown input, cycles) raises at ``build()``.
    """

    def build(
        self,
        workflow_id: str | None = None,
        *,
        name: str | None = None,
        description: str = "",
        version: str = "1.0.0",
        author: str = "",
        **metadata: Any,
    ) -> Workflow:
        """Instantiate every node and return a validated ``Workflow``.

        Raises:
            WorkflowValidationError: unknown node type (close matches listed),
                unmarked cycle, or connection to an unknown input.
            NodeConfigurationError: a node's config does not fit its parameters.
        """
        return Workflow(
            **self.workflow_arguments(
                workflow_id,
                name=name,
                description=description,
                version=version,
                author=author,
                metadata=metadata,
            )
        )
