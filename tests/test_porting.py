"""The deliberate differences from Kailash 2.65 listed in docs/porting.md, one test each,
showing kailash_nb's behaviour (Kailash's, observed by running the same code, is quoted
in each test's comment)."""

from __future__ import annotations

import asyncio

import pytest

from kailash_nb import AsyncLocalRuntime, LocalRuntime, Workflow, WorkflowBuilder
from kailash_nb.access_control import (
    AccessControlConfigurationError,
    AccessControlManager,
    NodePermission,
    PermissionRule,
    PolicyError,
    UserContext,
    WorkflowPermission,
)
from kailash_nb.nodes.base import Node, NodeParameter
from kailash_nb.nodes.code import CodeExecutor, PythonCodeNode
from kailash_nb.nodes.data import SQLDatabaseNode
from kailash_nb.nodes.logic import SwitchNode
from kailash_nb.sdk_exceptions import (
    ConnectionError,  # noqa: A004 - the Kailash name
    NodeConfigurationError,
    NodeExecutionError,
    RuntimeExecutionError,
    WorkflowExecutionError,
    WorkflowValidationError,
)


def _one_node(code: str) -> dict:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": code})
    return LocalRuntime().execute(builder.build())[0]["a"]


# -- stricter validation --------------------------------------------------------------
def test_unknown_config_key_fails_at_build():
    # Kailash: built.
    builder = WorkflowBuilder()
    builder.add_node("SwitchNode", "s", {"condition_field": "v", "value": 3, "bogus": 1})
    with pytest.raises(NodeConfigurationError, match="no parameter 'bogus'"):
        builder.build()


def test_connection_to_an_unknown_input_fails_at_build():
    # Kailash: built.
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    builder.add_node("SwitchNode", "s", {"condition_field": "v", "value": 3})
    builder.add_connection("a", "result", "s", "nonexistent")
    with pytest.raises(ConnectionError, match="no input 'nonexistent'"):
        builder.build()


def test_run_parameter_for_an_unknown_input_is_refused():
    # Kailash: ignored, by validate(runtime_parameters=...) and by runs.
    from kailash_nb.sdk_exceptions import RunParameterError

    builder = WorkflowBuilder()
    builder.add_node("SwitchNode", "s", {"condition_field": "v", "value": 3})
    workflow = builder.build()
    with pytest.raises(RunParameterError, match="no input 'nope'") as info:
        workflow.validate(runtime_parameters={"s": {"nope": 1}})
    assert (info.value.kind, info.value.node_id, info.value.input_name) == (
        "unknown_input",
        "s",
        "nope",
    )
    with pytest.raises(WorkflowValidationError, match="no input 'nope'"):
        LocalRuntime().execute(workflow, parameters={"s": {"nope": 1}})


def test_unknown_switch_operator_is_refused():
    # Kailash: an error is logged and the condition is false.
    with pytest.raises(NodeConfigurationError, match="unknown operator 'invalid_op'"):
        SwitchNode(condition_field="v", operator="invalid_op", value=1)
    with pytest.raises(NodeExecutionError, match="unknown operator 'invalid_op'"):
        SwitchNode().execute(input_data={"v": 1}, condition_field="v", operator="invalid_op")


def test_unmarked_cycle_fails_at_build():
    # Kailash: built; get_execution_order() raises WorkflowValidationError.
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "x", {"code": "result = a"})
    builder.add_node("PythonCodeNode", "y", {"code": "result = b"})
    builder.add_connection("x", "result", "y", "b")
    builder.add_connection("y", "result", "x", "a")
    with pytest.raises(WorkflowValidationError, match="unmarked cycle: x -> y -> x"):
        builder.build()


def test_from_dict_refuses_parameters_that_are_not_a_dict():
    # Kailash: logs a warning and uses {}.
    definition = {"nodes": [{"id": "a", "type": "PythonCodeNode", "parameters": ["x"]}]}
    with pytest.raises(WorkflowValidationError, match="'config' must be a mapping"):
        WorkflowBuilder.from_dict(definition)


# -- code nodes, outputs, missing outputs, failures --------------------------------------
def test_code_nodes_have_no_import_deny_list():
    # Kailash: {'error': "... Import of module 'subprocess' is not allowed ..."}.
    assert _one_node("import subprocess\nresult = subprocess.__name__") == {"result": "subprocess"}


