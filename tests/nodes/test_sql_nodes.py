"""SQLDatabaseNode and AsyncSQLDatabaseNode, each test on SQLite and on PostgreSQL.

``database_url`` (tests/conftest.py) runs every test once per backend; the PostgreSQL
database is shared by the session, so each test works in its own uniquely named table.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from kailash_nb.nodes.base import NodeRegistry
from kailash_nb.nodes.data import SQL_URL_ENV, AsyncSQLDatabaseNode, SQLDatabaseNode
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.sdk_exceptions import (
    NodeConfigurationError,
    NodeExecutionError,
    NodeValidationError,
)
from kailash_nb.store import database as store_database
from kailash_nb.workflow.builder import WorkflowBuilder

HOSTILE = "x'); DROP TABLE {table}; --"
MISSING_TABLE = r"no such table: missing_\w+|relation \"missing_\w+\" does not exist"


@pytest.fixture(params=[SQLDatabaseNode, AsyncSQLDatabaseNode], ids=["sync", "async"])
def node_class(request):
    """Each SQL node class; ``execute()`` drives the async one from sync code."""
    return request.param


@pytest.fixture
def table(database_url):
    """A fresh ``(id, name, qty)`` table, dropped afterwards."""
    name = f"items_{uuid.uuid4().hex[:10]}"
    admin = SQLDatabaseNode(connection_string=database_url)
    admin.execute(
        query=f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER)"
    )
    yield name
    admin.execute(query=f"DROP TABLE IF EXISTS {name}")


def _rows(database_url, table):
    result = SQLDatabaseNode(connection_string=database_url).execute(
        query=f"SELECT id, name, qty FROM {table} ORDER BY id"
    )
    return result["data"]


def _core(node_class, result):
    """``{"data", "row_count", "columns"}`` of a SQL node's output: the sync node's own
    (flat, as Kailash's SQLDatabaseNode), or the async node's under ``"result"`` (as
    Kailash's AsyncSQLDatabaseNode), whose other keys are checked here."""
    if node_class is SQLDatabaseNode or node_class == "SQLDatabaseNode":
        return result
    assert list(result) == ["result"]
    inner = result["result"]
    assert set(inner) == {"data", "row_count", "columns", "query", "database_type", "format"}
    assert inner["database_type"] in {"sqlite", "postgresql"}
    return {key: inner[key] for key in ("data", "row_count", "columns")}


def _written(node_class, count):
    """``data`` of a statement that changed ``count`` rows: ``[]`` from the sync node,
    Kailash's ``[{"rows_affected": n}]`` from the async one."""
    return [] if node_class is SQLDatabaseNode else [{"rows_affected": count}]


def _insert(node, table, rows):
    return node.execute(
        query=f"INSERT INTO {table} (id, name, qty) VALUES (:id, :name, :qty)", params=rows
    )


@pytest.mark.parametrize("name", ["SQLDatabaseNode", "AsyncSQLDatabaseNode"])
def test_sql_nodes_are_registered_builtins(name):
    assert NodeRegistry.get(name).__module__ == "kailash_nb.nodes.data._nodes"


# -- statements and parameters -----------------------------------------------------------


def test_create_insert_and_select_with_bound_params(node_class, database_url):
    table = f"made_{uuid.uuid4().hex[:10]}"
    node = node_class(id="db", connection_string=database_url)
    created = node.execute(query=f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT)")
    assert _core(node_class, created) == {"data": [], "row_count": 0, "columns": []}
    inserted = node.execute(
        query=f"INSERT INTO {table} (id, name) VALUES (:id, :name)", params={"id": 1, "name": "a"}
    )
    assert _core(node_class, inserted) == {
        "data": _written(node_class, 1),
        "row_count": 1,
        "columns": [],
    }
    selected = node.execute(query=f"SELECT id, name FROM {table} WHERE id = :id", params={"id": 1})
    assert _core(node_class, selected) == {
        "data": [{"id": 1, "name": "a"}],
        "row_count": 1,
        "columns": ["id", "name"],
    }
    node.execute(query=f"DROP TABLE {table}")


def test_hostile_value_is_stored_literally(node_class, database_url, table):
    node = node_class(connection_string=database_url)
    hostile = HOSTILE.format(table=table)
    _insert(node, table, {"id": 1, "name": hostile, "qty": 0})
    found = node.execute(
        query=f"SELECT name FROM {table} WHERE name = :name", params={"name": hostile}
    )
    assert _core(node_class, found)["data"] == [{"name": hostile}]
    always_true = node.execute(
        query=f"SELECT name FROM {table} WHERE name = :name", params={"name": "' OR '1'='1"}
    )
    assert _core(node_class, always_true)["row_count"] == 0
    assert _rows(database_url, table) == [{"id": 1, "name": hostile, "qty": 0}]


def test_executemany_runs_the_statement_once_per_dict(node_class, database_url, table):
    rows = [{"id": i, "name": f"n{i}", "qty": i * 10} for i in range(1, 4)]
    result = _insert(node_class(connection_string=database_url), table, rows)
    assert _core(node_class, result) == {
        "data": _written(node_class, 3),
        "row_count": 3,
        "columns": [],
    }
    assert _rows(database_url, table) == rows


def test_empty_params_list_runs_nothing(node_class, database_url, table):
    node = node_class(connection_string=database_url)
    result = _insert(node, table, [])
    assert _core(node_class, result) == {"data": [], "row_count": 0, "columns": []}
    assert _rows(database_url, table) == []


@pytest.mark.parametrize(
    ("fetch_mode", "data", "row_count"),
    [
        ("all", [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], 2),
        ("one", {"id": 1, "name": "a"}, 1),
        ("many", [{"id": 1, "name": "a"}], 1),
        ("none", None, 2),
    ],
)
def test_fetch_modes(node_class, database_url, table, fetch_mode, data, row_count):
    node = node_class(connection_string=database_url, fetch_mode=fetch_mode, fetch_size=1)
    _insert(node, table, [{"id": 1, "name": "a", "qty": 1}, {"id": 2, "name": "b", "qty": 2}])
    result = node.execute(query=f"SELECT id, name FROM {table} ORDER BY id")
    assert _core(node_class, result) == {
        "data": data,
        "row_count": row_count,
        "columns": ["id", "name"],
    }


def test_fetch_many_needs_fetch_size(node_class):
    node = node_class(id="db", connection_string="sqlite://", fetch_mode="many")
    with pytest.raises(NodeValidationError, match=r"node 'db'.*'many' needs fetch_size"):
        node.execute(query="SELECT 1")


@pytest.mark.parametrize(("fetch_mode", "data"), [("all", [[1, "a"], [2, "b"]]), ("one", [1, "a"])])
def test_list_result_format_gives_rows_in_column_order(
    node_class, database_url, table, fetch_mode, data
):
    node = node_class(connection_string=database_url, result_format="list")
    _insert(node, table, [{"id": 1, "name": "a", "qty": 1}, {"id": 2, "name": "b", "qty": 2}])
    result = node.execute(query=f"SELECT id, name FROM {table} ORDER BY id", fetch_mode=fetch_mode)
    assert _core(node_class, result)["data"] == data
    assert _core(node_class, result)["columns"] == ["id", "name"]
    if node_class is AsyncSQLDatabaseNode:
        assert result["result"]["format"] == "list"
    with pytest.raises(NodeConfigurationError, match="result_format must be one of"):
        node_class(result_format="xml")


@pytest.mark.parametrize(
    "query",
    [
        "SELECT name FROM {table} WHERE id = ? AND name <> '?' AND qty > ?",
        "SELECT name FROM {table} WHERE id = $1 AND name <> '$2' AND qty > $2",
        "SELECT name FROM {table} WHERE id = %s AND name <> '?' AND qty > %s -- ?",
    ],
)
def test_positional_params_are_bound_like_kailash(node_class, database_url, table, query):
    node = node_class(connection_string=database_url)
    _insert(node, table, [{"id": 1, "name": "a", "qty": 5}, {"id": 2, "name": "?", "qty": 5}])
    result = node.execute(query=query.format(table=table), params=[1, 0])
    assert _core(node_class, result)["data"] == [{"name": "a"}]
    if node_class is AsyncSQLDatabaseNode:
        assert ":p0" in result["result"]["query"]


@pytest.mark.postgres
@pytest.mark.parametrize("node_type", [SQLDatabaseNode, AsyncSQLDatabaseNode])
def test_positional_placeholder_before_a_cast(pg_url, node_type):
    result = node_type(connection_string=pg_url).execute(
        query="SELECT $1::int + 1 AS v, $2::text AS t", params=["41", 7]
    )
    assert _core(node_type, result)["data"] == [{"v": 42, "t": "7"}]


@pytest.mark.parametrize(("query", "params"), [("SELECT ?", [1, 2]), ("SELECT ?, ?", [1])])
def test_positional_params_must_match_the_placeholders(node_class, query, params):
    node = node_class(id="db", connection_string="sqlite://")
    with pytest.raises(NodeValidationError, match=r"node 'db'.*positional"):
        node.execute(query=query, params=params)


def test_fetch_one_without_rows_is_none(node_class, database_url, table):
    node = node_class(connection_string=database_url, fetch_mode="one")
    result = node.execute(query=f"SELECT id FROM {table}")
    assert _core(node_class, result) == {"data": None, "row_count": 0, "columns": ["id"]}


@pytest.mark.parametrize("fetch_mode", ["all", "one", "none"])
def test_statement_without_rows_reports_rows_affected(node_class, database_url, table, fetch_mode):
    node = node_class(connection_string=database_url)
    _insert(node, table, [{"id": i, "name": "n", "qty": 0} for i in range(1, 5)])
    result = node.execute(
        query=f"UPDATE {table} SET qty = :qty WHERE id > :id",
        params={"qty": 7, "id": 1},
        fetch_mode=fetch_mode,
    )
    if fetch_mode == "none":
        data = None
    elif node_class is SQLDatabaseNode:
        data = [] if fetch_mode == "all" else None
    else:
        data = [{"rows_affected": 3}]
    assert _core(node_class, result) == {"data": data, "row_count": 3, "columns": []}


@pytest.mark.parametrize("params", [[{"id": 1}, "x"], {1: "a"}])
def test_params_must_be_named(node_class, params):
    node = node_class(id="db", connection_string="sqlite://")
    with pytest.raises(NodeValidationError, match=r"node 'db'.*params must be a dict"):
        node.execute(query="SELECT 1", params=params)


def test_fetch_mode_is_checked_at_build_and_at_run(node_class):
    with pytest.raises(NodeConfigurationError, match="fetch_mode must be one of"):
        node_class(id="db", fetch_mode="some")
    builder = WorkflowBuilder()
    builder.add_node(node_class.type_name(), "db", {"fetch_mode": "first"})
    with pytest.raises(NodeConfigurationError, match=r"node 'db'.*got 'first'"):
        builder.build()
    with pytest.raises(NodeValidationError, match=r"node 'db'.*fetch_mode"):
        node_class(id="db", connection_string="sqlite://").execute(query="SELECT 1", fetch_mode="x")


# -- transactions ------------------------------------------------------------------------


def test_failing_executemany_is_rolled_back(node_class, database_url, table):
    node = node_class(id="loader", connection_string=database_url)
    _insert(node, table, {"id": 1, "name": "existing", "qty": 0})
    rows = [{"id": 2, "name": "b", "qty": 0}, {"id": 3, "name": "c", "qty": 0}]
    with pytest.raises(NodeExecutionError, match="node 'loader'"):
        _insert(node, table, [*rows, {"id": 1, "name": "duplicate", "qty": 0}])
    assert _rows(database_url, table) == [{"id": 1, "name": "existing", "qty": 0}]


def test_transaction_false_runs_statements_that_refuse_a_transaction(node_class, database_url):
    node = node_class(connection_string=database_url, transaction=False)
    assert _core(node_class, node.execute(query="VACUUM"))["data"] == []


# -- errors ------------------------------------------------------------------------------


def test_database_error_names_the_node_and_carries_the_database_message(node_class, database_url):
    url = sa.make_url(database_url)
    if url.get_backend_name() == "postgresql":
        # The test server trusts local connections, so the password is accepted and ignored.
        url = url.set(password="pw-s3cret-value")
    node = node_class(id="reader", connection_string=url.render_as_string(hide_password=False))
    with pytest.raises(NodeExecutionError) as caught:
        node.execute(
            query=f"SELECT * FROM missing_{uuid.uuid4().hex[:8]} WHERE name = :name",
            params={"name": "bound-value-42"},
        )
    message = str(caught.value)
    assert message.startswith(f"node 'reader' ({node_class.__name__}) failed on ")
    assert caught.match(MISSING_TABLE)
    assert "pw-s3cret-value" not in message
    assert "bound-value-42" not in message
    assert "[parameters" not in message
    # The cause is the driver's own error, not SQLAlchemy's wrapper that lists the values.
    assert not isinstance(caught.value.__cause__, sa.exc.SQLAlchemyError)


def test_password_is_never_shown_when_the_server_is_unreachable(node_class):
    node = node_class(id="db", connection_string="postgresql://app:pw-s3cret@127.0.0.1:1/app")
    with pytest.raises(NodeExecutionError) as caught:
        node.execute(query="SELECT 1")
    assert "node 'db'" in str(caught.value)
    assert "postgresql://app:***@127.0.0.1:1/app" in str(caught.value)
    assert "pw-s3cret" not in str(caught.value)
    assert "pw-s3cret" not in str(caught.value.__cause__)


def test_failing_leaf_node_in_a_workflow_records_the_database_message(node_class, database_url):
    builder = WorkflowBuilder()
    builder.add_node(node_class.type_name(), "db", {"connection_string": database_url})
    results, _ = LocalRuntime().execute(
        builder.build(), {"db": {"query": "SELECT * FROM missing_table_zz"}}
    )
    assert results["db"]["failed"] is True
    assert "node 'db'" in results["db"]["error"]
    assert results["db"]["error_type"] in {"OperationalError", "UndefinedTable"}


# -- connection string -----------------------------------------------------------------


def test_missing_connection_string_says_what_to_set(node_class, monkeypatch):
    monkeypatch.delenv(SQL_URL_ENV, raising=False)
    builder = WorkflowBuilder()
    builder.add_node(node_class.type_name(), "db", {})
    workflow = builder.build()
    with pytest.raises(NodeExecutionError) as caught:
        workflow.nodes["db"].execute(query="SELECT 1")
    message = str(caught.value)
    assert "node 'db'" in message
    assert "set its 'connection_string' parameter" in message
    assert f"the {SQL_URL_ENV} environment variable" in message


def test_environment_variable_is_the_fallback(node_class, database_url, table, monkeypatch):
    monkeypatch.setenv(SQL_URL_ENV, database_url)
    node = node_class()
    _insert(node, table, {"id": 1, "name": "from-env", "qty": 1})
    result = node.execute(query=f"SELECT name FROM {table}")
    assert _core(node_class, result)["data"] == [{"name": "from-env"}]


def test_connection_string_wins_over_the_environment(node_class, database_url, monkeypatch):
    monkeypatch.setenv(SQL_URL_ENV, "postgresql://nobody@127.0.0.1:1/none")
    result = node_class(connection_string=database_url).execute(query="SELECT 1 AS one")
    assert _core(node_class, result)["data"] == [{"one": 1}]


def test_malformed_connection_string_fails_at_build_without_echoing_it(node_class):
    with pytest.raises(NodeConfigurationError) as caught:
        node_class(id="db", connection_string="host=db password=pw-s3cret")
    assert "node 'db'" in str(caught.value)
    assert "is not a database URL" in str(caught.value)
    assert "pw-s3cret" not in str(caught.value)


def test_malformed_environment_url_names_the_variable(node_class, monkeypatch):
    monkeypatch.setenv(SQL_URL_ENV, "not a url pw-s3cret")
    with pytest.raises(NodeExecutionError) as caught:
        node_class(id="db").execute(query="SELECT 1")
    assert f"${SQL_URL_ENV} is not a database URL" in str(caught.value)
    assert "pw-s3cret" not in str(caught.value)


# -- pooled engines ----------------------------------------------------------------------


def test_sync_engine_and_connection_are_reused_across_executions(database_url, table, monkeypatch):
    engines = []
    real_get_engine = store_database.get_engine

    def spy(url):
        engines.append(real_get_engine(url))
        return engines[-1]

    monkeypatch.setattr(store_database, "get_engine", spy)
    node = SQLDatabaseNode(connection_string=database_url, query=f"SELECT COUNT(*) FROM {table}")
    node.execute()
    new_connections = []

    def count(*_args):
        new_connections.append(1)

    event.listen(engines[0], "connect", count)
    try:
        node.execute()
    finally:
        event.remove(engines[0], "connect", count)
    assert len(engines) == 2
    assert engines[0] is engines[1] is real_get_engine(database_url)
    assert new_connections == []


def test_async_engine_is_reused_across_workflow_runs(database_url, table, monkeypatch):
    engines = []
    real_get_async_engine = store_database.get_async_engine

    def spy(url):
        engines.append(real_get_async_engine(url))
        return engines[-1]

    monkeypatch.setattr(store_database, "get_async_engine", spy)
    builder = WorkflowBuilder()
    builder.add_node("AsyncSQLDatabaseNode", "db", {"connection_string": database_url})
    workflow = builder.build()
    runtime = LocalRuntime()
    for run in range(2):
        parameters = {"db": {"query": f"SELECT {run} AS run FROM {table}"}}
        runtime.execute(workflow, parameters)
    assert len(engines) == 2
    assert engines[0] is engines[1]


# -- async node --------------------------------------------------------------------------


def test_async_node_built_empty_gets_everything_at_run_time(database_url, table):
    builder = WorkflowBuilder()
    builder.add_node("AsyncSQLDatabaseNode", "db", {})
    workflow = builder.build()
    common = {"connection_string": database_url}
    runtime = LocalRuntime()
    runtime.execute(
        workflow,
        {
            "db": {
                **common,
                "query": f"INSERT INTO {table} (id, name, qty) VALUES (:id, :name, :qty)",
                "params": [{"id": 1, "name": "a", "qty": 2}, {"id": 2, "name": "b", "qty": 3}],
            }
        },
    )
    results, _ = runtime.execute(
        workflow, {"db": {**common, "query": f"SELECT SUM(qty) AS total FROM {table}"}}
    )
    assert results["db"]["result"]["data"] == [{"total": 5}]


def test_async_node_standalone_with_execute_async(database_url, table):
    node = AsyncSQLDatabaseNode(id="db", connection_string=database_url)

    async def main():
        try:
            await node.execute_async(
                query=f"INSERT INTO {table} (id, name, qty) VALUES (:id, :name, :qty)",
                params={"id": 1, "name": "solo", "qty": 9},
            )
            found = await node.execute_async(
                query=f"SELECT name, qty FROM {table} WHERE id = :id",
                params={"id": 1},
                fetch_mode="one",
            )
            with pytest.raises(NodeExecutionError, match=f"node 'db'.*(?:{MISSING_TABLE})"):
                await node.execute_async(query="SELECT * FROM missing_table_zz")
            return found
        finally:
            # This loop ends with asyncio.run; close the connections opened on it.
            await store_database.get_async_engine(database_url).dispose()

    found = asyncio.run(main())
    assert found == {
        "result": {
            "data": {"name": "solo", "qty": 9},
            "row_count": 1,
            "columns": ["name", "qty"],
            "query": f"SELECT name, qty FROM {table} WHERE id = :id",
            "database_type": sa.make_url(database_url).get_backend_name(),
            "format": "dict",
        }
    }


# -- end to end ----------------------------------------------------------------------------


@pytest.mark.parametrize("select_type", ["SQLDatabaseNode", "AsyncSQLDatabaseNode"])
def test_csv_filter_insert_select_workflow(database_url, table, tmp_path, select_type):
    csv_path = tmp_path / "stock.csv"
    csv_path.write_text(
        "id,name,qty\n1,bolt,12\n2,nut,3\n3,washer,40\n4,gear,5\n5,spring,0\n", encoding="utf-8"
    )
    keep = (
        "result = [{'id': int(r['id']), 'name': r['name'], 'qty': int(r['qty'])}"
        " for r in rows if int(r['qty']) >= min_qty]"
    )
    builder = WorkflowBuilder()
    builder.add_node("CSVReaderNode", "load", {"file_path": str(csv_path)})
    builder.add_node("PythonCodeNode", "keep", {"code": keep, "min_qty": 5})
    builder.add_node(
        "SQLDatabaseNode",
        "insert",
        {
            "connection_string": database_url,
            "query": f"INSERT INTO {table} (id, name, qty) VALUES (:id, :name, :qty)",
            "fetch_mode": "none",
        },
    )
    builder.add_node(
        select_type,
        "select",
        {
            "connection_string": database_url,
            "query": f"SELECT id, name, qty FROM {table} ORDER BY id",
        },
    )
    builder.add_connection("load", "data", "keep", "rows")
    builder.add_connection("keep", "result", "insert", "params")
    # The insert's data output (None with fetch_mode "none") orders the select after it.
    builder.add_connection("insert", "data", "select", "params")
    results, _ = LocalRuntime().execute(builder.build())
    assert results["insert"]["row_count"] == 3
    assert _core(select_type, results["select"]) == {
        "data": [
            {"id": 1, "name": "bolt", "qty": 12},
            {"id": 3, "name": "washer", "qty": 40},
            {"id": 4, "name": "gear", "qty": 5},
        ],
        "row_count": 3,
        "columns": ["id", "name", "qty"],
    }


# -- Kailash's connection parameters (AsyncSQLDatabaseNode) --------------------------------


_PW = "pw-s3cret"


def _kailash_connection(database_url):
    """Kailash's connection parameters naming the same database as ``database_url``."""
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return {"database_type": "sqlite", "database": url.database}
    return {
        "database_type": "postgresql",
        "host": url.host,
        "port": url.port or 5432,
        "database": url.database,
        "user": url.username,
        "password": url.password or "",
    }


def test_kailash_connection_parameters_build_the_url(database_url, table):
    """The Kailash idiom: results["db"]["result"]["data"] (values as Kailash 2.65 gives)."""
    connection = _kailash_connection(database_url)
    builder = WorkflowBuilder()
    builder.add_node(
        "AsyncSQLDatabaseNode",
        "write",
        {
            **connection,
            "pool_size": 2,
            "max_pool_size": 4,
            "query": f"INSERT INTO {table} (id, name, qty) VALUES (:id, :name, :qty)",
            "params": {"id": 1, "name": "a", "qty": 3},
        },
    )
    builder.add_node(
        "AsyncSQLDatabaseNode",
        "db",
        {**connection, "query": f"SELECT id, name, qty FROM {table} ORDER BY id"},
    )
    builder.add_connection("write", "result", "db", "timeout")  # orders db after write
    workflow = builder.build()
    results, _ = LocalRuntime().execute(workflow, {"db": {"timeout": 30}})
    kind = connection["database_type"]
    assert results["write"] == {
        "result": {
            "data": [{"rows_affected": 1}],
            "row_count": 1,
            "columns": [],
            "query": f"INSERT INTO {table} (id, name, qty) VALUES (:id, :name, :qty)",
            "database_type": kind,
            "format": "dict",
        }
    }
    assert results["db"]["result"]["data"] == [{"id": 1, "name": "a", "qty": 3}]
    assert results["db"]["result"]["row_count"] == 1
    assert results["db"]["result"]["columns"] == ["id", "name", "qty"]
    assert results["db"]["result"]["database_type"] == kind


def test_connection_string_wins_over_kailash_parameters(database_url):
    node = AsyncSQLDatabaseNode(
        connection_string=database_url,
        host="unreachable.invalid",
        database="none",
        user="nobody",
    )
    assert node.execute(query="SELECT 1 AS one")["result"]["data"] == [{"one": 1}]


@pytest.mark.postgres
def test_pool_sizes_shape_the_engine_pool(pg_url, monkeypatch):
    # A server database: SQLite files get SQLAlchemy's own pool, whatever the sizes.
    engines = []
    real_get_async_engine = store_database.get_async_engine

    def spy(url):
        engines.append(real_get_async_engine(url))
        return engines[-1]

    monkeypatch.setattr(store_database, "get_async_engine", spy)
    node = AsyncSQLDatabaseNode(
        **_kailash_connection(pg_url), pool_size=3, max_pool_size=7, query="SELECT 1"
    )
    node.execute()
    pool = engines[0].sync_engine.pool
    assert (pool.size(), pool._max_overflow) == (3, 4)
    assert not engines[0].url.query  # the pool settings never reach the driver


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"database_type": "oracle", "host": "h", "database": "d"}, "database_type must be one"),
        (
            {"database_type": "postgresql", "database": "d", "password": "pw-s3cret"},
            r"needs 'host' and 'database'",
        ),
        (
            {"host": "h", "password": "pw-s3cret"},
            r"postgresql needs 'host' and 'database'.*missing \['database'\]",
        ),
        ({"database_type": "sqlite", "database": "x.db", "host": "h"}, "takes only 'database'"),
        (
            {"host": "h", "database": "d", "password": "pw-s3cret", "port": "eighty"},
            "port must be an int",
        ),
        ({"host": "h", "database": "d", "port": 70000}, "port must be an int"),
        ({"pool_size": 0}, "pool_size must be an int >= 1"),
        ({"pool_size": 5, "max_pool_size": 2}, r"max_pool_size \(2\) must be at least"),
        (
            {"database_type": "mysql", "connection_string": "sqlite:///x.db"},
            "does not match the connection_string, a sqlite URL",
        ),
        ({"transaction_mode": "manual"}, "transaction_mode must be 'auto' or 'none'"),
        ({"transaction_mode": "none", "transaction": True}, "contradicts transaction_mode"),
        ({"allow_admin": False}, "allow_admin=False is not supported"),
        ({"validate_queries": True}, "validate_queries=True is not supported"),
        ({"enable_analytics": True}, "has no parameter 'enable_analytics'"),
    ],
)
def test_bad_kailash_connection_parameters_fail_at_build(config, problem):
    """Each bad parameter is named; the password never is."""
    builder = WorkflowBuilder()
    builder.add_node("AsyncSQLDatabaseNode", "db", config)
    with pytest.raises(NodeConfigurationError, match=problem) as caught:
        builder.build()
    assert "node 'db'" in str(caught.value)
    assert "pw-s3cret" not in str(caught.value)


