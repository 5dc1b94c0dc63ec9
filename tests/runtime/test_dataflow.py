"""The engine's data flow contract (see ``kailash_nb.runtime.engine``), one test per point.

Every test runs under ``LocalRuntime().execute`` and
``AsyncLocalRuntime().execute_workflow_async``; a third mode forces the concurrent
event-loop scheduler (a ``workflow_timeout`` makes every run use it) so the contract
is checked on both of the engine's schedulers as well; a fourth runs the nodes on a
dask.distributed cluster (``DaskRuntime``, the session's two-worker LocalCluster).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from kailash_nb import AsyncLocalRuntime, LocalRuntime, Workflow, WorkflowBuilder
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.sdk_exceptions import (
    NodeExecutionError,
    WorkflowExecutionError,
    WorkflowValidationError,
)


class Runner:
    """Runs a workflow under one runtime: ``run(workflow, parameters)`` returns
    ``(results, run_id)``; ``started`` lists the nodes that started, in order, from
    the runtime's events (what the nodes did is seen there too when they run on other
    processes, as under ``DaskRuntime``)."""

    def __init__(self, mode: str, dask: Any = None) -> None:
        self.mode = mode
        self.dask = dask
        self.started: list[str] = []

    def _record(self, event: Any) -> None:
        if event.state == "started":
            self.started.append(event.node_id)

    def __call__(self, workflow: Workflow, parameters: dict[str, Any] | None = None):
        runtime = self.dask
        if runtime is None:
            runtime = {
                "local": LocalRuntime,
                "async": AsyncLocalRuntime,
                "async_scheduled": lambda: AsyncLocalRuntime(workflow_timeout=60),
            }[self.mode]()
        with runtime.events.subscribe(self._record, runs=False):
            if self.mode in ("local", "dask"):
                return runtime.execute(workflow, parameters)
            return asyncio.run(runtime.execute_workflow_async(workflow, parameters))


@pytest.fixture(params=["local", "async", "async_scheduled", "dask"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Run a workflow under one runtime; returns ``(results, run_id)``."""
    dask = request.getfixturevalue("dask_runtime") if request.param == "dask" else None
    return Runner(request.param, dask)


def _builder(**nodes: str | dict[str, Any]) -> WorkflowBuilder:
    """A builder with one PythonCodeNode per keyword: ``id=code`` or ``id={config}``."""
    builder = WorkflowBuilder()
    for node_id, spec in nodes.items():
        config = {"code": spec} if isinstance(spec, str) else spec
        builder.add_node("PythonCodeNode", node_id, config)
    return builder


def _is_uuid4(text: Any) -> bool:
    return isinstance(text, str) and uuid.UUID(text).version == 4 and str(uuid.UUID(text)) == text


# -- outputs and connections ---------------------------------------------------------------


def test_dotted_source_path(run: Runner) -> None:
    builder = _builder(
        load="result = {'data': {'rows': [1, 2, 3], 'name': 'r'}}",
        total="result = sum(rows)",
        label="result = name.upper()",
    )
    builder.add_connection("load", "result.data.rows", "total", "rows")
    builder.add_connection("load", "result.data.name", "label", "name")
    results, _ = run(builder.build())
    assert results["total"] == {"result": 6}
    assert results["label"] == {"result": "R"}


def test_dotted_path_through_non_dict_fails(run: Runner) -> None:
    builder = _builder(load="result = [1, 2]", use="result = rows")
    builder.add_connection("load", "result.rows", "use", "rows")
    with pytest.raises(WorkflowExecutionError, match="not a dict"):
        run(builder.build())


def test_later_none_never_overwrites_non_none(run: Runner) -> None:
    builder = _builder(
        given="result = 5",
        empty="result = None",
        sink="result = x",
    )
    builder.add_connection("given", "result", "sink", "x")
    builder.add_connection("empty", "result", "sink", "x")  # later, but None
    results, _ = run(builder.build())
    assert results["sink"] == {"result": 5}


def test_later_non_none_wins(run: Runner) -> None:
    builder = _builder(
        first="result = 1",
        second="result = 2",
        empty="result = None",
        sink="result = x",
    )
    builder.add_connection("empty", "result", "sink", "x")
    builder.add_connection("second", "result", "sink", "x")
    builder.add_connection("first", "result", "sink", "x")  # the last non-None wins
    results, _ = run(builder.build())
    assert results["sink"] == {"result": 1}


