"""The gateway's schemas and OpenAPI document (``middleware.schemas``/``openapi``).

Security checklist items proved here: WF-07 (code/query/address keys are not
caller-settable), WF-08 (no dunder inputs), GW-10 (workflow names).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import tornado.web
from openapi_spec_validator import validate
from pydantic import BaseModel

from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.middleware.handlers import routes
from kailash_nb.middleware.openapi import (
    check_workflow_name,
    docs_content_security_policy,
    docs_page,
    openapi_document,
)
from kailash_nb.middleware.schemas import (
    check_caller_parameters,
    settable_inputs,
    settable_workflow_parameters,
    workflow_input_schema,
    workflow_output_schema,
)
from kailash_nb.nodes.base import Node, NodeParameter
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.notebook.function_node import function_node
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.sdk_exceptions import WorkflowValidationError
from kailash_nb.workflow.builder import WorkflowBuilder
from kailash_nb.workflow.graph import Workflow


class Point(BaseModel):
    """A model used as a parameter type and a return annotation."""

    x: int
    y: float = 0.0


class Scale(Node):
    """A typed custom node."""

    def get_parameters(self):
        return {
            "value": NodeParameter(name="value", type=float, required=True),
            "factor": NodeParameter(name="factor", type=float, required=False, default=2.0),
            "tags": NodeParameter(name="tags", type=list[str], required=False),
            "api_key": NodeParameter(name="api_key", type=str, required=False, default="k"),
            "endpoint": NodeParameter(name="endpoint", type=str, required=False),
        }

    def run(self, value, factor, tags, api_key, endpoint):
        return {"result": value * factor}


def shift(point: Point, by: int = 1) -> dict[str, int]:
    return {"x": point.x + by}


def total(numbers: list[int]) -> int:
    return sum(numbers)


def typed_workflow() -> Workflow:
    builder = WorkflowBuilder()
    builder.add_node(Scale, "scale")
    builder.add_node(PythonCodeNode.from_function(shift), "shift")
    builder.add_node(function_node(total, output="sum"), "total")
    return builder.build()


def code_workflow() -> Workflow:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "compute", {"code": "result = a * b", "b": 3})
    builder.add_node("PythonCodeNode", "reader", {"code": "doubled = result * 2\n_hidden = 1"})
    builder.add_node(
        "SQLDatabaseNode", "sql", {"connection_string": "sqlite://", "query": "SELECT 1"}
    )
    builder.add_connection("compute", "result", "reader", "result")
    return builder.build()


def routing_workflow() -> Workflow:
    builder = WorkflowBuilder()
    builder.add_node("SwitchNode", "route", {"condition_field": "n", "operator": ">", "value": 1})
    builder.add_node("PythonCodeNode", "big", {"code": "result = data"})
    builder.add_node("PythonCodeNode", "small", {"code": "result = data"})
    builder.add_node("MergeNode", "merge")
    builder.add_connection("route", "true_output", "big", "data")
    builder.add_connection("route", "false_output", "small", "data")
    builder.add_connection("big", "result", "merge", "data1")
    builder.add_connection("small", "result", "merge", "data2")
    return builder.build()


WORKFLOWS = {"typed": typed_workflow, "code": code_workflow, "routing": routing_workflow}


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("factory", WORKFLOWS.values(), ids=WORKFLOWS.keys())
def test_schemas_are_valid_json_schema(factory):
    workflow = factory()
    validator(workflow_input_schema(workflow))
    validator(workflow_output_schema(workflow))


def test_openapi_document_validates_for_every_kind_of_workflow():
    workflows = {name: factory() for name, factory in WORKFLOWS.items()}
    document = openapi_document(
        workflows, title="Demo", version="1.2.3", descriptions={"typed": "typed nodes"}
    )
    validate(document)
    assert document["openapi"] == "3.1.0"
    for name in WORKFLOWS:
        assert f"/workflows/{name}" in document["paths"]
        execute = document["paths"][f"/workflows/{name}/execute"]["post"]
        assert {"200", "202", "400", "401"} <= execute["responses"].keys()
    execute_typed = document["paths"]["/workflows/typed/execute"]["post"]
    assert execute_typed["description"].startswith("typed nodes\n\n")
    assert "/workflows/{name}" not in document["paths"]


def test_openapi_security_and_problem_responses():
    document = openapi_document({"code": code_workflow()}, title="T", version="1")
    assert document["security"] == [{"bearerAuth": []}]
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    public = {"/health", "/ready", "/openapi.json", "/docs", "/auth/token", "/auth/refresh"}
    for path, item in document["paths"].items():
        for method in ("get", "post"):
            if method in item:
                assert (item[method].get("security") == []) == (path in public), path
    problem = document["components"]["schemas"]["Problem"]["properties"]
    assert {"type", "title", "status", "detail", "instance", "error_id"} <= set(problem)
    for response in document["components"]["responses"].values():
        assert list(response["content"]) == ["application/problem+json"]
    events = document["paths"]["/runs/{run_id}/events"]["get"]["responses"]["200"]
    assert "text/event-stream" in events["content"]
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]
    assert "text/plain" in metrics["content"]


def test_model_definitions_move_to_components():
    document = openapi_document({"typed": typed_workflow()}, title="T", version="1")
    text = json.dumps(document)
    assert "#/$defs/" not in text
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text))
    assert refs <= document["components"]["schemas"].keys()
    assert "typed.results.Point" not in refs  # shift returns dict[str, int]
    assert "typed.parameters" in refs and "typed.results" in refs


def test_typed_inputs_required_and_secret_defaults():
    schema = workflow_input_schema(typed_workflow())
    scale = schema["properties"]["scale"]["properties"]
    assert scale["value"]["type"] == "number"
    assert scale["factor"] == {"type": "number", "default": 2.0}
    assert scale["tags"]["items"] == {"type": "string"}
    assert scale["api_key"]["writeOnly"] is True and "default" not in scale["api_key"]
    assert "endpoint" not in scale
    check = validator(schema)
    assert check.is_valid({"scale": {"value": 1.5}, "shift": {"point": {"x": 1}}, "numbers": []})
    assert check.is_valid({"value": 1.5, "point": {"x": 1}, "numbers": [1]})
    assert not check.is_valid({"shift": {"point": {"x": 1}}})  # value missing everywhere
    assert not check.is_valid({"scale": {"value": "big"}, "point": {"x": 1}, "numbers": []})
    assert not check.is_valid({"value": 1, "point": {"x": 1}, "numbers": [], "extra": 1})


def test_function_node_outputs_follow_annotations():
    schema = workflow_output_schema(typed_workflow())
    shift_outputs = schema["properties"]["shift"]["anyOf"][0]
    assert shift_outputs["properties"]["result"] == {
        "type": "object",
        "additionalProperties": {"type": "integer"},
    }
    total_outputs = schema["properties"]["total"]["anyOf"][0]
    assert total_outputs["properties"] == {"sum": {"type": "integer"}}
    assert total_outputs["additionalProperties"] is False
    assert schema["properties"]["scale"]["anyOf"][0] == {"type": "object"}


def test_code_and_query_overrides_are_refused():
    workflow = code_workflow()
    assert settable_inputs(workflow) == {
        "compute": frozenset({"a", "b"}),
        "reader": frozenset({"result"}),
        "sql": frozenset(
            {"fetch_mode", "fetch_size", "params", "parameters", "result_format", "transaction"}
        ),
    }
    check = validator(workflow_input_schema(workflow))
    assert check.is_valid({"compute": {"a": 2}})
    assert check.is_valid({"a": 2})
    for bad in (
        {"a": 2, "compute": {"code": "import os"}},
        {"a": 2, "sql": {"query": "DROP TABLE t"}},
        {"a": 2, "sql": {"connection_string": "postgresql://evil"}},
        {"a": 2, "query": "DROP TABLE t"},
        {"a": 2, "compute": {"__builtins__": {}}},
        {"a": 2, "__class__": 1},
    ):
        assert not check.is_valid(bad), bad
        with pytest.raises(WorkflowValidationError, match="does not let callers set"):
            check_caller_parameters(workflow, bad)
    check_caller_parameters(workflow, {"compute": {"a": 2}, "fetch_mode": "one"})
    with pytest.raises(WorkflowValidationError, match="must be a JSON object"):
        check_caller_parameters(workflow, [1])


def test_optional_code_inputs_are_settable_but_never_required():
    """A name the code guards with try/except NameError may be sent, need not be, and
    publishes no default: left out, the code finds it undefined."""
    builder = WorkflowBuilder()
    code = "try:\n    v = value\nexcept NameError:\n    v = 0\nresult = v + x"
    builder.add_node("PythonCodeNode", "n", {"code": code})
    workflow = builder.build()
    assert settable_inputs(workflow)["n"] == frozenset({"value", "x"})
    schema = workflow_input_schema(workflow)
    assert "default" not in schema["properties"]["n"]["properties"]["value"]
    check = validator(schema)
    assert check.is_valid({"n": {"x": 1}})
    assert check.is_valid({"n": {"x": 1, "value": 2}})
    assert check.is_valid({"x": 1, "value": 2})
    assert not check.is_valid({"n": {"value": 2}})


def test_workflow_level_name_is_refused_when_one_declaring_node_forbids_it():
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "echo", {"code": "result = query"})
    builder.add_node("SQLDatabaseNode", "sql", {"connection_string": "sqlite://", "query": "S"})
    workflow = builder.build()
    assert "query" not in settable_workflow_parameters(workflow)
    with pytest.raises(WorkflowValidationError, match="callers may not set"):
        workflow_input_schema(workflow)


def test_code_outputs_and_failed_leaves():
    schema = workflow_output_schema(code_workflow())
    compute = schema["properties"]["compute"]
    assert "anyOf" not in compute  # reader depends on it: a failure stops the run
    reader = schema["properties"]["reader"]["anyOf"]
    assert reader[0]["properties"] == {"doubled": {}}
    check = validator(schema)
    assert check.is_valid({"reader": {"error": "boom", "error_type": "KeyError", "failed": True}})
    assert not check.is_valid({"compute": {"error": "boom", "error_type": "E", "failed": True}})


def test_real_run_matches_the_schemas():
    workflow = routing_workflow()
    parameters = {"route": {"input_data": {"n": 5}}}
    validator(workflow_input_schema(workflow)).validate(parameters)
    results, _ = LocalRuntime().execute(workflow, parameters=parameters)
    validator(workflow_output_schema(workflow)).validate(json.loads(json.dumps(results)))

    typed = typed_workflow()
    parameters = {"value": 2, "point": {"x": 1}, "numbers": [1, 2]}
    validator(workflow_input_schema(typed)).validate(parameters)
    results, _ = LocalRuntime().execute(typed, parameters=parameters)
    validator(workflow_output_schema(typed)).validate(results)


@pytest.mark.parametrize(
    "name",
    [
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "%252e%252e",
        "../x",
        "a\x00b",
        "a\u202eb",
        "\u0430dmin",  # Cyrillic a
        "ｗｆ",
        "",
        "x" * 65,
        "a.b",
        "wf\n",
        None,
    ],
)
def test_bad_workflow_names_are_refused(name):
    with pytest.raises(ValueError, match="is not allowed"):
        check_workflow_name(name)
    with pytest.raises(ValueError):
        openapi_document({name: code_workflow()}, title="T", version="1")


def test_unknown_description_key_is_refused():
    with pytest.raises(ValueError, match="not served"):
        openapi_document({"a": code_workflow()}, title="T", version="1", descriptions={"b": "x"})


def test_output_is_deterministic():
    def render() -> str:
        workflows = {"routing": routing_workflow(), "code": code_workflow()}
        workflows["typed"] = typed_workflow()
        return json.dumps(openapi_document(workflows, title="T", version="1"))

    assert render() == render()
    document = json.loads(render())
    assert list(document["paths"]) == sorted(document["paths"])
    assert list(document["components"]["schemas"]) == sorted(document["components"]["schemas"])


def test_docs_page_is_self_contained():
    page = docs_page().decode("utf-8")
    assert 'here("openapi.json")' in page and "Authorization" in page
    assert not re.search(r"(?i)(https?:)?//[a-z0-9]", page.replace("://", ""))
    assert not re.search(r"(?i)<(script|link|img|iframe)[^>]+(src|href)=", page)
    assert "innerHTML" not in page
    policy = docs_content_security_policy()
    assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy
    assert policy.count("'sha256-") == 2


@pytest.mark.slow
def test_docs_page_and_widget_ship_in_the_wheel(tmp_path):
    """The files the gateway and the widget serve are package data of the wheel."""
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(root),
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp_path),
        ],
        check=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("kailash_nb-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "kailash_nb/middleware/static/docs.html" in names
    assert "kailash_nb/notebook/widget.js" in names


# -- routes added with the gateway's sessions and realtime channel ---------------------

_METHODS = ("get", "post", "put", "patch", "delete")
_SAMPLE = "0123abcd-4567-89ef-0123-456789abcdef"  # fits every path parameter's pattern


def _schema_validator(document: dict[str, Any], name: str) -> jsonschema.Validator:
    """A validator for component schema ``name`` that resolves the document's refs."""
    schema = {"$ref": f"#/components/schemas/{name}", **document}
    return jsonschema.Draft202012Validator(schema)