def test_outputs_need_not_be_json_serialisable():
    # Kailash: {'error': "Node outputs must be JSON-serializable. Failed keys: ['result']"}.
    assert _one_node("result = {1, 2}") == {"result": {1, 2}}


def test_validate_outputs_checks_the_schema_not_json():
    # Kailash: NodeValidationError "Node outputs must be JSON-serializable".
    node = PythonCodeNode(code="result = 1")
    assert node.validate_outputs({"items": {1, 2}}) == {"items": {1, 2}}


def test_node_config_holds_what_was_given_not_defaults():
    # Kailash: node.config == {"value": 2, "factor": 3}.
    class Scale(Node):
        def get_parameters(self):
            return {
                "value": NodeParameter(name="value", type=int),
                "factor": NodeParameter(name="factor", type=int, required=False, default=3),
            }

        def run(self, value, factor):
            return {"result": value * factor}

    node = Scale(value=2)
    assert node.config == {"value": 2}
    assert node.parameters["factor"].default == 3
    assert node.execute() == {"result": 6}


def test_a_missing_source_output_stops_the_run():
    # Kailash: 'b' fails with "name 'x' is not defined".
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    builder.add_node("PythonCodeNode", "b", {"code": "result = x"})
    builder.add_connection("a", "nope", "b", "x")
    with pytest.raises(WorkflowExecutionError, match=r"produced no output 'nope'.*'result'"):
        LocalRuntime().execute(builder.build())


def test_a_failing_node_with_dependents_raises_workflow_execution_error():
    # Kailash: RuntimeExecutionError("Unified enterprise workflow execution failed: ...").
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1 / 0"})
    builder.add_node("PythonCodeNode", "b", {"code": "result = x"})
    builder.add_connection("a", "result", "b", "x")
    with pytest.raises(WorkflowExecutionError, match="ZeroDivisionError"):
        LocalRuntime().execute(builder.build())


def test_async_runtime_delivers_a_connection_from_result_like_the_sync_one():
    # Kailash's AsyncLocalRuntime: b gets {"result": {"value": 1}} (LocalRuntime: {"value": 1}).
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = {'value': 1}"})
    builder.add_node("PythonCodeNode", "b", {"code": "result = data"})
    builder.add_connection("a", "result", "b", "data")
    workflow = builder.build()
    results, _ = asyncio.run(AsyncLocalRuntime().execute_workflow_async(workflow, {}))
    assert results["b"] == {"result": {"value": 1}}
    assert results == LocalRuntime().execute(workflow)[0]


def test_async_runtime_reports_a_failed_leaf_like_the_sync_one():
    # Kailash's AsyncLocalRuntime: WorkflowExecutionError("Node 'node1' execution failed: ...").
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "node1", {"code": "raise RuntimeError('Test error')"})
    workflow = builder.build()
    results, _ = asyncio.run(AsyncLocalRuntime().execute_workflow_async(workflow, {}))
    assert results["node1"]["failed"] is True
    assert results["node1"]["error_type"] == "RuntimeError"
    outcome = AsyncLocalRuntime().execute_outcome(workflow)
    assert outcome.status == "failed" and outcome.failed_nodes[0].node_id == "node1"


# -- cycles through a SwitchNode -------------------------------------------------------------
def _repeat_until(whole_output: bool) -> Workflow:
    builder = WorkflowBuilder()
    code = "result = {'count': %s + 3}" % ("data['count']" if whole_output else "count")
    builder.add_node("PythonCodeNode", "counter", {"code": code})
    switch = {"condition_field": "count", "operator": ">=", "value": 10}
    builder.add_node("SwitchNode", "check", switch)
    builder.add_node("PythonCodeNode", "done", {"code": "result = data['count']"})
    builder.add_connection("counter", "result", "check", "input_data")
    builder.add_connection("check", "true_output", "done", "data")
    workflow = builder.build()
    mapping = {"false_output": "data"} if whole_output else {"false_output.count": "count"}
    workflow.create_cycle("until").connect("check", "counter", mapping).max_iterations(50).build()
    return workflow


