"""Cycles that loop through a ``SwitchNode``: Kailash's "repeat until" pattern.

The loop ends by itself when the switch takes the branch that leaves it (no cycle
edge carries a value back), and the node on that branch receives the end value.
Untaken branches are still skipped; ``converge_when``, ``max_iterations`` and
failures work as in any other cycle, on ``LocalRuntime`` and ``AsyncLocalRuntime``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kailash_nb import AsyncLocalRuntime, LocalRuntime, Workflow, WorkflowBuilder
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.sdk_exceptions import WorkflowExecutionError

Runner = Callable[..., tuple[dict[str, Any], str]]

_COUNTER = "result = {'count': count + step, 'step': step}"


def _run_local(workflow: Workflow, parameters: Any = None, **options: Any) -> Any:
    return LocalRuntime(**options).execute(workflow, parameters)


def _run_async(workflow: Workflow, parameters: Any = None, **options: Any) -> Any:
    runtime = AsyncLocalRuntime(**options)
    return asyncio.run(runtime.execute_workflow_async(workflow, parameters))


@pytest.fixture(params=["local", "async", "dask"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Run a workflow with LocalRuntime.execute, AsyncLocalRuntime.execute_workflow_async
    or DaskRuntime.execute (the session's LocalCluster)."""
    if request.param == "dask":
        client = request.getfixturevalue("dask_client")

        def _run_dask(workflow: Workflow, parameters: Any = None, **options: Any) -> Any:
            from kailash_nb.runtime.dask import DaskRuntime

            with DaskRuntime(client, **options) as runtime:
                return runtime.execute(workflow, parameters)

        _run_dask.in_process = False  # type: ignore[attr-defined]
        return _run_dask
    return _run_local if request.param == "local" else _run_async


def _repeat_until(
    end: int,
    max_iterations: int = 1000,
    converge_when: str | None = None,
    switch_type: str = "SwitchNode",
) -> Workflow:
    """counter -> check; check's false_output back into counter, true_output to done."""
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "counter", {"code": _COUNTER})
    builder.add_node(
        switch_type, "check", {"condition_field": "count", "operator": ">=", "value": end}
    )
    builder.add_node("PythonCodeNode", "done", {"code": "result = data['count']"})
    builder.add_connection("counter", "result", "check", "input_data")
    builder.add_connection("check", "true_output", "done", "data")
    workflow = builder.build()
    cycle = workflow.create_cycle("until").connect(
        "check", "counter", {"false_output.count": "count", "false_output.step": "step"}
    )
    cycle = cycle.max_iterations(max_iterations)
    if converge_when is not None:
        cycle = cycle.converge_when(converge_when)
    cycle.build()
    return workflow


def _start(count: int, step: int) -> dict[str, Any]:
    return {"counter": {"count": count, "step": step}}


def _python_loop(start: int, end: int, step: int) -> tuple[int, int]:
    """(end value, iterations) of the do-while loop the workflow expresses."""
    count, iterations = start, 0
    while True:
        count += step
        iterations += 1
        if count >= end:
            return count, iterations


def test_loop_runs_until_the_switch_takes_the_exit_branch(run: Runner) -> None:
    results, _ = run(_repeat_until(10), _start(0, 3))
    assert results == {
        "counter": {"result": {"count": 12, "step": 3}},
        "check": {
            "true_output": {"count": 12, "step": 3},
            "false_output": None,
            "condition_result": True,
        },
        "done": {"result": 12},
    }


def test_async_switch_node_loops_the_same_way(run: Runner) -> None:
    results, _ = run(_repeat_until(10, switch_type="AsyncSwitchNode"), _start(0, 3))
    assert results["done"] == {"result": 12}
    assert results["check"]["condition_result"] is True


def test_multi_case_switch_loops_until_its_exit_case(run: Runner) -> None:
    builder = WorkflowBuilder()
    code = "n = count + 1\nresult = {'count': n, 'status': 'done' if n >= 4 else 'more'}"
    builder.add_node("PythonCodeNode", "step", {"code": code})
    builder.add_node(
        "SwitchNode", "route", {"condition_field": "status", "cases": ["more", "done"]}
    )
    builder.add_node("PythonCodeNode", "finish", {"code": "result = data['count']"})
    builder.add_connection("step", "result", "route", "input_data")
    builder.add_connection("route", "case_done", "finish", "data")
    workflow = builder.build()
    workflow.create_cycle("steps").connect(
        "route", "step", {"case_more.count": "count"}
    ).max_iterations(50).build()
    results, _ = run(workflow, {"step": {"count": 0}})
    assert results["finish"] == {"result": 4}
    assert results["route"]["case_more"] is None


@pytest.mark.parametrize("runtime_class", [LocalRuntime, AsyncLocalRuntime])
def test_each_iteration_runs_the_loop_body_once(runtime_class: type[LocalRuntime]) -> None:
    events: list[Any] = []
    runtime = runtime_class()
    runtime.events.subscribe(events.append, runs=False)
    asyncio.run(runtime.execute_async(_repeat_until(10), _start(0, 3)))
    started = [(e.node_id, e.iteration) for e in events if e.state == "started"]
    assert started == [
        *((node, iteration) for iteration in range(1, 5) for node in ("counter", "check")),
        ("done", None),
    ]


