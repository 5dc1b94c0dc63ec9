"""Explicit cycles: declaration, stop rules, feedback data flow, and their errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from kailash_nb import AsyncLocalRuntime, LocalRuntime, Workflow, WorkflowBuilder
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.sdk_exceptions import (
    CycleConfigurationError,
    WorkflowExecutionError,
    WorkflowValidationError,
)

Runner = Callable[..., tuple[dict[str, Any], str]]


@pytest.fixture(params=["local", "async", "dask"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Run a workflow with LocalRuntime.execute, AsyncLocalRuntime.execute_workflow_async
    or DaskRuntime.execute (the session's LocalCluster)."""
    dask = request.getfixturevalue("dask_runtime") if request.param == "dask" else None

    def runner(workflow: Workflow, parameters: dict[str, Any] | None = None):
        if dask is not None:
            return dask.execute(workflow, parameters)
        if request.param == "local":
            return LocalRuntime().execute(workflow, parameters)
        return asyncio.run(AsyncLocalRuntime().execute_workflow_async(workflow, parameters))

    # Nodes on dask workers change their own copies of a test's lists, not the test's.
    runner.in_process = dask is None  # type: ignore[attr-defined]
    return runner


def _counter(code: str = "result = count + 1", **config: Any) -> WorkflowBuilder:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "inc", {"code": code, **config})
    return builder


# -- stop rules ----------------------------------------------------------------------------


def test_counter_cycle_runs_max_iterations(run: Runner) -> None:
    builder = _counter(count=0)
    cycle = builder.create_cycle("c").connect("inc", "inc", {"result": "count"}).max_iterations(5)
    assert cycle.build() is None
    results, _ = run(builder.build())
    assert results == {"inc": {"result": 5}}


def test_counter_cycle_iterations_counted_with_side_effect(run: Runner) -> None:
    calls: list[int] = []

    def inc(count: int) -> int:
        calls.append(count)
        return count + 1

    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(inc), "inc", {"count": 0})
    builder.create_cycle("c").connect("inc", "inc", {"result": "count"}).max_iterations(5).build()
    results, _ = run(builder.build())
    if run.in_process:
        assert calls == [0, 1, 2, 3, 4]
    assert results["inc"] == {"result": 5}


def test_converge_when_scalar_result(run: Runner) -> None:
    builder = _counter(count=0)
    builder.create_cycle("c").connect("inc", "inc", {"result": "count"}).max_iterations(
        100
    ).converge_when("result >= 3").build()
    results, _ = run(builder.build())
    assert results["inc"] == {"result": 3}


def test_converge_when_dict_result_fields(run: Runner) -> None:
    builder = _counter(
        code="n = count + 1\nresult = {'count': n, 'done': n >= 4}",
        count=0,
    )
    builder.create_cycle("c").connect("inc", "inc", {"result.count": "count"}).converge_when(
        "done == True"
    ).max_iterations(50).build()
    results, _ = run(builder.build())
    assert results["inc"] == {"result": {"count": 4, "done": True}}


def test_converge_when_only_stop_rule(run: Runner) -> None:
    builder = _counter(count=0)
    builder.create_cycle("c").connect("inc", "inc", {"result": "count"}).converge_when(
        "iteration >= 7 and inc['result'] == 7"
    ).build()
    results, _ = run(builder.build())
    assert results["inc"] == {"result": 7}


def test_two_node_cycle_and_downstream_sees_final_value(run: Runner) -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = x + 1", "x": 0})
    builder.add_node("PythonCodeNode", "b", {"code": "result = y * 2"})
    builder.add_node("PythonCodeNode", "after", {"code": "result = ('final', z)"})
    builder.add_connection("a", "result", "b", "y")
    builder.add_connection("b", "result", "after", "z")
    builder.create_cycle("loop").connect("b", "a", {"result": "x"}).max_iterations(3).build()
    workflow = builder.build()
    assert workflow.cycle_members(workflow.cycles[0]) == ["a", "b"]
    results, _ = run(workflow)
    # a: 1, 3, 7 ; b: 2, 6, 14
    assert results["a"] == {"result": 7}
    assert results["b"] == {"result": 14}
    assert results["after"] == {"result": ("final", 14)}


