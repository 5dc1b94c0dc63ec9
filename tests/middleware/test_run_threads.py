"""``RunThreads``: blocking calls on worker threads, awaited from the event loop."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from kailash_nb.middleware.execution._thread_pool import RunThreads


def test_call_runs_off_the_loop_thread_and_returns_the_result():
    threads = RunThreads(2)

    async def main() -> tuple[str, int]:
        name = await threads.call(lambda: threading.current_thread().name)
        value = await threads.call(pow, 2, 10)
        return name, value

    name, value = asyncio.run(main())
    threads.shutdown()
    assert name.startswith("kailash-nb-gateway-run-")
    assert value == 1024


def test_a_call_runs_in_a_copy_of_the_callers_context():
    threads = RunThreads(1)
    request = contextvars.ContextVar("request", default=None)

    def read_then_set() -> str | None:
        seen = request.get()
        request.set("changed on the thread")
        return seen

    async def main() -> tuple[str | None, str | None, str | None]:
        request.set("req-1")
        seen = await threads.call(read_then_set)
        request.set("req-2")
        again = await threads.call(read_then_set)
        return seen, again, request.get()

    seen, again, after = asyncio.run(main())
    threads.shutdown()
    assert (seen, again, after) == ("req-1", "req-2", "req-2")


def test_exception_reaches_the_awaiting_caller():
    threads = RunThreads(1)

    def boom() -> None:
        raise KeyError("missing")

    async def main() -> None:
        await threads.call(boom)

    with pytest.raises(KeyError, match="missing"):
        asyncio.run(main())
    threads.shutdown()


def test_at_most_size_calls_run_at_once_and_the_loop_stays_free():
    threads = RunThreads(2)
    running = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        task = asyncio.create_task(ticker())
        await asyncio.gather(*(threads.call(work) for _ in range(6)))
        task.cancel()
        return ticks

    ticks = asyncio.run(main())
    threads.shutdown()
    assert peak == 2
    assert ticks >= 5  # the loop kept running while the calls blocked their threads


def test_shutdown_refuses_new_calls_and_stops_the_threads():
    threads = RunThreads(3)

    async def main() -> None:
        await threads.call(int)

    asyncio.run(main())
    workers = list(threads._threads)
    threads.shutdown()
    for worker in workers:
        worker.join(timeout=5)
        assert not worker.is_alive()

    async def again() -> None:
        threads.call(int)

    with pytest.raises(RuntimeError, match="shut down"):
        asyncio.run(again())


def test_size_below_one_is_refused():
    with pytest.raises(ValueError, match="size must be >= 1"):
        RunThreads(0)
