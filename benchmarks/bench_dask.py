"""What ``DaskRuntime`` costs and gains on a LocalCluster, as ratios from one run.

1. Per-node overhead against dask itself. The same trivial functions
   (``PythonCodeNode.from_function``) run as a workflow under ``DaskRuntime`` and as
   plain ``client.submit`` calls in dependency order (each call given its sources'
   futures, everything gathered at the end, as ``DaskRuntime`` gathers the results), in
   two shapes: a 20-node chain and 20 independent nodes joined by one. Printed:
   milliseconds per node and the ratio DaskRuntime / direct submit (target <= 1.2).
2. Parallel speed-up: 16 independent CPU-bound nodes (pure-Python loops calibrated to
   about 200 ms each in this process) under ``DaskRuntime`` on a LocalCluster of 2
   single-threaded worker processes, against ``LocalRuntime`` in one process (where the
   GIL serializes them). Printed: wall seconds and the ratio (target <= 0.6).

   The same functions submitted directly with ``client.submit`` are timed too: the
   control for how much parallelism the machine gives two worker processes right now.

The contenders of each figure are timed in turns (one run of each, ``--runs`` times,
after a warm-up) and each one's median is printed, so a change in the machine's load
during the benchmark weighs on all of them alike. Run: ``python
benchmarks/bench_dask.py`` (``--quick`` for fewer runs).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from distributed import Client, LocalCluster

from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.runtime.dask import DaskRuntime
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.workflow.builder import WorkflowBuilder

WIDTH = 20
CPU_NODES = 16


def step(x: int = 0) -> int:
    """A node that does next to nothing: the run's overhead is all there is."""
    return x + 1


def join(**values: int) -> int:
    return sum(values.values())


def burn(rounds: int) -> int:
    """Pure-Python work holding the GIL for the whole call."""
    total = 0
    for index in range(rounds):
        total = (total + index * index) % 1_000_003
    return total


def chain_shape() -> list[tuple[str, Callable[..., Any], list[str]]]:
    """``(node id, function, sources)`` in dependency order: a chain."""
    return [(f"n{i}", step, [f"n{i - 1}"] if i else []) for i in range(WIDTH)]


def fan_in_shape() -> list[tuple[str, Callable[..., Any], list[str]]]:
    """``WIDTH`` independent nodes and one that takes all of their results."""
    nodes = [(f"n{i}", step, []) for i in range(WIDTH)]
    return [*nodes, ("join", join, [node_id for node_id, _, _ in nodes])]


def workflow_of(shape: list[tuple[str, Callable[..., Any], list[str]]]):
    builder = WorkflowBuilder()
    for node_id, function, sources in shape:
        node = PythonCodeNode.from_function(function)
        if function is step and not sources:
            builder.add_node(node, node_id, {"x": 0})
        else:
            builder.add_node(node, node_id)
        for source in sources:
            target_input = "x" if function is step else source
            builder.add_connection(source, "result", node_id, target_input)
    return builder.build()


def submit_directly(client: Client, shape) -> None:
    """The same functions submitted with their sources' futures, then gathered."""
    futures: dict[str, Any] = {}
    for node_id, function, sources in shape:
        if function is step:
            args = [futures[sources[0]]] if sources else [0]
            futures[node_id] = client.submit(function, *args, pure=False)
        else:
            kwargs = {source: futures[source] for source in sources}
            futures[node_id] = client.submit(function, pure=False, **kwargs)
    client.gather(list(futures.values()))


def in_turns(actions: dict[str, Callable[[], Any]], runs: int) -> dict[str, float]:
    """Median wall seconds of each action, timed in turns ``runs`` times after one
    warm-up of each."""
    for action in actions.values():
        action()
    samples: dict[str, list[float]] = {label: [] for label in actions}
    for _ in range(runs):
        for label, action in actions.items():
            started = time.perf_counter()
            action()
            samples[label].append(time.perf_counter() - started)
    return {label: statistics.median(times) for label, times in samples.items()}


def calibrate(target_seconds: float = 0.2) -> int:
    """Loop rounds that take about ``target_seconds`` in this process (the median of
    five timings, before any worker process starts)."""
    rounds = 1_000_000
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        burn(rounds)
        samples.append(time.perf_counter() - started)
    return int(rounds * target_seconds / statistics.median(samples))


def cpu_workflow(rounds: int):
    builder = WorkflowBuilder()
    node = PythonCodeNode.from_function(burn)
    for index in range(CPU_NODES):
        builder.add_node(node, f"cpu{index}", {"rounds": rounds})
    return builder.build()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 runs per figure")
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    rounds = calibrate()
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
        DaskRuntime(client) as runtime,
    ):
        print(f"per-node overhead, {runs} runs each (ms per node; ratio DaskRuntime / submit)")
        for label, shape in (("20-node chain", chain_shape()), ("20 + join", fan_in_shape())):
            workflow = workflow_of(shape)
            times = in_turns(
                {
                    "runtime": lambda w=workflow: runtime.execute(w),
                    "submit": lambda s=shape: submit_directly(client, s),
                },
                runs,
            )
            per_node = {name: seconds / len(shape) for name, seconds in times.items()}
            print(
                f"  {label:<14} DaskRuntime {per_node['runtime'] * 1e3:6.2f}  submit "
                f"{per_node['submit'] * 1e3:6.2f}  ratio "
                f"{per_node['runtime'] / per_node['submit']:5.2f}"
            )
        workflow = cpu_workflow(rounds)
        local = LocalRuntime()
        times = in_turns(
            {
                "local": lambda: local.execute(workflow),
                "runtime": lambda: runtime.execute(workflow),
                "submit": lambda: client.gather(
                    [client.submit(burn, rounds, pure=False) for _ in range(CPU_NODES)]
                ),
            },
            max(3, runs // 2),
        )
        print(
            f"{CPU_NODES} CPU-bound nodes (~200 ms each), wall s: LocalRuntime "
            f"{times['local']:.2f}  DaskRuntime (2 workers x 1 thread) {times['runtime']:.2f}  "
            f"ratio {times['runtime'] / times['local']:.2f}  (control: client.submit "
            f"{times['submit']:.2f}, ratio {times['submit'] / times['local']:.2f})"
        )


if __name__ == "__main__":
    main()
