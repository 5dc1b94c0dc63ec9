"""``AgentUIMiddleware`` on its own (Kailash's API): sessions, workflows, executions,
status, cancellation and events, each scoped to the session's owner."""

from __future__ import annotations

import asyncio

import pytest

from kailash_nb.middleware import AgentUIMiddleware, EventType, create_gateway
from kailash_nb.middleware.agent_ui import (
    ExecutionNotFoundError,
    Session,
    SessionMetadataError,
    SessionNotFoundError,
    WorkflowNotFoundError,
)
from kailash_nb.runtime.local import LocalRuntime
from tests.middleware._agent_ui_helpers import (
    Recorder,
    doubling,
    sleeping,
    two_steps,
    wait_for_status,
)


@pytest.fixture
def agent_ui(tmp_path):
    return AgentUIMiddleware(f"sqlite:///{tmp_path / 'sessions.db'}")


def test_constructor_takes_kailash_options_and_refuses_a_second_engine(tmp_path):
    agent_ui = AgentUIMiddleware(
        max_sessions=5,
        session_timeout_minutes=1,
        enable_dynamic_workflows=False,
        enable_persistence=False,
    )
    assert (agent_ui.max_sessions, agent_ui.database_url) == (5, "sqlite://")
    with pytest.raises(TypeError, match="one engine"):
        AgentUIMiddleware(runtime=LocalRuntime())
    with pytest.raises(TypeError, match="positional argument is database_url"):
        AgentUIMiddleware(LocalRuntime())


def test_sessions_anonymous_named_and_chosen_ids(agent_ui):
    async def scenario() -> None:
        anonymous = await agent_ui.create_session()
        assert isinstance(anonymous, Session) and isinstance(anonymous, str)
        assert anonymous.user_id == "default:anonymous"
        # A plain id string names the anonymous owner's session.
        assert (await agent_ui.get_session(str(anonymous))).session_id == anonymous

        alice = await agent_ui.create_session("acme:alice", session_id="dashboard-1")
        assert alice == "dashboard-1" and alice.user_id == "acme:alice"
        assert await agent_ui.get_session(alice) == alice  # the Session carries its owner
        assert await agent_ui.get_session("dashboard-1", user_id="acme:alice") == alice
        for owner in ({}, {"user_id": "globex:alice"}, {"tenant_id": "acme", "subject": "bob"}):
            with pytest.raises(SessionNotFoundError):
                await agent_ui.get_session("dashboard-1", **owner)
        with pytest.raises(SessionMetadataError, match="already in use"):
            await agent_ui.create_session("globex:eve", session_id="dashboard-1")
        with pytest.raises(SessionMetadataError, match="session_id must be"):
            await agent_ui.create_session("acme:alice", session_id="../etc/passwd")
        with pytest.raises(TypeError, match="both tenant_id and subject"):
            await agent_ui.get_session(alice, tenant_id="acme")

        await agent_ui.close_session(alice)
        with pytest.raises(SessionNotFoundError):
            await agent_ui.get_session(alice)
        with pytest.raises(SessionNotFoundError):  # Kailash ignores it; a ValueError too
            await agent_ui.close_session(alice)
        assert issubclass(SessionNotFoundError, ValueError)

    asyncio.run(scenario())


def test_execute_a_session_workflow_and_read_its_status(agent_ui):
    async def scenario() -> None:
        session = await agent_ui.create_session("acme:alice")
        await agent_ui.register_workflow("double", doubling(), session_id=session)
        execution_id = await agent_ui.execute(session, "double", inputs={"double": {"x": 21}})
        status = await wait_for_status(agent_ui, execution_id, session)
        assert status["status"] == "completed"
        assert status["outputs"] == {"double": {"result": {"value": 42}}}
        assert (status["progress"], status["error"], status["workflow_id"]) == (
            100.0,
            None,
            "double",
        )
        assert status["run_id"] and status["session_id"] == session
        # The session sees its workflows and executions, as in Kailash.
        again = await agent_ui.get_session(session)
        assert "double" in again.workflows and execution_id in again.executions
        assert agent_ui.get_stats()["workflows_executed"] == 1

    asyncio.run(scenario())