@pytest.mark.parametrize("whole_output", [True, False])
@pytest.mark.parametrize("runtime_class", [LocalRuntime, AsyncLocalRuntime])
def test_a_cycle_through_a_switch_ends_when_the_switch_exits(whole_output, runtime_class):
    # Kailash: done == 12 only on LocalRuntime with {"false_output": "data"}. With
    # {"false_output.count": "count"} LocalRuntime restarts the loop from count=0 up to
    # max_iterations (done None, counter 6); AsyncLocalRuntime runs each node once
    # (done None, counter 3) with either mapping.
    start = {"data": {"count": 0}} if whole_output else {"count": 0}
    results, _ = runtime_class().execute(_repeat_until(whole_output), {"counter": start})
    assert results["done"] == {"result": 12}
    assert results["counter"] == {"result": {"count": 12}}


# -- conditional execution and runtime options ---------------------------------------------
def _switch() -> WorkflowBuilder:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "src", {"code": "result = {'v': 5}"})
    builder.add_node("SwitchNode", "sw", {"condition_field": "v", "operator": ">", "value": 3})
    builder.add_node("PythonCodeNode", "no", {"code": "result = 'small'"})
    builder.add_connection("src", "result", "sw", "input_data")
    builder.add_connection("sw", "false_output", "no", "data")
    return builder


def test_default_conditional_execution_is_skip_branches():
    # Kailash's default (route_data) gives results['no'] == None.
    results, _ = LocalRuntime().execute(_switch().build())
    assert "no" not in results
    results, _ = LocalRuntime(conditional_execution="route_data").execute(_switch().build())
    assert results["no"] is None


def test_multi_case_switch_publishes_every_case_output():
    # Kailash 2.65: {"default": ..., "condition_result": None} for exactly this input.
    result = SwitchNode().execute(
        input_data={"status": "unknown"},
        condition_field="status",
        cases=["success", "warning", "error"],
    )
    assert result == {
        "default": {"status": "unknown"},
        "case_success": None,
        "case_warning": None,
        "case_error": None,
        "condition_result": None,
    }


def test_invalid_conditional_execution_raises_runtime_execution_error():
    # Kailash: ValueError("Invalid conditional_execution mode: ...").
    with pytest.raises(RuntimeExecutionError, match="'skip_branches', 'route_data'"):
        LocalRuntime(conditional_execution="all")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"connection_validation": "warn"}, "always validates connections strictly"),
        ({"connection_validation": "off"}, "always validates connections strictly"),
        ({"enable_monitoring": True}, "history=True"),
        ({"enable_cycles": False}, r"always runs declared cycles.*max_iterations\(1\)"),
        ({"enable_async": False}, "always runs async nodes on its event loop"),
    ],
)
def test_runtime_options_refused_with_the_reason(options, message):
    for runtime_class in (LocalRuntime, AsyncLocalRuntime):
        with pytest.raises(TypeError, match=message):
            runtime_class(**options)


def test_runtime_options_accepted_with_kailash_meaning():
    assert LocalRuntime(connection_validation="strict") is not None
    assert AsyncLocalRuntime(thread_pool_size=3).settings.max_worker_threads == 3
    assert LocalRuntime(enable_cycles=True, enable_async=True) is not None


def test_execute_refuses_a_kailash_task_manager():
    # Kailash: LocalRuntime.execute(workflow, task_manager=TaskManager()) tracks the run.
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    workflow = builder.build()
    assert LocalRuntime().execute(workflow, task_manager=None)[0] == {"a": {"result": 1}}
    with pytest.raises(TypeError, match=r"kailash\.tracking.*runtime\.events"):
        LocalRuntime().execute(workflow, task_manager=object())


# -- node options ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("sandbox_mode", "trusted"),
        ("validate_security", True),
        ("max_code_lines", 10),
    ],
)
def test_python_code_node_refuses_kailash_sandbox_options(option, value):
    with pytest.raises(NodeConfigurationError, match=f"'{option}' is not supported"):
        PythonCodeNode(code="result = 1", **{option: value})


def test_code_executor_refuses_kailash_sandbox_options():
    # Kailash: CodeExecutor(allowed_modules=[...]) restricts imports.
    with pytest.raises(NodeConfigurationError, match="'allowed_modules' is not supported"):
        CodeExecutor(allowed_modules=["math"])


def test_sql_node_takes_pool_sizes(tmp_path):
    # Kailash's pool_size is accepted: it sizes the pooled engine of the node's URL.
    url = f"sqlite:///{tmp_path / 'pool.db'}"
    node = SQLDatabaseNode(connection_string=url, query="SELECT 1 AS one", pool_size=5)
    assert node.execute()["data"] == [{"one": 1}]


