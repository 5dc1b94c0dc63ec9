"""The ``"dask"`` execution backend: a served gateway whose workflows run their nodes on
the session's LocalCluster (two worker processes), against a real gateway on a
loopback port."""

from __future__ import annotations

import time

import httpx
import pytest

pytest.importorskip("distributed")

from kailash_nb import WorkflowBuilder
from kailash_nb.middleware.execution import (
    DASK_ADDRESS_ENV,
    DaskBackend,
    backend_names,
    register_dask_backend,
)
from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.middleware.gateway_errors import GatewayConfigurationError

WHERE = "from distributed import get_worker\nresult = get_worker().address"


def code_workflow(*nodes: tuple[str, str], edges=()):
    builder = WorkflowBuilder()
    for node_id, code in nodes:
        builder.add_node("PythonCodeNode", node_id, {"code": code})
    for source, target in edges:
        builder.add_connection(source, "result", target, "x")
    return builder.build()


@pytest.fixture(scope="module")
def served(module_sqlite_url, serve_module_gateway, dask_client):
    """A gateway with a workflow on the built-in "dask" backend (its address from the
    environment), one on a backend registered for the session's client, and one under
    the gateway-wide default."""
    register_dask_backend(dask_client, name="dask_session")
    monkey = pytest.MonkeyPatch()
    monkey.setenv(DASK_ADDRESS_ENV, dask_client.scheduler.address)
    gateway = create_gateway(
        database_url=module_sqlite_url, enable_docs=False, execution_backend="dask_session"
    )
    gateway.register_workflow("where", code_workflow(("where", WHERE)), backend="dask")
    gateway.register_workflow(
        "stops",
        code_workflow(("bad", "result = 1 / 0"), ("after", "result = x"), edges=[("bad", "after")]),
        backend="dask_session",
    )
    gateway.register_workflow(
        "chain", code_workflow(("a", "result = 20"), ("b", "result = x + 1"), edges=[("a", "b")])
    )
    server = serve_module_gateway(gateway)
    server.gateway = gateway
    yield server
    monkey.undo()


def execute(server, name: str) -> httpx.Response:
    return server.client.post(f"/workflows/{name}/execute", json={})


def test_a_workflow_registered_with_backend_dask_runs_on_the_cluster(served, dask_client):
    response = execute(served, "where")
    assert response.status_code == 200, response.text
    worker = response.json()["results"]["where"]["result"]
    assert worker in dask_client.scheduler_info()["workers"]
    assert isinstance(served.gateway.runs.backends["where"], DaskBackend)


def test_the_gateway_wide_default_backend_applies_and_history_records_the_run(served):
    response = execute(served, "chain")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["results"] == {"a": {"result": 20}, "b": {"result": 21}}
    assert isinstance(served.gateway.runs.backends["chain"], DaskBackend)
    run = recorded(served, f"/runs/{body['run_id']}")
    assert run["status"] == "completed"
    assert sorted((node["node_id"], node["state"]) for node in run["nodes"]) == [
        ("a", "completed"),
        ("b", "completed"),
    ]


def recorded(server, run_url: str) -> dict:
    """``GET run_url`` once the run's node timeline is recorded (the recorder writes
    in batches from its own thread)."""
    deadline = time.monotonic() + 30
    while True:
        run = server.client.get(run_url).json()
        if run.get("nodes") or time.monotonic() > deadline:
            return run
        time.sleep(0.02)


def test_a_node_failing_on_a_worker_is_a_422_naming_its_type(served):
    response = execute(served, "stops")
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["failed_nodes"] == [{"node_id": "bad", "error_type": "ZeroDivisionError"}]
    deadline = time.monotonic() + 30
    while True:
        run = served.client.get(body["run_url"]).json()
        if run.get("status") == "failed" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert run["status"] == "failed"


def test_an_unregistered_backend_is_refused_naming_the_registered_ones(tmp_path):
    gateway = create_gateway(database_url=f"sqlite:///{tmp_path / 'g.db'}", enable_docs=False)
    with pytest.raises(GatewayConfigurationError, match="'dask'") as caught:
        gateway.register_workflow("w", code_workflow(("n", "result = 1")), backend="daks")
    assert "'daks'" in str(caught.value)
    assert "dask" in backend_names()
    with pytest.raises(GatewayConfigurationError, match="no execution backend is registered"):
        create_gateway(execution_backend="nope")


def test_backend_and_process_isolation_are_exclusive(tmp_path):
    gateway = create_gateway(database_url=f"sqlite:///{tmp_path / 'g.db'}", enable_docs=False)
    with pytest.raises(GatewayConfigurationError, match="give one of them"):
        gateway.register_workflow(
            "w", code_workflow(("n", "result = 1")), backend="dask", isolation="process"
        )
