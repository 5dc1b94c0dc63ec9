"""Data nodes: CSV and JSON files, SQL databases.

File writers replace their file atomically (temp file, fsync, rename), so a failed or
interrupted write leaves the previous file as it was. The SQL nodes run one statement
with bound parameters on a pooled engine shared by every node with the same URL::

    builder.add_node("CSVReaderNode", "load", {"file_path": "orders.csv"})
    builder.add_node("SQLDatabaseNode", "save", {
        "connection_string": "sqlite:///orders.db",
        "query": "INSERT INTO orders (id, total) VALUES (:id, :total)",
    })
"""

from __future__ import annotations

import csv
import json
from typing import Any

from kailash_nb.nodes._files import FileNode, TextFileNode, reading_encoding, write_atomically
from kailash_nb.nodes._sql import (
    SQL_URL_ENV,
    SQLALCHEMY_POOL_SIZE,
    KailashConnection,
    SQLNodeCore,
    kailash_connection,
    pool_setting,
    pooled_url,
)
from kailash_nb.nodes.base_async import AsyncNode
from kailash_nb.nodes.node import Node, NodeParameter
from kailash_nb.nodes.registry import register_node
from kailash_nb.sdk_exceptions import (
    NodeConfigurationError,
    NodeExecutionError,
    NodeValidationError,
)

__all__ = [
    "SQL_URL_ENV",
    "AsyncSQLDatabaseNode",
    "CSVReaderNode",
    "CSVWriterNode",
    "JSONReaderNode",
    "JSONWriterNode",
    "SQLDatabaseNode",
]


def _parameter(name: str, kind: Any, default: Any = None, *, required: bool = False, text: str):
    return NodeParameter(name=name, type=kind, required=required, default=default, description=text)


_FILE_PATH = _parameter("file_path", None, required=True, text="path of the file")
_ENCODING = _parameter("encoding", str, "utf-8", text="text encoding of the file")
_DELIMITER = _parameter("delimiter", str, ",", text="one-character field separator")


@register_node()
class CSVReaderNode(TextFileNode):
    """Read a CSV file into a list of rows.

    Parameters:
        file_path: the file to read (str or ``os.PathLike``).
        delimiter: field separator, one character (default ``","``).
        has_header: the first row names the columns (default ``True``); rows become
            dicts keyed by those names, a short row's missing fields are ``None``.
            With ``False`` every row is a list of strings.
        encoding: the file's encoding (default ``"utf-8"``; a byte-order mark is skipped).

    Outputs ``{"data": rows}``; values are strings and blank lines are skipped.

    Raises:
        NodeConfigurationError / NodeValidationError: empty path, NUL byte in the path,
            unknown encoding, bad delimiter (at build for config, at run for inputs).
        NodeExecutionError: missing or unreadable file, undecodable text, a repeated
            header name, or a row with more fields than the header (naming the line).
    """

    def get_parameters(self) -> dict[str, NodeParameter]:
        """CSV reader inputs."""
        return {
            "file_path": _FILE_PATH,
            "delimiter": _DELIMITER,
            "has_header": _parameter("has_header", bool, True, text="first row names columns"),
            "encoding": _ENCODING,
        }

    def run(
        self, file_path: Any, delimiter: str, has_header: bool, encoding: str
    ) -> dict[str, Any]:
        """Read the file; see the class docstring."""
        path = self.checked_path(file_path)
        self.checked_text_options(encoding, delimiter)
        try:
            with open(path, encoding=reading_encoding(encoding), newline="") as handle:
                reader = csv.reader(handle, delimiter=delimiter)
                return {"data": self._records(reader, path) if has_header else _lists(reader)}
        except OSError as exc:
            raise self.file_error(exc, path, "read") from None
        except UnicodeDecodeError as exc:
            raise self.decode_error(exc, path, encoding) from None
        except csv.Error as exc:
            raise NodeExecutionError(
                f"{self._label()}: malformed CSV in {path!r} at line {reader.line_num}: {exc}"
            ) from None

    def _records(self, reader: Any, path: str) -> list[dict[str, Any]]:
        header: list[str] | None = None
        records = []
        for row in reader:
            if not row:
                continue
            if header is None:
                header = row
                repeated = sorted({name for name in row if row.count(name) > 1})
                if repeated:
                    raise NodeExecutionError(
                        f"{self._label()}: the header of {path!r} repeats {repeated}; rename "
                        "the columns or set has_header=False to read rows as lists"
                    )
                continue
            if len(row) > len(header):
                raise NodeExecutionError(
                    f"{self._label()}: {path!r} line {reader.line_num} has {len(row)} fields "
                    f"but the header has {len(header)}"
                )
            record: dict[str, Any] = dict(zip(header, row, strict=False))
            if len(row) < len(header):
                record.update(dict.fromkeys(header[len(row) :]))
            records.append(record)
        return records