def test_all_none_from_ordinary_nodes_still_runs(run: Runner) -> None:
    builder = _builder(empty="result = None", sink="result = x is None")
    builder.add_connection("empty", "result", "sink", "x")
    results, _ = run(builder.build())
    assert results["sink"] == {"result": True}


# -- parameters ----------------------------------------------------------------------------


def test_precedence_config_connected_node_keyed(run: Runner) -> None:
    builder = _builder(
        src="result = 2",
        config_only={"code": "result = x", "x": 1},
        connected={"code": "result = x", "x": 1},
        keyed={"code": "result = x", "x": 1},
    )
    builder.add_connection("src", "result", "connected", "x")
    builder.add_connection("src", "result", "keyed", "x")
    results, _ = run(builder.build(), {"keyed": {"x": 3}})
    assert results["config_only"] == {"result": 1}
    assert results["connected"] == {"result": 2}
    assert results["keyed"] == {"result": 3}


def test_node_keyed_parameters_reach_only_that_node(run: Runner) -> None:
    builder = _builder(
        one={"code": "result = x", "x": 0},
        two={"code": "result = x", "x": 0},
    )
    results, _ = run(builder.build(), {"one": {"x": 5}})
    assert results == {"one": {"result": 5}, "two": {"result": 0}}


def test_workflow_level_parameters(run: Runner) -> None:
    builder = _builder(
        src="result = 'connected'",
        bare="result = x",
        configured={"code": "result = x", "x": "config"},
        connected="result = x",
        keyed="result = x",
        other="result = y",
    )
    builder.add_connection("src", "result", "connected", "x")
    parameters = {"x": "flat", "y": "why", "keyed": {"x": "node-keyed"}}
    results, _ = run(builder.build(), parameters)
    assert results["bare"] == {"result": "flat"}  # reaches every node declaring x
    assert results["configured"] == {"result": "flat"}  # beats config
    assert results["connected"] == {"result": "connected"}  # does not override connections
    assert results["keyed"] == {"result": "node-keyed"}  # node-keyed beats flat
    assert results["other"] == {"result": "why"}
    assert results["src"] == {"result": "connected"}  # src declares nothing


def test_workflow_level_parameter_satisfies_required_inputs(run: Runner) -> None:
    builder = _builder(a="result = x + 1", b="result = x * 2")
    results, _ = run(builder.build(), {"x": 10})
    assert results == {"a": {"result": 11}, "b": {"result": 20}}


def _recording_workflow(calls: list[str]) -> WorkflowBuilder:
    def first() -> str:
        calls.append("first")
        return "ran"

    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(first), "first")
    builder.add_node("SwitchNode", "route", {"value": "ran"})
    builder.add_node("PythonCodeNode", "last", {"code": "result = y"})
    builder.add_connection("first", "result", "route", "input_data")
    builder.add_connection("route", "true_output", "last", "y")
    return builder


@pytest.mark.parametrize(
    ("parameters", "fragment"),
    [
        ({"nobody_declares_this": 1}, "nobody_declares_this"),
        ({"frist": {"x": 1}}, "frist"),
        ({"route": {"input_dta": 1}}, "input_dta"),
        ({"route": 5}, "must be a dict"),
        ({"route": {"value": 1}, "missing_node": {"a": 1}}, "missing_node"),
    ],
)
def test_unknown_parameters_fail_before_any_node_runs(
    run: Runner, parameters: dict[str, Any], fragment: str
) -> None:
    calls: list[str] = []
    workflow = _recording_workflow(calls).build()
    with pytest.raises(WorkflowValidationError, match=fragment):
        run(workflow, parameters)
    assert calls == run.started == []
    results, _ = run(workflow)  # the same workflow runs fine with good parameters
    assert run.started.count("first") == 1
    if run.mode != "dask":  # on a dask worker the function appends to its own copy
        assert calls == ["first"]
    assert results["last"] == {"result": "ran"}


@pytest.mark.parametrize(
    "parameters",
    [
        {"__class__": 1},
        {"__builtins__": {"x": 1}},
        {"last": {"__import__": 1}},
        {"last": {"__builtins__": {}}},
    ],
)
def test_dunder_parameter_names_rejected(run: Runner, parameters: dict[str, Any]) -> None:
    calls: list[str] = []
    with pytest.raises(WorkflowValidationError, match="dunder"):
        run(_recording_workflow(calls).build(), parameters)
    assert calls == run.started == []


def test_non_dict_parameters_rejected(run: Runner) -> None:
    calls: list[str] = []
    with pytest.raises(WorkflowValidationError, match="must be a dict"):
        run(_recording_workflow(calls).build(), [("last", {"y": 1})])
    assert calls == run.started == []