def test_loop_already_done_after_one_iteration(run: Runner) -> None:
    results, _ = run(_repeat_until(10), _start(20, 3))
    assert results["counter"] == {"result": {"count": 23, "step": 3}}
    assert results["done"] == {"result": 23}


def test_max_iterations_ends_the_loop_before_the_exit(run: Runner) -> None:
    results, _ = run(_repeat_until(100, max_iterations=3), _start(0, 3))
    assert results == {
        "counter": {"result": {"count": 9, "step": 3}},
        "check": {
            "true_output": None,
            "false_output": {"count": 9, "step": 3},
            "condition_result": False,
        },
    }


def test_route_data_lists_the_untaken_exit_as_none() -> None:
    results, _ = _run_local(
        _repeat_until(100, max_iterations=3), _start(0, 3), conditional_execution="route_data"
    )
    assert results["done"] is None


def test_converge_when_reads_the_fields_of_the_branch_taken(run: Runner) -> None:
    results, _ = run(_repeat_until(100, converge_when="count >= 6"), _start(0, 3))
    assert results["counter"] == {"result": {"count": 6, "step": 3}}
    assert "done" not in results


def _switch_first() -> Workflow:
    """start -> check; check's false_output into body, body back into check (a cycle
    edge), check's true_output to done: the body never runs when start is done."""
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "start", {"code": "result = {'count': count, 'step': 5}"})
    builder.add_node(
        "SwitchNode", "check", {"condition_field": "count", "operator": ">=", "value": 30}
    )
    builder.add_node("PythonCodeNode", "body", {"code": _COUNTER})
    builder.add_node("PythonCodeNode", "done", {"code": "result = data['count']"})
    builder.add_connection("start", "result", "check", "input_data")
    builder.add_connection("check", "false_output.count", "body", "count")
    builder.add_connection("check", "false_output.step", "body", "step")
    builder.add_connection("check", "true_output", "done", "data")
    workflow = builder.build()
    workflow.create_cycle("loop").connect("body", "check", {"result": "input_data"}).max_iterations(
        50
    ).build()
    return workflow


def test_switch_before_the_body_exits_with_the_body_last_outputs(run: Runner) -> None:
    results, _ = run(_switch_first(), {"start": {"count": 10}})
    assert results["done"] == {"result": 30}
    assert results["body"] == {"result": {"count": 30, "step": 5}}
    assert results["check"]["condition_result"] is True


def test_body_on_the_untaken_branch_never_runs(run: Runner) -> None:
    results, _ = run(_switch_first(), {"start": {"count": 40}})
    assert results["done"] == {"result": 40}
    assert "body" not in results


def test_failure_inside_the_loop_is_not_reported_as_success(run: Runner) -> None:
    builder = WorkflowBuilder()
    code = "if count > 6:\n    raise ValueError('too far')\n" + _COUNTER
    builder.add_node("PythonCodeNode", "counter", {"code": code})
    builder.add_node(
        "SwitchNode", "check", {"condition_field": "count", "operator": ">=", "value": 100}
    )
    builder.add_node("PythonCodeNode", "done", {"code": "result = data['count']"})
    builder.add_connection("counter", "result", "check", "input_data")
    builder.add_connection("check", "true_output", "done", "data")
    workflow = builder.build()
    workflow.create_cycle("until").connect(
        "check", "counter", {"false_output.count": "count", "false_output.step": "step"}
    ).max_iterations(50).build()
    with pytest.raises(WorkflowExecutionError, match="too far") as caught:
        run(workflow, _start(0, 3))
    assert "done" not in caught.value.results


def test_none_fed_back_by_an_ordinary_node_keeps_the_loop_going(run: Runner) -> None:
    seen: list[Any] = []

    def node(value: Any = "first") -> None:
        seen.append(value)

    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(node), "node")
    workflow = builder.build()
    workflow.create_cycle("c").connect("node", "node", {"result": "value"}).max_iterations(
        4
    ).build()
    results, _ = run(workflow)
    assert results == {"node": {"result": None}}
    if getattr(run, "in_process", True):  # on dask workers the node appends to its own copy
        assert seen == ["first", None, None, None]


@settings(max_examples=40, deadline=None)
@given(
    start=st.integers(-50, 50),
    end=st.integers(-50, 100),
    step=st.integers(1, 10),
    max_iterations=st.integers(1, 40),
)
def test_loop_result_equals_the_python_loop(
    start: int, end: int, step: int, max_iterations: int
) -> None:
    expected, needed = _python_loop(start, end, step)
    workflow = _repeat_until(end, max_iterations=max_iterations)
    for runner in (_run_local, _run_async):
        results, _ = runner(workflow, _start(start, step))
        if needed <= max_iterations:
            assert results["done"] == {"result": expected}
            assert results["counter"]["result"]["count"] == expected
        else:
            assert "done" not in results
            assert results["counter"]["result"]["count"] == start + step * max_iterations
