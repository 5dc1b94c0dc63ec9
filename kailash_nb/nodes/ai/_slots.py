"""``TaskSlots``: at most ``capacity`` tasks run at once, at most ``queue_limit`` wait.

Tasks are *admitted* first (``admit``: refused with ``TaskQueueFullError`` when the
running and waiting tasks would exceed ``capacity + queue_limit``), then wait for a run
slot in arrival order (``acquire``). The slots are a ``FifoSlots``, so one coordinator may be
used from several threads and loops (a notebook's sync calls run on a background loop, a
runtime on its own).
"""

from __future__ import annotations

import threading

from kailash_nb._fifo_slots import FifoSlots
from kailash_nb.nodes.ai.errors import TaskQueueFullError

__all__ = ["TaskSlots"]


class TaskSlots:
    """Run slots and a bounded queue for them; ``queue_limit=None`` leaves the queue unbounded."""

    def __init__(self, capacity: int | None, queue_limit: int | None = None) -> None:
        self.capacity = capacity
        self.queue_limit = queue_limit
        self._lock = threading.Lock()
        self._admitted = 0
        self._slots = FifoSlots(capacity)

    @property
    def running(self) -> int:
        """Tasks holding a run slot."""
        return self._slots.active

    @property
    def queued(self) -> int:
        """Tasks admitted and not yet holding a run slot."""
        return self._admitted - self._slots.active

    def admit(self, count: int = 1) -> None:
        """Admit ``count`` tasks, all or none.

        Raises:
            TaskQueueFullError: fewer than ``count`` places are free.
        """
        with self._lock:
            if self.capacity is not None and self.queue_limit is not None:
                free = self.capacity + self.queue_limit - self._admitted
                if count > free:
                    running = self._slots.active
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
        await self._slots.acquire_async()

    def release(self) -> None:
        """Give a run slot back, handing it to the oldest waiter if there is one."""
        self._slots.release()
