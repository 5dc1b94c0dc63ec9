"""Building blocks of the gateway's OpenAPI document: fixed paths, shared schemas and
the per-workflow path items. ``openapi.py`` assembles them."""

from __future__ import annotations

from typing import Any

__all__ = [
    "TAGS",
    "execute_path",
    "problem_responses",
    "realtime_paths",
    "run_and_auth_paths",
    "service_paths",
    "session_paths",
    "shared_schemas",
    "workflow_info_path",
]

PUBLIC: list[dict[str, list[str]]] = []  # ``security: []`` - no token needed
TAGS = [
    {"name": "workflows", "description": "served workflows and their execution"},
    {"name": "runs", "description": "status and events of runs"},
    {"name": "sessions", "description": "the caller's sessions, which can limit their runs"},
    {"name": "realtime", "description": "live run events over a WebSocket"},
    {"name": "auth", "description": "tokens"},
    {"name": "service", "description": "health, readiness, metrics and this document"},
]

_SCHEMAS = "#/components/schemas/"
_PROBLEM_JSON = "application/problem+json"
_PROBLEMS = {
    "BadRequest": (400, "the request is malformed or names inputs callers may not set"),
    "Unauthorized": (401, "missing, invalid or expired bearer token"),
    "Forbidden": (403, "the token does not allow this operation"),
    "NotFound": (404, "no such workflow, run or session"),
    "PayloadTooLarge": (413, "the request body is above the size limit"),
    "UnsupportedMediaType": (415, "the body must be application/json"),
    "TooManyRequests": (429, "rate or session run limit reached; retry after Retry-After"),
    "InternalError": (500, "unexpected failure; quote error_id to the operator"),
    "ServiceUnavailable": (503, "not ready to serve"),
    "GatewayTimeout": (504, "the run did not finish within its deadline"),
}

_LOGIN_LOCKED = {
    "description": "login_locked (too many failed sign-ins) or rate_limited; retry after "
    "Retry-After seconds, whatever the credentials",
    "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
    "content": {_PROBLEM_JSON: {"schema": {"$ref": _SCHEMAS + "Problem"}}},
}


