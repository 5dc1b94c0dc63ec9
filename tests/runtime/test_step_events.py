"""Step events: what running nodes report (``report_step``) reaching the event bus."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
from typing import Any, ClassVar

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
from kailash_nb.nodes import steps as steps_module
from kailash_nb.nodes.base import NodeParameter
from kailash_nb.nodes.base_async import AsyncNode
from kailash_nb.nodes.node import Node
from kailash_nb.nodes.steps import report_step
from kailash_nb.redaction import REDACTED
from kailash_nb.runtime import _steps
from kailash_nb.runtime.access_controlled import AccessControlledRuntime
from kailash_nb.runtime.events import NodeStepEvent

# "inline": LocalRuntime on a sequential workflow (no event loop, the caller's thread);
# "thread": LocalRuntime on the event-loop scheduler, sync nodes in worker threads;
# "async": AsyncLocalRuntime on the caller's loop, sync nodes in worker threads.
MODES = ["inline", "thread", "async"]


class Agent(Node):
    """Reports an agent's four steps; ``api_key`` is a secret of its config."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {
            "question": NodeParameter(name="question", type=str, required=False, default="?"),
            "api_key": NodeParameter(name="api_key", type=str, required=False, default=""),
        }

    def run(self, question: str, api_key: str = "") -> dict[str, Any]:
        report_step("prompt_sent", round=1, prompt=question)
        report_step("tool_call", tool="search", arguments={"q": question})
        report_step("tool_result", tool="search", result="3 hits")
        report_step("answer", content=f"answer to {question}")
        return {"result": question, "thread": threading.get_ident()}


class AsyncAgent(AsyncNode):
    """The async twin of ``Agent``."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {"question": NodeParameter(name="question", type=str, required=False, default="?")}

    async def async_run(self, question: str) -> dict[str, Any]:
        report_step("prompt_sent", round=1, prompt=question)
        await asyncio.sleep(0)
        report_step("answer", content=question)
        return {"result": question}


class Reporter(Node):
    """Reports whatever ``detail`` it is given, under ``step``."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {
            "step": NodeParameter(name="step", required=False, default="tool_call"),
            "detail": NodeParameter(name="detail", type=dict, required=False, default={}),
            "api_key": NodeParameter(name="api_key", type=str, required=False, default=""),
        }

    def run(self, step: Any = "tool_call", detail: Any = None, api_key: str = "") -> dict:
        report_step(step, **(detail or {}))
        return {"result": "done"}


