"""``FifoSlots``: at most ``capacity`` holders at once, the others waiting in arrival order.

Shared by sync and async callers of any thread and event loop: a sync caller blocks on
a ``threading.Event``, an async caller awaits a future on its own loop, and the counters
sit behind a thread lock. A released slot goes to the oldest waiter directly (on the
releasing loop at once, on another loop through ``call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

__all__ = ["FifoSlots"]

_Waiter = threading.Event | tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class FifoSlots:
    """``capacity`` slots (``None``: no limit) handed out first come, first served."""

    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity
        self._active = 0
        self._lock = threading.Lock()
        self._waiters: deque[_Waiter] = deque()

    @property
    def active(self) -> int:
        """Slots held now."""
        return self._active

    def _take_now(self) -> bool:
        """Take a free slot if nobody waits for one (under the lock)."""
        if self.capacity is None or (self._active < self.capacity and not self._waiters):
            self._active += 1
            return True
        return False

    def acquire(self) -> None:
        """Take a slot, blocking the calling thread until one is free."""
        with self._lock:
            if self._take_now():
                return
            ready = threading.Event()
            self._waiters.append(ready)
        ready.wait()

    async def acquire_async(self) -> None:
        """Take a slot, waiting without blocking the event loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._take_now():
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
        """Give a slot back, handing it to the oldest waiter if there is one."""
        with self._lock:
            while self._waiters:
                waiter = self._waiters.popleft()
                if isinstance(waiter, threading.Event):
                    waiter.set()
                    return
                loop, future = waiter
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
