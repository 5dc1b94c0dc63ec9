"""The gateway answers what its OpenAPI document says, over a real served gateway.

Strict inputs (query parameters, bodies, workflow parameters against the published
schema), HEAD/OPTIONS/405 with ``Allow`` on every route, problem+json with
``X-Request-ID`` on every error path (``/ws`` included), no ``Server`` banner, valid
``instance`` URI references, ``/metrics`` protection as documented, and the body limit
however a body is chunked (GW-02).
"""

from __future__ import annotations

import json
import re
import socket

import pytest
from _contract_app import double, shift
from _gateway_server import ServedGateway

from kailash_nb import WorkflowBuilder
from kailash_nb.middleware._problems import MAX_INSTANCE_CHARS, instance_of
from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.middleware.gateway_errors import GatewayConfigurationError
from kailash_nb.middleware.openapi import openapi_document
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.run_status import RUN_STATUSES

PROBLEM_JSON = "application/problem+json"
# RFC 3986 URI reference characters (a percent sign only as part of an escape).
URI_REFERENCE = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?#\[\]]|%[0-9A-Fa-f]{2})*")


@pytest.fixture(scope="module")
def build(security_config):
    """Factory: ``build(url, **options)``, a gateway serving ``typed`` and ``code``."""

    def make(url: str, **options):
        gateway = create_gateway(security_config=security_config(), database_url=url, **options)
        typed = WorkflowBuilder()
        typed.add_node(PythonCodeNode.from_function(shift), "shift")
        typed.add_node(PythonCodeNode.from_function(double), "double")
        gateway.register_workflow("typed", typed.build())
        code = WorkflowBuilder()
        code.add_node("PythonCodeNode", "compute", {"code": "result = [a, b]", "b": 3})
        gateway.register_workflow("code", code.build())
        return gateway

    return make


@pytest.fixture(scope="module")
def served(module_sqlite_url, build, serve_module_gateway):
    return serve_module_gateway(build(module_sqlite_url))


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,128}", response.headers["x-request-id"])
    assert "server" not in response.headers
    body = response.json()
    assert body["code"] == code and body["status"] == status
    return body


def raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# -- query parameters --------------------------------------------------------------------


def test_limit_with_a_superscript_three_is_400(served):
    """``?limit=%C2%B3`` (``³``, which ``str.isdigit`` accepts) is a 400, not a 500."""
    response = served.client.get("/sessions?limit=%C2%B3", headers=served.bearer_headers())
    assert problem(response, 400, "invalid_query")["parameter"] == "limit"


@pytest.mark.parametrize(
    "value", ["%D9%A3", "+5", "%2B5", "%205", "5%20", "-1", "0", "1001", "1e2", "0x10", ""]
)
def test_limit_takes_ascii_digits_in_range_only(served, value):
    """Arabic-Indic digits, signs, spaces, exponents and out-of-range values are 400."""
    problem(
        served.client.get(f"/sessions?limit={value}", headers=served.bearer_headers()),
        400,
        "invalid_query",
    )


def test_limit_given_twice_is_400_and_unknown_parameters_are_ignored(served):
    headers = served.bearer_headers()
    problem(served.client.get("/sessions?limit=1&limit=2", headers=headers), 400, "invalid_query")
    assert served.client.get("/sessions?limit=7&other=x", headers=headers).status_code == 200


@pytest.mark.parametrize("value", ["1", "0", "True", "yes", ""])
def test_wait_is_exactly_true_or_false(served, value):
    body = {"parameters": {"double": {"n": 1}, "point": {"x": 1}}}
    response = served.client.post(
        f"/workflows/typed/execute?wait={value}", json=body, headers=served.bearer_headers()
    )
    problem(response, 400, "invalid_query")


# -- workflow parameters against the published schema -----------------------------------


@pytest.mark.parametrize(
    ("parameters", "path", "expected"),
    [
        ({"double": {"n": "abc"}, "point": {"x": 1}}, "parameters.double.n", "integer"),
        ({"double": {"n": "5"}, "point": {"x": 1}}, "parameters.double.n", "integer"),
        ({"double": {"n": True}, "point": {"x": 1}}, "parameters.double.n", "integer"),
        ({"double": {"n": 1.5}, "point": {"x": 1}}, "parameters.double.n", "integer"),
        ({"double": {"n": 1}, "point": {"x": "1"}}, "parameters.point.x", "integer"),
        ({"double": {"n": 1}, "point": []}, "parameters.point", "object"),
    ],
)
def test_wrong_typed_inputs_are_400_naming_the_path_and_type(served, parameters, path, expected):
    response = served.client.post(
        "/workflows/typed/execute", json={"parameters": parameters}, headers=served.bearer_headers()
    )
    detail = problem(response, 400, "invalid_parameters")["detail"]
    assert f"{path}: expected {expected}" in detail