def _lists(reader: Any) -> list[list[str]]:
    return [row for row in reader if row]


@register_node()
class CSVWriterNode(TextFileNode):
    """Write rows to a CSV file, atomically.

    Parameters:
        file_path: the file to write (its directory must exist).
        data: a list of dicts (a header row of every key, in first-seen order, is
            written; missing values are empty) or a list of lists (written as is).
        delimiter: field separator, one character (default ``","``).
        encoding: the file's encoding (default ``"utf-8"``).

    Outputs ``{"rows_written": n, "file_path": path}`` (the header is not counted).

    Raises:
        NodeConfigurationError: bad path, encoding or delimiter in the config.
        NodeValidationError: the same given at run time; ``data`` mixing dicts and
            lists, or holding something else.
        NodeExecutionError: the directory is missing or not writable, or a value
            cannot be encoded; the previous file is then left untouched.
    """

    def get_parameters(self) -> dict[str, NodeParameter]:
        """CSV writer inputs."""
        return {
            "file_path": _FILE_PATH,
            "data": _parameter("data", list, required=True, text="rows: dicts or lists"),
            "delimiter": _DELIMITER,
            "encoding": _ENCODING,
        }

    def run(self, file_path: Any, data: list[Any], delimiter: str, encoding: str) -> dict[str, Any]:
        """Write the rows; see the class docstring."""
        path = self.checked_path(file_path)
        self.checked_text_options(encoding, delimiter)
        header = self._header(data)

        def write(handle: Any) -> None:
            writer = csv.writer(handle, delimiter=delimiter)
            if header is None:
                writer.writerows(data)
                return
            writer.writerow(header)
            writer.writerows([row.get(name) for name in header] for row in data)

        try:
            write_atomically(path, write, encoding=encoding, newline="")
        except OSError as exc:
            raise self.file_error(exc, path, "write") from None
        except UnicodeEncodeError as exc:
            raise self.decode_error(exc, path, encoding) from None
        return {"rows_written": len(data), "file_path": path}

    def _header(self, data: list[Any]) -> list[Any] | None:
        """Column names for dict rows, ``None`` for list rows."""
        as_dicts = bool(data) and isinstance(data[0], dict)
        kind = dict if as_dicts else (list, tuple)
        for index, row in enumerate(data):
            if not isinstance(row, kind):
                raise NodeValidationError(
                    f"{self._label()}: data[{index}] is a {type(row).__name__}; data must be "
                    "a list of dicts or a list of lists (one kind, not a mix)"
                )
        return list(dict.fromkeys(key for row in data for key in row)) if as_dicts else None


@register_node()
class JSONReaderNode(FileNode):
    """Read a JSON file.

    Parameters:
        file_path: the file to read (UTF-8, a byte-order mark is skipped).

    Outputs ``{"data": parsed}``.

    Raises:
        NodeConfigurationError / NodeValidationError: empty path or NUL byte in it.
        NodeExecutionError: missing or unreadable file, or malformed JSON (naming the
            line and column).
    """

    def get_parameters(self) -> dict[str, NodeParameter]:
        """JSON reader inputs."""
        return {"file_path": _FILE_PATH}

    def run(self, file_path: Any) -> dict[str, Any]:
        """Read and parse the file."""
        path = self.checked_path(file_path)
        try:
            with open(path, encoding="utf-8-sig") as handle:
                text = handle.read()
        except OSError as exc:
            raise self.file_error(exc, path, "read") from None
        except UnicodeDecodeError as exc:
            raise NodeExecutionError(
                f"{self._label()} cannot read {path!r}: it is not UTF-8 text ({exc.reason})"
            ) from None
        try:
            return {"data": json.loads(text)}
        except json.JSONDecodeError as exc:
            raise NodeExecutionError(
                f"{self._label()}: malformed JSON in {path!r} at line {exc.lineno} column "
                f"{exc.colno}: {exc.msg}"
            ) from None


