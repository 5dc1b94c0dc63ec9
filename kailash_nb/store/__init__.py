"""Persistence: one SQLAlchemy store (SQLite by default, PostgreSQL by URL).

``RunStore(url).get_run(run_id)`` reads a recorded run with its node timeline;
``LocalRuntime(history=True)`` records runs into it. ``AuditTrail(url)`` keeps the
hash-chained audit records of access decisions and runs.
"""

from kailash_nb.store.audit_erasure import AuditErasureError
from kailash_nb.store.audit_trail import (
    AuditEntry,
    AuditRecord,
    AuditRecordError,
    AuditTrail,
    AuditTrailError,
    AuditUnavailableError,
    Checkpoint,
    VerifyResult,
)
from kailash_nb.store.database import create_engine, default_url, get_engine
from kailash_nb.store.run_history import NodeRecord, RunNotFoundError, RunRecord, RunStore
from kailash_nb.store.urls import DATABASE_URL_ENV, StoreConfigurationError

__all__ = [
    "DATABASE_URL_ENV",
    "AuditEntry",
    "AuditErasureError",
    "AuditRecord",
    "AuditRecordError",
    "AuditTrail",
    "AuditTrailError",
    "AuditUnavailableError",
    "Checkpoint",
    "NodeRecord",
    "RunNotFoundError",
    "RunRecord",
    "RunStore",
    "StoreConfigurationError",
    "VerifyResult",
    "create_engine",
    "default_url",
    "get_engine",
]
