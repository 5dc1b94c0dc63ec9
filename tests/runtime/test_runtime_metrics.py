"""The runtimes' ``enable_metrics``: ``get_metrics()`` and the Prometheus collectors count
runs by final status (a failed run is never counted completed), nodes and durations."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from kailash_nb import AsyncLocalRuntime, LocalRuntime, WorkflowBuilder
from kailash_nb.monitoring.run_metrics import RunMetrics
from kailash_nb.runtime.events import EventBus
from kailash_nb.sdk_exceptions import (
    RuntimeExecutionError,
    WorkflowExecutionError,
    WorkflowTimeoutError,
)


def _ok():
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    builder.add_node("PythonCodeNode", "b", {"code": "result = x + 1"})
    builder.add_connection("a", "result", "b", "x")
    return builder.build()


def _failing_leaf():
    """``a`` completes, ``leaf`` (no dependents) fails: execute returns, the run failed."""
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    builder.add_node("PythonCodeNode", "leaf", {"code": "result = x / 0"})
    builder.add_connection("a", "result", "leaf", "x")
    return builder.build()


def _failing_with_dependent():
    """``a`` fails and ``b`` depends on it: execute raises."""
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1 / 0"})
    builder.add_node("PythonCodeNode", "b", {"code": "result = x"})
    builder.add_connection("a", "result", "b", "x")
    return builder.build()


WORKFLOWS = {"ok": _ok(), "leaf": _failing_leaf(), "stop": _failing_with_dependent()}


def _run(runtime: LocalRuntime, kind: str) -> None:
    workflow = WORKFLOWS[kind]
    if kind == "stop":
        with pytest.raises(WorkflowExecutionError):
            runtime.execute(workflow)
        return
    results, _ = runtime.execute(workflow)
    if kind == "leaf":
        assert results["leaf"]["failed"] is True


def test_metrics_are_off_by_default_and_cost_no_subscription():
    runtime = LocalRuntime()
    assert not runtime.metrics_enabled
    assert runtime.metrics_registry is None
    assert not runtime.events.active
    with pytest.raises(RuntimeExecutionError, match="enable_metrics=True"):
        runtime.get_metrics()


def test_completed_and_failed_runs_are_counted_apart():
    runtime = LocalRuntime(enable_metrics=True)
    for kind in ("ok", "ok", "leaf", "stop"):
        _run(runtime, kind)
    metrics = runtime.get_metrics()
    assert metrics["workflows"] == {
        "started": 4,
        "completed": 2,
        "failed": 2,
        "timeout": 0,
        "cancelled": 0,
        "in_flight": 0,
        "memory_limit_stops": 0,
    }
    # ok: a, b completed (x2); leaf: a completed, leaf failed; stop: a failed.
    assert metrics["nodes"] == {"completed": 5, "failed": 2, "skipped": 0, "cached": 0}
    durations = metrics["duration_seconds"]
    assert durations["count"] == 4
    assert 0 < durations["max"] <= durations["sum"]
    assert durations["mean"] == pytest.approx(durations["sum"] / 4)
    assert metrics["memory"]["rss_bytes"] > 0
    assert metrics["memory"]["limit_bytes"] is None

    registry = runtime.metrics_registry
    sample = registry.get_sample_value
    assert sample("kailash_nb_runtime_workflows_started_total") == 4
    assert sample("kailash_nb_runtime_workflows_total", {"status": "completed"}) == 2
    assert sample("kailash_nb_runtime_workflows_total", {"status": "failed"}) == 2
    assert sample("kailash_nb_runtime_workflows_in_flight") == 0
    assert sample("kailash_nb_runtime_nodes_total", {"state": "failed"}) == 2
    assert sample("kailash_nb_runtime_workflow_duration_seconds_count") == 4
    assert sample("kailash_nb_process_resident_memory_bytes") > 0


def test_timeout_is_counted_as_timeout_not_completed():
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "slow", {"code": "import time\ntime.sleep(1)\nresult = 1"})
    runtime = LocalRuntime(enable_metrics=True, workflow_timeout=0.05)
    with pytest.raises(WorkflowTimeoutError):
        runtime.execute(builder.build())
    workflows = runtime.get_metrics()["workflows"]
    assert (workflows["timeout"], workflows["completed"], workflows["failed"]) == (1, 0, 0)


def test_async_runtime_counts_its_runs():
    runtime = AsyncLocalRuntime(enable_metrics=True)

    async def main() -> None:
        await asyncio.gather(*(runtime.execute_workflow_async(WORKFLOWS["ok"]) for _ in range(5)))

    asyncio.run(main())
    assert runtime.get_metrics()["workflows"]["completed"] == 5


def test_two_runtimes_have_their_own_registries():
    first = LocalRuntime(enable_metrics=True)
    second = LocalRuntime(enable_metrics=True)
    _run(first, "ok")
    assert first.metrics_registry is not second.metrics_registry
    assert first.get_metrics()["workflows"]["completed"] == 1
    assert second.get_metrics()["workflows"]["completed"] == 0


def test_metrics_go_to_a_registry_the_caller_passes():
    registry = CollectorRegistry()
    runtime = LocalRuntime(enable_metrics=True, metrics_registry=registry)
    _run(runtime, "leaf")
    assert runtime.metrics_registry is registry
    assert b'kailash_nb_runtime_workflows_total{status="failed"} 1.0' in generate_latest(registry)
    with pytest.raises(RuntimeExecutionError, match="own registry"):
        LocalRuntime(enable_metrics=True, metrics_registry=registry)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"enable_metrics": "yes"}, "enable_metrics must be True or False"),
        ({"enable_metrics": 1}, "enable_metrics must be True or False"),
        ({"metrics_registry": CollectorRegistry()}, "enable_metrics is False"),
    ],
)
def test_invalid_metrics_options_are_refused(options, match):
    with pytest.raises(RuntimeExecutionError, match=match):
        LocalRuntime(**options)


def test_a_shared_bus_is_counted_by_each_runtime_on_it():
    bus = EventBus()
    counting = LocalRuntime(enable_metrics=True, event_bus=bus)
    _run(LocalRuntime(event_bus=bus), "ok")
    assert counting.get_metrics()["workflows"]["completed"] == 1


def test_run_metrics_refuse_an_unknown_status():
    with pytest.raises(ValueError, match="queued"):
        RunMetrics().run_ended("queued", 0.1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["ok", "leaf", "stop"]), max_size=12))
def test_counts_stay_consistent_with_the_runs(kinds: list[str]):
    runtime = LocalRuntime(enable_metrics=True)
    for kind in kinds:
        _run(runtime, kind)
    metrics: dict[str, Any] = runtime.get_metrics()
    workflows = metrics["workflows"]
    assert workflows["started"] == len(kinds)
    assert workflows["completed"] == kinds.count("ok")
    assert workflows["failed"] == kinds.count("leaf") + kinds.count("stop")
    assert workflows["started"] == sum(
        workflows[status] for status in ("completed", "failed", "timeout", "cancelled")
    )
    assert workflows["in_flight"] == 0
    nodes = metrics["nodes"]
    assert nodes["completed"] == 2 * kinds.count("ok") + kinds.count("leaf")
    assert nodes["failed"] == kinds.count("leaf") + kinds.count("stop")
    assert metrics["duration_seconds"]["count"] == len(kinds)
