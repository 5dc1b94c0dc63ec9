"""What the runtime options ``memory_limit_mb`` and ``enable_metrics`` cost a run.

Each workflow is executed ``--runs`` times in a row (the fastest of 7 such batches
after a warm-up, the one least disturbed by other processes) by four runtimes: no
options (the baseline), ``memory_limit_mb`` (far above the process's memory, so no run
is stopped), ``enable_metrics=True``, and both. Printed: microseconds per run and the
ratio to the baseline (1.00: no cost).

- 5-node chain, ``LocalRuntime.execute``: runs inline in the calling thread, with or
  without the limit; the limit adds a memory reading as each node ends and hands the
  run to the watcher thread: the largest relative cost, on nodes that do nothing.
- 10 independent nodes, ``LocalRuntime.execute``: runs on the event loop with nodes in
  worker threads (thread hand-offs dominate, so this one is noisy).
- 5-node chain, ``AsyncLocalRuntime.execute_async`` on one event loop.

The memory reading itself (``process_rss_bytes``, ``/proc/self/statm``) is timed alone.
Run: ``python benchmarks/bench_runtime_limits.py`` (``--quick`` for fewer runs).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

from kailash_nb.monitoring.memory import process_rss_bytes
from kailash_nb.runtime.async_local import AsyncLocalRuntime
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.workflow.builder import WorkflowBuilder

CODE = "result = (x or 0) + 1"


def chain(length: int):
    """``length`` PythonCodeNodes, each feeding the next."""
    builder = WorkflowBuilder()
    for index in range(length):
        builder.add_node("PythonCodeNode", f"n{index}", {"code": CODE, "x": 0})
        if index:
            builder.add_connection(f"n{index - 1}", "result", f"n{index}", "x")
    return builder.build()


def fan_out(width: int):
    """``width`` independent PythonCodeNodes."""
    builder = WorkflowBuilder()
    for index in range(width):
        builder.add_node("PythonCodeNode", f"n{index}", {"code": CODE, "x": 0})
    return builder.build()


def configurations() -> dict[str, dict[str, Any]]:
    """The runtimes' options, by label; the limit is 64 GiB above the memory now."""
    limit_mb = (process_rss_bytes() >> 20) + 64 * 1024
    return {
        "off": {},
        "memory_limit_mb": {"memory_limit_mb": limit_mb},
        "enable_metrics": {"enable_metrics": True},
        "both": {"memory_limit_mb": limit_mb, "enable_metrics": True},
    }


def sync_batch(runtime: LocalRuntime, workflow: Any, runs: int) -> Callable[[], None]:
    def batch() -> None:
        for _ in range(runs):
            runtime.execute(workflow)

    return batch


def async_batch(runtime: AsyncLocalRuntime, workflow: Any, runs: int) -> Callable[[], None]:
    loop = asyncio.new_event_loop()

    async def many() -> None:
        for _ in range(runs):
            await runtime.execute_async(workflow)

    def batch() -> None:
        loop.run_until_complete(many())

    return batch


def best_time(action: Callable[[], Any], batches: int = 7) -> float:
    """The fastest wall seconds of ``action`` over ``batches`` runs after one warm-up."""
    action()
    samples = []
    for _ in range(batches):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return min(samples)


def measure(runs: int) -> dict[str, dict[str, float]]:
    """Microseconds per run, by scenario and configuration."""
    scenarios = {
        "5-node chain, LocalRuntime": (LocalRuntime, chain(5), sync_batch),
        "10 independent nodes, LocalRuntime": (LocalRuntime, fan_out(10), sync_batch),
        "5-node chain, AsyncLocalRuntime": (AsyncLocalRuntime, chain(5), async_batch),
    }
    report: dict[str, dict[str, float]] = {}
    for scenario, (runtime_class, workflow, make_batch) in scenarios.items():
        report[scenario] = {}
        for label, options in configurations().items():
            runtime = runtime_class(**options)
            seconds = best_time(make_batch(runtime, workflow, runs))
            report[scenario][label] = seconds / runs * 1e6
    return report


def reading_cost(count: int = 100_000) -> float:
    """Microseconds per ``process_rss_bytes()`` call."""
    started = time.perf_counter()
    for _ in range(count):
        process_rss_bytes()
    return (time.perf_counter() - started) / count * 1e6


def main() -> None:
    """Run every scenario and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs per batch")
    parser.add_argument("--runs", type=int, default=None, help="runs per batch")
    args = parser.parse_args()
    runs = args.runs or (100 if args.quick else 500)
    report = measure(runs)
    labels = list(next(iter(report.values())))
    header = f"{'us per run (ratio to off)':<38}" + "".join(f"{label:>22}" for label in labels)
    print(header)
    print("-" * len(header))
    for scenario, values in report.items():
        base = values["off"]
        cells = "".join(f"{f'{value:,.0f} ({value / base:.2f}x)':>22}" for value in values.values())
        print(f"{scenario:<38}{cells}")
    print()
    print(f"one memory reading (/proc/self/statm, pread): {reading_cost():.2f} us")


if __name__ == "__main__":
    main()
