"""Shared fixtures: database URLs for SQLite (always) and PostgreSQL (when configured),
the Redis server of the shared rate-limit tests, key material and a settable clock, and
served gateways (one test secret, fast password hashing, a gateway on a loopback port).

``KAILASH_NB_TEST_PG_URL`` names a PostgreSQL server (``.ci/run`` sets it). Each test
session gets its own fresh database on that server, dropped at the end.
``KAILASH_NB_TEST_REDIS_URL`` names a Redis server; tests never flush it, each works under
its own key prefix, deleted afterwards. Under CI (``CI`` set) a missing URL is an error,
not a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from _clock import Clock
from _gateway_server import ServedGateway
from _tokens import TEST_JWT_SECRET

PG_ENV = "KAILASH_NB_TEST_PG_URL"


def _set_for_session(name: str, value: str) -> Iterator[None]:
    """Set the environment variable ``name`` until the generator is closed, then restore
    it (child processes and kernels started meanwhile inherit it)."""
    previous = os.environ.get(name)
    os.environ[name] = value
    yield
    if previous is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = previous


@pytest.fixture(scope="session", autouse=True)
def user_data_dir(tmp_path_factory):
    """A private user data directory for the session (``XDG_DATA_HOME``): code that opens
    the default store (``kailash_nb.db`` in the user's data directory), and the notebooks'
    kernels, use a fresh one, never the user's own, which another kailash_nb may have
    migrated to a schema this one does not know."""
    path = tmp_path_factory.mktemp("user-data")
    yield from _set_for_session("XDG_DATA_HOME", str(path))


@pytest.fixture(scope="session", autouse=True)
def jupyter_runtime_dir(tmp_path_factory):
    """A private Jupyter runtime directory for the session: previews started by tests
    (and the kernels they start) register there, never in the user's own."""
    path = tmp_path_factory.mktemp("jupyter-runtime")
    path.chmod(0o700)
    yield from _set_for_session("JUPYTER_RUNTIME_DIR", str(path))


@pytest.fixture(scope="session")
def pg_url():
    """URL of a fresh PostgreSQL database for this session (skips without a server)."""
    base = os.environ.get(PG_ENV)
    if not base:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} must be set in CI: the PostgreSQL suite may not be skipped")
        pytest.skip(f"PostgreSQL suite skipped: set {PG_ENV}=postgresql://user@host:port/db")
    import sqlalchemy as sa

    from kailash_nb.store.urls import sync_url

    admin_url = sync_url(base)
    name = f"kailash_nb_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    yield url.replace("postgresql+psycopg://", "postgresql://", 1)
    from kailash_nb.store.database import dispose_engines

    dispose_engines()
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path):
    """URL of a SQLite file in ``tmp_path`` (the test's own store)."""
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(scope="session")
def make_sqlite_url(tmp_path_factory):
    """Factory: ``make_sqlite_url(name)``, the URL of a SQLite file in a fresh directory named
    after ``name``; for module-scoped stores, and modules that serve more than one gateway."""

    def make(name: str) -> str:
        return f"sqlite:///{tmp_path_factory.mktemp(name) / 'gateway.db'}"

    return make


@pytest.fixture(scope="module")
def module_sqlite_url(make_sqlite_url, request):
    """URL of a SQLite file shared by the tests of one module (its served gateway's store)."""
    return make_sqlite_url(request.module.__name__.rpartition(".")[2])


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A database URL per backend: a SQLite file in tmp_path, and the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("pg_url")


# -- Redis (KAILASH_NB_TEST_REDIS_URL; tools/ensure_redis.sh prints one) -------------------

REDIS_ENV = "KAILASH_NB_TEST_REDIS_URL"


