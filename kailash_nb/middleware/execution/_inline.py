"""The ``"inline"`` backend: runs execute on the gateway's event loop.

For workflows registered with ``run_inline=True`` or provably quick (sequential
``PythonCodeNode`` glue code, checked at registration): no hand-off to a thread, and
no timeouts, since ``LocalRuntime`` runs such a plan in the calling thread without an
event loop of its own.
"""

from __future__ import annotations

from kailash_nb.middleware.execution._backend import (
    BackendSetup,
    ExecutionBackend,
    RunRequest,
    register_backend,
)
from kailash_nb.runtime.outcome import RunOutcome

__all__ = ["InlineBackend"]


class InlineBackend(ExecutionBackend):
    """Runs each run in the calling thread (the event loop's) with the gateway's
    ``LocalRuntime``."""

    def __init__(self, setup: BackendSetup) -> None:
        self.runtime = setup.runtime

    async def execute(self, run: RunRequest) -> RunOutcome:
        """Run ``run`` to its end on the loop; see :meth:`ExecutionBackend.execute`."""
        return run.run_on(self.runtime)


register_backend("inline", InlineBackend)
