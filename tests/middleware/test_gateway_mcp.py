"""Published workflows as MCP tools, driven by the ``mcp`` SDK's own client over both
transports (streamable HTTP ``/mcp`` and WebSocket ``/mcp/ws``) against a real gateway
on a free 127.0.0.1 port: tools, calls, progress, cancellation, authentication and
tenant isolation; then the HTTP contract of ``/mcp`` with raw requests (GW items:
oversized and malformed bodies, unknown methods answered as JSON-RPC errors).

Runs that must still be in flight wait on a ``threading.Event`` the test releases.
"""

from __future__ import annotations

import asyncio
import threading
import uuid

import httpx
import mcp.types as types
import pytest
import websockets
from _mcp_clients import TRANSPORTS, cancel, event_of, mcp_session
from mcp.shared.exceptions import McpError

from kailash_nb import WorkflowBuilder
from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.middleware.gateway_errors import GatewayConfigurationError
from kailash_nb.middleware.mcp import RUN_ID_META
from kailash_nb.nodes.code import PythonCodeNode

GATES: dict[str, threading.Event] = {}
AFTER_HOLD: list[str] = []
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def double(x: int) -> int:
    """Twice x."""
    return x * 2


def hold(key: str) -> str:
    """Wait until the test opens the gate named ``key``."""
    GATES[key].wait(10)
    return key


def after(result: str) -> str:
    """Record that the node after ``hold`` ran."""
    AFTER_HOLD.append(result)
    return result


def _workflow(*steps):
    builder = WorkflowBuilder()
    previous = None
    for function, node_id in steps:
        builder.add_node(PythonCodeNode.from_function(function), node_id)
        if previous is not None:
            builder.add_connection(previous, "result", node_id, "result")
        previous = node_id
    return builder.build()


@pytest.fixture(scope="module")
def served(module_sqlite_url, secured_gateway, serve_module_gateway):
    gateway = secured_gateway(module_sqlite_url, mcp=True, tenant_isolation=True)
    gateway.register_workflow("dbl", _workflow((double, "double")), description="doubles x")
    gateway.register_workflow("held", _workflow((hold, "hold"), (after, "after")))
    yield serve_module_gateway(gateway)
    for gate in GATES.values():
        gate.set()


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 20))


