"""``RunPolicy``: how the gateway runs one registered workflow (backend, deadline,
process limits).

``run_policy`` validates ``register_workflow``'s isolation keywords and returns the
policy, or ``None`` for the default (thread runs without a deadline), so the default
path costs nothing per request:

- thread runs with a ``timeout`` use a ``LocalRuntime`` whose ``workflow_timeout`` is
  that deadline: the caller gets 504 at the deadline, but a synchronous node that never
  returns keeps its thread (threads cannot be killed);
- process runs execute in pre-started worker processes with address-space and CPU
  limits; at the deadline the worker is killed and replaced (WF-10), and a run past
  its memory limit or output cap fails with a message naming the limit (WF-11).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

from kailash_nb.middleware.gateway_errors import GatewayConfigurationError
from kailash_nb.sdk_exceptions import WorkflowValidationError
from kailash_nb.workflow.graph import Workflow
from kailash_nb.workflow.serialization import workflow_to_dict

__all__ = [
    "DEFAULT_MAX_OUTPUT_BYTES",
    "DEFAULT_MEMORY_LIMIT_MB",
    "DEFAULT_POOL_SIZE",
    "DEFAULT_PROCESS_TIMEOUT",
    "INLINE",
    "ISOLATION_MODES",
    "RunPolicy",
    "run_policy",
]

#: Seconds a process-isolated run may take when ``timeout`` is not given.
DEFAULT_PROCESS_TIMEOUT = 30.0
#: Address-space limit (MiB) of a worker process when ``memory_limit_mb`` is not given.
DEFAULT_MEMORY_LIMIT_MB = 512
#: Largest JSON encoding of a process-isolated run's results (16 MiB).
DEFAULT_MAX_OUTPUT_BYTES = 16 * 1024 * 1024
#: Worker processes pre-started per process-isolated workflow.
DEFAULT_POOL_SIZE = 2
ISOLATION_MODES = ("thread", "process")
#: Below this the interpreter and kailash_nb themselves do not fit in the address space.
_MIN_MEMORY_LIMIT_MB = 128
_MAX_TIMEOUT = 24 * 3600.0


@dataclass(frozen=True)
class RunPolicy:
    """How one workflow's runs execute: the name of their backend and its options.

    Attributes:
        backend: the registered execution backend (``"inline"``, ``"thread"``,
            ``"process"``...).
        timeout: the run's deadline in seconds, or ``None``.
        memory_limit_mb, max_output_bytes, pool_size: process runs only.
        definition: the workflow's definition as plain data (process runs: what the
            worker processes rebuild), or ``None``.
    """

    backend: str
    timeout: float | None = None
    memory_limit_mb: int | None = None
    max_output_bytes: int | None = None
    pool_size: int | None = None
    definition: dict[str, Any] | None = None


#: The policy of a workflow run on the event loop (``run_inline`` or provably quick).
INLINE = RunPolicy("inline")


def run_policy(
    name: str,
    workflow: Workflow,
    *,
    isolation: str = "thread",
    timeout: float | None = None,
    memory_limit_mb: int | None = None,
    max_output_bytes: int | None = None,
    pool_size: int | None = None,
    backend: str | None = None,
) -> RunPolicy | None:
    """Validate ``register_workflow``'s run keywords; ``None`` means the default.

    ``backend`` names a registered execution backend (``"dask"``...) that runs the
    workflow instead of the gateway's threads; it goes with thread isolation only (the
    caller checks that the name is registered).

    Raises:
        GatewayConfigurationError: an unknown ``isolation``, a non-positive or
            non-finite ``timeout``, process-only options with thread isolation, a
            ``memory_limit_mb`` below 128, a non-positive ``max_output_bytes`` or
            ``pool_size``, process isolation off Linux, or a workflow whose
            definition cannot be sent to a worker process (a
            ``PythonCodeNode.from_function`` node: use ``code=``).
    """
    where = f"register_workflow({name!r})"
    if isolation not in ISOLATION_MODES:
        raise GatewayConfigurationError(
            f"{where}: isolation must be 'thread' or 'process', got {isolation!r:.80}"
        )
    if timeout is not None:
        timeout = _seconds(timeout, where)
    if backend is not None and isolation != "thread":
        raise GatewayConfigurationError(
            f"{where}: backend={backend!r:.40} runs the workflow on that backend, "
            f"isolation={isolation!r:.40} on worker processes of the gateway; give one of them"
        )
    if isolation == "thread":
        given = {
            "memory_limit_mb": memory_limit_mb,
            "max_output_bytes": max_output_bytes,
            "process_pool_size": pool_size,
        }
        extra = sorted(key for key, value in given.items() if value is not None)
        if extra:
            raise GatewayConfigurationError(
                f"{where}: {', '.join(extra)} appl{'ies' if len(extra) == 1 else 'y'} to "
                "isolation='process' only; a thread run shares the gateway's memory"
            )
        if backend is not None:
            return RunPolicy(backend, timeout)
        if timeout is None:
            return None
        return RunPolicy("thread", timeout)
    if not sys.platform.startswith("linux"):
        raise GatewayConfigurationError(
            f"{where}: isolation='process' needs Linux (address-space limits are enforced "
            f"there), this is {sys.platform!r}"
        )
    memory = _positive_int(
        DEFAULT_MEMORY_LIMIT_MB if memory_limit_mb is None else memory_limit_mb,
        "memory_limit_mb",
        where,
    )
    if memory < _MIN_MEMORY_LIMIT_MB:
        raise GatewayConfigurationError(
            f"{where}: memory_limit_mb={memory} is below {_MIN_MEMORY_LIMIT_MB}; the worker "
            "process's interpreter alone needs about 100 MiB of address space"
        )
    output = _positive_int(
        DEFAULT_MAX_OUTPUT_BYTES if max_output_bytes is None else max_output_bytes,
        "max_output_bytes",
        where,
    )
    size = _positive_int(
        DEFAULT_POOL_SIZE if pool_size is None else pool_size, "process_pool_size", where
    )
    return RunPolicy(
        "process",
        DEFAULT_PROCESS_TIMEOUT if timeout is None else timeout,
        memory_limit_mb=memory,
        max_output_bytes=output,
        pool_size=size,
        definition=_portable_definition(workflow, where),
    )


def _seconds(value: Any, where: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 < value <= _MAX_TIMEOUT
    ):
        raise GatewayConfigurationError(
            f"{where}: timeout must be a number of seconds in (0, {_MAX_TIMEOUT:.0f}], "
            f"got {value!r:.80}"
        )
    return float(value)


def _positive_int(value: Any, option: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GatewayConfigurationError(f"{where}: {option} must be an int >= 1, got {value!r:.80}")
    return value


def _portable_definition(workflow: Workflow, where: str) -> dict[str, Any]:
    """The server's own definition of ``workflow`` as plain data a worker rebuilds."""
    try:
        # Secrets stay in: the definition never leaves this server's own processes.
        definition = workflow_to_dict(workflow, redact_secrets=False)
        Workflow.from_dict(definition)
    except WorkflowValidationError as exc:
        raise GatewayConfigurationError(
            f"{where}: isolation='process' sends the workflow's definition to worker "
            f"processes, and this one cannot be sent: {exc}"
        ) from None
    return definition
