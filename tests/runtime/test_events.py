"""EventBus and the events a run emits."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest

from kailash_nb import (
    AsyncLocalRuntime,
    EventBus,
    LocalRuntime,
    NodeEvent,
    RunEvent,
    Workflow,
    WorkflowBuilder,
)
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.runtime import _run_events as run_events
from kailash_nb.sdk_exceptions import WorkflowExecutionError

# "inline": LocalRuntime on a sequential workflow (no event loop);
# "loop": LocalRuntime forced onto the event-loop scheduler;
# "async": AsyncLocalRuntime on the caller's loop, also forced onto the scheduler.
MODES = ["inline", "loop", "async"]


def _execute(mode: str, workflow: Workflow, bus: EventBus, parameters: dict | None = None):
    if mode == "inline":
        return LocalRuntime(event_bus=bus).execute(workflow, parameters)
    if mode == "loop":
        return LocalRuntime(event_bus=bus, workflow_timeout=60).execute(workflow, parameters)
    runtime = AsyncLocalRuntime(event_bus=bus, workflow_timeout=60)
    return asyncio.run(runtime.execute_workflow_async(workflow, parameters))


class Recorder:
    """A thread-safe subscriber that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self._lock:
            self.events.append(event)

    def runs(self) -> list[RunEvent]:
        return [e for e in self.events if isinstance(e, RunEvent)]

    def nodes(self, node_id: str | None = None) -> list[NodeEvent]:
        return [
            e
            for e in self.events
            if isinstance(e, NodeEvent) and (node_id is None or e.node_id == node_id)
        ]

    def states(self, node_id: str) -> list[str]:
        return [e.state for e in self.nodes(node_id)]


def _chain() -> Workflow:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    builder.add_node("PythonCodeNode", "b", {"code": "result = x + 1"})
    builder.add_node("PythonCodeNode", "c", {"code": "result = y * 2"})
    builder.add_connection("a", "result", "b", "x")
    builder.add_connection("b", "result", "c", "y")
    return builder.build(name="chain")


# -- the bus -------------------------------------------------------------------------------


def test_subscribe_and_close() -> None:
    bus = EventBus()
    assert bus.active is False
    seen: list[Any] = []
    subscription = bus.subscribe(seen.append)
    assert bus.active is True
    event = RunEvent("r1", "wf", "started", time.time())
    bus.emit(event)
    assert seen == [event]
    subscription.close()
    assert bus.active is False
    bus.emit(RunEvent("r1", "wf", "completed", time.time()))
    assert seen == [event]
    subscription.close()  # idempotent
    assert bus.active is False


def test_subscription_as_context_manager() -> None:
    bus = EventBus()
    seen: list[Any] = []
    with bus.subscribe(seen.append) as subscription:
        assert bus.active is True
        bus.emit(RunEvent("r", "wf", "started", 0.0))
    assert subscription is not None
    assert bus.active is False
    bus.emit(RunEvent("r", "wf", "completed", 0.0))
    assert len(seen) == 1


def test_several_subscribers_and_removing_one() -> None:
    bus = EventBus()
    first: list[Any] = []
    second: list[Any] = []
    sub_first = bus.subscribe(first.append)
    with bus.subscribe(second.append):
        bus.emit(RunEvent("r", "wf", "started", 0.0))
    sub_first.close()
    bus.emit(RunEvent("r", "wf", "completed", 0.0))
    assert len(first) == 1
    assert len(second) == 1
    assert bus.active is False


def test_subscribe_requires_callable() -> None:
    with pytest.raises(TypeError):
        EventBus().subscribe("not callable")  # type: ignore[arg-type]


def test_events_are_frozen() -> None:
    event = NodeEvent("r", "n", "queued", 0.0)
    with pytest.raises(AttributeError):
        event.state = "started"  # type: ignore[misc]
    assert (event.duration, event.error, event.iteration) == (None, None, None)