def test_missing_required_input_fails_before_any_node_runs(run: Runner) -> None:
    calls: list[str] = []

    def first() -> int:
        calls.append("first")
        return 1

    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(first), "first")
    builder.add_node("PythonCodeNode", "needs", {"code": "result = a + needed_value"})
    builder.add_connection("first", "result", "needs", "a")
    workflow = builder.build()
    with pytest.raises(WorkflowValidationError) as info:
        run(workflow)
    message = str(info.value)
    assert "'needs'" in message
    assert "'needed_value'" in message
    assert calls == run.started == []
    # The same input given by each route makes it run.
    for parameters in ({"needs": {"needed_value": 1}}, {"needed_value": 1}):
        results, _ = run(workflow, parameters)
        assert results["needs"] == {"result": 2}


def test_missing_required_input_of_function_node_names_it(run: Runner) -> None:
    calls: list[str] = []

    def first() -> int:
        calls.append("first")
        return 1

    def second(a: int, b: int, c: int = 3) -> int:
        calls.append("second")
        return a + b + c

    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(first), "first")
    builder.add_node(PythonCodeNode.from_function(second), "second")
    builder.add_connection("first", "result", "second", "a")
    with pytest.raises(WorkflowValidationError, match=r"node 'second' input 'b'"):
        run(builder.build())
    assert calls == run.started == []


# -- switch skipping -----------------------------------------------------------------------


def _branching_workflow() -> Workflow:
    builder = _builder(
        src="result = {'value': value}",
        big="result = d['value'] * 10",
        big_next="result = r + 1",
        small="result = -d['value']",
    )
    builder.add_node(
        "SwitchNode", "switch", {"condition_field": "value", "operator": ">", "value": 3}
    )
    builder.add_node("MergeNode", "merge", {})
    builder.add_connection("src", "result", "switch", "input_data")
    builder.add_connection("switch", "true_output", "big", "d")
    builder.add_connection("big", "result", "big_next", "r")
    builder.add_connection("switch", "false_output", "small", "d")
    builder.add_connection("big_next", "result", "merge", "data1")
    builder.add_connection("small", "result", "merge", "data2")
    return builder.build()


def test_switch_true_branch(run: Runner) -> None:
    results, _ = run(_branching_workflow(), {"src": {"value": 5}})
    assert results["switch"] == {
        "true_output": {"value": 5},
        "false_output": None,
        "condition_result": True,
    }
    assert results["big"] == {"result": 50}
    assert results["big_next"] == {"result": 51}
    assert "small" not in results
    assert results["merge"] == {"merged_data": 51}
    assert set(results) == {"src", "switch", "big", "big_next", "merge"}


def test_switch_false_branch_skips_transitively(run: Runner) -> None:
    results, _ = run(_branching_workflow(), {"src": {"value": 1}})
    assert results["switch"]["condition_result"] is False
    assert results["small"] == {"result": -1}
    assert "big" not in results
    assert "big_next" not in results  # skipped because its only source was skipped
    assert results["merge"] == {"merged_data": -1}
    assert set(results) == {"src", "switch", "small", "merge"}


def test_merge_after_switch_without_other_input_is_skipped_when_branch_not_taken(
    run: Runner,
) -> None:
    builder = _builder(src="result = 1")
    builder.add_node("SwitchNode", "switch", {"value": 2})
    builder.add_node("MergeNode", "merge", {})
    builder.add_node("PythonCodeNode", "after", {"code": "result = m"})
    builder.add_connection("src", "result", "switch", "input_data")
    builder.add_connection("switch", "true_output", "merge", "data1")
    builder.add_connection("merge", "merged_data", "after", "m")
    results, _ = run(builder.build())
    assert set(results) == {"src", "switch"}


