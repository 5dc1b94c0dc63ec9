"""The kailash_nb pytest plugin (entry point ``pytest11``: loaded in every pytest session
where kailash_nb is installed; ``-p no:kailash_nb`` turns it off).

- Fixtures: ``workflow_tester`` (a ``WorkflowTester``) and ``kailash_runtime`` (a
  ``LocalRuntime``, closed after the test).
- ``--kailash-perf-report``: at the end of the session, a table of every workflow
  tested with ``WorkflowTester.test_workflow`` (by any tester, fixture or not): the
  test, the workflow, the case, pass or fail, time, peak memory and slowest node.
- ``assert result.outputs == expected`` on a failure lists the differences node by
  node and output by output.

Loading it imports nothing of kailash_nb's runtime: every session pays for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

__all__ = [
    "kailash_runtime",
    "pytest_addoption",
    "pytest_assertrepr_compare",
    "pytest_configure",
    "workflow_tester",
]

_REPORT_PLUGIN = "kailash_nb-perf-report"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--kailash-perf-report``."""
    group = parser.getgroup("kailash_nb", "kailash_nb workflow testing")
    group.addoption(
        "--kailash-perf-report",
        action="store_true",
        default=False,
        help="print the time, peak memory and slowest node of every workflow tested "
        "with WorkflowTester.test_workflow at the end of the session",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Start collecting workflow test results when ``--kailash-perf-report`` is given."""
    if config.getoption("kailash_perf_report", default=False):
        config.pluginmanager.register(PerfReport(), _REPORT_PLUGIN)


@pytest.fixture
def workflow_tester() -> Any:
    """A ``kailash_nb.testing.WorkflowTester`` (each run on a new ``LocalRuntime``)."""
    from kailash_nb.testing.tester import WorkflowTester

    return WorkflowTester()


@pytest.fixture
def kailash_runtime() -> Iterator[Any]:
    """A ``kailash_nb.LocalRuntime`` for the test, closed after it."""
    from kailash_nb.runtime.local import LocalRuntime

    with LocalRuntime() as runtime:
        yield runtime


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: Any, right: Any) -> Any:
    """Explain a failed ``==`` between workflow outputs node by node."""
    if op != "==":
        return None
    from kailash_nb.testing.results import WorkflowOutputs

    if not isinstance(left, WorkflowOutputs) and not isinstance(right, WorkflowOutputs):
        return None
    if not isinstance(left, dict) or not isinstance(right, dict):
        return None
    from kailash_nb.testing.comparison import outputs_difference

    lines = outputs_difference(left, right)
    return ["workflow outputs differ (left: got, right: expected):", *lines]


class PerfReport:
    """The ``--kailash-perf-report`` table: one row per case of every workflow tested,
    labelled with the test that tested it."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self._test: str = "(outside a test)"
        self._stop: Any = None

    def pytest_sessionstart(self) -> None:
        """Listen for results from every ``WorkflowTester`` in this process."""
        from kailash_nb.testing._reports import listen

        self._stop = listen(self.record)

    def pytest_sessionfinish(self) -> None:
        """Stop listening."""
        if self._stop is not None:
            self._stop()
            self._stop = None

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        """Label the rows of results from now on with the test ``nodeid``."""
        self._test = nodeid

    def pytest_runtest_logfinish(self) -> None:
        """The test ended: rows from now on come from outside a test."""
        self._test = "(outside a test)"

    def record(self, result: Any) -> None:
        """Add a row per case of ``result`` (a ``WorkflowTestResult``)."""
        for case in result.cases:
            report = case.performance
            self.rows.append(
                {
                    "test": self._test,
                    "workflow": result.workflow_name,
                    "case": case.name,
                    "result": "passed" if case.success else "FAILED",
                    "time (s)": f"{report.execution_time:.3f}",
                    "memory (MiB)": f"{report.memory_usage_mb:.2f}",
                    "slowest node": _slowest(report),
                    "isolation": report.isolation,
                }
            )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Print the table (or say that no workflow was tested)."""
        terminalreporter.write_sep("=", "kailash_nb workflow performance")
        if not self.rows:
            terminalreporter.write_line("no workflow was tested with WorkflowTester")
            return
        columns = list(self.rows[0])
        widths = {c: max(len(c), *(len(str(row[c])) for row in self.rows)) for c in columns}
        terminalreporter.write_line("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
        for row in self.rows:
            line = "  ".join(str(row[c]).ljust(widths[c]) for c in columns).rstrip()
            terminalreporter.write_line(line)


def _slowest(report: Any) -> str:
    node_id = report.slowest_node
    if node_id is None:
        return "-"
    return f"{node_id} ({report.node_timings[node_id]:.3f} s)"
