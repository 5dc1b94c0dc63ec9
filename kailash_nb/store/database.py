"""SQLAlchemy engines from one URL, created once per URL and shared.

``KAILASH_NB_DATABASE_URL`` (or an explicit URL) picks the database; without one,
an SQLite file in the user's data directory is used. SQLite connections run in
WAL mode with a busy timeout so several processes can write; ``sqlite:///:memory:``
shares one connection so every user sees the same database.

A URL may carry the pool size as the query parameter ``kailash_nb_pool_size`` and
the connections allowed beyond it as ``kailash_nb_max_overflow``
(:func:`with_pool_size`); they are read here and never reach the database driver::

    engine = get_engine(with_pool_size("postgresql://app@db/app", 50))
    engine.pool.size()  # 50
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool

from kailash_nb.store.urls import (
    StoreConfigurationError,
    async_url,
    parse_url,
    redact_url,
    sync_url,
    url_from_environment,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "MAX_OVERFLOW_PARAMETER",
    "POOL_SIZE_PARAMETER",
    "SQLITE_BUSY_TIMEOUT_MS",
    "close_pooled_connections",
    "create_engine",
    "default_database_path",
    "default_url",
    "dispose_engines",
    "get_async_engine",
    "get_engine",
    "with_pool_size",
]

SQLITE_BUSY_TIMEOUT_MS = 5000
#: URL query parameter naming the engine's connection pool size.
POOL_SIZE_PARAMETER = "kailash_nb_pool_size"
#: URL query parameter naming how many connections the pool may open beyond its size.
MAX_OVERFLOW_PARAMETER = "kailash_nb_max_overflow"

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
# Per event loop (weakly: a finished loop takes its engines with it), then per URL.
_async_engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, AsyncEngine]] = (
    weakref.WeakKeyDictionary()
)


def default_database_path() -> Path:
    """The default store file: ``kailash_nb.db`` in the user's data directory."""
    import platformdirs

    return platformdirs.user_data_path("kailash_nb") / "kailash_nb.db"


def default_url() -> str:
    """``KAILASH_NB_DATABASE_URL`` if set, else the default SQLite file (created lazily)."""
    configured = url_from_environment()
    if configured:
        return configured
    path = default_database_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


#: Seconds between tries to switch a locked new database to WAL mode (doubling).
_WAL_RETRY_FIRST_DELAY = 0.005
_WAL_RETRY_MAX_DELAY = 0.1


def _is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def with_pool_size(url: str | URL, pool_size: int, *, max_overflow: int | None = None) -> str:
    """``url`` carrying ``pool_size`` as the size of its engine's connection pool, and
    ``max_overflow`` (if given) as the connections it may open beyond that size.

    An in-memory SQLite URL is returned unchanged: its engine shares one connection.

    Raises:
        ValueError: ``pool_size`` is not an int >= 1, or ``max_overflow`` not an int >= 0.
        StoreConfigurationError: ``url`` is not a database URL.
    """
    _check_pool_size(pool_size, "pool_size")
    if max_overflow is not None and (
        isinstance(max_overflow, bool) or not isinstance(max_overflow, int) or max_overflow < 0
    ):
        raise ValueError(f"max_overflow must be an int >= 0, got {max_overflow!r}")
    parsed = parse_url(url)
    if _is_memory(parsed):
        return url if isinstance(url, str) else parsed.render_as_string(hide_password=False)
    settings = {POOL_SIZE_PARAMETER: str(pool_size)}
    if max_overflow is not None:
        settings[MAX_OVERFLOW_PARAMETER] = str(max_overflow)
    parsed = parsed.update_query_dict(settings)
    return parsed.render_as_string(hide_password=False)


def _check_pool_size(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where} must be an int >= 1, got {value!r}")
    return value


