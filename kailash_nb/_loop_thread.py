"""Run a coroutine to completion from synchronous code, even inside a running loop.

A Jupyter kernel already runs an asyncio loop in the main thread, so sync entry
points cannot call ``asyncio.run``. They hand the coroutine to one long-lived
event loop on a daemon thread instead, which also saves creating a loop per call.
A call made from that thread itself (a sync node running a nested workflow) gets
a short-lived loop on a fresh thread, so it cannot deadlock.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import asyncio

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def _loop_forever(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    import asyncio

    asyncio.set_event_loop(loop)
    ready.set()
    loop.run_forever()


def _shared_loop() -> asyncio.AbstractEventLoop:
    import asyncio  # imported on first use: sequential runs never need it

    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(
                target=_loop_forever,
                args=(loop, ready),
                name="kailash-nb-loop",
                daemon=True,
            )
            thread.start()
            ready.wait()
            _loop, _thread = loop, thread
        return _loop


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the shared background loop and wait for its result.

    A ``KeyboardInterrupt`` while waiting (a notebook interrupt) cancels the coroutine.
    """
    import asyncio

    if threading.current_thread() is _thread:
        with concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="kailash-nb-nested"
        ) as pool:
            # The caller's context (its log ids) goes along, as run_coroutine_threadsafe's does.
            return pool.submit(contextvars.copy_context().run, asyncio.run, coro).result()
    future = asyncio.run_coroutine_threadsafe(coro, _shared_loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise
