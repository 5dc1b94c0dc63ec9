"""``AsyncLocalRuntime``: the async-first front end, with ``LocalRuntime``'s semantics."""

from __future__ import annotations

from typing import Any

from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.workflow.graph import Workflow

__all__ = ["AsyncLocalRuntime"]


class AsyncLocalRuntime(LocalRuntime):
    """Run workflows from async code; the data flow is exactly ``LocalRuntime``'s.

    Takes the same options as ``LocalRuntime``. ``execute_workflow_async(workflow,
    inputs)`` is the Kailash spelling of ``execute_async(workflow, parameters)``;
    both return ``(results, run_id)``.

    Usage::

        async with AsyncLocalRuntime(max_concurrent_workflows=50) as runtime:
            results, run_id = await runtime.execute_workflow_async(workflow, {"x": 1})
    """

    async def execute_workflow_async(
        self, workflow: Workflow, inputs: dict[str, Any] | None = None
    ) -> tuple[dict[str, dict[str, Any]], str]:
        """Run ``workflow`` with ``inputs`` (same format as ``parameters``)."""
        return await self.execute_async(workflow, inputs)