def test_accepted_kailash_options(database_url):
    node = AsyncSQLDatabaseNode(
        connection_string=database_url,
        transaction_mode="none",
        allow_admin=True,
        validate_queries=False,
        port="5432" if "postgresql" in database_url else None,
    )
    # transaction_mode "none" autocommits, so VACUUM (which refuses a transaction) runs.
    assert node.execute(query="VACUUM")["result"]["data"] == []


@pytest.mark.parametrize("name", ["host", "password", "database_type", "pool_size"])
def test_connection_parameters_are_config_only(name):
    """No run-time input (nor any gateway caller) can point the node elsewhere (WF-07)."""
    node = AsyncSQLDatabaseNode(id="db", connection_string="sqlite://")
    assert name not in node.parameters
    with pytest.raises(NodeValidationError, match=f"has no input '{name}'"):
        node.execute(query="SELECT 1", **{name: "x"})
    builder = WorkflowBuilder()
    builder.add_node("AsyncSQLDatabaseNode", "db", {"connection_string": "sqlite://"})
    from kailash_nb.middleware.schemas import settable_inputs

    assert name not in settable_inputs(builder.build())["db"]


def test_password_never_shown_in_errors_definitions_events_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    builder = WorkflowBuilder()
    builder.add_node(
        "AsyncSQLDatabaseNode",
        "db",
        {
            "database_type": "postgresql",
            "host": "127.0.0.1",
            "port": 1,
            "database": "app",
            "user": "app",
            "password": "pw-s3cret-value",
            "query": "SELECT 1",
        },
    )
    workflow = builder.build()
    runtime = LocalRuntime()
    events = []
    runtime.events.subscribe(events.append)
    results, _ = runtime.execute(workflow)
    error = results["db"]["error"]
    assert "node 'db'" in error
    assert "postgresql://app:***@127.0.0.1:1/app" in error
    shown = [error, repr(events), caplog.text, repr(workflow.to_dict()), workflow.to_yaml()]
    assert all("pw-s3cret-value" not in text for text in shown)
    assert workflow.to_dict()["nodes"]["db"]["config"]["password"] != "pw-s3cret-value"


