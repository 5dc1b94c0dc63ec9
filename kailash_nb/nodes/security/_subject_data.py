"""Everything the store holds about one data subject, as JSON-safe data (GDPR articles
15 and 20: access and portability).

A data subject is a user id: the ``subject`` the gateway's tokens carry and that its
sessions, runs, authentication events and audit records are filed under. The export
is read in one transaction (one consistent snapshot on PostgreSQL and SQLite alike) and
never holds a secret: no password hash, TOTP secret or backup-code hash; a second factor
appears as its enrolment time and the number of unused backup codes.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kailash_nb.store.audit_erasure import (
    identifier_filter,
    records_naming,
    replace_identifiers,
)
from kailash_nb.store.schema import (
    auth_backup_codes,
    auth_events,
    auth_revoked_sessions,
    auth_token_sessions,
    auth_totp,
    auth_users,
    gateway_runs,
    runs,
    sessions,
)

__all__ = ["EXPORT_SECTIONS", "export_subject"]

#: The sections of an export, besides ``subject`` and ``user``.
EXPORT_SECTIONS = ("token_sessions", "agent_sessions", "auth_events", "runs", "audit_records")


def export_subject(engine: Engine, subject: str) -> dict[str, Any]:
    """What the store at ``engine`` (migrated) holds about ``subject`` (a user id).

    ``user`` is ``None`` when the store has no account with that id (a subject known
    only from tokens, runs or audit records still has those exported). ``counts`` gives
    the number of items per section.
    """
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        elif connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN")
        try:
            user = _user(connection, subject)
            identifiers = [subject]
            if user is not None and user["username"] != subject:
                identifiers.append(user["username"])
            export: dict[str, Any] = {
                "subject": subject,
                "user": user,
                "token_sessions": _token_sessions(connection, subject),
                "agent_sessions": _agent_sessions(connection, subject),
                "auth_events": _auth_events(connection, identifiers),
                "runs": _runs(connection, subject),
                "audit_records": _audit_records(connection, identifiers),
            }
        finally:
            connection.rollback()
    export["counts"] = {
        "user": int(export["user"] is not None),
        **{section: len(export[section]) for section in EXPORT_SECTIONS},
    }
    return export


def _user(connection: Connection, subject: str) -> dict[str, Any] | None:
    row = connection.execute(
        sa.select(
            auth_users.c.user_id,
            auth_users.c.username,
            auth_users.c.tenant_id,
            auth_users.c.roles,
            auth_users.c.created_at,
            auth_users.c.updated_at,
        ).where(auth_users.c.user_id == subject)
    ).first()
    if row is None:
        return None
    enrolled_at = connection.execute(
        sa.select(auth_totp.c.enrolled_at).where(auth_totp.c.user_id == subject)
    ).scalar()
    unused_codes = connection.execute(
        sa.select(sa.func.count())
        .select_from(auth_backup_codes)
        .where(auth_backup_codes.c.user_id == subject, auth_backup_codes.c.used_at.is_(None))
    ).scalar_one()
    return {
        "user_id": row.user_id,
        "username": row.username,
        "tenant_id": row.tenant_id,
        "roles": list(row.roles or []),
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "second_factor": (
            None
            if enrolled_at is None
            else {"type": "totp", "enrolled_at": enrolled_at, "unused_backup_codes": unused_codes}
        ),
    }


def _token_sessions(connection: Connection, subject: str) -> list[dict[str, Any]]:
    query = (
        sa.select(
            auth_token_sessions,
            auth_revoked_sessions.c.reason,
            auth_revoked_sessions.c.revoked_at,
        )
        .select_from(
            auth_token_sessions.outerjoin(
                auth_revoked_sessions,
                auth_revoked_sessions.c.family == auth_token_sessions.c.family,
            )
        )
        .where(auth_token_sessions.c.subject == subject)
        .order_by(auth_token_sessions.c.issued_at, auth_token_sessions.c.family)
    )
    return [
        {
            "session_id": row.family,
            "tenant_id": row.tenant_id,
            "issued_at": row.issued_at,
            "expires_at": row.expires_at,
            "revoked": None
            if row.revoked_at is None
            else {"reason": row.reason, "at": row.revoked_at},
        }
        for row in connection.execute(query)
    ]


def _agent_sessions(connection: Connection, subject: str) -> list[dict[str, Any]]:
    query = (
        sa.select(sessions)
        .where(sessions.c.subject == subject)
        .order_by(sessions.c.created_at, sessions.c.session_id)
    )
    return [
        {
            "session_id": row.session_id,
            "tenant_id": row.tenant_id,
            "metadata": row.metadata,
            "max_concurrent_workflows": row.max_concurrent_workflows,
            "max_memory_mb": row.max_memory_mb,
            "created_at": row.created_at,
            "closed_at": row.closed_at,
        }
        for row in connection.execute(query)
    ]


def _auth_events(connection: Connection, identifiers: list[str]) -> list[dict[str, Any]]:
    """The subject's events and other events that name them (as erasure finds them)."""
    query = (
        sa.select(auth_events)
        .where(
            sa.or_(
                auth_events.c.subject.in_(identifiers),
                identifier_filter(sa.cast(auth_events.c.detail, sa.Text), identifiers),
            )
        )
        .order_by(auth_events.c.seq)
    )
    rows = [
        row
        for row in connection.execute(query)
        if row.subject in identifiers or _names(row.detail, identifiers)
    ]
    return [
        {
            "seq": int(row.seq),
            "at": row.at,
            "event": row.event,
            "by_subject": row.subject in identifiers,
            "tenant_id": row.tenant_id,
            "session_id": row.family,
            "detail": row.detail or {},
        }
        for row in rows
    ]


