"""``DaskRuntime`` on a LocalCluster of two worker processes (the session's).

The data-flow contract itself is checked under DaskRuntime by the parameterized
engine suites (test_dataflow, test_cycles, test_cycle_branches); these tests cover
what is particular to running on a cluster: where nodes run, how values move, live
events, failures from workers, lost workers, timeouts, retries and the options.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

from kailash_nb import NodeEvent, RunEvent, WorkflowBuilder  # noqa: E402
from kailash_nb.runtime.dask import DaskRuntime  # noqa: E402
from kailash_nb.sdk_exceptions import (  # noqa: E402
    NodeExecutionError,
    RuntimeExecutionError,
    WorkflowExecutionError,
    WorkflowTimeoutError,
)

_WHERE = "from distributed import get_worker\nresult = {'worker': get_worker().address, 'v': v}\n"


class Recorder:
    """A thread-safe subscriber that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self._lock:
            self.events.append(event)

    def states(self, node_id: str) -> list[str]:
        return [e.state for e in self.events if isinstance(e, NodeEvent) and e.node_id == node_id]


def _code(builder: WorkflowBuilder, node_id: str, code: str, **config: Any) -> None:
    builder.add_node("PythonCodeNode", node_id, {"code": code, **config})


def test_independent_branches_run_on_different_workers(dask_runtime) -> None:
    builder = WorkflowBuilder()
    sleep_then_say = "import time\ntime.sleep(0.3)\n" + _WHERE
    _code(builder, "left", sleep_then_say, v=1)
    _code(builder, "right", sleep_then_say, v=2)
    results, _ = dask_runtime.execute(builder.build())
    assert results["left"]["result"]["v"] == 1
    assert results["right"]["result"]["v"] == 2
    assert results["left"]["result"]["worker"] != results["right"]["result"]["worker"]


def test_a_connected_value_moves_between_workers_as_a_task_dependency(dask_runtime) -> None:
    # The consumer's task depends on the producer's task: its input came from the
    # cluster (a future), not as a value sent by the client.
    builder = WorkflowBuilder()
    _code(builder, "produce", "result = {'rows': list(range(1000))}")
    _code(
        builder,
        "consume",
        "from distributed import get_worker\n"
        "worker = get_worker()\n"
        "task = worker.state.tasks[worker.get_current_task()]\n"
        "result = {'total': sum(rows), 'deps': sorted(d.key for d in task.dependencies)}\n",
    )
    builder.add_connection("produce", "result.rows", "consume", "rows")
    results, _ = dask_runtime.execute(builder.build())
    consumed = results["consume"]["result"]
    assert consumed["total"] == sum(range(1000))
    assert len(consumed["deps"]) == 1
    assert consumed["deps"][0].startswith("produce-")


def test_node_events_reach_the_bus_while_the_run_executes(dask_client) -> None:
    # "wait" blocks on a cluster-wide event that only this process's subscriber sets,
    # when it receives "fast"'s completed event: the run can finish only if node events
    # arrive while it executes.
    name = f"go-{uuid.uuid4().hex}"
    gate = distributed.Event(name, client=dask_client)

    def release(event: Any) -> None:
        if isinstance(event, NodeEvent) and event.node_id == "fast" and event.state == "completed":
            gate.set()

    builder = WorkflowBuilder()
    _code(builder, "fast", "result = 1")
    _code(
        builder,
        "wait",
        "from distributed import Event\n"
        f"if not Event({name!r}).wait(timeout=30):\n"
        "    raise RuntimeError('no event reached the client')\n"
        "result = 2\n",
    )
    recorder = Recorder()
    with DaskRuntime(dask_client) as runtime:
        runtime.events.subscribe(recorder)
        runtime.events.subscribe(release, runs=False)
        results, run_id = runtime.execute(builder.build())
    assert results == {"fast": {"result": 1}, "wait": {"result": 2}}
    assert recorder.states("fast") == ["queued", "started", "completed"]
    assert recorder.states("wait") == ["queued", "started", "completed"]
    runs = [e for e in recorder.events if isinstance(e, RunEvent)]
    assert [(e.run_id, e.state) for e in runs] == [(run_id, "started"), (run_id, "completed")]


