"""The runtimes' ``memory_limit_mb``: runs past the process's memory limit are stopped
with ``MemoryLimitExceededError``, runs under it are unaffected, and the engine's
``RunLimit`` hook that carries it."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from typing import Any

import pytest

from kailash_nb import AsyncLocalRuntime, LocalRuntime, WorkflowBuilder
from kailash_nb.monitoring import process_rss_bytes
from kailash_nb.runtime.events import EventBus, NodeEvent, RunEvent
from kailash_nb.runtime.memory_limit import MemoryLimit
from kailash_nb.sdk_exceptions import (
    MemoryLimitExceededError,
    RuntimeExecutionError,
    WorkflowExecutionError,
)

MIB = 1 << 20

# Appends 33 MiB chunks until there are n of them: a node whose memory grows while it
# runs. Blocks above glibc's largest mmap threshold (32 MiB) are mapped on their own and
# returned to the system when freed, so the process's memory goes down again reliably.
GROW = """
chunks = []
while len(chunks) < n:
    chunks.append(b"x" * (33 << 20))
result = len(chunks)
"""
# Allocates n MiB in one go, then keeps running for `hold` seconds.
ALLOCATE_AND_HOLD = """
import time
block = b"x" * (n << 20)
time.sleep(hold)
result = len(block)
"""
# Allocates n MiB in one go, works on for `hold` seconds, frees it and works on again:
# a passing peak. (A peak shorter than the check interval can pass unseen.)
ALLOCATE_AND_FREE = """
import time
block = b"x" * (n << 20)
time.sleep(hold)
del block
time.sleep(hold)
result = 1
"""
# Allocates n MiB in one go and returns it (the outputs hold the memory).
ALLOCATE_AND_RETURN = """
result = b"x" * (n << 20)
"""


def _workflow(code: str, *, independent_node: bool = True):
    """``grow`` running ``code``, then ``after``; and ``small`` beside them."""
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "grow", {"code": code})
    builder.add_node("PythonCodeNode", "after", {"code": "result = 1"})
    builder.add_connection("grow", "result", "after", "x")
    if independent_node:
        builder.add_node("PythonCodeNode", "small", {"code": "result = x * 2"})
    return builder.build()


def _limit_above_now(headroom_mb: int = 50) -> int:
    gc.collect()
    return (process_rss_bytes() >> 20) + headroom_mb


def _wait_rss_below(limit_mb: int, seconds: float = 10.0) -> None:
    """Wait until the threads of stopped nodes have returned and freed their memory."""
    deadline = time.monotonic() + seconds
    while process_rss_bytes() > limit_mb * MIB:
        assert time.monotonic() < deadline, "memory was not freed after the stopped run"
        gc.collect()
        time.sleep(0.05)


def _run(mode: str, runtime: LocalRuntime, workflow: Any, parameters: dict[str, Any]):
    if mode == "local":
        return runtime.execute(workflow, parameters)
    return asyncio.run(runtime.execute_workflow_async(workflow, parameters))


def _runtime(mode: str, **options: Any) -> LocalRuntime:
    return LocalRuntime(**options) if mode == "local" else AsyncLocalRuntime(**options)


def test_seed_high_throughput_runtime_runs_a_workflow():
    """The seed's "High-Throughput Configuration" runtime line, with ``kailash.`` renamed to
    ``kailash_nb.``. Only the runtime part of that block is tested here: the rest of it
    imports LLMAgentNode and builds a gateway, which belong to other issues."""
    from kailash_nb.runtime.async_local import AsyncLocalRuntime

    runtime = AsyncLocalRuntime(
        max_concurrent_workflows=50,
        workflow_timeout=300,
        memory_limit_mb=2048,
        enable_metrics=True,
    )
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "double", {"code": "result = x * 2"})
    results, _ = asyncio.run(runtime.execute_workflow_async(builder.build(), {"x": 21}))
    assert results == {"double": {"result": 42}}
    assert runtime.memory_limit_bytes == 2048 * MIB
    metrics = runtime.get_metrics()
    assert metrics["workflows"]["completed"] == 1
    assert metrics["memory"]["limit_bytes"] == 2048 * MIB


@pytest.mark.parametrize(
    "value", [0, -1, -0.5, "2048", True, False, float("nan"), float("inf"), [2048]]
)
def test_invalid_memory_limit_is_refused_at_construction(value):
    with pytest.raises(RuntimeExecutionError, match="memory_limit_mb"):
        AsyncLocalRuntime(memory_limit_mb=value)


@pytest.mark.parametrize("value", [0, -1, "0.1", True])
def test_invalid_memory_check_interval_is_refused(value):
    with pytest.raises(RuntimeExecutionError, match="memory_check_interval"):
        LocalRuntime(memory_limit_mb=1024, memory_check_interval=value)


def test_fractional_limit_is_accepted():
    assert LocalRuntime(memory_limit_mb=0.5).memory_limit_bytes == MIB // 2


@pytest.mark.parametrize("mode", ["local", "async"])
def test_run_growing_past_the_limit_is_stopped_and_the_process_stays_usable(mode, sqlite_url):
    limit_mb = _limit_above_now(50)
    bus = EventBus()
    events: list[Any] = []
    bus.subscribe(events.append)
    runtime = _runtime(
        mode,
        memory_limit_mb=limit_mb,
        memory_check_interval=0.01,
        history=True,
        database_url=sqlite_url,
        event_bus=bus,
        enable_metrics=True,
    )
    workflow = _workflow(GROW)

    with pytest.raises(MemoryLimitExceededError) as caught:
        _run(mode, runtime, workflow, {"grow": {"n": 8}, "small": {"x": 1}})

    error = caught.value
    assert isinstance(error, WorkflowExecutionError)
    assert error.limit_bytes == limit_mb * MIB
    assert error.measured_bytes > error.limit_bytes
    assert error.method == "resident set size from /proc/self/statm"
    assert f"memory_limit_mb={limit_mb}" in str(error)
    assert "/proc/self/statm" in str(error)
    assert f"{error.measured_bytes / MIB:.1f} MiB measured" in str(error)
    assert "grow" not in error.results and "after" not in error.results
    assert error.run_id

    # Failure everywhere: events, run store, metrics.
    run_end = [e for e in events if isinstance(e, RunEvent) and e.state != "started"]
    assert [e.state for e in run_end] == ["failed"]
    assert run_end[0].error.startswith("MemoryLimitExceededError: ")
    grow_states = [e.state for e in events if isinstance(e, NodeEvent) and e.node_id == "grow"]
    assert grow_states[-1] == "failed"
    assert not [e for e in events if isinstance(e, NodeEvent) and e.node_id == "after"]
    (record,) = runtime.history()
    assert record.run_id == error.run_id
    assert record.status == "failed"
    assert record.error.startswith("MemoryLimitExceededError: ")
    metrics = runtime.get_metrics()["workflows"]
    assert (metrics["failed"], metrics["completed"], metrics["memory_limit_stops"]) == (1, 0, 1)

    # The stopped node's thread returns and its memory is freed; the runtime runs again.
    _wait_rss_below(limit_mb - 5)
    results, _ = _run(mode, runtime, workflow, {"grow": {"n": 1}, "small": {"x": 1}})
    assert results == {
        "grow": {"result": 1},
        "after": {"result": 1},
        "small": {"result": 2},
    }
    assert runtime.get_metrics()["workflows"]["completed"] == 1


@pytest.mark.parametrize("mode", ["local", "async"])
def test_node_in_a_worker_thread_is_stopped_while_it_still_runs(mode):
    """With a workflow timeout the synchronous node runs in a worker thread: the run ends
    as soon as the watcher finds the limit exceeded, without waiting for the node."""
    limit_mb = _limit_above_now(50)
    runtime = _runtime(
        mode, memory_limit_mb=limit_mb, memory_check_interval=0.01, workflow_timeout=30
    )
    workflow = _workflow(ALLOCATE_AND_HOLD, independent_node=False)
    started = time.perf_counter()
    with pytest.raises(MemoryLimitExceededError) as caught:
        _run(mode, runtime, workflow, {"grow": {"n": 150, "hold": 1.0}})
    # The run ended long before the node's 1 s sleep would have.
    assert time.perf_counter() - started < 0.8
    assert caught.value.node_id == "grow"
    assert caught.value.results == {}
    _wait_rss_below(limit_mb - 5)


def test_async_node_is_cancelled_when_the_limit_is_exceeded():
    from kailash_nb.nodes.code import AsyncPythonCodeNode

    async def hold(n: int) -> int:
        block = b"x" * (n << 20)
        await asyncio.sleep(1.0)
        return len(block)

    limit_mb = _limit_above_now(50)
    builder = WorkflowBuilder()
    builder.add_node(AsyncPythonCodeNode.from_function(hold), "grow")
    runtime = AsyncLocalRuntime(memory_limit_mb=limit_mb, memory_check_interval=0.01)
    started = time.perf_counter()
    with pytest.raises(MemoryLimitExceededError):
        asyncio.run(runtime.execute_workflow_async(builder.build(), {"grow": {"n": 150}}))
    assert time.perf_counter() - started < 0.8
    gc.collect()
    _wait_rss_below(limit_mb - 5)


def test_passing_peak_inside_an_inline_node_fails_the_run_when_it_returns():
    """A sequential run executes in the caller's thread: the watcher thread sees the peak
    while the node runs, and the run fails as the node returns (its result discarded)."""
    limit_mb = _limit_above_now(50)
    runtime = LocalRuntime(memory_limit_mb=limit_mb, memory_check_interval=0.01)
    workflow = _workflow(ALLOCATE_AND_FREE, independent_node=False)
    assert workflow.plan.sequential
    with pytest.raises(MemoryLimitExceededError) as caught:
        runtime.execute(workflow, {"grow": {"n": 150, "hold": 0.3}})
    assert caught.value.node_id == "grow"
    assert caught.value.results == {}
    assert caught.value.measured_bytes > caught.value.limit_bytes
    # Memory is back under the limit: the next run completes.
    _wait_rss_below(limit_mb - 5)
    results, _ = runtime.execute(workflow, {"grow": {"n": 1, "hold": 0}})
    assert results == {"grow": {"result": 1}, "after": {"result": 1}}


def test_node_returning_a_large_output_is_caught_when_it_finishes():
    limit_mb = _limit_above_now(50)
    # A long interval: only the check when the node finishes can catch it.
    runtime = LocalRuntime(memory_limit_mb=limit_mb, memory_check_interval=60)
    outcome = runtime.execute_outcome(
        _workflow(ALLOCATE_AND_RETURN, independent_node=False), {"grow": {"n": 150}}
    )
    assert outcome.status == "failed"
    assert outcome.stopped_at == "grow"
    assert [(f.node_id, f.error_type) for f in outcome.failed_nodes] == [
        ("grow", "MemoryLimitExceededError")
    ]
    assert "grow" not in outcome.results and "after" not in outcome.results
    del outcome
    _wait_rss_below(limit_mb - 5)


@pytest.mark.parametrize("mode", ["local", "async"])
def test_run_under_the_limit_is_unaffected(mode):
    workflow = _workflow(GROW)
    parameters = {"grow": {"n": 1}, "small": {"x": 4}}
    expected, _ = _run(mode, _runtime(mode), workflow, parameters)
    limited = _runtime(mode, memory_limit_mb=_limit_above_now(300))
    results, _ = _run(mode, limited, workflow, parameters)
    assert results == expected
    assert results == {"grow": {"result": 1}, "after": {"result": 1}, "small": {"result": 8}}


def test_new_run_waits_while_the_process_is_above_the_limit():
    limit_mb = _limit_above_now(50)
    ballast = [b"x" * (120 * MIB)]
    assert process_rss_bytes() > limit_mb * MIB
    release = threading.Timer(0.3, ballast.clear)
    release.start()
    runtime = LocalRuntime(memory_limit_mb=limit_mb, workflow_timeout=10)
    started = time.perf_counter()
    results, _ = runtime.execute(_workflow(GROW), {"grow": {"n": 1}, "small": {"x": 1}})
    assert time.perf_counter() - started >= 0.25  # it waited for the memory to go
    assert results["after"] == {"result": 1}
    release.join()


@pytest.mark.parametrize("mode", ["local", "async"])
def test_new_run_fails_at_its_first_node_when_memory_stays_above(mode):
    limit_mb = _limit_above_now(50)
    ballast = b"x" * (120 * MIB)
    runtime = _runtime(
        mode, memory_limit_mb=limit_mb, workflow_timeout=0.2, memory_check_interval=0.02
    )
    started = time.perf_counter()
    with pytest.raises(MemoryLimitExceededError) as caught:
        _run(mode, runtime, _workflow(GROW), {"grow": {"n": 1}, "small": {"x": 1}})
    assert 0.15 <= time.perf_counter() - started < 5
    assert caught.value.results == {}  # no node ran
    del ballast


class _TripAfter:
    """A RunLimit that is exceeded from its ``n``-th check on (no watcher)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.checks = 0

    def exceeded(self) -> WorkflowExecutionError | None:
        self.checks += 1
        if self.checks < self.n:
            return None
        return WorkflowExecutionError("budget spent")

    def watch(self, run: Any) -> Any:
        self.watched = run
        return lambda: setattr(self, "watched", None)


