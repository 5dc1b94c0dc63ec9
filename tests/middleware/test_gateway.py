"""The Tornado gateway against a real server on a free 127.0.0.1 port: routes, auth
(AUTH-01..03, 07, 11, 12, 13), input limits (GW-01, 04..12, 30), overrides, problem+json."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid

import httpx
import jwt
import pytest
from _gateway_server import ServedGateway

from kailash_nb import WorkflowBuilder
from kailash_nb.middleware.gateway import Gateway, create_gateway
from kailash_nb.middleware.gateway_errors import GatewayConfigurationError
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.security import TokenService

AUDIENCE = "kailash-api"
PASSWORD = "correct horse battery staple"
PROBLEM_BASE = "https://kailash-nb.dev/problems/"


def double(x: int) -> int:
    """Twice x."""
    return x * 2


def double_workflow():
    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(double), "double")
    return builder.build()


@pytest.fixture(scope="module")
def config(security_config):
    """Factory: this module's ``SecurityConfig`` (an audience, 10k requests a minute)."""

    def make(**overrides):
        return security_config(
            **{"audience": AUDIENCE, "max_requests_per_minute": 10_000, **overrides}
        )

    return make


@pytest.fixture(scope="module")
def dbl_gateway(config, secured_gateway):
    """Factory: ``dbl_gateway(url, **security)``, a secured gateway serving ``dbl``."""

    def make(url: str, **security) -> Gateway:
        gateway = secured_gateway(url, config(**security), title="Test gateway")
        gateway.register_workflow("dbl", double_workflow(), description="doubles x")
        return gateway

    return make


@pytest.fixture(scope="module")
def served(module_sqlite_url, dbl_gateway, serve_module_gateway):
    server = serve_module_gateway(dbl_gateway(module_sqlite_url))
    server.db_url = module_sqlite_url
    return server


def assert_problem(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == PROBLEM_BASE + code
    assert body["status"] == status and body["code"] == code
    assert body["title"] and body["detail"] and len(body["error_id"]) == 32
    assert "Traceback" not in response.text
    return body


# -- import paths and create_gateway -----------------------------------------------


def test_seed_import_path_is_the_gateway_factory():
    from kailash_nb.api.middleware import create_gateway as seed_create_gateway
    from kailash_nb.middleware import create_gateway as package_create_gateway

    assert seed_create_gateway is create_gateway is package_create_gateway


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError):
        create_gateway(enable_magic=True)


def test_tenant_isolation_needs_security():
    with pytest.raises(GatewayConfigurationError, match="security_config"):
        create_gateway(tenant_isolation=True)


@pytest.mark.parametrize("name", ["../etc", "a" * 65, "", "caf\u00e9", "a b", "x\x00"])
def test_register_refuses_bad_names(name):
    gateway = create_gateway()
    with pytest.raises(GatewayConfigurationError, match="must match"):
        gateway.register_workflow(name, double_workflow())


def test_register_refuses_duplicates_and_non_workflows():
    gateway = create_gateway()
    gateway.register_workflow("dbl", double_workflow())
    with pytest.raises(GatewayConfigurationError, match="already registered"):
        gateway.register_workflow("dbl", double_workflow())
    with pytest.raises(GatewayConfigurationError, match="built Workflow"):
        gateway.register_workflow("other", WorkflowBuilder())


# -- open mode ----------------------------------------------------------------------


def test_open_gateway_refuses_public_address(tmp_path, caplog):
    gateway = create_gateway(database_url=f"sqlite:///{tmp_path / 'open.db'}")
    server = ServedGateway(gateway, host="0.0.0.0")
    with pytest.raises(GatewayConfigurationError, match="security_config=SecurityConfig"):
        server.__enter__()
    server.loop.call_soon_threadsafe(server.loop.stop)


def test_open_gateway_on_loopback_serves_anonymously_with_a_warning(tmp_path, caplog):
    gateway = create_gateway(database_url=f"sqlite:///{tmp_path / 'open.db'}")
    gateway.register_workflow("dbl", double_workflow())
    with caplog.at_level("WARNING"), ServedGateway(gateway) as server:
        assert "WITHOUT authentication" in caplog.text
        assert server.client.get("/workflows").status_code == 200
        response = server.client.post(
            "/workflows/dbl/execute", json={"parameters": {"double": {"x": 5}}}
        )
        assert response.json()["results"] == {"double": {"result": 10}}


