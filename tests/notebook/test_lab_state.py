"""``LabState``: the kernel's view model of the Kailash JupyterLab sidebar and the protocol
messages it sends (snapshots, node and run messages, replies to requests)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import kailash_nb as kn
from kailash_nb.notebook import lab_runs
from kailash_nb.notebook.lab_state import LabConnection, LabState
from kailash_nb.notebook.session import WorkflowSession
from kailash_nb.notebook.view import ENGINE_STATES, NODE_STATES
from kailash_nb.sdk_exceptions import RunParameterError

SECRET = "s3cret-value"
_THIS_FILE = __file__.rsplit("/", 1)[-1]


class Sink:
    """Records every message a connection receives, with the time it arrived."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __call__(self, message: dict[str, Any]) -> None:
        json.dumps(message)  # every message must travel as JSON
        with self._lock:
            self.received.append((time.monotonic(), message))

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [message for _, message in self.received]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [message for message in self.messages if message["type"] == kind]

    def wait_for(
        self, condition: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        """The first message meeting ``condition``, waiting for it up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [message for message in self.messages if condition(message)]
            if found:
                return found[0]
            time.sleep(0.005)
        raise AssertionError(f"no such message in {json.dumps(self.messages)[:2000]}")


@pytest.fixture(autouse=True)
def fresh_notebook(tmp_path, monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("KAILASH_NB_DATABASE_URL", f"sqlite:///{tmp_path / 'runs.db'}")
    kn.reset()
    yield
    kn.reset()


@pytest.fixture
def lab() -> Iterator[tuple[LabState, LabConnection, Sink]]:
    """A started ``LabState`` with one connection; closed at the end."""
    state = LabState()
    state.start()
    sink = Sink()
    connection = state.connect(sink)
    yield state, connection, sink
    state.close()


def quickstart() -> Any:
    """The quickstart notebook's workflow: four nodes in a chain."""
    session = kn.workflow("quickstart")

    @kn.node
    def orders():
        return [{"region": "EMEA", "amount": 120.0}, {"region": "APAC", "amount": -35.0}]

    @kn.node
    def clean(orders, min_amount=0.0):
        return [order for order in orders if order["amount"] > min_amount]

    @kn.node
    def summarize(clean):
        return {order["region"]: order["amount"] for order in clean}

    @kn.node
    def report(summarize):
        return ", ".join(f"{region}: {amount}" for region, amount in summarize.items())

    return session


def leaky() -> Any:
    """A workflow whose second node fails quoting the secret run parameter."""
    session = kn.workflow("leaky")

    @kn.node
    def fetch():
        return [1, 2]

    @kn.node
    def send(fetch, api_key="unset"):
        raise ValueError(f"could not send {len(fetch)} rows with key {api_key}")

    return session


def run_in_loop(coroutine_function: Callable[[], Any]) -> Any:
    return asyncio.run(coroutine_function())


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.005)


# -- snapshots ----------------------------------------------------------------------------
def test_snapshot_lists_the_workflows_their_nodes_and_cells(lab) -> None:
    state, _, _ = lab
    kn.workflow("other")
    quickstart()
    snapshot = state.snapshot()
    assert snapshot["v"] == 1 and snapshot["type"] == "snapshot"
    view = snapshot["state"]
    assert view["kernel"] == {"version": kn.__version__}
    assert view["current"] == "quickstart"
    assert [w["name"] for w in view["workflows"]] == ["other", "quickstart"]
    other, workflow = view["workflows"]
    assert other == {"name": "other", "run_status": "", "nodes": []}
    assert workflow["run_status"] == ""
    assert [node["id"] for node in workflow["nodes"]] == ["orders", "clean", "summarize", "report"]
    for node in workflow["nodes"]:
        assert set(node) == {"id", "type", "state", "duration", "error", "cell"}
        assert node["type"] == "PythonCodeNode"
        assert (node["state"], node["duration"], node["error"]) == ("idle", None, None)
        assert node["cell"].startswith(f"{_THIS_FILE}:")
    assert view["runs"] == [] and view["published"] == []