def test_shared_workflows_and_session_priority(agent_ui):
    async def scenario() -> None:
        await agent_ui.register_workflow("wf", doubling(), make_shared=True)
        assert "wf" in agent_ui.shared_workflows
        first = await agent_ui.create_session("acme:alice")
        second = await agent_ui.create_session("acme:bob")
        runs = [
            await agent_ui.execute(first, "wf", {"double": {"x": 1}}),
            await agent_ui.execute(second, "wf", {"double": {"x": 2}}),
        ]
        results = [
            (await wait_for_status(agent_ui, run, session))["outputs"]
            for run, session in zip(runs, (first, second), strict=True)
        ]
        assert [r["double"]["result"]["value"] for r in results] == [2, 4]
        assert "wf" in (await agent_ui.get_session(first)).workflows

        third = await agent_ui.create_session("acme:carol")
        await agent_ui.register_workflow("wf", two_steps(), session_id=third)
        run = await agent_ui.execute(third, "wf")
        assert set((await wait_for_status(agent_ui, run, third))["outputs"]) == {
            "first",
            "second",
        }
        with pytest.raises(WorkflowNotFoundError, match="Workflow missing not found"):
            await agent_ui.execute(third, "missing")
        with pytest.raises(TypeError, match="config_overrides"):
            await agent_ui.execute(third, "wf", config_overrides={"first": {"code": "x"}})

    asyncio.run(scenario())


def test_executions_never_cross_owners(agent_ui):
    async def scenario() -> None:
        alice = await agent_ui.create_session("acme:alice")
        eve = await agent_ui.create_session("globex:eve")
        await agent_ui.register_workflow("double", doubling())
        run = await agent_ui.execute(alice, "double", {"double": {"x": 1}})
        await wait_for_status(agent_ui, run, alice)
        # Another tenant's session, a plain id without owner, another owner named.
        assert await agent_ui.get_execution_status(run, eve) is None
        assert await agent_ui.get_execution_status(run, str(alice)) is None
        assert await agent_ui.get_execution_status(run) is None
        assert await agent_ui.get_execution_status(run, user_id="globex:alice") is None
        assert (await agent_ui.get_execution_status(run, user_id="acme:alice")) is not None
        with pytest.raises(ExecutionNotFoundError):
            await agent_ui.cancel_execution(run, eve)
        with pytest.raises(SessionNotFoundError):
            await agent_ui.execute(str(alice), "double", {"double": {"x": 1}})
        with pytest.raises(SessionNotFoundError):
            await agent_ui.register_workflow("mine", doubling(), session_id=alice, user_id="x:y")

    asyncio.run(scenario())


def test_failures_are_reported_not_raised(agent_ui):
    async def scenario() -> None:
        session = await agent_ui.create_session("acme:alice")
        await agent_ui.register_workflow("double", doubling(), session_id=session)
        broken = await agent_ui.execute(session, "double", {"double": {"x": None}})
        status = await wait_for_status(agent_ui, broken, session)
        assert status["status"] == "failed" and "TypeError" in status["error"]
        refused = await agent_ui.execute(session, "double", {"ghost": {"x": 1}})
        status = await wait_for_status(agent_ui, refused, session)
        assert status["status"] == "failed" and "ghost" in status["error"]

    asyncio.run(scenario())


def test_cancel_reports_cancelled_and_keeps_it(agent_ui):
    async def scenario() -> None:
        session = await agent_ui.create_session("acme:alice")
        events = Recorder()
        await agent_ui.subscribe_to_events("watch", events, session_id=session)
        await agent_ui.register_workflow("slow", sleeping(0.3), session_id=session)
        run = await agent_ui.execute(session, "slow")
        await agent_ui.cancel_execution(run, session)
        status = await agent_ui.get_execution_status(run, session)
        assert status["status"] == "cancelled"
        await asyncio.sleep(0.6)  # the run itself ends in the background
        assert (await agent_ui.get_execution_status(run, session))["status"] == "cancelled"
        await agent_ui.settled()
        assert events.types.count("workflow.cancelled") == 1
        assert "workflow.completed" not in events.types
        await agent_ui.cancel_execution(run, session)  # already ended: no second event
        await agent_ui.settled()
        assert events.types.count("workflow.cancelled") == 1

    asyncio.run(scenario())