# -- events of a run -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_run_emits_run_and_node_events(mode: str) -> None:
    bus = EventBus()
    recorder = Recorder()
    with bus.subscribe(recorder):
        results, run_id = _execute(mode, _chain(), bus)
    assert results["c"] == {"result": 4}

    runs = recorder.runs()
    assert [e.state for e in runs] == ["started", "completed"]
    assert all(e.run_id == run_id and e.workflow_name == "chain" for e in runs)
    assert recorder.events[0] is runs[0]
    assert recorder.events[-1] is runs[1]
    assert runs[0].duration is None
    assert runs[1].duration is not None
    assert runs[1].duration >= 0
    assert runs[1].error is None

    for node_id in ("a", "b", "c"):
        events = recorder.nodes(node_id)
        assert [e.state for e in events] == ["queued", "started", "completed"], node_id
        assert all(e.run_id == run_id for e in events)
        assert all(e.iteration is None and e.error is None for e in events)
        queued, started, completed = events
        assert queued.duration is None
        assert started.duration is None
        assert completed.duration is not None
        assert completed.duration >= 0
        assert queued.timestamp <= started.timestamp <= completed.timestamp

    order = [(e.node_id, e.state) for e in recorder.nodes()]
    assert order.index(("a", "completed")) < order.index(("b", "started"))
    assert order.index(("b", "completed")) < order.index(("c", "started"))


@pytest.mark.parametrize("mode", MODES)
def test_failed_leaf_events(mode: str) -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "ok", {"code": "result = 1"})
    builder.add_node("PythonCodeNode", "bad", {"code": "result = x / 0"})
    builder.add_connection("ok", "result", "bad", "x")
    bus = EventBus()
    recorder = Recorder()
    with bus.subscribe(recorder):
        results, run_id = _execute(mode, builder.build(), bus)
    assert results["bad"]["failed"] is True
    failed = recorder.nodes("bad")[-1]
    assert failed.state == "failed"
    assert failed.run_id == run_id
    assert failed.duration is not None
    assert failed.error is not None
    assert "ZeroDivisionError" in failed.error
    assert "completed" not in recorder.states("bad")
    # The run went on (Kailash's return value), but a run with a failed node failed.
    assert [e.state for e in recorder.runs()] == ["started", "failed"]
    assert recorder.runs()[-1].error == (
        "WorkflowExecutionError: node 'bad' failed: ZeroDivisionError: division by zero"
    )


@pytest.mark.parametrize("mode", MODES)
def test_failed_run_events(mode: str) -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "bad", {"code": "result = 1 / 0"})
    builder.add_node("PythonCodeNode", "after", {"code": "result = x"})
    builder.add_connection("bad", "result", "after", "x")
    bus = EventBus()
    recorder = Recorder()
    with bus.subscribe(recorder), pytest.raises(WorkflowExecutionError) as info:
        _execute(mode, builder.build(), bus)
    runs = recorder.runs()
    assert [e.state for e in runs] == ["started", "failed"]
    assert runs[-1].run_id == info.value.run_id
    assert runs[-1].error is not None
    assert runs[-1].error.startswith("WorkflowExecutionError: ")
    assert runs[-1].duration is not None
    assert recorder.states("bad")[-1] == "failed"
    assert "started" not in recorder.states("after")
    assert "completed" not in recorder.states("after")


@pytest.mark.parametrize("mode", MODES)
def test_skipped_events(mode: str) -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "src", {"code": "result = 1"})
    builder.add_node("SwitchNode", "switch", {"value": 2})
    builder.add_node("PythonCodeNode", "taken", {"code": "result = d"})
    builder.add_node("PythonCodeNode", "untaken", {"code": "result = d"})
    builder.add_node("PythonCodeNode", "untaken_next", {"code": "result = e"})
    builder.add_connection("src", "result", "switch", "input_data")
    builder.add_connection("switch", "false_output", "taken", "d")
    builder.add_connection("switch", "true_output", "untaken", "d")
    builder.add_connection("untaken", "result", "untaken_next", "e")
    bus = EventBus()
    recorder = Recorder()
    with bus.subscribe(recorder):
        results, run_id = _execute(mode, builder.build(), bus)
    assert "untaken" not in results
    for node_id in ("untaken", "untaken_next"):
        states = recorder.states(node_id)
        assert states[-1] == "skipped", node_id
        assert "started" not in states
        assert "completed" not in states
        assert all(e.run_id == run_id for e in recorder.nodes(node_id))
    assert recorder.states("taken")[-2:] == ["started", "completed"]