def _split_pool_size(url: URL) -> tuple[URL, dict[str, int]]:
    """``url`` without the pool parameters, and the pool options they carried
    (``pool_size``, ``max_overflow``)."""
    options: dict[str, int] = {}
    for parameter, option, least in (
        (POOL_SIZE_PARAMETER, "pool_size", 1),
        (MAX_OVERFLOW_PARAMETER, "max_overflow", 0),
    ):
        raw = url.query.get(parameter)
        if raw is None:
            continue
        text = raw if isinstance(raw, str) else raw[-1]
        if not text.isdigit() or int(text) < least:
            raise StoreConfigurationError(
                f"{parameter}={text!r:.40} in {redact_url(url)!r} must be an int >= {least}"
            )
        options[option] = int(text)
    if options:
        url = url.difference_update_query([POOL_SIZE_PARAMETER, MAX_OVERFLOW_PARAMETER])
    return url, options


def _engine_options(url: URL, pool: dict[str, int] | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if pool and not _is_memory(url):
        options.update(pool)
    if url.get_backend_name() != "sqlite":
        options["pool_pre_ping"] = True
        return options
    options["connect_args"] = {"check_same_thread": False}
    if _is_memory(url):
        options["poolclass"] = StaticPool
    return options


def _tune_sqlite(engine: Any, url: URL) -> None:
    memory = _is_memory(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if not memory:
            _enable_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()


def _enable_wal(cursor: Any) -> None:
    """Switch the database to WAL mode. While another connection holds a lock on a
    database not yet in WAL mode (a new file being created by another process), SQLite
    answers "database is locked" at once, without its busy handler: retry with backoff
    until the busy timeout has passed."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = _WAL_RETRY_FIRST_DELAY
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, _WAL_RETRY_MAX_DELAY)


def create_engine(url: str | URL | None = None, **options: Any) -> Engine:
    """A new synchronous engine for ``url`` (default: ``default_url()``).

    Raises:
        StoreConfigurationError: a bad URL or pool size parameter.
    """
    parsed, pool = _split_pool_size(sync_url(url if url is not None else default_url()))
    engine = sa.create_engine(parsed, **{**_engine_options(parsed, pool), **options})
    if parsed.get_backend_name() == "sqlite":
        _tune_sqlite(engine, parsed)
    return engine


def _absolute(url: URL) -> URL:
    """``url`` with a relative SQLite file path made absolute (from the current
    directory): the shared engines are keyed by URL, and a relative one would keep
    using the file of the directory it was first opened in."""
    database = url.database
    if (
        url.get_backend_name() != "sqlite"
        or _is_memory(url)
        or not database
        or database.startswith("file:")
        or os.path.isabs(database)
    ):
        return url
    return url.set(database=os.path.abspath(database))


def get_engine(url: str | URL | None = None) -> Engine:
    """The shared synchronous engine for ``url``; created on first use."""
    parsed = _absolute(sync_url(url if url is not None else default_url()))
    key = parsed.render_as_string(hide_password=False)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = create_engine(key)
        return engine


def get_async_engine(url: str | URL) -> AsyncEngine:
    """The shared async engine for ``url`` on the running event loop.

    Async connections belong to the loop that opened them, so each loop gets its own
    engine (and pool); runs on the same loop reuse it.
    """
    from sqlalchemy.ext.asyncio import create_async_engine

    parsed = _absolute(async_url(parse_url(url)))
    key = parsed.render_as_string(hide_password=False)
    parsed, pool = _split_pool_size(parsed)
    loop = asyncio.get_running_loop()
    with _lock:
        engines = _async_engines.setdefault(loop, {})
        engine = engines.get(key)
        if engine is None:
            engine = create_async_engine(parsed, **_engine_options(parsed, pool))
            if parsed.get_backend_name() == "sqlite":
                _tune_sqlite(engine.sync_engine, parsed)
            engines[key] = engine
        return engine


def close_pooled_connections() -> None:
    """Close the pooled connections of every shared engine, keeping the engines (they
    reconnect on next use): before forking, so no connection is shared by processes."""
    with _lock:
        engines = list(_engines.values())
    for engine in engines:
        engine.dispose()


def dispose_engines() -> None:
    """Close every shared engine's pool (tests, shutdown)."""
    with _lock:
        engines = list(_engines.values())
        _engines.clear()
        async_engines = [
            engine for per_loop in _async_engines.values() for engine in per_loop.values()
        ]
        _async_engines.clear()
    for engine in engines:
        engine.dispose()
    for async_engine in async_engines:
        # Connections of a finished loop cannot be closed from here; drop the pool.
        async_engine.sync_engine.dispose(close=False)