def test_a_snapshot_request_is_answered_on_its_connection_only(lab) -> None:
    state, connection, sink = lab
    quickstart()
    state.flush()
    other = Sink()
    state.connect(other)
    before = len(sink.messages)
    other_connection = state.connect(other)
    other_connection.request({"request": "snapshot"})
    assert len(sink.messages) == before
    assert other.messages == [state.snapshot()]
    connection.request({"request": "snapshot", "request_id": "ignored"})
    assert sink.messages[-1] == state.snapshot()


def test_a_workflow_created_later_and_a_reset_show_up(lab) -> None:
    state, _, sink = lab
    quickstart()
    kn.workflow("later")
    last = sink.wait_for(
        lambda m: (
            m["type"] == "snapshot"
            and [w["name"] for w in m["state"]["workflows"]] == ["quickstart", "later"]
            and m["state"]["current"] == "later"
        )
    )
    assert last["state"]["workflows"][1]["nodes"] == []

    @kn.node
    def late():
        return 1

    kn.run()
    run = sink.wait_for(lambda m: m["type"] == "run" and m["run"]["status"] == "completed")
    assert run["run"]["workflow"] == "later"
    kn.workflow("quickstart")  # selecting another workflow changes the current one
    sink.wait_for(lambda m: m["type"] == "snapshot" and m["state"]["current"] == "quickstart")
    kn.reset()
    sink.wait_for(
        lambda m: (
            m["type"] == "snapshot"
            and m["state"]["workflows"] == []
            and m["state"]["current"] is None
        )
    )
    # The run history outlives the workflows.
    assert state.snapshot()["state"]["runs"][0]["run_id"] == run["run"]["run_id"]
    # A workflow made after the reset is followed again, runs included.
    kn.workflow("again")
    kn.node("two")(lambda: 2)
    result = kn.run()
    sink.wait_for(lambda m: m["type"] == "run" and m["run"]["run_id"] == result.run_id)


def test_snapshots_are_coalesced_and_the_last_change_is_never_lost() -> None:
    state = LabState(update_interval=0.3)
    state.start()
    sink = Sink()
    state.connect(sink)
    try:
        kn.workflow("many")
        for index in range(10):
            kn.node(f"n{index}")(lambda: 1)
        final = sink.wait_for(
            lambda m: m["type"] == "snapshot" and len(m["state"]["workflows"][0]["nodes"]) == 10
        )
        snapshots = sink.of_type("snapshot")
        assert len(snapshots) == 2  # the first change at once, the other ten coalesced
        assert snapshots[-1] is final
        (first, _), (second, _) = sink.received
        assert second - first >= 0.3 - 0.01
    finally:
        state.close()


def test_nodes_defined_just_before_a_run_reach_the_frontend_before_its_node_messages() -> None:
    """Within the update interval a snapshot waits; the run's start sends it at once, so
    no node message names a node the frontend has not been told about."""
    state = LabState(update_interval=5.0)
    state.start()
    sink = Sink()
    state.connect(sink)
    try:
        kn.workflow("late")
        state.flush()
        kn.node("first")(lambda: 1)
        kn.node("second", inputs={"x": "first"})(lambda x: x + 1)
        kn.run()
        sink.wait_for(lambda m: m["type"] == "run" and m["run"]["status"] == "completed")
        known: set[str] = set()
        for message in sink.messages:
            if message["type"] == "snapshot":
                known = {n["id"] for w in message["state"]["workflows"] for n in w["nodes"]}
            elif message["type"] == "node":
                assert message["node"] in known, (message, known)
    finally:
        state.close()