def test_an_integral_number_is_an_integer_as_the_schema_says(served):
    body = {"parameters": {"double": {"n": 2.0}, "point": {"x": 1}}}
    response = served.client.post(
        "/workflows/typed/execute", json=body, headers=served.bearer_headers()
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"]["double"] == {"result": 4}


def test_unknown_key_inside_a_node_object_is_400(served):
    body = {"parameters": {"double": {"n": 1, "m": 2}, "point": {"x": 1}}}
    response = served.client.post(
        "/workflows/typed/execute", json=body, headers=served.bearer_headers()
    )
    assert "parameters['double']['m']" in problem(response, 400, "parameter_not_settable")["detail"]
    admin = served.client.post(
        "/workflows/typed/execute", json=body, headers=served.bearer_headers(roles=["admin"])
    )
    problem(admin, 400, "parameter_not_settable")


def test_a_missing_input_names_both_places_it_may_come_from(served):
    missing = served.client.post(
        "/workflows/typed/execute",
        json={"parameters": {"double": {"n": 1}}},
        headers=served.bearer_headers(),
    )
    detail = problem(missing, 400, "invalid_parameters")["detail"]
    assert "parameters.point: required or parameters.shift: required" in detail


def test_admin_may_override_code_but_the_rest_is_checked(served):
    """Admins may send a code input (documented), non-admins get 403 first; anything
    else an admin sends is checked against the schema like anyone's."""
    code = {"parameters": {"compute": {"a": 1, "code": "result = 7"}}}
    problem(
        served.client.post("/workflows/code/execute", json=code, headers=served.bearer_headers()),
        403,
        "override_forbidden",
    )
    admin = served.bearer_headers(roles=["admin"])
    ran = served.client.post("/workflows/code/execute", json=code, headers=admin)
    assert ran.status_code == 200, ran.text
    wrong = {"parameters": {"compute": {"a": 1, "code": "result = 7"}, "zzz": 1}}
    problem(
        served.client.post("/workflows/code/execute", json=wrong, headers=admin),
        400,
        "parameter_not_settable",
    )


def test_workflow_input_validators_are_built_once_at_registration(served, monkeypatch):
    from kailash_nb.middleware.contract import workflow_inputs

    inputs = served.gateway.workflow_inputs["typed"]
    monkeypatch.setattr(workflow_inputs, "workflow_input_schema", _never_called)
    body = {"parameters": {"double": {"n": 3}, "point": {"x": 1}}}
    response = served.client.post(
        "/workflows/typed/execute", json=body, headers=served.bearer_headers()
    )
    assert response.status_code == 200, response.text
    assert served.gateway.workflow_inputs["typed"] is inputs


def _never_called(*args, **kwargs):
    raise AssertionError("the input schema is built per request")


def test_a_workflow_no_caller_can_run_is_refused_at_registration(tmp_path):
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "echo", {"code": "result = query"})
    gateway = create_gateway(database_url=f"sqlite:///{tmp_path / 'g.db'}")
    with pytest.raises(GatewayConfigurationError, match="callers may not set"):
        gateway.register_workflow("echo", builder.build())


# -- bodies of fixed routes -------------------------------------------------------------


def test_session_metadata_null_is_400_as_the_schema_says(served):
    response = served.client.post(
        "/sessions", json={"metadata": None}, headers=served.bearer_headers()
    )
    assert "metadata" in problem(response, 400, "invalid_session_metadata")["detail"]