# -- builder and workflow ----------------------------------------------------------------------
def test_auto_generated_ids_are_type_and_counter():
    # Kailash: 'node_' and 8 hex digits.
    builder = WorkflowBuilder()
    assert builder.add_node("PythonCodeNode", None, {"code": "result = 1"}) == "pythoncodenode_1"
    assert builder.add_node("PythonCodeNode", None, {"code": "result = 2"}) == "pythoncodenode_2"


def test_parameter_mapping_on_an_unknown_node_is_refused():
    # Kailash: accepted.
    with pytest.raises(WorkflowValidationError, match="'zz'"):
        WorkflowBuilder().add_parameter_mapping("zz", {"p": "x"})


def test_connections_read_like_dicts_but_are_not_dicts():
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    builder.add_node("PythonCodeNode", "b", {"code": "result = x"})
    builder.add_connection("a", "result", "b", "x")
    (connection,) = builder.connections
    assert connection["from_node"] == "a"
    expected = {"from_node": "a", "from_output": "result", "to_node": "b", "to_input": "x"}
    assert connection != expected


def test_a_workflow_only_grows_and_checks_each_addition():
    # Kailash: connect() closing a loop is accepted; get_execution_order() fails later.
    workflow = Workflow("wf-1", "direct")
    workflow.add_node("a", "PythonCodeNode", code="result = x")
    workflow.add_node("b", "PythonCodeNode", code="result = y")
    workflow.connect("a", "b", {"result": "y"})
    with pytest.raises(WorkflowValidationError, match="unmarked cycle"):
        workflow.connect("b", "a", {"result": "x"})
    assert workflow.get_execution_order() == ("a", "b")
    assert not hasattr(workflow, "remove_node")


# -- access control -------------------------------------------------------------------
def _acl_user(user_id: str, tenant_id: str, *roles: str, **attributes):
    return UserContext(
        user_id=user_id, tenant_id=tenant_id, roles=list(roles), attributes=attributes
    )


def _acl_rule(rule_id: str, effect: str, **subject):
    return PermissionRule(
        rule_id, "workflow", "payroll", WorkflowPermission.EXECUTE, effect, **subject
    )


def test_access_control_cannot_be_disabled():
    # Kailash: AccessControlManager(enabled=False) allows every request.

    with pytest.raises(AccessControlConfigurationError, match="cannot be disabled"):
        AccessControlManager(enabled=False)


def test_a_deny_beats_an_allow_of_higher_priority():
    # Kailash: allowed (the allow with priority 10 is taken first).

    manager = AccessControlManager(
        strategy="rbac",
        rules=[
            _acl_rule("deny", "deny", role="a"),
            _acl_rule("allow", "allow", role="a", priority=10),
        ],
    )
    assert not manager.check_workflow_access(
        _acl_user("x", "acme", "a"), "payroll", "execute"
    ).allowed


def test_every_subject_part_of_a_rule_must_match():
    # Kailash: allowed (the tenant alone matches a rule for role admin in tenant acme).

    manager = AccessControlManager(rules=[_acl_rule("r", "allow", role="admin", tenant_id="acme")])
    assert not manager.check_workflow_access(
        _acl_user("v", "acme", "viewer"), "payroll", "execute"
    ).allowed


def test_unknown_condition_types_and_rbac_conditions_are_refused_at_load():
    # Kailash: the unknown type evaluates as false at request time (a deny rule turns into
    # nothing); the rbac strategy ignores a rule's conditions.

    with pytest.raises(PolicyError, match="rule 'd': unknown condition type 'bogus'"):
        AccessControlManager(
            rules=[_acl_rule("d", "deny", conditions={"type": "bogus", "value": {}})]
        )
    condition = {"type": "user_attribute", "value": {"attribute": "dept", "value": "hr"}}
    with pytest.raises(PolicyError, match="rule 'c': the rbac strategy decides by roles only"):
        AccessControlManager(strategy="rbac", rules=[_acl_rule("c", "allow", conditions=condition)])


def test_a_cached_decision_never_answers_for_another_tenant():
    # Kailash: the acme decision for user id sam is cached and answers for globex's sam.

    manager = AccessControlManager(
        rules=[_acl_rule("t", "allow", role="admin"), _acl_rule("t2", "deny", tenant_id="globex")]
    )
    assert manager.check_workflow_access(
        _acl_user("sam", "acme", "admin"), "payroll", "execute"
    ).allowed
    globex = _acl_user("sam", "globex", "admin")
    assert not manager.check_workflow_access(globex, "payroll", "execute").allowed


