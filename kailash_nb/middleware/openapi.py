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

from kailash_nb.middleware.contract.document import OPENAPI_VERSION, ServedWorkflow, render_document
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

#: What a served workflow's name must match (GW-10): ASCII only, no dots or slashes.
WORKFLOW_NAME_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
_WORKFLOW_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
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
    metrics_public: bool = False,
) -> dict[str, Any]:
    """The OpenAPI 3.1.0 document of a gateway serving ``workflows`` (name -> workflow).

    Args:
        workflows: the served workflows, keyed by the name in their URLs.
        title: ``info.title``.
        version: ``info.version`` (the API's version, not the OpenAPI version).
        description: ``info.description`` (the gateway's conventions are appended).
        descriptions: per-workflow descriptions overriding ``Workflow.description``.
        metrics_public: document ``/metrics`` as open to anyone (the gateway's
            ``metrics_public`` setting) instead of needing a token.

    Every operation needs a bearer JWT (``bearerAuth``) except ``/health``,
    ``/ready``, ``/openapi.json``, ``/docs`` and ``/auth/*`` (and ``/metrics`` when
    ``metrics_public``); ``/ws`` also takes the token as a ``token`` query parameter.
    Errors are ``application/problem+json`` bodies of the ``Problem`` schema. The
    routes' bodies, parameters and answers come from ``contract.operations``, the same
    declarations the handlers check requests against. The same inputs give the same
    document, key order included.

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
    served = [
        ServedWorkflow(
            name,
            descriptions.get(name, workflows[name].description),
            workflow_input_schema(workflows[name]),
            workflow_output_schema(workflows[name]),
        )
        for name in names
    ]
    return render_document(
        served,
        title=title,
        version=version,
        description=description,
        metrics_public=metrics_public,
    )


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
