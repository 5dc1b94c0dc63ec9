"""Runtimes: concurrency, running inside event loops, limits, timeouts, retries, options."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from kailash_nb import AsyncLocalRuntime, AsyncNode, LocalRuntime, Workflow, WorkflowBuilder
from kailash_nb.nodes.base import NodeParameter
from kailash_nb.nodes.code import AsyncPythonCodeNode, PythonCodeNode
from kailash_nb.sdk_exceptions import (
    RuntimeExecutionError,
    WorkflowExecutionError,
    WorkflowTimeoutError,
)

Runner = Callable[..., tuple[dict[str, Any], str]]
RUNTIMES = ["local", "async"]


def _execute(mode: str, workflow: Any, parameters: dict[str, Any] | None = None, **options: Any):
    if mode == "local":
        return LocalRuntime(**options).execute(workflow, parameters)
    return asyncio.run(AsyncLocalRuntime(**options).execute_workflow_async(workflow, parameters))


class Rendezvous(AsyncNode):
    """Sets its own event, then waits (bounded) for its partner's."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {"mine": NodeParameter(name="mine"), "theirs": NodeParameter(name="theirs")}

    async def async_run(self, **kwargs: Any) -> dict[str, Any]:
        kwargs["mine"].set()
        await asyncio.wait_for(kwargs["theirs"].wait(), timeout=5)
        return {"result": "met"}


def _async_rendezvous_workflow() -> Workflow:
    first, second = asyncio.Event(), asyncio.Event()

    async def left() -> str:
        first.set()
        await asyncio.wait_for(second.wait(), timeout=5)
        return "left met right"

    async def right() -> str:
        second.set()
        await asyncio.wait_for(first.wait(), timeout=5)
        return "right met left"

    builder = WorkflowBuilder()
    builder.add_node(AsyncPythonCodeNode.from_function(left), "left")
    builder.add_node(AsyncPythonCodeNode.from_function(right), "right")
    builder.add_node("PythonCodeNode", "join", {"code": "result = [a, b]"})
    builder.add_connection("left", "result", "join", "a")
    builder.add_connection("right", "result", "join", "b")
    return builder.build()


def _check_rendezvous(results: dict[str, Any]) -> None:
    assert results["left"] == {"result": "left met right"}
    assert results["right"] == {"result": "right met left"}
    assert results["join"] == {"result": ["left met right", "right met left"]}


# -- concurrency ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", RUNTIMES)
def test_independent_async_nodes_run_concurrently(mode: str) -> None:
    results, _ = _execute(mode, _async_rendezvous_workflow())
    _check_rendezvous(results)


@pytest.mark.parametrize("mode", RUNTIMES)
def test_independent_async_node_subclasses_run_concurrently(mode: str) -> None:
    one, two = asyncio.Event(), asyncio.Event()
    builder = WorkflowBuilder()
    builder.add_node(Rendezvous, "a")
    builder.add_node(Rendezvous, "b")
    results, _ = _execute(
        mode,
        builder.build(),
        {"a": {"mine": one, "theirs": two}, "b": {"mine": two, "theirs": one}},
    )
    assert results == {"a": {"result": "met"}, "b": {"result": "met"}}


@pytest.mark.parametrize("mode", RUNTIMES)
def test_concurrent_sync_branches_run_in_worker_threads(mode: str) -> None:
    barrier = threading.Barrier(2, timeout=5)
    caller = threading.get_ident()
    threads: dict[str, int] = {}

    def make(name: str) -> Callable[[], str]:
        def work() -> str:
            threads[name] = threading.get_ident()
            barrier.wait()  # both must be running at once, or this breaks after 5 s
            return name

        work.__name__ = name
        return work

    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(make("one")), "one")
    builder.add_node(PythonCodeNode.from_function(make("two")), "two")
    results, _ = _execute(mode, builder.build())
    assert results == {"one": {"result": "one"}, "two": {"result": "two"}}
    assert threads["one"] != threads["two"]
    assert caller not in threads.values()


# -- running inside an event loop ----------------------------------------------------------


def test_local_execute_inside_running_loop_sequential_sync() -> None:
    seen: list[int] = []

    def where() -> int:
        seen.append(threading.get_ident())
        return 1

    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(where), "where")
    builder.add_node("PythonCodeNode", "plus", {"code": "result = x + 1"})
    builder.add_connection("where", "result", "plus", "x")
    workflow = builder.build()

    async def main() -> tuple[dict[str, Any], str, int]:
        results, run_id = LocalRuntime().execute(workflow)
        return results, run_id, threading.get_ident()

    results, run_id, caller = asyncio.run(main())
    assert results == {"where": {"result": 1}, "plus": {"result": 2}}
    assert uuid.UUID(run_id).version == 4
    assert seen == [caller]  # a sequential workflow runs inline in the caller's thread