def _handler_methods(handler: type) -> set[str]:
    """The HTTP methods ``handler`` implements (tornado's defaults answer 405)."""
    return {
        method
        for method in _METHODS
        if getattr(handler, method) is not getattr(tornado.web.RequestHandler, method)
    }


def test_sessions_realtime_and_execute_session_id_are_documented():
    document = openapi_document({"code": code_workflow()}, title="T", version="1")
    validate(document)
    paths = document["paths"]
    assert set(paths["/sessions"]) == {"get", "post"}
    assert paths["/sessions"]["post"]["responses"]["201"]["headers"]["Location"]
    assert {"get", "delete"} <= paths["/sessions/{session_id}"].keys()
    assert "204" in paths["/sessions/{session_id}"]["delete"]["responses"]
    assert "404" in paths["/sessions/{session_id}"]["get"]["responses"]
    limit = paths["/sessions"]["get"]["parameters"][0]
    assert limit["name"] == "limit" and limit["schema"]["maximum"] == 1000

    ws = paths["/ws"]["get"]
    assert "101" in ws["responses"] and "401" in ws["responses"] and "403" in ws["responses"]
    assert "Upgrade: websocket" in ws["description"] and "subscribe" in ws["description"]
    assert "token" in {parameter["name"] for parameter in ws["parameters"]}

    body = paths["/workflows/code/execute"]["post"]["requestBody"]["content"]
    properties = body["application/json"]["schema"]["properties"]
    assert set(properties) == {"parameters", "session_id"}
    schemas = document["components"]["schemas"]
    assert {"Session", "SessionList", "SessionCreate", "SessionMetadata", "ResourceLimits"} <= (
        schemas.keys()
    )
    limits = schemas["ResourceLimits"]["properties"]
    assert set(limits) == {"max_concurrent_workflows", "max_memory_mb"}
    create = _schema_validator(document, "SessionCreate")
    create.validate({"metadata": {"resource_limits": {"max_concurrent_workflows": 2}}})
    assert not create.is_valid({"metadata": {"resource_limits": {"max_concurrent_workflows": 0}}})
    assert not create.is_valid({"metadata": {"isolation_level": "shared"}})
    assert not create.is_valid({"tenant_id": "acme"})


