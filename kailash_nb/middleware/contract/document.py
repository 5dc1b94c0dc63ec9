"""The OpenAPI 3.1 document, rendered from the declared operations and models.

:func:`render_document` turns ``contract.operations`` into ``paths``, the pydantic
models into ``components.schemas`` and the problem answers into
``components.responses``; each served workflow adds its ``<name>.parameters`` and
``<name>.results`` schemas and its concrete ``/workflows/<name>`` paths. Everything is
emitted in sorted order, so the same inputs give the same document.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from kailash_nb.middleware._json_types import DEFS_PREFIX, relocate_refs
from kailash_nb.middleware.contract import models
from kailash_nb.middleware.contract.operations import (
    FIXED_OPERATIONS,
    PROBLEMS,
    WORKFLOW_OPERATIONS,
    Header,
    Operation,
    Reply,
    metrics_operation,
)
from kailash_nb.middleware.contract.redactable import redactable_results

__all__ = ["OPENAPI_VERSION", "ServedWorkflow", "render_document"]

OPENAPI_VERSION = "3.1.0"
_COMPONENTS = "#/components/schemas/"
_PROBLEM_JSON = "application/problem+json"
_REQUEST_ID = {"$ref": "#/components/headers/X-Request-ID"}
_TAGS = [
    {"name": "workflows", "description": "served workflows and their execution"},
    {"name": "runs", "description": "status and events of runs"},
    {"name": "sessions", "description": "the caller's sessions, which can limit their runs"},
    {"name": "realtime", "description": "live run events over a WebSocket"},
    {"name": "auth", "description": "tokens"},
    {"name": "service", "description": "health, readiness, metrics and this document"},
]
_CONVENTIONS = (
    "\n\nConventions: every answer carries `X-Request-ID`; errors are "
    "`application/problem+json`. Every route also answers `OPTIONS` (204 with `Allow`) "
    "and, where it answers `GET`, `HEAD`; other methods answer 405 with `Allow`. Query "
    "parameters an operation does not declare are ignored; declared ones are parsed "
    "strictly (integers: ASCII digits only; booleans: `true` or `false`) and may be "
    "given once."
)


@dataclass(frozen=True)
class ServedWorkflow:
    """What the document needs of one served workflow."""

    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


def render_document(
    workflows: list[ServedWorkflow],
    *,
    title: str,
    version: str,
    description: str = "",
    metrics_public: bool = False,
    redacted_outputs: bool = False,
) -> dict[str, Any]:
    """The OpenAPI 3.1.0 document of a gateway serving ``workflows`` (in name order);
    with ``redacted_outputs`` (an access policy decides what callers read) every
    results schema admits withheld outputs and masked fields."""
    schemas = _model_schemas()
    operations = [
        metrics_operation(metrics_public) if operation.path == "/metrics" else operation
        for operation in FIXED_OPERATIONS
    ]
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        _add(paths, operation, _operation(operation, schemas, None))
    for workflow in workflows:
        parameters = _component(schemas, f"{workflow.name}.parameters", workflow.input_schema)
        results = workflow.output_schema
        if redacted_outputs:
            results = redactable_results(results)
        _component(schemas, f"{workflow.name}.results", results)
        for template in WORKFLOW_OPERATIONS:
            concrete = template.path.replace("{name}", workflow.name)
            rendered = _operation(template, schemas, workflow)
            if template.body is not None and _requires_something(parameters):
                rendered["requestBody"]["required"] = True
                body = rendered["requestBody"]["content"]["application/json"]["schema"]
                body["required"] = sorted(template.body_refs)
            paths.setdefault(concrete, {})[template.method] = rendered
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version, "description": description + _CONVENTIONS},
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": _TAGS,
        "paths": {path: _sorted_item(paths[path]) for path in sorted(paths)},
        "components": {
            "schemas": {key: schemas[key] for key in sorted(schemas)},
            "responses": {name: _problem_response(name) for name in sorted(PROBLEMS)},
            "headers": {
                "X-Request-ID": {
                    "description": "the client's X-Request-ID when it matches "
                    "^[A-Za-z0-9._-]{1,128}$, else a fresh id",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"},
                }
            },
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _add(paths: dict[str, dict[str, Any]], operation: Operation, rendered: dict) -> None:
    item = paths.setdefault(operation.path, {})
    path_parameters = [p for p in operation.parameters if p.location == "path"]
    if path_parameters:
        item["parameters"] = [_parameter(p) for p in path_parameters]
        rendered.pop("parameters", None)
        others = [_parameter(p) for p in operation.parameters if p.location != "path"]
        others += [_query(q) for q in operation.query]
        if others:
            rendered["parameters"] = others
    item[operation.method] = rendered


def _sorted_item(item: dict[str, Any]) -> dict[str, Any]:
    return {key: item[key] for key in sorted(item, key=lambda key: (key != "parameters", key))}


def _operation(
    operation: Operation, schemas: dict[str, Any], workflow: ServedWorkflow | None
) -> dict[str, Any]:
    operation_id = operation.operation_id
    description = operation.description
    if workflow is not None:
        operation_id += f"_{workflow.name}"
        description = "\n\n".join(text for text in (workflow.description, description) if text)
    rendered: dict[str, Any] = {
        "operationId": operation_id,
        "tags": [operation.tag],
        "summary": operation.summary,
    }
    if description:
        rendered["description"] = description
    parameters = [_parameter(p) for p in operation.parameters] + [
        _query(q) for q in operation.query
    ]
    if parameters:
        rendered["parameters"] = parameters
    if operation.body is not None:
        body = _model_ref(operation.body, operation.body_refs, schemas, workflow)
        rendered["requestBody"] = {
            "required": operation.body_required,
            "content": {"application/json": {"schema": body}},
        }
    responses: dict[str, Any] = {
        str(status): _reply(reply, schemas, workflow) for status, reply in operation.replies.items()
    }
    for name in (*operation.errors, "InternalError"):
        responses[str(PROBLEMS[name].status)] = {"$ref": f"#/components/responses/{name}"}
    rendered["responses"] = {status: responses[status] for status in sorted(responses)}
    if operation.public:
        rendered["security"] = []
    return rendered


def _reply(reply: Reply, schemas: dict[str, Any], workflow: ServedWorkflow | None) -> dict:
    rendered: dict[str, Any] = {"description": reply.description}
    headers = {name: _header(header) for name, header in sorted(reply.headers.items())}
    headers["X-Request-ID"] = _REQUEST_ID
    rendered["headers"] = headers
    if reply.model is not None:
        schema = _model_ref(reply.model, reply.refs, schemas, workflow)
        rendered["content"] = {"application/json": {"schema": schema}}
    elif reply.media_type is not None:
        rendered["content"] = {reply.media_type: {"schema": dict(reply.schema or {})}}
    return rendered


def _model_ref(
    model: type[BaseModel],
    refs: Mapping[str, str],
    schemas: dict[str, Any],
    workflow: ServedWorkflow | None,
) -> dict[str, Any]:
    """A ``$ref`` to ``model``'s component, or (per workflow) a copy of it whose
    ``refs`` members point at the workflow's own components."""
    if workflow is None or not refs:
        return {"$ref": _COMPONENTS + model.__name__}
    schema = copy.deepcopy(schemas[model.__name__])
    for member, suffix in refs.items():
        described = schema["properties"][member].get("description")
        schema["properties"][member] = {"$ref": f"{_COMPONENTS}{workflow.name}.{suffix}"}
        if described:
            schema["properties"][member]["description"] = described
    schema["title"] = f"{model.__name__}_{workflow.name}"
    return schema


