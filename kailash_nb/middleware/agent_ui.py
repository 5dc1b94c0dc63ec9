"""``AgentUIMiddleware``: per-user sessions of the gateway, reachable as ``gateway.agent_ui``.

A session belongs to one owner, a ``(tenant_id, subject)`` pair, and is persisted in
the store (table ``kailash_nb_sessions``), so it survives a gateway restart. Reading,
closing and listing are scoped by owner: another tenant's or user's session raises the
same :class:`SessionNotFoundError` as an unknown id (no existence oracle). Store calls
run in a worker thread, never on the event loop::

    session = await gateway.agent_ui.create_session(
        user_id="acme:alice",
        metadata={"resource_limits": {"max_concurrent_workflows": 2}},
    )
    await gateway.agent_ui.get_session(session.session_id, tenant_id="acme", subject="alice")

A run executed in a session (``POST /workflows/{name}/execute`` with ``"session_id"``)
holds one of the session's ``max_concurrent_workflows`` slots until it ends; counts are
kept in this process (per gateway instance).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread

from kailash_nb.middleware.contract.session_metadata import (
    SessionMetadata,
    SessionMetadataError,
    validate_metadata,
)
from kailash_nb.sdk_exceptions import KailashException
from kailash_nb.store.sessions import SessionRow, SessionStore

__all__ = [
    "AgentUIMiddleware",
    "RunSlot",
    "Session",
    "SessionLimitError",
    "SessionMetadataError",
    "SessionNotFoundError",
]

#: Tenant of a session created without one (the open gateway's anonymous tenant).
DEFAULT_TENANT = "default"
_MAX_OWNER_CHARS = 256


class SessionNotFoundError(KailashException, LookupError):
    """No open session with that id belongs to the caller (unknown, closed or foreign)."""


class SessionLimitError(KailashException):
    """The session already runs ``limit`` workflows; retry when one ends."""

    def __init__(self, session_id: str, limit: int) -> None:
        super().__init__(
            f"session {session_id} already runs {limit} workflow(s), its "
            f"max_concurrent_workflows; retry when one finishes"
        )
        self.session_id = session_id
        self.limit = limit


@dataclass(frozen=True)
class Session:
    """An open session.

    Attributes:
        session_id: a uuid4 string.
        tenant_id, subject: the owner.
        metadata: the validated metadata as stored (``tenant_id`` set to the owner's).
        max_concurrent_workflows: enforced per session; ``None`` for no limit.
        max_memory_mb: recorded, not enforced in-process.
        created_at: seconds since the epoch.
    """

    session_id: str
    tenant_id: str
    subject: str
    metadata: dict[str, Any] = field(default_factory=dict)
    max_concurrent_workflows: int | None = None
    max_memory_mb: int | None = None
    created_at: float = 0.0

    @property
    def user_id(self) -> str:
        """The owner in the ``tenant:user`` form."""
        return f"{self.tenant_id}:{self.subject}"

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


class RunSlot:
    """One run's hold on a session slot; :meth:`release` is idempotent."""

    def __init__(self, owner: AgentUIMiddleware | None, session_id: str | None) -> None:
        self._owner = owner
        self.session_id = session_id
        self._released = owner is None

    def release(self, *_: object) -> None:
        """Give the slot back (also usable as a task done-callback)."""
        if self._released or self._owner is None or self.session_id is None:
            return
        self._released = True
        self._owner._release(self.session_id)


class AgentUIMiddleware:
    """Sessions of one gateway: create, read, close and list them, and count their runs.

    Args:
        database_url: the store (default: ``KAILASH_NB_DATABASE_URL`` or the default
            SQLite file); opened, and migrated, on first use.
        store: an already opened :class:`SessionStore` (overrides ``database_url``).
        tenant_databases: a ``kailash_nb.store.tenant_databases.TenantDatabases``:
            each tenant's sessions live in that tenant's own database
            (``create_gateway(database_per_tenant=True)``); overrides both.
    """

    def __init__(
        self,
        database_url: str | None = None,
        store: SessionStore | None = None,
        *,
        tenant_databases: Any = None,
    ) -> None:
        self.database_url = database_url
        self.tenant_databases = tenant_databases
        self._store = store
        self._store_lock = threading.Lock()
        self._active: dict[str, int] = {}
        self._active_lock = threading.Lock()
        self._holders: set[asyncio.Task[Any]] = set()

    # -- sessions ----------------------------------------------------------------

    async def create_session(self, user_id: str, metadata: dict[str, Any] | None = None) -> Session:
        """Create a session for ``user_id``.

        The owner's tenant is ``metadata["tenant_id"]``, else the ``tenant`` of a
        ``"tenant:user"`` ``user_id``, else ``"default"``; the subject is ``user_id``
        without that ``tenant:`` prefix. ``metadata["resource_limits"]`` may set
        ``max_concurrent_workflows`` (positive int, enforced per session) and
        ``max_memory_mb`` (positive int, recorded but not enforced in-process).

        Raises:
            SessionMetadataError: invalid metadata or ``user_id``, or a ``user_id``
                tenant prefix that disagrees with ``metadata["tenant_id"]``.
        """
        checked = validate_metadata(metadata)
        tenant_id, subject = _owner(user_id, checked.tenant_id)
        return await self._create(tenant_id, subject, checked)

    async def create_session_for(
        self, *, tenant_id: str, subject: str, metadata: dict[str, Any] | None = None
    ) -> Session:
        """Create a session for an already verified owner (the HTTP route's caller).

        Raises:
            SessionMetadataError: invalid metadata, or ``metadata["tenant_id"]`` naming
                another tenant than ``tenant_id``.
        """
        checked = validate_metadata(metadata)
        if checked.tenant_id is not None and checked.tenant_id != tenant_id:
            raise SessionMetadataError("metadata.tenant_id must be the owner's tenant")
        return await self._create(tenant_id, subject, checked)

    async def get_session(self, session_id: str, *, tenant_id: str, subject: str) -> Session:
        """The open session ``session_id`` owned by ``tenant_id``/``subject``.

        Raises:
            SessionNotFoundError: unknown, closed, malformed or another owner's id.
        """
        if not _is_session_id(session_id):
            raise SessionNotFoundError("no session with that id")
        store = await self._open(tenant_id)
        row = await anyio.to_thread.run_sync(
            lambda: store.get(session_id, tenant_id=tenant_id, subject=subject)
        )
        if row is None:
            raise SessionNotFoundError("no session with that id")
        return _session(row)

    async def close_session(self, session_id: str, *, tenant_id: str, subject: str) -> None:
        """Close the owner's session; runs already executing in it finish normally.

        Raises:
            SessionNotFoundError: unknown, already closed, or another owner's id.
        """
        if not _is_session_id(session_id):
            raise SessionNotFoundError("no session with that id")
        store = await self._open(tenant_id)
        closed = await anyio.to_thread.run_sync(
            lambda: store.close(session_id, tenant_id=tenant_id, subject=subject)
        )
        if not closed:
            raise SessionNotFoundError("no session with that id")

    async def list_sessions(
        self, *, tenant_id: str, subject: str, limit: int = 100
    ) -> list[Session]:
        """The owner's open sessions, newest first (at most ``limit``, 1..1000).

        Raises:
            ValueError: ``limit`` out of range.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValueError(f"limit must be an int from 1 to 1000, got {limit!r}")
        store = await self._open(tenant_id)
        rows = await anyio.to_thread.run_sync(
            lambda: store.list(tenant_id=tenant_id, subject=subject, limit=limit)
        )
        return [_session(row) for row in rows]

    # -- run slots ---------------------------------------------------------------

    async def acquire_run_slot(self, session_id: str, *, tenant_id: str, subject: str) -> RunSlot:
        """Take one of the owner's session's ``max_concurrent_workflows`` slots.

        Raises:
            SessionNotFoundError: not the caller's open session.
            SessionLimitError: every slot is taken.
        """
        session = await self.get_session(session_id, tenant_id=tenant_id, subject=subject)
        limit = session.max_concurrent_workflows
        with self._active_lock:
            active = self._active.get(session_id, 0)
            if limit is not None and active >= limit:
                raise SessionLimitError(session_id, limit)
            self._active[session_id] = active + 1
        return RunSlot(self, session_id)

    def hold_until_done(self, slot: RunSlot, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        """A task that ends like ``task`` but only after releasing ``slot``.

        Awaiting it (rather than ``task``) guarantees the slot is free before the
        caller answers; ``?wait=false`` runs release it when they end.
        """
        holder = asyncio.get_running_loop().create_task(_release_after(task, slot))
        self._holders.add(holder)
        holder.add_done_callback(self._holders.discard)
        return holder

    async def settled(self) -> None:
        """Wait until every run holding a session slot has ended and released it."""
        while self._holders:
            await asyncio.wait(set(self._holders))

    def active_runs(self, session_id: str) -> int:
        """Runs of ``session_id`` holding a slot in this process."""
        with self._active_lock:
            return self._active.get(session_id, 0)

    def _release(self, session_id: str) -> None:
        with self._active_lock:
            remaining = self._active.get(session_id, 0) - 1
            if remaining > 0:
                self._active[session_id] = remaining
            else:
                self._active.pop(session_id, None)

    # -- helpers -----------------------------------------------------------------

    async def _create(self, tenant_id: str, subject: str, checked: SessionMetadata) -> Session:
        stored = checked.model_dump(mode="json")
        stored["tenant_id"] = tenant_id
        limits = checked.resource_limits
        row = SessionRow(
            session_id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            subject=subject,
            metadata=stored,
            max_concurrent_workflows=limits.max_concurrent_workflows,
            max_memory_mb=limits.max_memory_mb,
            created_at=time.time(),
        )
        store = await self._open(tenant_id)
        await anyio.to_thread.run_sync(store.insert, row)
        return _session(row)

    async def _open(self, tenant_id: str) -> SessionStore:
        if self.tenant_databases is not None:
            return await anyio.to_thread.run_sync(self._tenant_store, tenant_id)
        if self._store is not None:
            return self._store
        return await anyio.to_thread.run_sync(self._open_sync)

    def _tenant_store(self, tenant_id: str) -> SessionStore:
        database = self.tenant_databases.get(tenant_id)
        return database.resource("sessions", lambda engine: SessionStore(engine=engine))

    def _open_sync(self) -> SessionStore:
        with self._store_lock:
            if self._store is None:
                self._store = SessionStore(self.database_url)
            return self._store


async def _release_after(task: asyncio.Task[Any], slot: RunSlot) -> Any:
    try:
        await asyncio.wait({task})  # never cancels the run, unlike awaiting it
    except asyncio.CancelledError:
        task.add_done_callback(slot.release)
        raise
    slot.release()
    return task.result()


def _owner(user_id: object, tenant_id: str | None) -> tuple[str, str]:
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


def _is_session_id(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _session(row: SessionRow) -> Session:
    return Session(
        session_id=row.session_id,
        tenant_id=row.tenant_id,
        subject=row.subject,
        metadata=row.metadata,
        max_concurrent_workflows=row.max_concurrent_workflows,
        max_memory_mb=row.max_memory_mb,
        created_at=row.created_at,
    )