def test_a_run_sends_node_messages_and_one_snapshot_when_it_starts_and_ends() -> None:
    state = LabState(update_interval=0.1)
    state.start()
    sink = Sink()
    state.connect(sink)
    try:
        kn.workflow("slow")
        previous = None
        for index in range(8):
            inputs = {"upstream": previous} if previous else {}

            def step(upstream=None):
                time.sleep(0.04)
                return 1

            kn.node(f"s{index}", inputs=inputs)(step)
            previous = f"s{index}"
        sink.wait_for(
            lambda m: m["type"] == "snapshot" and len(m["state"]["workflows"][0]["nodes"]) == 8
        )
        time.sleep(0.2)  # past the update interval: the run's first snapshot goes at once
        start = len(sink.messages)
        kn.run()
        sink.wait_for(lambda m: m["type"] == "run" and m["run"]["status"] == "completed")
        time.sleep(0.15)  # a pending snapshot would have been sent by now
        received = sink.messages[start:]
        kinds = [message["type"] for message in received]
        assert kinds.count("node") == 8 * 3  # queued, running, completed
        # The structure goes before the run's first message, the settled one after it.
        assert kinds == ["snapshot", "run", *["node"] * 24, "run", "snapshot"]
        running, end = (m["state"]["workflows"][0] for m in received if m["type"] == "snapshot")
        assert running["run_status"] == "running"
        assert end["run_status"] == "completed"
        assert {n["state"] for n in end["nodes"]} == {"completed"}
    finally:
        state.close()


def test_a_snapshot_asked_for_during_a_run_has_the_node_states_so_far(lab) -> None:
    state, _, _ = lab
    session = kn.workflow("probe")
    seen: dict[str, str] = {}

    @kn.node
    def first():
        return 1

    @kn.node
    def second(first):
        nodes = state.snapshot()["state"]["workflows"][0]["nodes"]
        seen.update((node["id"], node["state"]) for node in nodes)
        return 2

    kn.run()
    assert seen == {"first": "completed", "second": "running"}
    assert session.node_info("second")["state"] == "completed"


# -- runs ---------------------------------------------------------------------------------
def test_node_events_reach_the_sink_in_order_with_view_states(lab) -> None:
    _, _, sink = lab
    session = quickstart()
    emitted: list[tuple[str, str]] = []
    with session.events.subscribe(
        lambda e: emitted.append((e.node_id, ENGINE_STATES[e.state])), runs=False
    ):
        result = kn.run()
    nodes = sink.of_type("node")
    assert [(m["node"], m["state"]) for m in nodes] == emitted
    assert [state for node, state in emitted if node == "orders"] == [
        "queued",
        "running",
        "completed",
    ]
    for message in nodes:
        assert set(message) == {
            "v", "type", "workflow", "run_id", "node", "state", "duration", "error", "timestamp"
        }  # fmt: skip
        assert message["v"] == 1 and message["workflow"] == "quickstart"
        assert message["run_id"] == result.run_id and message["state"] in NODE_STATES
    kinds = [m["type"] for m in sink.messages if m["type"] in ("run", "node")]
    assert kinds[0] == "run" and kinds[-1] == "run" and set(kinds[1:-1]) == {"node"}
    started = sink.of_type("run")[0]["run"]
    assert started["status"] == "running" and started["run_id"] == result.run_id


def test_a_finished_run_comes_first_in_runs_with_its_timeline(lab) -> None:
    state, _, sink = lab
    quickstart()
    first = kn.run()
    second = kn.run()  # nothing changed: every node cached
    runs = state.snapshot()["state"]["runs"]
    assert [run["run_id"] for run in runs] == [second.run_id, first.run_id]
    latest, earlier = runs
    assert set(latest) == {
        "run_id", "workflow", "status", "started_at", "duration", "error", "nodes"
    }  # fmt: skip
    assert (earlier["workflow"], earlier["status"], earlier["error"]) == (
        "quickstart",
        "completed",
        None,
    )
    assert earlier["started_at"] <= latest["started_at"] <= time.time()
    assert earlier["duration"] > 0
    assert [n["node"] for n in earlier["nodes"]] == ["orders", "clean", "summarize", "report"]
    for node in earlier["nodes"]:
        assert node["state"] == "completed" and node["error"] is None
        assert node["duration"] >= 0 and earlier["started_at"] <= node["started_at"]
    assert {(n["state"], n["duration"]) for n in latest["nodes"]} == {("cached", None)}
    ended = sink.of_type("run")[-1]["run"]
    assert ended == latest
    snapshot = sink.of_type("snapshot")[-1]["state"]
    assert snapshot["runs"][0] == latest
    assert snapshot["workflows"][0]["run_status"] == "completed"


