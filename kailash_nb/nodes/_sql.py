"""Machinery shared by the sync and async SQL nodes: URL, parameters, results, errors.

SQLAlchemy is imported on first use, so workflows with only file nodes never load it.
"""

from __future__ import annotations

import importlib.util
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

__all__ = [
    "CONNECTION_KEYS",
    "DATABASE_TYPES",
    "FETCH_MODES",
    "RESULT_FORMATS",
    "SQLALCHEMY_POOL_SIZE",
    "SQL_URL_ENV",
    "KailashConnection",
    "SQLNodeCore",
    "SQLRequest",
    "kailash_connection",
    "pool_setting",
    "pooled_url",
    "positional_to_named",
]

#: Environment variable the SQL nodes read when ``connection_string`` is not set.
SQL_URL_ENV = "KAILASH_NB_SQL_URL"
FETCH_MODES = ("one", "all", "many", "none")
RESULT_FORMATS = ("dict", "list", "dataframe")
#: Kailash's ``database_type`` values.
DATABASE_TYPES = ("postgresql", "mysql", "sqlite")
#: SQLAlchemy's default ``pool_size``.
SQLALCHEMY_POOL_SIZE = 5
#: Kailash's connection parameters, from which the URL is built.
CONNECTION_KEYS = ("database_type", "host", "port", "database", "user", "password")

_DRIVER_EXTRAS = {
    "psycopg": "kailash-nb[postgres]",
    "aiomysql": "kailash-nb[mysql]",
    "pymysql": "kailash-nb[mysql]",
    "MySQLdb": "kailash-nb[mysql]",
}


class SQLRequest(NamedTuple):
    """One checked run of a SQL node."""

    url: URL
    statement: TextClause
    #: ``None``, a dict, or a list of dicts (executemany; ``[]`` runs nothing).
    params: dict[str, Any] | list[dict[str, Any]] | None
    fetch_mode: str
    #: Run inside a transaction (``False``: autocommit).
    transaction: bool
    #: Rows fetched in ``"many"`` mode.
    fetch_size: int | None = None
    #: ``"dict"`` rows (column name to value) or ``"list"`` rows (values in column order).
    result_format: str = "dict"
    #: The statement's text as executed (positional placeholders made named).
    query: str = ""


class KailashConnection(NamedTuple):
    """The URL Kailash's connection parameters name, and the pool they ask for."""

    #: ``None`` when no connection parameter was given.
    url: URL | None
    #: ``"postgresql"``, ``"mysql"`` or ``"sqlite"`` when ``database_type`` was given.
    database_type: str | None
    pool_size: int | None
    max_pool_size: int | None