def test_max_concurrent_workflows_follows_the_schemas_integer(served):
    headers = served.bearer_headers()
    limits = {"metadata": {"resource_limits": {"max_concurrent_workflows": 1.0}}}
    created = served.client.post("/sessions", json=limits, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["resource_limits"]["max_concurrent_workflows"] == 1
    for bad in (1.5, "1", True):
        body = {"metadata": {"resource_limits": {"max_concurrent_workflows": bad}}}
        problem(
            served.client.post("/sessions", json=body, headers=headers),
            400,
            "invalid_session_metadata",
        )


def test_token_request_with_both_second_factors_is_400_as_documented(served):
    body = {"username": "u", "password": "p", "totp": "123456", "backup_code": "x"}
    problem(served.client.post("/auth/token", json=body), 400, "invalid_field")
    schema = served.client.get("/openapi.json").json()["components"]["schemas"]["TokenRequest"]
    assert schema["not"] == {"required": ["totp", "backup_code"]}


# -- methods, HEAD, OPTIONS, 405 --------------------------------------------------------


@pytest.mark.parametrize("path", ["/health", "/workflows", "/sessions", "/openapi.json"])
def test_head_answers_the_get_status_and_headers_without_a_body(served, path):
    headers = served.bearer_headers()
    got = served.client.get(path, headers=headers)
    head = served.client.head(path, headers=headers)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == got.headers["content-length"]


def test_head_needs_the_same_token_as_get(served):
    assert served.client.head("/workflows").status_code == 401


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/health", "GET, HEAD, OPTIONS"),
        ("/sessions", "GET, HEAD, POST, OPTIONS"),
        ("/workflows/typed/execute", "POST, OPTIONS"),
        ("/ws", "GET, HEAD, OPTIONS"),
    ],
)
def test_options_is_204_with_allow_on_every_route(served, path, allow):
    response = served.client.options(path)
    assert response.status_code == 204 and response.headers["allow"] == allow
    assert "server" not in response.headers


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "CONNECT", "PURGE"])
@pytest.mark.parametrize("path", ["/health", "/workflows/typed/execute", "/ws", "/sessions"])
def test_gw12_unserved_and_unknown_methods_are_405_problems_with_allow(served, method, path):
    response = served.client.request(method, path, headers=served.bearer_headers())
    problem(response, 405, "method_not_allowed")
    assert "OPTIONS" in response.headers["allow"]


def test_unmatched_paths_are_404_problems_for_any_method(served):
    for method in ("GET", "TRACE", "OPTIONS", "DELETE"):
        problem(served.client.request(method, "/nowhere"), 404, "not_found")


# -- /ws error paths --------------------------------------------------------------------


def test_ws_without_upgrade_is_a_problem_with_request_id(served):
    response = served.client.get("/ws", headers=served.bearer_headers())
    problem(response, 400, "websocket_upgrade_required")


