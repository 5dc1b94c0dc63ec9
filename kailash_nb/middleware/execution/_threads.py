"""The ``"thread"`` backend (the default): runs execute on the gateway's run threads.

The engine runs a sequential workflow's synchronous nodes in the calling thread, which
on the server's loop would stall every other request for the node's whole duration;
so each run crosses to one of the gateway's ``RunThreads`` and its outcome crosses
back. A workflow registered with a ``timeout`` gets a ``LocalRuntime`` of its own whose
``workflow_timeout`` is that deadline (sharing the gateway's bus).
"""

from __future__ import annotations

import functools

from kailash_nb.middleware.execution._backend import (
    BackendSetup,
    ExecutionBackend,
    RunRequest,
    register_backend,
)
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.runtime.outcome import RunOutcome

__all__ = ["ThreadBackend"]


class ThreadBackend(ExecutionBackend):
    """Runs each run on the gateway's run threads, with the policy's deadline if any."""

    def __init__(self, setup: BackendSetup) -> None:
        timeout = setup.policy.timeout
        self.runtime = (
            setup.runtime
            if timeout is None
            else LocalRuntime(event_bus=setup.events, history=False, workflow_timeout=timeout)
        )
        self._threads = setup.threads

    async def execute(self, run: RunRequest) -> RunOutcome:
        """Run ``run`` to its end on a run thread; see :meth:`ExecutionBackend.execute`.

        Raises:
            RuntimeError: the run threads are shut down (the gateway stopped).
        """
        return await self._threads().call(functools.partial(run.run_on, self.runtime))


register_backend("thread", ThreadBackend)
