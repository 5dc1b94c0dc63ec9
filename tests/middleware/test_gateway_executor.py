"""How the gateway runs workflows: each request a fresh run on the run threads, the run
indexed only once it started, a bounded run queue answering 503 (LOAD-06), and stop()
draining runs that requests are waiting for."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import httpx
import pytest
from _gateway_server import ServedGateway

from kailash_nb import WorkflowBuilder
from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.runtime.events import RunEvent


def sleeper_workflow():
    builder = WorkflowBuilder()
    builder.add_node(
        "PythonCodeNode",
        "nap",
        {"code": "import time\ntime.sleep(seconds)\nresult = {'slept': seconds}"},
    )
    return builder.build()


@pytest.fixture
def gateway(sqlite_url):
    """A gateway without auth or docs serving the ``nap`` workflow (not started)."""
    gateway = create_gateway(database_url=sqlite_url, enable_docs=False)
    gateway.register_workflow("nap", sleeper_workflow())
    return gateway


def execute(server: ServedGateway, seconds: float) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=15) as client:
        return client.post(
            "/workflows/nap/execute", json={"parameters": {"nap": {"seconds": seconds}}}
        )


def test_each_run_executes_off_the_loop_and_is_indexed(gateway, serve_gateway):
    started: list[str] = []
    gateway.events.subscribe(
        lambda event: (
            started.append(threading.current_thread().name)
            if isinstance(event, RunEvent) and event.state == "started"
            else None
        ),
        nodes=False,
        runs=True,
    )
    server = serve_gateway(gateway)
    response = execute(server, 0)
    assert response.status_code == 200
    run_id = response.json()["run_id"]
    assert server.client.get(f"/runs/{run_id}").json()["status"] == "completed"
    assert started and started[0].startswith("kailash-nb-gateway-run-")


def test_refused_parameters_leave_no_run_behind(gateway, serve_gateway):
    server = serve_gateway(gateway)
    response = server.client.post("/workflows/nap/execute", json={"parameters": {}})
    assert response.status_code == 400
    assert gateway.runs.in_flight == 0
    assert len(gateway.runs.index._entries) == 0


def test_load06_full_run_queue_answers_503_with_retry_after(gateway, serve_gateway):
    """LOAD-06: beyond the threads and the bounded queue, a run is refused at once."""
    gateway.runs.max_workers = 1
    gateway.runs.max_queued = 1
    server = serve_gateway(gateway)
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(execute, server, 0.6) for _ in range(6)]
        answers = [future.result() for future in futures]
    statuses = sorted(response.status_code for response in answers)
    assert statuses.count(200) == 2
    assert statuses.count(503) == 4
    busy = next(response for response in answers if response.status_code == 503)
    assert busy.headers["Retry-After"] == "1"
    assert busy.headers["Content-Type"].startswith("application/problem+json")
    assert busy.json()["code"] == "busy"
    # The queue drains: the next run is accepted again.
    assert execute(server, 0).status_code == 200


def test_stop_drains_a_run_its_request_is_waiting_for(gateway):
    server = ServedGateway(gateway)
    server.__enter__()
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(execute, server, 0.5)
            deadline = time.monotonic() + 5
            while gateway.runs.in_flight == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert gateway.runs.in_flight == 1
            server.call(gateway.stop(timeout=10), timeout=30)
            assert gateway.runs.in_flight == 0
            assert pending.result().status_code == 200
    finally:
        server.__exit__(None, None, None)


def test_straight_line_glue_code_runs_on_the_loop_other_code_on_run_threads(
    sqlite_url, serve_gateway
):
    """Provably quick workflows (no calls, loops or costly operators) skip the thread
    hand-off; anything else, e.g. a call to ``len``, runs on the run threads."""
    gateway = create_gateway(database_url=sqlite_url, enable_docs=False)
    glue = WorkflowBuilder()
    glue.add_node("PythonCodeNode", "total", {"code": "result = {'sum': a + b, 'big': a > b}"})
    calls = WorkflowBuilder()
    calls.add_node("PythonCodeNode", "count", {"code": "result = {'n': len(items)}"})
    glue_workflow, calls_workflow = glue.build(), calls.build()
    gateway.register_workflow("glue", glue_workflow)
    gateway.register_workflow("calls", calls_workflow)
    assert gateway.inline_workflows == {"glue"}
    threads: dict[str, str] = {}

    def remember(event: RunEvent) -> None:
        if event.state == "started":
            threads[event.workflow_name] = threading.current_thread().name

    gateway.events.subscribe(remember, nodes=False, runs=True)
    server = serve_gateway(gateway)
    answer = server.client.post(
        "/workflows/glue/execute", json={"parameters": {"total": {"a": 2, "b": 1}}}
    )
    assert answer.json()["results"]["total"]["result"] == {"sum": 3, "big": True}
    answer = server.client.post(
        "/workflows/calls/execute", json={"parameters": {"count": {"items": [1, 2]}}}
    )
    assert answer.json()["results"]["count"]["result"] == {"n": 2}
    loop_thread = server._thread.name
    assert threads[glue_workflow.name] == loop_thread
    assert threads[calls_workflow.name].startswith("kailash-nb-gateway-run-")


def test_only_runs_that_can_be_watched_publish_node_events(gateway, serve_gateway):
    """A run its request waits for has an id nobody knows before the answer: it
    publishes run events only (its timeline replays the nodes); a ``?wait=false`` run
    can be watched while it runs, so it publishes node events."""
    from kailash_nb.runtime.events import NodeEvent

    node_runs: set[str] = set()
    gateway.events.subscribe(
        lambda event: node_runs.add(event.run_id) if isinstance(event, NodeEvent) else None,
        nodes=True,
        runs=False,
    )
    server = serve_gateway(gateway)
    waited = execute(server, 0).json()["run_id"]
    started = server.client.post(
        "/workflows/nap/execute?wait=false", json={"parameters": {"nap": {"seconds": 0}}}
    ).json()["run_id"]
    deadline = time.monotonic() + 5
    while started not in node_runs and time.monotonic() < deadline:
        time.sleep(0.01)
    replay = server.client.get(f"/runs/{waited}/events").text
    assert waited not in node_runs and started in node_runs
    assert '"state":"started"' in replay.split("event: node", 1)[1]


@pytest.mark.parametrize(("before", "after"), [(700, 10_000), (5_000, 5_000)])
def test_serving_raises_the_default_collection_threshold_only(gateway, before, after):
    """Python's default young-generation threshold (700) is raised while serving; a
    threshold the application chose is left alone."""
    import gc

    saved = gc.get_threshold()
    gc.set_threshold(before, *saved[1:])
    try:
        with ServedGateway(gateway):
            assert gc.get_threshold()[0] == after
    finally:
        gc.set_threshold(*saved)
