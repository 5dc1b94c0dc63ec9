"""``create_gateway(database_per_tenant=True)``: each tenant's sessions and run history
in a database of its own (SQLite files and PostgreSQL), tenant ids never reaching a path
or an SQL identifier unescaped, a bounded set of open tenant databases, cross-tenant
reads 404 (AUTHZ-09)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from kailash_nb.middleware.agent_ui import AgentUIMiddleware, SessionNotFoundError
from kailash_nb.store.database import with_pool_size
from kailash_nb.store.tenant_databases import (
    TenantDatabases,
    safe_tenant_id,
    tenant_database_url,
)
from kailash_nb.store.urls import StoreConfigurationError, sync_url

HOSTILE_TENANTS = ["../../etc/passwd", "a/b\\c", "x\x00y", "caf\u00e9", "ACME", "acme", " ", "%2e"]


def drop_tenant_databases(url: str, databases: list[str]) -> None:
    """Drop the PostgreSQL databases a test created next to ``url``'s."""
    admin = sa.create_engine(sync_url(url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            for name in databases:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture
def tenant_url(database_url):
    """The main database URL; tenant databases created next to it are removed after."""
    created: list[str] = []
    yield database_url, created
    if database_url.startswith("postgresql"):
        drop_tenant_databases(database_url, created)


def database_of(url: str, tenant: str, created: list[str]) -> str:
    derived = tenant_database_url(url, tenant)
    created.append(sa.engine.make_url(derived).database)
    return derived


# -- names ---------------------------------------------------------------------------------


def test_safe_tenant_id_is_readable_and_unique():
    assert re.fullmatch(r"acme-[0-9a-f]{20}", safe_tenant_id("acme"))
    assert safe_tenant_id("ACME") != safe_tenant_id("acme")
    assert re.fullmatch(r"[0-9a-f]{20}", safe_tenant_id("\u00e9\u00e9"))
    ids = {safe_tenant_id(tenant) for tenant in HOSTILE_TENANTS}
    assert len(ids) == len(HOSTILE_TENANTS)
    for bad in ["", "x" * 257, None, 7]:
        with pytest.raises(ValueError, match="tenant_id"):
            safe_tenant_id(bad)


@pytest.mark.parametrize("tenant", HOSTILE_TENANTS)
def test_sqlite_tenant_file_stays_next_to_the_main_file(tmp_path, tenant):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    path = Path(sa.engine.make_url(tenant_database_url(url, tenant)).database)
    assert path.parent == tmp_path
    assert re.fullmatch(r"app\.tenant-([a-z0-9]{1,16}-)?[0-9a-f]{20}\.db", path.name)


def test_sqlite_tenant_url_keeps_the_pool_size(tmp_path):
    url = with_pool_size(f"sqlite:///{tmp_path / 'app.db'}", 4)
    assert "kailash_nb_pool_size=4" in tenant_database_url(url, "acme")


@pytest.mark.parametrize("tenant", HOSTILE_TENANTS)
def test_postgresql_tenant_database_name_is_a_plain_identifier(tenant):
    url = "postgresql://app@db.example:5432/" + "a" * 60
    name = sa.engine.make_url(tenant_database_url(url, tenant)).database
    assert re.fullmatch(r"[a-z0-9_]{1,63}", name) and "_t_" in name


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://", "mysql://u@h/db"])
def test_urls_that_cannot_hold_tenant_databases_are_refused(url):
    with pytest.raises(StoreConfigurationError, match="database_per_tenant"):
        TenantDatabases(url)


# -- the LRU of open tenant databases ------------------------------------------------------


class Closeable:
    """A tenant resource that remembers being closed."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.closed = False

    def close(self) -> None:
        self.closed = True


def probe(databases, tenant):
    return databases.get(tenant).resource("probe", Closeable, close=Closeable.close)


def test_open_tenant_databases_are_bounded_and_evicted_ones_closed(tmp_path):
    databases = TenantDatabases(f"sqlite:///{tmp_path / 'app.db'}", capacity=2)
    opened = {tenant: probe(databases, tenant) for tenant in ("a", "b", "c")}
    assert len(databases) == 2
    assert opened["a"].closed and not opened["b"].closed and not opened["c"].closed
    databases.get("b")  # b is now more recent than c
    databases.get("d")
    assert opened["c"].closed and not opened["b"].closed
    databases.close()
    assert opened["b"].closed and len(databases) == 0
    assert len(list(tmp_path.glob("app.tenant-*.db"))) == 4


# -- sessions -------------------------------------------------------------------------------


def test_sessions_live_in_their_tenants_database(tenant_url):
    url, created = tenant_url
    databases = TenantDatabases(url)
    agent_ui = AgentUIMiddleware(url, tenant_databases=databases)

    async def scenario():
        acme = await agent_ui.create_session("acme:alice")
        globex = await agent_ui.create_session("globex:bob")
        mine = await agent_ui.get_session(acme.session_id, tenant_id="acme", subject="alice")
        assert mine.session_id == acme.session_id
        with pytest.raises(SessionNotFoundError):
            await agent_ui.get_session(acme.session_id, tenant_id="globex", subject="alice")
        return acme, globex

    try:
        acme, globex = asyncio.run(scenario())
    finally:
        databases.close()
    rows = {}
    for tenant in ("acme", "globex"):
        engine = sa.create_engine(sync_url(database_of(url, tenant, created)))
        with engine.connect() as connection:
            rows[tenant] = set(
                connection.exec_driver_sql("SELECT session_id FROM kailash_nb_sessions").scalars()
            )
        engine.dispose()
    assert rows == {"acme": {acme.session_id}, "globex": {globex.session_id}}
    main = sa.create_engine(sync_url(url))
    with main.connect() as connection:
        if sa.inspect(connection).has_table("kailash_nb_sessions"):
            in_main = set(
                connection.exec_driver_sql("SELECT session_id FROM kailash_nb_sessions").scalars()
            )
            assert not in_main & {acme.session_id, globex.session_id}
    main.dispose()


# -- the gateway ----------------------------------------------------------------------------


def plus_one(x: int) -> int:
    """Returns x + 1."""
    return x + 1


@pytest.fixture
def tenant_gateway(security_config):
    """Factory: ``tenant_gateway(url)``, a gateway with a database per tenant on ``url``,
    serving ``plus`` (not started)."""
    from kailash_nb import WorkflowBuilder
    from kailash_nb.middleware.gateway import create_gateway
    from kailash_nb.nodes.code import PythonCodeNode

    def make(url: str):
        gateway = create_gateway(
            title="Multi-Tenant Platform",
            security_config=security_config(max_requests_per_minute=10_000),
            tenant_isolation=True,
            database_per_tenant=True,
            database_url=url,
        )
        builder = WorkflowBuilder()
        builder.add_node(PythonCodeNode.from_function(plus_one), "step")
        gateway.register_workflow("plus", builder.build())
        return gateway

    return make


def bearer(gateway, tenant: str, subject: str = "alice") -> dict[str, str]:
    pair = gateway.auth.issue_tokens(subject, tenant_id=tenant, roles=["analyst"])
    return {"Authorization": f"Bearer {pair.access_token}"}


def rows(url: str, table: str, column: str) -> set[str]:
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(table):
                return set()
            return set(connection.exec_driver_sql(f"SELECT {column} FROM {table}").scalars())
    finally:
        engine.dispose()


def test_database_per_tenant_needs_tenant_isolation(sqlite_url):
    from kailash_nb.middleware.gateway import create_gateway
    from kailash_nb.middleware.gateway_errors import GatewayConfigurationError

    with pytest.raises(GatewayConfigurationError, match="tenant_isolation=True"):
        create_gateway(database_per_tenant=True, database_url=sqlite_url)
    with pytest.raises(GatewayConfigurationError, match="True or False"):
        create_gateway(database_per_tenant="yes")


def test_database_per_tenant_refuses_an_in_memory_database(tenant_gateway):
    with pytest.raises(StoreConfigurationError, match="database file"):
        tenant_gateway("sqlite:///:memory:")


def test_authz09_tenant_runs_and_sessions_live_in_their_own_databases(tenant_url, tenant_gateway):
    from _gateway_server import ServedGateway

    url, created = tenant_url
    gateway = tenant_gateway(url)
    acme, globex = bearer(gateway, "acme"), bearer(gateway, "globex")
    execute = {"parameters": {"step": {"x": 1}}}
    with ServedGateway(gateway) as server:
        client = server.client
        run_a = client.post("/workflows/plus/execute", json=execute, headers=acme).json()
        run_b = client.post("/workflows/plus/execute", json=execute, headers=globex).json()
        assert run_a["results"] == run_b["results"] == {"step": {"result": 2}}
        session_a = client.post("/sessions", headers=acme).json()["session_id"]
        session_b = client.post("/sessions", headers=globex).json()["session_id"]
        # Cross-tenant reads are 404, own reads 200.
        assert client.get(f"/runs/{run_a['run_id']}", headers=globex).status_code == 404
        assert client.get(f"/sessions/{session_a}", headers=globex).status_code == 404
        assert client.get(f"/sessions/{session_b}", headers=globex).status_code == 200
        own = client.get(f"/runs/{run_a['run_id']}", headers=acme)
        assert own.status_code == 200 and own.json()["status"] == "completed"
    acme_url = database_of(url, "acme", created)
    globex_url = database_of(url, "globex", created)
    runs_a, runs_b = run_a["run_id"], run_b["run_id"]
    assert rows(acme_url, "kailash_nb_gateway_runs", "run_id") == {runs_a}
    assert rows(globex_url, "kailash_nb_gateway_runs", "run_id") == {runs_b}
    assert rows(acme_url, "kailash_nb_runs", "run_id") == {runs_a}
    assert rows(globex_url, "kailash_nb_runs", "run_id") == {runs_b}
    assert rows(acme_url, "kailash_nb_sessions", "session_id") == {session_a}
    assert rows(globex_url, "kailash_nb_sessions", "session_id") == {session_b}
    for table in ("kailash_nb_gateway_runs", "kailash_nb_runs"):
        assert not rows(url, table, "run_id") & {runs_a, runs_b}
    assert not rows(url, "kailash_nb_sessions", "session_id") & {session_a, session_b}

    # After a restart the run is read back from the tenant's database, still per tenant.
    again = tenant_gateway(url)
    with ServedGateway(again) as server:
        stored = server.client.get(f"/runs/{runs_a}", headers=bearer(again, "acme"))
        assert stored.status_code == 200 and stored.json()["results"] == {"step": {"result": 2}}
        foreign = server.client.get(f"/runs/{runs_a}", headers=bearer(again, "globex"))
        assert foreign.status_code == 404
