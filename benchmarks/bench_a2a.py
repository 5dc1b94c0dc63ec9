"""What the A2A coordinator adds to a task (``kailash_nb.nodes.ai.coordinator``).

Twenty in-process agents, each ``await anyio.sleep(0.01)`` per task and running one
task at a time (``concurrency=1``), take 200 tasks submitted at once (``submit_many``;
``max_concurrent_tasks=200``, ``task_queue_limit=10000``) under ``weighted_round_robin``
with equal static weights, then the same with ``performance_monitoring=True`` (the
seed's configuration: weights from observed success rate and latency).

The model: an agent runs one task at a time, so with the tasks spread evenly the
ideal wall time is ``200 / 20 x 10 ms = 100 ms``. The script prints the median wall
time of ``--runs`` batches (after a warm-up batch), the ideal, their ratio (the target
is <= 1.2), and a second baseline: the same sleeps with no coordinator (20 loops of 10
sleeps each), which shows how much of the gap is the event loop's sleep overshoot.

Then the weighted strategy's shares: the agents get static weights 1, 2, 3, 4 (in
turn), ``--share-tasks`` tasks are run (default 2017, not a whole number of weight
cycles), and each agent's share of the tasks is printed against its weight's share of
the total weight, with the largest relative deviation (the target is <= 5 %).

Run: ``python benchmarks/bench_a2a.py [--runs R] [--share-tasks N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import anyio

from kailash_nb.nodes.ai.agents import Agent
from kailash_nb.nodes.ai.coordinator import A2ACoordinator

AGENTS = 20
TASKS = 200
SLEEP = 0.01


def make_agent(index: int, weight: float = 1.0) -> Agent:
    """An agent that sleeps ``SLEEP`` seconds per task, one task at a time."""

    async def work(task: dict) -> int:
        await anyio.sleep(SLEEP)
        return index

    return Agent(f"agent-{index:02d}", work, ["work"], weight=weight, concurrency=1)


def coordinator(weights: list[float], *, monitored: bool = False) -> A2ACoordinator:
    """A coordinator over one agent per weight, configured as the seed's block
    (``performance_monitoring`` as ``monitored``)."""
    result = A2ACoordinator(
        strategy="weighted_round_robin",
        max_concurrent_tasks=200,
        task_queue_limit=10_000,
        performance_monitoring=monitored,
    )
    for index, weight in enumerate(weights):
        result.register(make_agent(index, weight))
    return result


async def batch(target: A2ACoordinator, count: int) -> float:
    """Seconds to run ``count`` tasks submitted at once; every one must succeed."""
    tasks = [{"required_capabilities": ["work"]} for _ in range(count)]
    started = time.perf_counter()
    outcomes = await target.submit_many(tasks)
    elapsed = time.perf_counter() - started
    failed = [outcome for outcome in outcomes if not outcome["success"]]
    if failed:
        raise SystemExit(f"{len(failed)} tasks failed, first: {failed[0]}")
    return elapsed


async def sleeps_only() -> float:
    """Seconds for 20 loops of 10 sleeps each, no coordinator."""

    async def loop() -> None:
        for _ in range(TASKS // AGENTS):
            await anyio.sleep(SLEEP)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(AGENTS):
            group.start_soon(loop)
    return time.perf_counter() - started


async def main(runs: int, share_tasks: int) -> None:
    """Print the timing and the shares."""
    target = coordinator([1.0] * AGENTS)
    await batch(target, TASKS)
    times = [await batch(target, TASKS) for _ in range(runs)]
    await sleeps_only()
    baseline = statistics.median([await sleeps_only() for _ in range(runs)])
    wall = statistics.median(times)
    ideal = TASKS / AGENTS * SLEEP
    print(f"{TASKS} tasks over {AGENTS} agents (10 ms each, one task at a time), {runs} runs")
    print(f"  wall time (median)      {wall * 1000:7.1f} ms")
    print(f"  ideal (200/20 x 10 ms)  {ideal * 1000:7.1f} ms   ratio {wall / ideal:.3f}")
    print(f"  sleeps, no coordinator  {baseline * 1000:7.1f} ms   ratio {wall / baseline:.3f}")
    print(f"  coordinator overhead    {(wall - baseline) / TASKS * 1e6:7.1f} us per task")
    monitored = coordinator([1.0] * AGENTS, monitored=True)
    await batch(monitored, TASKS)
    seed = statistics.median([await batch(monitored, TASKS) for _ in range(runs)])
    print(
        f"  with performance_monitoring=True (the seed's config): {seed * 1000:.1f} ms, "
        f"ratio {seed / ideal:.3f}"
    )

    weights = [float(1 + index % 4) for index in range(AGENTS)]
    shared = coordinator(weights)
    await batch(shared, share_tasks)
    snapshot = shared.metrics()["agents"]
    total_weight = sum(weights)
    worst = 0.0
    print(f"\nweighted_round_robin shares over {share_tasks} tasks (static weights 1-4)")
    for index, weight in enumerate(weights):
        share = snapshot[f"agent-{index:02d}"]["share"]
        expected = weight / total_weight
        deviation = abs(share - expected) / expected
        worst = max(worst, deviation)
        print(
            f"  agent-{index:02d} weight {weight:.0f}  share {share:.4f}  expected {expected:.4f}"
        )
    print(f"  max deviation {worst * 100:.2f} % (target <= 5 %)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--share-tasks", type=int, default=2017)
    arguments = parser.parse_args()
    anyio.run(main, arguments.runs, arguments.share_tasks)