@pytest.fixture(scope="module")
def served_docs(module_sqlite_url, security_config, serve_module_gateway):
    """A secured gateway titled "Docs" serving the ``routing`` workflow."""
    gateway = create_gateway(
        title="Docs", security_config=security_config(), database_url=module_sqlite_url
    )
    gateway.register_workflow("routing", routing_workflow(), description="routes n")
    return serve_module_gateway(gateway)


def test_every_route_of_the_gateway_is_documented(served_docs):
    """Fails when a route is added to ``handlers.routes`` without a documented path."""
    gateway = served_docs.gateway
    response = served_docs.client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)
    table = routes(gateway)
    assert {pattern for pattern, _, _ in table} >= {r"/ws", r"/sessions"}
    concrete = {re.sub(r"\{[^}/]+\}", _SAMPLE, path): path for path in document["paths"]}
    undocumented = []
    for pattern, handler, _ in table:
        matches = [path for sample, path in concrete.items() if re.fullmatch(pattern, sample)]
        if not matches:
            undocumented.append(pattern)
            continue
        documented = set().union(*(document["paths"][path].keys() for path in matches))
        missing = _handler_methods(handler) - documented
        assert not missing, f"{pattern}: methods {sorted(missing)} are not documented"
    assert not undocumented, f"routes without a path in the OpenAPI document: {undocumented}"


