"""What ``WorkflowTester.test_workflow`` returns: outputs, failures and figures.

A result is a record, never an exception: ``success`` is true only when every case ran
without a failed node, met every performance requirement and produced the expected
outputs; ``errors`` says, one line each, what went wrong::

    result = tester.test_workflow(workflow, test_data={"load": {"n": 3}})
    assert result.success, result.errors
    result.performance.execution_time, result.performance.memory_usage_mb
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "CaseResult",
    "Failure",
    "FailureKind",
    "PerformanceReport",
    "WorkflowOutputs",
    "WorkflowTestResult",
]

#: ``node``: a node raised; ``requirement``: a performance requirement was not met;
#: ``expected``: an output differs from what was expected; ``run``: the run could not
#: start or did not end (bad parameters, a stopped or crashed test process).
FailureKind = Literal["node", "requirement", "expected", "run"]


@dataclass(frozen=True)
class Failure:
    """One reason a case failed; ``str(failure)`` is its message.

    Attributes:
        kind: what failed (see ``FailureKind``).
        message: one line naming the node, or the requirement, its limit and the
            measured value.
        node_id: the node involved, if any.
        requirement: the requirement not met (``max_execution_time``, ...), if any.
        limit: the requirement's limit.
        measured: the value measured against it.
    """

    kind: FailureKind
    message: str
    node_id: str | None = None
    requirement: str | None = None
    limit: float | None = None
    measured: float | None = None

    def __str__(self) -> str:
        return self.message


class WorkflowOutputs(dict):
    """Each node's outputs (``{node_id: {output: value}}``), as a plain dict; comparing
    it with ``==`` inside ``assert`` shows a node-by-node diff under the kailash_nb
    pytest plugin."""


@dataclass(frozen=True)
class PerformanceReport:
    """The figures of one run (or, on a result of several cases, the worst of them).

    Attributes:
        execution_time: seconds from the run's start to its end (wall clock).
        memory_usage_mb: the run's own peak of allocated memory, in MiB: the most
            memory it held at once, traced by ``tracemalloc`` from the run's start
            (memory held before the run is not counted; see ``memory_method``).
        node_timings: seconds each node ran (summed over cycle iterations).
        isolation: ``"none"`` (the test's own process) or ``"process"`` (a fresh one).
        memory_method: how ``memory_usage_mb`` was measured.
        process_peak_rss_mb: with ``isolation="process"``: the fresh process's peak
            resident set size (interpreter and imports included); else ``None``.
    """

    execution_time: float
    memory_usage_mb: float
    node_timings: dict[str, float] = field(default_factory=dict)
    isolation: str = "none"
    memory_method: str = "tracemalloc peak"
    process_peak_rss_mb: float | None = None

    @property
    def slowest_node(self) -> str | None:
        """The node that ran longest, or ``None`` when no node ran."""
        if not self.node_timings:
            return None
        return max(self.node_timings, key=self.node_timings.__getitem__)


@dataclass(frozen=True)
class CaseResult:
    """One case of a test: one run of the workflow on one set of parameters.

    Attributes:
        name: the case's name (``case 1``, ... unless the test data names it).
        parameters: the run's parameters.
        outputs: each node's outputs (nodes that did not run are absent).
        failures: why the case failed; empty when it passed.
        performance: the run's figures.
        status: how the run ended (``completed``, ``failed``, ``timeout``, ...).
    """

    name: str
    parameters: dict[str, Any]
    outputs: WorkflowOutputs
    failures: tuple[Failure, ...]
    performance: PerformanceReport
    status: str

    @property
    def success(self) -> bool:
        """True when the case has no failure."""
        return not self.failures

    @property
    def errors(self) -> list[str]:
        """The failures' messages."""
        return [failure.message for failure in self.failures]


@dataclass(frozen=True)
class WorkflowTestResult:
    """The result of ``WorkflowTester.test_workflow``: every case's, and their summary.

    ``outputs`` is the one case's outputs, or with several cases a dict of each case's
    outputs by case name; ``performance`` is the one case's figures, or the worst time,
    memory and per-node time over the cases. ``errors`` prefixes each message with its
    case's name when there are several cases.
    """

    workflow_name: str
    cases: tuple[CaseResult, ...]

    @property
    def success(self) -> bool:
        """True when every case passed."""
        return all(case.success for case in self.cases)

    @property
    def failures(self) -> tuple[Failure, ...]:
        """Every case's failures, in case order."""
        return tuple(failure for case in self.cases for failure in case.failures)

    @property
    def errors(self) -> list[str]:
        """One line per failure: what failed, naming the node or the requirement."""
        if len(self.cases) == 1:
            return self.cases[0].errors
        return [f"{case.name}: {message}" for case in self.cases for message in case.errors]

    @property
    def outputs(self) -> Any:
        """The one case's ``WorkflowOutputs``, or ``{case_name: outputs}`` for several."""
        if len(self.cases) == 1:
            return self.cases[0].outputs
        return {case.name: case.outputs for case in self.cases}

    @property
    def performance(self) -> PerformanceReport:
        """The one case's figures, or the worst over the cases."""
        reports = [case.performance for case in self.cases]
        if len(reports) == 1:
            return reports[0]
        timings: dict[str, float] = {}
        for report in reports:
            for node_id, seconds in report.node_timings.items():
                timings[node_id] = max(seconds, timings.get(node_id, 0.0))
        peaks = [r.process_peak_rss_mb for r in reports if r.process_peak_rss_mb is not None]
        return PerformanceReport(
            execution_time=max(r.execution_time for r in reports),
            memory_usage_mb=max(r.memory_usage_mb for r in reports),
            node_timings=timings,
            isolation=reports[0].isolation,
            memory_method=reports[0].memory_method,
            process_peak_rss_mb=max(peaks) if peaks else None,
        )

    @property
    def node_timings(self) -> dict[str, float]:
        """Seconds each node ran (``performance.node_timings``)."""
        return self.performance.node_timings

    def assert_success(self) -> None:
        """Raise ``AssertionError`` listing every failure unless the test passed."""
        if not self.success:
            raise AssertionError(
                f"workflow {self.workflow_name!r} failed its test:\n  " + "\n  ".join(self.errors)
            )

    def __repr__(self) -> str:
        # First the verdict and errors: pytest shows this repr, cut to a few hundred
        # characters, when `assert result.success` fails.
        if self.success:
            report = self.performance
            return (
                f"<WorkflowTestResult {self.workflow_name!r} passed: "
                f"{report.execution_time:.3f} s, {report.memory_usage_mb:.1f} MiB>"
            )
        return f"<WorkflowTestResult failed: {'; '.join(self.errors)} [{self.workflow_name!r}]>"
