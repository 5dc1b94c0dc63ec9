"""Database URLs: one spelling for users, the right driver for each engine kind.

Users write ``postgresql://...`` or ``sqlite:///path``; kailash_nb picks psycopg 3
for PostgreSQL (sync and async alike) and aiosqlite for async SQLite. The SQL nodes
also reach MySQL (``mysql://...``) through PyMySQL and aiomysql, the
``kailash-nb[mysql]`` extra.
"""

from __future__ import annotations

import os

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from kailash_nb.sdk_exceptions import KailashException

__all__ = ["DATABASE_URL_ENV", "StoreConfigurationError", "async_url", "redact_url", "sync_url"]

#: Environment variable naming the store's database.
DATABASE_URL_ENV = "KAILASH_NB_DATABASE_URL"

_SYNC_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
}
_ASYNC_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "sqlite": "sqlite+aiosqlite",
    "mysql": "mysql+aiomysql",
}
_ASYNC_MYSQL_DRIVERS = frozenset({"aiomysql", "asyncmy"})


class StoreConfigurationError(KailashException):
    """A database URL is missing, malformed or names an unsupported database."""


def parse_url(url: str | URL) -> URL:
    """Parse ``url``, raising ``StoreConfigurationError`` (without the password) if bad."""
    if isinstance(url, URL):
        return url
    if not isinstance(url, str) or not url.strip():
        raise StoreConfigurationError(
            f"a database URL is required: pass one or set {DATABASE_URL_ENV}"
        )
    try:
        return make_url(url.strip())
    except ArgumentError:
        raise StoreConfigurationError(
            f"{redact_url(url)!r} is not a database URL; use sqlite:///path/to/file.db or "
            "postgresql://user@host:5432/database"
        ) from None


def sync_url(url: str | URL) -> URL:
    """``url`` with the synchronous driver kailash_nb uses for its database."""
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if parsed.drivername in _SYNC_DRIVERS:
        return parsed.set(drivername=_SYNC_DRIVERS[parsed.drivername])
    if backend == "postgres":
        return parsed.set(drivername="postgresql+psycopg")
    return parsed


def async_url(url: str | URL) -> URL:
    """``url`` with the asynchronous driver kailash_nb uses for its database."""
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if parsed.drivername in _ASYNC_DRIVERS:
        return parsed.set(drivername=_ASYNC_DRIVERS[parsed.drivername])
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite" and parsed.get_driver_name() != "aiosqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend == "mysql" and parsed.get_driver_name() not in _ASYNC_MYSQL_DRIVERS:
        return parsed.set(drivername="mysql+aiomysql")
    return parsed


def redact_url(url: str | URL) -> str:
    """``url`` as text with any password replaced by ``***``."""
    try:
        parsed = url if isinstance(url, URL) else make_url(str(url))
    except ArgumentError:
        return "<unparseable URL>"
    return parsed.render_as_string(hide_password=True)


def url_from_environment() -> str | None:
    """The URL in ``KAILASH_NB_DATABASE_URL``, or ``None``."""
    return os.environ.get(DATABASE_URL_ENV) or None
