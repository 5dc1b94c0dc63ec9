"""Engine benchmark: kailash_nb against a plain-Python floor and, when installed, Kailash.

Each scenario is the median of 5 runs after a warm-up:

- chain of 1,000 PythonCodeNodes (``result = x + 1``): build time, and execute
  overhead per node over the floor (the same compiled snippets run in order);
- 50 independent async nodes each awaiting ``asyncio.sleep(0.02)``: wall time under
  LocalRuntime and AsyncLocalRuntime (floor: ``asyncio.gather`` of the sleeps);
- a 5-node chain executed 500 times: executions per second;
- ``python -c "import kailash_nb"`` above bare interpreter start, and peak RSS of a
  process that built and ran the 1,000-node chain;
- with ``--history``: the 5-node chain's executions per second with run history off
  and on (an SQLite store in a temporary directory; the time to write the history
  is included), as a ratio.

Run: ``python benchmarks/bench_engine.py`` (``--quick`` for fewer repetitions).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from timing import median_time

CHAIN_CODE = "result = x + 1"
SLEEP_CODE = "await asyncio.sleep(0.02)\nresult = 1"
KAILASH_SLEEP_CODE = "import asyncio\nawait asyncio.sleep(0.02)\nresult = 1"


# -- workflows -------------------------------------------------------------------------
def chain_builder(module: str, length: int, code: str = CHAIN_CODE):
    """A WorkflowBuilder (of ``module``: kailash_nb or kailash) holding a chain."""
    builder_module = importlib.import_module(f"{module}.workflow.builder")
    builder = builder_module.WorkflowBuilder()
    for index in range(length):
        builder.add_node("PythonCodeNode", f"n{index}", {"code": code})
        if index:
            builder.add_connection(f"n{index - 1}", "result", f"n{index}", "x")
    return builder


def fan_out_builder(module: str, width: int, code: str):
    """A WorkflowBuilder with ``width`` independent AsyncPythonCodeNodes."""
    builder_module = importlib.import_module(f"{module}.workflow.builder")
    builder = builder_module.WorkflowBuilder()
    for index in range(width):
        builder.add_node("AsyncPythonCodeNode", f"a{index}", {"code": code})
    return builder


def runtimes(module: str):
    """``(LocalRuntime, AsyncLocalRuntime)`` classes of ``module``."""
    local = importlib.import_module(f"{module}.runtime.local").LocalRuntime
    async_local = importlib.import_module(f"{module}.runtime.async_local").AsyncLocalRuntime
    return local, async_local


# -- floors ----------------------------------------------------------------------------
def chain_floor(length: int) -> Callable[[], int]:
    """The chain's work without an engine: the compiled snippet run ``length`` times."""
    code = compile(CHAIN_CODE, "<floor>", "exec")

    def run() -> int:
        value = 0
        for _ in range(length):
            namespace = {"x": value}
            exec(code, namespace)
            value = namespace["result"]
        return value

    return run


async def sleep_floor(width: int) -> None:
    """Fifty sleeps gathered by hand."""
    await asyncio.gather(*(asyncio.sleep(0.02) for _ in range(width)))


# -- scenarios ---------------------------------------------------------------------------
def scenario_chain(module: str, runs: int) -> dict[str, float]:
    length = 1000
    assemble = median_time(lambda: chain_builder(module, length), runs)
    builder = chain_builder(module, length)
    build = median_time(builder.build, runs)
    workflow = builder.build()
    local, _ = runtimes(module)
    runtime = local()
    parameters = {"n0": {"x": 0}}
    execute = median_time(lambda: runtime.execute(workflow, parameters=parameters), runs)
    floor = median_time(chain_floor(length), runs)
    return {
        "assemble_ms": assemble * 1e3,
        "build_ms": build * 1e3,
        "execute_ms": execute * 1e3,
        "floor_ms": floor * 1e3,
        "overhead_us_per_node": (execute - floor) / length * 1e6,
    }


