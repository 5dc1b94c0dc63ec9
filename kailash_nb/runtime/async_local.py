"""``AsyncLocalRuntime``: the async-first front end, with ``LocalRuntime``'s semantics."""

from __future__ import annotations

from typing import Any

from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.workflow.graph import Workflow

__all__ = ["AsyncLocalRuntime"]


class AsyncLocalRuntime(LocalRuntime):
    """Run workflows from async code; the data flow is exactly ``LocalRuntime``'s.

    Takes the same options as ``LocalRuntime``, and Kailash's ``thread_pool_size``
    as another name for ``max_worker_threads`` (the threads that run synchronous
    nodes). ``execute_workflow_async(workflow, inputs)`` is the Kailash spelling of
    ``execute_async(workflow, parameters)``; both return ``(results, run_id)``.

    Usage::

        async with AsyncLocalRuntime(max_concurrent_workflows=50) as runtime:
            results, run_id = await runtime.execute_workflow_async(workflow, {"x": 1})
    """

    def __init__(self, *, thread_pool_size: int | None = None, **options: Any) -> None:
        if thread_pool_size is not None:
            if "max_worker_threads" in options:
                raise TypeError(
                    "AsyncLocalRuntime takes thread_pool_size or max_worker_threads (the same "
                    "setting), not both"
                )
            options["max_worker_threads"] = thread_pool_size
        super().__init__(**options)

    async def execute_workflow_async(
        self, workflow: Workflow, inputs: dict[str, Any] | None = None
    ) -> tuple[dict[str, dict[str, Any]], str]:
        """Run ``workflow`` with ``inputs`` (same format as ``parameters``)."""
        return await self.execute_async(workflow, inputs)