def test_the_docs_page_is_served_with_its_policy_and_reads_beside_itself(served_docs):
    """The page carries its Content-Security-Policy (so a proxy in front passes it on)
    and resolves the document and the API relative to its own URL, so it also works
    under a prefix such as the Jupyter server's ``/kailash-nb/previews/PORT/docs``."""
    response = served_docs.client.get("/docs")
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == docs_content_security_policy()
    page = response.text
    assert 'fetch(here("openapi.json")' in page and "fetch(here(url)" in page
    assert 'fetch("/' not in page and "fetch('/" not in page


def test_served_sessions_match_their_schemas(served_docs):
    document = served_docs.client.get("/openapi.json").json()
    auth = served_docs.bearer_headers("ada")
    metadata = {"resource_limits": {"max_concurrent_workflows": 2}, "team": "data"}
    _schema_validator(document, "SessionCreate").validate({"metadata": metadata})
    created = served_docs.client.post("/sessions", json={"metadata": metadata}, headers=auth)
    assert created.status_code == 201, created.text
    _schema_validator(document, "Session").validate(created.json())
    listed = served_docs.client.get("/sessions", headers=auth)
    _schema_validator(document, "SessionList").validate(listed.json())
    session_id = created.json()["session_id"]
    one = served_docs.client.get(f"/sessions/{session_id}", headers=auth)
    _schema_validator(document, "Session").validate(one.json())

    execute = document["paths"]["/workflows/routing/execute"]["post"]
    body_schema = execute["requestBody"]["content"]["application/json"]["schema"]
    body = {"parameters": {"route": {"input_data": {"n": 5}}}, "session_id": session_id}
    jsonschema.Draft202012Validator({**body_schema, **document}).validate(body)
    ran = served_docs.client.post("/workflows/routing/execute", json=body, headers=auth)
    assert ran.status_code == 200, ran.text
    _schema_validator(document, "routing.results").validate(ran.json()["results"])
    without = served_docs.client.post(
        "/workflows/routing/execute", json={**body, "session_id": None}, headers=auth
    )
    assert without.status_code == 200, without.text
    assert served_docs.client.delete(f"/sessions/{session_id}", headers=auth).status_code == 204


def test_the_served_document_is_the_one_openapi_document_builds(served_docs):
    """``/openapi.json`` comes from the schemas compiled at registration, rendered once;
    it equals ``openapi_document`` of the same workflows, and a workflow registered
    later is in the next answer."""
    gateway = served_docs.gateway
    token = served_docs.access_token("docs", tenant="t", roles=("admin",))

    def served() -> dict[str, Any]:
        return served_docs.client.get(
            "/openapi.json", headers={"Authorization": f"Bearer {token}"}
        ).json()

    def built() -> dict[str, Any]:
        return openapi_document(
            {name: workflow for name, (workflow, _) in gateway.workflows.items()},
            title="Docs",
            version=gateway.settings.version,
            descriptions={name: text for name, (_, text) in gateway.workflows.items()},
        )

    assert served() == built()
    assert gateway.openapi_document() is gateway.openapi_document()
    gateway.register_workflow("later", code_workflow())
    assert "/workflows/later/execute" in served()["paths"] and served() == built()