# -- tools over both transports ------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_lists_every_workflow_with_the_rest_schemas(served, transport):
    async def main():
        async with mcp_session(served.url, transport, served.access_token()) as session:
            return (await session.list_tools()).tools

    tools = {tool.name: tool for tool in run(main())}
    assert set(tools) == {"dbl", "held"}
    inputs = served.gateway.workflow_inputs["dbl"]
    assert tools["dbl"].description == "doubles x"
    assert tools["dbl"].inputSchema == inputs.schema
    assert tools["dbl"].outputSchema == inputs.output_schema


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_call_is_a_gateway_run_of_the_caller(served, transport):
    token = served.access_token("ada")

    async def main():
        async with mcp_session(served.url, transport, token) as session:
            workflow_level = await session.call_tool("dbl", {"x": 4})
            node_level = await session.call_tool("dbl", {"double": {"x": 5}})
            return workflow_level, node_level

    first, second = run(main())
    assert not first.isError and first.structuredContent == {"double": {"result": 8}}
    assert second.structuredContent == {"double": {"result": 10}}
    assert first.content[0].text == '{"double": {"result": 8}}'
    run_id = first.meta[RUN_ID_META]
    answer = served.client.get(f"/runs/{run_id}", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "completed"
    assert answer.json()["workflow"] == "dbl"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_invalid_arguments_are_error_results_naming_the_input(served, transport):
    async def main():
        async with mcp_session(served.url, transport, served.access_token()) as session:
            wrong_type = await session.call_tool("dbl", {"x": "four"})
            unknown = await session.call_tool("dbl", {"y": 1})
            code = await session.call_tool("dbl", {"double": {"x": 1, "code": "1"}})
            return wrong_type, unknown, code

    wrong_type, unknown, code = run(main())
    assert wrong_type.isError and "x" in wrong_type.content[0].text
    assert "integer" in wrong_type.content[0].text
    assert unknown.isError and "y" in unknown.content[0].text
    assert code.isError and "double.code" in code.content[0].text
    assert wrong_type.structuredContent is None


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_unknown_tool_is_a_protocol_error(served, transport):
    async def main():
        async with mcp_session(served.url, transport, served.access_token()) as session:
            with pytest.raises(McpError) as refused:
                await session.call_tool("nope", {})
            return refused.value.error

    error = run(main())
    assert error.code == types.INVALID_PARAMS and "nope" in error.message


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_progress_notifications_carry_the_node_events(served, transport):
    notifications: list[types.ProgressNotificationParams] = []
    reported: list[tuple[float, str | None]] = []

    async def on_message(message):
        if isinstance(message, types.ServerNotification) and isinstance(
            message.root, types.ProgressNotification
        ):
            notifications.append(message.root.params)

    async def progress(value, total, message):
        reported.append((value, message))

    async def main():
        async with mcp_session(
            served.url, transport, served.access_token(), message_handler=on_message
        ) as session:
            return await session.call_tool("dbl", {"x": 2}, progress_callback=progress)

    result = run(main())
    assert result.structuredContent == {"double": {"result": 4}}
    assert reported == [(1, "node 'double': started"), (2, "node 'double': completed")]
    events = [event_of(params) for params in notifications]
    assert [event["data"]["state"] for event in events] == ["started", "completed"]
    assert {event["data"]["run_id"] for event in events} == {result.meta[RUN_ID_META]}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cancellation_answers_at_once_and_stops_the_run_before_its_next_node(served, transport):
    error, run_ids, key = _cancel_a_held_call(served, transport)
    assert error.message == "Request cancelled"
    GATES[key].set()
    entry = _finished(served, run_ids[0])
    assert entry.status == "cancelled"
    assert key not in AFTER_HOLD


def test_a_websocket_with_every_request_place_taken_still_takes_a_cancellation(served, monkeypatch):
    # The one place is the held call's; notifications/cancelled is what frees it.
    from kailash_nb.middleware.handlers.mcp_ws import McpWebSocketHandler

    monkeypatch.setattr(McpWebSocketHandler, "max_calls_in_flight", 1)
    key = uuid.uuid4().hex
    GATES[key] = threading.Event()
    json = __import__("json")

    async def main():
        url = f"ws{served.url[4:]}/mcp/ws?token={served.access_token()}"
        async with websockets.connect(url, subprotocols=["mcp"]) as socket:
            hello = {"protocolVersion": types.LATEST_PROTOCOL_VERSION, "capabilities": {}}
            hello["clientInfo"] = {"name": "test", "version": "1"}
            await socket.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                          "params": hello}))  # fmt: skip
            assert json.loads(await socket.recv())["id"] == 1
            await socket.send('{"jsonrpc":"2.0","method":"notifications/initialized"}')
            arguments = {"hold": {"key": key}}
            params = {"name": "held", "arguments": arguments, "_meta": {"progressToken": "p"}}
            await socket.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                          "params": params}))  # fmt: skip
            while True:  # progress until the hold node started
                message = json.loads(await socket.recv())
                assert message.get("id") != 2, message  # the call must not end yet
                if message.get("method") != "notifications/progress":
                    continue
                event = message["params"]["_meta"]["kailash_nb/event"]
                if event["data"]["node_id"] == "hold" and event["data"]["state"] == "started":
                    break
            cancelled = {"requestId": 2, "reason": "test"}
            await socket.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                          "params": cancelled}))  # fmt: skip
            while True:
                message = json.loads(await socket.recv())
                if message.get("id") == 2:
                    return message, event["data"]["run_id"]

    answer, run_id = run(main())
    assert answer["error"]["message"] == "Request cancelled"
    GATES[key].set()
    assert _finished(served, run_id).status == "cancelled"


