"""Agent-UI sessions: ``gateway.agent_ui`` on both store backends, the ``/sessions``
routes on a real server (AUTHZ-09, AUTHZ-10, AUTHZ-14) and per-session
``max_concurrent_workflows`` on execute.

Runs that must stay in flight wait on a ``threading.Event`` the test releases."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from _gateway_server import ServedGateway

from kailash_nb import WorkflowBuilder
from kailash_nb.middleware.agent_ui import (
    AgentUIMiddleware,
    SessionLimitError,
    SessionMetadataError,
    SessionNotFoundError,
)
from kailash_nb.nodes.code import PythonCodeNode

PROBLEM_BASE = "https://kailash-nb.dev/problems/"
GATES: dict[str, threading.Event] = {}
ENTERED: dict[str, threading.Event] = {}


def hold(key: str, fail: bool = False) -> str:
    """Say the run is in, wait until the test opens the gate named ``key``; fail if asked."""
    ENTERED.setdefault(key, threading.Event()).set()
    GATES[key].wait(10)
    if fail:
        raise RuntimeError("asked to fail")
    return key


def echo(value: str) -> str:
    """Pass ``value`` on (a downstream node makes a failed ``hold`` fail the run)."""
    return value


def _workflow():
    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(hold), "hold")
    builder.add_node(PythonCodeNode.from_function(echo), "echo")
    builder.connect("hold", "echo", mapping={"result": "value"})
    return builder.build()


@pytest.fixture(scope="module")
def hold_gateway(secured_gateway):
    """Factory: ``hold_gateway(url, **options)``, a secured gateway serving ``hold``."""

    def make(url: str, **options):
        gateway = secured_gateway(url, **options)
        gateway.register_workflow("hold", _workflow())
        return gateway

    return make


@pytest.fixture(scope="module")
def served(module_sqlite_url, hold_gateway, serve_module_gateway):
    server = serve_module_gateway(hold_gateway(module_sqlite_url))
    server.db_url = module_sqlite_url
    yield server
    for gate in GATES.values():
        gate.set()


def create(served, auth, metadata=None) -> dict:
    body = {} if metadata is None else {"metadata": metadata}
    response = served.client.post("/sessions", json=body, headers=auth)
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/sessions/{response.json()['session_id']}"
    return response.json()


def assert_problem(response, status, code) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == PROBLEM_BASE + code and body["status"] == status
    return body


def execute(served, auth, session_id, *, key=None, fail=False, wait=True):
    key = key or uuid.uuid4().hex
    GATES.setdefault(key, threading.Event())
    suffix = "" if wait else "?wait=false"
    return served.client.post(
        f"/workflows/hold/execute{suffix}",
        json={"parameters": {"hold": {"key": key, "fail": fail}}, "session_id": session_id},
        headers=auth,
    )


def settle(served) -> None:
    """Wait, on the server's loop, until every run in a session released its slot."""

    served.call(served.gateway.agent_ui.settled())


# -- the middleware on both backends -------------------------------------------------


def test_sessions_store_roundtrip_and_isolation(database_url):
    async def scenario() -> None:
        agent_ui = AgentUIMiddleware(database_url)
        limits = {"max_concurrent_workflows": 3, "max_memory_mb": 512}
        session = await agent_ui.create_session(
            "acme:alice", {"resource_limits": limits, "label": "x"}
        )
        uuid.UUID(session.session_id, version=4)
        assert (session.tenant_id, session.subject, session.user_id) == (
            "acme",
            "alice",
            "acme:alice",
        )
        assert (session.max_concurrent_workflows, session.max_memory_mb) == (3, 512)
        owner = {"tenant_id": "acme", "subject": "alice"}
        # A fresh middleware on the same store: sessions survive a restart.
        reopened = AgentUIMiddleware(database_url)
        found = await reopened.get_session(session.session_id, **owner)
        assert found == session and found.metadata["label"] == "x"
        for tenant_id, subject in (("other", "alice"), ("acme", "bob")):
            with pytest.raises(SessionNotFoundError):
                await reopened.get_session(session.session_id, tenant_id=tenant_id, subject=subject)
            assert await reopened.list_sessions(tenant_id=tenant_id, subject=subject) == []
            with pytest.raises(SessionNotFoundError):
                await reopened.close_session(
                    session.session_id, tenant_id=tenant_id, subject=subject
                )
        second = await reopened.create_session("alice", {"tenant_id": "acme"})
        listed = await reopened.list_sessions(**owner)
        assert {item.session_id for item in listed} == {session.session_id, second.session_id}
        await reopened.close_session(session.session_id, **owner)
        with pytest.raises(SessionNotFoundError):
            await reopened.get_session(session.session_id, **owner)
        with pytest.raises(SessionNotFoundError):
            await reopened.close_session(session.session_id, **owner)
        assert [item.session_id for item in await reopened.list_sessions(**owner)] == [
            second.session_id
        ]
        with pytest.raises(SessionNotFoundError):
            await reopened.get_session("not-a-uuid", **owner)

    asyncio.run(scenario())


