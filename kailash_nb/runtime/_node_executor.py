"""Where the engine's nodes execute: the strategy ``WorkflowRun`` hands each node to.

The engine decides what runs when (scheduling, inputs, skips, failures, retries,
cycles); a :class:`NodeExecutor` only executes one attempt of one node and says how
to read the outputs it produced. :class:`InProcessExecutor` (the default) runs nodes in
the engine's process: async nodes on its loop, synchronous ones inline or in its
worker threads. ``kailash_nb.runtime.dask`` runs them on a dask.distributed cluster,
where a node's outputs stay on the worker that produced them and the run's results
hold handles to them until the run ends.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from kailash_nb.sdk_exceptions import NodeExecutionError
from kailash_nb.workflow.connection import read_output

if TYPE_CHECKING:
    from kailash_nb.workflow.plan import CycleUnit

#: The engine's ``WorkflowRun`` (not imported: the engine imports this module).
WorkflowRun = Any

__all__ = ["IN_PROCESS", "InProcessExecutor", "NodeExecutor", "timed_out"]


class NodeExecutor:
    """Executes node attempts for the engine; subclasses override ``attempt``.

    The default hooks suit outputs that are plain dicts in the engine's process.
    """

    #: The engine may run a sequential workflow in the caller's thread, no loop.
    allows_inline = True

    #: ``read_output(outputs, connection)``: the value ``connection`` reads from
    #: ``outputs`` (what ``attempt`` returned): ``MISSING`` when absent, ``None`` when the
    #: branch carried nothing, else something the engine may pass to another node's
    #: ``attempt`` as an input; raises ``ConnectionError`` when the connection's path
    #: walks into something not a dict. The plain function here (called per connection).
    read_output = staticmethod(read_output)

    async def attempt(
        self, run: WorkflowRun, node_id: str, kwargs: dict[str, Any], timeout: float | None
    ) -> Any:
        """Execute one attempt of ``node_id`` with its resolved inputs ``kwargs`` and
        return its outputs; raise what the node raised (a timeout as
        ``NodeExecutionError``)."""
        raise NotImplementedError

    async def outputs_of(self, run: WorkflowRun, node_id: str) -> Any:
        """``node_id``'s outputs as a plain dict, for the caller's ``on_output``; what
        ``run.results`` holds is left as it is."""
        return run.results[node_id]

    async def fetch(self, run: WorkflowRun, node_ids: Any) -> None:
        """Make the results of ``node_ids`` plain dicts in ``run.results`` (the engine
        is about to read their values: a cycle's convergence condition)."""

    async def collect(self, run: WorkflowRun) -> None:
        """Make every entry of ``run.results`` a plain dict: the run is ending and its
        results go to the caller."""

    async def before_cycle_check(self, run: WorkflowRun, unit: CycleUnit) -> None:
        """Called before a cycle's stop rules are checked after an iteration."""
        if unit.condition is not None:
            await self.fetch(run, unit.members)


class InProcessExecutor(NodeExecutor):
    """Runs nodes in the engine's process (``LocalRuntime``, ``AsyncLocalRuntime``).

    Async nodes run on the run's loop; a synchronous node runs inline when nothing
    else is in flight and in the run's bounded worker-thread pool when something is
    (or when a timeout must be able to abandon it).
    """

    async def attempt(
        self, run: WorkflowRun, node_id: str, kwargs: dict[str, Any], timeout: float | None
    ) -> Any:
        """See :meth:`NodeExecutor.attempt`."""
        node = run.plan.nodes[node_id]
        if node.is_async:
            if timeout is None:
                return await node.run_with_async(node.merge_inputs(kwargs))
            try:
                with anyio.fail_after(timeout):
                    return await node.run_with_async(node.merge_inputs(kwargs))
            except TimeoutError:
                raise timed_out(node, timeout) from None
        offload = (
            timeout is not None or run.settings.workflow_timeout is not None or run.in_flight > 1
        )
        if not offload:
            return node.run_with(node.merge_inputs(kwargs))
        call = functools.partial(_run_sync_node, node, kwargs)
        try:
            with anyio.fail_after(timeout):
                # abandon_on_cancel: a timed-out thread cannot be interrupted; the run
                # moves on and the thread's eventual result is discarded.
                return await anyio.to_thread.run_sync(
                    call, limiter=run.threads(), abandon_on_cancel=True
                )
        except TimeoutError:
            if timeout is None:
                raise
            raise timed_out(node, timeout) from None


#: The executor of runs given none (it keeps no state of its own).
IN_PROCESS = InProcessExecutor()


def _run_sync_node(node: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    return node.run_with(node.merge_inputs(kwargs))


def timed_out(node: Any, timeout: float) -> NodeExecutionError:
    """The error of ``node`` past its per-attempt ``timeout``."""
    return NodeExecutionError(
        f"node {node.id!r} ({node.type_name()}) timed out after {timeout}s; raise its timeout "
        "with set_node_options or the runtime's node_timeout"
    )