def test_mysql_without_its_driver_names_the_extra():
    try:
        import aiomysql  # noqa: F401

        pytest.skip("aiomysql is installed: the missing-driver message cannot be shown")
    except ImportError:
        pass
    node = AsyncSQLDatabaseNode(
        id="db", database_type="mysql", host="127.0.0.1", database="app", password="pw-s3cret"
    )
    with pytest.raises(NodeExecutionError) as caught:
        node.execute(query="SELECT 1")
    message = str(caught.value)
    assert "node 'db'" in message
    assert "the driver 'aiomysql' is not installed" in message
    assert 'pip install "kailash-nb[mysql]"' in message
    assert "pw-s3cret" not in message


@pytest.mark.postgres
def test_timeout_cancels_a_long_statement(pg_url):
    node = AsyncSQLDatabaseNode(id="db", connection_string=pg_url, timeout=0.3)
    with pytest.raises(NodeExecutionError, match=r"node 'db'.*timeout of 0.3 s"):
        node.execute(query="SELECT pg_sleep(5)")
    assert node.execute(query="SELECT 1 AS one")["result"]["data"] == [{"one": 1}]


@pytest.mark.parametrize("timeout", [0, -1])
def test_timeout_must_be_positive(timeout):
    node = AsyncSQLDatabaseNode(id="db", connection_string="sqlite://")
    with pytest.raises(NodeValidationError, match="timeout must be > 0"):
        node.execute(query="SELECT 1", timeout=timeout)