def test_run_slots_count_per_session(database_url):
    async def scenario() -> None:
        agent_ui = AgentUIMiddleware(database_url)
        limited = {"resource_limits": {"max_concurrent_workflows": 1}}
        session = await agent_ui.create_session("acme:alice", limited)
        owner = {"tenant_id": "acme", "subject": "alice"}
        slot = await agent_ui.acquire_run_slot(session.session_id, **owner)
        with pytest.raises(SessionLimitError):
            await agent_ui.acquire_run_slot(session.session_id, **owner)
        slot.release()
        slot.release()  # idempotent
        assert agent_ui.active_runs(session.session_id) == 0
        (await agent_ui.acquire_run_slot(session.session_id, **owner)).release()
        with pytest.raises(SessionNotFoundError):
            await agent_ui.acquire_run_slot(session.session_id, tenant_id="x", subject="alice")

    asyncio.run(scenario())


def test_a_version_2_store_migrates_to_sessions(tmp_path):
    import sqlalchemy as sa

    from kailash_nb.store.database import get_engine
    from kailash_nb.store.schema import MIGRATIONS, SCHEMA_VERSION, auth_users, schema_table
    from kailash_nb.store.sessions import SessionStore

    url = f"sqlite:///{tmp_path / 'v2.db'}"
    engine = get_engine(url)
    with engine.begin() as connection:
        schema_table.create(connection)
        for version, apply in MIGRATIONS[:2]:
            assert version in (1, 2)
            apply(connection)
        connection.execute(schema_table.insert().values(id=1, version=2))
        connection.execute(
            auth_users.insert().values(
                user_id="u1",
                username="u",
                username_key="u",
                tenant_id="acme",
                roles=[],
                password_hash="x",
                created_at=1.0,
                updated_at=1.0,
            )
        )
    SessionStore(url)
    with engine.connect() as connection:
        assert connection.execute(sa.select(schema_table.c.version)).scalar_one() == SCHEMA_VERSION
        assert SCHEMA_VERSION >= 3
        assert connection.execute(sa.select(auth_users.c.user_id)).scalar_one() == "u1"
    session = asyncio.run(AgentUIMiddleware(url).create_session("acme:alice"))
    assert session.max_concurrent_workflows is None


@pytest.mark.parametrize(
    ("user_id", "metadata", "match"),
    [
        (
            "acme:alice",
            {"resource_limits": {"max_concurrent_workflows": 0}},
            "greater than or equal to 1",
        ),
        ("acme:alice", {"resource_limits": {"max_concurrent_workflows": True}}, "integer"),
        ("acme:alice", {"resource_limits": {"max_concurrent_workflows": "10"}}, "integer"),
        ("acme:alice", {"resource_limits": {"max_memory_mb": -1}}, "greater than or equal to 1"),
        ("acme:alice", {"resource_limits": {"max_cpu": 2}}, "max_cpu"),
        ("acme:alice", {"isolation_level": "shared"}, "isolation_level"),
        ("acme:alice", {"tenant_id": "other"}, "other than metadata.tenant_id"),
        ("acme:alice", ["not", "an", "object"], "JSON object"),
        ("acme:", None, "user part"),
        ("", None, "non-empty"),
    ],
)
def test_invalid_metadata_is_refused(tmp_path, user_id, metadata, match):
    agent_ui = AgentUIMiddleware(f"sqlite:///{tmp_path / 'bad.db'}")
    with pytest.raises(SessionMetadataError, match=match):
        asyncio.run(agent_ui.create_session(user_id, metadata))