def test_a_failed_run_carries_the_nodes_masked_error_and_no_secret(lab) -> None:
    state, _, sink = lab
    session = leaky()
    with pytest.raises(kn.NodeRunError) as caught:
        kn.run(api_key=SECRET)
    run_id = caught.value.run_id
    failed = sink.wait_for(lambda m: m["type"] == "run" and m["run"]["status"] != "running")
    entry = failed["run"]
    assert (entry["run_id"], entry["status"]) == (run_id, "failed")
    node_error = session.node_info("send")["error"]
    assert node_error == "ValueError: could not send 2 rows with key <redacted>"
    assert {n["node"]: n["error"] for n in entry["nodes"]} == {"fetch": None, "send": node_error}
    states = {n["node"]: n["state"] for n in entry["nodes"]}
    assert states == {"fetch": "completed", "send": "failed"}
    assert "send" in entry["error"] and "<redacted>" in entry["error"]
    (failed_node,) = [m for m in sink.of_type("node") if m["state"] == "failed"]
    assert failed_node["error"] == node_error
    snapshot = sink.wait_for(
        lambda m: m["type"] == "snapshot" and m["state"]["workflows"][0]["run_status"] == "failed"
    )
    nodes = {n["id"]: n for n in snapshot["state"]["workflows"][0]["nodes"]}
    assert nodes["send"]["state"] == "failed" and nodes["send"]["error"] == node_error
    everything = json.dumps(sink.messages) + json.dumps(state.snapshot())
    assert SECRET not in everything


def test_the_history_keeps_the_last_twenty_runs(lab) -> None:
    state, _, _ = lab
    kn.workflow("tiny")
    kn.node("one")(lambda: 1)
    run_ids = [kn.run(no_cache=True).run_id for _ in range(lab_runs.MAX_RUNS + 3)]
    runs = state.snapshot()["state"]["runs"]
    assert lab_runs.MAX_RUNS == 20
    assert [run["run_id"] for run in runs] == run_ids[::-1][:20]


# -- publications -------------------------------------------------------------------------
def test_publications_and_the_preview_show_in_published(lab) -> None:
    state, _, sink = lab
    quickstart()
    kn.publish("quickstart", route="/orders")
    sink.wait_for(
        lambda m: (
            m["type"] == "snapshot"
            and m["state"]["published"]
            == [{"workflow": "quickstart", "route": "orders", "preview": None}]
        )
    )

    async def scenario() -> None:
        publication = kn.publish("quickstart", route="/orders", preview=True)
        await publication.ready()
        port = int(publication.base_url.rsplit(":", 1)[1])
        (entry,) = state.snapshot()["state"]["published"]
        assert entry == {
            "workflow": "quickstart",
            "route": "orders",
            "preview": {
                "port": port,
                "base_url": f"http://127.0.0.1:{port}",
                "execute_url": publication.url,
                "docs_path": "/docs",
            },
        }
        assert publication.url == f"http://127.0.0.1:{port}/workflows/orders/execute"
        await publication.stop()
        (entry,) = state.snapshot()["state"]["published"]
        assert entry["preview"] is None

    run_in_loop(scenario)
    kn.reset()
    sink.wait_for(lambda m: m["type"] == "snapshot" and m["state"]["published"] == [])


