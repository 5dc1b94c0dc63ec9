"""Per-workflow run policies for the gateway: deadlines and process isolation.

``register_workflow(name, workflow, isolation=..., timeout=..., memory_limit_mb=...,
max_output_bytes=..., process_pool_size=...)`` builds a :class:`RunPolicy` with
:func:`run_policy`; the run executor consults it for each run:

- thread runs (the default) with a ``timeout`` use a ``LocalRuntime`` whose
  ``workflow_timeout`` is that deadline: the caller gets 504 at the deadline, but a
  synchronous node that never returns keeps its thread (threads cannot be killed);
- process runs execute in a :class:`ProcessRunPool` of pre-started worker processes
  with address-space and CPU limits; at the deadline the worker is killed and
  replaced (WF-10), and a run past its memory limit or output cap fails with a
  message naming the limit (WF-11).
"""

from __future__ import annotations

from kailash_nb.middleware._isolation._policy import (
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_MEMORY_LIMIT_MB,
    DEFAULT_POOL_SIZE,
    DEFAULT_PROCESS_TIMEOUT,
    RunPolicy,
    run_policy,
)

__all__ = [
    "DEFAULT_MAX_OUTPUT_BYTES",
    "DEFAULT_MEMORY_LIMIT_MB",
    "DEFAULT_POOL_SIZE",
    "DEFAULT_PROCESS_TIMEOUT",
    "RunPolicy",
    "run_policy",
]