def test_local_execute_inside_running_loop_with_async_nodes() -> None:
    workflow = _async_rendezvous_workflow()

    async def main() -> dict[str, Any]:
        results, _ = LocalRuntime().execute(workflow)
        return results

    _check_rendezvous(asyncio.run(main()))


def test_local_execute_async() -> None:
    async def main() -> tuple[dict[str, Any], str]:
        return await LocalRuntime().execute_async(_async_rendezvous_workflow())

    results, run_id = asyncio.run(main())
    _check_rendezvous(results)
    assert uuid.UUID(run_id).version == 4


def test_nested_run_from_a_node_on_the_shared_loop() -> None:
    inner_builder = WorkflowBuilder()
    inner_builder.add_node("AsyncPythonCodeNode", "inner", {"code": "result = n * 3"})
    inner = inner_builder.build()

    def outer(n: int) -> int:
        results, _ = LocalRuntime().execute(inner, {"inner": {"n": n}})
        return results["inner"]["result"]

    async def other() -> int:
        return 1

    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(outer), "outer", {"n": 5})
    builder.add_node(AsyncPythonCodeNode.from_function(other), "other")
    results, _ = LocalRuntime().execute(builder.build())
    assert results["outer"] == {"result": 15}


# -- lifecycle -----------------------------------------------------------------------------


def test_context_manager_and_closed_runtime() -> None:
    workflow = _async_rendezvous_workflow()
    with LocalRuntime() as runtime:
        results, _ = runtime.execute(workflow)
        _check_rendezvous(results)
    with pytest.raises(RuntimeExecutionError, match="closed"):
        runtime.execute(workflow)

    other = LocalRuntime()
    other.close()
    other.close()
    with pytest.raises(RuntimeExecutionError, match="closed"):
        other.execute(workflow)


def test_async_context_manager_and_closed_runtime() -> None:
    async def main() -> None:
        async with AsyncLocalRuntime() as runtime:
            results, _ = await runtime.execute_workflow_async(_async_rendezvous_workflow())
            _check_rendezvous(results)
        with pytest.raises(RuntimeExecutionError, match="closed"):
            await runtime.execute_workflow_async(_async_rendezvous_workflow())
        with pytest.raises(RuntimeExecutionError, match="closed"):
            await runtime.execute_async(_async_rendezvous_workflow())

    asyncio.run(main())


def test_runtime_is_reusable() -> None:
    runtime = LocalRuntime()
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = x"})
    workflow = builder.build()
    ids = {runtime.execute(workflow, {"a": {"x": i}})[1] for i in range(3)}
    assert len(ids) == 3


# -- limits --------------------------------------------------------------------------------


def _counted_async_workflow(state: dict[str, int], count: int = 3) -> Workflow:
    async def work() -> int:
        state["active"] += 1
        state["max"] = max(state["max"], state["active"])
        for _ in range(10):
            await asyncio.sleep(0)
        state["active"] -= 1
        return 1

    builder = WorkflowBuilder()
    for index in range(count):
        builder.add_node(AsyncPythonCodeNode.from_function(work), f"w{index}")
    return builder.build()


@pytest.mark.parametrize("mode", RUNTIMES)
def test_max_concurrent_nodes_one_serialises(mode: str) -> None:
    state = {"active": 0, "max": 0}
    results, _ = _execute(mode, _counted_async_workflow(state), max_concurrent_nodes=1)
    assert results == {f"w{i}": {"result": 1} for i in range(3)}
    assert state == {"active": 0, "max": 1}


@pytest.mark.parametrize("mode", RUNTIMES)
def test_without_node_cap_the_same_nodes_overlap(mode: str) -> None:
    state = {"active": 0, "max": 0}
    _execute(mode, _counted_async_workflow(state))
    assert state["max"] == 3


@pytest.mark.parametrize("mode", RUNTIMES)
def test_max_concurrent_nodes_two(mode: str) -> None:
    state = {"active": 0, "max": 0}
    _execute(mode, _counted_async_workflow(state, count=4), max_concurrent_nodes=2)
    assert state["max"] == 2


def _run_twice_concurrently(runtime: LocalRuntime, workflow: Workflow) -> list[Any]:
    async def main() -> list[Any]:
        return await asyncio.gather(
            runtime.execute_async(workflow), runtime.execute_async(workflow)
        )

    return asyncio.run(main())


@pytest.mark.parametrize("runtime_class", [LocalRuntime, AsyncLocalRuntime])
def test_max_concurrent_workflows_one_never_overlaps(runtime_class: type[LocalRuntime]) -> None:
    state = {"active": 0, "max": 0}
    runtime = runtime_class(max_concurrent_workflows=1)
    assert runtime.max_concurrent_workflows == 1
    outcomes = _run_twice_concurrently(runtime, _counted_async_workflow(state, count=1))
    assert [results for results, _ in outcomes] == [{"w0": {"result": 1}}] * 2
    assert outcomes[0][1] != outcomes[1][1]
    assert state == {"active": 0, "max": 1}


