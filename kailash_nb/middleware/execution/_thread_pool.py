"""``RunThreads``: the threads the gateway runs workflows on, with a cheap hand-off.

The gateway must not run a synchronous node on its event loop (it would stall every
other request), so each run crosses to a worker thread and its result crosses back.
``loop.run_in_executor`` with a ``ThreadPoolExecutor`` does that through a
``concurrent.futures.Future``, a chained asyncio future, a semaphore and a condition
per call; at thousands of runs per second that hand-off costs about as much as the
run. Here a call is one ``SimpleQueue.put`` (C, lock-free under the GIL) to a fixed
set of threads, and one ``call_soon_threadsafe`` back to the loop with the outcome.
Each call runs in a copy of the caller's context, as ``asyncio.to_thread`` does, so the
request's log ids (``kailash_nb.logging.log_context``) reach the run.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["RunThreads"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_STOP = None


class RunThreads:
    """A fixed pool of daemon threads running blocking calls for one event loop.

    Args:
        size: threads; at most this many calls run at once, further calls queue.
        name: thread name prefix.
    """

    def __init__(self, size: int, name: str = "kailash-nb-gateway-run") -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self.name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def call(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``function(*args)`` on a pool thread, in a copy of the caller's context;
        await the returned future for its result or exception.

        Raises:
            RuntimeError: the pool is shut down, or no event loop is running.
        """
        if self._closed:
            raise RuntimeError("the run threads are shut down")
        loop = asyncio.get_running_loop()
        if not self._threads:
            self._start_threads()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((loop, future, contextvars.copy_context(), function, args))
        return future

    def shutdown(self) -> None:
        """Let each thread finish its current call and exit; queued calls still run."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._queue.put(_STOP)

    def _start_threads(self) -> None:
        for index in range(self.size):
            thread = threading.Thread(target=self._work, name=f"{self.name}-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        get = self._queue.get
        while True:
            item = get()
            if item is _STOP:
                return
            loop, future, context, function, args = item
            try:
                result = context.run(function, *args)
            except BaseException as exc:  # handed to the awaiting caller
                _deliver(loop, future, _set_exception, exc)
            else:
                _deliver(loop, future, _set_result, result)
            del item, loop, future, context, function, args


def _deliver(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    setter: Callable[[asyncio.Future[Any], Any], None],
    value: Any,
) -> None:
    try:
        loop.call_soon_threadsafe(setter, future, value)
    except RuntimeError:
        logger.warning("a run ended after its event loop closed; its outcome is dropped")


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