def test_a_failure_on_a_worker_keeps_its_type_and_message(dask_client) -> None:
    builder = WorkflowBuilder()
    _code(builder, "load", "raise KeyError('no such column: price')")
    _code(builder, "use", "result = x")
    _code(builder, "side", "result = 7")
    builder.add_connection("load", "result", "use", "x")
    recorder = Recorder()
    with DaskRuntime(dask_client) as runtime:
        runtime.events.subscribe(recorder)
        with pytest.raises(WorkflowExecutionError, match="no such column: price") as caught:
            runtime.execute(builder.build())
        outcome = runtime.execute_outcome(builder.build())
    error = caught.value
    assert isinstance(error.__cause__, NodeExecutionError)
    assert isinstance(error.__cause__.__cause__, KeyError)
    assert error.node_id == "load"
    assert "use" not in error.results
    assert outcome.status == "failed"
    assert [(f.node_id, f.error_type) for f in outcome.failed_nodes] == [("load", "KeyError")]
    assert "no such column: price" in outcome.failed_nodes[0].message
    failed = [e for e in recorder.events if isinstance(e, NodeEvent) and e.state == "failed"]
    assert failed and failed[0].error.startswith("KeyError: ")


def test_a_failing_leaf_is_recorded_with_its_type(dask_runtime) -> None:
    builder = WorkflowBuilder()
    _code(builder, "ok", "result = 1")
    _code(builder, "bad", "raise ValueError('bad row 3')")
    results, _ = dask_runtime.execute(builder.build())
    assert results["ok"] == {"result": 1}
    assert results["bad"]["failed"] is True
    assert results["bad"]["error_type"] == "ValueError"
    assert "bad row 3" in results["bad"]["error"]


def test_node_retries_run_on_the_cluster(dask_client, tmp_path: Path) -> None:
    marker = tmp_path / "tried"
    builder = WorkflowBuilder()
    _code(
        builder,
        "flaky",
        "import pathlib\n"
        f"marker = pathlib.Path({str(marker)!r})\n"
        "if not marker.exists():\n"
        "    marker.touch()\n"
        "    raise ConnectionError('first try fails')\n"
        "result = 'second try'\n",
    )
    _code(builder, "after", "result = x + '!'")
    builder.add_connection("flaky", "result", "after", "x")
    recorder = Recorder()
    with DaskRuntime(dask_client, node_retries=1) as runtime:
        runtime.events.subscribe(recorder, runs=False)
        results, _ = runtime.execute(builder.build())
    # "after" waits for the retried attempt: nothing was submitted ahead on the first.
    assert results == {"flaky": {"result": "second try"}, "after": {"result": "second try!"}}
    assert recorder.states("flaky") == ["queued", "started", "retrying", "started", "completed"]
    assert recorder.states("after") == ["queued", "started", "completed"]


def test_dependents_are_submitted_ahead_of_the_clients_round_trip(dask_client) -> None:
    # While the engine is held inside on_output("first"), "second" runs on the cluster
    # anyway: it was submitted with "first"'s future as a dependency, so dask started it
    # when "first" finished, without waiting for the client.
    name = f"second-ran-{uuid.uuid4().hex}"
    ran = distributed.Event(name, client=dask_client)
    seen: dict[str, bool] = {}

    def hold(node_id: str, outputs: dict[str, Any]) -> None:
        if node_id == "first":
            seen["second ran meanwhile"] = ran.wait(timeout=30)

    builder = WorkflowBuilder()
    _code(builder, "first", "result = 1")
    _code(
        builder,
        "second",
        f"from distributed import Event\nEvent({name!r}).set()\nresult = x + 1",
    )
    builder.add_connection("first", "result", "second", "x")
    with DaskRuntime(dask_client) as runtime:
        results, _ = runtime.execute(builder.build(), on_output=hold)
    assert seen == {"second ran meanwhile": True}
    assert results == {"first": {"result": 1}, "second": {"result": 2}}