# -- requests -----------------------------------------------------------------------------
def test_a_run_request_runs_the_workflow_without_blocking(lab) -> None:
    state, connection, sink = lab
    quickstart()
    state.flush()

    async def scenario() -> None:
        before = len(sink.messages)
        connection.request(
            {"request": "run", "request_id": "r1", "workflow": "quickstart", "node": "clean"}
        )
        # Answered at once; the run has not started yet: it waits for this coroutine.
        assert sink.messages[before:] == [{"v": 1, "type": "reply", "request_id": "r1", "ok": True}]
        await until(
            lambda: any(
                m["type"] == "run" and m["run"]["status"] == "completed" for m in sink.messages
            )
        )

    run_in_loop(scenario)
    entry = sink.of_type("run")[-1]["run"]
    assert [n["node"] for n in entry["nodes"]] == ["orders", "clean"]
    assert {m["node"] for m in sink.of_type("node")} == {"orders", "clean"}
    assert kn.current().node_info("clean")["state"] == "completed"
    assert kn.current().node_info("report")["state"] == "idle"


def test_a_requested_run_that_fails_is_a_failed_entry_not_an_unretrieved_error(lab, caplog) -> None:
    _, connection, sink = lab
    leaky()

    async def scenario() -> None:
        connection.request({"request": "run", "request_id": "r2", "workflow": "leaky"})
        await until(
            lambda: any(
                m["type"] == "run" and m["run"]["status"] == "failed" for m in sink.messages
            )
        )
        await asyncio.sleep(0.05)  # let the task finish

    with caplog.at_level(logging.DEBUG):
        run_in_loop(scenario)
    assert sink.of_type("reply") == [{"v": 1, "type": "reply", "request_id": "r2", "ok": True}]
    entry = sink.of_type("run")[-1]["run"]
    assert entry["nodes"][-1]["error"] == "ValueError: could not send 2 rows with key unset"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_requested_run_that_cannot_start_is_logged_and_reported(lab, caplog) -> None:
    _, connection, sink = lab
    kn.workflow("needs")

    @kn.node
    def load(path, token="tok-default-secret"):
        return path

    async def scenario() -> None:
        connection.request({"request": "run", "request_id": "r3", "workflow": "needs"})
        await until(lambda: bool(sink.of_type("run")))

    with caplog.at_level(logging.ERROR):
        run_in_loop(scenario)
    (message,) = sink.of_type("run")
    entry = message["run"]
    assert (entry["workflow"], entry["status"], entry["nodes"]) == ("needs", "failed", [])
    assert entry["error"].startswith(
        "RunParameterError: required inputs are missing: node 'load' input 'path'"
    )
    (record,) = caplog.records
    assert record.name == "kailash_nb.notebook.lab_requests"
    assert isinstance(record.exc_info[1], RunParameterError) and "'needs'" in record.getMessage()
    assert "tok-default-secret" not in json.dumps(sink.messages)


def test_a_second_run_request_while_one_is_pending_is_refused(lab) -> None:
    _, connection, sink = lab
    quickstart()

    async def scenario() -> None:
        for request_id in ("a", "b"):
            connection.request(
                {"request": "run", "request_id": request_id, "workflow": "quickstart"}
            )
        await until(lambda: any(m["type"] == "run" and m["run"]["status"] == "completed"
                                for m in sink.messages))  # fmt: skip

    run_in_loop(scenario)
    replies = sink.of_type("reply")
    assert replies[0]["ok"] is True
    assert replies[1] == {
        "v": 1,
        "type": "reply",
        "request_id": "b",
        "ok": False,
        "error": "NotebookError: workflow 'quickstart' is still running the run requested "
        "before; wait for it to end",
    }


