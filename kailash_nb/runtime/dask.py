"""``DaskRuntime``: run workflows on a dask.distributed cluster (``pip install
"kailash-nb[dask]"``).

The run is the one engine's (``kailash_nb.runtime.engine``), with the same data-flow
contract as ``LocalRuntime``: precedence, ``None`` handling, skipped branches,
failures with partial results, cycles, timeouts and retries. Only where each node
executes changes: every node attempt becomes a dask task, so independent branches
run on different workers at once, and a node's outputs stay on the worker that made
them, moving only to the workers of the nodes that consume them. What the engine
fetches to the client, and why, is listed in ``kailash_nb.runtime._dask_executor``;
the results the caller gets are gathered once, when the run ends. Dependents whose
inputs the engine will resolve the same way whatever their sources produce are
submitted ahead, with their sources' futures, so dask starts them without waiting for
a round trip through the client (``kailash_nb.runtime._dask_ahead``).

Node and run events are published on the runtime's ``events`` bus while the run
executes (the notebook widget shows the run live; ``history=True`` records it), from
the workers' reports through the scheduler. A node failing on a worker fails with
what it raised there (type and message). A worker lost mid-node is dask's to handle:
the task runs again on another worker, published as a ``retrying`` node event.

Usage::

    from distributed import Client
    client = Client()                      # or Client("tcp://scheduler:8786")
    with DaskRuntime(client) as runtime:
        results, run_id = runtime.execute(workflow, parameters={"load": {"path": p}})
"""

from __future__ import annotations

import logging
from typing import Any

from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.sdk_exceptions import RuntimeExecutionError

# Importing distributed applies dask's logging defaults, which set the ``tornado`` logger
# to CRITICAL: a gateway in this process would lose the HTTP parser's lines (GW-14's
# escaped refusal of a malformed request). The process's own levels are kept.
_TORNADO_LOGGERS = ("tornado", "tornado.application", "tornado.general", "tornado.access")
_tornado_levels = {name: logging.getLogger(name).level for name in _TORNADO_LOGGERS}
try:
    import distributed
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError('DaskRuntime needs dask.distributed: pip install "kailash-nb[dask]"') from exc
finally:
    for _name, _level in _tornado_levels.items():
        logging.getLogger(_name).setLevel(_level)

from kailash_nb.runtime._dask_executor import DaskExecutor  # noqa: E402 - after the levels

__all__ = ["DaskRuntime"]


class DaskRuntime(LocalRuntime):
    """Execute workflows on a dask.distributed cluster; returns ``(results, run_id)``
    like ``LocalRuntime``, whose options it takes (not ``memory_limit_mb``: set the
    workers' own ``memory_limit`` instead).

    Args:
        client: the ``distributed.Client`` to submit to (it stays the caller's: closing
            the runtime leaves it open).
        address: the scheduler's address (``"tcp://host:8786"``), instead of
            ``client``: the runtime opens a client of its own and closes it with
            itself.

    With neither, the current default client is used (the last ``Client()`` made in
    this process, as in a notebook cell).

    The workers must be able to import kailash_nb and whatever the nodes' code
    imports, and the scheduler kailash_nb (the runtime registers a small scheduler
    plugin that reports tasks re-run after a lost worker); nodes travel to the workers
    pickled (``cloudpickle``). Steps that nodes report
    (``report_step``) come back from the workers while someone watches steps.
    ``max_worker_threads`` has no effect (the workers' threads run the nodes).

    Raises:
        RuntimeExecutionError: both ``client`` and ``address``, or neither and no
            default client; a ``client`` that is not a ``distributed.Client``.
        TypeError: ``memory_limit_mb`` or an unknown option.
    """

    def __init__(
        self,
        client: distributed.Client | None = None,
        *,
        address: str | None = None,
        **options: Any,
    ) -> None:
        if options.get("memory_limit_mb") is not None:
            raise TypeError(
                "DaskRuntime does not take memory_limit_mb: it measures this process, not the "
                "workers; give the dask workers a memory_limit instead"
            )
        if client is not None and address is not None:
            raise RuntimeExecutionError("invalid runtime option: pass client or address, not both")
        if client is not None and not isinstance(client, distributed.Client):
            raise RuntimeExecutionError(
                f"invalid runtime option: client must be a distributed.Client, got "
                f"{type(client).__name__}"
            )
        super().__init__(**options)
        self._owns_client = address is not None
        if address is not None:
            client = distributed.Client(address, set_as_default=False)
        elif client is None:
            try:
                client = distributed.default_client()
            except ValueError:
                raise RuntimeExecutionError(
                    "DaskRuntime found no dask client: pass client=Client(...) or "
                    "address='tcp://scheduler:8786', or create a Client() first"
                ) from None
        self.client: distributed.Client = client
        self._executor = DaskExecutor(client)
        self._node_executor = self._executor

    def close(self) -> None:
        """Refuse further runs, stop listening to the workers, and close the client if
        the runtime opened it (``address=``)."""
        super().close()
        self._executor.close()
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> DaskRuntime:
        return self

    async def __aenter__(self) -> DaskRuntime:
        return self
