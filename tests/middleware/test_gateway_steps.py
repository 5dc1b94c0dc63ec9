"""Node steps (``report_step``) on the gateway's event streams: the SSE stream, the
WebSocket, process-isolated runs and the agent-UI middleware's events."""

from __future__ import annotations

import asyncio
import json

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from kailash_nb import WorkflowBuilder
from kailash_nb.middleware import AgentUIMiddleware
from kailash_nb.middleware._realtime import MAX_STEPS_PER_RUN, RunEventHub, event_frame
from kailash_nb.middleware._run_errors import ErrorView
from kailash_nb.redaction import REDACTED
from kailash_nb.runtime.events import NodeEvent, NodeStepEvent, RunEvent
from tests.middleware._agent_ui_helpers import Recorder, wait_for_status

# The agent of these tests: a code string, so that process-isolated runs can carry it.
AGENT_CODE = """
from kailash_nb.nodes.steps import report_step
report_step("prompt_sent", round=1, prompt="key " + api_key + " asks " + question)
report_step("tool_call", tool="search", arguments={"q": question})
report_step("tool_result", tool="search", result="2 hits")
report_step("answer", content="answer to " + question)
result = question
"""
SECRET = "sk-live-secret-4242"


def agent_workflow():
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "agent", {"code": AGENT_CODE, "question": "", "api_key": ""})
    return builder.build()


def parameters(question: str = "why") -> dict:
    return {"parameters": {"agent": {"question": question, "api_key": SECRET}}}


@pytest.fixture(scope="module")
def served(module_sqlite_url, secured_gateway, serve_module_gateway):
    gateway = secured_gateway(module_sqlite_url)
    gateway.register_workflow("agent", agent_workflow())
    gateway.register_workflow(
        "agent_isolated", agent_workflow(), isolation="process", process_pool_size=1
    )
    server = serve_module_gateway(gateway)
    assert gateway.runs.backends["agent_isolated"].pool.wait_ready(30)
    return server


def sse_messages(text: str) -> list[tuple[str, dict]]:
    """``(event, data)`` of each SSE message in ``text``."""
    messages = []
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        if fields:
            messages.append((fields["event"], json.loads(fields["data"])))
    return messages


def assert_agent_steps(messages: list[tuple[str, dict]], run_id: str) -> None:
    steps = [data for kind, data in messages if kind == "node.step"]
    assert [data["step"] for data in steps] == ["prompt_sent", "tool_call", "tool_result", "answer"]
    assert all(set(data) == {"run_id", "node_id", "step", "detail", "timestamp"} for data in steps)
    assert {(data["run_id"], data["node_id"]) for data in steps} == {(run_id, "agent")}
    assert steps[0]["detail"] == {"round": 1, "prompt": f"key {REDACTED} asks why"}
    assert steps[1]["detail"] == {"tool": "search", "arguments": {"q": "why"}}
    kinds = [(kind, data.get("state") or data.get("step")) for kind, data in messages]
    node_started = kinds.index(("node", "started"))
    node_completed = kinds.index(("node", "completed"))
    first_step = kinds.index(("node.step", "prompt_sent"))
    last_step = kinds.index(("node.step", "answer"))
    assert node_started < first_step < last_step < node_completed
    assert SECRET not in json.dumps(messages)


# -- the streams ---------------------------------------------------------------------------


