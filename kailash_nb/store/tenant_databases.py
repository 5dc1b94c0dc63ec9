"""One database per tenant, derived from the gateway's database URL.

``create_gateway(database_per_tenant=True)`` keeps each tenant's sessions and run
history in a database of its own (users and auth state stay in the main one):

* SQLite ``sqlite:///data/app.db`` -> ``sqlite:///data/app.tenant-<safe id>.db``
* PostgreSQL ``postgresql://host/app`` -> database ``app_t_<safe id>`` on the same
  server, created on first use (the role needs ``CREATEDB``).

The safe id is the tenant id's lowercase ASCII letters and digits (at most 16, for
people reading a directory listing) followed by 20 hex digits of its SHA-256: two
tenants never share a database and no character of a tenant id reaches a path or an
SQL identifier. Open tenant databases are kept in a bounded LRU; an evicted tenant's
resources are closed and its engine disposed::

    databases = TenantDatabases("sqlite:///data/app.db")
    engine = databases.get("acme").engine
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from kailash_nb.store.database import POOL_SIZE_PARAMETER, create_engine
from kailash_nb.store.schema import migrate
from kailash_nb.store.urls import StoreConfigurationError, parse_url, redact_url, sync_url

__all__ = ["TenantDatabase", "TenantDatabases", "safe_tenant_id", "tenant_database_url"]

logger = logging.getLogger(__name__)

_READABLE = re.compile(r"[^a-z0-9]")
_PG_IDENTIFIER_CHARS = 63
_MAX_TENANT_CHARS = 256


def safe_tenant_id(tenant_id: str) -> str:
    """``tenant_id`` as ``[a-z0-9]{0,16}`` + ``-`` + 20 hex digits of its SHA-256.

    Raises:
        ValueError: not a non-empty string of at most 256 characters.
    """
    if not isinstance(tenant_id, str) or not 0 < len(tenant_id) <= _MAX_TENANT_CHARS:
        raise ValueError(f"tenant_id must be a string of 1-256 characters, got {tenant_id!r:.80}")
    digest = hashlib.sha256(tenant_id.encode("utf-8", "surrogatepass")).hexdigest()[:20]
    readable = _READABLE.sub("", tenant_id.lower())[:16]
    return f"{readable}-{digest}" if readable else digest


def tenant_database_url(url: str, tenant_id: str) -> str:
    """The URL of ``tenant_id``'s database next to the one at ``url``.

    Query parameters (the pool size among them) are kept.

    Raises:
        StoreConfigurationError: an in-memory SQLite URL (tenants would lose their data
            with their engine) or a database other than SQLite files and PostgreSQL.
        ValueError: an invalid tenant id.
    """
    parsed = sync_url(parse_url(url))
    safe = safe_tenant_id(tenant_id)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:") or parsed.database.startswith("file:"):
            raise StoreConfigurationError(
                "database_per_tenant needs a database file (sqlite:///path/app.db) or "
                f"PostgreSQL, not {redact_url(parsed)!r}"
            )
        path = Path(parsed.database)
        tenant_path = path.with_name(f"{path.stem}.tenant-{safe}{path.suffix or '.db'}")
        return parsed.set(database=str(tenant_path)).render_as_string(hide_password=False)
    if backend == "postgresql":
        base = re.sub(r"[^a-z0-9_]", "_", (parsed.database or "kailash_nb").lower())
        room = _PG_IDENTIFIER_CHARS - len("_t_") - len(safe)
        name = f"{base[:room]}_t_{safe.replace('-', '_')}"
        return parsed.set(database=name).render_as_string(hide_password=False)
    raise StoreConfigurationError(
        f"database_per_tenant supports SQLite files and PostgreSQL, not {backend!r}"
    )


class TenantDatabase:
    """One tenant's open database: its engine (migrated) and the stores built on it.

    ``resource(name, factory, close=...)`` returns the tenant's object ``name``, built
    once with ``factory(engine)``; ``close(object)`` runs when the tenant is evicted or
    the databases are closed.
    """

    def __init__(self, tenant_id: str, url: str) -> None:
        self.tenant_id = tenant_id
        self.url = url
        self.engine = create_engine(url)
        self._resources: dict[str, tuple[Any, Callable[[Any], object] | None]] = {}
        self._lock = threading.Lock()

    def resource(
        self,
        name: str,
        factory: Callable[[Any], Any],
        *,
        close: Callable[[Any], object] | None = None,
    ) -> Any:
        """The tenant's ``name`` object, created with ``factory(engine)`` on first use;
        ``close(object)`` releases it when the tenant database is closed."""
        found = self._resources.get(name)
        if found is not None:
            return found[0]
        with self._lock:
            found = self._resources.get(name)
            if found is None:
                found = self._resources[name] = (factory(self.engine), close)
            return found[0]

    def close(self) -> None:
        """Close the tenant's resources, then dispose of its engine."""
        with self._lock:
            resources, self._resources = list(self._resources.values()), {}
        try:
            for resource, close in resources:
                if close is not None:
                    close(resource)
        finally:
            self.engine.dispose()


