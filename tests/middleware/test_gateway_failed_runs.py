"""A run in which a node failed is a failed run everywhere the gateway reports it: the
HTTP answer (422 ``run_failed`` naming the failed nodes), ``GET /runs/{id}``, the SSE and
WebSocket run events, the stored run, ``/metrics`` and the monitor's failure-rate alert.
Node messages reach callers only for workflows registered with ``expose_errors=True``.
"""

from __future__ import annotations

import json
import time

import pytest
from _clock import Clock
from _gateway_server import ServedGateway
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from kailash_nb import WorkflowBuilder
from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.monitoring import ProductionMonitor
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.store.run_history import RunStore

INTERNAL = "/srv/internal/ledger.db is locked by host db-7"


def fetch_ledger() -> dict:
    """A node that fails with a message naming internal details."""
    raise KeyError(INTERNAL)


def one_node(function, node_id):
    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(function), node_id)
    return builder.build()


def code_workflow(*nodes, edges=()):
    builder = WorkflowBuilder()
    for node_id, code in nodes:
        builder.add_node("PythonCodeNode", node_id, {"code": code})
    for source, target in edges:
        builder.add_connection(source, "result", target, "x")
    return builder.build()


@pytest.fixture(scope="module")
def served(module_sqlite_url, secured_gateway, serve_module_gateway):
    url = module_sqlite_url
    clock = Clock(1000.0)
    monitor = ProductionMonitor(
        alert_rules=[{"metric": "workflow_failure_rate", "threshold": 0.05}],
        clock=clock,
        window_seconds=60,
    )
    gateway = secured_gateway(url, monitoring=monitor)
    gateway.register_workflow("ledger", one_node(fetch_ledger, "fetch"))
    gateway.register_workflow("ledger_open", one_node(fetch_ledger, "fetch"), expose_errors=True)
    gateway.register_workflow(
        "partial",
        code_workflow(("ok", "result = 2"), ("leaf", "result = [][0]"), ("other", "result = 3")),
    )
    gateway.register_workflow(
        "stops",
        code_workflow(("bad", "result = 1 / 0"), ("after", "result = x"), edges=[("bad", "after")]),
    )
    gateway.register_workflow("fine", code_workflow(("ok", "result = 1")))
    gateway.register_workflow("huge", code_workflow(("n", "result = 10 ** 5000")))
    server = serve_module_gateway(gateway)
    server.db_url, server.clock = url, clock
    return server


def recorded(served, run_url, auth):
    """``GET run_url`` once the run's node timeline is recorded.

    The recorder writes in batches from its ticker thread (usually within 0.1 s); on a
    loaded machine that can take seconds, so the wait is generous and ends as soon as the
    timeline is there.
    """
    deadline = time.monotonic() + 30
    while True:
        run = served.client.get(run_url, headers=auth).json()
        if run.get("nodes") or time.monotonic() > deadline:
            return run
        time.sleep(0.02)


def execute(served, name, auth, **params):
    return served.client.post(f"/workflows/{name}/execute", json={}, headers=auth, params=params)


def test_a_failed_leaf_is_a_422_run_failed_naming_the_node_not_its_message(served):
    auth = served.bearer_headers()
    response = execute(served, "ledger", auth)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "run_failed"
    assert body["failed_nodes"] == [{"node_id": "fetch", "error_type": "KeyError"}]
    assert body["node_id"] is None  # no node stopped the run: the failed one had no dependents
    assert body["detail"] == "node 'fetch' (KeyError) failed"
    assert INTERNAL not in response.text
    run = served.client.get(body["run_url"], headers=auth).json()
    assert run["status"] == "failed"
    assert run["error"]["failed_nodes"] == [{"node_id": "fetch", "error_type": "KeyError"}]
    assert run["results"]["fetch"] == {
        "error": "KeyError",
        "error_type": "KeyError",
        "failed": True,
    }
    assert INTERNAL not in json.dumps(run)


def test_an_author_may_expose_node_messages(served):
    auth = served.bearer_headers()
    body = execute(served, "ledger_open", auth).json()
    assert body["status"] == 422 and body["code"] == "run_failed"
    assert body["failed_nodes"] == [
        {"node_id": "fetch", "error_type": "KeyError", "error": repr(INTERNAL)}
    ]
    assert INTERNAL in body["detail"]
    events = served.client.get(f"{body['run_url']}/events", headers=auth).text
    assert INTERNAL in events


def test_partial_results_of_a_failed_run_are_kept(served):
    auth = served.bearer_headers()
    body = execute(served, "partial", auth).json()
    assert body["failed_nodes"] == [{"node_id": "leaf", "error_type": "IndexError"}]
    run = recorded(served, body["run_url"], auth)
    assert run["status"] == "failed"
    assert run["results"]["ok"] == {"result": 2} and run["results"]["other"] == {"result": 3}
    states = {node["node_id"]: node["state"] for node in run["nodes"]}
    assert states == {"ok": "completed", "leaf": "failed", "other": "completed"}
    assert {node["node_id"]: node["error"] for node in run["nodes"]}["leaf"] == "IndexError"


