"""``create_gateway`` options that tune the gateway's resources: ``connection_pool_size``
(the SQLAlchemy pool of the store engine, SQLite files and PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest

from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.middleware.gateway_errors import GatewayConfigurationError
from kailash_nb.store.database import (
    MAX_OVERFLOW_PARAMETER,
    POOL_SIZE_PARAMETER,
    create_engine,
    get_async_engine,
    get_engine,
    with_pool_size,
)
from kailash_nb.store.urls import StoreConfigurationError


@pytest.mark.parametrize("size", [0, -1, 2.5, "10", True, None])
def test_connection_pool_size_must_be_a_positive_int(size):
    with pytest.raises(GatewayConfigurationError, match="connection_pool_size"):
        create_gateway(connection_pool_size=size)


def test_gateway_store_engines_have_the_configured_pool_size(
    database_url, security_config, serve_gateway
):
    gateway = create_gateway(
        database_url=database_url, connection_pool_size=23, security_config=security_config()
    )
    server = serve_gateway(gateway)
    assert server.client.get("/ready").status_code == 200
    assert gateway.run_store.engine.pool.size() == 23
    assert gateway.auth.users.engine.pool.size() == 23
    # One engine for the gateway's database: runs, users and sessions share its pool.
    assert gateway.auth.users.engine is gateway.run_store.engine
    assert POOL_SIZE_PARAMETER not in str(gateway.run_store.engine.url)


def test_default_pool_size_is_the_documented_ten(sqlite_url):
    gateway = create_gateway(database_url=sqlite_url)
    assert get_engine(gateway.store_url).pool.size() == 10


def test_sessions_use_the_gateway_pool(sqlite_url):
    gateway = create_gateway(database_url=sqlite_url, connection_pool_size=7)
    store = gateway.agent_ui._open_sync()
    assert store.engine.pool.size() == 7


def test_pool_size_parameter_never_reaches_the_driver(database_url):
    engine = create_engine(with_pool_size(database_url, 3))
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
        assert engine.pool.size() == 3
        assert POOL_SIZE_PARAMETER not in engine.url.query
    finally:
        engine.dispose()


def test_max_overflow_parameter_sets_the_connections_beyond_the_pool(database_url):
    engine = create_engine(with_pool_size(database_url, 3, max_overflow=2))
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
        assert (engine.pool.size(), engine.pool._max_overflow) == (3, 2)
        assert not engine.url.query
    finally:
        engine.dispose()


@pytest.mark.parametrize("raw", ["x", "-1"])
def test_bad_max_overflow_parameter_is_a_store_configuration_error(tmp_path, raw):
    url = f"sqlite:///{tmp_path / 'b.db'}?{MAX_OVERFLOW_PARAMETER}={raw}"
    with pytest.raises(StoreConfigurationError, match=MAX_OVERFLOW_PARAMETER):
        create_engine(url)
    with pytest.raises(ValueError, match="max_overflow"):
        with_pool_size("sqlite:///x.db", 2, max_overflow=-1)


def test_async_engines_take_the_pool_size_too(tmp_path):
    async def pool_size() -> int:
        engine = get_async_engine(with_pool_size(f"sqlite:///{tmp_path / 'a.db'}", 4))
        return engine.sync_engine.pool.size()

    assert asyncio.run(pool_size()) == 4


def test_memory_database_keeps_its_single_shared_connection():
    assert with_pool_size("sqlite:///:memory:", 5) == "sqlite:///:memory:"
    gateway = create_gateway(database_url="sqlite:///:memory:", connection_pool_size=5)
    assert gateway.store_url == "sqlite:///:memory:"


@pytest.mark.parametrize("raw", ["0", "x", "-2"])
def test_bad_pool_size_parameter_is_a_store_configuration_error(tmp_path, raw):
    url = f"sqlite:///{tmp_path / 'b.db'}?{POOL_SIZE_PARAMETER}={raw}"
    with pytest.raises(StoreConfigurationError, match=POOL_SIZE_PARAMETER):
        create_engine(url)


def test_with_pool_size_validates():
    with pytest.raises(ValueError, match="pool_size"):
        with_pool_size("sqlite:///x.db", 0)