@pytest.fixture(scope="session")
def redis_url():
    """URL of the test Redis server (skips without one, fails under CI)."""
    url = os.environ.get(REDIS_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{REDIS_ENV} must be set in CI: the Redis suite may not be skipped")
        pytest.skip(f"Redis suite skipped: set {REDIS_ENV}=redis://127.0.0.1:6379/0")
    return url


@pytest.fixture
def redis_prefix(redis_url):
    """A key prefix private to this test; its keys are deleted when the test ends."""
    import redis

    prefix = f"kailash_nb_test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# -- asymmetric keys of the token tests (generated once per session) ------------------------


@pytest.fixture(scope="session")
def rsa_key():
    """The deployment's RSA key (RS256)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def attacker_rsa():
    """An RSA key the deployment does not know."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def ec_key():
    """The deployment's EC key (ES256)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def attacker_ec():
    """An EC P-256 key the deployment does not know."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


# -- time -------------------------------------------------------------------------------------


@pytest.fixture
def clock():
    """A clock that moves only when the test moves it (``clock.advance``), at 1_800_000_000."""
    return Clock()


# -- secured, served gateways ---------------------------------------------------------------


@pytest.fixture(scope="session")
def jwt_secret():
    """The HS256 secret of the tests' gateways and token services (long enough to be accepted)."""
    return TEST_JWT_SECRET


@pytest.fixture(scope="session")
def security_config(jwt_secret):
    """Factory: ``security_config(**overrides)``, a ``SecurityConfig`` with the test secret and a
    rate limit no test reaches unless it lowers ``max_requests_per_minute``."""
    from kailash_nb.security import SecurityConfig

    def make(**overrides):
        options = {"jwt_secret": jwt_secret, "max_requests_per_minute": 100_000}
        return SecurityConfig(**{**options, **overrides})

    return make


@pytest.fixture(scope="session")
def password_hasher():
    """An Argon2 hasher with the cheapest parameters, so sign-in tests stay fast."""
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(scope="session")
def secured_gateway(security_config, password_hasher):
    """Factory: ``secured_gateway(database_url, security=None, **options)``, a gateway from
    ``create_gateway(**options)`` whose auth uses ``security`` (default: ``security_config()``)
    and the fast password hasher."""
    from kailash_nb.middleware.auth import KailashJWTAuth
    from kailash_nb.middleware.gateway import create_gateway

    def make(database_url, security=None, **options):
        config = security or security_config()
        gateway = create_gateway(security_config=config, database_url=database_url, **options)
        gateway.auth = KailashJWTAuth(
            config=config, store_url=database_url, password_hasher=password_hasher
        )
        return gateway

    return make


def _server_factory(servers: ExitStack):
    """``serve(gateway, **options)``: enter a ``ServedGateway`` on ``servers`` and return it."""

    def serve(gateway, **options) -> ServedGateway:
        return servers.enter_context(ServedGateway(gateway, **options))

    return serve


@pytest.fixture
def serve_gateway():
    """Factory: ``serve_gateway(gateway, host="127.0.0.1")`` starts ``gateway`` on a free port
    and returns its ``ServedGateway``; every gateway served is stopped when the test ends."""
    with ExitStack() as servers:
        yield _server_factory(servers)


@pytest.fixture(scope="module")
def serve_module_gateway():
    """``serve_gateway`` for module-scoped fixtures: servers stop when the module's tests end."""
    with ExitStack() as servers:
        yield _server_factory(servers)


# -- dask.distributed (DaskRuntime) ---------------------------------------------------------


@pytest.fixture(scope="session")
def dask_client():
    """A ``distributed.Client`` of a LocalCluster with two single-threaded worker
    processes, started once per session (on first use) and shared by every DaskRuntime
    test; it is not made the default client."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
    )
    client = distributed.Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="session")
def dask_runtime(dask_client):
    """A ``DaskRuntime`` on the session's cluster, shared by the tests that only run
    workflows on it (tests that change runtime options make their own)."""
    from kailash_nb.runtime.dask import DaskRuntime

    runtime = DaskRuntime(dask_client)
    yield runtime
    runtime.close()