@register_node()
class JSONWriterNode(FileNode):
    """Write data to a JSON file (UTF-8), atomically.

    Parameters:
        file_path: the file to write (its directory must exist).
        data: any JSON-serializable value.
        indent: spaces per nesting level (default 2; ``None`` writes one line).

    Outputs ``{"file_path": path}``.

    Raises:
        NodeConfigurationError / NodeValidationError: empty path or NUL byte in it.
        NodeExecutionError: ``data`` is not JSON-serializable (a datetime, a set, ...),
            or the directory is missing or not writable; the previous file is then
            left untouched.
    """

    def get_parameters(self) -> dict[str, NodeParameter]:
        """JSON writer inputs."""
        return {
            "file_path": _FILE_PATH,
            "data": _parameter("data", None, required=True, text="value to write"),
            "indent": _parameter("indent", int, 2, text="spaces per level; None for one line"),
        }

    def run(self, file_path: Any, data: Any, indent: int | None) -> dict[str, Any]:
        """Serialize ``data`` and replace the file with it."""
        path = self.checked_path(file_path)
        try:
            text = json.dumps(data, indent=indent, ensure_ascii=False) + "\n"
        except (TypeError, ValueError) as exc:
            raise NodeExecutionError(
                f"{self._label()} cannot write {path!r}: {exc}; convert such values first "
                "(e.g. with a PythonCodeNode); the file was not changed"
            ) from None
        try:
            write_atomically(path, lambda handle: handle.write(text))
        except OSError as exc:
            raise self.file_error(exc, path, "write") from None
        except UnicodeEncodeError as exc:
            raise NodeExecutionError(
                f"{self._label()} cannot write {path!r}: {exc.reason} (a lone surrogate in "
                "a string?); the file was not changed"
            ) from None
        return {"file_path": path}


_SQL_DOC = """
    Parameters:
        connection_string: database URL, e.g. ``sqlite:///app.db`` or
            ``postgresql://user@host:5432/db`` (psycopg 3; async SQLite uses aiosqlite).
            Optional: without it ``$KAILASH_NB_SQL_URL`` is used, which keeps the
            password out of workflow definitions.
        query: one SQL statement; values go in ``:name`` placeholders, never in the text.
        params: a dict of bind values, or a list of dicts to run the statement once per
            dict (executemany; an empty list runs nothing), or a list of plain values
            for positional placeholders ``?``, ``$1`` or ``%s`` (bound, never pasted); a
            single value that is not a list, tuple or dict is one positional value.
        fetch_mode: ``"all"`` (list of row dicts, default), ``"one"`` (first row dict or
            ``None``), ``"many"`` (the first ``fetch_size`` rows) or ``"none"``
            (``None``).
        fetch_size: rows to fetch in ``"many"`` mode (an int >= 1).
        result_format: ``"dict"`` (default) rows keyed by column, ``"list"`` rows
            holding the values in column order, or ``"dataframe"``: a
            ``pandas.DataFrame`` (needs pandas, which kailash_nb does not install).
        transaction: ``True`` (default) commits on success and rolls back on error, so an
            executemany that fails half way writes nothing. ``False`` autocommits, for
            statements such as ``VACUUM`` that refuse a transaction; a failing
            executemany may then leave the rows before the failure (SQLite) or none
            (PostgreSQL sends the batch as one pipeline).


    Raises:
        NodeConfigurationError: unknown ``fetch_mode`` or malformed URL in the config.
        NodeValidationError: the same at run time, an empty query, malformed ``params``.
        NodeExecutionError: no URL (saying what to set), a missing driver (saying what
            to install), or a database error: it names the node and carries the
            database's own message; the URL's password is never shown, nor are the bound
            values (unless the database's message quotes one, as PostgreSQL does for a
            duplicate key).
"""