def _cancel_a_held_call(served, transport):
    """Call ``held`` and cancel the call once its ``hold`` node started: the error the
    call raised, the run ids its progress named and the key of its gate (still shut)."""
    key = uuid.uuid4().hex
    GATES[key] = threading.Event()
    run_ids: list[str] = []
    started = asyncio.Event

    async def main():
        holding = started()

        async def on_message(message):
            if isinstance(message, types.ServerNotification) and isinstance(
                message.root, types.ProgressNotification
            ):
                event = event_of(message.root.params)["data"]
                run_ids.append(event["run_id"])
                if event["node_id"] == "hold" and event["state"] == "started":
                    holding.set()

        async def progress(value, total, message):
            return None

        async with mcp_session(
            served.url, transport, served.access_token(), message_handler=on_message
        ) as session:
            call = asyncio.ensure_future(
                session.call_tool("held", {"hold": {"key": key}}, progress_callback=progress)
            )
            await holding.wait()
            await cancel(session, session._request_id - 1)  # the call's request id
            with pytest.raises(McpError) as cancelled:
                await call
            return cancelled.value.error

    return run(main()), run_ids, key


def _finished(served, run_id):
    index = served.gateway.runs.index
    for _ in range(500):
        entry = index.get(run_id, "acme")
        if entry is not None and entry.status not in ("queued", "running"):
            return entry
        threading.Event().wait(0.01)
    raise AssertionError(f"run {run_id} did not finish")


# -- authentication and tenants --------------------------------------------------------


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_http_without_a_valid_token_is_refused_401(served, token):
    async def main():
        async with mcp_session(served.url, "http", token):
            pass

    with pytest.raises(Exception) as refused:
        run(main())
    errors = getattr(refused.value, "exceptions", [refused.value])
    assert isinstance(errors[0], httpx.HTTPStatusError)
    assert errors[0].response.status_code == 401


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_websocket_without_a_valid_token_is_refused_before_the_upgrade(served, token):
    async def main():
        async with mcp_session(served.url, "ws", token):
            pass

    with pytest.raises(websockets.InvalidStatus) as refused:
        run(main())
    assert refused.value.response.status_code == 401


def test_websocket_from_a_foreign_origin_is_refused_403(served):
    async def main():
        url = f"ws{served.url[4:]}/mcp/ws?token={served.access_token()}"
        async with websockets.connect(url, subprotocols=["mcp"], origin="https://evil.example"):
            pass

    with pytest.raises(websockets.InvalidStatus) as refused:
        run(main())
    assert refused.value.response.status_code == 403


def _initialize(served, headers) -> str:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": types.LATEST_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    answer = served.client.post("/mcp", json=body, headers={**MCP_HEADERS, **headers})
    assert answer.status_code == 200, answer.text
    return answer.headers["Mcp-Session-Id"]


def _call(served, headers, session_id, name="dbl", arguments=None):
    body = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments or {"x": 1}},
    }
    headers = {**MCP_HEADERS, **headers, "Mcp-Session-Id": session_id}
    return served.client.post("/mcp", json=body, headers=headers)


def test_another_tenants_token_cannot_use_a_session_or_read_its_runs(served):
    ada = served.bearer_headers("ada", tenant="acme")
    session_id = _initialize(served, ada)
    mine = _call(served, ada, session_id)
    assert mine.status_code == 200 and not mine.json()["result"]["isError"]
    run_id = mine.json()["result"]["_meta"][RUN_ID_META]

    other = served.bearer_headers("ada", tenant="globex")  # same subject, other tenant
    refused = _call(served, other, session_id)
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == types.INVALID_REQUEST
    assert served.client.get(f"/runs/{run_id}", headers=other).status_code == 404
    colleague = served.bearer_headers("bob", tenant="acme")
    assert _call(served, colleague, session_id).status_code == 404


def test_a_tenant_header_naming_another_tenant_is_refused_403(served):
    headers = served.bearer_headers("ada", tenant="acme", **{"X-Tenant-ID": "globex"})
    answer = served.client.post("/mcp", json={}, headers={**MCP_HEADERS, **headers})
    assert answer.status_code == 403


# -- the /mcp HTTP contract --------------------------------------------------------------