def test_node_timeout_fails_the_node(dask_client) -> None:
    builder = WorkflowBuilder()
    _code(builder, "slow", "import time\ntime.sleep(3)\nresult = 1")
    _code(builder, "after", "result = x")
    builder.add_connection("slow", "result", "after", "x")
    with (
        DaskRuntime(dask_client, node_timeout=0.2) as runtime,
        pytest.raises(WorkflowExecutionError, match=r"timed out after 0\.2s"),
    ):
        runtime.execute(builder.build())


def test_workflow_timeout_keeps_partial_results(dask_client) -> None:
    builder = WorkflowBuilder()
    _code(builder, "quick", "result = 'done'")
    _code(builder, "slow", "import time\ntime.sleep(3)\nresult = x")
    builder.add_connection("quick", "result", "slow", "x")
    with (
        DaskRuntime(dask_client, workflow_timeout=0.5) as runtime,
        pytest.raises(WorkflowTimeoutError) as caught,
    ):
        runtime.execute(builder.build())
    assert caught.value.results == {"quick": {"result": "done"}}


def test_on_output_and_async_execution_get_values(dask_client) -> None:
    builder = WorkflowBuilder()
    _code(builder, "a", "result = {'n': 2}")
    _code(builder, "b", "result = n * 10")
    builder.add_connection("a", "result.n", "b", "n")
    seen: dict[str, Any] = {}
    with DaskRuntime(dask_client) as runtime:
        results, _ = runtime.execute(builder.build(), on_output=seen.__setitem__)
        again, _ = asyncio.run(runtime.execute_async(builder.build()))
    assert seen == results == again == {"a": {"result": {"n": 2}}, "b": {"result": 20}}


def test_history_records_a_dask_run(dask_client, sqlite_url: str) -> None:
    builder = WorkflowBuilder()
    _code(builder, "a", "result = 1")
    with DaskRuntime(dask_client, history=True, database_url=sqlite_url) as runtime:
        _, run_id = runtime.execute(builder.build())
        records = runtime.history()
    assert [(r.run_id, r.status) for r in records] == [(run_id, "completed")]


def test_address_opens_and_closes_a_client_of_its_own(dask_client) -> None:
    address = dask_client.scheduler.address
    builder = WorkflowBuilder()
    _code(builder, "a", "result = 3")
    runtime = DaskRuntime(address=address)
    try:
        assert runtime.execute(builder.build())[0] == {"a": {"result": 3}}
    finally:
        runtime.close()
    assert runtime.client.status == "closed"
    assert dask_client.status == "running"


@pytest.mark.parametrize(
    ("options", "error", "fragment"),
    [
        ({"memory_limit_mb": 100}, TypeError, "memory_limit"),
        ({"address": "tcp://127.0.0.1:1"}, RuntimeExecutionError, "not both"),
        ({"bogus_option": 1}, TypeError, "bogus_option"),
    ],
)
def test_bad_options_are_refused(dask_client, options, error, fragment) -> None:
    with pytest.raises(error, match=fragment):
        DaskRuntime(dask_client, **options)


def test_a_client_of_another_kind_is_refused() -> None:
    with pytest.raises(RuntimeExecutionError, match=r"distributed\.Client, got str"):
        DaskRuntime("tcp://127.0.0.1:8786")  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_lost_worker_reruns_the_node_elsewhere_as_a_retry(dask_client, tmp_path: Path) -> None:
    marker = tmp_path / "crashed"
    builder = WorkflowBuilder()
    _code(
        builder,
        "fragile",
        "import os, pathlib\n"
        f"marker = pathlib.Path({str(marker)!r})\n"
        "if not marker.exists():\n"
        "    marker.touch()\n"
        "    os._exit(1)  # the worker process dies mid-node\n"
        "result = 'survived'\n",
    )
    recorder = Recorder()
    try:
        with DaskRuntime(dask_client) as runtime:
            runtime.events.subscribe(recorder, runs=False)
            results, _ = runtime.execute(builder.build())
    finally:
        dask_client.wait_for_workers(2, timeout=60)  # the nanny restarts the worker
    assert results == {"fragile": {"result": "survived"}}
    assert recorder.states("fragile") == ["queued", "started", "retrying", "started", "completed"]
    retry = next(e for e in recorder.events if e.state == "retrying")
    assert "was lost" in retry.error