def shared_schemas() -> dict[str, Any]:
    """Component schemas every gateway document has (``Problem``, ``TokenPair`` ...)."""
    return {
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details",
            "properties": {
                "type": {"type": "string", "format": "uri-reference"},
                "title": {"type": "string"},
                "status": {"type": "integer", "minimum": 100, "maximum": 599},
                "detail": {"type": "string"},
                "instance": {"type": "string", "format": "uri-reference"},
                "code": {"type": "string", "description": "stable machine-readable error code"},
                "error_id": {"type": "string", "description": "id to find the server log"},
            },
            "required": ["title", "status"],
        },
        "Health": {
            "type": "object",
            "properties": {
                "status": {"type": "string", "examples": ["ok", "degraded"]},
                "alerts": {
                    "type": "array",
                    "items": {"type": "object"},
                    "description": "with a monitor's health_checks: each alert rule's state "
                    "at the last evaluation (status is degraded while one fires)",
                },
                "evaluated_at": {"type": ["number", "null"]},
                "worker_pid": {
                    "type": "integer",
                    "description": "the answering worker process (worker_processes > 1)",
                },
            },
            "required": ["status"],
        },
        "WorkflowSummary": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                "description": {"type": "string"},
                "url": {"type": "string", "format": "uri-reference"},
            },
            "required": ["name"],
        },
        "WorkflowList": {
            "type": "object",
            "properties": {
                "workflows": {"type": "array", "items": {"$ref": _SCHEMAS + "WorkflowSummary"}}
            },
            "required": ["workflows"],
        },
        "RunAccepted": {
            "type": "object",
            "properties": {
                "run_id": {"type": "string", "format": "uuid"},
                "status": {"type": "string", "examples": ["running"]},
                "run_url": {"type": "string", "format": "uri-reference"},
            },
            "required": ["run_id", "status", "run_url"],
        },
        "Run": {
            "type": "object",
            "properties": {
                "run_id": {"type": "string", "format": "uuid"},
                "workflow": {"type": "string"},
                "status": {
                    "type": "string",
                    "description": "running, completed, failed, interrupted or timeout",
                },
                "results": {
                    "type": ["object", "null"],
                    "description": "a completed run's results; null when results_truncated",
                },
                "results_truncated": {
                    "type": "boolean",
                    "description": "the results' JSON (results_size bytes) was above 256 KiB "
                    "and was not stored; only the worker that ran it, until it restarts or "
                    "forgets the run, answers them",
                },
                "results_size": {"type": "integer"},
                "error": {"type": "object"},
                "created_at": {"type": "number"},
                "finished_at": {"type": ["number", "null"]},
                "duration": {"type": "number"},
                "nodes": {"type": "array", "items": {"type": "object"}},
            },
            "required": ["run_id", "status"],
        },
        **_session_schemas(),
        "TokenRequest": {
            "type": "object",
            "properties": {
                "username": {"type": "string", "minLength": 1, "maxLength": 256},
                "password": {"type": "string", "writeOnly": True, "maxLength": 1024},
                "totp": {
                    "type": "string",
                    "writeOnly": True,
                    "maxLength": 64,
                    "description": "the authenticator app's 6-digit code; required (or "
                    "backup_code) for TOTP-enrolled users, each code works once",
                },
                "backup_code": {
                    "type": "string",
                    "writeOnly": True,
                    "maxLength": 64,
                    "description": "an unused one-time backup code, instead of totp",
                },
            },
            "required": ["username", "password"],
            "additionalProperties": False,
        },
        "RefreshRequest": {
            "type": "object",
            "properties": {"refresh_token": {"type": "string", "writeOnly": True}},
            "required": ["refresh_token"],
            "additionalProperties": False,
        },
        "TokenPair": {
            "type": "object",
            "properties": {
                "access_token": {"type": "string"},
                "refresh_token": {"type": ["string", "null"]},
                "session_id": {"type": "string"},
                "expires_in": {"type": "integer"},
                "refresh_expires_in": {"type": ["integer", "null"]},
                "token_type": {"const": "Bearer"},
            },
            "required": ["access_token", "token_type", "expires_in"],
        },
    }


def problem_responses() -> dict[str, Any]:
    """``components.responses``: one ``application/problem+json`` response per error."""
    return {
        name: {
            "description": text,
            "content": {_PROBLEM_JSON: {"schema": {"$ref": _SCHEMAS + "Problem"}}},
        }
        for name, (_, text) in _PROBLEMS.items()
    }