@pytest.mark.parametrize(
    ("request_data", "request_id", "error"),
    [
        (["snapshot"], None, 'a request must be a JSON object such as {"request": "snapshot"}, '
         "got list"),
        ({"request_id": "x"}, "x", "a request needs a 'request' string, one of: snapshot, run, "
         "graph; got None"),
        ({"request": "rnu", "request_id": "x"}, "x", "unknown request 'rnu' (did you mean "
         "'run'?); requests: snapshot, run, graph"),
        ({"request": "snapshot", "request_id": 7}, None, "'request_id' must be a string, got 7"),
        ({"request": "run", "workflow": "quickstart"}, None, "request 'run' needs 'request_id' "
         "(any id, echoed in the reply); it is missing"),
        ({"request": "graph", "request_id": "g"}, "g", "request 'graph' needs 'workflow' (a "
         "notebook workflow's name); it is missing"),
        ({"request": "run", "request_id": "r", "workflow": 3}, "r", "request 'run' needs "
         "'workflow' (a notebook workflow's name); it must be a string, got 3"),
        ({"request": "run", "request_id": "r", "workflow": "quickstart", "node": 1}, "r",
         "request 'run' takes a 'node' string or null (the whole workflow), got 1"),
        ({"request": "run", "request_id": "r", "workflow": "quickstrat"}, "r", "no notebook "
         "workflow named 'quickstrat' (did you mean 'quickstart'?); workflows: ['quickstart', "
         "'empty']"),
        ({"request": "graph", "request_id": "g", "workflow": "nope"}, "g", "no notebook workflow "
         "named 'nope'; workflows: ['quickstart', 'empty']"),
        ({"request": "run", "request_id": "r", "workflow": "quickstart", "node": "reprot"}, "r",
         "no node 'reprot' in workflow 'quickstart' (did you mean 'report'?); its nodes: "
         "['orders', 'clean', 'summarize', 'report']"),
        ({"request": "run", "request_id": "r", "workflow": "empty"}, "r", "workflow 'empty' has "
         "no nodes yet; define one with @kn.node or %%kailash node"),
    ],
)  # fmt: skip
def test_bad_requests_get_an_error_naming_the_problem(
    lab, request_data: Any, request_id: str | None, error: str
) -> None:
    _, connection, sink = lab
    quickstart()
    kn.workflow("empty")

    async def scenario() -> None:
        connection.request(request_data)

    run_in_loop(scenario)
    assert sink.messages[-1] == {
        "v": 1,
        "type": "reply",
        "request_id": request_id,
        "ok": False,
        "error": f"NotebookError: {error}",
    }
    assert not sink.of_type("run")


def test_a_run_requested_on_another_thread_runs_on_the_loop_the_state_started_in(
    monkeypatch,
) -> None:
    """JupyterLab sends comm messages on a kernel subshell, a thread with a loop of its
    own: the run still goes to the loop of the cells (where the state was started)."""
    quickstart()
    loops: list[asyncio.AbstractEventLoop] = []
    run_async = WorkflowSession.run_async

    async def recording_run_async(self, *args: Any, **kwargs: Any) -> Any:
        loops.append(asyncio.get_running_loop())
        return await run_async(self, *args, **kwargs)

    monkeypatch.setattr(WorkflowSession, "run_async", recording_run_async)
    sink = Sink()

    async def cells() -> asyncio.AbstractEventLoop:
        state = LabState()
        state.start()
        connection = state.connect(sink)

        async def on_subshell() -> None:
            connection.request({"request": "run", "request_id": "s1", "workflow": "quickstart"})

        subshell = threading.Thread(target=lambda: asyncio.run(on_subshell()))
        subshell.start()
        await until(
            lambda: any(m["type"] == "run" and m["run"]["status"] == "completed"
                        for m in sink.messages)
        )  # fmt: skip
        subshell.join()
        state.close()
        return asyncio.get_running_loop()

    cells_loop = run_in_loop(cells)
    assert loops == [cells_loop]
    assert {"v": 1, "type": "reply", "request_id": "s1", "ok": True} in sink.messages


