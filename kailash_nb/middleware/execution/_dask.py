"""The ``"dask"`` backend: a workflow's runs execute their nodes on a dask.distributed
cluster (``kailash_nb.runtime.dask.DaskRuntime``; ``pip install "kailash-nb[dask]"``).

Each run is still driven by the engine in the gateway's process, on one of the
gateway's run threads, as a ``"thread"`` run is: so the run queue's backpressure
(``max_workers`` runs executing, ``max_queued`` waiting) applies unchanged, every
request gets an engine run of its own, and the run's access checks (its guard) are
asked here before each node is submitted. Only the nodes execute on the cluster. Node
and run events reach the gateway's bus while the run executes, so live streams and
the run history see a dask run like any other.

The cluster: the scheduler at ``KAILASH_NB_DASK_ADDRESS``, else the process's default
``distributed`` client; :func:`register_dask_backend` names a client or an address
instead (and may register the backend under another name). The connection is made
when the gateway starts its backends, in the background (a run waits for it, or makes
it), and closed with them.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from typing import Any

from kailash_nb.middleware.execution._backend import (
    BackendSetup,
    ExecutionBackend,
    RunRequest,
    register_backend,
)
from kailash_nb.middleware.gateway_errors import GatewayConfigurationError
from kailash_nb.runtime.outcome import RunOutcome

__all__ = ["DASK_ADDRESS_ENV", "DaskBackend", "register_dask_backend"]

logger = logging.getLogger(__name__)

#: The scheduler address the ``"dask"`` backend connects to (``tcp://host:8786``).
DASK_ADDRESS_ENV = "KAILASH_NB_DASK_ADDRESS"


class DaskBackend(ExecutionBackend):
    """Runs a workflow's nodes on a dask cluster, each run driven from a run thread.

    Args:
        setup: the workflow's policy (its ``timeout`` becomes the runs'
            ``workflow_timeout``) and the gateway's bus and run threads.
        client: the ``distributed.Client`` to use (it stays the caller's).
        address: the scheduler's address, when no ``client`` is given (default:
            ``KAILASH_NB_DASK_ADDRESS``, else the default client).

    Raises:
        GatewayConfigurationError: dask.distributed is not installed.
    """

    def __init__(
        self, setup: BackendSetup, *, client: Any = None, address: str | None = None
    ) -> None:
        try:
            from kailash_nb.runtime.dask import DaskRuntime
        except ImportError:
            raise GatewayConfigurationError(
                f"the execution backend {setup.policy.backend!r} runs workflows on a dask "
                'cluster and needs dask.distributed: pip install "kailash-nb[dask]"'
            ) from None
        if client is None and address is None:
            address = os.environ.get(DASK_ADDRESS_ENV) or None
        self._open = functools.partial(
            DaskRuntime,
            client,
            address=address,
            event_bus=setup.events,
            history=False,
            workflow_timeout=setup.policy.timeout,
        )
        self._threads = setup.threads
        self._lock = threading.Lock()
        self.runtime: Any = None

    def start(self) -> None:
        """Connect to the cluster in the background (idempotent, also after ``close``):
        the gateway does not wait for the scheduler; a run waits for the connection,
        and fails with its error if there is none."""
        threading.Thread(target=self._connect_quietly, name="kailash-nb-dask", daemon=True).start()

    def _connect_quietly(self) -> None:
        try:
            self.connect()
        except Exception:
            logger.exception("the dask backend could not connect; runs will try again")

    def connect(self) -> Any:
        """The runtime on the cluster, connecting first if needed (blocking).

        Raises:
            RuntimeExecutionError: no address, no client and no default client.
            OSError: the scheduler cannot be reached.
        """
        with self._lock:
            if self.runtime is None:
                self.runtime = self._open()
            return self.runtime

    async def execute(self, run: RunRequest) -> RunOutcome:
        """Run ``run`` to its end from a run thread; see :meth:`ExecutionBackend.execute`.

        Raises:
            RuntimeError: the run threads are shut down (the gateway stopped).
        """
        return await self._threads().call(lambda: run.run_on(self.connect()))

    def close(self) -> None:
        """Close the runtime (and the client it opened for an address)."""
        with self._lock:
            runtime, self.runtime = self.runtime, None
        if runtime is not None:
            runtime.close()


def register_dask_backend(
    client: Any = None, *, address: str | None = None, name: str = "dask"
) -> None:
    """Make the execution backend ``name`` run workflows on the cluster of ``client``
    (a ``distributed.Client``) or of the scheduler at ``address``; then
    ``gateway.register_workflow(wf_name, workflow, backend=name)`` uses it.

    Raises:
        GatewayConfigurationError: both ``client`` and ``address``.
    """
    if client is not None and address is not None:
        raise GatewayConfigurationError(
            "register_dask_backend takes a client or an address, not both"
        )
    register_backend(name, functools.partial(DaskBackend, client=client, address=address))


register_backend("dask", DaskBackend)