def test_cycle_between_upstream_and_downstream_nodes(run: Runner) -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "seed", {"code": "result = 10"})
    builder.add_node("PythonCodeNode", "halve", {"code": "result = value // 2"})
    builder.add_node("PythonCodeNode", "done", {"code": "result = v"})
    builder.add_connection("seed", "result", "halve", "value")
    builder.add_connection("halve", "result", "done", "v")
    builder.create_cycle("h").connect("halve", "halve", {"result": "value"}).converge_when(
        "result <= 1"
    ).max_iterations(20).build()
    results, _ = run(builder.build())
    # 10 -> 5 -> 2 -> 1
    assert results == {"seed": {"result": 10}, "halve": {"result": 1}, "done": {"result": 1}}


def test_create_cycle_on_built_workflow(run: Runner) -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = x + 1", "x": 0})
    builder.add_node("PythonCodeNode", "b", {"code": "result = y * 2"})
    builder.add_connection("a", "result", "b", "y")
    workflow = builder.build()
    before, _ = run(workflow)
    assert before["b"] == {"result": 2}
    workflow.create_cycle("loop").connect("b", "a", {"result": "x"}).max_iterations(3).build()
    assert [c.cycle_id for c in workflow.cycles] == ["loop"]
    assert repr(workflow).endswith("2 nodes, 2 edges>")
    after, _ = run(workflow)
    assert after["b"] == {"result": 14}
    with pytest.raises(CycleConfigurationError, match="'loop'"):
        workflow.create_cycle("loop").connect("b", "a", {"result": "x"}).max_iterations(2).build()


def test_cycle_timeout_stops_iterating(run: Runner) -> None:
    calls: list[int] = []

    def tick(count: int) -> int:
        calls.append(count)
        return count + 1

    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(tick), "tick", {"count": 0})
    builder.create_cycle("t").connect("tick", "tick", {"result": "count"}).converge_when(
        "False"
    ).timeout(0.2).build()
    started = time.monotonic()
    results, _ = run(builder.build())
    elapsed = time.monotonic() - started
    assert elapsed >= 0.2
    assert elapsed < 10
    if run.in_process:
        assert len(calls) >= 1
        assert results["tick"] == {"result": len(calls)}
    else:
        assert results["tick"]["result"] >= 1


def test_node_keyed_parameter_first_iteration_then_feedback_wins(run: Runner) -> None:
    builder = _counter()  # no config default: the parameter gives the first value
    builder.create_cycle("c").connect("inc", "inc", {"result": "count"}).max_iterations(3).build()
    results, _ = run(builder.build(), {"inc": {"count": 10}})
    assert results["inc"] == {"result": 13}


def test_config_first_iteration_then_feedback_wins(run: Runner) -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "src", {"code": "result = 100"})
    builder.add_node("PythonCodeNode", "inc", {"code": "result = count + step", "step": 1})
    builder.add_connection("src", "result", "inc", "count")
    builder.create_cycle("c").connect("inc", "inc", {"result": "count"}).max_iterations(3).build()
    results, _ = run(builder.build())
    # connected 100 first, then fed back: 101, 102, 103
    assert results["inc"] == {"result": 103}


def test_cycle_node_failure_stops_run(run: Runner) -> None:
    builder = _counter(code="result = 10 // (3 - count)", count=0)
    builder.create_cycle("c").connect("inc", "inc", {"result": "count"}).max_iterations(10).build()
    # count: 0 -> 3 (10//3) -> 10//0 fails; the node feeds itself so it has dependents
    with pytest.raises(WorkflowExecutionError) as info:
        run(builder.build())
    cause = info.value
    while cause.__cause__ is not None:
        cause = cause.__cause__
    assert isinstance(cause, ZeroDivisionError)