# -- Kailash's SQLDatabaseNode options ------------------------------------------------------


def test_sync_node_takes_kailash_parameters_and_returns_its_flat_shape(database_url, table):
    """Values as Kailash 2.65's SQLDatabaseNode gives them (its execution_time left out)."""
    node = SQLDatabaseNode(connection_string=database_url)
    inserted = node.execute(
        query=f"INSERT INTO {table} (id, name, qty) VALUES (?, ?, ?)", parameters=[2, "b", 1]
    )
    assert inserted == {"data": [], "row_count": 1, "columns": []}
    node.execute(
        query=f"INSERT INTO {table} (id, name, qty) VALUES (:id, :name, :qty)",
        parameters={"id": 1, "name": "a", "qty": 1},
    )
    updated = node.execute(query=f"UPDATE {table} SET name = name || 'x'")
    assert updated == {"data": [], "row_count": 2, "columns": []}
    selected = node.execute(query=f"SELECT id, name FROM {table} ORDER BY id")
    assert selected == {
        "data": [{"id": 1, "name": "ax"}, {"id": 2, "name": "bx"}],
        "row_count": 2,
        "columns": ["id", "name"],
    }
    empty = node.execute(query=f"SELECT id, name FROM {table} WHERE id = 9")
    assert empty == {"data": [], "row_count": 0, "columns": ["id", "name"]}