def test_unknown_resource_types_and_outcome_permissions_are_refused():
    # Kailash: resource_type "table" is accepted (and never matches); SKIP is a permission.

    with pytest.raises(PolicyError, match="unknown resource_type 'table'"):
        AccessControlManager(rules=[PermissionRule("x", "table", "p", "execute", "allow")])
    with pytest.raises(PolicyError, match="'skip' is not an action"):
        AccessControlManager(rules=[PermissionRule("s", "node", "n", NodePermission.SKIP, "allow")])


# -- agent-UI middleware, realtime, APIGateway -------------------------------------------------
def _agent_ui(tmp_path):
    from kailash_nb.middleware import AgentUIMiddleware

    return AgentUIMiddleware(f"sqlite:///{tmp_path / 'sessions.db'}")


def test_agent_ui_sessions_are_scoped_to_their_owner(tmp_path):
    # Kailash: get_session(any id) returns the session, or None; close_session ignores
    # unknown ids; create_session returns a plain str.
    from kailash_nb.middleware.agent_ui import Session, SessionNotFoundError

    async def scenario() -> None:
        agent_ui = _agent_ui(tmp_path)
        session = await agent_ui.create_session("acme:alice")
        assert isinstance(session, Session) and isinstance(session, str)
        assert await agent_ui.get_session(session) == session  # the Session names its owner
        with pytest.raises(SessionNotFoundError):  # a plain id names the anonymous owner
            await agent_ui.get_session(str(session))
        assert await agent_ui.get_session(str(session), user_id="acme:alice") == session
        with pytest.raises(SessionNotFoundError):
            await agent_ui.close_session("unknown")
        with pytest.raises(SessionNotFoundError):
            await agent_ui.execute(str(session), "wf")

    asyncio.run(scenario())


def test_agent_ui_statuses_and_events(tmp_path):
    # Kailash: status "started" first, the status holds "inputs", datetimes; session
    # creation is a "workflow.started" event; completion events carry the outputs.
    async def scenario() -> None:
        agent_ui = _agent_ui(tmp_path)
        seen = []
        await agent_ui.subscribe_to_events("all", seen.append)
        session = await agent_ui.create_session("acme:alice")
        builder = WorkflowBuilder()
        builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
        await agent_ui.register_workflow("wf", builder, session_id=session)
        execution_id = await agent_ui.execute(session, "wf")
        status = await agent_ui.get_execution_status(execution_id, session)
        assert status["status"] == "queued" and "inputs" not in status
        assert isinstance(status["created_at"], float)
        while status["status"] == "queued" or status["status"] == "running":
            await asyncio.sleep(0.01)
            status = await agent_ui.get_execution_status(execution_id, session)
        assert status["outputs"] == {"a": {"result": 1}}
        types = [event.type.value for event in seen]
        assert types[0] == "session.created" and types[-1] == "workflow.completed"
        assert "outputs" not in seen[-1].data

    asyncio.run(scenario())


def test_agent_ui_refuses_options_it_cannot_honour(tmp_path):
    # Kailash: runtime= accepted (a second runtime), a positional runtime taken as
    # enable_dynamic_workflows, config_overrides accepted and ignored.
    from kailash_nb.middleware import AgentUIMiddleware

    with pytest.raises(TypeError, match="one engine"):
        AgentUIMiddleware(runtime=LocalRuntime())
    with pytest.raises(TypeError, match="database_url"):
        AgentUIMiddleware(LocalRuntime())

    async def scenario() -> None:
        agent_ui = _agent_ui(tmp_path)
        session = await agent_ui.create_session()
        with pytest.raises(TypeError, match="config_overrides"):
            await agent_ui.execute(session, "wf", config_overrides={"a": {"code": "x"}})

    asyncio.run(scenario())