def test_seed_create_tenant_session_runs_as_written(hold_gateway, tmp_path):
    # The seed's example, verbatim; the gateway takes the seed's options minus
    # database_per_tenant (refused: tenants share one store).
    async def create_tenant_session(gateway, tenant_id, user_id):
        return await gateway.agent_ui.create_session(
            user_id=f"{tenant_id}:{user_id}",
            metadata={
                "tenant_id": tenant_id,
                "isolation_level": "strict",
                "resource_limits": {"max_concurrent_workflows": 10, "max_memory_mb": 1024},
            },
        )

    gateway = hold_gateway(
        f"sqlite:///{tmp_path / 'seed.db'}", title="Multi-Tenant Platform", tenant_isolation=True
    )
    session = asyncio.run(create_tenant_session(gateway, "acme", "u1"))
    assert (session.tenant_id, session.subject) == ("acme", "u1")
    assert session.metadata["isolation_level"] == "strict"
    assert (session.max_concurrent_workflows, session.max_memory_mb) == (10, 1024)
    with ServedGateway(gateway) as server:
        mine = server.client.get(
            f"/sessions/{session.session_id}", headers=server.bearer_headers(subject="u1")
        )
        assert mine.status_code == 200 and mine.json()["resource_limits"] == {
            "max_concurrent_workflows": 10,
            "max_memory_mb": 1024,
        }
        other = server.bearer_headers(tenant="globex", subject="u1")
        assert_problem(
            server.client.get(f"/sessions/{session.session_id}", headers=other),
            404,
            "session_not_found",
        )


# -- routes -------------------------------------------------------------------------


def test_create_get_list_delete(served):
    auth = served.bearer_headers()
    limits = {"max_concurrent_workflows": 2, "max_memory_mb": 256}
    first = create(served, auth, {"resource_limits": limits})
    second = create(served, auth)
    assert first["tenant_id"] == "acme" and first["resource_limits"] == limits
    assert first["active_runs"] == 0 and first["metadata"]["isolation_level"] == "strict"
    got = served.client.get(f"/sessions/{first['session_id']}", headers=auth)
    assert got.status_code == 200 and got.json()["session_id"] == first["session_id"]
    listed = served.client.get("/sessions", headers=auth).json()["sessions"]
    assert {item["session_id"] for item in listed} == {first["session_id"], second["session_id"]}
    assert served.client.get("/sessions?limit=1", headers=auth).json()["sessions"][0][
        "session_id"
    ] in {first["session_id"], second["session_id"]}
    assert_problem(served.client.get("/sessions?limit=0", headers=auth), 400, "invalid_query")
    deleted = served.client.delete(f"/sessions/{first['session_id']}", headers=auth)
    assert deleted.status_code == 204
    for response in (
        served.client.get(f"/sessions/{first['session_id']}", headers=auth),
        served.client.delete(f"/sessions/{first['session_id']}", headers=auth),
    ):
        assert_problem(response, 404, "session_not_found")
    listed = served.client.get("/sessions", headers=auth).json()["sessions"]
    assert [item["session_id"] for item in listed] == [second["session_id"]]


def test_sessions_need_a_token(served):
    assert served.client.get("/sessions").status_code == 401
    assert served.client.post("/sessions", json={}).status_code == 401


def test_other_tenants_and_users_get_404(served):
    owner = served.bearer_headers(subject="alice")
    session_id = create(served, owner)["session_id"]
    strangers = [
        served.bearer_headers(tenant="globex", subject="alice"),  # AUTHZ-09: another tenant
        served.bearer_headers(subject="bob"),  # same tenant, another user
    ]
    for stranger in strangers:
        unknown = served.client.get(f"/sessions/{uuid.uuid4()}", headers=stranger)
        foreign = served.client.get(f"/sessions/{session_id}", headers=stranger)
        # Same answer as an unknown id: no existence oracle.
        assert (
            assert_problem(foreign, 404, "session_not_found")["detail"]
            == (assert_problem(unknown, 404, "session_not_found")["detail"])
        )
        assert_problem(
            served.client.delete(f"/sessions/{session_id}", headers=stranger),
            404,
            "session_not_found",
        )
        # AUTHZ-14: lists hold only the caller's sessions.
        listed = served.client.get("/sessions", headers=stranger).json()["sessions"]
        assert session_id not in {item["session_id"] for item in listed}
        assert_problem(execute(served, stranger, session_id), 404, "session_not_found")
    assert served.client.get(f"/sessions/{session_id}", headers=owner).status_code == 200


def test_tenant_header_spoofing_is_403(served):
    spoofed = served.bearer_headers(**{"X-Tenant-ID": "globex"})
    for response in (
        served.client.post("/sessions", json={}, headers=spoofed),
        served.client.get("/sessions", headers=spoofed),
        served.client.get(f"/sessions/{uuid.uuid4()}", headers=spoofed),
    ):
        assert_problem(response, 403, "tenant_mismatch")
    same = served.bearer_headers(**{"X-Tenant-ID": "acme"})
    assert served.client.post("/sessions", json={}, headers=same).status_code == 201
    in_body = served.client.post(
        "/sessions", json={"metadata": {"tenant_id": "globex"}}, headers=served.bearer_headers()
    )
    assert_problem(in_body, 403, "tenant_mismatch")