def test_sync_node_refuses_params_and_parameters_together():
    node = SQLDatabaseNode(id="db", connection_string="sqlite://")
    with pytest.raises(NodeValidationError, match=r"node 'db'.*not both"):
        node.execute(query="SELECT :a", params={"a": 1}, parameters={"a": 2})


def test_sync_pool_size_and_max_overflow_shape_the_engine_pool(database_url, monkeypatch):
    engines = []
    real_get_engine = store_database.get_engine

    def spy(url):
        engines.append(real_get_engine(url))
        return engines[-1]

    monkeypatch.setattr(store_database, "get_engine", spy)
    node = SQLDatabaseNode(connection_string=database_url, pool_size=2, max_overflow="3")
    assert node.execute(query="SELECT 1 AS one")["data"] == [{"one": 1}]
    assert (engines[0].pool.size(), engines[0].pool._max_overflow) == (2, 3)
    assert not engines[0].url.query


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"pool_size": 0}, "pool_size must be an int >= 1"),
        ({"max_overflow": -1}, "max_overflow must be an int >= 0"),
        ({"pool_recycle": 60}, "has no parameter 'pool_recycle'"),
    ],
)
def test_sync_bad_pool_options_fail_at_build(config, problem):
    with pytest.raises(NodeConfigurationError, match=problem):
        SQLDatabaseNode(id="db", connection_string="sqlite://", **config)


