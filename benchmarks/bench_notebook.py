"""Notebook benchmark: building and re-running a workflow cell by cell.

Every scenario runs in one in-process IPython shell
(``InteractiveShell.instance()`` with ``%load_ext kailash_nb``), and compares the
notebook against the same work without it, so ratios come from one run:

- defining nodes: a chain of N ``@kn.node`` cells (``def n7(n6): return n6 + 1``)
  is defined cell by cell; then the median cost of one more ``@kn.node`` cell is
  compared with the same cell as a plain ``def`` (the floor; the two alternate),
  at N = 200 and N = 1,000. The time to define the whole chain is reported too,
  against the same N cells as plain ``def``;
- re-running unchanged: ``kn.run()`` of the 200-node chain when every node is
  cached (floor: calling the 200 functions in order);
- editing the middle: the cell of node 100 of the 200-node chain (nodes 0-199) is
  re-run with a changed body, then ``kn.run()``; only that node and its 99
  downstream nodes execute (checked), and the floor is calling those 100 functions.

Each run timing is the median of 5 runs (3 with ``--quick``) after a warm-up; each
cell timing is the median of 20 cells.

Run: ``python benchmarks/bench_notebook.py`` (``--quick`` for fewer repetitions,
``--sizes 200`` to skip the 1,000-node chain).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from timing import median_time

EXTRA_CELLS = 20  # new cells timed after the chain is defined


def node_cell(index: int, prefix: str, *, decorated: bool, step: int = 1) -> str:
    """The cell defining chain node ``index`` (its parameter is the node before it)."""
    decorator = "@kn.node\n" if decorated else ""
    if index == 0:
        return f"{decorator}def {prefix}0():\n    return 0\n"
    return (
        f"{decorator}def {prefix}{index}({prefix}{index - 1}):\n"
        f"    return {prefix}{index - 1} + {step}\n"
    )


class Notebook:
    """An in-process IPython shell with the extension loaded."""

    def __init__(self) -> None:
        from IPython.core.interactiveshell import InteractiveShell

        self.shell = InteractiveShell.instance()
        self.cell("%load_ext kailash_nb")
        self.cell("import kailash_nb as kn")

    def cell(self, source: str) -> None:
        result = self.shell.run_cell(source, store_history=True)
        if not result.success:
            raise RuntimeError(f"cell failed: {source!r}: {result.error_in_exec}")

    def select(self, name: str) -> None:
        self.cell(f"_ = kn.workflow({name!r})")

    @property
    def namespace(self) -> dict[str, Any]:
        return self.shell.user_ns


def timed_cells(notebook: Notebook, pairs: list[tuple[str, str]]) -> tuple[float, float]:
    """Median seconds of the first and of the second cell of each pair; the two are run
    alternately so that a busy machine slows both alike."""
    first, second = [], []
    for one, other in pairs:
        for source, samples in ((one, first), (other, second)):
            started = time.perf_counter()
            notebook.cell(source)
            samples.append(time.perf_counter() - started)
    return statistics.median(first), statistics.median(second)


# -- scenarios ---------------------------------------------------------------------------
def scenario_define(notebook: Notebook, size: int) -> dict[str, float]:
    """Define a ``size``-node chain, then time ``EXTRA_CELLS`` more node cells against
    the same cells as plain ``def``."""
    prefix = f"d{size}_"
    notebook.select(f"define_{size}")
    started = time.perf_counter()
    for index in range(size):
        notebook.cell(node_cell(index, prefix, decorated=True))
    chain = time.perf_counter() - started
    plain_prefix = f"p{size}_"
    for index in range(size):
        notebook.cell(node_cell(index, plain_prefix, decorated=False))
    node_cell_s, plain_cell_s = timed_cells(
        notebook,
        [
            (node_cell(i, prefix, decorated=True), node_cell(i, plain_prefix, decorated=False))
            for i in range(size, size + EXTRA_CELLS)
        ],
    )
    plain_chain_started = time.perf_counter()
    for index in range(size):
        notebook.cell(node_cell(index, f"q{size}_", decorated=False))
    plain_chain = time.perf_counter() - plain_chain_started
    return {
        "chain_s": chain,
        "plain_chain_s": plain_chain,
        "node_cell_ms": node_cell_s * 1e3,
        "plain_cell_ms": plain_cell_s * 1e3,
        "overhead_ms": (node_cell_s - plain_cell_s) * 1e3,
    }


def scenario_rerun(notebook: Notebook, runs: int) -> dict[str, float]:
    """``kn.run()`` of a 200-node chain, unchanged and after editing node 100."""
    size, middle, prefix = 200, 100, "r_"
    notebook.select("rerun")
    for index in range(size):
        notebook.cell(node_cell(index, prefix, decorated=True))
    import kailash_nb as kn

    result = kn.run()
    assert result.value(f"{prefix}{size - 1}") == size - 1, "the chain computed a wrong value"

    def rerun_unchanged() -> None:
        states = {o.state for o in kn.run().outcomes}
        assert states == {"cached"}, f"an unchanged re-run executed nodes: {states}"

    unchanged = median_time(rerun_unchanged, runs)
    functions = [notebook.namespace[f"{prefix}{i}"] for i in range(size)]

    def call_chain(start: int) -> Callable[[], Any]:
        """Call the chain's functions from node ``start`` on (node 0 takes nothing)."""

        def call() -> Any:
            value = functions[0]() if start == 0 else 0
            for function in functions[max(start, 1) :]:
                value = function(value)
            return value

        return call

    floor_all = median_time(call_chain(0), runs)

    # Editing the middle: alternate the step so every edit changes the node.
    steps = iter(range(2, 10_000))
    edit_samples, run_samples = [], []
    for attempt in range(runs + 1):
        step = next(steps)
        started = time.perf_counter()
        notebook.cell(node_cell(middle, prefix, decorated=True, step=step))
        edited = time.perf_counter()
        result = kn.run()
        finished = time.perf_counter()
        executed = [o.node_id for o in result.outcomes if o.state == "completed"]
        expected = [f"{prefix}{i}" for i in range(middle, size)]
        assert executed == expected, f"editing {prefix}{middle} executed {len(executed)} nodes"
        assert result.value(f"{prefix}{size - 1}") == size - 2 + step
        if attempt:
            edit_samples.append(edited - started)
            run_samples.append(finished - edited)
    functions = [notebook.namespace[f"{prefix}{i}"] for i in range(size)]
    floor_downstream = median_time(call_chain(middle), runs)
    edit_run = statistics.median(run_samples)
    return {
        "unchanged_ms": unchanged * 1e3,
        "floor_all_ms": floor_all * 1e3,
        "edit_cell_ms": statistics.median(edit_samples) * 1e3,
        "edit_run_ms": edit_run * 1e3,
        "floor_downstream_ms": floor_downstream * 1e3,
        "edit_overhead_ms": (edit_run - floor_downstream) * 1e3,
    }