def test_bad_session_bodies_are_400(served):
    auth = served.bearer_headers()
    bad_limit = {"metadata": {"resource_limits": {"max_concurrent_workflows": -1}}}
    assert_problem(
        served.client.post("/sessions", json=bad_limit, headers=auth),
        400,
        "invalid_session_metadata",
    )
    assert_problem(
        served.client.post("/sessions", json={"user_id": "acme:root"}, headers=auth),
        400,
        "unknown_field",
    )
    assert_problem(execute(served, auth, 42), 400, "invalid_session_id")
    assert_problem(execute(served, auth, str(uuid.uuid4())), 404, "session_not_found")


def test_sessions_survive_a_new_gateway_on_the_same_store(hold_gateway, served):
    auth = served.bearer_headers(subject="carol")
    session_id = create(served, auth)["session_id"]
    with ServedGateway(hold_gateway(served.db_url)) as restarted:
        again = restarted.client.get(
            f"/sessions/{session_id}", headers=restarted.bearer_headers(subject="carol")
        )
        assert again.status_code == 200 and again.json()["subject"] == "carol"


# -- max_concurrent_workflows ---------------------------------------------------------


def test_second_concurrent_run_in_a_full_session_is_429(served):
    auth = served.bearer_headers()
    limited = {"resource_limits": {"max_concurrent_workflows": 1}}
    session_id = create(served, auth, limited)["session_id"]
    key = uuid.uuid4().hex
    GATES[key], ENTERED[key] = threading.Event(), threading.Event()
    results: dict[str, object] = {}
    first = threading.Thread(
        target=lambda: results.update(first=execute(served, auth, session_id, key=key))
    )
    first.start()
    try:
        # The first run is inside its node, holding the only slot until its gate opens.
        assert ENTERED[key].wait(10)
        assert served.gateway.agent_ui.active_runs(session_id) == 1
        refused = execute(served, auth, session_id)
        body = assert_problem(refused, 429, "session_limit_reached")
        assert int(refused.headers["Retry-After"]) >= 1
        assert body["max_concurrent_workflows"] == 1 and body["session_id"] == session_id
        # Another session of the same user is not affected.
        other = create(served, auth, limited)["session_id"]
        free_key = uuid.uuid4().hex
        GATES[free_key] = threading.Event()
        GATES[free_key].set()
        assert execute(served, auth, other, key=free_key).status_code == 200
    finally:
        GATES[key].set()
        first.join(10)
    assert results["first"].status_code == 200
    # The slot was released before the first response was written.
    assert served.gateway.agent_ui.active_runs(session_id) == 0
    done = uuid.uuid4().hex
    GATES[done] = threading.Event()
    GATES[done].set()
    assert execute(served, auth, session_id, key=done).status_code == 200


def test_slot_is_released_after_failure_and_after_wait_false_runs(served):
    auth = served.bearer_headers()
    limited = {"resource_limits": {"max_concurrent_workflows": 1}}
    session_id = create(served, auth, limited)["session_id"]
    failing = uuid.uuid4().hex
    GATES[failing] = threading.Event()
    GATES[failing].set()
    assert_problem(execute(served, auth, session_id, key=failing, fail=True), 422, "run_failed")
    assert served.gateway.agent_ui.active_runs(session_id) == 0
    key = uuid.uuid4().hex
    GATES[key] = threading.Event()
    accepted = execute(served, auth, session_id, key=key, wait=False)
    assert accepted.status_code == 202, accepted.text
    assert_problem(execute(served, auth, session_id, wait=False), 429, "session_limit_reached")
    got = served.client.get(f"/sessions/{session_id}", headers=auth).json()
    assert got["active_runs"] == 1
    GATES[key].set()
    settle(served)
    assert served.gateway.agent_ui.active_runs(session_id) == 0
    done = uuid.uuid4().hex
    GATES[done] = threading.Event()
    GATES[done].set()
    assert execute(served, auth, session_id, key=done).status_code == 200


def test_slot_is_released_when_the_run_is_refused_before_it_starts(served):
    auth = served.bearer_headers()
    limited = {"resource_limits": {"max_concurrent_workflows": 1}}
    session_id = create(served, auth, limited)["session_id"]
    missing_key = served.client.post(
        "/workflows/hold/execute",
        json={"parameters": {"hold": {}}, "session_id": session_id},
        headers=auth,
    )
    assert missing_key.status_code == 400, missing_key.text
    settle(served)
    assert served.gateway.agent_ui.active_runs(session_id) == 0
