"""The bodies of the gateway's fixed routes, as pydantic models.

Each model is the one description of a body: the OpenAPI document publishes its JSON
Schema (``contract.document``), and request models also validate what callers send
(``contract.bodies``, strict mode: no ``"5"`` for an integer). A model's docstring is its
published description. Workflow-specific bodies (a workflow's ``parameters`` and
``results``) come from the workflow's node types instead (``middleware.schemas``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kailash_nb.middleware.contract.fields import UriReference, Uuid
from kailash_nb.middleware.contract.session_metadata import ResourceLimits, SessionMetadata
from kailash_nb.run_status import RunStatus

__all__ = [
    "REQUEST_MODELS",
    "RESPONSE_MODELS",
    "ExecuteAccepted",
    "ExecuteRequest",
    "ExecuteResult",
    "FailedNode",
    "Health",
    "Problem",
    "Ready",
    "RefreshRequest",
    "ResourceLimits",
    "Run",
    "RunError",
    "RunFailedProblem",
    "RunNode",
    "RunTimeoutProblem",
    "Session",
    "SessionCreate",
    "SessionList",
    "SessionMetadata",
    "SessionResourceLimits",
    "TokenPair",
    "TokenRequest",
    "WorkflowInfo",
    "WorkflowList",
    "WorkflowNode",
    "WorkflowSummary",
]

_REQUEST = ConfigDict(strict=True, extra="forbid")


def _absent_is_none(schema: dict[str, Any]) -> None:
    # An optional member that may be left out but is never ``null``: drop the
    # ``default: null`` pydantic would publish for it.
    schema.pop("default", None)


def _optional(**kwargs: Any) -> Any:
    return Field(default=None, json_schema_extra=_absent_is_none, **kwargs)


# -- requests ---------------------------------------------------------------------------


class ExecuteRequest(BaseModel):
    """The body of ``POST /workflows/{name}/execute``."""

    model_config = _REQUEST

    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="the run's inputs, checked against the workflow's parameters schema",
    )
    session_id: str | None = Field(
        default=None,
        description="run in this session of the caller: the run holds one of the session's "
        "max_concurrent_workflows slots until it ends (429 with Retry-After when they are "
        "all taken; 404 for a session that is not the caller's); null or absent: no session",
    )


class SessionCreate(BaseModel):
    """The body of ``POST /sessions`` (optional; ``metadata`` may be left out, not null)."""

    model_config = _REQUEST

    metadata: SessionMetadata = _optional()


class TokenRequest(BaseModel):
    """A password sign-in; TOTP-enrolled users add ``totp`` or ``backup_code`` (not both)."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={"not": {"required": ["totp", "backup_code"]}},
    )

    username: str = Field(min_length=1, max_length=256)
    password: str = Field(max_length=1024, json_schema_extra={"writeOnly": True})
    totp: str = _optional(
        max_length=64,
        description="the authenticator app's 6-digit code; required (or backup_code) for "
        "TOTP-enrolled users, each code works once",
    )
    backup_code: str = _optional(
        max_length=64, description="an unused one-time backup code, instead of totp"
    )

    @model_validator(mode="after")
    def _one_second_factor(self) -> TokenRequest:
        if self.totp is not None and self.backup_code is not None:
            raise ValueError("send either totp or backup_code, not both")
        return self


class RefreshRequest(BaseModel):
    """A refresh token to exchange for a new pair (single use)."""

    model_config = _REQUEST

    refresh_token: str = Field(json_schema_extra={"writeOnly": True})


# -- responses --------------------------------------------------------------------------


class Problem(BaseModel):
    """RFC 9457 problem details. ``code`` is the stable error code (the suffix of
    ``type``); ``error_id`` finds the server's log record. Extension members (``run_id``,
    ``session_id`` ...) may follow."""

    model_config = ConfigDict(extra="allow")

    type: UriReference
    title: str
    status: int = Field(ge=100, le=599)
    detail: str
    code: str
    error_id: str
    instance: UriReference = _optional(description="the request's path")


class FailedNode(BaseModel):
    """One node that failed in a run."""

    node_id: str
    error_type: str
    error: str = _optional(
        description="the node's message, present only when the workflow's author allows "
        "node messages to be shown"
    )


class RunFailedProblem(Problem):
    """``422 run_failed``: the run started and failed; ``run_url`` has its record."""

    run_id: Uuid
    run_url: UriReference
    node_id: str | None = Field(description="the node that stopped the run, if any")
    failed_nodes: list[FailedNode] = Field(description="every node that failed")


