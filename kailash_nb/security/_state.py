"""The security layer's persistent state: used refresh tokens, revoked sessions and the
authentication audit trail, in the store (SQLite by default, PostgreSQL by URL).

Because the state lives in the database, a refresh token used in one process is used
for all of them, and a session revoked anywhere is revoked everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from kailash_nb.store.engine import get_engine
from kailash_nb.store.schema import (
    auth_events,
    auth_revoked_sessions,
    auth_used_refresh_tokens,
    migrate,
)

__all__ = ["AuthEvent", "AuthState"]


@dataclass(frozen=True)
class AuthEvent:
    """One audit record of the authentication layer (never holds a token or password)."""

    seq: int
    at: float
    event: str
    subject: str | None
    tenant_id: str | None
    session_id: str | None
    detail: dict[str, Any] = field(default_factory=dict)


class AuthState:
    """Revocation state and audit trail in the store at ``url``.

    Args:
        url: database URL; ``None`` uses ``KAILASH_NB_DATABASE_URL`` or the default
            SQLite file.
        clock: seconds since the epoch.
    """

    def __init__(self, url: str | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = get_engine(url)
        migrate(self.engine)
        self._clock = clock

    def mark_refresh_used(self, jti: str, family: str, expires_at: float) -> bool:
        """Record the refresh token ``jti`` as used; ``False`` if it already was.

        The insert is the atomic step: of two concurrent uses, exactly one wins.
        """
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    auth_used_refresh_tokens.insert().values(
                        jti=jti, family=family, used_at=self._clock(), expires_at=expires_at
                    )
                )
        except sa.exc.IntegrityError:
            return False
        return True

    def revoke_session(self, family: str, *, reason: str, expires_at: float) -> bool:
        """Revoke every token of session ``family``; ``False`` if it already was revoked."""
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    auth_revoked_sessions.insert().values(
                        family=family,
                        reason=reason,
                        revoked_at=self._clock(),
                        expires_at=expires_at,
                    )
                )
        except sa.exc.IntegrityError:
            return False
        return True

    def is_revoked(self, family: str) -> bool:
        """Whether session ``family`` has been revoked."""
        query = sa.select(auth_revoked_sessions.c.family).where(
            auth_revoked_sessions.c.family == family
        )
        with self.engine.connect() as connection:
            return connection.execute(query).first() is not None

    def record(
        self,
        event: str,
        *,
        subject: str | None = None,
        tenant_id: str | None = None,
        session_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append one audit event."""
        with self.engine.begin() as connection:
            connection.execute(
                auth_events.insert().values(
                    at=self._clock(),
                    event=event,
                    subject=subject,
                    tenant_id=tenant_id,
                    family=session_id,
                    detail=detail or {},
                )
            )

    def events(
        self, *, event: str | None = None, session_id: str | None = None, limit: int = 100
    ) -> list[AuthEvent]:
        """The most recent audit events first, optionally of one kind or one session."""
        query = sa.select(auth_events).order_by(auth_events.c.seq.desc()).limit(limit)
        if event is not None:
            query = query.where(auth_events.c.event == event)
        if session_id is not None:
            query = query.where(auth_events.c.family == session_id)
        with self.engine.connect() as connection:
            return [
                AuthEvent(
                    seq=row.seq,
                    at=row.at,
                    event=row.event,
                    subject=row.subject,
                    tenant_id=row.tenant_id,
                    session_id=row.family,
                    detail=row.detail or {},
                )
                for row in connection.execute(query)
            ]

    def purge_expired(self) -> int:
        """Delete used-token and revocation rows whose tokens have all expired; return how
        many rows went."""
        now = self._clock()
        with self.engine.begin() as connection:
            used = connection.execute(
                auth_used_refresh_tokens.delete().where(auth_used_refresh_tokens.c.expires_at < now)
            ).rowcount
            revoked = connection.execute(
                auth_revoked_sessions.delete().where(auth_revoked_sessions.c.expires_at < now)
            ).rowcount
        return used + revoked