def test_without_workflow_cap_runs_overlap() -> None:
    state = {"active": 0, "max": 0}
    runtime = LocalRuntime()
    assert runtime.max_concurrent_workflows is None
    _run_twice_concurrently(runtime, _counted_async_workflow(state, count=1))
    assert state["max"] == 2


def test_max_concurrent_workflows_with_threads() -> None:
    state = {"active": 0, "max": 0}
    lock = threading.Lock()

    def work() -> int:
        with lock:
            state["active"] += 1
            state["max"] = max(state["max"], state["active"])
        for _ in range(1000):
            pass
        with lock:
            state["active"] -= 1
        return 1

    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(work), "work")
    workflow = builder.build()
    runtime = LocalRuntime(max_concurrent_workflows=1)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            for _ in range(20):
                runtime.execute(workflow)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert state == {"active": 0, "max": 1}


# -- timeouts ------------------------------------------------------------------------------


def _hanging_workflow() -> Workflow:
    async def hang(x: int) -> int:
        await asyncio.Event().wait()  # never set: only cancellation ends it
        return x

    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "quick", {"code": "result = 1"})
    builder.add_node(AsyncPythonCodeNode.from_function(hang), "hang")
    builder.add_node("PythonCodeNode", "after", {"code": "result = y"})
    builder.add_connection("quick", "result", "hang", "x")
    builder.add_connection("hang", "result", "after", "y")
    return builder.build(name="hanging")


@pytest.mark.parametrize("mode", RUNTIMES)
def test_workflow_timeout_carries_partial_results(mode: str) -> None:
    with pytest.raises(WorkflowTimeoutError) as info:
        _execute(mode, _hanging_workflow(), workflow_timeout=0.2)
    error = info.value
    assert isinstance(error, TimeoutError)
    assert isinstance(error, WorkflowExecutionError)
    assert error.results == {"quick": {"result": 1}}
    assert uuid.UUID(error.run_id).version == 4
    assert "hanging" in str(error)


@pytest.mark.parametrize("mode", RUNTIMES)
def test_node_timeout_on_leaf_is_recorded(mode: str) -> None:
    async def hang() -> int:
        await asyncio.Event().wait()
        return 0

    builder = WorkflowBuilder()
    builder.add_node(AsyncPythonCodeNode.from_function(hang), "hang")
    builder.add_node("PythonCodeNode", "fine", {"code": "result = 'ok'"})
    builder.set_node_options("hang", timeout=0.1)
    results, _ = _execute(mode, builder.build())
    assert results["fine"] == {"result": "ok"}
    assert results["hang"]["failed"] is True
    assert "timed out" in results["hang"]["error"]


@pytest.mark.parametrize("mode", RUNTIMES)
def test_node_timeout_with_dependents_stops_run(mode: str) -> None:
    workflow_builder = WorkflowBuilder()
    workflow_builder.add_node("PythonCodeNode", "quick", {"code": "result = 1"})

    async def hang(x: int) -> int:
        await asyncio.Event().wait()
        return x

    workflow_builder.add_node(AsyncPythonCodeNode.from_function(hang), "hang")
    workflow_builder.add_node("PythonCodeNode", "after", {"code": "result = y"})
    workflow_builder.add_connection("quick", "result", "hang", "x")
    workflow_builder.add_connection("hang", "result", "after", "y")
    workflow_builder.set_node_options("hang", timeout=0.1)
    with pytest.raises(WorkflowExecutionError, match="timed out") as info:
        _execute(mode, workflow_builder.build())
    assert not isinstance(info.value, WorkflowTimeoutError)
    assert info.value.node_id == "hang"
    assert info.value.results == {"quick": {"result": 1}}


@pytest.mark.parametrize("mode", RUNTIMES)
def test_runtime_node_timeout_applies_to_sync_nodes(mode: str) -> None:
    release = threading.Event()

    def stuck() -> int:
        release.wait(10)
        return 0

    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(stuck), "stuck")
    try:
        results, _ = _execute(mode, builder.build(), node_timeout=0.1)
    finally:
        release.set()  # let the abandoned worker thread finish
    assert results["stuck"]["failed"] is True
    assert "timed out" in results["stuck"]["error"]


# -- retries -------------------------------------------------------------------------------


def _flaky_builder(attempts: list[int], failures: int = 2) -> WorkflowBuilder:
    def flaky() -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) <= failures:
            raise ValueError(f"attempt {len(attempts)} fails")
        return "finally"

    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(flaky), "flaky")
    return builder