@pytest.mark.parametrize("mode", ["local", "async"])
def test_retrying_events(mode: str) -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ValueError(f"failure {len(attempts)}")
        return "ok"

    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(flaky), "flaky")
    builder.set_node_options("flaky", retries=2, retry_delay=0)
    bus = EventBus()
    recorder = Recorder()
    with bus.subscribe(recorder):
        _execute("inline" if mode == "local" else "async", builder.build(), bus)
    assert recorder.states("flaky") == [
        "queued",
        "started",
        "retrying",
        "started",
        "retrying",
        "started",
        "completed",
    ]
    retrying = [e for e in recorder.nodes("flaky") if e.state == "retrying"]
    assert retrying[0].error == "ValueError: failure 1"  # what the node raised
    assert retrying[1].error is not None
    assert "failure 2" in retrying[1].error
    assert all(e.duration is None for e in retrying)


@pytest.mark.parametrize("mode", MODES)
def test_cycle_node_events_per_iteration(mode: str) -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "inc", {"code": "result = count + 1", "count": 0})
    builder.create_cycle("c").connect("inc", "inc", {"result": "count"}).max_iterations(3).build()
    bus = EventBus()
    recorder = Recorder()
    with bus.subscribe(recorder):
        results, _ = _execute(mode, builder.build(), bus)
    assert results["inc"] == {"result": 3}
    events = recorder.nodes("inc")
    assert [(e.state, e.iteration) for e in events] == [
        (state, iteration)
        for iteration in (1, 2, 3)
        for state in ("queued", "started", "completed")
    ]


# -- robustness and cost -------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_failing_subscriber_does_not_break_the_run(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: Any) -> None:
        raise RuntimeError("subscriber exploded")

    bus = EventBus()
    recorder = Recorder()
    caplog.set_level(logging.ERROR, logger="kailash_nb.runtime.events")
    with bus.subscribe(broken), bus.subscribe(recorder):
        results, _ = _execute(mode, _chain(), bus)
    assert results["c"] == {"result": 4}
    assert [e.state for e in recorder.runs()] == ["started", "completed"]  # others still served
    records = [r for r in caplog.records if r.name == "kailash_nb.runtime.events"]
    assert records
    assert all(r.levelno == logging.ERROR for r in records)
    assert "event subscriber" in records[0].getMessage()
    assert records[0].exc_info is not None
    assert "subscriber exploded" in str(records[0].exc_info[1])
    # one log record per event delivered to the broken subscriber
    assert len(records) == len(recorder.events)


def _counting_event_classes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count event objects the engine builds (the classes stay the real ones)."""
    built: list[str] = []
    real_node_event, real_run_event = run_events.NodeEvent, run_events.make_run_event

    def node_event(*args: Any, **kwargs: Any) -> NodeEvent:
        built.append("node")
        return real_node_event(*args, **kwargs)

    def run_event(fields: tuple) -> RunEvent:
        built.append("run")
        return real_run_event(fields)

    monkeypatch.setattr(run_events, "NodeEvent", node_event)
    monkeypatch.setattr(run_events, "make_run_event", run_event)
    return built


@pytest.mark.parametrize("mode", MODES)
def test_no_events_built_without_subscribers(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    built = _counting_event_classes(monkeypatch)
    bus = EventBus()
    assert bus.active is False
    results, _ = _execute(mode, _chain(), bus)
    assert results["c"] == {"result": 4}
    assert built == []

    # A subscriber that has been closed again leaves the bus inactive too.
    bus.subscribe(lambda event: None).close()
    assert bus.active is False
    _execute(mode, _chain(), bus)
    assert built == []

    # Control: with a subscriber the same run builds events.
    recorder = Recorder()
    with bus.subscribe(recorder):
        _execute(mode, _chain(), bus)
    assert len(built) == len(recorder.events) > 0


def test_shared_bus_observes_several_runtimes() -> None:
    bus = EventBus()
    recorder = Recorder()
    with bus.subscribe(recorder):
        _, first = LocalRuntime(event_bus=bus).execute(_chain())
        _, second = asyncio.run(AsyncLocalRuntime(event_bus=bus).execute_workflow_async(_chain()))
    assert LocalRuntime(event_bus=bus).events is bus
    assert {e.run_id for e in recorder.runs()} == {first, second}


def test_default_runtime_bus_is_its_own() -> None:
    first, second = LocalRuntime(), LocalRuntime()
    assert isinstance(first.events, EventBus)
    assert first.events is not second.events
