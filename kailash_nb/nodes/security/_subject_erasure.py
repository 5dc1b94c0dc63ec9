"""Erasing one data subject from every table of the store, in one transaction (GDPR
article 17).

What happens to each kind of data, for the subject ``X`` (a user id) and, when the store
has their account, their username:

- the account (``auth_users``), its TOTP enrolment and backup codes and its sign-in
  throttle rows: deleted;
- token sessions: each one still open is revoked (``subject_erased``; the revocation
  row names only the random session id), then the subject's rows are deleted;
- agent-UI sessions and the gateway runs the subject started (their stored results and
  the run history's parameters and timeline): deleted;
- authentication events: kept for security analysis, pseudonymised: the subject becomes
  the keyed pseudonym, and in their detail the identifiers become the pseudonym and any
  other PII (addresses, emails, ...) its own keyed pseudonym; other subjects' events that
  name ``X`` get the pseudonym in its place;
- audit records: kept and pseudonymised in place, with a tombstone per tenant, so every
  chain still verifies (:mod:`kailash_nb.store.audit_erasure`).

All of it commits together or not at all: a step that fails rolls every step back and
the error reaches the caller. The pseudonym is ``subject_`` and 16 hex digits of an
HMAC-SHA256 under the managed PII key, the same for every erasure with that key; a
second erasure finds nothing left and changes nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kailash_nb.pii import PIIDetector, PIIRedactor, Pseudonymizer
from kailash_nb.sdk_exceptions import KailashException
from kailash_nb.store import AuditTrail
from kailash_nb.store.audit_erasure import (
    erase_identifiers,
    identifier_filter,
    replace_identifiers,
)
from kailash_nb.store.schema import (
    auth_backup_codes,
    auth_events,
    auth_login_throttle,
    auth_revoked_sessions,
    auth_token_sessions,
    auth_totp,
    auth_users,
    gateway_runs,
    runs,
    sessions,
)

__all__ = ["ERASED_SECTIONS", "SubjectErasureError", "erase_subject"]

#: What an erasure reports a count of.
ERASED_SECTIONS = (
    "user",
    "second_factor",
    "token_sessions",
    "agent_sessions",
    "auth_events",
    "runs",
    "audit_records",
)
#: Run statuses of a run still going: the recorder would write it again after erasure.
_UNFINISHED = ("queued", "running")


class SubjectErasureError(KailashException):
    """The subject cannot be erased now (nothing was changed)."""


def erase_subject(
    engine: Engine,
    subject: str,
    pseudonyms: Pseudonymizer,
    *,
    audit_key: bytes | None = None,
) -> dict[str, Any]:
    """Erase ``subject`` from the migrated store at ``engine`` in one transaction.

    ``audit_key`` is the audit trail's checkpoint key, when it has one: the tombstones
    advance each chain's signed end.

    Raises:
        SubjectErasureError: a run of the subject's is still queued or running.
        AuditErasureError: audit records about the subject predate schema version 9.
        AuditUnavailableError: the store cannot be locked or written.
    """
    pseudonym = pseudonyms.pseudonym(subject, "subject")
    trail = AuditTrail(engine=engine, checkpoint_key=audit_key)
    with trail.write_transaction() as connection:
        account = connection.execute(
            sa.select(auth_users.c.username, auth_users.c.username_key).where(
                auth_users.c.user_id == subject
            )
        ).first()
        identifiers = [subject]
        if account is not None and account.username not in identifiers:
            identifiers.append(account.username)
        erased = {
            "runs": _erase_runs(connection, subject),
            **_erase_account(connection, subject, account),
            "token_sessions": _erase_token_sessions(connection, subject),
            "agent_sessions": _delete(connection, sessions, sessions.c.subject == subject),
            "auth_events": _pseudonymise_auth_events(
                connection, subject, identifiers, pseudonym, pseudonyms
            ),
        }
        audit = erase_identifiers(trail, connection, identifiers, pseudonym)
        erased["audit_records"] = audit.count
    return {
        "subject_pseudonym": pseudonym,
        "erased": {section: erased[section] for section in ERASED_SECTIONS},
        "tombstones": [
            {"tenant_id": tenant_id, "seq": seq} for tenant_id, seq in audit.tombstones.items()
        ],
        "nothing_to_erase": not any(erased.values()),
    }


def _delete(connection: Connection, table: sa.Table, where: Any) -> int:
    return int(connection.execute(table.delete().where(where)).rowcount)


def _erase_runs(connection: Connection, subject: str) -> int:
    owned = connection.execute(
        sa.select(gateway_runs.c.run_id, gateway_runs.c.status).where(
            gateway_runs.c.subject == subject
        )
    ).all()
    unfinished = [row.run_id for row in owned if row.status in _UNFINISHED]
    if unfinished:
        raise SubjectErasureError(
            f"{len(unfinished)} run(s) of the subject are still queued or running "
            f"({', '.join(unfinished[:3])}{', ...' if len(unfinished) > 3 else ''}): erase "
            "after they end (or cancel them); nothing was erased"
        )
    run_ids = [row.run_id for row in owned]
    for start in range(0, len(run_ids), 500):
        batch = run_ids[start : start + 500]
        _delete(connection, runs, runs.c.run_id.in_(batch))
        _delete(connection, gateway_runs, gateway_runs.c.run_id.in_(batch))
    return len(run_ids)


def _erase_account(connection: Connection, subject: str, account: Any) -> dict[str, int]:
    factor = _delete(connection, auth_totp, auth_totp.c.user_id == subject)
    _delete(connection, auth_backup_codes, auth_backup_codes.c.user_id == subject)
    # Throttle keys are SHA-256 digests of a username key or a user id.
    keys = [_digest(subject)] + ([_digest(account.username_key)] if account is not None else [])
    _delete(connection, auth_login_throttle, auth_login_throttle.c.key.in_(keys))
    user = _delete(connection, auth_users, auth_users.c.user_id == subject)
    return {"user": user, "second_factor": factor}


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def _erase_token_sessions(connection: Connection, subject: str) -> int:
    now = time.time()
    held = connection.execute(
        sa.select(auth_token_sessions.c.family, auth_token_sessions.c.expires_at).where(
            auth_token_sessions.c.subject == subject
        )
    ).all()
    if not held:
        return 0
    families = [row.family for row in held]
    revoked = set(
        connection.execute(
            sa.select(auth_revoked_sessions.c.family).where(
                auth_revoked_sessions.c.family.in_(families)
            )
        ).scalars()
    )
    still_open = [
        {"family": row.family, "reason": "subject_erased", "revoked_at": now,
         "expires_at": row.expires_at}
        for row in held
        if row.family not in revoked and row.expires_at > now
    ]  # fmt: skip
    if still_open:
        connection.execute(auth_revoked_sessions.insert(), still_open)
    return _delete(connection, auth_token_sessions, auth_token_sessions.c.subject == subject)


def _pseudonymise_auth_events(
    connection: Connection,
    subject: str,
    identifiers: Sequence[str],
    pseudonym: str,
    pseudonyms: Pseudonymizer,
) -> int:
    detail_text = sa.cast(auth_events.c.detail, sa.Text)
    rows = connection.execute(
        sa.select(auth_events.c.seq, auth_events.c.subject, auth_events.c.detail).where(
            sa.or_(
                auth_events.c.subject.in_(identifiers),
                identifier_filter(detail_text, identifiers),
            )
        )
    ).all()
    redactor = PIIRedactor(PIIDetector(), replace=pseudonyms.replace)
    changed = 0
    for row in rows:
        own = row.subject in identifiers
        new_subject = pseudonym if own else row.subject
        detail = replace_identifiers(row.detail or {}, identifiers, pseudonym)
        if own:
            detail = redactor.redact(detail)
        if new_subject == row.subject and detail == (row.detail or {}):
            continue
        connection.execute(
            auth_events.update()
            .where(auth_events.c.seq == row.seq)
            .values(subject=new_subject, detail=detail)
        )
        changed += 1
    return changed