def test_cycle_missing_feedback_output_fails(run: Runner) -> None:
    builder = _counter(count=0)
    builder.create_cycle("c").connect("inc", "inc", {"nope": "count"}).max_iterations(3).build()
    with pytest.raises(WorkflowExecutionError, match="nope"):
        run(builder.build())


# -- declaration errors --------------------------------------------------------------------


def test_cycle_without_stop_rule() -> None:
    builder = _counter(count=0)
    with pytest.raises(CycleConfigurationError, match="no stop rule"):
        builder.create_cycle("c").connect("inc", "inc", {"result": "count"}).build()


def test_cycle_without_connect() -> None:
    builder = _counter(count=0)
    with pytest.raises(CycleConfigurationError, match="no edges"):
        builder.create_cycle("c").max_iterations(3).build()


@pytest.mark.parametrize("mapping", [None, {}, ["result", "count"]])
def test_cycle_connect_needs_mapping(mapping: Any) -> None:
    builder = _counter(count=0)
    with pytest.raises(CycleConfigurationError):
        builder.create_cycle("c").connect("inc", "inc", mapping)


@pytest.mark.parametrize("count", [0, -1, 100_001, 1.5, "5", True, None])
def test_bad_max_iterations(count: Any) -> None:
    builder = _counter(count=0)
    with pytest.raises(CycleConfigurationError, match="max_iterations"):
        builder.create_cycle("c").connect("inc", "inc", {"result": "count"}).max_iterations(count)


@pytest.mark.parametrize("seconds", [0, -1, "1", True])
def test_bad_cycle_timeout(seconds: Any) -> None:
    with pytest.raises(CycleConfigurationError, match="timeout"):
        _counter(count=0).create_cycle("c").timeout(seconds)


@pytest.mark.parametrize("cycle_id", ["", None, 5])
def test_bad_cycle_id(cycle_id: Any) -> None:
    with pytest.raises(CycleConfigurationError):
        _counter(count=0).create_cycle(cycle_id)


def test_duplicate_cycle_id() -> None:
    builder = _counter(count=0)
    builder.create_cycle("c").connect("inc", "inc", {"result": "count"}).max_iterations(2).build()
    with pytest.raises(CycleConfigurationError, match="already"):
        builder.create_cycle("c").connect("inc", "inc", {"result": "x"}).max_iterations(2).build()


def test_cycle_naming_unknown_node() -> None:
    builder = _counter(count=0)
    with pytest.raises(CycleConfigurationError, match="'inx'"):
        builder.create_cycle("c").connect("inc", "inx", {"result": "count"}).max_iterations(
            2
        ).build()


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os')",
        "__import__('os').system('true')",
        "result.real > 0",
        "result.__class__",
        "open('x')",
        "eval('1')",
        "getattr(result, 'x')",
        "(lambda: True)()",
        "[x for x in results]",
        "len(results, key=1)",
        "_private > 1",
        "x := 1",
        "result >=",
        "",
        "a" * 600,
    ],
)
def test_unsafe_or_invalid_converge_when_rejected(expression: str) -> None:
    cycle = _counter(count=0).create_cycle("c")
    with pytest.raises(CycleConfigurationError, match="'c'"):
        cycle.converge_when(expression)


def test_safe_functions_allowed_in_converge_when(run: Runner) -> None:
    builder = _counter(code="result = [count + 1] * 2", count=0)
    builder.create_cycle("c").connect("inc", "inc", {"result": "count"}).max_iterations(
        1
    ).converge_when(
        "abs(min(inc['result'])) >= 1 and len(inc['result']) == 2 and max(inc['result']) == 1"
    ).build()
    results, _ = run(builder.build())
    assert results["inc"] == {"result": [1, 1]}