def _post(served, content, headers, session_id=None):
    extra = {"Content-Type": "application/json", **MCP_HEADERS}
    if session_id is not None:
        extra["Mcp-Session-Id"] = session_id
    return served.client.post("/mcp", content=content, headers={**headers, **extra})


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b'{"jsonrpc": "2.0", "id": 1, "method": ', types.PARSE_ERROR),
        (b'{"a": 1, "a": 2}', types.PARSE_ERROR),
        (b"[" * 100_000 + b"]" * 100_000, types.PARSE_ERROR),
        (b"\xff\xfe", types.PARSE_ERROR),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"a": NaN}}', types.PARSE_ERROR),
        (b'{"jsonrpc": "2.0", "id": 1e999999, "method": "ping"}', types.PARSE_ERROR),
        (b'{"id": ' + b"9" * 100_000 + b"}", types.PARSE_ERROR),
        (b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]', types.INVALID_REQUEST),
        (b'{"jsonrpc": "1.0", "id": 1, "method": "ping"}', types.INVALID_REQUEST),
        (b'"ping"', types.INVALID_REQUEST),
    ],
)
def test_malformed_messages_are_json_rpc_errors(served, content, code):
    headers = served.bearer_headers("ada")
    session_id = _initialize(served, headers)
    answer = _post(served, content, headers, session_id)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["jsonrpc"] == "2.0" and body["id"] in (None, 1)  # 1: the id was readable
    assert body["error"]["code"] == code


def test_unknown_methods_and_bad_params_are_json_rpc_errors(served):
    headers = served.bearer_headers("ada")
    session_id = _initialize(served, headers)
    unknown = _post(
        served, b'{"jsonrpc":"2.0","id":7,"method":"resources/list"}', headers, session_id
    )
    assert unknown.status_code == 200
    assert unknown.json()["id"] == 7
    assert unknown.json()["error"]["code"] == types.METHOD_NOT_FOUND
    bad = _post(
        served,
        b'{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"arguments":{}}}',
        headers,
        session_id,
    )
    assert bad.json()["error"]["code"] == types.INVALID_PARAMS
    assert "name" in bad.json()["error"]["message"]


def test_session_lifecycle_and_its_header(served):
    headers = served.bearer_headers("ada")
    missing = _post(served, b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}', headers)
    assert missing.status_code == 400
    assert "Mcp-Session-Id" in missing.json()["error"]["message"]
    session_id = _initialize(served, headers)
    notified = _post(
        served, b'{"jsonrpc":"2.0","method":"notifications/initialized"}', headers, session_id
    )
    assert notified.status_code == 202 and notified.content == b""
    odd_cancel = b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":[1]}}'
    assert _post(served, odd_cancel, headers, session_id).status_code == 202
    ended = served.client.delete("/mcp", headers={**headers, "Mcp-Session-Id": session_id})
    assert ended.status_code == 204
    assert _call(served, headers, session_id).status_code == 404
    assert _call(served, headers, "x" * 40).status_code == 404