def test_engine_run_limit_hook_stops_a_run_between_nodes():
    from kailash_nb.runtime.engine import EngineSettings, WorkflowRun

    builder = WorkflowBuilder()
    for index in range(4):
        builder.add_node("PythonCodeNode", f"n{index}", {"code": "result = (x or 0) + 1"})
        if index:
            builder.add_connection(f"n{index - 1}", "result", f"n{index}", "x")
    limit = _TripAfter(2)  # checked as n0 ends (fine), then as n1 ends: n1's output is dropped
    run = WorkflowRun(
        builder.build(),
        {"n0": {"x": 0}},
        run_id="r1",
        bus=EventBus(),
        settings=EngineSettings(limits=(limit,)),
    )
    assert run.inline
    with pytest.raises(WorkflowExecutionError, match="budget spent") as caught:
        asyncio.run(run.run_async())
    assert caught.value.results == {"n0": {"result": 1}}
    assert caught.value.node_id == "n1"
    assert run.status == "failed"
    assert run.outcome().stopped_at == "n1"
    assert limit.watched is None  # watched while the run ran, not after


def test_engine_settings_refuse_a_limit_without_exceeded():
    from kailash_nb.runtime.engine import EngineSettings

    with pytest.raises(ValueError, match="RunLimit"):
        EngineSettings(limits=(object(),))