def _runs(connection: Connection, subject: str) -> list[dict[str, Any]]:
    """The gateway runs the subject started, with the run history's parameters and
    timing of each (runs started elsewhere, a notebook's, have no owner)."""
    query = (
        sa.select(
            gateway_runs,
            runs.c.parameters,
            runs.c.started_at,
            runs.c.duration,
            runs.c.error.label("run_error"),
        )
        .select_from(gateway_runs.outerjoin(runs, runs.c.run_id == gateway_runs.c.run_id))
        .where(gateway_runs.c.subject == subject)
        .order_by(gateway_runs.c.created_at, gateway_runs.c.run_id)
    )
    return [
        {
            "run_id": row.run_id,
            "tenant_id": row.tenant_id,
            "workflow_name": row.workflow_name,
            "status": row.status,
            "parameters": row.parameters,
            "results": _json_or_text(row.results),
            "results_truncated": row.results is None and row.results_size is not None,
            "error": row.error if row.error is not None else row.run_error,
            "created_at": row.created_at,
            "started_at": row.started_at,
            "finished_at": row.finished_at,
            "duration": row.duration,
        }
        for row in connection.execute(query)
    ]


def _audit_records(connection: Connection, identifiers: list[str]) -> list[dict[str, Any]]:
    """The records whose subject is the subject's, or whose resource or detail names
    them (as erasure finds them)."""
    query = records_naming(identifiers)
    rows = [
        row
        for row in connection.execute(query)
        if row.subject in identifiers or _names([row.resource, row.detail], identifiers)
    ]
    return [
        {
            "tenant_id": row.tenant_id,
            "seq": int(row.seq),
            "at": row.at_us / 1_000_000,
            # Another subject's record that names this one: who acted is theirs to keep.
            "by_subject": row.subject in identifiers,
            "action": row.action,
            "resource": row.resource,
            "decision": row.decision,
            "rule_ids": _json_or_text(row.rule_ids),
            "run_id": row.run_id,
            "cached": bool(row.cached),
            "detail": _json_or_text(row.detail),
            "hash": row.hash,
        }
        for row in rows
    ]


def _names(value: Any, identifiers: list[str]) -> bool:
    """Whether ``value`` holds one of ``identifiers`` as a whole word."""
    return replace_identifiers(value, identifiers, "\x00") != value


def _json_or_text(text: str | None) -> Any:
    """Stored JSON text as data; text that does not parse is given back as it is."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
