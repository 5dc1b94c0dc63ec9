"""One case of a workflow test, run and measured in this process.

The run goes through ``LocalRuntime.execute_outcome`` (so a failed node is reported,
never raised past the test), measured by ``RunMeter``; the per-node timings come from
the run's timeline on the runtime's event bus. Then the case is judged: the nodes that
failed, the requirements not met, the outputs that differ from the expected ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from kailash_nb.runtime.events import NodeTiming, RunEvent
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.runtime.outcome import RunOutcome
from kailash_nb.sdk_exceptions import KailashException
from kailash_nb.testing.cases import Case
from kailash_nb.testing.comparison import expected_output_failures
from kailash_nb.testing.performance import MEMORY_METHOD, RunMeter, requirement_failures
from kailash_nb.testing.results import CaseResult, Failure, PerformanceReport, WorkflowOutputs
from kailash_nb.workflow.graph import Workflow

__all__ = ["run_case"]


def run_case(
    workflow: Workflow,
    case: Case,
    limits: Mapping[str, float],
    runtime: LocalRuntime | None = None,
    *,
    isolation: str = "none",
) -> CaseResult:
    """Run ``case`` of ``workflow`` and judge it against ``limits`` and its expected
    outputs.

    ``runtime``: the caller's runtime, used as it is; by default a new
    ``LocalRuntime`` whose ``workflow_timeout`` is ``max_execution_time`` (if given), so
    a run past the limit is stopped there.
    """
    own_runtime = runtime is None
    if runtime is None:
        runtime = LocalRuntime(workflow_timeout=limits.get("max_execution_time"))
    run_id = str(uuid.uuid4())
    timelines: list[tuple[NodeTiming, ...]] = []

    def keep_timeline(event: Any) -> None:
        if isinstance(event, RunEvent) and event.run_id == run_id and event.timeline:
            timelines.append(event.timeline)

    outcome: RunOutcome | None = None
    refused: KailashException | None = None
    try:
        with (
            runtime.events.subscribe(keep_timeline, nodes=False, timeline=True),
            RunMeter() as meter,
        ):
            try:
                outcome = runtime.execute_outcome(workflow, case.parameters, run_id=run_id)
            except KailashException as error:  # bad parameters: no node ran
                refused = error
    finally:
        if own_runtime:
            runtime.close()
    report = PerformanceReport(
        execution_time=meter.execution_time,
        memory_usage_mb=meter.memory_usage_mb,
        node_timings=_node_timings(timelines[-1] if timelines else ()),
        isolation=isolation,
        memory_method=MEMORY_METHOD,
    )
    time_limited = own_runtime and "max_execution_time" in limits
    failures = _run_failures(outcome, refused, stopped_by_us=time_limited)
    stopped = time_limited and outcome is not None and outcome.status == "timeout"
    failures += requirement_failures(limits, report, stopped=stopped)
    outputs = WorkflowOutputs(outcome.results if outcome is not None else {})
    if case.expected is not None and outcome is not None:
        failures += expected_output_failures(case.expected, outputs)
    return CaseResult(
        name=case.name,
        parameters=case.parameters,
        outputs=outputs,
        failures=tuple(failures),
        performance=report,
        status="refused" if outcome is None else outcome.status,
    )


def _node_timings(timeline: tuple[NodeTiming, ...]) -> dict[str, float]:
    timings: dict[str, float] = {}
    for timing in timeline:
        if timing.state in ("completed", "failed"):
            timings[timing.node_id] = timings.get(timing.node_id, 0.0) + timing.duration
    return timings


def _run_failures(
    outcome: RunOutcome | None, refused: KailashException | None, *, stopped_by_us: bool
) -> list[Failure]:
    """The failures of the run itself: refused before it started, its failed nodes, or
    an end other than completed that no node and no requirement explains."""
    if outcome is None:
        node_id = getattr(refused, "node_id", None)
        return [
            Failure(
                "run",
                f"the run did not start: {type(refused).__name__}: {refused}",
                node_id=node_id if isinstance(node_id, str) else None,
            )
        ]
    failures = [
        Failure(
            "node",
            f"node {failure.node_id!r} raised {failure.error_type}: {failure.message}",
            node_id=failure.node_id,
        )
        for failure in outcome.failed_nodes
    ]
    timed_out_at_our_limit = outcome.status == "timeout" and stopped_by_us
    if outcome.status != "completed" and not failures and not timed_out_at_our_limit:
        failures.append(Failure("run", f"the run ended {outcome.status}: {outcome.error}"))
    return failures
