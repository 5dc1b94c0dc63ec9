"""``conditional_execution``: Kailash's two modes, with results as Kailash 2.65 gives them.

In both modes the nodes of an untaken ``SwitchNode`` branch do not run; the modes
differ only in whether those nodes appear in the results (``None``) or not.
"""

from __future__ import annotations

import asyncio

import pytest

from kailash_nb import AsyncLocalRuntime, LocalRuntime, Workflow, WorkflowBuilder
from kailash_nb.sdk_exceptions import RuntimeExecutionError


def _branching() -> Workflow:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "src", {"code": "result = {'v': 5}"})
    builder.add_node("SwitchNode", "sw", {"condition_field": "v", "operator": ">", "value": 3})
    builder.add_node("PythonCodeNode", "yes", {"code": "result = 'big'"})
    builder.add_node("PythonCodeNode", "no", {"code": "result = 'small'"})
    builder.add_node("PythonCodeNode", "no2", {"code": "result = 'small2'"})
    builder.add_node("MergeNode", "m", {})
    builder.add_connection("src", "result", "sw", "input_data")
    builder.add_connection("sw", "true_output", "yes", "data")
    builder.add_connection("sw", "false_output", "no", "data")
    builder.add_connection("no", "result", "no2", "data")
    builder.add_connection("yes", "result", "m", "data1")
    builder.add_connection("no2", "result", "m", "data2")
    return builder.build()


_MERGED = {"merged_data": "big"}


def _branch_results(results: dict) -> dict:
    return {key: value for key, value in results.items() if key not in ("src", "sw")}


def test_route_data_lists_untaken_nodes_as_none():
    results, _ = LocalRuntime(conditional_execution="route_data").execute(_branching())
    assert _branch_results(results) == {
        "m": {"merged_data": "big"},
        "no": None,
        "no2": None,
        "yes": {"result": "big"},
    }


@pytest.mark.parametrize("options", [{}, {"conditional_execution": "skip_branches"}])
def test_skip_branches_leaves_untaken_nodes_out(options):
    results, _ = LocalRuntime(**options).execute(_branching())
    assert _branch_results(results) == {"m": {"merged_data": "big"}, "yes": {"result": "big"}}
    assert LocalRuntime(**options).conditional_execution == "skip_branches"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("route_data", {"m": _MERGED, "no": None, "no2": None, "yes": {"result": "big"}}),
        ("skip_branches", {"m": _MERGED, "yes": {"result": "big"}}),
    ],
)
def test_async_runtime_accepts_both_modes(mode, expected):
    async def run() -> dict:
        async with AsyncLocalRuntime(conditional_execution=mode) as runtime:
            results, _ = await runtime.execute_workflow_async(_branching(), {})
        return results

    assert _branch_results(asyncio.run(run())) == expected


@pytest.mark.parametrize("mode", ["bogus", 3, None])
def test_other_modes_are_refused(mode):
    for runtime_class in (LocalRuntime, AsyncLocalRuntime):
        with pytest.raises(RuntimeExecutionError, match="conditional_execution must be one of"):
            runtime_class(conditional_execution=mode)


# -- the other Kailash runtime options (docs/porting.md) ---------------------------------
def test_connection_validation_strict_is_what_kailash_nb_does():
    for runtime_class in (LocalRuntime, AsyncLocalRuntime):
        runtime_class(connection_validation="strict")
        for mode in ("warn", "off"):
            with pytest.raises(TypeError, match="always validates connections strictly"):
                runtime_class(connection_validation=mode)


def test_enable_monitoring_is_refused_with_what_to_use_instead():
    for runtime_class in (LocalRuntime, AsyncLocalRuntime):
        with pytest.raises(TypeError, match=r"'enable_monitoring'.*history=True"):
            runtime_class(enable_monitoring=True)


def test_enable_cycles_true_is_what_kailash_nb_does():
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "inc", {"code": "result = count + 1", "count": 0})
    workflow = builder.build()
    workflow.create_cycle("c").connect("inc", "inc", {"result": "count"}).max_iterations(3).build()
    for runtime_class in (LocalRuntime, AsyncLocalRuntime):
        results, _ = runtime_class(enable_cycles=True).execute(workflow)
        assert results == {"inc": {"result": 3}}
        for value in (False, None, 0):
            with pytest.raises(TypeError, match="always runs declared cycles"):
                runtime_class(enable_cycles=value)


def test_enable_async_true_is_what_kailash_nb_does():
    builder = WorkflowBuilder()
    builder.add_node("AsyncPythonCodeNode", "a", {"code": "result = 1"})
    for runtime_class in (LocalRuntime, AsyncLocalRuntime):
        results, _ = runtime_class(enable_async=True).execute(builder.build())
        assert results == {"a": {"result": 1}}
        with pytest.raises(TypeError, match="always runs async nodes on its event loop"):
            runtime_class(enable_async=False)


def test_execute_takes_kailash_task_manager_none_only():
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    runtime = LocalRuntime()
    results, _ = runtime.execute(builder.build(), task_manager=None)
    assert results == {"a": {"result": 1}}
    with pytest.raises(TypeError, match=r"does not mirror kailash\.tracking"):
        runtime.execute(builder.build(), task_manager=object())


def test_thread_pool_size_is_async_runtime_max_worker_threads():
    assert AsyncLocalRuntime(thread_pool_size=4).settings.max_worker_threads == 4
    with pytest.raises(TypeError, match="not both"):
        AsyncLocalRuntime(thread_pool_size=4, max_worker_threads=4)
    with pytest.raises(RuntimeExecutionError, match="max_worker_threads"):
        AsyncLocalRuntime(thread_pool_size=0)
    # Kailash's LocalRuntime has no such option either.
    with pytest.raises(TypeError, match="unexpected keyword argument 'thread_pool_size'"):
        LocalRuntime(thread_pool_size=4)