class TenantDatabases:
    """The gateway's per-tenant databases, opened on first use, at most ``capacity``
    open at once (least recently used closed first).

    Args:
        url: the gateway's (main) database URL.
        capacity: tenant databases kept open.

    Raises:
        StoreConfigurationError: a URL that cannot hold per-tenant databases.
    """

    def __init__(self, url: str, capacity: int = 32) -> None:
        tenant_database_url(url, "probe")  # refuse unusable URLs at configuration time
        self.url = url
        self.capacity = capacity
        self._open: OrderedDict[str, TenantDatabase] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._open)

    def get(self, tenant_id: str) -> TenantDatabase:
        """``tenant_id``'s database, created and migrated on first use.

        Raises:
            StoreConfigurationError: the database cannot be created (e.g. a PostgreSQL
                role without ``CREATEDB``) or holds a newer schema.
            ValueError: an invalid tenant id.
        """
        evicted: list[TenantDatabase] = []
        with self._lock:
            database = self._open.get(tenant_id)
            if database is not None:
                self._open.move_to_end(tenant_id)
                return database
            url = tenant_database_url(self.url, tenant_id)
            _create_database(url, self.url)
            database = TenantDatabase(tenant_id, url)
            try:
                migrate(database.engine)
            except BaseException:
                database.engine.dispose()
                raise
            self._open[tenant_id] = database
            while len(self._open) > self.capacity:
                evicted.append(self._open.popitem(last=False)[1])
        for old in evicted:
            old.close()
        return database

    def close(self) -> None:
        """Close every open tenant database."""
        with self._lock:
            databases, self._open = list(self._open.values()), OrderedDict()
        for database in databases:
            database.close()


def _create_database(url: str, main_url: str) -> None:
    """Create the PostgreSQL database ``url`` names unless it exists, connected to the
    gateway's main database (SQLite files are created by connecting)."""
    parsed = sync_url(parse_url(url))
    if parsed.get_backend_name() != "postgresql":
        return
    name = parsed.database or ""
    if not re.fullmatch(r"[a-z0-9_]{1,63}", name):
        raise StoreConfigurationError(f"refusing to create a database named {name!r}")
    admin = sa.create_engine(
        sync_url(parse_url(main_url)).difference_update_query([POOL_SIZE_PARAMETER]),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )
    try:
        with admin.connect() as connection:
            exists = connection.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if exists is None:
                try:
                    connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
                except sa.exc.ProgrammingError as exc:
                    if "already exists" not in str(exc.orig):
                        raise
    except sa.exc.SQLAlchemyError as exc:
        raise StoreConfigurationError(
            f"could not create the tenant database {name!r} on "
            f"{redact_url(parsed.set(database=''))!r} ({type(exc).__name__}); the role needs "
            "CREATEDB, or create the database beforehand"
        ) from exc
    finally:
        admin.dispose()
