"""The gateway's run side: how a registered workflow's runs execute and are kept.

It never touches HTTP. The gateway hands each run to the :class:`RunExecutor`, which
admits it (a bounded queue: :class:`RunQueueFullError`; then its :class:`RunGate`, the
caller's access), executes it on its workflow's
:class:`ExecutionBackend` (``"inline"``, ``"thread"``, ``"process"`` or ``"dask"``,
chosen by the workflow's :class:`RunPolicy`; more with :func:`register_backend`) and keeps its entry
in the :class:`RunIndex`, which reports each run's start and end to one sink::

    index = RunIndex(recorder.record_gateway_run)
    executor = RunExecutor(events, index)
    executor.place("etl", run_policy("etl", workflow, isolation="process"))
    entry = await executor.run("etl", workflow, {}, tenant_id="acme", subject="ada")
"""

from __future__ import annotations

from kailash_nb.middleware.execution._backend import (
    BackendSetup,
    ExecutionBackend,
    RunRequest,
    backend_names,
    check_backend_name,
    register_backend,
)
from kailash_nb.middleware.execution._cancel import RunCancel, RunCancelledError
from kailash_nb.middleware.execution._dask import (
    DASK_ADDRESS_ENV,
    DaskBackend,
    register_dask_backend,
)
from kailash_nb.middleware.execution._errors import RunQueueFullError
from kailash_nb.middleware.execution._executor import RunExecutor, StartedRun
from kailash_nb.middleware.execution._gate import OPEN, OpenGate, PolicyGate, RunGate
from kailash_nb.middleware.execution._policy import INLINE, RunPolicy, run_policy
from kailash_nb.middleware.execution._run_index import RunEntry, RunIndex, RunNoteSink, may_read
from kailash_nb.middleware.execution._tenant_records import TenantRunRouter

# The built-in backends register themselves by name ("thread" comes with the executor).
from kailash_nb.middleware.execution import _inline, _process  # noqa: F401  isort: skip

__all__ = [
    "DASK_ADDRESS_ENV",
    "INLINE",
    "OPEN",
    "BackendSetup",
    "DaskBackend",
    "ExecutionBackend",
    "OpenGate",
    "PolicyGate",
    "RunCancel",
    "RunCancelledError",
    "RunEntry",
    "RunExecutor",
    "RunGate",
    "RunIndex",
    "RunNoteSink",
    "RunPolicy",
    "RunQueueFullError",
    "RunRequest",
    "StartedRun",
    "TenantRunRouter",
    "backend_names",
    "check_backend_name",
    "may_read",
    "register_backend",
    "register_dask_backend",
    "run_policy",
]
