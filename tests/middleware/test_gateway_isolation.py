"""Run deadlines and process isolation for served workflows (WF-10, WF-11), against a
real gateway on a loopback port whose isolated runs execute in real worker processes."""

from __future__ import annotations

import concurrent.futures
import math
import time

import httpx
import pytest
from _gateway_server import ServedGateway

from kailash_nb import WorkflowBuilder
from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.middleware.gateway_errors import GatewayConfigurationError
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.runtime.events import NodeEvent, RunEvent

PROBLEM_BASE = "https://kailash-nb.dev/problems/"


def code_workflow(node_id: str, code: str, **defaults):
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", node_id, {"code": code, **defaults})
    return builder.build()


SPIN = "import os\nwhile forever:\n    pass\nresult = os.getpid()"
HOG = "block = bytearray(2 * 1024 ** 3)\nresult = len(block)"
FLOOD = "result = 'x' * (100 * 1024 * 1024)"
NAP = "import time\ntime.sleep(3)\nresult = 'late'"
CRASH = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\nresult = 'unreachable'"


@pytest.fixture(scope="module")
def served(module_sqlite_url, serve_module_gateway):
    """A gateway serving the runaway workflows, its process pools warm."""
    gateway = create_gateway(database_url=module_sqlite_url, enable_docs=False)
    isolated = {"isolation": "process", "process_pool_size": 1}
    gateway.register_workflow(
        "spin", code_workflow("spin", SPIN, forever=False), timeout=1, **isolated
    )
    gateway.register_workflow("hog", code_workflow("hog", HOG), memory_limit_mb=256, **isolated)
    gateway.register_workflow("flood", code_workflow("flood", FLOOD), **isolated)
    gateway.register_workflow("crash", code_workflow("crash", CRASH), **isolated)
    gateway.register_workflow("nap", code_workflow("nap", NAP), timeout=0.5)
    server = serve_module_gateway(gateway)
    for name in ("spin", "hog", "flood", "crash"):
        assert gateway.runs.backends[name].pool.wait_ready(30), name
    return server


def execute(server: ServedGateway, name: str, parameters=None) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        return client.post(f"/workflows/{name}/execute", json={"parameters": parameters or {}})


def problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == PROBLEM_BASE + code
    return body


def run_status(server: ServedGateway, run_id: str) -> dict:
    return server.client.get(f"/runs/{run_id}").json()


@pytest.mark.slow
def test_wf10_runaway_process_run_is_killed_at_its_deadline(served):
    """WF-10: ``while True: pass`` in a process-isolated run answers 504 about one second
    in, the run's status is ``timeout``, /health stays fast while the worker is killed,
    and the next run is served by a fresh worker."""
    first = execute(served, "spin", {"spin": {"forever": False}})
    assert first.status_code == 200, first.text
    first_pid = first.json()["results"]["spin"]["result"]

    health_times: list[float] = []
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        pending = pool.submit(execute, served, "spin", {"spin": {"forever": True}})
        while not pending.done():
            before = time.monotonic()
            assert served.client.get("/health").status_code == 200
            health_times.append(time.monotonic() - before)
            time.sleep(0.05)
        response = pending.result()
        elapsed = time.monotonic() - started
    body = problem(response, 504, "run_timeout")
    assert 1.0 <= elapsed < 2.5
    assert "timeout of 1.0s" in body["detail"] and "killed" in body["detail"]
    assert len(health_times) >= 5 and max(health_times) < 0.5
    assert run_status(served, body["run_id"])["status"] == "timeout"

    after = execute(served, "spin", {"spin": {"forever": False}})
    assert after.status_code == 200, after.text
    assert after.json()["results"]["spin"]["result"] != first_pid