@register_node()
class SQLDatabaseNode(SQLNodeCore, Node):
    """Run one SQL statement on a pooled connection (SQLAlchemy 2, synchronous).

    Usage::

        SQLDatabaseNode(connection_string="sqlite:///app.db").execute(
            query="SELECT name FROM users WHERE id = :id", params={"id": 7}, fetch_mode="one"
        )  # {"data": {"name": "Ada"}, "row_count": 1, "columns": ["name"]}

    Outputs ``{"data": ..., "row_count": n, "columns": [...]}``, as Kailash's
    ``SQLDatabaseNode``: ``row_count`` is the number of rows returned, or affected for
    statements that return none (``0`` if the driver cannot tell); ``columns`` names
    the result columns (``[]`` for none). Kailash's ``execution_time`` is left out (it
    would make equal runs differ; run events carry each node's duration).

    As in Kailash, ``parameters`` is another name for ``params``, and the config may
    set the engine's ``pool_size`` and ``max_overflow`` (SQLAlchemy's own meaning).
    """

    __doc__ = (__doc__ or "").rstrip() + "\n" + _SQL_DOC

    config_only_keys = frozenset({"pool_size", "max_overflow"})

    def get_parameters(self) -> dict[str, NodeParameter]:
        """The SQL node inputs plus Kailash's ``parameters``."""
        parameters = super().get_parameters()
        parameters["parameters"] = _parameter(
            "parameters", None, text="Kailash's name for params (give one of the two)"
        )
        return parameters

    def _prepare(self) -> None:
        super()._prepare()
        label = self._label()
        self._pool_size = pool_setting(self.config, "pool_size", label)
        self._max_overflow = pool_setting(self.config, "max_overflow", label, least=0)

    def run(self, **kwargs: Any) -> dict[str, Any]:
        """Execute the statement; see the class docstring."""
        from sqlalchemy import exc as sa_exc

        from kailash_nb.store.database import get_engine, with_pool_size

        parameters = kwargs.pop("parameters", None)
        if parameters is not None:
            if kwargs.get("params") is not None:
                raise NodeValidationError(
                    f"{self._label()}: give the bind values as 'params' or as 'parameters' "
                    "(Kailash's name), not both"
                )
            kwargs["params"] = parameters
        request = self.sql_request(**kwargs)
        if request.params == []:
            return self.shape(None, request.fetch_mode)
        url = request.url
        if self._pool_size is not None or self._max_overflow is not None:
            url = with_pool_size(
                url, self._pool_size or SQLALCHEMY_POOL_SIZE, max_overflow=self._max_overflow
            )
        try:
            engine = get_engine(url)
            if request.transaction:
                connection = engine.begin()
            else:
                connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            with connection as conn:
                result = conn.execute(request.statement, request.params)
                return self.shape(
                    result, request.fetch_mode, request.fetch_size, request.result_format
                )
        except ImportError as exc:
            raise self.driver_error(exc, request.url) from None
        except sa_exc.SQLAlchemyError as exc:
            raise self.database_error(exc, request.url) from getattr(exc, "orig", None)


#: Kailash ``transaction_mode`` values and the ``transaction`` flag each one means.
_TRANSACTION_MODES = {"auto": True, "none": False}