def test_converge_when_error_at_run_time_is_a_workflow_error(run: Runner) -> None:
    # Only scalar fields of the source's output become bare names; a list result does
    # not, so this expression fails when evaluated. The run must report that as a
    # kailash_nb error naming the cycle, not leak a bare NameError.
    builder = _counter(code="result = [count + 1]", count=0)
    builder.create_cycle("c").connect("inc", "inc", {"result": "count"}).max_iterations(
        3
    ).converge_when("result == [1]").build()
    with pytest.raises(WorkflowExecutionError, match="'c'"):
        run(builder.build())


def test_unmarked_cycle_via_add_connection() -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = x", "x": 0})
    builder.add_node("PythonCodeNode", "b", {"code": "result = y"})
    builder.add_connection("a", "result", "b", "y")
    builder.add_connection("b", "result", "a", "x")  # accepted until build
    with pytest.raises(WorkflowValidationError, match="unmarked cycle") as info:
        builder.build()
    assert not isinstance(info.value, CycleConfigurationError)
    message = str(info.value)
    assert "a -> b -> a" in message or "b -> a -> b" in message
    assert "create_cycle" in message


def test_cycle_edge_that_closes_no_loop() -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = x", "x": 0})
    builder.add_node("PythonCodeNode", "b", {"code": "result = y"})
    builder.add_connection("a", "result", "b", "y")
    # a -> b is already an ordinary edge; a "feedback" edge from a to b closes nothing.
    builder.create_cycle("c").connect("a", "b", {"result": "y"}).max_iterations(3).build()
    with pytest.raises(CycleConfigurationError, match="closes no loop"):
        builder.build()


def test_cycle_edge_between_unconnected_nodes_closes_no_loop() -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = x", "x": 0})
    builder.add_node("PythonCodeNode", "b", {"code": "result = y", "y": 0})
    builder.create_cycle("c").connect("b", "a", {"result": "x"}).max_iterations(3).build()
    with pytest.raises(CycleConfigurationError, match="'c'"):
        builder.build()


def test_overlapping_cycles_rejected() -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = x", "x": 0})
    builder.add_node("PythonCodeNode", "b", {"code": "result = y"})
    builder.add_connection("a", "result", "b", "y")
    builder.create_cycle("one").connect("b", "a", {"result": "x"}).max_iterations(2).build()
    builder.create_cycle("two").connect("b", "b", {"result": "y"}).max_iterations(2).build()
    with pytest.raises(CycleConfigurationError, match="'b'"):
        builder.build()


# -- optional inputs: the Kailash cycle idioms ----------------------------------------------
# A cycle node reads its previous output under try/except NameError (or a locals() check);
# on the first iteration nothing feeds it yet. Expected values are Kailash 2.65's.


def test_cycle_node_reading_its_previous_output_under_name_error_guard(run: Runner) -> None:
    builder = WorkflowBuilder()
    builder.add_node(
        "PythonCodeNode",
        "n",
        {
            "code": "try:\n    v = value\nexcept NameError:\n    v = 0\n"
            "result = {'value': v + 1, 'done': v + 1 >= 5}"
        },
    )
    workflow = builder.build()
    workflow.create_cycle("c").connect("n", "n", {"result.value": "value"}).max_iterations(
        20
    ).converge_when("done == True").build()
    results, _ = run(workflow)
    assert results == {"n": {"result": {"value": 5, "done": True}}}


def test_cycle_accumulator_keeps_state_copied_onto_itself(run: Runner) -> None:
    code = (
        "try:\n    count = count\n    total = total\n"
        "except NameError:\n    count = 0\n    total = 0\n"
        "count += 1\ntotal += input_value\naverage = total / count\n"
        "result = {'count': count, 'total': total, 'average': average, 'converged': count >= 4}"
    )
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "acc", {"code": code})
    workflow = builder.build()
    workflow.create_cycle("c").connect(
        "acc", "acc", {"result.count": "count", "result.total": "total"}
    ).max_iterations(10).converge_when("converged == True").build()
    results, _ = run(workflow, {"acc": {"input_value": 5}})
    assert results == {
        "acc": {"result": {"count": 4, "total": 20, "average": 5.0, "converged": True}}
    }