def kailash_connection(config: dict[str, Any], label: str) -> KailashConnection:
    """Build the database URL from Kailash's ``database_type``, ``host``, ``port``,
    ``database``, ``user`` and ``password`` in ``config``, and read ``pool_size`` and
    ``max_pool_size``.

    PostgreSQL and MySQL need ``host`` and ``database``; SQLite needs ``database`` (the
    file path, or ``:memory:``) and takes no host, port, user or password. Without
    ``database_type`` the URL is PostgreSQL's, as in Kailash. A ``connection_string``
    in the config wins over the individual parameters, as in Kailash; its scheme must
    then agree with ``database_type``.

    Raises:
        NodeConfigurationError: an unknown ``database_type``, a missing or malformed
            parameter, a pool size that is not an int >= 1 or a maximum below the size;
            messages never quote the password.
    """
    from sqlalchemy.engine import URL as SQLURL

    database_type = config.get("database_type")
    if database_type is not None:
        if not isinstance(database_type, str) or database_type.lower() not in DATABASE_TYPES:
            raise NodeConfigurationError(
                f"{label}: database_type must be one of {list(DATABASE_TYPES)}, got "
                f"{database_type!r:.60}"
            )
        database_type = database_type.lower()
    pool_size = pool_setting(config, "pool_size", label)
    max_pool_size = pool_setting(config, "max_pool_size", label)
    if pool_size is not None and max_pool_size is not None and max_pool_size < pool_size:
        raise NodeConfigurationError(
            f"{label}: max_pool_size ({max_pool_size}) must be at least pool_size ({pool_size})"
        )
    given = [key for key in CONNECTION_KEYS[1:] if config.get(key) not in (None, "")]
    connection_string = config.get("connection_string")
    if isinstance(connection_string, str) and connection_string:
        if database_type is not None:
            from kailash_nb.store.urls import parse_url

            backend = parse_url(connection_string).get_backend_name()
            backend = "postgresql" if backend == "postgres" else backend
            if backend != database_type:
                raise NodeConfigurationError(
                    f"{label}: database_type {database_type!r} does not match the "
                    f"connection_string, a {backend} URL"
                )
        return KailashConnection(None, database_type, pool_size, max_pool_size)
    if not given:
        return KailashConnection(None, database_type, pool_size, max_pool_size)
    kind = database_type or "postgresql"
    for key in ("host", "database", "user", "password"):
        value = config.get(key)
        if value is not None and not isinstance(value, str):
            raise NodeConfigurationError(f"{label}: {key} must be a string")
    port = config.get("port")
    if port not in (None, ""):
        if isinstance(port, str) and port.strip().isdigit():
            port = int(port)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise NodeConfigurationError(f"{label}: port must be an int from 1 to 65535")
    else:
        port = None
    if kind == "sqlite":
        extra = [key for key in ("host", "port", "user", "password") if key in given]
        if extra:
            raise NodeConfigurationError(
                f"{label}: a sqlite database takes only 'database' (the file path or "
                f"':memory:'), not {extra}"
            )
        url = SQLURL.create("sqlite", database=config["database"])
    else:
        missing = [key for key in ("host", "database") if key not in given]
        if missing:
            raise NodeConfigurationError(
                f"{label}: {kind} needs 'host' and 'database' (or a connection_string); "
                f"missing {missing}"
            )
        url = SQLURL.create(
            kind,
            username=config.get("user") or None,
            password=config.get("password") or None,
            host=config["host"],
            port=port,
            database=config["database"],
        )
    return KailashConnection(url, database_type, pool_size, max_pool_size)


def pool_setting(config: dict[str, Any], key: str, label: str, least: int = 1) -> int | None:
    """``config[key]`` as an int >= ``least`` (digits in a string accepted), or ``None``.

    Raises:
        NodeConfigurationError: anything else.
    """
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise NodeConfigurationError(f"{label}: {key} must be an int >= {least}, got {value!r:.40}")
    return value