def test_memory_limit_reports_a_given_measure():
    readings = iter([10 * MIB, 30 * MIB])
    limit = MemoryLimit(20, measure=lambda: next(readings))
    assert limit.exceeded() is None
    error = limit.exceeded()
    assert isinstance(error, MemoryLimitExceededError)
    assert (error.limit_bytes, error.measured_bytes) == (20 * MIB, 30 * MIB)
    assert "30.0 MiB measured (the given measure) against a limit of 20.0 MiB" in str(error)


def test_watcher_interrupts_the_watched_runs_and_ends_when_idle(monkeypatch):
    from kailash_nb.runtime import memory_limit

    monkeypatch.setattr(memory_limit, "_IDLE_SECONDS", 0.05)
    reading = [10 * MIB]
    limit = MemoryLimit(20, check_interval=0.01, measure=lambda: reading[0])

    class Run:
        def __init__(self) -> None:
            self.errors: list[BaseException] = []

        def interrupt(self, error: BaseException) -> None:
            self.errors.append(error)

    run = Run()
    unwatch = limit.watch(run)
    watcher = limit._watcher
    assert watcher is not None and watcher.is_alive()
    time.sleep(0.05)
    assert run.errors == []  # under the limit: left alone
    reading[0] = 30 * MIB
    deadline = time.monotonic() + 5
    while not run.errors:
        assert time.monotonic() < deadline, "the watcher never interrupted the run"
        time.sleep(0.01)
    assert isinstance(run.errors[0], MemoryLimitExceededError)
    assert run.errors[0].measured_bytes == 30 * MIB
    unwatch()
    watcher.join(5)
    assert not watcher.is_alive()
    assert limit._watcher is None