# -- service routes -----------------------------------------------------------------


def test_health_and_ready(served):
    assert served.client.get("/health").json() == {"status": "ok"}
    assert served.client.get("/ready").json() == {"status": "ready"}


def test_ready_is_503_when_the_store_is_unreachable(served):
    class Unreachable:
        class engine:
            @staticmethod
            def connect():
                raise OSError("database down")

    real, served.gateway.run_store = served.gateway.run_store, Unreachable()
    try:
        body = assert_problem(served.client.get("/ready"), 503, "store_unreachable")
    finally:
        served.gateway.run_store = real
    assert "database down" not in json.dumps(body)


def test_metrics_count_requests_and_runs(served):
    headers = served.bearer_headers()
    served.client.post(
        "/workflows/dbl/execute", json={"parameters": {"double": {"x": 1}}}, headers=headers
    )
    assert_problem(served.client.get("/metrics"), 401, "unauthorized")  # protected by default
    response = served.client.get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'kailash_nb_http_requests_total{method="POST",route="/workflows/{name}/execute",status="200"}'
        in text
    )
    assert "kailash_nb_http_request_duration_seconds_bucket" in text
    runs = r'kailash_nb_workflow_runs_total\{status="completed",workflow="[^"]+"\} [1-9]'
    assert re.search(runs, text)
    assert "kailash_nb_workflow_runs_in_flight 0.0" in text


def test_openapi_and_docs(served):
    document = served.client.get("/openapi.json").json()
    assert document["info"]["title"] == "Test gateway"
    assert "/workflows/dbl/execute" in document["paths"]
    page = served.client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


# -- workflows ----------------------------------------------------------------------


def test_list_and_describe(served):
    headers = served.bearer_headers()
    listing = served.client.get("/workflows", headers=headers).json()
    assert listing == {
        "workflows": [{"name": "dbl", "description": "doubles x", "url": "/workflows/dbl"}]
    }
    info = served.client.get("/workflows/dbl", headers=headers).json()
    assert info["name"] == "dbl" and info["nodes"] == [{"id": "double", "type": "PythonCodeNode"}]
    assert "input_schema" in info and "output_schema" in info


@pytest.mark.parametrize(
    "path", ["/workflows/nope", "/workflows/..%2F..%2Fetc%2Fpasswd", "/workflows/%2e%2e"]
)
def test_unknown_or_hostile_workflow_names_are_404(served, path):
    """GW-10: traversal-looking or unknown workflow names answer 404."""
    response = served.client.get(path, headers=served.bearer_headers())
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


