"""SQLDatabaseNode and AsyncSQLDatabaseNode, each test on SQLite and on PostgreSQL.

``database_url`` (tests/conftest.py) runs every test once per backend; the PostgreSQL
database is shared by the session, so each test works in its own uniquely named table.
"""

from __future__ import annotations

import asyncio
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
    assert created == {"data": [], "row_count": 0, "columns": []}
    inserted = node.execute(
        query=f"INSERT INTO {table} (id, name) VALUES (:id, :name)", params={"id": 1, "name": "a"}
    )
    assert inserted == {"data": [], "row_count": 1, "columns": []}
    selected = node.execute(query=f"SELECT id, name FROM {table} WHERE id = :id", params={"id": 1})
    assert selected == {"data": [{"id": 1, "name": "a"}], "row_count": 1, "columns": ["id", "name"]}
    node.execute(query=f"DROP TABLE {table}")


def test_hostile_value_is_stored_literally(node_class, database_url, table):
    node = node_class(connection_string=database_url)
    hostile = HOSTILE.format(table=table)
    _insert(node, table, {"id": 1, "name": hostile, "qty": 0})
    found = node.execute(
        query=f"SELECT name FROM {table} WHERE name = :name", params={"name": hostile}
    )
    assert found["data"] == [{"name": hostile}]
    always_true = node.execute(
        query=f"SELECT name FROM {table} WHERE name = :name", params={"name": "' OR '1'='1"}
    )
    assert always_true["row_count"] == 0
    assert _rows(database_url, table) == [{"id": 1, "name": hostile, "qty": 0}]


def test_executemany_runs_the_statement_once_per_dict(node_class, database_url, table):
    rows = [{"id": i, "name": f"n{i}", "qty": i * 10} for i in range(1, 4)]
    result = _insert(node_class(connection_string=database_url), table, rows)
    assert result == {"data": [], "row_count": 3, "columns": []}
    assert _rows(database_url, table) == rows


def test_empty_params_list_runs_nothing(node_class, database_url, table):
    node = node_class(connection_string=database_url)
    assert _insert(node, table, []) == {"data": [], "row_count": 0, "columns": []}
    assert _rows(database_url, table) == []


@pytest.mark.parametrize(
    ("fetch_mode", "data", "row_count"),
    [
        ("all", [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], 2),
        ("one", {"id": 1, "name": "a"}, 1),
        ("none", None, 2),
    ],
)
def test_fetch_modes(node_class, database_url, table, fetch_mode, data, row_count):
    node = node_class(connection_string=database_url, fetch_mode=fetch_mode)
    _insert(node, table, [{"id": 1, "name": "a", "qty": 1}, {"id": 2, "name": "b", "qty": 2}])
    result = node.execute(query=f"SELECT id, name FROM {table} ORDER BY id")
    assert result == {"data": data, "row_count": row_count, "columns": ["id", "name"]}


def test_fetch_one_without_rows_is_none(node_class, database_url, table):
    node = node_class(connection_string=database_url, fetch_mode="one")
    result = node.execute(query=f"SELECT id FROM {table}")
    assert result == {"data": None, "row_count": 0, "columns": ["id"]}


@pytest.mark.parametrize(("fetch_mode", "data"), [("all", []), ("one", None), ("none", None)])
def test_statement_without_rows_reports_rows_affected(
    node_class, database_url, table, fetch_mode, data
):
    node = node_class(connection_string=database_url)
    _insert(node, table, [{"id": i, "name": "n", "qty": 0} for i in range(1, 5)])
    result = node.execute(
        query=f"UPDATE {table} SET qty = :qty WHERE id > :id",
        params={"qty": 7, "id": 1},
        fetch_mode=fetch_mode,
    )
    assert result == {"data": data, "row_count": 3, "columns": []}


@pytest.mark.parametrize("params", [[1, 2], "id=1", [{"id": 1}, "x"], {1: "a"}])
def test_params_must_be_named(node_class, params):
    node = node_class(id="db", connection_string="sqlite://")
    with pytest.raises(NodeValidationError, match=r"node 'db'.*params must be a dict"):
        node.execute(query="SELECT 1", params=params)


def test_fetch_mode_is_checked_at_build_and_at_run(node_class):
    with pytest.raises(NodeConfigurationError, match="fetch_mode must be one of"):
        node_class(id="db", fetch_mode="many")
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
    assert node.execute(query="VACUUM")["data"] == []


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
    assert node.execute(query=f"SELECT name FROM {table}")["data"] == [{"name": "from-env"}]


def test_connection_string_wins_over_the_environment(node_class, database_url, monkeypatch):
    monkeypatch.setenv(SQL_URL_ENV, "postgresql://nobody@127.0.0.1:1/none")
    result = node_class(connection_string=database_url).execute(query="SELECT 1 AS one")
    assert result["data"] == [{"one": 1}]


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
    assert results["db"]["data"] == [{"total": 5}]


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
    assert found == {"data": {"name": "solo", "qty": 9}, "row_count": 1, "columns": ["name", "qty"]}


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
    assert results["select"] == {
        "data": [
            {"id": 1, "name": "bolt", "qty": 12},
            {"id": 3, "name": "washer", "qty": 40},
            {"id": 4, "name": "gear", "qty": 5},
        ],
        "row_count": 3,
        "columns": ["id", "name", "qty"],
    }