def scenario_fan_out(module: str, runs: int) -> dict[str, float]:
    width = 50
    code = SLEEP_CODE if module == "kailash_nb" else KAILASH_SLEEP_CODE
    workflow = fan_out_builder(module, width, code).build()
    local, async_local = runtimes(module)
    runtime = local()
    local_wall = median_time(lambda: runtime.execute(workflow), runs)
    async_runtime = async_local()

    async def timed_async() -> float:
        samples = []
        for _ in range(runs + 1):
            started = time.perf_counter()
            await async_runtime.execute_workflow_async(workflow, {})
            samples.append(time.perf_counter() - started)
        return statistics.median(samples[1:])

    async_wall = asyncio.run(timed_async())

    async def timed_floor() -> float:
        samples = []
        for _ in range(runs + 1):
            started = time.perf_counter()
            await sleep_floor(width)
            samples.append(time.perf_counter() - started)
        return statistics.median(samples[1:])

    floor = asyncio.run(timed_floor())
    return {
        "local_ms": local_wall * 1e3,
        "async_ms": async_wall * 1e3,
        "floor_ms": floor * 1e3,
    }


def scenario_throughput(module: str, runs: int) -> dict[str, float]:
    executions = 500
    workflow = chain_builder(module, 5).build()
    local, _ = runtimes(module)
    runtime = local()
    parameters = {"n0": {"x": 0}}

    def batch() -> None:
        for _ in range(executions):
            runtime.execute(workflow, parameters=parameters)

    seconds = median_time(batch, runs)
    floor_run = chain_floor(5)
    floor = median_time(lambda: [floor_run() for _ in range(executions)], runs)
    return {"per_second": executions / seconds, "floor_per_second": executions / floor}


def scenario_history(runs: int) -> dict[str, float]:
    """Executions per second of the 5-node chain with history off and on."""
    import tempfile

    from kailash_nb.runtime.local import LocalRuntime

    executions = 500
    workflow = chain_builder("kailash_nb", 5).build()
    parameters = {"n0": {"x": 0}}
    rates = {}
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/history.db"
        for label, history in (("off", False), ("on", True)):
            runtime = LocalRuntime(history=history, database_url=url)

            def batch(runtime=runtime) -> None:
                for _ in range(executions):
                    runtime.execute(workflow, parameters=parameters)
                runtime.flush_history()

            rates[label] = executions / median_time(batch, runs)
            runtime.close()
    return {"off_per_second": rates["off"], "on_per_second": rates["on"]}


def scenario_startup(runs: int) -> dict[str, float]:
    def timed(statement: str) -> float:
        return median_time(
            lambda: subprocess.run([sys.executable, "-c", statement], check=True), runs
        )

    bare = timed("pass")
    package = timed("import kailash_nb")
    working_set = timed(
        "import kailash_nb.workflow.builder, kailash_nb.runtime.local, kailash_nb.nodes.code"
    )
    rss_script = (
        "from kailash_nb.workflow.builder import WorkflowBuilder\n"
        "from kailash_nb.runtime.local import LocalRuntime\n"
        "b = WorkflowBuilder()\n"
        "for i in range(1000):\n"
        f"    b.add_node('PythonCodeNode', f'n{{i}}', {{'code': {CHAIN_CODE!r}}})\n"
        "    if i: b.add_connection(f'n{i - 1}', 'result', f'n{i}', 'x')\n"
        "LocalRuntime().execute(b.build(), parameters={'n0': {'x': 0}})\n"
        # VmHWM is this process's own peak; ru_maxrss can carry the parent's across exec.
        "print(next(line.split()[1] for line in open('/proc/self/status')\n"
        "           if line.startswith('VmHWM')))\n"
    )
    peak_kib = int(
        subprocess.run(
            [sys.executable, "-c", rss_script], check=True, capture_output=True, text=True
        ).stdout
    )
    return {
        "import_ms": (package - bare) * 1e3,
        "import_working_set_ms": (working_set - bare) * 1e3,
        "peak_rss_mib": peak_kib / 1024,
    }


# -- report ------------------------------------------------------------------------------
def ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "-"
    return f"{numerator / denominator:,.1f}x"