def test_webhooks_are_signed_and_private_destinations_refused(tmp_path):
    # Kailash: X-Kailash-Signature is "sha256=" + the secret's first 8 characters + "...",
    # any address is reached, and a 3xx counts as a successful delivery.
    import hashlib
    import hmac

    from kailash_nb.middleware import RealtimeMiddleware
    from kailash_nb.middleware.webhooks import sign_webhook

    body = b'{"event":1}'
    expected = hmac.new(b"secret-value", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign_webhook("secret-value", 1700000000, body) == f"sha256={expected}"

    async def scenario() -> None:
        agent_ui = _agent_ui(tmp_path)
        realtime = RealtimeMiddleware(agent_ui)
        realtime.register_webhook("local", "http://127.0.0.1:9/hook", secret="secret-value")
        seen = []
        await agent_ui.subscribe_to_events("one", seen.append)
        await agent_ui.create_session("acme:alice")
        (result,) = await realtime.deliver_event(seen[0])
        assert not result["success"] and "127.0.0.1" in result["error"]

    asyncio.run(scenario())


def test_api_gateway_is_the_tornado_gateway_and_refuses_auth_bypasses(tmp_path):
    # Kailash: a FastAPI app; external_auth_reason/auth_exempt_paths open routes.
    from kailash_nb.middleware import APIGateway, Gateway
    from kailash_nb.middleware.gateway_errors import GatewayConfigurationError

    url = f"sqlite:///{tmp_path / 'gw.db'}"
    assert isinstance(APIGateway(database_url=url, enable_auth=False), Gateway)
    with pytest.raises(GatewayConfigurationError, match="not supported"):
        APIGateway(database_url=url, enable_auth=False, auth_exempt_paths=["/api"])


def test_workflow_nodes_cannot_be_written_and_get_node_raises():
    # Kailash: workflow.nodes["x"] = anything is stored; get_node("nope") returns None.
    workflow = Workflow("wf-1", "direct")
    workflow.add_node("a", "PythonCodeNode", code="result = 1")
    with pytest.raises(TypeError):
        workflow.nodes["b"] = workflow.nodes["a"]  # type: ignore[index]
    with pytest.raises(WorkflowValidationError, match="no node 'nope'"):
        workflow.get_node("nope")


def test_a_workflow_is_run_by_a_runtime_and_keeps_its_metadata_as_given():
    # Kailash: Workflow.run()/execute()/execute_with_state() run it directly, and its
    # metadata gains 'created_at'; repr is "Workflow(id=..., name=..., ...)".
    workflow = Workflow("wf-1", "direct")
    assert not any(hasattr(workflow, name) for name in ("run", "execute", "execute_with_state"))
    assert workflow.metadata == {}
    assert repr(workflow) == "<Workflow direct: 0 nodes, 0 edges>"
    assert "wf-1" in str(workflow)


def test_adding_a_node_by_class_or_instance_warns_nothing():
    # Kailash: a UserWarning nudging towards add_node("Type", "id", {...}).
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        builder = WorkflowBuilder()
        builder.add_node(PythonCodeNode, "a", {"code": "result = 1"})
        builder.add_node(PythonCodeNode(code="result = 2"), "b")
    assert builder.node_ids == ["a", "b"]


def test_add_input_connection_delivers_the_run_parameter():
    # Kailash: build() fails ("Source node '__workflow_input__' not found").
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = x * 2"})
    builder.add_input_connection("a", "x", "inp")
    assert LocalRuntime().execute(builder.build(), parameters={"inp": 4})[0] == {"a": {"result": 8}}


def test_access_controlled_runtime_checks_by_default_and_fails_a_denied_node():
    # Kailash 2.65: checks only when the global manager is enabled (it is not by
    # default), and a denied node returned {} to its dependents.
    from kailash_nb.runtime.access_controlled import (
        AccessControlledRuntime,
        NodeAccessDeniedError,
    )

    user = UserContext(user_id="u", tenant_id="t", roles=["r"])
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    builder.add_node("PythonCodeNode", "b", {"code": "result = x"})
    builder.add_connection("a", "result", "b", "x")
    workflow = builder.build(workflow_id="w")
    with pytest.raises(PermissionError):
        AccessControlledRuntime(user).execute(workflow)
    manager = AccessControlManager(
        rules=[
            PermissionRule("run", "workflow", "w", "execute", "allow", role="r"),
            PermissionRule("no-a", "node", "a", "execute", "deny", role="r", workflow_id="w"),
        ]
    )
    with pytest.raises(NodeAccessDeniedError, match="node 'a'"):
        AccessControlledRuntime(user, manager=manager).execute(workflow)
    with pytest.raises(TypeError, match="base_runtime"):
        AccessControlledRuntime(user, base_runtime=object())