@pytest.mark.parametrize("mode", RUNTIMES)
def test_retries_enough(mode: str) -> None:
    attempts: list[int] = []
    builder = _flaky_builder(attempts)
    builder.set_node_options("flaky", retries=2, retry_delay=0)
    results, _ = _execute(mode, builder.build())
    assert results["flaky"] == {"result": "finally"}
    assert attempts == [1, 2, 3]


@pytest.mark.parametrize("mode", RUNTIMES)
def test_retries_not_enough(mode: str) -> None:
    attempts: list[int] = []
    builder = _flaky_builder(attempts)
    builder.set_node_options("flaky", retries=1, retry_delay=0)
    results, _ = _execute(mode, builder.build())
    assert attempts == [1, 2]
    assert results["flaky"]["failed"] is True
    assert results["flaky"]["error_type"] == "ValueError"
    assert "attempt 2 fails" in results["flaky"]["error"]


@pytest.mark.parametrize("mode", RUNTIMES)
def test_retries_not_enough_with_dependents(mode: str) -> None:
    attempts: list[int] = []
    builder = _flaky_builder(attempts)
    builder.add_node("PythonCodeNode", "after", {"code": "result = x"})
    builder.add_connection("flaky", "result", "after", "x")
    builder.set_node_options("flaky", retries=1, retry_delay=0)
    with pytest.raises(WorkflowExecutionError) as info:
        _execute(mode, builder.build())
    assert attempts == [1, 2]
    assert isinstance(info.value.__cause__.__cause__, ValueError)


@pytest.mark.parametrize("mode", RUNTIMES)
def test_runtime_level_node_retries(mode: str) -> None:
    attempts: list[int] = []
    builder = _flaky_builder(attempts)
    builder.set_node_options("flaky", retry_delay=0)  # retries come from the runtime
    results, _ = _execute(mode, builder.build(), node_retries=2)
    assert results["flaky"] == {"result": "finally"}
    assert attempts == [1, 2, 3]


@pytest.mark.parametrize("mode", RUNTIMES)
def test_node_retries_option_overrides_runtime(mode: str) -> None:
    attempts: list[int] = []
    builder = _flaky_builder(attempts)
    builder.set_node_options("flaky", retries=0, retry_delay=0)
    results, _ = _execute(mode, builder.build(), node_retries=5)
    assert attempts == [1]
    assert results["flaky"]["failed"] is True


@pytest.mark.parametrize("mode", RUNTIMES)
def test_retries_apply_to_async_nodes(mode: str) -> None:
    attempts: list[int] = []

    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("not yet")
        return "ok"

    builder = WorkflowBuilder()
    builder.add_node(AsyncPythonCodeNode.from_function(flaky), "flaky")
    builder.set_node_options("flaky", retries=2, retry_delay=0)
    results, _ = _execute(mode, builder.build())
    assert results["flaky"] == {"result": "ok"}
    assert len(attempts) == 3


# -- options and arguments -----------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"max_concurrent_nodes": 0},
        {"max_concurrent_nodes": -2},
        {"max_concurrent_nodes": 1.5},
        {"max_concurrent_workflows": -1},
        {"max_concurrent_workflows": 0},
        {"max_concurrent_workflows": 2.5},
        {"workflow_timeout": 0},
        {"workflow_timeout": -1},
        {"workflow_timeout": "10"},
        {"node_timeout": 0},
        {"node_retries": -1},
        {"node_retries": 1.5},
        {"max_worker_threads": 0},
    ],
)
@pytest.mark.parametrize("runtime_class", [LocalRuntime, AsyncLocalRuntime])
def test_invalid_runtime_options(runtime_class: type[LocalRuntime], options: dict) -> None:
    with pytest.raises(RuntimeExecutionError, match="invalid runtime option"):
        runtime_class(**options)


@pytest.mark.parametrize("runtime_class", [LocalRuntime, AsyncLocalRuntime])
def test_unknown_runtime_kwarg(runtime_class: type[LocalRuntime]) -> None:
    with pytest.raises(TypeError):
        runtime_class(bogus_option=1)
    with pytest.raises(TypeError):
        runtime_class(16)  # options are keyword-only


def test_debug_flag_accepted() -> None:
    logger = logging.getLogger("kailash_nb")
    level = logger.level
    try:
        assert LocalRuntime(debug=True).debug is True
        assert LocalRuntime().debug is False
    finally:
        logger.setLevel(level)  # debug=True may raise the package log level


def test_builder_instead_of_workflow_is_a_type_error() -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    with pytest.raises(TypeError, match="build"):
        LocalRuntime().execute(builder)

    async def main() -> None:
        with pytest.raises(TypeError, match="build"):
            await LocalRuntime().execute_async(builder)
        with pytest.raises(TypeError, match="build"):
            await AsyncLocalRuntime().execute_workflow_async(builder)

    asyncio.run(main())