def pooled_url(url: URL, pool_size: int | None, max_pool_size: int | None) -> URL:
    """``url`` carrying the pool Kailash's ``pool_size``/``max_pool_size`` ask for: that
    many connections kept, up to ``max_pool_size`` open at once (SQLAlchemy's
    ``pool_size`` and ``max_overflow``)."""
    from kailash_nb.store.database import with_pool_size
    from kailash_nb.store.urls import parse_url

    if pool_size is None and max_pool_size is None:
        return url
    if pool_size is None:
        pool_size = min(SQLALCHEMY_POOL_SIZE, max_pool_size)  # type: ignore[type-var]
    overflow = None if max_pool_size is None else max_pool_size - pool_size
    return parse_url(with_pool_size(url, pool_size, max_overflow=overflow))


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
                description=(
                    "bind parameters: a dict, a list of dicts to execute many, or a list of "
                    "values (or a single value) for positional placeholders"
                ),
            ),
            "fetch_mode": NodeParameter(
                name="fetch_mode",
                type=str,
                required=False,
                default="all",
                description="'all' rows, 'one' row, 'many' (fetch_size rows), or 'none'",
            ),
            "fetch_size": NodeParameter(
                name="fetch_size",
                type=int,
                required=False,
                description="rows to fetch when fetch_mode is 'many'",
            ),
            "result_format": NodeParameter(
                name="result_format",
                type=str,
                required=False,
                default="dict",
                description=(
                    "'dict' rows (by column name), 'list' rows (in column order) or "
                    "'dataframe' (a pandas.DataFrame; needs pandas)"
                ),
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
        result_format = config.get("result_format")
        if result_format is not None:
            problem = _result_format_problem(result_format)
            if problem:
                raise NodeConfigurationError(f"{self._label()}: {problem}")
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
        fetch_size: int | None = None,
        result_format: str = "dict",
        default_url: URL | None = None,
    ) -> SQLRequest:
        """Check the run's inputs and turn them into a ``SQLRequest``.

        ``params`` may also be a list of plain values for positional placeholders
        (``?``, ``$1`` or ``%s``, as Kailash takes them), or a single such value; they
        are bound as named parameters. ``default_url`` is used when
        ``connection_string`` is not given, before ``$KAILASH_NB_SQL_URL``.

        Raises:
            NodeValidationError: empty query, unknown fetch mode or result format (or
                ``"dataframe"`` without pandas installed), a ``"many"`` fetch without
                ``fetch_size``, malformed params or URL.
            NodeExecutionError: no URL given and ``$KAILASH_NB_SQL_URL`` unset.
        """
        from sqlalchemy import text

        if not query.strip():
            raise NodeValidationError(f"{self._label()}: query must not be empty")
        if fetch_mode not in FETCH_MODES:
            raise NodeValidationError(f"{self._label()}: {_fetch_mode_problem(fetch_mode)}")
        if fetch_mode == "many" and (
            isinstance(fetch_size, bool) or not isinstance(fetch_size, int) or fetch_size < 1
        ):
            raise NodeValidationError(
                f"{self._label()}: fetch_mode 'many' needs fetch_size, an int >= 1; got "
                f"{fetch_size!r}"
            )
        problem = _result_format_problem(result_format)
        if problem:
            raise NodeValidationError(f"{self._label()}: {problem}")
        if params is not None and not isinstance(params, (dict, list, tuple)):
            params = [params]  # one value for one positional placeholder, as in Kailash
        if not (params is None or _is_named(params)):
            listed = isinstance(params, (list, tuple))
            if listed and all(_is_named(item) for item in params):
                params = list(params)
            elif listed and not any(isinstance(item, dict) for item in params):
                query, params = self._positional(query, list(params))
            else:
                raise NodeValidationError(
                    f"{self._label()}: params must be a dict of named bind parameters (string "
                    "keys matching ':name' in the query), a list of such dicts to execute the "
                    "statement once per dict, or a list of values for positional placeholders "
                    f"('?', '$1' or '%s'); got {type(params).__name__}"
                )
        if (connection_string is None or connection_string == "") and default_url is not None:
            url = default_url
        else:
            url = self.database_url(connection_string)
        return SQLRequest(
            url,
            text(query),
            params,
            fetch_mode,
            transaction is not False,
            fetch_size,
            result_format,
            query,
        )

    def _positional(self: Any, query: str, values: list[Any]) -> tuple[str, dict[str, Any]]:
        try:
            return positional_to_named(query, values)
        except ValueError as exc:
            raise NodeValidationError(f"{self._label()}: {exc}") from None

    # -- results and errors ---------------------------------------------------------
    @staticmethod
    def shape(
        result: CursorResult[Any] | None,
        fetch_mode: str,
        fetch_size: int | None = None,
        result_format: str = "dict",
    ) -> dict[str, Any]:
        """``{"data", "row_count", "columns"}`` from an executed statement's result
        (``None``: nothing was executed)."""
        if result is None or not result.returns_rows:
            return {
                "data": [] if fetch_mode in ("all", "many") else None,
                "row_count": 0 if result is None else max(result.rowcount, 0),
                "columns": [],
            }
        columns = list(result.keys())
        if result_format == "dataframe":
            return _dataframe_shape(result, columns, fetch_mode, fetch_size)
        rows_of = result.mappings() if result_format == "dict" else result
        if fetch_mode == "one":
            row = rows_of.first()
            return {
                "data": None if row is None else _row(row, result_format),
                "row_count": int(row is not None),
                "columns": columns,
            }
        fetched = rows_of.fetchmany(fetch_size) if fetch_mode == "many" else rows_of.all()
        rows = [_row(row, result_format) for row in fetched]
        return {
            "data": None if fetch_mode == "none" else rows,
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


def _row(row: Any, result_format: str) -> Any:
    return dict(row) if result_format == "dict" else list(row)


def _is_named(params: Any) -> bool:
    return isinstance(params, dict) and all(isinstance(key, str) for key in params)


def _fetch_mode_problem(fetch_mode: Any) -> str:
    return f"fetch_mode must be one of {list(FETCH_MODES)}, got {fetch_mode!r}"


def _result_format_problem(result_format: Any) -> str | None:
    """What is wrong with ``result_format``, or ``None``."""
    if result_format not in RESULT_FORMATS:
        return f"result_format must be one of {list(RESULT_FORMATS)}, got {result_format!r}"
    if result_format == "dataframe" and importlib.util.find_spec("pandas") is None:
        return (
            "result_format 'dataframe' needs the pandas package, which is not installed; "
            "pip install pandas, or use 'dict' or 'list'"
        )
    return None


def _dataframe_shape(
    result: Any, columns: list[str], fetch_mode: str, fetch_size: int | None
) -> dict[str, Any]:
    """The rows as a ``pandas.DataFrame`` (``None`` for ``fetch_mode="none"``)."""
    import pandas

    if fetch_mode == "one":
        first = result.first()
        fetched = [] if first is None else [first]
    elif fetch_mode == "many":
        fetched = result.fetchmany(fetch_size)
    else:
        fetched = result.all()
    frame = pandas.DataFrame([tuple(row) for row in fetched], columns=columns)
    return {
        "data": None if fetch_mode == "none" else frame,
        "row_count": len(fetched),
        "columns": columns,
    }


_POSITIONAL = re.compile(
    r"'(?:[^']|'')*'"  # string literal
    r'|"(?:[^"]|"")*"'  # quoted identifier
    r"|--[^\n]*"  # line comment
    r"|/\*.*?\*/"  # block comment
    r"|::"  # PostgreSQL cast, not a placeholder
    r"|(?P<question>\?)|\$(?P<dollar>\d+)|(?P<format>%s)",
    re.DOTALL,
)


def positional_to_named(query: str, values: list[Any]) -> tuple[str, dict[str, Any]]:
    """``query`` with its positional placeholders (``?``, ``$1``... or ``%s``, outside
    string literals, quoted identifiers and comments) made ``:p0``, ``:p1``... (``(:p0)``
    before a ``::type`` cast), and the values keyed by those names.

    Raises:
        ValueError: placeholders and values do not match one to one.
    """
    count = 0
    used: set[int] = set()

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        if match.group("dollar") is not None:
            index = int(match.group("dollar")) - 1
        elif match.group("question") or match.group("format"):
            index = count
            count += 1
        else:
            return match.group(0)
        if not 0 <= index < len(values):
            raise ValueError(
                f"the query has more positional placeholders than the {len(values)} values "
                "in params"
            )
        used.add(index)
        if query.startswith("::", match.end()):
            # ":p0::int" is no bind parameter to SQLAlchemy; "(:p0)::int" is.
            return f"(:p{index})"
        return f":p{index}"

    named = _POSITIONAL.sub(replace, query)
    if len(used) != len(values):
        raise ValueError(
            f"params holds {len(values)} positional values but the query uses {len(used)} "
            "placeholders ('?', '$1' or '%s')"
        )
    return named, {f"p{index}": value for index, value in enumerate(values)}


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