@register_node()
class AsyncSQLDatabaseNode(SQLNodeCore, AsyncNode):
    """Run one SQL statement on a pooled async connection (SQLAlchemy 2 asyncio).

    ``add_node("AsyncSQLDatabaseNode", "db", {})`` builds; the URL and query can come
    at run time. ``await node.execute_async(query=...)`` runs it on its own. Kailash's
    connection parameters build the URL instead of ``connection_string``::

        AsyncSQLDatabaseNode(
            database_type="postgresql", host="db", port=5432, database="app",
            user="app", password=secret, pool_size=5, max_pool_size=20,
            query="SELECT id, name FROM users",
        )

    Outputs Kailash's async shape, ``{"result": {"data": ..., "row_count": n,
    "columns": [...], "query": text, "database_type": kind, "format": result_format}}``.
    ``data`` holds the rows (``"all"``, ``"many"``), the first row or ``None``
    (``"one"``), or ``None`` (``"none"``); a statement that returns no rows gives
    ``[{"rows_affected": n}]`` when it changes rows (``INSERT``, ``UPDATE``,
    ``DELETE``) and ``[]`` otherwise (``CREATE TABLE``). ``row_count`` is the number of
    rows returned, or affected; ``query`` is the statement as run; ``database_type`` is
    ``"postgresql"``, ``"mysql"`` or ``"sqlite"``.

    Kailash's connection parameters go in the config only, never in run-time inputs,
    so no caller can point the node elsewhere:

    - ``database_type``: ``"postgresql"`` (default, as in Kailash), ``"mysql"`` (needs
      the ``kailash-nb[mysql]`` extra) or ``"sqlite"``.
    - ``host``, ``port``, ``database``, ``user``, ``password``: the server; for SQLite
      ``database`` is the file path (or ``":memory:"``). A ``connection_string`` wins
      over them. The password is a secret: never shown in errors, definitions, events
      or logs.
    - ``pool_size``: connections the pool keeps (SQLAlchemy's ``pool_size``);
      ``max_pool_size``: connections open at most (``pool_size`` plus SQLAlchemy's
      ``max_overflow``).
    - ``transaction_mode``: Kailash's ``"auto"`` (``transaction=True``) or ``"none"``
      (``transaction=False``); ``"manual"`` is refused.
    - ``allow_admin=True`` and ``validate_queries=False`` are accepted: kailash_nb never
      screens statement text (values are always bound), so ``allow_admin=False`` and
      ``validate_queries=True`` are refused rather than pretended.

    The ``timeout`` input is the seconds the statement may run (``None``: no limit);
    past it the statement is cancelled, its transaction rolled back, and the node fails.
    """

    __doc__ = (__doc__ or "").rstrip() + "\n" + _SQL_DOC

    config_only_keys = frozenset(
        {
            "database_type",
            "host",
            "port",
            "database",
            "user",
            "password",
            "pool_size",
            "max_pool_size",
            "transaction_mode",
            "allow_admin",
            "validate_queries",
        }
    )

    def get_parameters(self) -> dict[str, NodeParameter]:
        """The SQL node inputs plus ``timeout``."""
        parameters = super().get_parameters()
        parameters["timeout"] = _parameter(
            "timeout", float, text="seconds the statement may run; None: no limit"
        )
        return parameters

    def _prepare(self) -> None:
        super()._prepare()
        config = self.config
        label = self._label()
        mode = config.get("transaction_mode")
        if mode is not None:
            if mode not in _TRANSACTION_MODES:
                raise NodeConfigurationError(
                    f"{label}: transaction_mode must be 'auto' or 'none', got {mode!r:.40} "
                    "('manual' transactions spanning several nodes are not supported)"
                )
            transaction = config.get("transaction")
            if transaction is not None and transaction is not _TRANSACTION_MODES[mode]:
                raise NodeConfigurationError(
                    f"{label}: transaction={transaction!r} contradicts transaction_mode={mode!r}"
                )
            config["transaction"] = _TRANSACTION_MODES[mode]
        for key, accepted in (("allow_admin", True), ("validate_queries", False)):
            value = config.get(key)
            if value is not None and value is not accepted:
                raise NodeConfigurationError(
                    f"{label}: {key}={value!r} is not supported: kailash_nb does not screen "
                    "SQL text (values always go in bound parameters); remove the option"
                )
        self._connection: KailashConnection = kailash_connection(config, label)

    async def async_run(self, **kwargs: Any) -> dict[str, Any]:
        """Execute the statement; see the class docstring."""
        import asyncio

        from sqlalchemy import exc as sa_exc

        from kailash_nb.store.database import get_async_engine

        timeout = kwargs.pop("timeout", None)
        if timeout is not None and (isinstance(timeout, bool) or timeout <= 0):
            raise NodeValidationError(f"{self._label()}: timeout must be > 0, got {timeout!r}")
        settings = self._connection
        request = self.sql_request(**kwargs, default_url=settings.url)
        url = pooled_url(request.url, settings.pool_size, settings.max_pool_size)
        if request.params == []:
            return self._kailash_shape(self.shape(None, request.fetch_mode), request)
        try:
            engine = get_async_engine(url)
            shaped = await asyncio.wait_for(self._execute(engine, request), timeout)
        except asyncio.TimeoutError:
            raise NodeExecutionError(
                f"{self._label()}: the statement ran longer than its timeout of {timeout} s "
                "and was cancelled (its transaction rolled back)"
            ) from None
        except ImportError as exc:
            raise self.driver_error(exc, request.url) from None
        except sa_exc.SQLAlchemyError as exc:
            raise self.database_error(exc, request.url) from getattr(exc, "orig", None)
        return self._kailash_shape(shaped, request)

    async def _execute(self, engine: Any, request: Any) -> dict[str, Any]:
        if request.transaction:
            async with engine.begin() as conn:
                result = await conn.execute(request.statement, request.params)
                return self._shaped(result, request)
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            result = await conn.execute(request.statement, request.params)
            return self._shaped(result, request)

    def _shaped(self, result: Any, request: Any) -> dict[str, Any]:
        shaped = self.shape(result, request.fetch_mode, request.fetch_size, request.result_format)
        if not result.returns_rows and result.rowcount >= 0 and request.fetch_mode != "none":
            # A statement that changed rows, as Kailash reports it.
            shaped["data"] = [{"rows_affected": result.rowcount}]
        return shaped

    @staticmethod
    def _kailash_shape(shaped: dict[str, Any], request: Any) -> dict[str, Any]:
        backend = request.url.get_backend_name()
        return {
            "result": {
                **shaped,
                "query": request.query,
                "database_type": "postgresql" if backend == "postgres" else backend,
                "format": request.result_format,
            }
        }