def test_multi_case_switch(run: Runner) -> None:
    builder = _builder(
        src="result = {'color': color, 'n': 1}",
        on_red="result = 'red:' + str(d['n'])",
        on_green="result = 'green:' + str(d['n'])",
        on_dark_blue="result = 'dark blue:' + str(d['n'])",
        always="result = 'default:' + d['color']",
    )
    builder.add_node(
        "SwitchNode",
        "switch",
        {"condition_field": "color", "cases": ["red", "green", "dark blue"]},
    )
    builder.add_connection("src", "result", "switch", "input_data")
    builder.add_connection("switch", "case_red", "on_red", "d")
    builder.add_connection("switch", "case_green", "on_green", "d")
    builder.add_connection("switch", "case_dark_blue", "on_dark_blue", "d")
    builder.add_connection("switch", "default", "always", "d")
    workflow = builder.build()

    results, _ = run(workflow, {"src": {"color": "green"}})
    assert results["switch"]["condition_result"] == "green"
    assert results["on_green"] == {"result": "green:1"}
    assert results["always"] == {"result": "default:green"}
    assert "on_red" not in results
    assert "on_dark_blue" not in results

    results, _ = run(workflow, {"src": {"color": "dark blue"}})
    assert results["on_dark_blue"] == {"result": "dark blue:1"}
    assert "on_green" not in results

    results, _ = run(workflow, {"src": {"color": "purple"}})
    assert results["switch"]["condition_result"] is None
    assert set(results) == {"src", "switch", "always"}


def test_condition_result_output_always_flows(run: Runner) -> None:
    builder = _builder(src="result = 0", flag="result = not ok")
    builder.add_node("SwitchNode", "switch", {"value": 1})
    builder.add_connection("src", "result", "switch", "input_data")
    builder.add_connection("switch", "condition_result", "flag", "ok")
    results, _ = run(builder.build())
    assert results["flag"] == {"result": True}


# -- failures ------------------------------------------------------------------------------


def test_failing_node_with_dependents_stops_the_run(run: Runner) -> None:
    builder = _builder(
        start="result = 4",
        divide="result = x / 0",
        after="result = y",
    )
    builder.add_connection("start", "result", "divide", "x")
    builder.add_connection("divide", "result", "after", "y")
    with pytest.raises(WorkflowExecutionError) as info:
        run(builder.build())
    error = info.value
    assert error.node_id == "divide"
    assert error.results == {"start": {"result": 4}}
    assert _is_uuid4(error.run_id)
    assert "'divide'" in str(error)
    chain = []
    cause: BaseException | None = error
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__
    assert isinstance(chain[1], NodeExecutionError)
    assert isinstance(chain[-1], ZeroDivisionError)


def test_failing_leaf_is_recorded_and_run_completes(run: Runner) -> None:
    builder = _builder(
        start="result = 4",
        divide="result = x / 0",
        fine="result = x + 1",
        later="result = z * 2",
    )
    builder.add_connection("start", "result", "divide", "x")
    builder.add_connection("start", "result", "fine", "x")
    builder.add_connection("fine", "result", "later", "z")
    results, run_id = run(builder.build())
    assert _is_uuid4(run_id)
    failed = results["divide"]
    assert set(failed) == {"error", "error_type", "failed"}
    assert failed["failed"] is True
    assert failed["error_type"] == "ZeroDivisionError"
    assert "division by zero" in failed["error"]
    assert results["fine"] == {"result": 5}
    assert results["later"] == {"result": 10}


def test_failing_leaf_raising_kailash_error_keeps_its_type(run: Runner) -> None:
    builder = _builder(start="result = 'abc'")
    builder.add_node("PythonCodeNode", "typed", {"code": "result = n", "input_types": {"n": "int"}})
    builder.add_connection("start", "result", "typed", "n")
    results, _ = run(builder.build())
    assert results["typed"]["failed"] is True
    assert results["typed"]["error_type"] == "NodeValidationError"


def test_missing_source_output_key_fails(run: Runner) -> None:
    builder = _builder(start="result = 1", after="result = y")
    builder.add_connection("start", "reslt", "after", "y")
    with pytest.raises(WorkflowExecutionError, match="reslt") as info:
        run(builder.build())
    assert info.value.results == {"start": {"result": 1}}
    assert _is_uuid4(info.value.run_id)


def test_results_contain_only_nodes_that_ran(run: Runner) -> None:
    builder = _builder(
        a="result = 1",
        b="result = x / 0",
        c="result = y",
        d="result = 'independent'",
    )
    builder.add_connection("a", "result", "b", "x")
    builder.add_connection("b", "result", "c", "y")
    with pytest.raises(WorkflowExecutionError) as info:
        run(builder.build())
    assert "b" not in info.value.results
    assert "c" not in info.value.results
    assert info.value.results["a"] == {"result": 1}


def test_run_id_is_a_fresh_uuid4(run: Runner) -> None:
    workflow = _builder(a="result = 1").build()
    (results1, run_id1), (results2, run_id2) = run(workflow), run(workflow)
    assert results1 == results2 == {"a": {"result": 1}}
    assert _is_uuid4(run_id1)
    assert _is_uuid4(run_id2)
    assert run_id1 != run_id2