class RunTimeoutProblem(Problem):
    """``504 run_timeout``: the run did not finish within its deadline."""

    run_id: Uuid
    run_url: UriReference


class Health(BaseModel):
    """Liveness. With a monitor's health checks, ``status`` is ``degraded`` while an
    alert fires (still 200), ``alerts`` holds each rule's state and ``events`` the most
    recent event alerts (``name`` and ``at``), oldest first."""

    status: str = Field(examples=["ok", "degraded"])
    alerts: list[dict[str, Any]] = _optional()
    evaluated_at: float | None = _optional()
    events: list[dict[str, Any]] = _optional()
    worker_pid: int = _optional(description="the answering worker (worker_processes > 1)")


class Ready(BaseModel):
    """The gateway can serve: its store answers and it is not stopping."""

    status: Literal["ready"]


class WorkflowSummary(BaseModel):
    """A served workflow in the listing."""

    name: str = Field(pattern="^[A-Za-z0-9_-]{1,64}$")
    description: str
    url: UriReference


class WorkflowList(BaseModel):
    """The workflows this gateway serves, by name."""

    workflows: list[WorkflowSummary]


class WorkflowNode(BaseModel):
    """A node of a served workflow."""

    id: str
    type: str


class WorkflowInfo(BaseModel):
    """A served workflow, its nodes and the JSON Schemas of its inputs and results."""

    name: str
    description: str
    workflow_id: str
    version: str
    nodes: list[WorkflowNode]
    execute_url: UriReference
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


class ExecuteResult(BaseModel):
    """A run that finished (``status`` completed) and its results."""

    run_id: Uuid
    status: Literal["completed"]
    results: dict[str, Any]
    cached: bool = _optional(
        description="true when answered from the result cache (cache_enabled): run_id and "
        "results are those of the earlier run"
    )


class ExecuteAccepted(BaseModel):
    """A run started in the background (``?wait=false``); poll ``run_url``."""

    run_id: Uuid
    status: Literal["running"]
    run_url: UriReference


class RunError(BaseModel):
    """Why a run did not complete."""

    message: str
    node_id: str | None = _optional(description="the node that stopped the run, if any")
    failed_nodes: list[FailedNode] = _optional()
    unavailable: bool = _optional(
        description="true when a node could not reach a store or service it needs: the "
        "same run may succeed later"
    )


class RunNode(BaseModel):
    """A node's state in a recorded run."""

    node_id: str
    state: str
    duration: float | None = None
    error: str | None = None


class Run(BaseModel):
    """A run started through the gateway, for its owner or an admin of its tenant."""

    run_id: Uuid
    workflow: str
    status: RunStatus
    created_at: float
    finished_at: float | None
    results: dict[str, Any] | None = _optional(
        description="once the run finished: its results (for a failed run, those of the "
        "nodes that completed); null when results_truncated"
    )
    results_truncated: bool = _optional(
        description="the results' JSON (results_size bytes) was above 256 KiB and was not "
        "stored; only the worker that ran it, until it restarts or forgets the run, "
        "answers them"
    )
    results_size: int = _optional()
    error: RunError = _optional()
    duration: float | None = _optional()
    nodes: list[RunNode] = _optional()


class TokenPair(BaseModel):
    """A new session's tokens (or a rotated pair)."""

    access_token: str
    refresh_token: str | None
    session_id: str
    expires_in: int
    refresh_expires_in: int | None
    token_type: Literal["Bearer"]


class SessionResourceLimits(BaseModel):
    """The limits in force for a session (``null``: none)."""

    max_concurrent_workflows: int | None
    max_memory_mb: int | None


class Session(BaseModel):
    """An open session of the caller (tenant and subject come from the token)."""

    session_id: Uuid
    tenant_id: str
    subject: str
    metadata: dict[str, Any]
    resource_limits: SessionResourceLimits
    active_runs: int = Field(ge=0)
    created_at: float = Field(description="seconds since the epoch")
    url: UriReference


class SessionList(BaseModel):
    """The caller's open sessions, newest first."""

    sessions: list[Session]


#: Models validated as request bodies (published in ``validation`` mode).
REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    ExecuteRequest,
    SessionCreate,
    TokenRequest,
    RefreshRequest,
)
#: Models only ever answered (published in ``serialization`` mode).
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    Problem,
    RunFailedProblem,
    RunTimeoutProblem,
    Health,
    Ready,
    WorkflowList,
    WorkflowInfo,
    ExecuteResult,
    ExecuteAccepted,
    Run,
    TokenPair,
    Session,
    SessionList,
)