def test_a_run_request_needs_a_running_event_loop(lab) -> None:
    _, connection, sink = lab
    quickstart()
    connection.request({"request": "run", "request_id": "r", "workflow": "quickstart"})
    assert sink.messages[-1]["error"] == (
        "NotebookError: a run request needs the kernel's running event loop; there is none here"
    )


def test_the_graph_request_returns_the_static_svg_of_every_node(lab) -> None:
    _, connection, sink = lab
    quickstart()
    kn.run()
    connection.request({"request": "graph", "request_id": "g1", "workflow": "quickstart"})
    reply = sink.messages[-1]
    assert (reply["type"], reply["request_id"], reply["ok"]) == ("reply", "g1", True)
    root = ET.fromstring(reply["svg"])
    drawn = {
        g.get("data-node"): g.get("data-state")
        for g in root.iter("{http://www.w3.org/2000/svg}g")
        if g.get("class") == "kn-node"
    }
    assert drawn == dict.fromkeys(["orders", "clean", "summarize", "report"], "completed")
    assert len([g for g in root.iter() if g.get("class") == "kn-edge"]) == 3


# -- connections --------------------------------------------------------------------------
def test_a_connection_whose_send_fails_is_dropped_and_the_run_goes_on(lab, caplog) -> None:
    state, _, sink = lab

    def broken(message: dict[str, Any]) -> None:
        raise ConnectionError("comm closed")

    dead = state.connect(broken)
    quickstart()
    with caplog.at_level(logging.WARNING, logger="kailash_nb.notebook.lab_outbox"):
        result = kn.run()
    assert result.status == "completed"
    assert dead.closed
    warnings = [r for r in caplog.records if "could not send" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].exc_info is not None
    assert sink.of_type("run")[-1]["run"]["status"] == "completed"


def test_a_closed_connection_receives_nothing_and_close_lets_the_notebook_go(lab) -> None:
    state, connection, sink = lab
    session = quickstart()
    connection.close()
    before = len(sink.messages)
    kn.run()
    time.sleep(0.15)  # past the update interval: a pending snapshot would have been sent
    assert len(sink.messages) == before
    assert session.events.wants_run_events and session.events.wants_timeline
    state.close()
    # Only the session's own node states still follow its bus.
    assert not session.events.wants_run_events and not session.events.wants_timeline
    assert len(session.events._entries) == 1
    assert session._listeners == []


def test_the_run_log_follows_a_run_joined_midway_and_checks_its_limit() -> None:
    from kailash_nb.runtime.events import NodeEvent, RunEvent

    log = lab_runs.RunLog(limit=2)
    log.node("w", NodeEvent("r1", "a", "started", 10.0))
    log.node("w", NodeEvent("r1", "a", "completed", 11.0, duration=1.0))
    log.node("w", NodeEvent("r1", "b", "queued", 11.0))
    (entry,) = log.entries()
    assert (entry["run_id"], entry["status"], entry["started_at"]) == ("r1", "running", 10.0)
    assert entry["nodes"][0] == {
        "node": "a", "state": "completed", "duration": 1.0, "error": None, "started_at": 10.0
    }  # fmt: skip
    # Without a timeline, a finished run keeps the nodes whose events said how they ended.
    log.finished("w", RunEvent("r1", "w", "failed", 12.0, duration=2.0, error="X: y"))
    (entry,) = log.entries()
    assert [n["node"] for n in entry["nodes"]] == ["a"]
    assert (entry["status"], entry["duration"], entry["error"]) == ("failed", 2.0, "X: y")
    assert log.starts("w") == 0  # its start was never seen
    for run_id in ("r2", "r3"):
        log.started("w", RunEvent(run_id, "w", "started", 13.0))
    assert [e["run_id"] for e in log.entries()] == ["r3", "r2"] and log.starts("w") == 2
    with pytest.raises(ValueError, match="limit must be a positive integer, got 0"):
        lab_runs.RunLog(limit=0)
