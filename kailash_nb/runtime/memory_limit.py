"""``MemoryLimit``: the run limit behind the runtimes' ``memory_limit_mb`` option.

The limit is on the whole process: Python threads share one heap, so memory cannot be
told apart run by run. It is measured as the process's resident set size, read from
``/proc/self/statm`` (Linux; about a microsecond per reading); where that file does not
exist the peak resident set size from ``resource.getrusage`` stands in, which never goes
down, so there a process that once went past the limit fails every later run.
(``kailash_nb.monitoring.rss_method()`` says which applies.)

The engine reads it when each node finishes; while runs are in progress, a watcher
thread (one per limit, started with the first run and ended after a second without
any) reads it every ``check_interval`` seconds and interrupts every run in progress
when it is past the limit (``kailash_nb.runtime.limits`` says when an interrupted run
stops). Past the limit, the runs of the runtime fail with ``MemoryLimitExceededError``;
the process stays usable once the memory held by the stopped nodes is freed (a stopped
node's thread runs until its node returns; what it returns is discarded). A peak
shorter than ``check_interval`` that ends before its node does can pass unseen.

Before a run starts, the runtime waits (:meth:`MemoryLimit.wait_until_below`) while the
process is above the limit, at most ``workflow_timeout`` seconds and not at all without
one; a run that starts above the limit fails at its first node::

    limit = MemoryLimit(2048)
    limit.exceeded()  # None, or the MemoryLimitExceededError to stop the run with
"""

from __future__ import annotations

import functools
import gc
import math
import os
import threading
import time
from collections.abc import Callable

import anyio

from kailash_nb.monitoring.memory import process_rss_bytes, rss_method
from kailash_nb.runtime.limits import Interruptible
from kailash_nb.sdk_exceptions import MemoryLimitExceededError

__all__ = ["DEFAULT_CHECK_INTERVAL", "MemoryLimit"]

#: Seconds between readings while nodes run (the runtimes' ``memory_check_interval``).
DEFAULT_CHECK_INTERVAL = 0.05

_MIB = 1024 * 1024
#: Seconds the watcher thread waits without a run before it ends.
_IDLE_SECONDS = 1.0


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
        self._runs: set[Interruptible] = set()
        self._lock = threading.Lock()
        self._run_started = threading.Condition(self._lock)
        self._watcher: threading.Thread | None = None
        self._watcher_pid = 0

    def measured_bytes(self) -> int:
        """The process's memory now, in bytes."""
        return self._measure()

    def exceeded(self) -> MemoryLimitExceededError | None:
        """``None`` while the process is at or under the limit, else the error that
        stops a run (naming the limit, the measured value and the method)."""
        measured = self._measure()
        if measured <= self.limit_bytes:
            return None
        return self._error(measured)

    def _error(self, measured: int) -> MemoryLimitExceededError:
        return MemoryLimitExceededError(
            f"the process's memory went past memory_limit_mb={self.limit_mb:g}: "
            f"{measured / _MIB:.1f} MiB measured ({self.method}) against a limit of "
            f"{self.limit_bytes / _MIB:.1f} MiB, so the run was stopped; raise "
            "memory_limit_mb or make the workflow hold less data at once",
            limit_bytes=self.limit_bytes,
            measured_bytes=measured,
            method=self.method,
        )

    def watch(self, run: Interruptible) -> Callable[[], object]:
        """Interrupt ``run`` if the process goes past the limit before the returned
        function is called (the engine calls it when the run ends)."""
        with self._lock:
            self._runs.add(run)
            # A forked child has the attribute but not the thread: start its own.
            if self._watcher is None or self._watcher_pid != os.getpid():
                self._watcher = threading.Thread(
                    target=self._watch_runs, name="kailash-nb-memory-limit", daemon=True
                )
                self._watcher_pid = os.getpid()
                self._watcher.start()
            else:
                self._run_started.notify()
        return functools.partial(self._unwatch, run)

    def _unwatch(self, run: Interruptible) -> None:
        with self._lock:
            self._runs.discard(run)

    def _watch_runs(self) -> None:
        """The watcher thread: every ``check_interval`` seconds while runs are in
        progress, interrupt them all if the process is past the limit."""
        while True:
            with self._lock:
                if not self._runs:
                    self._run_started.wait(_IDLE_SECONDS)
                    if not self._runs:
                        self._watcher = None
                        return
            time.sleep(self.check_interval)
            measured = self._measure()
            if measured <= self.limit_bytes:
                continue
            with self._lock:
                runs = list(self._runs)
            for run in runs:
                run.interrupt(self._error(measured))

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