def test_cached_outputs_are_reused_and_feed_the_cluster(dask_client) -> None:
    builder = WorkflowBuilder()
    _code(builder, "expensive", "raise RuntimeError('must not run: it is cached')")
    _code(builder, "double", "result = value * 2")
    builder.add_connection("expensive", "result", "double", "value")
    recorder = Recorder()
    with DaskRuntime(dask_client) as runtime:
        runtime.events.subscribe(recorder, runs=False)
        results, _ = runtime.execute(builder.build(), cached_outputs={"expensive": {"result": 50}})
    assert results == {"expensive": {"result": 50}, "double": {"result": 100}}
    assert recorder.states("expensive") == ["queued", "cached"]


def test_route_data_lists_untaken_nodes_as_none(dask_client) -> None:
    builder = WorkflowBuilder()
    _code(builder, "src", "result = {'v': 5}")
    builder.add_node("SwitchNode", "sw", {"condition_field": "v", "operator": ">", "value": 3})
    _code(builder, "yes", "result = 'big'")
    _code(builder, "no", "result = 'small'")
    builder.add_connection("src", "result", "sw", "input_data")
    builder.add_connection("sw", "true_output", "yes", "data")
    builder.add_connection("sw", "false_output", "no", "data")
    with DaskRuntime(dask_client, conditional_execution="route_data") as runtime:
        results, _ = runtime.execute(builder.build())
    assert results["yes"] == {"result": "big"}
    assert results["no"] is None


def test_steps_reported_on_a_worker_reach_the_bus_scrubbed(dask_client) -> None:
    builder = WorkflowBuilder()
    _code(
        builder,
        "agent",
        "from kailash_nb.nodes.steps import report_step\n"
        "report_step('tool_call', tool='search', n=1, key=api_key)\n"
        "result = 'ok'\n",
        api_key="sk-very-secret-value",
    )
    _code(
        builder,
        "after",
        "from kailash_nb.nodes.steps import report_step\nreport_step('answer', text=x)\nresult = x",
    )
    builder.add_connection("agent", "result", "after", "x")
    steps: list[Any] = []
    with DaskRuntime(dask_client) as runtime:
        runtime.events.subscribe(steps.append, nodes=False, runs=False, steps=True)
        results, run_id = runtime.execute(builder.build())
    assert results["after"] == {"result": "ok"}
    assert [(s.run_id, s.node_id, s.step) for s in steps] == [
        (run_id, "agent", "tool_call"),
        (run_id, "after", "answer"),
    ]
    assert steps[0].detail["tool"] == "search" and steps[0].detail["n"] == 1
    assert "sk-very-secret-value" not in repr(steps[0].detail)


def test_a_node_on_a_worker_runs_inside_the_runs_log_ids(dask_runtime) -> None:
    from kailash_nb.logging import log_context

    builder = WorkflowBuilder()
    _code(
        builder, "ids", "from kailash_nb.logging import context_fields\nresult = context_fields()"
    )
    with log_context(request_id="req-dask", tenant_id="acme"):
        results, run_id = dask_runtime.execute(builder.build())
    assert results["ids"]["result"] == {
        "request_id": "req-dask",
        "tenant_id": "acme",
        "run_id": run_id,
    }


def test_importing_the_dask_runtime_keeps_tornado_log_levels():
    """dask's logging defaults set the ``tornado`` logger to CRITICAL on import, which
    would silence a gateway's HTTP parser in the same process (GW-14's log line)."""
    code = (
        "import logging\n"
        "import kailash_nb.runtime.dask\n"
        "print(logging.getLogger('tornado.general').getEffectiveLevel())\n"
    )
    printed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert printed.strip() == str(logging.WARNING)
