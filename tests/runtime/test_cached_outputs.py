"""Cached outputs: nodes the caller marks fresh are reused, not executed."""

from __future__ import annotations

import asyncio

import pytest

from kailash_nb.runtime.async_local import AsyncLocalRuntime
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.sdk_exceptions import WorkflowValidationError
from kailash_nb.workflow.builder import WorkflowBuilder


def _workflow(calls: list[str]):
    def expensive() -> int:
        calls.append("expensive")
        return 21

    def double(value: int) -> int:
        calls.append("double")
        return value * 2

    from kailash_nb.nodes.code import PythonCodeNode

    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(expensive), "expensive")
    builder.add_node(PythonCodeNode.from_function(double), "double")
    builder.add_connection("expensive", "result", "double", "value")
    return builder.build()


@pytest.mark.parametrize("runtime_kind", ["local", "async"])
def test_cached_node_is_reused_and_downstream_runs(runtime_kind):
    calls: list[str] = []
    workflow = _workflow(calls)
    events = []
    runtime = LocalRuntime() if runtime_kind == "local" else AsyncLocalRuntime()
    runtime.events.subscribe(lambda event: events.append((event.node_id, event.state)), runs=False)
    cached = {"expensive": {"result": 50}}
    if runtime_kind == "local":
        results, _ = runtime.execute(workflow, cached_outputs=cached)
    else:
        results, _ = asyncio.run(runtime.execute_async(workflow, cached_outputs=cached))
    assert calls == ["double"]
    assert results == {"expensive": {"result": 50}, "double": {"result": 100}}
    assert ("expensive", "cached") in events
    assert ("expensive", "started") not in events


def test_cached_outputs_are_validated():
    workflow = _workflow([])
    with pytest.raises(WorkflowValidationError, match="unknown node 'nope'"):
        LocalRuntime().execute(workflow, cached_outputs={"nope": {}})
    with pytest.raises(WorkflowValidationError, match="must be a dict"):
        LocalRuntime().execute(workflow, cached_outputs={"expensive": 3})


def test_cycle_members_cannot_be_cached():
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "count", {"code": "result = count + 1", "count": 0})
    builder.create_cycle("loop").connect("count", "count", {"result": "count"}).max_iterations(
        3
    ).build()
    with pytest.raises(WorkflowValidationError, match="inside a cycle"):
        LocalRuntime().execute(builder.build(), cached_outputs={"count": {"result": 1}})


def _mutating_workflow():
    from kailash_nb.nodes.code import PythonCodeNode

    def scale(rows: list) -> list:
        for r in rows:
            r["v"] *= 3
        return [r["v"] for r in rows]

    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "load", {"code": "result = [{'v': 1}, {'v': 2}]"})
    builder.add_node(PythonCodeNode.from_function(scale), "scale")
    builder.add_connection("load", "result", "scale", "rows")
    return builder.build()


@pytest.mark.parametrize("runtime_kind", ["local", "async"])
def test_cached_outputs_are_never_changed_by_the_run(runtime_kind):
    workflow = _mutating_workflow()
    runtime = LocalRuntime() if runtime_kind == "local" else AsyncLocalRuntime()
    cached = {"load": {"result": [{"v": 1}, {"v": 2}]}}
    for _ in range(3):
        if runtime_kind == "local":
            results, _ = runtime.execute(workflow, cached_outputs=cached)
        else:
            results, _ = asyncio.run(runtime.execute_async(workflow, cached_outputs=cached))
        assert results["scale"] == {"result": [3, 6]}
    assert cached == {"load": {"result": [{"v": 1}, {"v": 2}]}}


def test_copy_cached_false_shares_them_and_hooks_see_each_node():
    workflow = _mutating_workflow()
    cached = {"load": {"result": [{"v": 1}, {"v": 2}]}}
    seen = []
    LocalRuntime().execute(
        workflow,
        cached_outputs=cached,
        copy_cached=False,
        on_output=lambda node_id, outputs: seen.append((node_id, outputs)),
    )
    assert cached["load"]["result"] == [{"v": 3}, {"v": 6}]  # shared: changed in place
    assert seen == [("scale", {"result": [3, 6]})]  # cached nodes do not complete


def test_on_output_runs_before_dependents_and_on_failure_gets_the_exception():
    from kailash_nb.nodes.code import PythonCodeNode

    def scale(rows: list) -> list:
        for r in rows:
            r["v"] *= 3
        raise ValueError("stop here")

    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "load", {"code": "result = [{'v': 1}]"})
    builder.add_node(PythonCodeNode.from_function(scale), "scale")
    builder.add_connection("load", "result", "scale", "rows")
    snapshots, failures = [], []
    results, _ = LocalRuntime().execute(
        builder.build(),
        on_output=lambda node_id, outputs: snapshots.append(repr(outputs)),
        on_failure=lambda node_id, exc: failures.append((node_id, exc)),
    )
    assert snapshots == ["{'result': [{'v': 1}]}"]
    ((node_id, exc),) = failures
    assert node_id == "scale" and isinstance(exc, ValueError) and exc.__traceback__ is not None
    assert results["scale"]["failed"] is True


def test_uncopyable_cached_outputs_are_refused():
    import threading

    with pytest.raises(WorkflowValidationError, match=r"cached output of node 'expensive' cannot"):
        LocalRuntime().execute(
            _workflow([]), cached_outputs={"expensive": {"result": threading.Lock()}}
        )