# -- report ------------------------------------------------------------------------------
def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" if value < 1000 else f"{value:,.0f}"


def print_report(defines: dict[int, dict[str, float]], rerun: dict[str, float]) -> None:
    rows: list[tuple[str, float | None, float | None, str]] = []
    for size, numbers in defines.items():
        rows += [
            (
                f"define {size:,} chained nodes, all cells (ms)",
                numbers["chain_s"] * 1e3,
                numbers["plain_chain_s"] * 1e3,
                "",
            ),
            (
                f"one more node cell after {size:,} (ms)",
                numbers["node_cell_ms"],
                numbers["plain_cell_ms"],
                "<= +2 ms",
            ),
        ]
    rows += [
        ("re-run 200 nodes, nothing changed (ms)", rerun["unchanged_ms"], rerun["floor_all_ms"],
         "<= 10 ms"),
        ("edit node 100 of 200: the cell (ms)", rerun["edit_cell_ms"], None, ""),
        ("edit node 100 of 200: re-run 100 nodes (ms)", rerun["edit_run_ms"],
         rerun["floor_downstream_ms"], "<= +10 ms"),
    ]  # fmt: skip
    header = (
        f"{'scenario':<46} {'kailash_nb':>11} {'floor':>9} {'ratio':>8} {'diff':>9} {'target':>10}"
    )
    print(header)
    print("-" * len(header))
    for label, mine, floor, target in rows:
        ratio = f"{mine / floor:,.1f}x" if mine and floor else "-"
        diff = f"{mine - floor:+,.2f}" if mine is not None and floor is not None else "-"
        print(f"{label:<46} {_fmt(mine):>11} {_fmt(floor):>9} {ratio:>8} {diff:>9} {target:>10}")
    print()
    print("floor: the same cells as plain `def` (definitions), calling the functions (runs);")
    print("diff is kailash_nb minus the floor, in ms")


def main() -> None:
    """Run every scenario and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs per scenario instead of 5")
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[200, 1000],
        help="chain lengths for the definition scenario (default 200,1000)",
    )
    args = parser.parse_args()
    runs = 3 if args.quick else 5
    notebook = Notebook()
    defines = {size: scenario_define(notebook, size) for size in args.sizes}
    rerun = scenario_rerun(notebook, runs)
    print_report(defines, rerun)


if __name__ == "__main__":
    main()