def service_paths() -> dict[str, Any]:
    """``/health``, ``/ready``, ``/openapi.json``, ``/docs``, ``/metrics``, ``/workflows``."""
    return {
        "/health": {"get": _public("health", "the process is up", "Health")},
        "/ready": {
            "get": {
                **_public("ready", "the gateway can serve requests", "Health"),
                "responses": {
                    "200": _json("ready", "Health"),
                    "503": _error("ServiceUnavailable"),
                },
            }
        },
        "/openapi.json": {"get": _public("openapi", "this document", None)},
        "/docs": {
            "get": {
                **_public("docs", "the interactive documentation page", None),
                "responses": {
                    "200": {
                        "description": "HTML page",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/metrics": {
            "get": _operation(
                "metrics",
                "service",
                "Prometheus metrics",
                {
                    "200": {
                        "description": "metrics in the Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                errors=("Unauthorized", "Forbidden"),
            )
        },
        "/workflows": {
            "get": _operation(
                "listWorkflows",
                "workflows",
                "the workflows this gateway serves",
                {"200": _json("served workflows", "WorkflowList")},
                errors=("Unauthorized", "Forbidden", "TooManyRequests"),
            )
        },
    }


def workflow_info_path(name: str, description: str) -> dict[str, Any]:
    """The ``GET /workflows/<name>`` path item: the workflow and its schemas."""
    info = {
        "type": "object",
        "properties": {
            "name": {"const": name},
            "description": {"type": "string"},
            "input_schema": {"type": "object"},
            "output_schema": {"type": "object"},
        },
        "required": ["name"],
    }
    return {
        "get": _operation(
            f"getWorkflow_{name}",
            "workflows",
            f"describe workflow {name}",
            {"200": {"description": "the workflow", "content": _content(info)}},
            description=description,
            errors=("Unauthorized", "Forbidden", "NotFound", "TooManyRequests"),
        )
    }


def execute_path(name: str, description: str, *, parameters_required: bool) -> dict[str, Any]:
    """The ``POST /workflows/<name>/execute`` path item, typed by the workflow's schemas."""
    request: dict[str, Any] = {
        "type": "object",
        "properties": {
            "parameters": {"$ref": f"{_SCHEMAS}{name}.parameters"},
            "session_id": {
                "type": ["string", "null"],
                "default": None,
                "description": "run in this session of the caller: the run holds one of the "
                "session's max_concurrent_workflows slots until it ends (429 with "
                "Retry-After when they are all taken; 404 for a session that is not the "
                "caller's); null or absent: no session",
            },
        },
        "additionalProperties": False,
    }
    if parameters_required:
        request["required"] = ["parameters"]
    finished = {
        "type": "object",
        "properties": {
            "run_id": {"type": "string", "format": "uuid"},
            "results": {"$ref": f"{_SCHEMAS}{name}.results"},
            "cached": {
                "type": "boolean",
                "description": "true when answered from the result cache (cache_enabled): "
                "run_id and results are those of the earlier run",
            },
        },
        "required": ["run_id", "results"],
    }
    operation = _operation(
        f"executeWorkflow_{name}",
        "workflows",
        f"run workflow {name}",
        {
            "200": {
                "description": "the run finished",
                "content": _content(finished),
                "headers": {
                    "X-Cache": {
                        "description": "hit or miss, when the result cache applies",
                        "schema": {"type": "string", "enum": ["hit", "miss"]},
                    }
                },
            },
            "202": _json("the run started (wait=false); poll run_url", "RunAccepted"),
        },
        description=description,
        errors=(
            "BadRequest",
            "Unauthorized",
            "Forbidden",
            "NotFound",
            "PayloadTooLarge",
            "UnsupportedMediaType",
            "TooManyRequests",
            "GatewayTimeout",
        ),
    )
    operation["parameters"] = [
        {
            "name": "wait",
            "in": "query",
            "required": False,
            "description": "false: answer 202 at once and run in the background",
            "schema": {"type": "boolean", "default": True},
        }
    ]
    operation["requestBody"] = {
        "required": parameters_required,
        "content": {"application/json": {"schema": request}},
    }
    return {"post": operation}


def run_and_auth_paths() -> dict[str, Any]:
    """``/runs/{run_id}``, ``/runs/{run_id}/events``, ``/auth/token``, ``/auth/refresh``."""
    run_id = {
        "name": "run_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }
    events = _operation(
        "streamRunEvents",
        "runs",
        "the run's events as Server-Sent Events, until it ends",
        {
            "200": {
                "description": "event stream",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            }
        },
        errors=("Unauthorized", "Forbidden", "NotFound", "TooManyRequests"),
    )
    token_errors = ("BadRequest", "Unauthorized", "UnsupportedMediaType", "TooManyRequests")
    return {
        "/runs/{run_id}": {
            "parameters": [run_id],
            "get": _operation(
                "getRun",
                "runs",
                "a run's status and, once finished, its results",
                {"200": _json("the run", "Run")},
                errors=("Unauthorized", "Forbidden", "NotFound", "TooManyRequests"),
            ),
        },
        "/runs/{run_id}/events": {"parameters": [run_id], "get": events},
        "/auth/token": {
            "post": {
                **_operation(
                    "issueToken",
                    "auth",
                    "log in with a username and password",
                    {"200": _json("a new session's tokens", "TokenPair"), "429": _LOGIN_LOCKED},
                    description="401 codes: invalid_credentials (unknown user and wrong "
                    "password alike), second_factor_required and invalid_second_factor "
                    "(TOTP-enrolled users). 429 login_locked: too many failed sign-ins for "
                    "the account, the client address or the second factor.",
                    errors=("BadRequest", "Unauthorized", "UnsupportedMediaType"),
                ),
                "security": PUBLIC,
                "requestBody": _body("TokenRequest"),
            }
        },
        "/auth/refresh": {
            "post": {
                **_operation(
                    "refreshToken",
                    "auth",
                    "exchange a refresh token for a new pair (single use)",
                    {"200": _json("rotated tokens", "TokenPair")},
                    errors=token_errors,
                ),
                "security": PUBLIC,
                "requestBody": _body("RefreshRequest"),
            }
        },
    }


def _session_schemas() -> dict[str, Any]:
    """``ResourceLimits``, ``SessionMetadata``, ``SessionCreate``, ``Session``, ``SessionList``
    (see ``_session_metadata`` and ``agent_ui.Session.to_dict``)."""
    positive = {"type": ["integer", "null"], "minimum": 1, "maximum": 1_000_000}
    return {
        "ResourceLimits": {
            "type": "object",
            "description": "per-session limits",
            "properties": {
                "max_concurrent_workflows": {
                    **positive,
                    "description": "runs of the session executing at once; a further run "
                    "is refused with 429 until one ends",
                },
                "max_memory_mb": {
                    **positive,
                    "description": "recorded with the session, not enforced in-process",
                },
            },
            "additionalProperties": False,
        },
        "SessionMetadata": {
            "type": "object",
            "description": "a session's metadata (at most 16 KiB as compact JSON); keys "
            "other than these are stored as given",
            "properties": {
                "tenant_id": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 256,
                    "description": "must be the token's tenant (403 otherwise)",
                },
                "isolation_level": {"const": "strict", "default": "strict"},
                "resource_limits": {"$ref": _SCHEMAS + "ResourceLimits"},
            },
            "additionalProperties": True,
        },
        "SessionCreate": {
            "type": "object",
            "properties": {"metadata": {"$ref": _SCHEMAS + "SessionMetadata"}},
            "additionalProperties": False,
        },
        "Session": {
            "type": "object",
            "description": "an open session of the caller (tenant and subject from the token)",
            "properties": {
                "session_id": {"type": "string", "format": "uuid"},
                "tenant_id": {"type": "string"},
                "subject": {"type": "string"},
                "metadata": {"$ref": _SCHEMAS + "SessionMetadata"},
                "resource_limits": {
                    "type": "object",
                    "properties": {
                        "max_concurrent_workflows": {"type": ["integer", "null"]},
                        "max_memory_mb": {"type": ["integer", "null"]},
                    },
                    "required": ["max_concurrent_workflows", "max_memory_mb"],
                },
                "active_runs": {"type": "integer", "minimum": 0},
                "created_at": {"type": "number", "description": "seconds since the epoch"},
                "url": {"type": "string", "format": "uri-reference"},
            },
            "required": [
                "session_id",
                "tenant_id",
                "subject",
                "metadata",
                "resource_limits",
                "active_runs",
                "created_at",
                "url",
            ],
        },
        "SessionList": {
            "type": "object",
            "properties": {"sessions": {"type": "array", "items": {"$ref": _SCHEMAS + "Session"}}},
            "required": ["sessions"],
        },
    }


def session_paths() -> dict[str, Any]:
    """``/sessions`` (``GET``, ``POST``) and ``/sessions/{session_id}`` (``GET``, ``DELETE``).

    A session that is not the caller's is the same 404 as one that does not exist; an
    ``X-Tenant-ID`` header naming another tenant than the token's is 403.
    """
    session_id = {
        "name": "session_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9-]{1,64}$"},
    }
    limit = {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "at most this many sessions",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    }
    read_errors = ("Unauthorized", "Forbidden", "NotFound", "TooManyRequests")
    create = _operation(
        "createSession",
        "sessions",
        "open a session owned by the caller",
        {
            "201": {
                **_json("the new session", "Session"),
                "headers": {
                    "Location": {
                        "description": "the session's URL",
                        "schema": {"type": "string", "format": "uri-reference"},
                    }
                },
            }
        },
        errors=(
            "BadRequest",
            "Unauthorized",
            "Forbidden",
            "PayloadTooLarge",
            "UnsupportedMediaType",
            "TooManyRequests",
        ),
    )
    create["requestBody"] = {
        "required": False,
        "content": _content({"$ref": _SCHEMAS + "SessionCreate"}),
    }
    listing = _operation(
        "listSessions",
        "sessions",
        "the caller's open sessions, newest first",
        {"200": _json("open sessions", "SessionList")},
        errors=("BadRequest", "Unauthorized", "Forbidden", "TooManyRequests"),
    )
    listing["parameters"] = [limit]
    return {
        "/sessions": {"get": listing, "post": create},
        "/sessions/{session_id}": {
            "parameters": [session_id],
            "get": _operation(
                "getSession",
                "sessions",
                "one of the caller's sessions",
                {"200": _json("the session", "Session")},
                errors=read_errors,
            ),
            "delete": _operation(
                "closeSession",
                "sessions",
                "close one of the caller's sessions; its running workflows finish normally",
                {"204": {"description": "closed"}},
                errors=read_errors,
            ),
        },
    }


def realtime_paths() -> dict[str, Any]:
    """``/ws``: the WebSocket of live run events, as a ``GET`` with an upgrade (OpenAPI
    3.1 has no WebSocket object)."""
    operation = _operation(
        "realtimeWebSocket",
        "realtime",
        "open a WebSocket of live run events (GET with Upgrade: websocket)",
        {
            "101": {
                "description": "Switching Protocols: the connection is now a WebSocket (RFC 6455)",
                "headers": {
                    "Upgrade": {"schema": {"const": "websocket"}},
                    "Connection": {"schema": {"type": "string", "examples": ["Upgrade"]}},
                    "Sec-WebSocket-Accept": {"schema": {"type": "string"}},
                },
            }
        },
        description=(
            "A WebSocket handshake (RFC 6455): send `GET /ws` with `Upgrade: websocket`, "
            "`Connection: Upgrade`, `Sec-WebSocket-Key` and `Sec-WebSocket-Version: 13`. "
            "The access token comes in the `Authorization: Bearer` header or the `token` "
            "query parameter; without a valid one the handshake answers 401 before any "
            "upgrade. A browser `Origin` the CORS policy does not allow answers 403.\n\n"
            'Client messages are JSON text frames: `{"subscribe": "<run_id>"}` '
            '(answered `{"subscribed": "<run_id>"}`, then the run\'s events, those '
            'already emitted first) and `{"unsubscribe": "<run_id>"}` (answered '
            '`{"unsubscribed": "<run_id>"}`). Events are pushed as '
            '`{"event": "node" | "run", "data": {...}}` with the fields of the SSE stream '
            "of `GET /runs/{run_id}/events`. A run that is not the caller's gets "
            '`{"error": "not_found", "run_id": ...}`. Frames above 64 KiB close the '
            "socket with 1009, too many messages per second with 1008, and it closes "
            "with 1008 when the token expires."
        ),
        errors=("BadRequest", "Unauthorized", "Forbidden", "TooManyRequests"),
    )
    operation["parameters"] = [
        {
            "name": "token",
            "in": "query",
            "required": False,
            "description": "the access token, for clients that cannot set headers "
            "(browsers); instead of the Authorization header",
            "schema": {"type": "string"},
        },
        {
            "name": "Upgrade",
            "in": "header",
            "required": True,
            "schema": {"const": "websocket"},
        },
    ]
    return {"/ws": {"get": operation}}


def _operation(
    operation_id: str,
    tag: str,
    summary: str,
    responses: dict[str, Any],
    *,
    description: str = "",
    errors: tuple[str, ...] = (),
) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": operation_id, "tags": [tag], "summary": summary}
    if description:
        operation["description"] = description
    every = {**responses, **{str(_PROBLEMS[name][0]): _error(name) for name in errors}}
    every["500"] = _error("InternalError")
    operation["responses"] = {code: every[code] for code in sorted(every)}
    return operation


def _public(operation_id: str, summary: str, schema: str | None) -> dict[str, Any]:
    ok = _json(summary, schema) if schema else {"description": summary}
    if schema is None and operation_id == "openapi":
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    return {
        **_operation(operation_id, "service", summary, {"200": ok}),
        "security": PUBLIC,
    }


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": _content({"$ref": _SCHEMAS + schema})}


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": _content({"$ref": _SCHEMAS + schema})}


def _error(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}
