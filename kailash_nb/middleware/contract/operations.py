"""Every operation the gateway serves, declared once.

An :class:`Operation` says what a route takes (path, header and query parameters, the
body's model) and what it answers (each status, its body model or media type, its
headers). The handlers read their inputs through it (``GatewayHandler.contract``) and
``contract.document`` renders the OpenAPI document from it. Operations whose path holds
``{name}`` are templates instantiated for each served workflow, with the members named
in ``body_refs``/``Reply.refs`` typed by that workflow's own schemas.

Errors are named problem answers (:data:`PROBLEMS`): ``errors=("NotFound", ...)``; every
operation also documents ``500``. HEAD (on GET routes) and OPTIONS are served on every
route and not listed per operation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel

from kailash_nb.middleware.contract import models
from kailash_nb.middleware.contract.query import BooleanQuery, IntegerQuery, QueryParameter

__all__ = [
    "FIXED_OPERATIONS",
    "PROBLEMS",
    "WORKFLOW_OPERATIONS",
    "Header",
    "Operation",
    "Parameter",
    "ProblemReply",
    "Reply",
    "metrics_operation",
    "serving",
]


@dataclass(frozen=True)
class Header:
    """A response header."""

    description: str
    schema: Mapping[str, Any]
    required: bool = False


@dataclass(frozen=True)
class Reply:
    """One documented answer: a JSON body of ``model``, or ``media_type`` with ``schema``
    (``media_type=None``: no body). ``refs`` types members of the model per served
    workflow (``{"results": "results"}`` -> ``<name>.results``)."""

    description: str
    model: type[BaseModel] | None = None
    media_type: str | None = "application/json"
    schema: Mapping[str, Any] | None = None
    headers: Mapping[str, Header] = field(default_factory=dict)
    refs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProblemReply:
    """A problem+json answer, published once under ``components.responses``."""

    status: int
    description: str
    model: type[BaseModel] = models.Problem
    headers: Mapping[str, Header] = field(default_factory=dict)


@dataclass(frozen=True)
class Parameter:
    """A path or header parameter, or a query parameter the handler reads itself
    (query parameters parsed for the handler are ``contract.query`` objects)."""

    name: str
    location: str
    schema: Mapping[str, Any]
    description: str = ""
    required: bool = True


@dataclass(frozen=True)
class Operation:
    """One method on one path; see the module docstring."""

    method: str
    path: str
    operation_id: str
    tag: str
    summary: str
    replies: Mapping[int, Reply]
    errors: tuple[str, ...] = ()
    description: str = ""
    public: bool = False
    query: tuple[QueryParameter, ...] = ()
    parameters: tuple[Parameter, ...] = ()
    body: type[BaseModel] | None = None
    body_required: bool = False
    body_refs: Mapping[str, str] = field(default_factory=dict)


def serving(**verbs: Operation) -> Mapping[str, Operation]:
    """A handler's ``contract``: the operation each HTTP verb serves, e.g.
    ``serving(GET=LIST_SESSIONS, POST=CREATE_SESSION)``.

    Raises:
        ValueError: a verb that is not the operation's method.
    """
    for verb, operation in verbs.items():
        if verb.lower() != operation.method:
            raise ValueError(f"{verb} cannot serve {operation.operation_id} ({operation.method})")
    return MappingProxyType(dict(verbs))


_RETRY_AFTER = Header("seconds to wait before retrying", {"type": "integer", "minimum": 0}, True)

#: The problem answers operations name in ``errors``.
PROBLEMS: dict[str, ProblemReply] = {
    "BadRequest": ProblemReply(
        400, "the request is malformed, or its query, body or parameters break the schema"
    ),
    "Unauthorized": ProblemReply(
        401,
        "missing, invalid or expired bearer token, or wrong credentials",
        headers={
            "WWW-Authenticate": Header("the Bearer challenge", {"type": "string"}, True),
        },
    ),
    "Forbidden": ProblemReply(
        403,
        "the token does not allow this (another tenant, an admin-only override), or the "
        "gateway's access policy denies the action (access_denied, node_access_denied)",
    ),
    "NotFound": ProblemReply(404, "no such workflow, run or session (or not the caller's)"),
    "PayloadTooLarge": ProblemReply(413, "the request body is above 1 MiB"),
    "UnsupportedMediaType": ProblemReply(415, "the body must be application/json"),
    "RunFailed": ProblemReply(
        422,
        "run_failed: the run started and a node failed; run_url holds the run",
        model=models.RunFailedProblem,
    ),
    "TooManyRequests": ProblemReply(
        429,
        "rate_limited, session_limit_reached or login_locked; retry after Retry-After",
        headers={"Retry-After": _RETRY_AFTER},
    ),
    "LoginLocked": ProblemReply(
        429,
        "login_locked (too many failed sign-ins for the account, the client address or "
        "the second factor) or rate_limited; retry after Retry-After, whatever the "
        "credentials",
        headers={"Retry-After": _RETRY_AFTER},
    ),
    "InternalError": ProblemReply(500, "unexpected failure; quote error_id to the operator"),
    "NotReady": ProblemReply(
        503,
        "not_ready (stopping or not started) or store_unreachable (with Retry-After)",
        headers={"Retry-After": Header("seconds to wait", {"type": "integer", "minimum": 0})},
    ),
    "Busy": ProblemReply(
        503,
        "busy (every run thread taken and the run queue full), shutting_down (the "
        "gateway accepts no new runs), audit_unavailable (the access decision could "
        "not be audited, so nothing ran) or dependency_unavailable (a node could not "
        "reach a store or service it needs); retry after Retry-After",
        headers={"Retry-After": _RETRY_AFTER},
    ),
    "RunTimeout": ProblemReply(
        504,
        "run_timeout: the run did not finish within its deadline",
        model=models.RunTimeoutProblem,
    ),
}

# Authenticated, rate-limited routes: a repeated Authorization header is 400, an
# X-Tenant-ID naming another tenant 403.
_AUTHED = ("BadRequest", "Unauthorized", "Forbidden", "TooManyRequests")
_WITH_BODY = ("PayloadTooLarge", "UnsupportedMediaType")

_UUID = {"type": "string", "format": "uuid"}
RUN_ID = Parameter("run_id", "path", _UUID)
SESSION_ID = Parameter("session_id", "path", _UUID)

LIMIT = IntegerQuery("limit", "at most this many sessions", 1, 1000, default=100)
WAIT = BooleanQuery("wait", "false: answer 202 at once and run in the background", default=True)

_TEXT = {"type": "string"}
_SSE_EVENT = {
    "type": "object",
    "description": "each event: `event: node` or `event: run`, whose `data` is JSON "
    '`{"run_id", "node_id", "state", "timestamp", "duration", "error"}`, or '
    "`event: node.step` (a step a running node reported, such as an agent's prompt_sent, "
    'tool_call, tool_result, answer), whose `data` is `{"run_id", "node_id", "step", '
    '"detail", "timestamp"}` (`detail`: a JSON object, size-capped, secrets scrubbed); '
    "nodes inside a cycle add `iteration`. The stream ends after the run's final event "
    "(comment lines keep it alive)",
    "properties": {
        "event": {"enum": ["node", "run", "node.step"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
    "required": ["event", "data"],
}

HEALTH = Operation(
    "get", "/health", "health", "service", "the process is up",
    {200: Reply("the process is up", models.Health)},
    public=True,
)  # fmt: skip
READY = Operation(
    "get", "/ready", "ready", "service", "the gateway can serve requests",
    {200: Reply("ready", models.Ready)},
    errors=("NotReady",),
    public=True,
)  # fmt: skip
OPENAPI = Operation(
    "get", "/openapi.json", "openapi", "service", "this document",
    {200: Reply("the OpenAPI 3.1 document", schema={"type": "object"})},
    errors=("TooManyRequests",),
    public=True,
)  # fmt: skip
DOCS = Operation(
    "get", "/docs", "docs", "service", "the interactive documentation page",
    {200: Reply("HTML page", media_type="text/html", schema=_TEXT)},
    errors=("TooManyRequests",),
    public=True,
)  # fmt: skip


def metrics_operation(public: bool) -> Operation:
    """``GET /metrics``: bearer token required unless the gateway was created with
    ``metrics_public=True``."""
    access = (
        "open to anyone (the gateway was created with metrics_public=True)"
        if public
        else "needs a bearer token (create the gateway with metrics_public=True to open it)"
    )
    return Operation(
        "get", "/metrics", "metrics", "service", "Prometheus metrics",
        {200: Reply(
            "metrics in the Prometheus text format", media_type="text/plain", schema=_TEXT
        )},
        errors=() if public else ("BadRequest", "Unauthorized", "Forbidden"),
        description=f"The answering worker's metrics; {access}.",
        public=public,
    )  # fmt: skip


METRICS = metrics_operation(public=False)

LIST_WORKFLOWS = Operation(
    "get", "/workflows", "listWorkflows", "workflows", "the workflows this gateway serves",
    {200: Reply("served workflows", models.WorkflowList)},
    errors=_AUTHED,
)  # fmt: skip
DESCRIBE_WORKFLOW = Operation(
    "get", "/workflows/{name}", "getWorkflow", "workflows", "describe the workflow",
    {200: Reply("the workflow and its schemas", models.WorkflowInfo)},
    errors=(*_AUTHED, "NotFound"),
)  # fmt: skip
EXECUTE = Operation(
    "post", "/workflows/{name}/execute", "executeWorkflow", "workflows", "run the workflow",
    {
        200: Reply(
            "the run finished",
            models.ExecuteResult,
            headers={
                "X-Cache": Header(
                    "hit or miss, when the result cache applies",
                    {"type": "string", "enum": ["hit", "miss"]},
                )
            },
            refs={"results": "results"},
        ),
        202: Reply(
            "the run started (wait=false); poll run_url",
            models.ExecuteAccepted,
            headers={"Location": Header("the run's URL", {"type": "string"}, True)},
        ),
    },
    errors=(*_AUTHED, "NotFound", *_WITH_BODY, "RunFailed", "Busy", "RunTimeout"),
    description="Every input is checked against the parameters schema before any node "
    "runs (400 invalid_parameters naming the path, or parameter_not_settable). Callers "
    "with the admin role may also send the code, query and address inputs "
    "(code, function, connection_string, url, endpoint, file_path, query); they reach "
    "nodes that declare such an input (a code node's code comes from its config and is "
    "never replaced). Anyone else gets 403 override_forbidden.",
    query=(WAIT,),
    body=models.ExecuteRequest,
    body_refs={"parameters": "parameters"},
)  # fmt: skip

GET_RUN = Operation(
    "get", "/runs/{run_id}", "getRun", "runs", "a run's status and, once finished, its results",
    {200: Reply("the run", models.Run)},
    errors=(*_AUTHED, "NotFound"),
    parameters=(RUN_ID,),
)  # fmt: skip
RUN_EVENTS = Operation(
    "get", "/runs/{run_id}/events", "streamRunEvents", "runs",
    "the run's events as Server-Sent Events, until it ends",
    {200: Reply("event stream", media_type="text/event-stream", schema=_SSE_EVENT)},
    errors=(*_AUTHED, "NotFound"),
    parameters=(RUN_ID,),
)  # fmt: skip

ISSUE_TOKEN = Operation(
    "post", "/auth/token", "issueToken", "auth", "sign in with a username and password",
    {200: Reply("a new session's tokens", models.TokenPair)},
    errors=("BadRequest", "Unauthorized", "NotFound", *_WITH_BODY, "LoginLocked"),
    description="401 codes: invalid_credentials (unknown user and wrong password alike), "
    "second_factor_required and invalid_second_factor (TOTP-enrolled users). 429 "
    "login_locked: too many failed sign-ins for the account, the client address or the "
    "second factor, whatever the credentials. 404 auth_not_configured: the gateway runs "
    "without authentication.",
    public=True,
    body=models.TokenRequest,
    body_required=True,
)  # fmt: skip
REFRESH_TOKEN = Operation(
    "post", "/auth/refresh", "refreshToken", "auth",
    "exchange a refresh token for a new pair (single use)",
    {200: Reply("rotated tokens", models.TokenPair)},
    errors=("BadRequest", "Unauthorized", "NotFound", *_WITH_BODY, "TooManyRequests"),
    public=True,
    body=models.RefreshRequest,
    body_required=True,
)  # fmt: skip

LIST_SESSIONS = Operation(
    "get", "/sessions", "listSessions", "sessions", "the caller's open sessions, newest first",
    {200: Reply("open sessions", models.SessionList)},
    errors=_AUTHED,
    query=(LIMIT,),
)  # fmt: skip
CREATE_SESSION = Operation(
    "post", "/sessions", "createSession", "sessions", "open a session owned by the caller",
    {201: Reply(
        "the new session",
        models.Session,
        headers={"Location": Header("the session's URL", {"type": "string"}, True)},
    )},
    errors=(*_AUTHED, *_WITH_BODY),
    body=models.SessionCreate,
)  # fmt: skip
GET_SESSION = Operation(
    "get", "/sessions/{session_id}", "getSession", "sessions", "one of the caller's sessions",
    {200: Reply("the session", models.Session)},
    errors=(*_AUTHED, "NotFound"),
    parameters=(SESSION_ID,),
)  # fmt: skip
CLOSE_SESSION = Operation(
    "delete", "/sessions/{session_id}", "closeSession", "sessions",
    "close one of the caller's sessions; its running workflows finish normally",
    {204: Reply("closed", media_type=None)},
    errors=(*_AUTHED, "NotFound"),
    parameters=(SESSION_ID,),
)  # fmt: skip

REALTIME = Operation(
    "get", "/ws", "realtimeWebSocket", "realtime",
    "open a WebSocket of live run events (GET with Upgrade: websocket)",
    {101: Reply(
        "Switching Protocols: the connection is now a WebSocket (RFC 6455)",
        media_type=None,
        headers={
            "Upgrade": Header("the new protocol", {"const": "websocket"}, True),
            "Sec-WebSocket-Accept": Header("the handshake's answer", {"type": "string"}, True),
        },
    )},
    errors=_AUTHED,
    description=(
        "A WebSocket handshake (RFC 6455): `GET /ws` with `Upgrade: websocket`, "
        "`Connection: Upgrade`, `Sec-WebSocket-Key` and `Sec-WebSocket-Version: 13`; a "
        "request without them answers 400 (problem+json) before any upgrade. The access "
        "token comes in the `Authorization: Bearer` header or the `token` query "
        "parameter; without a valid one the handshake answers 401. A browser `Origin` "
        "the CORS policy does not allow answers 403.\n\n"
        'Client messages are JSON text frames: `{"subscribe": "<run_id>"}` '
        '(answered `{"subscribed": "<run_id>"}`, then the run\'s events, those already '
        'emitted first) and `{"unsubscribe": "<run_id>"}` (answered '
        '`{"unsubscribed": "<run_id>"}`). Events are pushed as '
        '`{"event": "node" | "run" | "node.step", "data": {...}}` with the fields of the '
        'SSE stream of '
        '`GET /runs/{run_id}/events`. A run that is not the caller\'s gets '
        '`{"error": "not_found", "run_id": ...}`. Frames above 64 KiB close the socket '
        "with 1009, too many messages per second with 1008, and it closes with 1008 when "
        "the token expires."
    ),
    parameters=(
        Parameter(
            "token", "query", {"type": "string"},
            "the access token, for clients that cannot set headers (browsers); instead "
            "of the Authorization header",
            required=False,
        ),
        Parameter("Upgrade", "header", {"const": "websocket"}),
        Parameter("Connection", "header", {"const": "Upgrade"}),
        Parameter(
            "Sec-WebSocket-Key", "header",
            {"type": "string", "pattern": "^[A-Za-z0-9+/]{21}[AQgw]==$"},
            "16 random bytes, base64-encoded",
        ),
        Parameter("Sec-WebSocket-Version", "header", {"const": "13"}),
    ),
)  # fmt: skip

#: The operations every gateway serves, whatever its workflows (``/metrics`` as
#: protected; see :func:`metrics_operation`).
FIXED_OPERATIONS: tuple[Operation, ...] = (
    HEALTH,
    READY,
    OPENAPI,
    DOCS,
    METRICS,
    LIST_WORKFLOWS,
    GET_RUN,
    RUN_EVENTS,
    ISSUE_TOKEN,
    REFRESH_TOKEN,
    LIST_SESSIONS,
    CREATE_SESSION,
    GET_SESSION,
    CLOSE_SESSION,
    REALTIME,
)
#: Templates instantiated for each served workflow.
WORKFLOW_OPERATIONS: tuple[Operation, ...] = (DESCRIBE_WORKFLOW, EXECUTE)
