"""``RunSlots``: a cap on concurrent runs shared by sync and async callers."""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

__all__ = ["RunSlots"]


class RunSlots:
    """At most ``limit`` runs at once; further callers wait in arrival order.

    Sync callers block on a ``threading.Event``; async callers await a future on
    their own loop, so one runtime can be shared by threads and event loops alike.
    """

    def __init__(self, limit: int) -> None:
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"max_concurrent_workflows must be a positive int, got {limit!r}")
        self.limit = limit
        self._active = 0
        self._lock = threading.Lock()
        self._waiters: deque[threading.Event | tuple[asyncio.AbstractEventLoop, asyncio.Future]]
        self._waiters = deque()

    @property
    def active(self) -> int:
        """Runs holding a slot now."""
        return self._active

    def acquire(self) -> None:
        """Take a slot, blocking the calling thread until one is free."""
        with self._lock:
            if self._active < self.limit:
                self._active += 1
                return
            ready = threading.Event()
            self._waiters.append(ready)
        ready.wait()

    async def acquire_async(self) -> None:
        """Take a slot, waiting without blocking the event loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        with self._lock:
            if self._active < self.limit:
                self._active += 1
                return
            future: asyncio.Future = loop.create_future()
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
                # The slot was handed over just before the cancellation: pass it on.
                # (Otherwise _hand_over sees the cancelled future and passes it on.)
                self.release()
            raise

    def release(self) -> None:
        """Give a slot back, handing it to the oldest waiter if there is one."""
        with self._lock:
            while self._waiters:
                waiter = self._waiters.popleft()
                if isinstance(waiter, threading.Event):
                    waiter.set()
                    return
                loop, future = waiter
                if not loop.is_closed():
                    loop.call_soon_threadsafe(self._hand_over, future)
                    return
            self._active -= 1

    def _hand_over(self, future: asyncio.Future) -> None:
        if future.done():
            # Cancelled before the hand-over landed; the canceller did not release.
            self.release()
        else:
            future.set_result(None)
