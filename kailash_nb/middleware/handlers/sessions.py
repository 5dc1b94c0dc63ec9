"""Session routes, and the session slot a workflow run holds.

* ``POST /sessions`` with an optional ``{"metadata": {...}}``: 201, the new session of
  the caller. Tenant and subject come from the token only.
* ``GET /sessions``: the caller's open sessions (``?limit=`` 1..1000, default 100,
  ASCII digits only).
* ``GET /sessions/{id}``, ``DELETE /sessions/{id}`` (204): the caller's session; any
  other id, another tenant's or user's included, is the same 404 (AUTHZ-09).

On every session route an ``X-Tenant-ID`` header naming another tenant than the
token's is 403 (AUTHZ-10), whatever ``tenant_isolation`` is.

A run executed with ``"session_id"`` in the execute body (:func:`start_in_session`)
counts against the session's ``max_concurrent_workflows``: a run beyond it is 429
with ``Retry-After``; the slot is released when the run's task ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import tornado.web

from kailash_nb.middleware._problems import ProblemError
from kailash_nb.middleware.agent_ui import (
    SessionLimitError,
    SessionMetadataError,
    SessionNotFoundError,
)
from kailash_nb.middleware.contract import operations
from kailash_nb.middleware.contract.models import SessionCreate
from kailash_nb.middleware.execution import StartedRun
from kailash_nb.middleware.handlers.base import GatewayHandler
from kailash_nb.middleware.identity import Identity

if TYPE_CHECKING:
    from kailash_nb.middleware._gateway_state import GatewayState

__all__ = ["SessionHandler", "SessionListHandler", "start_in_session"]

#: Seconds a client refused for a full session is told to wait.
RETRY_AFTER_SECONDS = 1


class _SessionRoute(GatewayHandler):
    def _owner(self) -> dict[str, str]:
        """The caller as ``tenant_id``/``subject`` keywords; 403 when an ``X-Tenant-ID``
        header names another tenant (checked in the verb, once any body is read, so the
        connection stays usable)."""
        claimed = self.request.headers.get("X-Tenant-ID")
        if claimed is not None and claimed != self.identity.tenant_id:
            raise ProblemError(
                403, "tenant_mismatch", "the tenant comes from the token; drop X-Tenant-ID"
            )
        return {"tenant_id": self.identity.tenant_id, "subject": self.identity.subject}

    def _session_json(self, session: Any) -> dict[str, Any]:
        return session.to_dict(self.gateway.agent_ui.active_runs(session.session_id))


@tornado.web.stream_request_body
class SessionListHandler(_SessionRoute):
    """``GET /sessions`` (the caller's) and ``POST /sessions`` (create one)."""

    route = "/sessions"
    contract = operations.serving(GET=operations.LIST_SESSIONS, POST=operations.CREATE_SESSION)

    async def get(self) -> None:
        """List the caller's open sessions, newest first."""
        owner = self._owner()
        limit = self.query()["limit"]
        sessions = await self.gateway.agent_ui.list_sessions(**owner, limit=limit)
        self.write_json({"sessions": [self._session_json(session) for session in sessions]})

    async def post(self) -> None:
        """Create a session owned by the caller."""
        owner = self._owner()
        # Strictly, as published: "metadata": null is a 400, 1.0 is the integer 1.
        request = self.body(SessionCreate, {"metadata": "invalid_session_metadata"})
        metadata = request.metadata
        if metadata is not None:
            metadata = metadata.model_dump(exclude_unset=True)
        if isinstance(metadata, dict) and metadata.get("tenant_id", self.identity.tenant_id) != (
            self.identity.tenant_id
        ):
            raise ProblemError(
                403, "tenant_mismatch", "the tenant comes from the token; drop metadata.tenant_id"
            )
        try:
            session = await self.gateway.agent_ui.create_session_for(**owner, metadata=metadata)
        except SessionMetadataError as exc:
            raise ProblemError(400, "invalid_session_metadata", str(exc)) from None
        self.set_header("Location", f"/sessions/{session.session_id}")
        self.write_json(self._session_json(session), status=201)


class SessionHandler(_SessionRoute):
    """``GET`` and ``DELETE /sessions/{id}``: the caller's session, else 404."""

    route = "/sessions/{session_id}"
    contract = operations.serving(GET=operations.GET_SESSION, DELETE=operations.CLOSE_SESSION)

    async def get(self, session_id: str) -> None:
        """Answer the session."""
        try:
            session = await self.gateway.agent_ui.get_session(session_id, **self._owner())
        except SessionNotFoundError:
            raise _not_found() from None
        self.write_json(self._session_json(session))

    async def delete(self, session_id: str) -> None:
        """Close the session (204); its running workflows finish normally."""
        try:
            await self.gateway.agent_ui.close_session(session_id, **self._owner())
        except SessionNotFoundError:
            raise _not_found() from None
        self.set_status(204)
        self.finish()


async def start_in_session(
    gateway: GatewayState,
    identity: Identity,
    session_id: object,
    start: Callable[[], StartedRun],
) -> StartedRun:
    """``start()`` the run, holding a slot of ``session_id`` (if not ``None``) until the
    run's task ends (completed, failed, or a ``?wait=false`` run finishing). The
    returned run's ``task`` ends only after the slot is released.

    Raises:
        ProblemError: 400 for a non-string id, 404 for a session that is not the
            caller's, 429 (``Retry-After``) when the session's runs are at its limit.
    """
    if session_id is None:
        return start()
    if not isinstance(session_id, str):
        raise ProblemError(400, "invalid_session_id", "session_id must be a string")
    try:
        slot = await gateway.agent_ui.acquire_run_slot(
            session_id, tenant_id=identity.tenant_id, subject=identity.subject
        )
    except SessionNotFoundError:
        raise _not_found() from None
    except SessionLimitError as exc:
        raise ProblemError(
            429,
            "session_limit_reached",
            str(exc),
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            extra={"session_id": session_id, "max_concurrent_workflows": exc.limit},
        ) from None
    try:
        started = start()
    except BaseException:
        slot.release()
        raise
    return StartedRun(
        gateway.agent_ui.hold_until_done(slot, started.task), started.started, started.run_id
    )


def _not_found() -> ProblemError:
    return ProblemError(404, "session_not_found", "no session with that id")