def test_http_limits_answer_before_the_protocol(served):
    headers = served.bearer_headers("ada")
    session_id = _initialize(served, headers)
    too_big = _post(served, b" " * (1024 * 1024 + 1), headers, session_id)
    assert too_big.status_code == 413
    wrong_type = served.client.post(
        "/mcp", content=b"{}", headers={**headers, "Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    put = served.client.put("/mcp", content=b"{}", headers=headers)
    assert put.status_code == 405 and "POST" in put.headers["Allow"]


def test_get_holds_the_session_stream_until_the_session_ends(served):
    headers = served.bearer_headers("ada")
    session_id = _initialize(served, headers)
    stream_headers = {**headers, "Mcp-Session-Id": session_id, "Accept": "text/event-stream"}
    with served.client.stream("GET", "/mcp", headers=stream_headers) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines) == ": stream open"
        second = served.client.get("/mcp", headers=stream_headers)
        assert second.status_code == 409
        ended = served.client.delete("/mcp", headers={**headers, "Mcp-Session-Id": session_id})
        assert ended.status_code == 204
        assert [line for line in lines if line] == []  # the stream ended with the session


def test_websocket_messages_out_of_protocol_get_json_rpc_errors(served):
    async def main():
        url = f"ws{served.url[4:]}/mcp/ws?token={served.access_token()}"
        async with websockets.connect(url, subprotocols=["mcp"]) as socket:
            assert socket.subprotocol == "mcp"
            answers = []
            for frame in (
                "not json",
                '{"jsonrpc":"2.0","id":1,"method":"tools/list"}',  # before initialize
                '{"jsonrpc":"2.0","id":2,"method":"nope"}',
            ):
                await socket.send(frame)
                answers.append(__import__("json").loads(await socket.recv()))
            return answers

    parse, early, unknown = run(main())
    assert parse["error"]["code"] == types.PARSE_ERROR
    assert early["id"] == 1 and early["error"]["code"] == types.INVALID_REQUEST
    assert unknown["id"] == 2 and unknown["error"]["code"] == types.METHOD_NOT_FOUND


# -- rate limits and configuration -------------------------------------------------------


def test_rate_limits_apply_to_both_transports(
    sqlite_url, secured_gateway, security_config, serve_gateway
):
    gateway = secured_gateway(
        sqlite_url, security=security_config(max_requests_per_minute=3), mcp=True
    )
    gateway.register_workflow("dbl", _workflow((double, "double")))
    served = serve_gateway(gateway)
    headers = served.bearer_headers("ada")
    session_id = _initialize(served, headers)  # 1 request
    assert _call(served, headers, session_id).status_code == 200  # 2
    assert _call(served, headers, session_id).status_code == 200  # 3
    limited = _call(served, headers, session_id)
    assert limited.status_code == 429 and "Retry-After" in limited.headers

    async def main():
        async with mcp_session(served.url, "ws", served.access_token("eve")) as session:
            outcomes = []
            for _ in range(4):  # the handshake took one of eve's three
                try:
                    await session.call_tool("dbl", {"x": 1})
                    outcomes.append("ok")
                except McpError as exc:
                    outcomes.append(exc.error.code)
            return outcomes

    assert run(main()) == ["ok", "ok", -32029, -32029]


def test_mcp_is_off_unless_asked_and_checked_when_asked(sqlite_url, serve_gateway):
    with pytest.raises(GatewayConfigurationError, match="mcp must be True or False"):
        create_gateway(mcp="yes")
    gateway = create_gateway(database_url=sqlite_url)
    served = serve_gateway(gateway)
    assert served.client.post("/mcp", json={}).status_code == 404


def fail(x: int) -> int:
    """Raise for every x."""
    raise ValueError(f"no good: {x}")


def test_a_failed_run_is_an_error_result_saying_what_rest_says(
    sqlite_url, secured_gateway, serve_gateway
):
    gateway = secured_gateway(sqlite_url, mcp=True)
    gateway.register_workflow("boom", _workflow((fail, "fail")), expose_errors=True)
    served = serve_gateway(gateway)
    rest = served.client.post(
        "/workflows/boom/execute",
        json={"parameters": {"fail": {"x": 3}}},
        headers=served.bearer_headers(),
    )
    assert rest.status_code == 422

    async def main():
        async with mcp_session(served.url, "http", served.access_token()) as session:
            return await session.call_tool("boom", {"fail": {"x": 3}})

    result = run(main())
    assert result.isError
    text = result.content[0].text
    assert text.startswith(f"run failed: {rest.json()['detail']}")
    assert "failed nodes:" in text and '"fail"' in text


def test_a_callers_sessions_are_capped_least_recently_used_idle_first():
    from kailash_nb.middleware.identity import Identity
    from kailash_nb.middleware.mcp import McpSessionLimitError, McpSessions
    from kailash_nb.middleware.mcp.sessions import ToolCall

    sessions = McpSessions(max_sessions=10, max_per_caller=2)
    ada = Identity("ada", "acme", ())
    first, second = sessions.create(ada), sessions.create(ada)
    assert sessions.get(first.session_id, ada) is first  # now second is the least recent
    third = sessions.create(ada)
    assert sessions.get(second.session_id, ada) is None
    assert sessions.get(first.session_id, Identity("ada", "globex", ())) is None
    loop = asyncio.new_event_loop()
    try:
        for busy in (first, third):
            busy.calls[1] = ToolCall(loop)
        with pytest.raises(McpSessionLimitError, match="call in flight"):
            sessions.create(ada)
        assert sessions.create(Identity("bob", "acme", ())).session_id.count(".") == 1
        sessions.remove(first)
        assert first.calls == {} and len(sessions) == 2
        assert sessions.get(first.session_id, ada) is None  # ended: not adopted again
    finally:
        loop.close()


POLICY = """\
rules:
  - id: analysts-run-open
    effect: allow
    actions: [execute, read_output]
    resource: {workflow: open}
    subject: {role: analyst}
"""


def test_the_access_policy_decides_which_tools_a_caller_sees_and_calls(
    sqlite_url, tmp_path, secured_gateway, serve_gateway
):
    from kailash_nb.runtime.access_controlled import AccessControlledRuntime

    policy = tmp_path / "policies.yaml"
    policy.write_text(POLICY)
    runtime = AccessControlledRuntime(policies_file=policy, database_url=sqlite_url)
    gateway = secured_gateway(sqlite_url, runtime=runtime, mcp=True)
    gateway.register_workflow("open", _workflow((double, "double")))
    gateway.register_workflow("secret", _workflow((double, "double")))
    served = serve_gateway(gateway)

    async def main(transport):
        async with mcp_session(served.url, transport, served.access_token("ana")) as session:
            names = [tool.name for tool in (await session.list_tools()).tools]
            allowed = await session.call_tool("open", {"x": 1})
            with pytest.raises(McpError) as refused:
                await session.call_tool("secret", {"x": 1})
            return names, allowed, refused.value.error

    for transport in TRANSPORTS:
        names, allowed, refused = run(main(transport))
        assert names == ["open"]
        assert allowed.structuredContent == {"double": {"result": 2}}
        assert refused.code == types.INVALID_PARAMS and "secret" in refused.message


def test_websocket_frames_above_the_limit_close_1009(served):
    async def main():
        url = f"ws{served.url[4:]}/mcp/ws?token={served.access_token()}"
        async with websockets.connect(url, subprotocols=["mcp"], max_size=None) as socket:
            await socket.send('{"jsonrpc": "2.0", "method": "x", "params": "' + "a" * 70_000 + '"}')
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await socket.recv()
            return closed.value.rcvd.code

    assert run(main()) == 1009


def test_another_worker_adopts_a_session_for_its_caller_only():
    from kailash_nb.middleware.identity import Identity
    from kailash_nb.middleware.mcp import McpSessions

    key = b"k" * 32
    first_worker, second_worker = McpSessions(key=key), McpSessions(key=key)
    ada = Identity("ada", "acme", ())
    created = first_worker.create(ada)
    created.protocol_version = "2025-06-18"
    assert second_worker.get(created.session_id, Identity("ada", "globex", ())) is None
    assert second_worker.get(created.session_id, Identity("bob", "acme", ())) is None
    adopted = second_worker.get(created.session_id, ada, "2025-06-18")
    assert adopted is not None and adopted.protocol_version == "2025-06-18"
    assert second_worker.get(created.session_id, ada) is adopted
    forged = created.session_id[:-2] + ("AA" if created.session_id[-2:] != "AA" else "BB")
    assert McpSessions(key=key).get(forged, ada) is None
    assert McpSessions(key=b"o" * 32).get(created.session_id, ada) is None


def test_a_websocket_message_flood_closes_1008(served):
    async def main():
        url = f"ws{served.url[4:]}/mcp/ws?token={served.access_token()}"
        async with websockets.connect(url, subprotocols=["mcp"]) as socket:
            for _ in range(250):  # above max_messages_per_second (200)
                await socket.send('{"jsonrpc": "2.0", "method": "notifications/initialized"}')
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await socket.recv()
            return closed.value.rcvd.code

    assert run(main()) == 1008