def print_report(ours: dict[str, dict[str, float]], theirs: dict[str, dict[str, float]]) -> None:
    def get(source: dict, scenario: str, key: str) -> float | None:
        return source.get(scenario, {}).get(key)

    rows = [
        ("1,000-node chain: add_node/connect (ms)", "chain", "assemble_ms", "", True),
        ("1,000-node chain: build() (ms)", "chain", "build_ms", "<= 10", True),
        ("1,000-node chain: execute (ms)", "chain", "execute_ms", "", True),
        ("1,000-node chain: floor (ms)", "chain", "floor_ms", "", None),
        ("1,000-node chain: overhead (us/node)", "chain", "overhead_us_per_node", "<= 20", True),
        ("50 async sleeps: LocalRuntime (ms)", "fan_out", "local_ms", "<= 23", True),
        ("50 async sleeps: AsyncLocalRuntime (ms)", "fan_out", "async_ms", "<= 23", True),
        ("50 async sleeps: floor (ms)", "fan_out", "floor_ms", "", None),
        ("5-node chain: executions/s", "throughput", "per_second", ">= 10,000", False),
        ("5-node chain: floor executions/s", "throughput", "floor_per_second", "", None),
        ("import kailash_nb above bare start (ms)", "startup", "import_ms", "<= 150", None),
        ("import builder+runtime+code nodes (ms)", "startup", "import_working_set_ms", "", None),
        ("peak RSS after 1,000-node chain (MiB)", "startup", "peak_rss_mib", "<= 50", None),
    ]
    header = (
        f"{'scenario':<42} {'kailash_nb':>12} {'kailash':>12} {'vs kailash':>11} {'target':>10}"
    )
    print(header)
    print("-" * len(header))
    for label, scenario, key, target, lower_is_better in rows:
        mine = get(ours, scenario, key)
        reference = get(theirs, scenario, key)
        if lower_is_better is None:
            versus = "-"
        elif lower_is_better:
            versus = ratio(reference, mine)
        else:
            versus = ratio(mine, reference)
        print(f"{label:<42} {_fmt(mine):>12} {_fmt(reference):>12} {versus:>11} {target:>10}")
    chain = ours["chain"]
    throughput = ours["throughput"]
    print()
    print(
        f"execute vs floor, 1,000-node chain: {ratio(chain['execute_ms'], chain['floor_ms'])}; "
        f"5-node chain: {ratio(throughput['floor_per_second'], throughput['per_second'])} "
        "slower than the floor"
    )
    fan_out = ours["fan_out"]
    print(
        f"50 async sleeps vs 20 ms: LocalRuntime {fan_out['local_ms'] / 20:.2f}x, "
        f"AsyncLocalRuntime {fan_out['async_ms'] / 20:.2f}x (target <= 1.15x)"
    )


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def main() -> None:
    """Run every scenario and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs per scenario instead of 5")
    parser.add_argument("--no-kailash", action="store_true", help="skip the Kailash reference")
    parser.add_argument(
        "--history", action="store_true", help="also compare executions/s with history on and off"
    )
    args = parser.parse_args()
    runs = 3 if args.quick else 5
    ours = {
        "chain": scenario_chain("kailash_nb", runs),
        "fan_out": scenario_fan_out("kailash_nb", runs),
        "throughput": scenario_throughput("kailash_nb", runs),
        "startup": scenario_startup(runs),
    }
    theirs: dict[str, dict[str, float]] = {}
    if not args.no_kailash and importlib.util.find_spec("kailash") is not None:
        import logging
        import warnings

        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        theirs = {
            "chain": scenario_chain("kailash", runs),
            "fan_out": scenario_fan_out("kailash", runs),
            "throughput": scenario_throughput("kailash", runs),
        }
    else:
        print("kailash is not installed: reporting kailash_nb and the floor only\n")
    print_report(ours, theirs)
    if args.history:
        history = scenario_history(runs)
        print()
        print(f"{'5-node chain with run history':<42} {'executions/s':>12}")
        print(f"{'  history off':<42} {history['off_per_second']:>12,.0f}")
        print(f"{'  history on (SQLite, writes included)':<42} {history['on_per_second']:>12,.0f}")
        print(
            f"history on / off: {history['on_per_second'] / history['off_per_second']:.2f} "
            "(target >= 0.50)"
        )


if __name__ == "__main__":
    main()
