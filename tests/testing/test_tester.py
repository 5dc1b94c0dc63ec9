"""WorkflowTester.test_workflow: outputs, failed nodes, requirements, expected outputs,
test data in every form, and process isolation."""

from __future__ import annotations

import json
import math
import sys

import pytest

from kailash_nb import LocalRuntime, WorkflowBuilder
from kailash_nb.testing import (
    WorkflowOutputs,
    WorkflowTester,
    WorkflowTestResult,
    WorkflowTestSetupError,
)

MIB = 1024 * 1024


def _workflow(*nodes: tuple[str, str], connections=()):
    builder = WorkflowBuilder()
    for node_id, code in nodes:
        builder.add_node("PythonCodeNode", node_id, {"code": code})
    for source, output, target, target_input in connections:
        builder.add_connection(source, output, target, target_input)
    return builder.build()


def _sum_workflow():
    return _workflow(
        ("load", "result = list(range(n))"),
        ("total", "result = sum(rows)"),
        connections=[("load", "result", "total", "rows")],
    )


@pytest.fixture
def tester():
    return WorkflowTester()


def test_a_healthy_run_passes_with_outputs_figures_and_node_timings(tester):
    result = tester.test_workflow(
        _sum_workflow(),
        test_data={"load": {"n": 5}},
        performance_requirements={"max_execution_time": 30, "max_memory_mb": 512},
        expected={"total": {"result": 10}},
    )
    assert result.success, result.errors
    assert result.errors == []
    assert isinstance(result.outputs, WorkflowOutputs)
    assert result.outputs["total"] == {"result": 10}
    assert result.performance.execution_time > 0
    assert 0 <= result.performance.memory_usage_mb < 512
    assert set(result.performance.node_timings) == {"load", "total"}
    assert result.node_timings == result.performance.node_timings
    assert result.performance.isolation == "none"
    assert "passed" in repr(result)


def test_a_node_holding_64_mib_reports_at_least_64(tester):
    workflow = _workflow(("hold", "data = bytearray(64 * 1024 * 1024)\nresult = len(data)"))
    result = tester.test_workflow(workflow)
    assert result.success
    assert result.performance.memory_usage_mb >= 64


def test_too_much_memory_fails_naming_the_requirement_limit_and_measured_value(tester):
    workflow = _workflow(("hold", "result = len(bytearray(64 * 1024 * 1024))"))
    result = tester.test_workflow(workflow, performance_requirements={"max_memory_mb": 32})
    assert not result.success
    (failure,) = result.failures
    assert failure.requirement == "max_memory_mb"
    assert failure.limit == 32
    assert failure.measured >= 64
    assert result.errors[0].startswith("max_memory_mb:")
    assert "over the limit of 32 MiB" in result.errors[0]
    assert "max_memory_mb" in repr(result)


def test_too_slow_fails_and_is_stopped_at_the_limit(tester):
    # The node would sleep 2 s: the run is stopped at the limit, the test does not wait.
    workflow = _workflow(("slow", "import time\ntime.sleep(2)\nresult = 1"))
    result = tester.test_workflow(workflow, performance_requirements={"max_execution_time": 0.1})
    assert not result.success
    (failure,) = result.failures
    assert failure.requirement == "max_execution_time"
    assert failure.limit == 0.1
    assert failure.measured >= 0.1
    assert "max_execution_time: the run took at least" in result.errors[0]
    assert result.cases[0].status == "timeout"


def test_a_slow_node_fails_max_node_execution_time_naming_the_node(tester):
    workflow = _workflow(
        ("fast", "result = 1"), ("slow", "import time\ntime.sleep(0.05)\nresult = 2")
    )
    result = tester.test_workflow(
        workflow, performance_requirements={"max_node_execution_time": 0.01}
    )
    assert [f.node_id for f in result.failures] == ["slow"]
    assert result.errors[0].startswith("max_node_execution_time: node 'slow' ran")


def test_a_node_that_raises_fails_naming_the_node(tester):
    workflow = _workflow(
        ("load", "result = [1, 2]"),
        ("boom", "raise ValueError('no rows today')"),
        connections=[("load", "result", "boom", "rows")],
    )
    result = tester.test_workflow(workflow, performance_requirements={"max_execution_time": 30})
    assert not result.success
    (failure,) = result.failures
    assert failure.kind == "node" and failure.node_id == "boom"
    assert "node 'boom' raised" in result.errors[0]
    assert "no rows today" in result.errors[0]
    assert result.outputs["load"] == {"result": [1, 2]}


def test_parameters_the_workflow_refuses_fail_without_running(tester):
    result = tester.test_workflow(_sum_workflow(), test_data={"nowhere": {"n": 1}})
    assert not result.success
    assert result.failures[0].kind == "run"
    assert result.errors[0].startswith("the run did not start:")
    assert result.cases[0].status == "refused"


def test_expected_outputs_that_differ_are_named_with_a_readable_diff(tester):
    result = tester.test_workflow(
        _sum_workflow(),
        test_data={"load": {"n": 4}},
        expected={
            "total": {"result": 7},
            "load": {"result": list(range(40))},
            "missing": {"result": 1},
        },
    )
    assert not result.success
    errors = result.errors
    assert errors[0] == "node 'total' output 'result': expected 7, got 6"
    assert errors[1].startswith("node 'load' output 'result': differs:")
    assert "--- expected" in errors[1] and "+++ actual" in errors[1]
    assert errors[2].startswith("node 'missing': expected outputs")
    assert all(f.kind == "expected" for f in result.failures)


