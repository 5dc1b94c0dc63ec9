"""Persistence: one SQLAlchemy store (SQLite by default, PostgreSQL by URL).

``RunStore(url).get_run(run_id)`` reads a recorded run with its node timeline;
``LocalRuntime(history=True)`` records runs into it.
"""

from kailash_nb.store.database import create_engine, default_url, get_engine
from kailash_nb.store.run_history import NodeRecord, RunNotFoundError, RunRecord, RunStore
from kailash_nb.store.urls import DATABASE_URL_ENV, StoreConfigurationError

__all__ = [
    "DATABASE_URL_ENV",
    "NodeRecord",
    "RunNotFoundError",
    "RunRecord",
    "RunStore",
    "StoreConfigurationError",
    "create_engine",
    "default_url",
    "get_engine",
]