def test_execute_waits_and_returns_results(served):
    response = served.client.post(
        "/workflows/dbl/execute",
        json={"parameters": {"double": {"x": 21}}},
        headers=served.bearer_headers(),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["results"] == {"double": {"result": 42}}
    uuid.UUID(body["run_id"])


def test_each_request_is_its_own_run(served):
    headers = served.bearer_headers()
    ids = {
        served.client.post(
            "/workflows/dbl/execute", json={"parameters": {"double": {"x": x}}}, headers=headers
        ).json()["run_id"]
        for x in range(3)
    }
    assert len(ids) == 3


def test_execute_without_wait_then_read_the_run(served):
    headers = served.bearer_headers(tenant="acme")
    response = served.client.post(
        "/workflows/dbl/execute?wait=false",
        json={"parameters": {"double": {"x": 4}}},
        headers=headers,
    )
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "running"
    assert accepted["run_url"] == f"/runs/{accepted['run_id']}" == response.headers["Location"]
    served.call(served.gateway.runs.drain(10))
    run = served.client.get(accepted["run_url"], headers=headers).json()
    assert run["status"] == "completed" and run["results"] == {"double": {"result": 8}}
    assert run["workflow"] == "dbl"


def test_runs_of_another_tenant_are_404(served):
    response = served.client.post(
        "/workflows/dbl/execute",
        json={"parameters": {"double": {"x": 1}}},
        headers=served.bearer_headers(),
    )
    run_url = f"/runs/{response.json()['run_id']}"
    other = assert_problem(
        served.client.get(run_url, headers=served.bearer_headers(tenant="globex")),
        404,
        "run_not_found",
    )
    unknown = assert_problem(
        served.client.get(f"/runs/{uuid.uuid4()}", headers=served.bearer_headers()),
        404,
        "run_not_found",
    )
    assert other["detail"] == unknown["detail"]


def test_missing_required_input_is_400(served):
    response = served.client.post("/workflows/dbl/execute", headers=served.bearer_headers())
    assert_problem(response, 400, "invalid_parameters")


def test_code_override_is_403_unless_admin(served):
    body = {"parameters": {"double": {"x": 1, "code": "import os"}}}
    assert_problem(
        served.client.post("/workflows/dbl/execute", json=body, headers=served.bearer_headers()),
        403,
        "override_forbidden",
    )
    top_level = {"parameters": {"url": "http://169.254.169.254/"}}
    assert_problem(
        served.client.post(
            "/workflows/dbl/execute", json=top_level, headers=served.bearer_headers()
        ),
        403,
        "override_forbidden",
    )
    admin = served.client.post(
        "/workflows/dbl/execute", json=body, headers=served.bearer_headers(roles=("admin",))
    )
    assert admin.status_code != 403


def test_inputs_not_settable_by_callers_are_400(served):
    body = {"parameters": {"double": {"x": 1, "__class__": 1}}}
    response = served.client.post(
        "/workflows/dbl/execute", json=body, headers=served.bearer_headers()
    )
    assert_problem(response, 400, "parameter_not_settable")


def test_unknown_body_fields_and_bad_wait_are_400(served):
    headers = served.bearer_headers()
    assert_problem(
        served.client.post("/workflows/dbl/execute", json={"params": {}}, headers=headers),
        400,
        "unknown_field",
    )
    assert_problem(
        served.client.post("/workflows/dbl/execute?wait=maybe", json={}, headers=headers),
        400,
        "invalid_query",
    )


# -- authentication -----------------------------------------------------------------


def test_no_token_is_401_with_challenge(served):
    response = served.client.get("/workflows")
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def raw_request(port: int, head: str) -> str:
    """Send a hand-written request head (what httpx refuses to send) and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head.encode("latin-1"))
        return connection.recv(65536).decode("latin-1")


def test_bearer_with_empty_token_is_401(served):
    answer = raw_request(
        served.port, "GET /workflows HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \r\n\r\n"
    )
    assert answer.startswith("HTTP/1.1 401"), answer[:200]
    assert "www-authenticate: bearer" in answer.lower()


@pytest.mark.parametrize("value", ["Bearer", "Basic dXNlcjpwYXNz", "Bearer a.b.c"])
def test_empty_or_garbage_authorization_is_401(served, value):
    response = served.client.get("/workflows", headers={"Authorization": value})
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_two_authorization_headers_are_400(served):
    token = served.bearer_headers()["Authorization"]
    response = served.client.get(
        "/workflows", headers=[("Authorization", token), ("Authorization", token)]
    )
    assert_problem(response, 400, "duplicate_authorization")


def _unauthorized_with(served, token):
    response = served.client.get("/workflows", headers={"Authorization": f"Bearer {token}"})
    body = assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return body


def test_bad_signature_is_401(config, served, tmp_path):
    other = TokenService(
        config(jwt_secret="another-secret-that-is-long-enough-0123456789"),
        f"sqlite:///{tmp_path / 'o.db'}",
    )
    _unauthorized_with(
        served, other.issue("mallory", tenant_id="acme", roles=["admin"]).access_token
    )


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_401(served, alg):
    real = served.bearer_headers(roles=("admin",))["Authorization"].split()[1]
    claims = jwt.decode(real, options={"verify_signature": False})
    header = jwt.get_unverified_header(real)
    encode = lambda part: jwt.utils.base64url_encode(json.dumps(part).encode()).decode()  # noqa: E731
    forged = f"{encode({**header, 'alg': alg})}.{encode(claims)}."
    _unauthorized_with(served, forged)


def test_expired_token_is_401(config, served, tmp_path):
    past = TokenService(
        config(), f"sqlite:///{tmp_path / 'p.db'}", clock=lambda: time.time() - 3600
    )
    _unauthorized_with(served, past.issue("alice", tenant_id="acme", roles=[]).access_token)


def test_wrong_audience_is_401(config, served, tmp_path):
    other = TokenService(config(audience="another-api"), f"sqlite:///{tmp_path / 'a.db'}")
    _unauthorized_with(served, other.issue("alice", tenant_id="acme", roles=[]).access_token)


def test_refresh_token_as_bearer_is_401(served):
    pair = served.gateway.auth.issue_tokens("alice", tenant_id="acme", roles=[])
    _unauthorized_with(served, pair.refresh_token)


def test_uniform_401_bodies(config, served, tmp_path):
    past = TokenService(
        config(), f"sqlite:///{tmp_path / 'p.db'}", clock=lambda: time.time() - 3600
    )
    expired = _unauthorized_with(served, past.issue("a", tenant_id="acme", roles=[]).access_token)
    garbage = _unauthorized_with(served, "x.y.z")
    assert expired["detail"] == garbage["detail"]


def test_tenant_header_cannot_switch_tenant(config, tmp_path):
    url = f"sqlite:///{tmp_path / 'ti.db'}"
    gateway = create_gateway(security_config=config(), tenant_isolation=True, database_url=url)
    with ServedGateway(gateway) as server:
        headers = server.bearer_headers(tenant="acme")
        assert server.client.get("/workflows", headers=headers).status_code == 200
        same = server.client.get("/workflows", headers={**headers, "X-Tenant-ID": "acme"})
        assert same.status_code == 200
        other = server.client.get("/workflows", headers={**headers, "X-Tenant-ID": "globex"})
        assert_problem(other, 403, "tenant_mismatch")


def test_password_login_and_refresh_rotation(served):
    username = f"alice-{uuid.uuid4().hex[:8]}"
    served.gateway.auth.add_user(username, PASSWORD, tenant_id="acme", roles=["analyst"])
    wrong = served.client.post("/auth/token", json={"username": username, "password": "nope" * 4})
    assert_problem(wrong, 401, "invalid_credentials")
    pair = served.client.post("/auth/token", json={"username": username, "password": PASSWORD})
    assert pair.status_code == 200
    tokens = pair.json()
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"]
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert served.client.get("/workflows", headers=headers).status_code == 200

    rotated = served.client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200 and rotated.json()["access_token"] != tokens["access_token"]
    reused = served.client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert_problem(reused, 401, "invalid_refresh_token")
    as_refresh = served.client.post("/auth/refresh", json={"refresh_token": tokens["access_token"]})
    assert_problem(as_refresh, 401, "invalid_refresh_token")


# -- input limits -------------------------------------------------------------------


def test_content_length_over_limit_is_413_before_the_body(served):
    """GW-01: a Content-Length above 1 MiB answers 413 before the body is read."""
    token = served.bearer_headers()["Authorization"]
    answer = raw_request(
        served.port,
        "POST /workflows/dbl/execute HTTP/1.1\r\nHost: test\r\n"
        f"Authorization: {token}\r\nContent-Type: application/json\r\n"
        "Content-Length: 10485760\r\n\r\n",
    )
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "application/problem+json" in answer


def test_wrong_content_type_is_415(served):
    """GW-11: a body that is not application/json answers 415."""
    response = served.client.post(
        "/workflows/dbl/execute",
        content=b'{"parameters": {}}',
        headers={**served.bearer_headers(), "Content-Type": "text/plain"},
    )
    assert_problem(response, 415, "unsupported_media_type")


def test_unserved_method_is_405_with_allow(served):
    """GW-12: an unserved method answers 405 with ``Allow``."""
    response = served.client.put("/workflows/dbl/execute", headers=served.bearer_headers())
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST, OPTIONS"  # OPTIONS is served everywhere
    assert served.client.delete("/health").headers["Allow"] == "GET, HEAD, OPTIONS"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "json_too_deep"),
        (b'{"parameters": ' + b'{"a": ' * 70 + b"1" + b"}" * 71, "json_too_deep"),
        (b'{"parameters": {"double": {"x": 1}', "json_invalid"),
        (b'{"parameters": {"double": {"x": NaN}}}', "json_invalid_number"),
        (b'{"parameters": {"double": {"x": 1e999999}}}', "json_invalid_number"),
        (b'{"parameters": {"double": {"x": ' + b"9" * 100_000 + b"}}}", "json_invalid_number"),
        (b'{"parameters": {}, "parameters": {}}', "json_duplicate_key"),
        (b'{"parameters": {"double": {"x": "\\ud800"}}}', "json_invalid_utf8"),
        (b'{"parameters": "\xff"}', "json_invalid_utf8"),
        (
            json.dumps({"parameters": {f"k{i}": 1 for i in range(10_001)}}).encode(),
            "json_too_many_keys",
        ),
        (b"[1, 2]", "body_not_object"),
    ],
)
def test_hostile_json_is_400_with_stable_codes(served, body, code):
    """GW-04..GW-09: hostile JSON bodies answer 400 with stable codes."""
    response = served.client.post(
        "/workflows/dbl/execute",
        content=body,
        headers={**served.bearer_headers(), "Content-Type": "application/json"},
    )
    assert_problem(response, 400, code)


def test_internal_errors_are_500_without_trace_or_secret(served, monkeypatch, caplog):
    """GW-30: an unhandled error is a 500 with an error id; the secret only in the log."""

    def explode(run_id, tenant_id):
        raise RuntimeError("secret-connection-string-xyz")

    monkeypatch.setattr(served.gateway.runs.index, "get", explode)
    with caplog.at_level("ERROR"):
        response = served.client.get(f"/runs/{uuid.uuid4()}", headers=served.bearer_headers())
    body = assert_problem(response, 500, "internal_error")
    assert "secret-connection-string-xyz" not in response.text
    assert body["error_id"] in caplog.text and "secret-connection-string-xyz" in caplog.text


def test_unknown_path_is_a_problem_404(served):
    assert_problem(served.client.get("/no/such/route"), 404, "not_found")


# -- rate limiting and draining -----------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(dbl_gateway, tmp_path):
    gateway = dbl_gateway(f"sqlite:///{tmp_path / 'rl.db'}", max_requests_per_minute=3)
    with ServedGateway(gateway) as server:
        headers = server.bearer_headers()
        statuses = [server.client.get("/workflows", headers=headers).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = server.client.get("/workflows", headers=headers)
        assert_problem(refused, 429, "rate_limited")
        assert int(refused.headers["Retry-After"]) >= 1
        # Another identity has its own budget.
        assert server.client.get("/workflows", headers=server.bearer_headers()).status_code == 200


def test_stop_drains_in_flight_runs(dbl_gateway, tmp_path):
    import concurrent.futures
    import threading

    release = threading.Event()

    def wait_for_release(x: int) -> int:
        """Block until the test releases the run."""
        release.wait(10)
        return x

    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(wait_for_release), "hold")
    gateway = dbl_gateway(f"sqlite:///{tmp_path / 'drain.db'}")
    gateway.register_workflow("hold", builder.build())
    server = ServedGateway(gateway).__enter__()
    try:
        headers = server.bearer_headers()
        accepted = server.client.post(
            "/workflows/hold/execute?wait=false",
            json={"parameters": {"hold": {"x": 7}}},
            headers=headers,
        ).json()
        stopping = server.submit(gateway.stop(timeout=10))
        done, _ = concurrent.futures.wait([stopping], timeout=0.3)
        assert not done  # still draining the held run
        release.set()
        stopping.result(10)
        entry = gateway.runs.index.get(accepted["run_id"], "acme")
        assert entry.status == "completed" and entry.results == {"hold": {"result": 7}}
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/health", timeout=2)
    finally:
        release.set()
        server.loop.call_soon_threadsafe(server.loop.stop)


# -- run_inline ---------------------------------------------------------------------


THREADS: list[str] = []


def where(x: int) -> int:
    """``x``, noting the thread the node ran in."""
    import threading

    THREADS.append(threading.current_thread().name)
    return x


def fail(x: int) -> int:
    """Always fails."""
    raise ValueError("no")


def test_run_inline_runs_on_the_loop_with_the_same_contract(tmp_path):
    gateway = create_gateway(database_url=f"sqlite:///{tmp_path / 'inline.db'}")
    for name, function, inline in (
        ("pooled", where, False),
        ("inline", where, True),
        ("failing", fail, True),
    ):
        builder = WorkflowBuilder()
        builder.add_node(PythonCodeNode.from_function(function), "node")
        builder.add_node(PythonCodeNode.from_function(double), "after")
        builder.add_connection("node", "result", "after", "x")
        gateway.register_workflow(name, builder.build(), run_inline=inline)
    assert gateway.inline_workflows == {"inline", "failing"}
    with ServedGateway(gateway) as server:
        loop_thread = server._thread.name
        body = {"parameters": {"node": {"x": 4}}}
        THREADS.clear()
        pooled = server.client.post("/workflows/pooled/execute", json=body).json()
        inline = server.client.post("/workflows/inline/execute", json=body).json()
        assert pooled["status"] == inline["status"] == "completed", (pooled, inline)
        assert inline["results"] == pooled["results"]
        assert inline["results"]["after"] == {"result": 8}
        assert THREADS[0] != loop_thread and THREADS[1] == loop_thread
        assert_problem(server.client.post("/workflows/inline/execute"), 400, "invalid_parameters")
        failed = server.client.post("/workflows/failing/execute", json=body)
        assert_problem(failed, 422, "run_failed")
        accepted = server.client.post("/workflows/inline/execute?wait=false", json=body)
        assert accepted.status_code == 202


def test_run_inline_refused_for_workflows_that_are_not_sequential_code_nodes():
    gateway = create_gateway()
    timed = WorkflowBuilder()
    timed.add_node(PythonCodeNode.from_function(double), "double")
    timed.set_node_options("double", timeout=5)
    with pytest.raises(GatewayConfigurationError, match="run_inline"):
        gateway.register_workflow("timed", timed.build(), run_inline=True)
    with pytest.raises(GatewayConfigurationError, match="run_inline"):
        gateway.register_workflow("flag", double_workflow(), run_inline="yes")
    assert gateway.workflows == {} and gateway.inline_workflows == set()


# -- run ownership and stored runs --------------------------------------------------


def test_runs_and_their_events_share_one_ownership_rule(served):
    """Owner or an admin of the owner's tenant; another subject or tenant is 404."""
    owner = served.bearer_headers(subject="owner-1")
    run_id = served.client.post(
        "/workflows/dbl/execute", json={"parameters": {"double": {"x": 3}}}, headers=owner
    ).json()["run_id"]
    callers = {
        "owner": (owner, 200),
        "same tenant, other subject": (served.bearer_headers(subject="owner-2"), 404),
        "tenant admin": (served.bearer_headers(subject="boss", roles=("admin",)), 200),
        "admin of another tenant": (served.bearer_headers(tenant="globex", roles=("admin",)), 404),
    }
    for who, (headers, status) in callers.items():
        for path in (f"/runs/{run_id}", f"/runs/{run_id}/events"):
            response = served.client.get(path, headers=headers)
            assert response.status_code == status, (who, path, response.text)
            if status == 404:
                assert_problem(response, 404, "run_not_found")


def big(n: int) -> str:
    """A string of n characters."""
    return "x" * n


def test_runs_survive_a_restart_with_large_results_marked(dbl_gateway, tmp_path):
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    gateway = dbl_gateway(url)
    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(big), "big")
    gateway.register_workflow("big", builder.build())
    with ServedGateway(gateway) as server:
        headers = server.bearer_headers(subject="keeper")
        small = server.client.post(
            "/workflows/dbl/execute", json={"parameters": {"double": {"x": 5}}}, headers=headers
        ).json()["run_id"]
        large = server.client.post(
            "/workflows/big/execute", json={"parameters": {"big": {"n": 300_000}}}, headers=headers
        ).json()["run_id"]
        assert (
            len(
                server.client.get(f"/runs/{large}", headers=headers).json()["results"]["big"][
                    "result"
                ]
            )
            == 300_000
        )
    with ServedGateway(dbl_gateway(url)) as server:
        assert not server.gateway.runs.index.get(small, "acme")  # read from the store
        headers = server.bearer_headers(subject="keeper")
        run = server.client.get(f"/runs/{small}", headers=headers).json()
        assert run["status"] == "completed" and run["results"] == {"double": {"result": 10}}
        assert run["nodes"][0]["node_id"] == "double" and run["duration"] > 0
        stored = server.client.get(f"/runs/{large}", headers=headers).json()
        assert stored["status"] == "completed" and stored["results"] is None
        assert stored["results_truncated"] is True and stored["results_size"] > 256 * 1024
        events = server.client.get(f"/runs/{small}/events", headers=headers).text
        assert events.count("event: node") == 2 and events.count("event: run") == 1
        other = server.bearer_headers(subject="someone-else")
        assert_problem(server.client.get(f"/runs/{small}", headers=other), 404, "run_not_found")
