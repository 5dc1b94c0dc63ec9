"""Sessions of the agent-UI middleware: :class:`Session` (an id string carrying its
owner), the owner rule of every call, and the errors the middleware raises.

The owner of a session is a ``(tenant_id, subject)`` pair. :func:`resolve_owner` reads
the owner a call names: ``tenant_id`` with ``subject``, or ``user_id="tenant:user"``,
else the owner a ``Session`` passed as the id carries, else the anonymous owner
(``default:anonymous``)::

    resolve_owner(session, None, None, None)        # the session's own owner
    resolve_owner("4f1c...", None, None, "acme:ada")  # ("acme", "ada")
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kailash_nb.middleware.contract.session_metadata import SessionMetadataError
from kailash_nb.middleware.identity import ANONYMOUS
from kailash_nb.sdk_exceptions import KailashException
from kailash_nb.workflow.graph import Workflow

__all__ = [
    "DEFAULT_TENANT",
    "ExecutionNotFoundError",
    "Session",
    "SessionLimitError",
    "SessionNotFoundError",
    "WorkflowNotFoundError",
    "is_session_id",
    "owner_of",
    "resolve_owner",
]

_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")
#: Tenant of a session created without one (the open gateway's anonymous tenant).
DEFAULT_TENANT = "default"
_MAX_OWNER_CHARS = 256


class SessionNotFoundError(KailashException, LookupError, ValueError):
    """No open session with that id belongs to the caller (unknown, closed or foreign).

    Also a ``ValueError``, what Kailash raises for an unknown session.
    """


class ExecutionNotFoundError(KailashException, LookupError, ValueError):
    """No execution with that id belongs to the caller's session (also a ``ValueError``,
    as in Kailash)."""


class WorkflowNotFoundError(KailashException, LookupError, ValueError):
    """No workflow with that id is registered for the session nor shared (also a
    ``ValueError``, as in Kailash)."""


class SessionLimitError(KailashException):
    """The session already runs ``limit`` workflows; retry when one ends."""

    def __init__(self, session_id: str, limit: int) -> None:
        super().__init__(
            f"session {session_id} already runs {limit} workflow(s), its "
            f"max_concurrent_workflows; retry when one finishes"
        )
        self.session_id = session_id
        self.limit = limit


class Session(str):
    """An open session: its id (this object *is* the id string, so it can be passed
    wherever Kailash passes a session id) carrying its owner and details.

    Passing a ``Session`` back to the middleware names its owner too; a plain id
    string needs the owner given with it (``user_id=`` or ``tenant_id=``/``subject=``).

    Attributes:
        session_id: the id as a plain string.
        tenant_id, subject: the owner.
        metadata: the validated metadata as stored (``tenant_id`` set to the owner's).
        max_concurrent_workflows: enforced per session; ``None`` for no limit.
        max_memory_mb: recorded, not enforced in-process.
        created_at: seconds since the epoch.
        workflows: ``workflow_id -> Workflow`` registered for this session in this
            process (a live dict: adding to it registers).
        active: ``True`` (closed sessions are not returned).
    """

    session_id: str
    tenant_id: str
    subject: str
    metadata: dict[str, Any]
    max_concurrent_workflows: int | None
    max_memory_mb: int | None
    created_at: float
    workflows: dict[str, Any]
    active: bool

    def __new__(
        cls,
        session_id: str,
        *,
        tenant_id: str,
        subject: str,
        metadata: dict[str, Any] | None = None,
        max_concurrent_workflows: int | None = None,
        max_memory_mb: int | None = None,
        created_at: float = 0.0,
        workflows: dict[str, Any] | None = None,
        executions: Callable[[], dict[str, dict[str, Any]]] | None = None,
    ) -> Session:
        """Make the session object; see the class attributes."""
        self = super().__new__(cls, session_id)
        values = {
            "session_id": str(session_id),
            "tenant_id": tenant_id,
            "subject": subject,
            "metadata": metadata if metadata is not None else {},
            "max_concurrent_workflows": max_concurrent_workflows,
            "max_memory_mb": max_memory_mb,
            "created_at": created_at,
            "workflows": workflows if workflows is not None else {},
            "active": True,
            "_executions": executions,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)
        return self

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Session is read-only (cannot set {name!r})")

    def __repr__(self) -> str:
        return f"Session({self.session_id!r}, owner={self.user_id!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (str, (self.session_id,))

    @property
    def user_id(self) -> str:
        """The owner in the ``tenant:user`` form."""
        return f"{self.tenant_id}:{self.subject}"

    def add_workflow(self, workflow_id: str, workflow: Any) -> None:
        """Register ``workflow`` for this session (Kailash's ``WorkflowSession`` call;
        ``AgentUIMiddleware.register_workflow`` also builds a builder and checks it).

        Raises:
            TypeError: ``workflow`` is not a built ``Workflow``.
        """
        if not isinstance(workflow, Workflow):
            raise TypeError(f"add_workflow needs a built Workflow, got {type(workflow).__name__}")
        self.workflows[workflow_id] = workflow

    @property
    def executions(self) -> dict[str, dict[str, Any]]:
        """``execution_id -> status dict`` of this session's executions in this process."""
        source = self.__dict__["_executions"]
        return source() if source is not None else {}

    def to_dict(self, active_runs: int = 0) -> dict[str, Any]:
        """The session as a JSON-ready dict (the HTTP representation)."""
        return {
            "session_id": self.session_id,
            "tenant_id": self.tenant_id,
            "subject": self.subject,
            "metadata": self.metadata,
            "resource_limits": {
                "max_concurrent_workflows": self.max_concurrent_workflows,
                "max_memory_mb": self.max_memory_mb,
            },
            "active_runs": active_runs,
            "created_at": self.created_at,
            "url": f"/sessions/{self.session_id}",
        }


def owner_of(user_id: object, tenant_id: str | None) -> tuple[str, str]:
    """The ``(tenant_id, subject)`` of ``user_id`` (``"tenant:user"`` or ``"user"``),
    checked against the metadata's ``tenant_id`` when one is given.

    Raises:
        SessionMetadataError: an empty or over-long part, or a tenant prefix other than
            ``tenant_id``.
    """
    if not isinstance(user_id, str) or not user_id:
        raise SessionMetadataError("user_id must be a non-empty string")
    prefix, colon, rest = user_id.partition(":")
    if tenant_id is None:
        tenant, subject = (prefix, rest) if colon else (DEFAULT_TENANT, user_id)
    elif colon and prefix == tenant_id:
        tenant, subject = tenant_id, rest
    elif colon:
        raise SessionMetadataError(
            "user_id names a tenant (the part before ':') other than metadata.tenant_id"
        )
    else:
        tenant, subject = tenant_id, user_id
    for name, value in (("tenant", tenant), ("user", subject)):
        if not value or len(value) > _MAX_OWNER_CHARS:
            raise SessionMetadataError(f"the {name} part of user_id must be 1-256 characters")
    return tenant, subject


def is_session_id(value: object) -> bool:
    """Whether ``value`` has the form of a session id (1-36 letters, digits, ``_``, ``-``)."""
    return isinstance(value, str) and _SESSION_ID.fullmatch(value) is not None


def resolve_owner(
    session_id: object, tenant_id: str | None, subject: str | None, user_id: str | None
) -> tuple[str, str]:
    """The ``(tenant_id, subject)`` a call names: given explicitly (``tenant_id`` with
    ``subject``, or ``user_id="tenant:user"``), else the owner a :class:`Session` passed
    as ``session_id`` carries, else the anonymous owner.

    Raises:
        TypeError: only one of ``tenant_id`` and ``subject``, or both forms at once.
        SessionMetadataError: a malformed ``user_id``.
    """
    if (tenant_id is None) != (subject is None):
        raise TypeError("name the owner with both tenant_id and subject (or user_id)")
    if tenant_id is not None and subject is not None:
        if user_id is not None:
            raise TypeError("name the owner with user_id or tenant_id/subject, not both")
        return tenant_id, subject
    if user_id is not None:
        return owner_of(user_id, None)
    if isinstance(session_id, Session):
        return session_id.tenant_id, session_id.subject
    return ANONYMOUS.tenant_id, ANONYMOUS.subject
