"""The gateway's OpenAPI 3.1 document, with one concrete path per served workflow.

Each workflow gets ``/workflows/<name>`` and ``/workflows/<name>/execute`` whose
request and response bodies are that workflow's own schemas
(``kailash_nb.middleware.schemas``), so a generated client or the docs page knows
exactly which inputs a caller may set::

    document = openapi_document({"etl": workflow}, title="Acme workflows", version="1.0.0")
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

from kailash_nb.middleware import _openapi_parts as parts
from kailash_nb.middleware._json_types import DEFS_PREFIX, relocate_refs
from kailash_nb.middleware.schemas import workflow_input_schema, workflow_output_schema

if TYPE_CHECKING:
    from kailash_nb.workflow.graph import Workflow

__all__ = [
    "OPENAPI_VERSION",
    "WORKFLOW_NAME_PATTERN",
    "check_workflow_name",
    "docs_content_security_policy",
    "docs_page",
    "openapi_document",
]

OPENAPI_VERSION = "3.1.0"
#: What a served workflow's name must match (GW-10): ASCII only, no dots or slashes.
WORKFLOW_NAME_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
_WORKFLOW_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_COMPONENTS = "#/components/schemas/"
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def check_workflow_name(name: object) -> str:
    """Return ``name`` if it is a valid served-workflow name.

    Raises:
        ValueError: ``name`` is not a string matching ``WORKFLOW_NAME_PATTERN`` (path
            separators, dots, encoded characters, NUL, non-ASCII letters all refused).
    """
    if not isinstance(name, str) or _WORKFLOW_NAME.fullmatch(name) is None:
        raise ValueError(
            f"workflow name {name!r:.80} is not allowed; use 1-64 ASCII letters, digits, "
            f"'_' or '-' ({WORKFLOW_NAME_PATTERN})"
        )
    return name


def openapi_document(
    workflows: Mapping[str, Workflow],
    *,
    title: str,
    version: str,
    description: str = "",
    descriptions: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1.0 document of a gateway serving ``workflows`` (name -> workflow).

    Args:
        workflows: the served workflows, keyed by the name in their URLs.
        title: ``info.title``.
        version: ``info.version`` (the API's version, not the OpenAPI version).
        description: ``info.description``.
        descriptions: per-workflow descriptions overriding ``Workflow.description``.

    Every operation needs a bearer JWT (``bearerAuth``) except ``/health``,
    ``/ready``, ``/openapi.json``, ``/docs`` and ``/auth/*``; ``/ws`` also takes the
    token as a ``token`` query parameter. Errors are
    ``application/problem+json`` bodies of the ``Problem`` schema. The same inputs
    give the same document, key order included.

    Raises:
        ValueError: a workflow name that does not match ``WORKFLOW_NAME_PATTERN``, or a
            ``descriptions`` key that is not a served workflow.
        WorkflowValidationError: a workflow with a required input no caller may set.
    """
    names = sorted(check_workflow_name(name) for name in workflows)
    descriptions = dict(descriptions or {})
    unknown = sorted(set(descriptions) - set(names), key=repr)
    if unknown:
        raise ValueError(f"descriptions given for workflows that are not served: {unknown!r:.200}")
    schemas = parts.shared_schemas()
    paths: dict[str, Any] = parts.service_paths()
    for name in names:
        workflow = workflows[name]
        text = descriptions.get(name, workflow.description)
        input_schema = _component(schemas, f"{name}.parameters", workflow_input_schema(workflow))
        _component(schemas, f"{name}.results", workflow_output_schema(workflow))
        paths[f"/workflows/{name}"] = parts.workflow_info_path(name, text)
        paths[f"/workflows/{name}/execute"] = parts.execute_path(
            name, text, parameters_required=_requires_something(input_schema)
        )
    paths.update(parts.run_and_auth_paths())
    paths.update(parts.session_paths())
    paths.update(parts.realtime_paths())
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version, "description": description},
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": parts.TAGS,
        "paths": {path: paths[path] for path in sorted(paths)},
        "components": {
            "schemas": {key: schemas[key] for key in sorted(schemas)},
            "responses": parts.problem_responses(),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def docs_page() -> bytes:
    """The docs page (``static/docs.html``): it reads ``/openapi.json`` and offers a
    "try it" form per operation. Self-contained: no external script, style or font."""
    return resources.files("kailash_nb.middleware").joinpath("static/docs.html").read_bytes()


def docs_content_security_policy() -> str:
    """The ``Content-Security-Policy`` to serve ``docs_page()`` with: its inline script
    and style allowed by hash, requests only to the page's own origin."""
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _INLINE.findall(docs_page().decode("utf-8")):
        digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode("ascii")
        hashes[kind].append(f"'sha256-{digest}'")
    return (
        f"default-src 'none'; script-src {' '.join(hashes['script'])}; "
        f"style-src {' '.join(hashes['style'])}; connect-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def _component(schemas: dict[str, Any], key: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Store ``schema`` as component ``key``, its ``$defs`` as ``key.Name`` components."""
    prefix = _COMPONENTS + key + "."
    for def_name, definition in schema.pop("$defs", {}).items():
        schemas[f"{key}.{def_name}"] = relocate_refs(definition, DEFS_PREFIX, prefix, {})
    schema.pop("$schema", None)
    schema["title"] = key
    schemas[key] = relocate_refs(schema, DEFS_PREFIX, prefix, {})
    return schemas[key]


def _requires_something(schema: dict[str, Any]) -> bool:
    return bool(schema.get("required") or schema.get("allOf"))
