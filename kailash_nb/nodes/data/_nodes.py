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
from kailash_nb.nodes._sql import SQL_URL_ENV, SQLNodeCore
from kailash_nb.nodes.base_async import AsyncNode
from kailash_nb.nodes.node import Node, NodeParameter
from kailash_nb.nodes.registry import register_node
from kailash_nb.sdk_exceptions import NodeExecutionError, NodeValidationError

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
            dict (executemany; an empty list runs nothing).
        fetch_mode: ``"all"`` (list of row dicts, default), ``"one"`` (first row dict or
            ``None``) or ``"none"`` (``None``).
        transaction: ``True`` (default) commits on success and rolls back on error, so an
            executemany that fails half way writes nothing. ``False`` autocommits, for
            statements such as ``VACUUM`` that refuse a transaction; a failing
            executemany may then leave the rows before the failure (SQLite) or none
            (PostgreSQL sends the batch as one pipeline).

    Outputs ``{"data": ..., "row_count": n, "columns": [...]}``: ``row_count`` is the
    number of rows returned, or affected for statements that return none (``0`` if the
    driver cannot tell); ``columns`` names the result columns (``[]`` for none).

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
    """

    __doc__ = (__doc__ or "").rstrip() + "\n" + _SQL_DOC

    def run(self, **kwargs: Any) -> dict[str, Any]:
        """Execute the statement; see the class docstring."""
        from sqlalchemy import exc as sa_exc

        from kailash_nb.store.database import get_engine

        request = self.sql_request(**kwargs)
        if request.params == []:
            return self.shape(None, request.fetch_mode)
        try:
            engine = get_engine(request.url)
            if request.transaction:
                connection = engine.begin()
            else:
                connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            with connection as conn:
                result = conn.execute(request.statement, request.params)
                return self.shape(result, request.fetch_mode)
        except ImportError as exc:
            raise self.driver_error(exc, request.url) from None
        except sa_exc.SQLAlchemyError as exc:
            raise self.database_error(exc, request.url) from getattr(exc, "orig", None)


@register_node()
class AsyncSQLDatabaseNode(SQLNodeCore, AsyncNode):
    """Run one SQL statement on a pooled async connection (SQLAlchemy 2 asyncio).

    ``add_node("AsyncSQLDatabaseNode", "db", {})`` builds; the URL and query can come
    at run time. ``await node.execute_async(query=...)`` runs it on its own.
    """

    __doc__ = (__doc__ or "").rstrip() + "\n" + _SQL_DOC

    async def async_run(self, **kwargs: Any) -> dict[str, Any]:
        """Execute the statement; see the class docstring."""
        from sqlalchemy import exc as sa_exc

        from kailash_nb.store.database import get_async_engine

        request = self.sql_request(**kwargs)
        if request.params == []:
            return self.shape(None, request.fetch_mode)
        try:
            engine = get_async_engine(request.url)
            if request.transaction:
                async with engine.begin() as conn:
                    result = await conn.execute(request.statement, request.params)
                    return self.shape(result, request.fetch_mode)
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                result = await conn.execute(request.statement, request.params)
                return self.shape(result, request.fetch_mode)
        except ImportError as exc:
            raise self.driver_error(exc, request.url) from None
        except sa_exc.SQLAlchemyError as exc:
            raise self.database_error(exc, request.url) from getattr(exc, "orig", None)