def test_sse_stream_carries_a_runs_steps_to_its_owner_only(served):
    owner = served.bearer_headers("ann")
    started = served.client.post(
        "/workflows/agent/execute?wait=false", json=parameters(), headers=owner
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    events = served.client.get(f"/runs/{run_id}/events", headers=owner)
    assert events.status_code == 200
    assert_agent_steps(sse_messages(events.text), run_id)
    other = served.client.get(f"/runs/{run_id}/events", headers=served.bearer_headers("bob"))
    assert other.status_code == 404
    foreign = served.bearer_headers("ann", tenant="globex")
    assert served.client.get(f"/runs/{run_id}/events", headers=foreign).status_code == 404


def test_websocket_carries_a_runs_steps(served):
    access = served.access_token("carol")
    started = served.client.post(
        "/workflows/agent/execute?wait=false",
        json=parameters(),
        headers={"Authorization": f"Bearer {access}"},
    )
    run_id = started.json()["run_id"]

    async def session() -> list[dict]:
        url = f"ws://127.0.0.1:{served.port}/ws?token={access}"
        conn = await websocket_connect(HTTPRequest(url, connect_timeout=5))
        conn.write_message(json.dumps({"subscribe": run_id}))
        frames: list[dict] = []
        while (
            not frames
            or frames[-1].get("event") != "run"
            or frames[-1]["data"]["state"] in ("started",)
        ):
            frames.append(json.loads(await asyncio.wait_for(conn.read_message(), 5)))
        conn.close()
        return frames

    frames = served.call(session())
    assert frames[0] == {"subscribed": run_id}
    assert_agent_steps([(f["event"], f["data"]) for f in frames[1:]], run_id)


def test_steps_of_a_process_isolated_run_are_forwarded_to_the_gateway(served):
    owner = served.bearer_headers("dan")
    response = served.client.post(
        "/workflows/agent_isolated/execute", json=parameters(), headers=owner
    )
    assert response.status_code == 200, response.text
    run_id = response.json()["run_id"]
    events = served.client.get(f"/runs/{run_id}/events", headers=owner)
    assert_agent_steps(sse_messages(events.text), run_id)


# -- the replay buffer and the frame -------------------------------------------------------


def test_a_step_frame_names_its_iteration_inside_a_cycle():
    event = NodeStepEvent("r", "agent", "tool_call", 1.0, {"tool": "search"}, 2)
    assert event_frame(event, ErrorView(expose=False)) == (
        "node.step",
        {
            "run_id": "r",
            "node_id": "agent",
            "step": "tool_call",
            "detail": {"tool": "search"},
            "timestamp": 1.0,
            "iteration": 2,
        },
    )


def test_a_chatty_node_cannot_push_node_events_out_of_the_replay():
    hub = RunEventHub(max_events_per_run=8)
    hub.on_event(RunEvent("r", "wf", "started", 1.0))
    hub.on_event(NodeEvent("r", "agent", "started", 2.0))
    for index in range(MAX_STEPS_PER_RUN + 10):
        hub.on_event(NodeStepEvent("r", "agent", "tool_call", 3.0 + index, {"n": index}))
    hub.on_event(NodeEvent("r", "agent", "completed", 1000.0, 1.0))
    live: list = []
    replay, finished = hub.watch("r", live.append)
    assert not finished
    steps = [event for event in replay if isinstance(event, NodeStepEvent)]
    assert len(steps) == MAX_STEPS_PER_RUN and steps[-1].detail == {"n": MAX_STEPS_PER_RUN + 9}
    states = [event.state for event in replay if not isinstance(event, NodeStepEvent)]
    assert states == ["started", "started", "completed"]
    assert replay[1].state == "started" and replay[-1].state == "completed"  # merged by time
    hub.on_event(NodeStepEvent("r", "agent", "answer", 1001.0, {}))
    assert [event.step for event in live] == ["answer"]


# -- the agent-UI middleware ---------------------------------------------------------------


def test_agent_ui_reports_steps_as_node_progress_events(tmp_path):
    agent_ui = AgentUIMiddleware(f"sqlite:///{tmp_path / 'sessions.db'}")

    async def scenario() -> Recorder:
        session = await agent_ui.create_session("acme:alice")
        events = Recorder()
        await agent_ui.subscribe_to_events("watch", events, session_id=session)
        await agent_ui.register_workflow("agent", agent_workflow(), session_id=session)
        execution = await agent_ui.execute(
            session, "agent", inputs={"agent": {"question": "why", "api_key": SECRET}}
        )
        await wait_for_status(agent_ui, execution, session)
        return events

    events = asyncio.run(scenario())
    progress = [event for event in events.events if event.type.value == "node.progress"]
    assert [event.data["step"] for event in progress] == [
        "prompt_sent",
        "tool_call",
        "tool_result",
        "answer",
    ]
    assert {event.node_id for event in progress} == {"agent"}
    assert progress[0].data["detail"]["prompt"] == f"key {REDACTED} asks why"
    assert all(SECRET not in event.to_json() for event in events.events)