def test_ws_with_a_bad_key_or_version_is_400(served):
    headers = {**served.bearer_headers(), "Upgrade": "websocket", "Connection": "Upgrade"}
    bad_key = {**headers, "Sec-WebSocket-Key": "short", "Sec-WebSocket-Version": "13"}
    problem(served.client.get("/ws", headers=bad_key), 400, "websocket_handshake_invalid")
    old = {**headers, "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "8"}
    response = served.client.get("/ws", headers=old)
    problem(response, 400, "websocket_handshake_invalid")
    assert response.headers["sec-websocket-version"] == "13"


def test_ws_head_and_unauthenticated_answers_are_problems(served):
    head = served.client.head("/ws", headers=served.bearer_headers())
    assert head.status_code == 400 and head.content == b""
    assert head.headers["content-type"].startswith(PROBLEM_JSON) and head.headers["x-request-id"]
    problem(served.client.get("/ws"), 401, "unauthorized")


def test_a_valid_ws_handshake_upgrades_without_a_server_banner(served):
    head = (
        "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {served.access_token()}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as conn:
        conn.sendall(head.encode())
        answer = conn.recv(4096)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 101")
    assert b"\r\nserver:" not in rest.lower() and b"x-request-id:" in rest.lower()


# -- problems ---------------------------------------------------------------------------


def test_no_server_banner_on_404_405_and_errors(served):
    for response in (
        served.client.get("/nowhere"),
        served.client.put("/health"),
        served.client.get("/workflows"),
        served.client.get("/health"),
    ):
        assert "server" not in response.headers


def test_problem_instance_never_cuts_a_percent_escape(served):
    path = "/runs/" + "%F0%9D%90%93" * 40
    body = problem(served.client.get(path, headers=served.bearer_headers()), 404, "not_found")
    assert URI_REFERENCE.fullmatch(body["instance"])
    assert len(body["instance"]) <= MAX_INSTANCE_CHARS


@pytest.mark.parametrize(
    "path", ['/a b"<>\\^`{|}', "/%zz%4", "/é\x00", "/" + "a" * 300, "/x" + "%41" * 100]
)
def test_instance_of_is_always_a_uri_reference(path):
    instance = instance_of(path)
    assert URI_REFERENCE.fullmatch(instance), instance
    assert len(instance) <= MAX_INSTANCE_CHARS


def test_gw02_chunked_body_in_1mib_chunks_is_413(served):
    """GW-02: chunks each declaring 1 MiB (Tornado would refuse the second one by its
    declared size with a bare 400) still end in a 413 problem and a close."""
    head = (
        "POST /workflows/typed/execute HTTP/1.1\r\nHost: t\r\n"
        f"Authorization: Bearer {served.access_token()}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"100000\r\n" + b" " * 0x100000 + b"\r\n"
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as conn:
        conn.sendall(head)
        try:
            for _ in range(4):
                conn.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while data := conn.recv(65536):
                answer += data
        except ConnectionResetError:
            pass
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Payload Too Large", answer[:300]
    head_part, _, body = rest.partition(b"\r\n\r\n")
    assert b"Connection: close" in head_part and b"X-Request-ID: " in head_part
    assert json.loads(body)["code"] == "payload_too_large"


def test_a_body_of_exactly_1_mib_in_one_chunk_is_read(served):
    payload = json.dumps({"parameters": {"double": {"n": 1}, "point": {"x": 1}}}).encode()
    payload += b" " * (0x100000 - len(payload))
    head = (
        "POST /workflows/typed/execute HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
        f"Authorization: Bearer {served.access_token()}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    answer = raw(served.port, head + b"100000\r\n" + payload + b"\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]


def test_a_malformed_chunk_size_is_a_problem_with_request_id(served):
    head = (
        "POST /workflows/typed/execute HTTP/1.1\r\nHost: t\r\n"
        f"Authorization: Bearer {served.access_token()}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\nzz\r\n"
    ).encode()
    answer = raw(served.port, head)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert b"application/problem+json" in answer and b"X-Request-ID: " in answer
    assert b'"malformed_request"' in answer


# -- /metrics and the document ----------------------------------------------------------


def test_metrics_need_a_token_by_default_as_documented(served):
    problem(served.client.get("/metrics"), 401, "unauthorized")
    assert served.client.get("/metrics", headers=served.bearer_headers()).status_code == 200
    operation = served.client.get("/openapi.json").json()["paths"]["/metrics"]["get"]
    assert "security" not in operation  # the document's default: bearerAuth
    assert {"401", "403"} <= operation["responses"].keys()


def test_metrics_public_opens_metrics_and_the_document_says_so(build, tmp_path):
    gateway = build(f"sqlite:///{tmp_path / 'g.db'}", metrics_public=True)
    with ServedGateway(gateway) as server:
        assert server.client.get("/metrics").status_code == 200
        operation = server.client.get("/openapi.json").json()["paths"]["/metrics"]["get"]
        assert operation["security"] == []
        assert "401" not in operation["responses"]
        assert server.client.get("/workflows").status_code == 401  # only /metrics opens


def test_metrics_public_must_be_a_bool():
    with pytest.raises(GatewayConfigurationError, match="metrics_public"):
        create_gateway(metrics_public="yes")


def test_execute_documents_run_failures_busy_and_timeouts():
    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(double), "double")
    document = openapi_document({"d": builder.build()}, title="T", version="1")
    responses = document["paths"]["/workflows/d/execute"]["post"]["responses"]
    assert responses["422"] == {"$ref": "#/components/responses/RunFailed"}
    assert responses["503"] == {"$ref": "#/components/responses/Busy"}
    assert responses["504"] == {"$ref": "#/components/responses/RunTimeout"}
    components = document["components"]
    assert components["responses"]["Busy"]["headers"]["Retry-After"]["required"] is True
    schemas = components["schemas"]
    failed = schemas["RunFailedProblem"]
    assert {"run_id", "run_url", "node_id"} <= set(failed["required"])
    node = schemas["FailedNode"]
    assert set(node["properties"]) == {"node_id", "error_type", "error"}
    assert set(node["required"]) == {"node_id", "error_type"}
    assert schemas["Problem"]["additionalProperties"] is True
    assert {"run_id", "run_url"} <= set(schemas["RunTimeoutProblem"]["required"])
    run = schemas["Run"]["properties"]
    assert run["status"]["enum"] == list(RUN_STATUSES)
    assert set(schemas["RunError"]["properties"]) == {
        "message",
        "node_id",
        "failed_nodes",
        "unavailable",
    }


def test_contract_modules_import_neither_the_handlers_nor_the_gateway():
    """The contract sits below the handlers (no cycle): none of its modules imports
    ``middleware.handlers`` or ``middleware.gateway``, nor another package's private
    module."""
    import ast
    from pathlib import Path

    import kailash_nb.middleware.contract as contract

    for path in Path(contract.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert not name.startswith("kailash_nb.middleware.handlers"), (path, name)
                assert name != "kailash_nb.middleware.gateway", (path, name)
                if not name.startswith(("kailash_nb", "__future__")):
                    assert not any(part.startswith("_") for part in name.split(".")), name