def test_a_failed_node_with_dependents_stops_the_run(served):
    body = execute(served, "stops", served.bearer_headers()).json()
    assert body["code"] == "run_failed" and body["node_id"] == "bad"
    assert body["failed_nodes"] == [{"node_id": "bad", "error_type": "ZeroDivisionError"}]
    assert body["detail"] == "node 'bad' (ZeroDivisionError) failed; the run stopped at 'bad'"


def test_the_sse_run_event_of_a_failed_run_says_failed(served):
    auth = served.bearer_headers()
    body = execute(served, "ledger", auth).json()
    stream = served.client.get(f"{body['run_url']}/events", headers=auth).text
    frames = [json.loads(line[6:]) for line in stream.splitlines() if line.startswith("data: ")]
    assert frames[-1]["state"] == "failed" and frames[-1]["error"] == "the run failed"
    node = [frame for frame in frames if frame["node_id"] == "fetch"][-1]
    assert node["state"] == "failed" and node["error"] == "KeyError"
    assert INTERNAL not in stream


def test_the_websocket_run_event_of_a_failed_run_says_failed(served):
    auth = served.bearer_headers()
    accepted = execute(served, "ledger", auth, wait="false")
    assert accepted.status_code == 202
    run_id = accepted.json()["run_id"]

    async def watch() -> list[dict]:
        request = HTTPRequest(f"ws://127.0.0.1:{served.port}/ws", headers=auth)
        conn = await websocket_connect(request)
        conn.write_message(json.dumps({"subscribe": run_id}))
        frames = []
        while True:
            message = await conn.read_message()
            frame = json.loads(message)
            frames.append(frame)
            if frame.get("event") == "run" and frame["data"]["state"] != "started":
                conn.close()
                return frames

    frames = served.call(watch())
    assert frames[-1]["data"]["state"] == "failed"
    assert INTERNAL not in json.dumps(frames)


def test_the_stored_run_and_metrics_count_failed_runs_under_the_registered_name(served):
    auth = served.bearer_headers()
    run_id = execute(served, "ledger", auth).json()["run_id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        stored = RunStore(served.db_url).get_gateway_run(run_id)
        if stored is not None and stored.status != "running":
            break
        time.sleep(0.05)
    assert stored.status == "failed" and stored.error["failed_nodes"][0]["node_id"] == "fetch"
    assert INTERNAL in stored.error["message"]  # the operator's history keeps the message
    history = RunStore(served.db_url).get_run(run_id)
    assert history.status == "failed"
    metrics = served.client.get("/metrics", headers=served.bearer_headers(roles=("admin",))).text
    assert 'kailash_nb_workflow_runs_total{status="failed",workflow="ledger"}' in metrics
    assert 'workflow="Workflow-' not in metrics


def test_failed_leaf_runs_fire_the_failure_rate_alert(served):
    monitor = served.gateway.monitor
    monitor.evaluate()
    auth = served.bearer_headers()
    for _ in range(8):
        assert execute(served, "fine", auth).status_code == 200
    for _ in range(2):
        assert execute(served, "ledger", auth).status_code == 422
    served.clock.now += 10
    status = {s.name: s for s in monitor.evaluate()}["workflow_failure_rate"]
    assert status.firing and status.value >= 0.2


def test_a_result_json_cannot_hold_is_answered_by_the_documented_rule(served):
    auth = served.bearer_headers()
    response = execute(served, "huge", auth)
    assert response.status_code == 200, response.text
    assert response.json()["results"] == {"n": {"result": "1" + "0" * 5000}}
    fine = execute(served, "fine", auth)
    assert fine.status_code == 200
    run_ids = [response.json()["run_id"], fine.json()["run_id"]]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        stored = [RunStore(served.db_url).get_gateway_run(run_id) for run_id in run_ids]
        if all(run is not None and run.status == "completed" for run in stored):
            break
        time.sleep(0.05)
    assert [run.status for run in stored] == ["completed", "completed"]


def test_a_failed_leaf_in_a_process_isolated_run_is_a_failed_run(tmp_path):
    gateway = create_gateway(database_url=f"sqlite:///{tmp_path / 'isolated.db'}")
    gateway.register_workflow(
        "iso",
        code_workflow(("ok", "result = 5"), ("leaf", "result = {}['gone']")),
        isolation="process",
        process_pool_size=1,
    )
    with ServedGateway(gateway) as server:
        response = server.client.post("/workflows/iso/execute", json={})
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["failed_nodes"] == [{"node_id": "leaf", "error_type": "KeyError"}]
        run = server.client.get(body["run_url"]).json()
        assert run["status"] == "failed" and run["results"]["ok"] == {"result": 5}