def test_a_list_of_cases_runs_each_and_names_the_failing_one(tester):
    result = tester.test_workflow(
        _sum_workflow(),
        test_data=[
            {
                "name": "three",
                "parameters": {"load": {"n": 3}},
                "expected": {"total": {"result": 3}},
            },
            {"load": {"n": 4}},
        ],
        expected={"total": {"result": 99}},
    )
    assert [case.name for case in result.cases] == ["three", "case 2"]
    assert [case.success for case in result.cases] == [True, False]
    assert result.errors == ["case 2: node 'total' output 'result': expected 99, got 6"]
    assert result.outputs["three"]["total"] == {"result": 3}
    worst = max(case.performance.execution_time for case in result.cases)
    assert result.performance.execution_time == worst


def test_test_data_from_a_json_file(tester, tmp_path):
    path = tmp_path / "cases.json"
    path.write_text(json.dumps([{"load": {"n": 2}}, {"load": {"n": 3}}]))
    result = tester.test_workflow(_sum_workflow(), test_data=str(path))
    assert [case.outputs["total"] for case in result.cases] == [{"result": 1}, {"result": 3}]


def test_malformed_test_data_names_the_file_and_line(tester, tmp_path):
    path = tmp_path / "cases.json"
    path.write_text('[\n  {"load": {"n": 2}},\n  3\n]\n')
    with pytest.raises(WorkflowTestSetupError, match=r"cases\.json, line 1: case 2: test data"):
        tester.test_workflow(_sum_workflow(), test_data=path)
    path.write_text('{\n  "load": {"n": 2},\n  "load": {"n": 3}\n}\n')
    with pytest.raises(WorkflowTestSetupError, match=r"cases\.json, line 1: duplicate key 'load'"):
        tester.test_workflow(_sum_workflow(), test_data=path)
    with pytest.raises(WorkflowTestSetupError, match="cannot read the test data file"):
        tester.test_workflow(_sum_workflow(), test_data=tmp_path / "absent.json")


@pytest.mark.parametrize(
    ("requirements", "message"),
    [
        ({"max_cpu": 1}, "unknown performance requirement 'max_cpu'"),
        ({"max_memory_mb": 0}, "must be a positive, finite number"),
        ({"max_execution_time": "fast"}, "must be a number"),
        ({"max_execution_time": True}, "must be a number"),
        ({"max_memory_mb": math.inf}, "must be a positive, finite number"),
    ],
)
def test_bad_requirements_are_refused(tester, requirements, message):
    with pytest.raises(WorkflowTestSetupError, match=message):
        tester.test_workflow(_sum_workflow(), performance_requirements=requirements)


def test_bad_isolation_and_a_non_workflow_are_refused(tester):
    with pytest.raises(WorkflowTestSetupError, match="isolation must be one of"):
        tester.test_workflow(_sum_workflow(), isolation="thread")
    with pytest.raises(WorkflowTestSetupError, match="isolation='process'"):
        WorkflowTester(LocalRuntime(), isolation="process")
    with pytest.raises(WorkflowTestSetupError, match="tests a Workflow"):
        tester.test_workflow({"nodes": {}})


def test_a_given_runtime_runs_the_cases(tester):
    runtime = LocalRuntime()
    seen = []
    with runtime.events.subscribe(seen.append, nodes=False):
        result = WorkflowTester(runtime).test_workflow(_sum_workflow(), {"load": {"n": 2}})
    assert result.success
    assert {event.state for event in seen} == {"started", "completed"}


def test_assert_success_lists_every_failure(tester):
    result = tester.test_workflow(
        _sum_workflow(), {"load": {"n": 2}}, expected={"total": {"result": 0}}
    )
    with pytest.raises(AssertionError, match="expected 0, got 1"):
        result.assert_success()
    assert isinstance(result, WorkflowTestResult)


@pytest.mark.slow
def test_process_isolation_measures_in_a_fresh_process(tester):
    workflow = _workflow(("hold", "result = len(bytearray(64 * 1024 * 1024))"))
    result = tester.test_workflow(
        workflow,
        isolation="process",
        performance_requirements={"max_memory_mb": 32},
        expected={"hold": {"result": 64 * MIB}},
    )
    report = result.performance
    assert report.isolation == "process"
    assert report.memory_usage_mb >= 64
    assert report.process_peak_rss_mb >= 64
    assert result.outputs == {"hold": {"result": 64 * MIB}}
    assert [f.requirement for f in result.failures] == ["max_memory_mb"]


@pytest.mark.slow
def test_process_isolation_reports_a_raising_node_and_a_slow_run(tester):
    workflow = _workflow(("boom", "raise KeyError('gone')"))
    result = tester.test_workflow(workflow, isolation="process")
    assert result.errors[0].startswith("node 'boom' raised")
    slow = _workflow(("slow", "import time\ntime.sleep(2)\nresult = 1"))
    result = tester.test_workflow(
        slow, isolation="process", performance_requirements={"max_execution_time": 0.1}
    )
    assert [f.requirement for f in result.failures] == ["max_execution_time"]


def test_process_isolation_works_when_main_has_no_spec(tester, monkeypatch):
    """An IPython kernel's ``%reset`` leaves ``__main__`` without ``__spec__``, which
    multiprocessing's spawning reads; the tester's fresh process does not need it."""
    main = sys.modules["__main__"]
    monkeypatch.delattr(main, "__spec__", raising=False)
    result = tester.test_workflow(_workflow(("one", "result = 1")), isolation="process")
    assert result.success, result.errors
    assert result.outputs == {"one": {"result": 1}}


def test_process_isolation_needs_a_portable_workflow(tester):
    from kailash_nb.nodes.code import PythonCodeNode

    def double(x=1):
        return {"result": x * 2}

    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(double), "double")
    with pytest.raises(WorkflowTestSetupError, match="isolation='process' sends the workflow"):
        tester.test_workflow(builder.build(), isolation="process")
