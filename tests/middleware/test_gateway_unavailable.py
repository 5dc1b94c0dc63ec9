"""A run whose node could not reach a store or service it needs
(``ServiceUnavailableError``) is answered 503 ``dependency_unavailable`` with
``Retry-After`` rather than 422: the request was fine and may succeed later. The run is
still recorded ``failed``, and its error says ``unavailable``."""

from __future__ import annotations

import pytest

from kailash_nb import WorkflowBuilder
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.sdk_exceptions import ServiceUnavailableError

PROBLEM_BASE = "https://kailash-nb.dev/problems/"


def reserve_stock() -> int:
    """A node whose inventory database is down."""
    raise ServiceUnavailableError("the inventory database at db-7 does not answer")


def count() -> int:
    """A node that works."""
    return 1


@pytest.fixture(scope="module")
def served(module_sqlite_url, secured_gateway, serve_module_gateway):
    gateway = secured_gateway(module_sqlite_url)
    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(count), "count")
    builder.add_node(PythonCodeNode.from_function(reserve_stock), "reserve")
    gateway.register_workflow("reserve", builder.build())
    return serve_module_gateway(gateway)


def test_an_unavailable_dependency_is_a_503_with_retry_after(served):
    owner = served.bearer_headers("ann")
    response = served.client.post(
        "/workflows/reserve/execute", json={"parameters": {}}, headers=owner
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    problem = response.json()
    assert problem["type"] == PROBLEM_BASE + "dependency_unavailable"
    assert "db-7" not in response.text  # node messages stay private by default
    run = served.client.get(problem["run_url"], headers=owner).json()
    assert run["status"] == "failed"
    assert run["error"]["unavailable"] is True
    assert run["error"]["failed_nodes"] == [
        {"node_id": "reserve", "error_type": "ServiceUnavailableError"}
    ]