@pytest.mark.parametrize("value", [2, "2"])
def test_a_single_value_binds_one_positional_placeholder(node_class, database_url, table, value):
    # As in Kailash: params=2 is params=[2].
    node = node_class(connection_string=database_url)
    _insert(node, table, [{"id": 1, "name": "a", "qty": 1}, {"id": 2, "name": "b", "qty": 2}])
    result = node.execute(query=f"SELECT name FROM {table} WHERE id = ?", params=value)
    assert _core(node_class, result)["data"] == [{"name": "b"}]
    with pytest.raises(NodeValidationError, match="placeholder"):
        node.execute(query="SELECT 1", params=7)


def test_dataframe_result_format_needs_pandas(node_class, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(NodeConfigurationError, match="needs the pandas package"):
        node_class(result_format="dataframe")
    with pytest.raises(NodeValidationError, match="needs the pandas package"):
        node_class(connection_string="sqlite://").execute(
            query="SELECT 1", result_format="dataframe"
        )


@pytest.mark.parametrize(
    ("fetch_mode", "rows"), [("all", [(1, "a"), (2, "b")]), ("one", [(1, "a")])]
)
def test_dataframe_result_format_gives_a_dataframe(
    node_class, database_url, table, fetch_mode, rows
):
    pandas = pytest.importorskip("pandas")  # in the [dev] extra
    node = node_class(connection_string=database_url, result_format="dataframe")
    _insert(node, table, [{"id": 1, "name": "a", "qty": 1}, {"id": 2, "name": "b", "qty": 2}])
    result = node.execute(query=f"SELECT id, name FROM {table} ORDER BY id", fetch_mode=fetch_mode)
    frame = _core(node_class, result)["data"]
    assert isinstance(frame, pandas.DataFrame)
    assert (list(frame.itertuples(index=False, name=None)), list(frame.columns)) == (
        rows,
        ["id", "name"],
    )
    assert _core(node_class, result)["row_count"] == len(rows)
