"""The ``"process"`` backend: runs execute in pre-started worker processes.

``register_workflow(..., isolation="process")`` gives the workflow a
:class:`ProcessRunPool` of its own: worker processes with address-space and CPU limits;
at the deadline the worker is killed and replaced (WF-10), and a run past its memory
limit or output cap fails with a message naming the limit (WF-11).
"""

from __future__ import annotations

from kailash_nb.middleware.execution._backend import (
    BackendSetup,
    ExecutionBackend,
    RunRequest,
    register_backend,
)
from kailash_nb.middleware.execution._process._pool import ProcessRunPool
from kailash_nb.runtime.outcome import RunOutcome

__all__ = ["ProcessBackend"]


class ProcessBackend(ExecutionBackend):
    """Runs one workflow's runs in its pool of worker processes.

    Attributes:
        pool: the workflow's ``ProcessRunPool`` (``pool.wait_ready`` for readiness).
    """

    def __init__(self, setup: BackendSetup) -> None:
        policy = setup.policy
        if (
            policy.definition is None
            or policy.timeout is None
            or policy.pool_size is None
            or policy.memory_limit_mb is None
            or policy.max_output_bytes is None
        ):
            raise ValueError("a process run policy comes from run_policy(isolation='process')")
        self.pool = ProcessRunPool(
            policy.definition,
            setup.events,
            size=policy.pool_size,
            timeout=policy.timeout,
            memory_limit_mb=policy.memory_limit_mb,
            max_output_bytes=policy.max_output_bytes,
        )

    async def execute(self, run: RunRequest) -> RunOutcome:
        """Run ``run`` in a worker process (see ``ProcessRunPool.run``); node events are
        re-emitted live as the worker sends them, and the worker asks the run's guard,
        which stays in this process, before each node.

        Raises:
            WorkflowValidationError: bad parameters; nothing started.
            RunQueueFullError: the pool was closed meanwhile (the gateway is stopping).
            WorkflowTimeoutError: the deadline passed; the worker was killed.
            WorkflowExecutionError: the memory limit or the output cap was hit, or the
                worker died.
        """
        return await self.pool.run(run.workflow, run.parameters, run.run_id, run.guard)

    def start(self) -> None:
        """Pre-start the worker processes in the background."""
        self.pool.start()

    def close(self) -> None:
        """Stop the worker processes (a run still executing is killed)."""
        self.pool.close()


register_backend("process", ProcessBackend)
