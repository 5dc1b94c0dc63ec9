"""Machinery shared by the sync and async SQL nodes: URL, parameters, results, errors.

SQLAlchemy is imported on first use, so workflows with only file nodes never load it.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, NamedTuple

from kailash_nb.nodes.node import NodeParameter
from kailash_nb.redaction import looks_secret
from kailash_nb.sdk_exceptions import (
    NodeConfigurationError,
    NodeExecutionError,
    NodeValidationError,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, CursorResult
    from sqlalchemy.sql.elements import TextClause

__all__ = ["FETCH_MODES", "SQL_URL_ENV", "SQLNodeCore", "SQLRequest"]

#: Environment variable the SQL nodes read when ``connection_string`` is not set.
SQL_URL_ENV = "KAILASH_NB_SQL_URL"
FETCH_MODES = ("one", "all", "none")

_DRIVER_EXTRAS = {"psycopg": "kailash-nb[postgres]"}


class SQLRequest(NamedTuple):
    """One checked run of a SQL node."""

    url: URL
    statement: TextClause
    #: ``None``, a dict, or a list of dicts (executemany; ``[]`` runs nothing).
    params: dict[str, Any] | list[dict[str, Any]] | None
    fetch_mode: str
    #: Run inside a transaction (``False``: autocommit).
    transaction: bool


class SQLNodeCore:
    """Parameters, checks, result shaping and error wording of the SQL nodes.

    The sync and async nodes differ only in how they open a connection and await.
    """

    def get_parameters(self) -> dict[str, NodeParameter]:
        """The SQL node inputs (see the node docstrings)."""
        return {
            "connection_string": NodeParameter(
                name="connection_string",
                required=False,
                description=f"database URL; defaults to ${SQL_URL_ENV}",
            ),
            "query": NodeParameter(
                name="query", type=str, required=True, description="one SQL statement"
            ),
            "params": NodeParameter(
                name="params",
                required=False,
                description="bind parameters: a dict, or a list of dicts to execute many",
            ),
            "fetch_mode": NodeParameter(
                name="fetch_mode",
                type=str,
                required=False,
                default="all",
                description="'all' rows, 'one' row, or 'none'",
            ),
            "transaction": NodeParameter(
                name="transaction",
                type=bool,
                required=False,
                default=True,
                description="commit on success, roll back on error; False autocommits",
            ),
        }

    # -- checks -------------------------------------------------------------------
    def _label(self: Any) -> str:
        return f"node {self.id!r} ({self.type_name()})"

    def _prepare(self: Any) -> None:
        config = self.config
        connection_string = config.get("connection_string")
        if connection_string is not None:
            problem = _url_problem(connection_string)
            if problem:
                raise NodeConfigurationError(f"{self._label()}: {problem}")
        fetch_mode = config.get("fetch_mode")
        if fetch_mode is not None and fetch_mode not in FETCH_MODES:
            raise NodeConfigurationError(f"{self._label()}: {_fetch_mode_problem(fetch_mode)}")
        query = config.get("query")
        if isinstance(query, str) and not query.strip():
            raise NodeConfigurationError(f"{self._label()}: query must not be empty")

    def database_url(self: Any, connection_string: Any) -> URL:
        """The URL to connect to: ``connection_string``, else ``$KAILASH_NB_SQL_URL``.

        Raises:
            NodeExecutionError: neither is set, or the environment variable is not a URL.
            NodeValidationError: ``connection_string`` is not a database URL.
        """
        value = connection_string
        if value is None or value == "":
            value = os.environ.get(SQL_URL_ENV) or None
            source = f"${SQL_URL_ENV}"
        else:
            source = "connection_string"
        if value is None:
            raise NodeExecutionError(
                f"{self._label()} has no database to connect to: set its 'connection_string' "
                "parameter (e.g. 'sqlite:///data.db' or "
                f"'postgresql://user@host:5432/dbname') or the {SQL_URL_ENV} environment "
                "variable"
            )
        problem = _url_problem(value)
        if problem and source == "connection_string":
            raise NodeValidationError(f"{self._label()}: {problem}")
        if problem:
            raise NodeExecutionError(
                f"{self._label()}: {problem.replace('connection_string', source)}"
            )
        from kailash_nb.store.urls import parse_url

        return parse_url(value)

    def sql_request(
        self: Any,
        *,
        connection_string: Any,
        query: str,
        params: Any,
        fetch_mode: str,
        transaction: bool,
    ) -> SQLRequest:
        """Check the run's inputs and turn them into a ``SQLRequest``.

        Raises:
            NodeValidationError: empty query, unknown fetch mode, malformed params or URL.
            NodeExecutionError: no URL given and ``$KAILASH_NB_SQL_URL`` unset.
        """
        from sqlalchemy import text

        if not query.strip():
            raise NodeValidationError(f"{self._label()}: query must not be empty")
        if fetch_mode not in FETCH_MODES:
            raise NodeValidationError(f"{self._label()}: {_fetch_mode_problem(fetch_mode)}")
        if not (params is None or _is_named(params)):
            if isinstance(params, (list, tuple)) and all(_is_named(item) for item in params):
                params = list(params)
            else:
                raise NodeValidationError(
                    f"{self._label()}: params must be a dict of named bind parameters (string "
                    "keys matching ':name' in the query) or a list of such dicts to execute the "
                    f"statement once per dict; got {type(params).__name__}"
                )
        url = self.database_url(connection_string)
        return SQLRequest(url, text(query), params, fetch_mode, transaction is not False)

    # -- results and errors ---------------------------------------------------------
    @staticmethod
    def shape(result: CursorResult[Any] | None, fetch_mode: str) -> dict[str, Any]:
        """``{"data", "row_count", "columns"}`` from an executed statement's result
        (``None``: nothing was executed)."""
        if result is None or not result.returns_rows:
            return {
                "data": [] if fetch_mode == "all" else None,
                "row_count": 0 if result is None else max(result.rowcount, 0),
                "columns": [],
            }
        columns = list(result.keys())
        if fetch_mode == "one":
            row = result.mappings().first()
            return {
                "data": None if row is None else dict(row),
                "row_count": int(row is not None),
                "columns": columns,
            }
        rows = [dict(row) for row in result.mappings()]
        return {
            "data": rows if fetch_mode == "all" else None,
            "row_count": len(rows),
            "columns": columns,
        }

    def database_error(self: Any, exc: Exception, url: URL) -> NodeExecutionError:
        """A ``NodeExecutionError`` carrying the database's message, never a credential.

        SQLAlchemy's own text appends the bound values, so only the driver's message
        (or SQLAlchemy's bare message) is used, and the URL is shown without its
        password or query string.
        """
        from sqlalchemy import exc as sa_exc

        original = exc.orig if isinstance(exc, sa_exc.StatementError) and exc.orig else exc
        if isinstance(original, sa_exc.SQLAlchemyError) and original.args:
            message = str(original.args[0])  # str() would add a documentation link
        else:
            message = str(original).strip()
        message = _scrubbed(message, url)
        kind = type(original).__name__
        code = getattr(original, "sqlstate", None)
        if code:
            kind = f"{kind} (SQLSTATE {code})"
        return NodeExecutionError(f"{self._label()} failed on {_shown_url(url)}: {kind}: {message}")

    def driver_error(self: Any, exc: ImportError, url: URL) -> NodeExecutionError:
        """The error for a database driver that is not installed."""
        module = (exc.name or "").split(".")[0]
        extra = _DRIVER_EXTRAS.get(module)
        hint = f'pip install "{extra}"' if extra else f"install the {module or 'driver'} package"
        return NodeExecutionError(
            f"{self._label()} cannot reach {_shown_url(url)}: the driver {module!r} is not "
            f"installed; {hint}"
        )


def _is_named(params: Any) -> bool:
    return isinstance(params, dict) and all(isinstance(key, str) for key in params)


def _fetch_mode_problem(fetch_mode: Any) -> str:
    return f"fetch_mode must be one of {list(FETCH_MODES)}, got {fetch_mode!r}"


def _url_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable database URL (never quoting it), or ``None``."""
    from kailash_nb.store.urls import StoreConfigurationError, parse_url

    if not isinstance(value, str):
        return f"connection_string must be a URL string, got {type(value).__name__}"
    try:
        parse_url(value)
    except StoreConfigurationError:
        return (
            "connection_string is not a database URL; use 'sqlite:///path/to/file.db' or "
            "'postgresql://user@host:5432/dbname'"
        )
    return None


def _shown_url(url: URL) -> str:
    from kailash_nb.store.urls import redact_url

    # The query string may carry credentials too (?password=...), so it is left out.
    return redact_url(url.set(query={}))


def _scrubbed(message: str, url: URL) -> str:
    """``message`` with the URL's password (and password-like query values) masked.

    Drivers do not quote them today; this keeps it so if one ever does. A secret of
    under four characters is masked only where it stands alone, so that a password
    ``x`` does not garble every word containing an x.
    """
    secrets = [str(url.password)] if url.password else []
    secrets.extend(
        value
        for key, value in url.query.items()
        if isinstance(value, str) and value and (looks_secret(key) or "pass" in key.lower())
    )
    for secret in secrets:
        if len(secret) >= 4:
            message = message.replace(secret, "***")
        else:
            message = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", message)
    return message
