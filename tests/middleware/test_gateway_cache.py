"""``create_gateway(cache_enabled=True, cache_ttl=...)``: results of synchronous runs
served from a bounded per-tenant cache (LOAD-05, AUTHZ-09), against a real server."""

from __future__ import annotations

import uuid

import pytest
from _clock import Clock
from _gateway_server import ServedGateway

from kailash_nb import WorkflowBuilder
from kailash_nb.middleware._result_cache import ResultCache
from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.middleware.gateway_errors import GatewayConfigurationError
from kailash_nb.nodes.code import PythonCodeNode

CALLS: list[int] = []


def counted(x: int) -> int:
    """Records each call, returns x + 1."""
    CALLS.append(x)
    return x + 1


def broken(x: int) -> int:
    """Always fails."""
    raise ValueError("broken")


def identity(x: int) -> int:
    """Returns x."""
    return x


def workflow_of(function):
    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(function), "step")
    if function is broken:  # a failing node with a dependent fails the run
        builder.add_node(PythonCodeNode.from_function(identity), "after")
        builder.add_connection("step", "result", "after", "x")
    return builder.build()


def body(x):
    return {"parameters": {"step": {"x": x}}}


@pytest.fixture
def served(sqlite_url, serve_gateway):
    CALLS.clear()
    gateway = create_gateway(cache_enabled=True, cache_ttl=300, database_url=sqlite_url)
    gateway.register_workflow("counted", workflow_of(counted))
    gateway.register_workflow("fresh", workflow_of(counted), cache=False)
    gateway.register_workflow("broken", workflow_of(broken))
    gateway.result_cache = ResultCache(300, clock=Clock(50.0))
    return serve_gateway(gateway)


# -- options ------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [0, -5, float("nan"), float("inf"), "300", True, None])
def test_cache_ttl_must_be_positive_seconds(ttl):
    with pytest.raises(GatewayConfigurationError, match="cache_ttl"):
        create_gateway(cache_enabled=True, cache_ttl=ttl)


def test_cache_enabled_must_be_a_bool():
    with pytest.raises(GatewayConfigurationError, match="cache_enabled"):
        create_gateway(cache_enabled="yes")


def test_cache_keyword_of_register_workflow_is_a_bool():
    gateway = create_gateway(cache_enabled=True)
    with pytest.raises(GatewayConfigurationError, match="cache must be True or False"):
        gateway.register_workflow("w", workflow_of(counted), cache="no")


def test_seed_high_throughput_options_are_honored():
    gateway = create_gateway(
        title="High-Throughput API",
        max_connections=1000,
        connection_pool_size=100,
        enable_compression=True,
        cache_enabled=True,
        cache_ttl=300,
    )
    assert gateway.result_cache is not None and gateway.result_cache.ttl == 300


def test_without_cache_enabled_nothing_is_cached(tmp_path):
    CALLS.clear()
    gateway = create_gateway(database_url=f"sqlite:///{tmp_path / 'plain.db'}")
    gateway.register_workflow("counted", workflow_of(counted))
    assert gateway.result_cache is None
    with ServedGateway(gateway) as server:
        for _ in range(2):
            response = server.client.post("/workflows/counted/execute", json=body(1))
            assert response.status_code == 200 and "x-cache" not in response.headers
    assert CALLS == [1, 1]


# -- hits and misses ------------------------------------------------------------------------


def test_identical_request_is_answered_from_the_cache(served):
    first = served.client.post("/workflows/counted/execute", json=body(3))
    assert first.status_code == 200 and first.headers["x-cache"] == "miss"
    assert "cached" not in first.json()
    second = served.client.post("/workflows/counted/execute", json=body(3))
    assert second.status_code == 200 and second.headers["x-cache"] == "hit"
    assert second.headers["content-type"] == "application/json"
    assert second.json() == {
        "run_id": first.json()["run_id"],
        "status": "completed",
        "results": first.json()["results"],
        "cached": True,
    }
    assert CALLS == [3]
    other = served.client.post("/workflows/counted/execute", json=body(4))
    assert other.headers["x-cache"] == "miss" and CALLS == [3, 4]


def pair(x: int, y: int) -> int:
    """Records each call, returns x - y."""
    CALLS.append(x)
    return x - y


def test_key_is_the_canonical_json_of_the_parameters(served):
    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(pair), "step")
    served.gateway.register_workflow("pair", builder.build())
    first = served.client.post(
        "/workflows/pair/execute",
        content=b'{"parameters": {"step": {"x": 5, "y": 2}}}',
        headers={"Content-Type": "application/json"},
    )
    assert first.json()["results"] == {"step": {"result": 3}}
    reordered = served.client.post(
        "/workflows/pair/execute",
        content=b'{"parameters":{"step":{"y":2,"x":5}}}',
        headers={"Content-Type": "application/json"},
    )
    assert reordered.headers["x-cache"] == "hit" and CALLS == [5]


