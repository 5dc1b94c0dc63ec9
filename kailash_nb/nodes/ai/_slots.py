"""``TaskSlots``: at most ``capacity`` tasks run at once, at most ``queue_limit`` wait.

Tasks are *admitted* first (``admit``: refused with ``TaskQueueFullError`` when the
running and waiting tasks would exceed ``capacity + queue_limit``), then wait for a run
slot in arrival order (``acquire``). Waiters await a future on their own event loop and
the counters sit behind a thread lock, so one coordinator may be used from several
threads and loops (a notebook's sync calls run on a background loop, a runtime on its own).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

from kailash_nb.nodes.ai.errors import TaskQueueFullError

__all__ = ["TaskSlots"]


class TaskSlots:
    """Run slots and a bounded queue for them; ``queue_limit=None`` leaves the queue unbounded."""

    def __init__(self, capacity: int | None, queue_limit: int | None = None) -> None:
        self.capacity = capacity
        self.queue_limit = queue_limit
        self._lock = threading.Lock()
        self._admitted = 0
        self._active = 0
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    @property
    def running(self) -> int:
        """Tasks holding a run slot."""
        return self._active

    @property
    def queued(self) -> int:
        """Tasks admitted and not yet holding a run slot."""
        return self._admitted - self._active

    def admit(self, count: int = 1) -> None:
        """Admit ``count`` tasks, all or none.

        Raises:
            TaskQueueFullError: fewer than ``count`` places are free.
        """
        with self._lock:
            if self.capacity is not None and self.queue_limit is not None:
                free = self.capacity + self.queue_limit - self._admitted
                if count > free:
                    running = self._active
                    raise TaskQueueFullError(
                        f"task queue full: {running} tasks running (max_concurrent_tasks="
                        f"{self.capacity}) and {self._admitted - running} waiting "
                        f"(task_queue_limit={self.queue_limit}); "
                        + (
                            "the task was refused"
                            if count == 1
                            else f"the batch of {count} tasks was refused ({max(free, 0)} "
                            "places free)"
                        )
                        + ": submit it again when tasks have finished",
                        running=running,
                        queued=self._admitted - running,
                        limit=self.queue_limit,
                        refused=count,
                    )
            self._admitted += count

    def leave(self, count: int = 1) -> None:
        """Forget ``count`` admitted tasks (they have finished)."""
        with self._lock:
            self._admitted -= count

    async def acquire(self) -> None:
        """Take a run slot, waiting in arrival order without blocking the loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self.capacity is None or (self._active < self.capacity and not self._waiters):
                self._active += 1
                return
            future: asyncio.Future[None] = loop.create_future()
            entry = (loop, future)
            self._waiters.append(entry)
        try:
            await future
        except asyncio.CancelledError:
            with self._lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)
                    raise
            if future.done() and not future.cancelled():
                # Handed a slot just before the cancellation: pass it on.
                self.release()
            raise

    def release(self) -> None:
        """Give a run slot back, handing it to the oldest waiter if there is one."""
        with self._lock:
            while self._waiters:
                loop, future = self._waiters.popleft()
                if _running_loop() is loop:
                    if future.done():
                        continue  # cancelled while waiting; its canceller did not release
                    future.set_result(None)
                    return
                if not loop.is_closed():
                    loop.call_soon_threadsafe(self._hand_over, future)
                    return
            self._active -= 1

    def _hand_over(self, future: asyncio.Future[None]) -> None:
        if future.done():
            # Cancelled before the hand-over landed; the canceller did not release.
            self.release()
        else:
            future.set_result(None)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
