"""Performance requirements and how a run is measured against them.

Requirements (``test_workflow(performance_requirements=...)``), each optional:

- ``max_execution_time``: seconds the whole run may take (wall clock). An in-process
  run with no runtime of the caller's is stopped once it passes the limit (its time is
  then "at least" the limit), so a hung workflow fails its test instead of hanging it.
  A synchronous node cannot be killed: its thread runs on until the node returns (a
  thread the interpreter waits for at exit); ``isolation="process"`` ends it with its
  process.
- ``max_memory_mb``: MiB the run may hold at its peak (see below).
- ``max_node_execution_time``: seconds any single node may run.

Memory is the run's own peak of allocated memory, traced by :mod:`tracemalloc` from the
run's start to its end: every allocation through Python's allocators (objects, buffers
such as ``bytearray`` and ``bytes``, and NumPy arrays, which report theirs) counts, a
peak lasting a microsecond counts, and nothing the process held before the run does.
A sampled resident set size (RSS) would miss short peaks, count what earlier tests left
behind, and miss memory the allocator reuses without asking the OS for more, so a node
holding 64 MiB could report less. What tracemalloc does not see is memory a C library
takes straight from ``malloc`` without reporting it; ``isolation="process"`` also gives
the fresh process's peak RSS (``process_peak_rss_mb``) for that. Tracing slows
allocation-heavy code down, so the times measured include that overhead. One measured
run at a time per process: concurrent ``test_workflow`` calls take turns.
"""

from __future__ import annotations

import math
import threading
import time
import tracemalloc
from collections.abc import Mapping
from typing import Any

from kailash_nb.testing.errors import WorkflowTestSetupError
from kailash_nb.testing.results import Failure, PerformanceReport

__all__ = [
    "MEMORY_METHOD",
    "REQUIREMENTS",
    "RunMeter",
    "check_requirements",
    "requirement_failures",
]

_MIB = 1024 * 1024

#: The requirements ``performance_requirements`` takes, with what each limits.
REQUIREMENTS = {
    "max_execution_time": "seconds the run may take",
    "max_memory_mb": "MiB the run may hold at its peak",
    "max_node_execution_time": "seconds any one node may run",
}

#: ``PerformanceReport.memory_method`` of runs measured here.
MEMORY_METHOD = "tracemalloc peak of the run's allocations"

# tracemalloc is one per process: measured runs take turns.
_measuring = threading.Lock()


def check_requirements(requirements: Mapping[str, Any] | None) -> dict[str, float]:
    """The requirements as ``{name: limit}``, checked.

    Raises:
        WorkflowTestSetupError: an unknown requirement, or a limit that is not a
            positive, finite number.
    """
    if requirements is None:
        return {}
    if not isinstance(requirements, Mapping):
        raise WorkflowTestSetupError(
            "performance_requirements must be a dict such as "
            f"{{'max_execution_time': 30}}, got {type(requirements).__name__}"
        )
    checked: dict[str, float] = {}
    for name, limit in requirements.items():
        if name not in REQUIREMENTS:
            known = ", ".join(REQUIREMENTS)
            raise WorkflowTestSetupError(
                f"unknown performance requirement {name!r}; the requirements are {known}"
            )
        if isinstance(limit, bool) or not isinstance(limit, (int, float)):
            raise WorkflowTestSetupError(
                f"performance requirement {name} must be a number "
                f"({REQUIREMENTS[name]}), got {limit!r:.60}"
            )
        if not (math.isfinite(limit) and limit > 0):
            raise WorkflowTestSetupError(
                f"performance requirement {name} must be a positive, finite number, got {limit!r}"
            )
        checked[name] = float(limit)
    return checked


class RunMeter:
    """Measures one run: its wall-clock time and its peak of traced allocations.

    Tracing is started for the run and stopped after it, unless something else was
    already tracing (then its peak is reset and the baseline subtracted)::

        with RunMeter() as meter:
            runtime.execute(workflow)
        meter.execution_time, meter.memory_usage_mb
    """

    execution_time: float = 0.0
    memory_usage_mb: float = 0.0

    def __enter__(self) -> RunMeter:
        _measuring.acquire()
        self._own_tracing = not tracemalloc.is_tracing()
        if self._own_tracing:
            tracemalloc.start(1)
        tracemalloc.reset_peak()
        self._baseline = tracemalloc.get_traced_memory()[0]
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.execution_time = time.perf_counter() - self._started
        try:
            peak = tracemalloc.get_traced_memory()[1]
            self.memory_usage_mb = max(0, peak - self._baseline) / _MIB
            if self._own_tracing:
                tracemalloc.stop()
        finally:
            _measuring.release()


def requirement_failures(
    limits: Mapping[str, float], report: PerformanceReport, *, stopped: bool = False
) -> list[Failure]:
    """A failure for each requirement ``report`` does not meet (a measured value equal
    to its limit meets it). ``stopped``: the run was stopped at ``max_execution_time``."""
    failures = []
    time_limit = limits.get("max_execution_time")
    if time_limit is not None and (stopped or report.execution_time > time_limit):
        how = "at least " if stopped else ""
        tail = ", and was stopped" if stopped else ""
        failures.append(
            Failure(
                "requirement",
                f"max_execution_time: the run took {how}{report.execution_time:.3f} s, over "
                f"the limit of {time_limit:g} s{tail}",
                requirement="max_execution_time",
                limit=time_limit,
                measured=report.execution_time,
            )
        )
    memory_limit = limits.get("max_memory_mb")
    if memory_limit is not None and report.memory_usage_mb > memory_limit:
        failures.append(
            Failure(
                "requirement",
                f"max_memory_mb: the run's peak allocation was {report.memory_usage_mb:.1f} "
                f"MiB, over the limit of {memory_limit:g} MiB",
                requirement="max_memory_mb",
                limit=memory_limit,
                measured=report.memory_usage_mb,
            )
        )
    node_limit = limits.get("max_node_execution_time")
    if node_limit is not None:
        for node_id, seconds in report.node_timings.items():
            if seconds > node_limit:
                failures.append(
                    Failure(
                        "requirement",
                        f"max_node_execution_time: node {node_id!r} ran {seconds:.3f} s, "
                        f"over the limit of {node_limit:g} s",
                        node_id=node_id,
                        requirement="max_node_execution_time",
                        limit=node_limit,
                        measured=seconds,
                    )
                )
    return failures
