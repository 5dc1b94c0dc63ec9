"""The security layer's persistent state: used refresh tokens, revoked sessions, the
sessions of each subject and the authentication audit trail, in the store (SQLite by
default, PostgreSQL by URL).

Because the state lives in the database, a refresh token used in one process is used
for all of them, and a session revoked anywhere is revoked everywhere.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from kailash_nb.store.database import get_engine
from kailash_nb.store.schema import (
    auth_events,
    auth_revoked_sessions,
    auth_token_sessions,
    auth_used_refresh_tokens,
    migrate,
)

__all__ = ["REVOCATION_CACHE_SECONDS", "AuthEvent", "AuthState"]


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


#: Longest time a cached "not revoked" answer is trusted (the revocation propagation
#: bound for revocations made by another process or another ``AuthState``).
REVOCATION_CACHE_SECONDS = 1.0

#: Most session families whose "not revoked" answer is cached (least recently used go).
REVOCATION_CACHE_SIZE = 4096

#: Session ids per ``IN (...)`` query of ``revoked_among``.
_REVOKED_BATCH = 500


class AuthState:
    """Revocation state and audit trail in the store at ``url``.

    ``is_revoked(family, cached=True)`` may answer "not revoked" from a small in-process
    LRU cache (at most ``revocation_cache_size`` families) for at most
    ``revocation_cache_seconds`` (default 1 s) after the store said so. Revocations made
    through this ``AuthState`` drop the family from the cache at once, so they take
    effect immediately; a revocation made by another process (or another ``AuthState``
    on the same store) is honoured within that bound. Only negative answers are cached;
    ``cached=False`` always reads the store.

    Args:
        url: database URL; ``None`` uses ``KAILASH_NB_DATABASE_URL`` or the default
            SQLite file.
        clock: seconds since the epoch.
        revocation_cache_seconds: how long a "not revoked" answer is reused; ``0``
            turns the cache off.
        revocation_cache_size: how many families the cache holds at most.
        cache_clock: monotonic seconds for the cache's expiry (tests pin it).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        clock: Callable[[], float] = time.time,
        revocation_cache_seconds: float = REVOCATION_CACHE_SECONDS,
        revocation_cache_size: int = REVOCATION_CACHE_SIZE,
        cache_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= revocation_cache_seconds <= REVOCATION_CACHE_SECONDS:
            raise ValueError(
                "revocation_cache_seconds must be between 0 and "
                f"{REVOCATION_CACHE_SECONDS}, got {revocation_cache_seconds!r}"
            )
        if revocation_cache_size < 1:
            raise ValueError(
                f"revocation_cache_size must be at least 1, got {revocation_cache_size!r}"
            )
        self.engine = get_engine(url)
        migrate(self.engine)
        self._clock = clock
        self._cache_seconds = revocation_cache_seconds
        self._cache_size = revocation_cache_size
        self._cache_clock = cache_clock
        self._not_revoked: OrderedDict[str, float] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._generation = 0
        self._revoked_query = sa.select(auth_revoked_sessions.c.family).where(
            auth_revoked_sessions.c.family == sa.bindparam("family")
        )

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
        """Revoke every token of session ``family``; ``False`` if it already was revoked.

        The family leaves the "not revoked" cache at once.
        """
        self._forget(family)
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
        finally:
            self._forget(family)
        return True

    def record_session(
        self, family: str, *, subject: str, tenant_id: str, expires_at: float
    ) -> None:
        """Remember that ``subject`` holds session ``family`` until ``expires_at``, so
        ``revoke_subject`` finds it."""
        with self.engine.begin() as connection:
            connection.execute(
                auth_token_sessions.insert().values(
                    family=family,
                    subject=subject,
                    tenant_id=tenant_id,
                    issued_at=self._clock(),
                    expires_at=expires_at,
                )
            )

    def revoke_subject(
        self, subject: str, *, tenant_id: str | None = None, reason: str
    ) -> list[str]:
        """Revoke every unexpired session of ``subject`` (of ``tenant_id`` only, when
        given) that is not revoked yet; the ids of those revoked now.

        Sessions started after the sessions are read (a login racing this call) are
        not revoked.
        """
        table = auth_token_sessions
        query = sa.select(table.c.family, table.c.expires_at).where(
            table.c.subject == subject, table.c.expires_at > self._clock()
        )
        if tenant_id is not None:
            query = query.where(table.c.tenant_id == tenant_id)
        with self.engine.connect() as connection:
            sessions = connection.execute(query).all()
        return [
            family
            for family, expires_at in sessions
            if self.revoke_session(family, reason=reason, expires_at=expires_at)
        ]

    def is_revoked(self, family: str, *, cached: bool = False) -> bool:
        """Whether session ``family`` has been revoked.

        Args:
            family: the session id.
            cached: accept a "not revoked" answer cached within the revocation
                propagation bound (see the class docstring) instead of reading the store.
        """
        use_cache = cached and self._cache_seconds > 0
        if use_cache:
            with self._cache_lock:
                until = self._not_revoked.get(family)
                if until is not None:
                    if self._cache_clock() < until:
                        self._not_revoked.move_to_end(family)
                        return False
                    del self._not_revoked[family]
                generation = self._generation
            started = self._cache_clock()
        with self.engine.connect() as connection:
            revoked = (
                connection.execute(self._revoked_query, {"family": family}).first() is not None
            )
        if use_cache and not revoked:
            with self._cache_lock:
                # A revocation by this process since the read began wins over the read.
                if generation == self._generation:
                    self._not_revoked[family] = started + self._cache_seconds
                    self._not_revoked.move_to_end(family)
                    if len(self._not_revoked) > self._cache_size:
                        self._not_revoked.popitem(last=False)
        return revoked

    def revoked_among(self, families: Iterable[str]) -> set[str]:
        """Those of ``families`` that are revoked, read from the store (never cached).

        One query per 500 session ids, so a process can re-check all its long-lived
        connections at once.
        """
        wanted = sorted(set(families))
        revoked: set[str] = set()
        if not wanted:
            return revoked
        column = auth_revoked_sessions.c.family
        with self.engine.connect() as connection:
            for start in range(0, len(wanted), _REVOKED_BATCH):
                batch = wanted[start : start + _REVOKED_BATCH]
                query = sa.select(column).where(column.in_(batch))
                revoked.update(connection.execute(query).scalars())
        return revoked

    def _forget(self, family: str) -> None:
        with self._cache_lock:
            self._generation += 1
            self._not_revoked.pop(family, None)

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
            ended = connection.execute(
                auth_token_sessions.delete().where(auth_token_sessions.c.expires_at < now)
            ).rowcount
        return used + revoked + ended
