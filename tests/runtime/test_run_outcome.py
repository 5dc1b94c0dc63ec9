"""One run status model: how a run ended, the same in events, outcomes and front ends."""

from __future__ import annotations

import asyncio

import pytest

from kailash_nb.run_status import ENGINE_FINAL_STATES, FINAL_STATUSES, RUN_STATUSES, is_success
from kailash_nb.runtime.events import EventBus, RunEvent
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.runtime.outcome import NodeFailure
from kailash_nb.sdk_exceptions import WorkflowValidationError
from kailash_nb.workflow.builder import WorkflowBuilder


def _run_states(bus: EventBus) -> list[RunEvent]:
    seen: list[RunEvent] = []
    bus.subscribe(seen.append, nodes=False, runs=True)
    return seen


def _workflow(*nodes: tuple[str, str], edges: tuple[tuple[str, str], ...] = ()):
    builder = WorkflowBuilder()
    for node_id, code in nodes:
        builder.add_node("PythonCodeNode", node_id, {"code": code})
    for source, target in edges:
        builder.add_connection(source, "result", target, "x")
    return builder.build(name="outcomes")


def test_the_status_words_are_one_model():
    assert set(RUN_STATUSES) >= FINAL_STATUSES >= ENGINE_FINAL_STATES
    assert [status for status in RUN_STATUSES if is_success(status)] == ["completed"]


def test_a_failed_leaf_fails_the_run_but_keeps_results_and_the_kailash_return_value():
    bus = EventBus()
    events = _run_states(bus)
    workflow = _workflow(
        ("ok", "result = 1"),
        ("leaf", "result = x / 0"),
        ("other", "result = 2"),
        edges=(("ok", "leaf"),),
    )
    runtime = LocalRuntime(event_bus=bus)
    results, _ = runtime.execute(workflow)
    assert results["ok"] == {"result": 1} and results["leaf"]["failed"] is True
    outcome = runtime.execute_outcome(workflow)
    assert outcome.status == "failed" and not outcome.succeeded
    assert outcome.results["ok"] == {"result": 1} and outcome.results["other"] == {"result": 2}
    assert outcome.failed_nodes == (NodeFailure("leaf", "ZeroDivisionError", "division by zero"),)
    assert outcome.stopped_at is None
    assert outcome.error == "WorkflowExecutionError: node 'leaf' failed: ZeroDivisionError: " + (
        "division by zero"
    )
    assert [event.state for event in events] == ["started", "failed"] * 2


def test_a_node_with_dependents_stops_the_run_and_the_outcome_names_it():
    workflow = _workflow(
        ("bad", "result = {}['k']"), ("after", "result = x"), edges=(("bad", "after"),)
    )
    outcome = LocalRuntime().execute_outcome(workflow)
    assert outcome.status == "failed" and outcome.stopped_at == "bad"
    assert outcome.failed_nodes == (NodeFailure("bad", "KeyError", "'k'"),)
    assert "after" not in outcome.results


def test_several_failed_leaves_are_all_named():
    workflow = _workflow(("a", "result = 1 / 0"), ("b", "result = [][1]"))
    outcome = LocalRuntime().execute_outcome(workflow)
    assert sorted(f.error_type for f in outcome.failed_nodes) == ["IndexError", "ZeroDivisionError"]
    assert outcome.error.startswith("WorkflowExecutionError: 2 nodes failed: ")


def test_a_run_past_its_deadline_is_timeout_not_failed():
    bus = EventBus()
    events = _run_states(bus)
    workflow = _workflow(("slow", "import time\ntime.sleep(3)\nresult = 1"))
    outcome = LocalRuntime(event_bus=bus, workflow_timeout=0.2).execute_outcome(workflow)
    assert outcome.status == "timeout"
    assert "exceeded workflow_timeout" in outcome.error
    assert events[-1].state == "timeout"


def test_a_refused_run_raises_and_starts_nothing():
    bus = EventBus()
    events = _run_states(bus)
    workflow = _workflow(("needs", "result = x + 1"))
    with pytest.raises(WorkflowValidationError):
        LocalRuntime(event_bus=bus).execute_outcome(workflow)
    assert events == []


def test_a_cancelled_run_ends_cancelled():
    bus = EventBus()
    events = _run_states(bus)
    workflow = _workflow(
        ("a", "result = 1"),
        ("b", "import time\ntime.sleep(0.05)\nresult = 2"),
        ("slow", "import time\ntime.sleep(5)\nresult = x"),
        edges=(("a", "slow"),),
    )

    async def cancel_soon() -> None:
        task = asyncio.ensure_future(LocalRuntime(event_bus=bus).execute_async(workflow))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_soon())
    assert [event.state for event in events] == ["started", "cancelled"]
    assert events[-1].error == "RuntimeExecutionError: the run was cancelled (CancelledError)"


def test_an_interrupted_inline_run_ends_cancelled():
    bus = EventBus()
    events = _run_states(bus)
    workflow = _workflow(("stop", "raise KeyboardInterrupt"))
    with pytest.raises(KeyboardInterrupt):
        LocalRuntime(event_bus=bus).execute(workflow)
    assert [event.state for event in events] == ["started", "cancelled"]


def test_a_node_failure_keeps_its_exception_but_never_shows_it():
    from kailash_nb.runtime.local import LocalRuntime
    from kailash_nb.workflow.builder import WorkflowBuilder

    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "leaf", {"code": "result = 1 / 0"})
    outcome = LocalRuntime().execute_outcome(builder.build())
    (failure,) = outcome.failed_nodes
    assert isinstance(failure.exception, ZeroDivisionError)
    assert failure.exception.__traceback__ is not None
    assert failure.public(with_message=True) == {
        "node_id": "leaf",
        "error_type": "ZeroDivisionError",
        "error": "division by zero",
    }