def test_entries_expire_after_the_ttl(served):
    clock = served.gateway.result_cache._clock
    served.client.post("/workflows/counted/execute", json=body(6))
    clock.now += 299
    assert served.client.post("/workflows/counted/execute", json=body(6)).headers["x-cache"] == (
        "hit"
    )
    clock.now += 2
    assert served.client.post("/workflows/counted/execute", json=body(6)).headers["x-cache"] == (
        "miss"
    )
    assert CALLS == [6, 6]


def test_failed_runs_are_not_cached(served):
    for _ in range(2):
        response = served.client.post("/workflows/broken/execute", json=body(1))
        assert response.status_code == 422
    assert len(served.gateway.result_cache) == 0


def test_opted_out_workflow_always_runs(served):
    for _ in range(2):
        response = served.client.post("/workflows/fresh/execute", json=body(7))
        assert response.status_code == 200 and "x-cache" not in response.headers
    assert CALLS == [7, 7]


def test_wait_false_never_uses_the_cache(served):
    served.client.post("/workflows/counted/execute", json=body(8))
    accepted = served.client.post("/workflows/counted/execute?wait=false", json=body(8))
    assert accepted.status_code == 202 and "x-cache" not in accepted.headers
    served.call(served.gateway.runs.drain(10))
    fresh = served.client.post("/workflows/counted/execute?wait=false", json=body(9))
    assert fresh.status_code == 202
    served.call(served.gateway.runs.drain(10))
    after = served.client.post("/workflows/counted/execute", json=body(9))
    assert after.headers["x-cache"] == "miss"
    assert CALLS == [8, 8, 9, 9]


# -- tenants ----------------------------------------------------------------------------------


def test_authz09_tenants_never_see_each_others_cached_results(security_config, tmp_path):
    CALLS.clear()
    url = f"sqlite:///{tmp_path / 'tenants.db'}"
    config = security_config(max_requests_per_minute=10_000)
    gateway = create_gateway(
        security_config=config, tenant_isolation=True, cache_enabled=True, database_url=url
    )
    gateway.register_workflow("counted", workflow_of(counted))

    def headers(tenant):
        pair = gateway.auth.issue_tokens(
            f"user-{uuid.uuid4().hex[:6]}", tenant_id=tenant, roles=["analyst"]
        )
        return {"Authorization": f"Bearer {pair.access_token}"}

    acme, globex = headers("acme"), headers("globex")
    with ServedGateway(gateway) as server:
        a1 = server.client.post("/workflows/counted/execute", json=body(1), headers=acme)
        b1 = server.client.post("/workflows/counted/execute", json=body(1), headers=globex)
        assert a1.headers["x-cache"] == b1.headers["x-cache"] == "miss"
        assert a1.json()["run_id"] != b1.json()["run_id"]
        a2 = server.client.post("/workflows/counted/execute", json=body(1), headers=acme)
        b2 = server.client.post("/workflows/counted/execute", json=body(1), headers=globex)
        assert a2.headers["x-cache"] == b2.headers["x-cache"] == "hit"
        assert a2.json()["run_id"] == a1.json()["run_id"]
        assert b2.json()["run_id"] == b1.json()["run_id"]
        # The cached run id stays the owner's: another tenant gets 404 for it.
        run_url = f"/runs/{a2.json()['run_id']}"
        assert server.client.get(run_url, headers=acme).status_code == 200
        assert server.client.get(run_url, headers=globex).status_code == 404
    assert CALLS == [1, 1]


# -- bounds (LOAD-05) ---------------------------------------------------------------------------


def test_load05_cache_memory_is_bounded_under_100000_distinct_keys():
    cache = ResultCache(300, max_entries=1000, max_bytes=200_000)
    for index in range(100_000):
        key = cache.key(f"tenant-{index % 7}", "counted", {"step": {"x": index}})
        cache.put(key, f"run-{index}", {"step": {"result": index}})
        assert cache.bytes <= 200_000
    assert len(cache) <= 1000
    newest = cache.key(f"tenant-{99_999 % 7}", "counted", {"step": {"x": 99_999}})
    oldest = cache.key("tenant-0", "counted", {"step": {"x": 0}})
    assert cache.get(newest).run_id == "run-99999" and cache.get(oldest) is None


def test_byte_budget_evicts_least_recently_used_and_refuses_huge_results():
    cache = ResultCache(60, max_bytes=100, max_entry_bytes=60)
    assert not cache.put(b"huge", "r0", "x" * 100)
    cache.put(b"a", "r1", "a" * 40)  # 42 characters of JSON
    cache.put(b"b", "r2", "b" * 40)
    assert cache.get(b"a") is not None  # a is now the most recently used
    cache.put(b"c", "r3", "c" * 40)
    assert cache.get(b"b") is None and cache.get(b"a") and cache.get(b"c")
    assert cache.bytes == 84