def test_events_follow_the_lifecycle_filtered_by_session_and_type(agent_ui):
    async def scenario() -> None:
        alice = await agent_ui.create_session("acme:alice")
        bob = await agent_ui.create_session("acme:bob")
        eve = await agent_ui.create_session("globex:eve")
        everything, alices, finals, tenant, sync_seen = (Recorder() for _ in range(5))
        await agent_ui.subscribe_to_events("all", everything)
        await agent_ui.subscribe_to_events("alice", alices, session_id=alice)
        await agent_ui.subscribe_to_events(
            "finals", finals, event_types=[EventType.WORKFLOW_COMPLETED, "workflow.failed"]
        )
        await agent_ui.subscribe_to_events("acme", tenant, tenant_id="acme")
        await agent_ui.subscribe_to_events(
            "sync", lambda event: sync_seen.events.append(event), session_id=bob
        )
        with pytest.raises(SessionNotFoundError):
            await agent_ui.subscribe_to_events("spy", Recorder(), session_id=str(alice))
        with pytest.raises(ValueError, match="unknown event type"):
            await agent_ui.subscribe_to_events("typo", Recorder(), event_types=["workflow.done"])

        await agent_ui.register_workflow("two", two_steps())
        for session in (alice, bob, eve):
            run = await agent_ui.execute(session, "two")
            await wait_for_status(agent_ui, run, session)
        await agent_ui.close_session(alice)
        await agent_ui.settled()

        assert alices.types == [
            "workflow.started",
            "node.started",
            "node.completed",
            "workflow.progress",
            "node.started",
            "node.completed",
            "workflow.progress",
            "workflow.completed",
            "session.closed",
        ]
        assert {event.session_id for event in alices.events} == {alice}
        assert [event.data["progress"] for event in alices.events if event.data.get("progress")]
        assert [e.data["progress"] for e in alices.events if "progress" in e.data] == [50.0, 100.0]
        assert finals.types == ["workflow.completed"] * 3
        assert {event.session_id for event in sync_seen.events} == {bob}
        assert {event.tenant_id for event in everything.events} == {"acme", "globex"}
        assert tenant.events == [e for e in everything.events if e.tenant_id == "acme"]
        completed = alices.events[-2]
        assert completed.user_id == "acme:alice" and "outputs" not in completed.data
        assert completed.to_dict()["type"] == "workflow.completed"

        await agent_ui.unsubscribe_from_events("all")
        await agent_ui.create_session("acme:carol")
        await agent_ui.settled()
        assert everything.types[-1] == "session.closed"

    asyncio.run(scenario())


def test_a_gateway_agent_ui_runs_on_the_gateways_executor(tmp_path):
    gateway = create_gateway(database_url=f"sqlite:///{tmp_path / 'gw.db'}")

    async def scenario() -> None:
        session = await gateway.agent_ui.create_session("acme:alice")
        await gateway.agent_ui.register_workflow("double", doubling(), session_id=session)
        run = await gateway.agent_ui.execute(session, "double", {"double": {"x": 2}})
        status = await wait_for_status(gateway.agent_ui, run, session)
        entry = gateway.runs.index.get(status["run_id"], "acme")
        assert entry is not None and (entry.workflow, entry.subject) == ("agent_ui:double", "alice")
        assert gateway.runs.index.get(status["run_id"], "globex") is None
        await gateway.runs.drain(5)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("kailash_nb.middleware.core.agent_ui", "AgentUIMiddleware"),
        ("kailash_nb.middleware.communication.realtime", "RealtimeMiddleware"),
        ("kailash_nb.middleware.communication.api_gateway", "APIGateway"),
        ("kailash_nb.middleware.communication.events", "EventType"),
    ],
)
def test_kailash_module_paths_name_the_same_objects(module, name):
    import importlib

    import kailash_nb.middleware

    assert getattr(importlib.import_module(module), name) is getattr(kailash_nb.middleware, name)


def test_session_add_workflow_registers_for_the_session(agent_ui):
    async def scenario() -> None:
        session = await agent_ui.create_session()
        session.add_workflow("double", doubling().build())
        with pytest.raises(TypeError, match="built Workflow"):
            session.add_workflow("builder", doubling())
        run = await agent_ui.execute(session, "double", {"double": {"x": 4}})
        status = await wait_for_status(agent_ui, run, session)
        assert status["outputs"]["double"]["result"] == {"value": 8}

    asyncio.run(scenario())
