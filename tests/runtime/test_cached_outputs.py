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