class Steps:
    """A thread-safe subscriber keeping every event."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self._lock:
            self.events.append(event)

    def steps(self) -> list[NodeStepEvent]:
        return [e for e in self.events if isinstance(e, NodeStepEvent)]


def _execute(mode: str, workflow: Workflow, bus: EventBus, parameters: dict | None = None):
    if mode == "inline":
        return LocalRuntime(event_bus=bus).execute(workflow, parameters)
    if mode == "thread":
        return LocalRuntime(event_bus=bus, workflow_timeout=60).execute(workflow, parameters)
    runtime = AsyncLocalRuntime(event_bus=bus, workflow_timeout=60)
    return asyncio.run(runtime.execute_workflow_async(workflow, parameters))


def _one(node: Node, node_id: str = "agent") -> Workflow:
    builder = WorkflowBuilder()
    builder.add_node(node, node_id)
    return builder.build()


# -- delivery ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_sync_nodes_steps_arrive_between_its_start_and_end(mode: str) -> None:
    bus, seen = EventBus(), Steps()
    bus.subscribe(seen, steps=True)
    results, run_id = _execute(mode, _one(Agent()), bus, {"question": "why"})
    kinds = [
        e.state if isinstance(e, (NodeEvent, RunEvent)) else e.step
        for e in seen.events
        if not isinstance(e, NodeEvent) or e.state != "queued"
    ]
    assert kinds == [
        "started",  # the run
        "started",  # the node
        "prompt_sent",
        "tool_call",
        "tool_result",
        "answer",
        "completed",  # the node
        "completed",  # the run
    ]
    steps = seen.steps()
    assert {(e.run_id, e.node_id, e.iteration) for e in steps} == {(run_id, "agent", None)}
    assert steps[1].detail == {"tool": "search", "arguments": {"q": "why"}}
    assert steps[3].detail == {"content": "answer to why"}
    caller = threading.get_ident()
    assert (results["agent"]["thread"] == caller) is (mode == "inline")


@pytest.mark.parametrize("mode", ["inline", "async"])
def test_an_async_nodes_steps_arrive(mode: str) -> None:
    bus, seen = EventBus(), Steps()
    bus.subscribe(seen, nodes=False, runs=False, steps=True)
    _execute(mode, _one(AsyncAgent()), bus, {"question": "how"})
    assert [(e.step, e.detail) for e in seen.events] == [
        ("prompt_sent", {"round": 1, "prompt": "how"}),
        ("answer", {"content": "how"}),
    ]


def test_steps_of_a_thread_the_node_starts_with_its_context_arrive() -> None:
    class Fanning(Node):
        def run(self) -> dict:
            def search(query: str) -> None:
                report_step("tool_call", tool="search", query=query)

            threads = [
                threading.Thread(target=contextvars.copy_context().run, args=(search, query))
                for query in ("a", "b")
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return {"result": 1}

    bus, seen = EventBus(), Steps()
    bus.subscribe(seen, nodes=False, runs=False, steps=True)
    LocalRuntime(event_bus=bus).execute(_one(Fanning(), "fan"))
    assert sorted(e.detail["query"] for e in seen.events) == ["a", "b"]
    assert {e.node_id for e in seen.events} == {"fan"}


def test_steps_reported_after_the_node_finished_are_dropped() -> None:
    release, reported = threading.Event(), threading.Event()
    leaked: list[threading.Thread] = []

    class Leaking(Node):
        def run(self) -> dict:
            def late() -> None:
                release.wait(5)
                report_step("answer", content="too late")
                reported.set()

            thread = threading.Thread(target=contextvars.copy_context().run, args=(late,))
            leaked.append(thread)
            thread.start()
            report_step("prompt_sent")
            return {"result": 1}

    bus, seen = EventBus(), Steps()
    bus.subscribe(seen, nodes=False, runs=False, steps=True)
    LocalRuntime(event_bus=bus).execute(_one(Leaking(), "leaky"))
    release.set()
    leaked[0].join(5)
    assert reported.is_set()
    assert [e.step for e in seen.events] == ["prompt_sent"]


@pytest.mark.parametrize("mode", ["inline", "async"])
def test_steps_in_a_cycle_carry_their_iteration(mode: str) -> None:
    def count(count: int = 0) -> int:
        report_step("tool_call", tool="increment", value=count)
        return count + 1

    from kailash_nb.nodes.code import PythonCodeNode

    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(count), "inc")
    builder.create_cycle("c").connect("inc", "inc", {"result": "count"}).max_iterations(3).build()
    bus, seen = EventBus(), Steps()
    bus.subscribe(seen, nodes=False, runs=False, steps=True)
    _execute(mode, builder.build(), bus)
    assert [(e.iteration, e.detail["value"]) for e in seen.events] == [(1, 0), (2, 1), (3, 2)]


def test_access_controlled_runtime_publishes_steps() -> None:
    runtime = AccessControlledRuntime(
        require_authorization=False, default_permissions=["execute", "read"]
    )
    seen = Steps()
    runtime.events.subscribe(seen, nodes=False, runs=False, steps=True)
    runtime.execute(_one(Agent()), {"question": "who"})
    assert [e.step for e in seen.events] == list(steps_module.AGENT_STEPS)


# -- opt-in: nobody asked, nothing listens ------------------------------------------------


class Peeking(Node):
    """Records the step receiver it runs under."""

    seen: ClassVar[list[Any]] = []

    def run(self) -> dict:
        Peeking.seen.append(steps_module._RECEIVER.get())
        report_step("answer", content="x")
        return {"result": 1}


@pytest.mark.parametrize("mode", MODES)
def test_no_receiver_is_installed_when_nobody_subscribed_to_steps(mode: str) -> None:
    bus, seen = EventBus(), Steps()
    bus.subscribe(seen)  # nodes and runs, as every subscriber written before steps
    Peeking.seen = []
    _execute(mode, _one(Peeking(), "peek"), bus)
    assert Peeking.seen == [None]
    assert not seen.steps()
    assert not bus.wants_step_events


def test_a_run_without_node_events_reports_no_steps() -> None:
    bus, seen = EventBus(), Steps()
    bus.subscribe(seen, steps=True)
    Peeking.seen = []
    runtime = LocalRuntime(event_bus=bus)
    run = runtime._new_run(_one(Peeking(), "peek"), None, node_events=False)
    run.run_inline()
    assert Peeking.seen == [None]
    assert not seen.steps()


def test_only_step_subscribers_receive_step_events() -> None:
    bus = EventBus()
    plain, stepping = Steps(), Steps()
    bus.subscribe(plain)
    with bus.subscribe(stepping, nodes=False, runs=False, steps=True):
        assert bus.wants_step_events
        LocalRuntime(event_bus=bus).execute(_one(Agent()))
    assert not bus.wants_step_events
    assert plain.events and not plain.steps()
    assert len(stepping.events) == 4 and stepping.steps() == stepping.events


# -- safety: secrets, caps, failures -------------------------------------------------------


def test_secrets_of_the_nodes_config_and_the_runs_parameters_are_scrubbed() -> None:
    node = Reporter(
        api_key="sk-config-secret-123",
        detail={
            "prompt": "key sk-config-secret-123 and password hunter2-param",
            "headers": {"Authorization": "Bearer abc.def"},
            "nested": [{"text": "again sk-config-secret-123"}],
        },
    )
    bus, seen = EventBus(), Steps()
    bus.subscribe(seen, nodes=False, runs=False, steps=True)
    LocalRuntime(event_bus=bus).execute(_one(node, "r"), {"r": {"api_key": "hunter2-param"}})
    (event,) = seen.events
    assert event.detail == {
        "prompt": f"key {REDACTED} and password {REDACTED}",
        "headers": {"Authorization": REDACTED},
        "nested": [{"text": f"again {REDACTED}"}],
    }


def test_details_are_made_json_safe_and_capped_and_say_so() -> None:
    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    detail = {
        "long": "x" * (_steps.MAX_DETAIL_STRING + 10),
        "deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}},
        "many": list(range(_steps.MAX_DETAIL_ITEMS + 5)),
        "odd": {1: float("nan"), "set": {3}, "bytes": b"abc", "obj": Unprintable()},
    }
    bus, seen = EventBus(), Steps()
    bus.subscribe(seen, nodes=False, runs=False, steps=True)
    LocalRuntime(event_bus=bus).execute(_one(Reporter(detail=detail), "r"))
    (event,) = seen.events
    safe = event.detail
    json.dumps(safe, allow_nan=False)
    assert safe["_truncated"] is True
    assert safe["long"].endswith("… (10 more characters)")
    assert len(safe["long"]) < _steps.MAX_DETAIL_STRING + 30
    assert safe["deep"]["a"]["b"]["c"]["d"]["e"]["f"] == "… (nested too deep)"
    assert safe["many"][-1] == "… (5 more items)"
    assert len(safe["many"]) == _steps.MAX_DETAIL_ITEMS + 1
    assert safe["odd"] == {"1": "nan", "set": [3], "bytes": "<3 bytes>", "obj": "<Unprintable>"}


def test_a_wide_detail_is_cut_to_the_overall_budget() -> None:
    detail = {f"k{i}": list(range(_steps.MAX_DETAIL_ITEMS)) for i in range(40)}
    safe = _steps.json_safe_detail(detail)
    kept = sum(len(value) for value in safe.values() if isinstance(value, list))
    assert kept <= _steps.MAX_DETAIL_VALUES
    assert safe["_truncated"] is True


def test_a_small_detail_is_not_marked_truncated() -> None:
    assert _steps.json_safe_detail({"tool": "search", "n": 2}) == {"tool": "search", "n": 2}


def test_numbers_of_other_types_become_json_numbers() -> None:
    from decimal import Decimal
    from fractions import Fraction

    numpy = pytest.importorskip("numpy")
    detail = {"i": numpy.int64(3), "f": numpy.float32(0.5), "q": Fraction(1, 4), "d": Decimal(2)}
    safe = _steps.json_safe_detail(detail)
    assert safe == {"i": 3, "f": 0.5, "q": 0.25, "d": "Decimal('2')"}
    assert type(safe["i"]) is int and type(safe["f"]) is float


def test_a_failing_step_subscriber_does_not_fail_the_node(caplog) -> None:
    def broken(event: Any) -> None:
        raise RuntimeError("subscriber bug")

    bus, seen = EventBus(), Steps()
    bus.subscribe(broken, nodes=False, runs=False, steps=True)
    bus.subscribe(seen, nodes=False, runs=True)
    with caplog.at_level(logging.ERROR, logger="kailash_nb.runtime.events"):
        results, _ = LocalRuntime(event_bus=bus).execute(_one(Agent()), {"question": "q"})
    assert results["agent"]["result"] == "q"
    assert [e.state for e in seen.events] == ["started", "completed"]
    assert "subscriber bug" in caplog.text


def test_a_step_that_cannot_be_reported_does_not_fail_the_node(caplog, monkeypatch) -> None:
    def failing(detail: Any) -> dict:
        raise ValueError("cannot make it safe")

    monkeypatch.setattr(_steps, "json_safe_detail", failing)
    bus, seen = EventBus(), Steps()
    bus.subscribe(seen, nodes=False, runs=True, steps=True)
    with caplog.at_level(logging.ERROR, logger="kailash_nb.runtime._steps"):
        results, _ = LocalRuntime(event_bus=bus).execute(_one(Agent()))
    assert results["agent"]["result"] == "?"
    assert [e.state for e in seen.events] == ["started", "completed"]
    assert "could not be reported" in caplog.text


def test_a_step_name_that_is_not_text_is_reported_as_text() -> None:
    bus, seen = EventBus(), Steps()
    bus.subscribe(seen, nodes=False, runs=False, steps=True)
    LocalRuntime(event_bus=bus).execute(_one(Reporter(step=42), "r"))
    assert [e.step for e in seen.events] == ["42"]


# -- the channel itself (kailash_nb.nodes.steps) -------------------------------------------


def test_step_receivers_nest_and_none_silences_report_step() -> None:
    outer: list[tuple[str, dict]] = []
    inner: list[tuple[str, dict]] = []
    report_step("nowhere")  # outside a run: nothing to call, nothing raised
    with steps_module.step_receiver(lambda step, detail: outer.append((step, detail))):
        report_step("a", n=1)
        with steps_module.step_receiver(lambda step, detail: inner.append((step, detail))):
            report_step("b")
        with steps_module.step_receiver(None):
            report_step("silenced")
        report_step("c")
    report_step("after")
    assert outer == [("a", {"n": 1}), ("c", {})]
    assert inner == [("b", {})]
    assert steps_module._RECEIVER.get() is None