@pytest.mark.slow
def test_wf10_runaway_background_run_ends_with_status_timeout(served):
    """WF-10 (``?wait=false``): the run is accepted at once and reaches the terminal
    status ``timeout`` when its worker is killed at the deadline."""
    with httpx.Client(base_url=served.url, timeout=30) as client:
        accepted = client.post(
            "/workflows/spin/execute?wait=false",
            json={"parameters": {"spin": {"forever": True}}},
        )
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["run_id"]
    assert run_status(served, run_id)["status"] == "running"
    deadline = time.monotonic() + 5
    while run_status(served, run_id)["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    run = run_status(served, run_id)
    assert run["status"] == "timeout"
    assert "exceeded its timeout of 1.0s" in run["error"]["message"]


def test_worker_that_dies_fails_its_run_and_is_replaced(served):
    """A worker ended by a signal mid-run: the run fails naming how it ended, and the
    replacement worker takes the next run."""
    for _ in range(2):
        body = problem(execute(served, "crash"), 422, "run_failed")
        assert "worker process running the run died" in body["detail"]
        assert "SIGKILL" in body["detail"]
        assert run_status(served, body["run_id"])["status"] == "failed"


@pytest.mark.slow
def test_wf11_allocation_past_the_memory_limit_fails_the_run(served):
    """WF-11: a node allocating 2 GB under memory_limit_mb=256 fails its run with a
    message naming the limit; the gateway and the workflow's pool keep serving."""
    body = problem(execute(served, "hog"), 422, "run_failed")
    assert "ran out of memory" in body["detail"]
    assert "memory_limit_mb=256" in body["detail"]
    assert body["node_id"] == "hog"
    assert run_status(served, body["run_id"])["status"] == "failed"
    assert served.client.get("/health").status_code == 200
    again = problem(execute(served, "hog"), 422, "run_failed")
    assert "memory_limit_mb=256" in again["detail"]


@pytest.mark.slow
def test_wf11_result_past_the_output_cap_fails_the_run(served):
    """WF-11: a node returning 100 MB fails its run naming max_output_bytes (16 MiB by
    default); nothing of the result reaches the caller and the gateway survives."""
    response = execute(served, "flood")
    body = problem(response, 422, "run_failed")
    assert f"max_output_bytes={16 * 1024 * 1024}" in body["detail"]
    assert len(response.content) < 10_000
    assert run_status(served, body["run_id"])["status"] == "failed"
    assert served.client.get("/health").status_code == 200


def test_wf10_thread_run_deadline_answers_504(served):
    """WF-10 (thread runs): ``timeout`` is the engine's workflow_timeout, so the caller
    gets 504 at the deadline (the sleeping thread itself is not killed)."""
    started = time.monotonic()
    body = problem(execute(served, "nap"), 504, "run_timeout")
    assert time.monotonic() - started < 2.0
    assert "workflow_timeout=0.5" in body["detail"]
    assert run_status(served, body["run_id"])["status"] == "timeout"


def test_isolated_run_events_reach_the_gateway_bus(served):
    """A process run's start, node events (forwarded from the worker) and end reach the
    gateway's bus, where the metrics and the run recorder see them."""
    seen: list = []
    with served.gateway.events.subscribe(seen.append, nodes=True, runs=True, timeline=True):
        response = execute(served, "spin", {"spin": {"forever": False}})
    assert response.status_code == 200, response.text
    run_id = response.json()["run_id"]
    runs = [e for e in seen if isinstance(e, RunEvent) and e.run_id == run_id]
    assert [e.state for e in runs] == ["started", "completed"]
    assert [t.node_id for t in runs[-1].timeline] == ["spin"]
    nodes = [e.state for e in seen if isinstance(e, NodeEvent) and e.run_id == run_id]
    assert "started" in nodes and "completed" in nodes
    assert run_status(served, run_id)["status"] == "completed"
    # Every run of this module, killed ones included, has ended on the bus.
    metrics = served.client.get("/metrics").text
    assert "kailash_nb_workflow_runs_in_flight 0.0" in metrics
    assert 'status="completed"' in metrics and 'status="failed"' in metrics


def test_isolated_run_refuses_bad_parameters_before_starting(served):
    """Parameters are checked in the gateway: 400, and no run is recorded."""
    response = execute(served, "spin", {"spin": {"forever": False, "nope": 1}})
    assert response.status_code == 400, response.text


def doubled(x: int) -> int:
    """Twice x."""
    return 2 * x


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"isolation": "fork"}, "isolation must be 'thread' or 'process'"),
        ({"timeout": 0}, "timeout must be a number of seconds"),
        ({"timeout": math.nan}, "timeout must be a number of seconds"),
        ({"timeout": True}, "timeout must be a number of seconds"),
        ({"memory_limit_mb": 512}, "memory_limit_mb applies to isolation='process' only"),
        ({"isolation": "process", "memory_limit_mb": 64}, "memory_limit_mb=64 is below 128"),
        ({"isolation": "process", "max_output_bytes": 0}, "max_output_bytes must be an int"),
        ({"isolation": "process", "process_pool_size": 0}, "process_pool_size must be an int"),
        ({"timeout": 5, "run_inline": True}, "run_inline=True runs on the event loop"),
    ],
)
def test_isolation_options_are_validated(sqlite_url, options, fragment):
    gateway = create_gateway(database_url=sqlite_url)
    workflow = code_workflow("a", "result = 1")
    with pytest.raises(GatewayConfigurationError, match="register_workflow") as caught:
        gateway.register_workflow("a", workflow, **options)
    assert fragment in str(caught.value)
    assert "a" not in gateway.workflows


def test_process_isolation_needs_a_portable_definition(sqlite_url):
    """A function node cannot be sent to a worker: refused at registration."""
    gateway = create_gateway(database_url=sqlite_url)
    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(doubled), "double")
    with pytest.raises(GatewayConfigurationError, match="cannot be sent"):
        gateway.register_workflow("double", builder.build(), isolation="process")
    assert "double" not in gateway.workflows


def test_thread_default_adds_no_policy(sqlite_url):
    """Without isolation keywords nothing changes for the run path (throughput)."""
    gateway = create_gateway(database_url=sqlite_url)
    gateway.register_workflow("quick", code_workflow("a", "result = 1"))
    assert "quick" not in gateway.run_policies


def test_process_workers_start_when_main_has_lost_its_spec(sqlite_url, serve_gateway, monkeypatch):
    """An IPython kernel's ``%reset`` clears ``__main__``'s namespace, ``__spec__``
    included, which starting a process reads: a notebook's served workflows with
    process isolation still get their workers."""
    import sys

    monkeypatch.delattr(sys.modules["__main__"], "__spec__", raising=False)
    gateway = create_gateway(database_url=sqlite_url, enable_docs=False)
    gateway.register_workflow(
        "one", code_workflow("one", "result = 1"), isolation="process", process_pool_size=1
    )
    server = serve_gateway(gateway)
    assert gateway.runs.backends["one"].pool.wait_ready(30)
    response = execute(server, "one")
    assert response.status_code == 200, response.text
    assert response.json()["results"] == {"one": {"result": 1}}