def test_cycle_convergence_check_with_in_locals(run: Runner) -> None:
    code = (
        "try:\n    previous = previous\n    iteration = iteration\n"
        "except NameError:\n    previous = None\n    iteration = 0\n"
        "iteration += 1\n"
        "current = value if 'value' in locals() else 100.0\n"
        "new = current / 2\n"
        "converged = previous is not None and abs(previous - new) < 5\n"
        "result = {'value': new, 'previous': new, 'iteration': iteration, "
        "'converged': converged}"
    )
    builder = WorkflowBuilder()
    builder.add_node("AsyncPythonCodeNode", "p", {"code": code})
    workflow = builder.build()
    workflow.create_cycle("c").connect(
        "p",
        "p",
        {"result.value": "value", "result.previous": "previous", "result.iteration": "iteration"},
    ).max_iterations(20).converge_when("converged == True").build()
    results, _ = run(workflow)
    assert results == {
        "p": {"result": {"value": 3.125, "previous": 3.125, "iteration": 5, "converged": True}}
    }


def test_two_node_cycle_whose_first_iteration_has_no_feedback(run: Runner) -> None:
    builder = WorkflowBuilder()
    builder.add_node(
        "PythonCodeNode",
        "prod",
        {
            "code": "try:\n    q = quality\nexcept NameError:\n    q = 0.0\n"
            "result = {'quality': q + 0.25}"
        },
    )
    builder.add_node(
        "PythonCodeNode",
        "ev",
        {"code": "result = {'quality': data['quality'], 'done': data['quality'] >= 0.9}"},
    )
    builder.add_connection("prod", "result", "ev", "data")
    workflow = builder.build()
    workflow.create_cycle("c").connect("ev", "prod", {"result.quality": "quality"}).max_iterations(
        10
    ).converge_when("done == True").build()
    results, _ = run(workflow)
    assert results == {
        "prod": {"result": {"quality": 1.0}},
        "ev": {"result": {"quality": 1.0, "done": True}},
    }


_FILTER = (
    "try:\n    lim = limit\nexcept NameError:\n    lim = 2\n"
    "kept = []\nfor x in data:\n    if x > lim:\n        kept.append(x)\nresult = kept"
)


def _filter_chain() -> WorkflowBuilder:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "load", {"code": "result = [1, 2, 3, 4]"})
    builder.add_node("PythonCodeNode", "filt", {"code": _FILTER})
    fmt = "result = {'n': len(items), 'limit': limit}"
    builder.add_node("PythonCodeNode", "fmt", {"code": fmt})
    builder.add_connection("load", "result", "filt", "data")
    builder.add_connection("filt", "result", "fmt", "items")
    return builder


def test_node_checking_for_a_parameter_meant_for_another_node(run: Runner) -> None:
    results, _ = run(_filter_chain().build(), {"fmt": {"limit": 3}})
    assert results["filt"] == {"result": [3, 4]}
    assert results["fmt"] == {"result": {"n": 2, "limit": 3}}
    results, _ = run(_filter_chain().build(), {"filt": {"limit": 0}, "fmt": {"limit": 0}})
    assert results["filt"] == {"result": [1, 2, 3, 4]}


def test_workflow_level_parameter_reaches_optional_inputs(run: Runner) -> None:
    results, _ = run(_filter_chain().build(), {"limit": 1})
    assert results["filt"] == {"result": [2, 3, 4]}
    assert results["fmt"] == {"result": {"n": 3, "limit": 1}}


def test_guard_that_does_not_catch_name_error_keeps_the_input_required(run: Runner) -> None:
    builder = WorkflowBuilder()
    builder.add_node(
        "PythonCodeNode",
        "n",
        {"code": "try:\n    v = value\nexcept KeyError:\n    v = 0\nresult = v"},
    )
    with pytest.raises(WorkflowValidationError, match="node 'n' input 'value'"):
        run(builder.build())
