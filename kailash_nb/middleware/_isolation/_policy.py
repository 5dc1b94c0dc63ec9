"""``RunPolicy``: how the gateway runs one registered workflow (deadline, isolation).

``run_policy`` validates ``register_workflow``'s isolation keywords and returns the
policy, or ``None`` for the default (thread runs without a deadline), so the default
path costs nothing per request.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

from kailash_nb.middleware.gateway_errors import GatewayConfigurationError
from kailash_nb.runtime.events import EventBus
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.runtime.outcome import RunOutcome
from kailash_nb.sdk_exceptions import WorkflowValidationError
from kailash_nb.workflow.graph import Workflow
from kailash_nb.workflow.serialization import workflow_to_dict

__all__ = [
    "DEFAULT_MAX_OUTPUT_BYTES",
    "DEFAULT_MEMORY_LIMIT_MB",
    "DEFAULT_POOL_SIZE",
    "DEFAULT_PROCESS_TIMEOUT",
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


@dataclass
class RunPolicy:
    """How one workflow's runs execute.

    Attributes:
        isolation: ``"thread"`` or ``"process"``.
        timeout: the run's deadline in seconds, or ``None`` (thread runs only).
        memory_limit_mb, max_output_bytes, pool_size: process runs only.
        runtime: for thread runs, the ``LocalRuntime`` applying ``timeout`` as its
            ``workflow_timeout`` (sharing the gateway's bus); ``None`` for process runs.
        pool: for process runs, the ``ProcessRunPool`` (``None`` for thread runs).
    """

    isolation: str
    timeout: float | None
    memory_limit_mb: int | None = None
    max_output_bytes: int | None = None
    pool_size: int | None = None
    runtime: LocalRuntime | None = None
    pool: Any = None

    @property
    def isolated(self) -> bool:
        """True when runs execute in worker processes."""
        return self.isolation == "process"

    async def run_isolated(
        self, workflow: Workflow, parameters: dict[str, Any], run_id: str
    ) -> RunOutcome:
        """Run in a worker process and return how it ended (see ``ProcessRunPool.run``).

        Raises:
            WorkflowValidationError: bad parameters; nothing started.
            WorkflowTimeoutError: the deadline passed; the worker was killed.
            WorkflowExecutionError: the memory limit or the output cap was hit, or the
                worker died.
        """
        return await self.pool.run(workflow, parameters, run_id)

    def start(self) -> None:
        """Pre-start the worker processes (process runs; no-op otherwise)."""
        if self.pool is not None:
            self.pool.start()

    def close(self) -> None:
        """Stop the worker processes (process runs; no-op otherwise)."""
        if self.pool is not None:
            self.pool.close()


def run_policy(
    name: str,
    workflow: Workflow,
    events: EventBus,
    *,
    isolation: str = "thread",
    timeout: float | None = None,
    memory_limit_mb: int | None = None,
    max_output_bytes: int | None = None,
    pool_size: int | None = None,
) -> RunPolicy | None:
    """Validate ``register_workflow``'s run keywords; ``None`` means the default.

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
        if timeout is None:
            return None
        runtime = LocalRuntime(event_bus=events, history=False, workflow_timeout=timeout)
        return RunPolicy("thread", timeout, runtime=runtime)
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
    definition = _portable_definition(workflow, where)
    from kailash_nb.middleware._isolation._pool import ProcessRunPool

    policy = RunPolicy(
        "process",
        DEFAULT_PROCESS_TIMEOUT if timeout is None else timeout,
        memory_limit_mb=memory,
        max_output_bytes=output,
        pool_size=size,
    )
    policy.pool = ProcessRunPool(
        definition,
        events,
        size=size,
        timeout=policy.timeout,
        memory_limit_mb=memory,
        max_output_bytes=output,
    )
    return policy


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
