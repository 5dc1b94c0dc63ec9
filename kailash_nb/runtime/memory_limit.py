"""``MemoryLimit``: the run limit behind the runtimes' ``memory_limit_mb`` option.

The limit is on the whole process: Python threads share one heap, so memory cannot be
told apart run by run. It is measured as the process's resident set size, read from
``/proc/self/statm`` (Linux; about a microsecond per reading); where that file does not
exist the peak resident set size from ``resource.getrusage`` stands in, which never goes
down, so there a process that once went past the limit fails every later run.
(``kailash_nb.monitoring.rss_method()`` says which applies.)

The engine reads it before each node executes, when each node finishes, and every
``check_interval`` seconds while nodes run (``kailash_nb.runtime.limits``). Past the
limit, every run of the runtime that checks fails with ``MemoryLimitExceededError``;
the process stays usable once the memory held by the stopped nodes is freed (a
stopped node's thread runs until its node returns; what it returns is discarded).

Before a run starts, the runtime waits (:meth:`MemoryLimit.wait_until_below`) while the
process is above the limit, at most ``workflow_timeout`` seconds and not at all without
one; a run that starts above the limit fails at its first node::

    limit = MemoryLimit(2048)
    limit.exceeded()  # None, or the MemoryLimitExceededError to stop the run with
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable

import anyio

from kailash_nb.monitoring.memory import process_rss_bytes, rss_method
from kailash_nb.sdk_exceptions import MemoryLimitExceededError

__all__ = ["DEFAULT_CHECK_INTERVAL", "MemoryLimit"]

#: Seconds between readings while nodes run (the runtimes' ``memory_check_interval``).
DEFAULT_CHECK_INTERVAL = 0.05

_MIB = 1024 * 1024


def _positive_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a positive number, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive, finite number, got {value!r}")
    return float(value)


class MemoryLimit:
    """A ceiling on this process's memory, checked by the engine (a ``RunLimit``).

    Args:
        limit_mb: the ceiling in MiB (an int or float above 0).
        check_interval: seconds between readings while nodes run.
        measure: returns the process's memory in bytes (tests pass their own).

    Raises:
        ValueError: ``limit_mb`` or ``check_interval`` is not a positive finite
            number (a bool is refused too).
    """

    def __init__(
        self,
        limit_mb: float,
        *,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        measure: Callable[[], int] = process_rss_bytes,
    ) -> None:
        self.limit_mb = _positive_number("memory_limit_mb", limit_mb)
        self.check_interval = _positive_number("memory_check_interval", check_interval)
        self.limit_bytes = int(self.limit_mb * _MIB)
        self.method = rss_method() if measure is process_rss_bytes else "the given measure"
        self._measure = measure

    def measured_bytes(self) -> int:
        """The process's memory now, in bytes."""
        return self._measure()

    def exceeded(self) -> MemoryLimitExceededError | None:
        """``None`` while the process is at or under the limit, else the error that
        stops a run (naming the limit, the measured value and the method)."""
        measured = self._measure()
        if measured <= self.limit_bytes:
            return None
        return MemoryLimitExceededError(
            f"the process's memory went past memory_limit_mb={self.limit_mb:g}: "
            f"{measured / _MIB:.1f} MiB measured ({self.method}) against a limit of "
            f"{self.limit_bytes / _MIB:.1f} MiB, so the run was stopped; raise "
            "memory_limit_mb or make the workflow hold less data at once",
            limit_bytes=self.limit_bytes,
            measured_bytes=measured,
            method=self.method,
        )

    def wait_until_below(self, timeout: float | None) -> bool:
        """Block while the process is above the limit, at most ``timeout`` seconds
        (``None``: do not wait); True when it is at or under the limit."""
        if self._measure() <= self.limit_bytes:
            return True
        if not timeout:
            return False
        gc.collect()  # garbage of a stopped run may be what holds the memory
        deadline = time.monotonic() + timeout
        while self._measure() > self.limit_bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(self.check_interval, left))
        return True

    async def wait_until_below_async(self, timeout: float | None) -> bool:
        """:meth:`wait_until_below` without blocking the event loop."""
        if self._measure() <= self.limit_bytes:
            return True
        if not timeout:
            return False
        gc.collect()
        deadline = time.monotonic() + timeout
        while self._measure() > self.limit_bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await anyio.sleep(min(self.check_interval, left))
        return True