def _parameter(parameter: Any) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "name": parameter.name,
        "in": parameter.location,
        "required": parameter.required,
        "schema": dict(parameter.schema),
    }
    if parameter.description:
        rendered["description"] = parameter.description
    return rendered


def _query(query: Any) -> dict[str, Any]:
    return {
        "name": query.name,
        "in": "query",
        "required": False,
        "description": query.description,
        "schema": query.schema(),
    }


def _header(header: Header) -> dict[str, Any]:
    return {
        "description": header.description,
        "required": header.required,
        "schema": dict(header.schema),
    }


def _problem_response(name: str) -> dict[str, Any]:
    problem = PROBLEMS[name]
    headers = {key: _header(header) for key, header in sorted(problem.headers.items())}
    headers["X-Request-ID"] = _REQUEST_ID
    return {
        "description": problem.description,
        "headers": headers,
        "content": {_PROBLEM_JSON: {"schema": {"$ref": _COMPONENTS + problem.model.__name__}}},
    }


def _model_schemas() -> dict[str, Any]:
    """Every model's JSON Schema, keyed by component name."""
    pairs = [(model, "validation") for model in models.REQUEST_MODELS]
    pairs += [(model, "serialization") for model in models.RESPONSE_MODELS]
    _, top = models_json_schema(pairs, ref_template=_COMPONENTS + "{model}")  # type: ignore[arg-type]
    return dict(top.get("$defs", {}))


def _component(schemas: dict[str, Any], key: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Store ``schema`` as component ``key``, its ``$defs`` as ``key.Name`` components."""
    schema = copy.deepcopy(schema)
    prefix = _COMPONENTS + key + "."
    for def_name, definition in schema.pop("$defs", {}).items():
        schemas[f"{key}.{def_name}"] = relocate_refs(definition, DEFS_PREFIX, prefix, {})
    schema.pop("$schema", None)
    schema["title"] = key
    schemas[key] = relocate_refs(schema, DEFS_PREFIX, prefix, {})
    return schemas[key]


def _requires_something(schema: dict[str, Any]) -> bool:
    return bool(schema.get("required") or schema.get("allOf"))
