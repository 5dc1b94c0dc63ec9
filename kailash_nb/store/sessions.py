"""``SessionStore``: agent-UI sessions, persisted so they survive a gateway restart.

Every read is scoped by owner: a session is found only with its own ``tenant_id`` and
``subject``, so another tenant's or user's session id looks exactly like an unknown
one. The store is synchronous; the async front end is
``kailash_nb.middleware.agent_ui.AgentUIMiddleware``::

    store = SessionStore("sqlite:///gateway.db")
    row = store.insert(SessionRow(...))
    store.get(row.session_id, tenant_id="acme", subject="alice")
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from kailash_nb.store.database import get_engine
from kailash_nb.store.schema import migrate, sessions

__all__ = ["SessionRow", "SessionStore"]


@dataclass(frozen=True)
class SessionRow:
    """One stored session."""

    session_id: str
    tenant_id: str
    subject: str
    metadata: dict[str, Any]
    max_concurrent_workflows: int | None
    max_memory_mb: int | None
    created_at: float
    closed_at: float | None = None


class SessionStore:
    """Owner-scoped create/read/close/list of sessions in the ``kailash_nb_sessions`` table.

    Args:
        url: database URL; ``None`` uses ``KAILASH_NB_DATABASE_URL`` or the default
            SQLite file. Opening migrates the schema.
        engine: an engine whose database is already migrated (a tenant's database);
            overrides ``url``.

    Raises:
        StoreConfigurationError: bad URL or a schema newer than this code.
    """

    def __init__(self, url: str | None = None, *, engine: Engine | None = None) -> None:
        if engine is None:
            engine = get_engine(url)
            migrate(engine)
        self.engine = engine

    def insert(self, row: SessionRow) -> SessionRow:
        """Store a new open session and return it."""
        with self.engine.begin() as connection:
            connection.execute(
                sessions.insert().values(
                    session_id=row.session_id,
                    tenant_id=row.tenant_id,
                    subject=row.subject,
                    metadata=row.metadata,
                    max_concurrent_workflows=row.max_concurrent_workflows,
                    max_memory_mb=row.max_memory_mb,
                    created_at=row.created_at,
                    closed_at=None,
                )
            )
        return row

    def get(self, session_id: str, *, tenant_id: str, subject: str) -> SessionRow | None:
        """The open session ``session_id`` if ``tenant_id``/``subject`` own it, else ``None``."""
        query = sa.select(sessions).where(
            sessions.c.session_id == session_id, *self._owned(tenant_id, subject)
        )
        with self.engine.connect() as connection:
            found = connection.execute(query).first()
        return None if found is None else _row(found)

    def close(self, session_id: str, *, tenant_id: str, subject: str) -> bool:
        """Close the owner's open session; ``False`` when there is none to close."""
        with self.engine.begin() as connection:
            result = connection.execute(
                sessions.update()
                .where(sessions.c.session_id == session_id, *self._owned(tenant_id, subject))
                .values(closed_at=time.time())
            )
        return result.rowcount == 1

    def list(self, *, tenant_id: str, subject: str, limit: int = 100) -> list[SessionRow]:
        """The owner's open sessions, newest first, at most ``limit``."""
        query = (
            sa.select(sessions)
            .where(*self._owned(tenant_id, subject))
            .order_by(sessions.c.created_at.desc(), sessions.c.session_id)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [_row(found) for found in connection.execute(query)]

    @staticmethod
    def _owned(tenant_id: str, subject: str) -> tuple[Any, ...]:
        return (
            sessions.c.tenant_id == tenant_id,
            sessions.c.subject == subject,
            sessions.c.closed_at.is_(None),
        )


def _row(found: Any) -> SessionRow:
    return SessionRow(
        session_id=found.session_id,
        tenant_id=found.tenant_id,
        subject=found.subject,
        metadata=dict(found.metadata or {}),
        max_concurrent_workflows=found.max_concurrent_workflows,
        max_memory_mb=found.max_memory_mb,
        created_at=found.created_at,
        closed_at=found.closed_at,
    )
