"""A served workflow's log records carry the request's ids: ``request_id`` (the
``X-Request-ID`` sent), ``tenant_id`` and ``user_id`` (the token's) and the run's
``run_id``, on every execution backend, against a real gateway on a loopback port whose
process-isolated runs execute in real worker processes."""

from __future__ import annotations

import json

import httpx
import pytest

from kailash_nb import WorkflowBuilder

# The node logs through an EnterpriseLogger of its own (it may run in another process)
# into the file its config names, and returns the ids it saw.
LOGS = (
    "from kailash_nb.logging import EnterpriseLogger, context_fields\n"
    "with open(log_path, 'a') as stream:\n"
    "    EnterpriseLogger(stream=stream).info('node ran', marker=marker)\n"
    "result = context_fields()"
)

BACKENDS = {
    "inline": ({"run_inline": True}, "InlineBackend"),
    "thread": ({"timeout": 30}, "ThreadBackend"),
    "process": ({"isolation": "process", "process_pool_size": 1}, "ProcessBackend"),
}


def logging_workflow(log_path: str):
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "logs", {"code": LOGS, "log_path": log_path, "marker": ""})
    return builder.build()


@pytest.fixture(scope="module")
def log_file(tmp_path_factory):
    return tmp_path_factory.mktemp("gateway-logs") / "node.jsonl"


@pytest.fixture(scope="module")
def gateways(module_sqlite_url, secured_gateway, serve_module_gateway, log_file):
    """Factory: a served gateway with authentication serving the logging workflow on
    the backends ``names``."""

    def serve(*names: str):
        gateway = secured_gateway(module_sqlite_url, enable_docs=False)
        for name in names:
            gateway.register_workflow(name, logging_workflow(str(log_file)), **BACKENDS[name][0])
        server = serve_module_gateway(gateway)
        if "process" in names:
            assert gateway.runs.backends["process"].pool.wait_ready(30)
        return server

    return serve


@pytest.fixture(scope="module")
def in_process(gateways):
    """The inline and thread backends, in this process."""
    return gateways("inline", "thread")


@pytest.fixture(scope="module")
def isolated(gateways):
    """The process backend: its worker process is started once per module (slow)."""
    return gateways("process")


@pytest.fixture
def served(request):
    """The gateway serving the backend the test is parametrized with (``name``)."""
    return request.getfixturevalue(
        "isolated" if request.node.callspec.params["name"] == "process" else "in_process"
    )


def logged(log_file, marker: str) -> dict:
    (record,) = [
        record
        for record in map(json.loads, log_file.read_text().splitlines())
        if record["marker"] == marker
    ]
    return record


def execute(served, name: str, marker: str, request_id: str, *, wait: bool = True):
    headers = served.bearer_headers("ada", tenant="acme", **{"X-Request-ID": request_id})
    body = {"parameters": {"logs": {"marker": marker}}}
    with httpx.Client(base_url=served.url, timeout=30) as client:
        response = client.post(
            f"/workflows/{name}/execute" + ("" if wait else "?wait=false"),
            json=body,
            headers=headers,
        )
    return response


@pytest.mark.parametrize(
    "name", ["inline", "thread", pytest.param("process", marks=pytest.mark.slow)]
)
def test_a_served_nodes_records_carry_the_request_tenant_user_and_run_ids(served, log_file, name):
    assert type(served.gateway.runs.backends[name]).__name__ == BACKENDS[name][1]
    request_id = f"req-{name}-1"
    response = execute(served, name, f"{name}-waited", request_id)
    assert response.status_code == 200, response.text
    assert response.headers["X-Request-ID"] == request_id
    run_id = response.json()["run_id"]
    ids = {"request_id": request_id, "tenant_id": "acme", "user_id": "ada", "run_id": run_id}
    assert response.json()["results"]["logs"]["result"] == ids
    record = logged(log_file, f"{name}-waited")
    assert {key: record.get(key) for key in ids} == ids


@pytest.mark.parametrize("name", ["thread", pytest.param("process", marks=pytest.mark.slow)])
def test_a_background_run_keeps_the_ids_of_the_request_that_started_it(served, log_file, name):
    request_id = f"req-{name}-background"
    response = execute(served, name, f"{name}-background", request_id, wait=False)
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    with httpx.Client(base_url=served.url, timeout=30) as client:
        headers = served.bearer_headers("ada", tenant="acme")
        for _ in range(200):
            status = client.get(f"/runs/{run_id}", headers=headers).json()["status"]
            if status != "running":
                break
            client.get("/health")  # a round trip, not a sleep, between polls
    assert status == "completed"
    record = logged(log_file, f"{name}-background")
    assert (record["request_id"], record["tenant_id"], record["user_id"], record["run_id"]) == (
        request_id,
        "acme",
        "ada",
        run_id,
    )


def test_requests_do_not_leak_ids_into_each_other(in_process, log_file):
    served = in_process
    first = execute(served, "thread", "leak-1", "req-leak-1")
    headers = served.bearer_headers("bob", tenant="globex", **{"X-Request-ID": "req-leak-2"})
    with httpx.Client(base_url=served.url, timeout=30) as client:
        second = client.post(
            "/workflows/thread/execute",
            json={"parameters": {"logs": {"marker": "leak-2"}}},
            headers=headers,
        )
    assert first.status_code == second.status_code == 200
    record = logged(log_file, "leak-2")
    assert (record["request_id"], record["tenant_id"], record["user_id"]) == (
        "req-leak-2",
        "globex",
        "bob",
    )
    assert record["run_id"] == second.json()["run_id"] != first.json()["run_id"]
