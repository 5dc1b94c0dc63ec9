"""Live run events against a real gateway on a free 127.0.0.1 port: the SSE stream
``GET /runs/{id}/events`` and the WebSocket ``/ws`` (GW-22..26, GW-28, AUTHZ-09, AUTHZ-15).

Runs that must still be in flight wait on a ``threading.Event`` the test releases, so
nothing depends on timing; WebSocket clients run on the server's loop (``served.call``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid

import httpx
import pytest
from _gateway_server import ServedGateway
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from kailash_nb import WorkflowBuilder
from kailash_nb.middleware._realtime import Outbox, OutboxClosed, RunEventHub
from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.runtime.events import NodeEvent, RunEvent
from kailash_nb.security import TokenService

ORIGIN = "https://app.example.com"
GATES: dict[str, threading.Event] = {}
UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


def double(x: int) -> int:
    """Twice x."""
    return x * 2


def hold(key: str) -> str:
    """Wait until the test opens the gate named ``key``."""
    GATES[key].wait(10)
    return key


def _workflow(function, node_id):
    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(function), node_id)
    return builder.build()


@pytest.fixture(scope="module")
def served(module_sqlite_url, secured_gateway, serve_module_gateway):
    gateway = secured_gateway(module_sqlite_url, cors_origins=[ORIGIN])
    gateway.register_workflow("dbl", _workflow(double, "double"))
    gateway.register_workflow("hold", _workflow(hold, "hold"))
    server = serve_module_gateway(gateway)
    server.config, server.db_url = gateway.auth.config, module_sqlite_url
    yield server
    for gate in GATES.values():
        gate.set()


def auth(access: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access}"}


def start_held_run(served, headers) -> tuple[str, threading.Event]:
    key = uuid.uuid4().hex
    gate = GATES[key] = threading.Event()
    response = served.client.post(
        "/workflows/hold/execute?wait=false",
        json={"parameters": {"hold": {"key": key}}},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    return response.json()["run_id"], gate


def finished_run(served, headers) -> str:
    response = served.client.post(
        "/workflows/dbl/execute", json={"parameters": {"double": {"x": 2}}}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()["run_id"]


def sse_messages(lines) -> list[tuple[str, dict]]:
    """Parse SSE lines into ``(event, data)``; every message must be well formed."""
    messages, fields = [], {}
    for line in lines:
        if line == "":
            if fields:
                assert set(fields) == {"event", "data"}, fields
                messages.append((fields["event"], json.loads(fields["data"])))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            assert name in ("event", "data") and name not in fields, line
            fields[name] = value
    assert not fields, "stream ended inside a message"
    return messages


def assert_run_stream(messages, run_id, node_id):
    assert all(
        set(data) >= {"run_id", "node_id", "state", "timestamp", "duration", "error"}
        for _, data in messages
    )
    assert all(data["run_id"] == run_id for _, data in messages)
    assert messages[0] == ("run", messages[0][1]) and messages[0][1]["state"] == "started"
    assert messages[-1][0] == "run" and messages[-1][1]["state"] == "completed"
    node_states = [data["state"] for kind, data in messages if kind == "node"]
    assert "started" in node_states and node_states[-1] == "completed"
    assert {data["node_id"] for kind, data in messages if kind == "node"} == {node_id}
    completed = messages[-1][1]
    assert completed["duration"] >= 0 and completed["error"] is None


# -- SSE -----------------------------------------------------------------------------


def test_sse_streams_a_live_run_until_its_final_event(served):
    headers = auth(served.access_token())
    run_id, gate = start_held_run(served, headers)
    lines: list[str] = []
    with served.client.stream("GET", f"/runs/{run_id}/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            lines.append(line)
            if (
                line.startswith("data:")
                and '"state":"started"' in line
                and '"node_id":"hold"' in line
            ):
                gate.set()  # the node is running: release it while we listen
    messages = sse_messages(lines)
    assert_run_stream(messages, run_id, "hold")


def test_sse_replays_a_finished_run_and_ends(served):
    headers = auth(served.access_token())
    run_id = finished_run(served, headers)
    response = served.client.get(f"/runs/{run_id}/events", headers=headers)
    assert response.status_code == 200
    assert_run_stream(sse_messages(response.text.split("\n")), run_id, "double")


def test_sse_of_a_run_whose_events_were_evicted_sends_its_outcome(served):
    headers = auth(served.access_token())
    run_id = finished_run(served, headers)
    hub = served.gateway.live_events()
    with hub._lock:
        del hub._buffers[run_id]  # as if 256 newer runs had pushed it out
    response = served.client.get(f"/runs/{run_id}/events", headers=headers)
    [(kind, data)] = sse_messages(response.text.split("\n"))
    assert kind == "run" and data["state"] == "completed" and data["run_id"] == run_id


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_sse_client_that_stops_reading_is_dropped_others_unaffected(served):
    """GW-26: a client that never reads is dropped; others are unaffected."""
    access = served.access_token()
    run_id, gate = start_held_run(served, auth(access))
    hub = served.gateway.live_events()
    received, ended = [0], threading.Event()

    def healthy_reader() -> None:
        with (
            httpx.Client(base_url=served.url, timeout=15) as client,
            client.stream("GET", f"/runs/{run_id}/events", headers=auth(access)) as response,
        ):
            for line in response.iter_lines():
                received[0] += '"state":"retrying"' in line
            ended.set()

    reader = threading.Thread(target=healthy_reader, daemon=True)
    reader.start()
    with socket.socket() as raw:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", served.port))
        raw.sendall(
            f"GET /runs/{run_id}/events HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {access}\r\n\r\n".encode()
        )
        wait_until(lambda: hub.watcher_count(run_id) == 2)
        sent = 0
        while hub.watcher_count(run_id) == 2 and sent < 20_000:  # at most ~20 MB
            for _ in range(200):  # batches the healthy reader keeps up with
                hub.on_event(NodeEvent(run_id, "hold", "retrying", time.time(), error="x" * 999))
            sent += 200
            wait_until(lambda: received[0] >= sent)  # noqa: B023 - read at once
        assert hub.watcher_count(run_id) == 1  # the stalled client alone was dropped
    gate.set()
    assert ended.wait(5) and received[0] == sent
    reader.join(5)


def test_sse_of_another_tenant_or_user_is_404(served):
    run_id = finished_run(served, auth(served.access_token(tenant="acme", subject="alice")))
    for other in (
        served.access_token(tenant="globex", subject="alice"),
        served.access_token(subject="bob"),
    ):
        response = served.client.get(f"/runs/{run_id}/events", headers=auth(other))
        assert response.status_code == 404
        assert response.json()["code"] == "run_not_found"
    unknown = served.client.get(f"/runs/{uuid.uuid4()}/events", headers=auth(served.access_token()))
    assert unknown.status_code == 404
    anonymous = served.client.get(f"/runs/{run_id}/events")
    assert anonymous.status_code == 401 and "Bearer" in anonymous.headers["www-authenticate"]


# -- WebSocket handshake -------------------------------------------------------------


def test_ws_handshake_without_a_valid_token_is_401(served):
    """GW-22: a handshake without a valid token is refused with 401 before the upgrade."""
    for query, headers in (
        ("", {}),
        ("?token=not-a-token", {}),
        ("", {"Authorization": "Bearer not-a-token"}),
    ):
        response = served.client.get(f"/ws{query}", headers={**UPGRADE, **headers})
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "upgrade" not in response.headers.get("connection", "").lower()


def test_ws_handshake_from_a_foreign_origin_is_403(served):
    """GW-23: a handshake from an unlisted origin is refused with 403."""
    access = served.access_token()
    for origin in ("https://evil.example", "null", f"{ORIGIN}.evil.io"):
        response = served.client.get("/ws", headers={**UPGRADE, **auth(access), "Origin": origin})
        assert response.status_code == 403, origin

    async def allowed() -> None:
        conn = await connect(served, access, headers={"Origin": ORIGIN})
        conn.close()

    served.call(allowed())


# -- WebSocket session -----------------------------------------------------------------


async def connect(served, access: str, *, query: bool = False, headers=None):
    url = f"ws://127.0.0.1:{served.port}/ws"
    headers = dict(headers or {})
    if query:
        url += f"?token={access}"
    else:
        headers.update(auth(access))
    return await websocket_connect(HTTPRequest(url, headers=headers, connect_timeout=5))


async def receive(conn: WebSocketClientConnection, timeout: float = 5) -> dict | None:
    message = await asyncio.wait_for(conn.read_message(), timeout)
    return None if message is None else json.loads(message)


def test_ws_subscribe_to_own_run_receives_its_events(served):
    access = served.access_token()
    run_id, gate = start_held_run(served, auth(access))

    async def session() -> list[dict]:
        conn = await connect(served, access, query=True)
        conn.write_message(json.dumps({"subscribe": run_id}))
        frames = [await receive(conn)]
        while (
            frames[-1].get("data", {}).get("state") != "completed" or frames[-1]["event"] != "run"
        ):
            frame = await receive(conn)
            frames.append(frame)
            if frame.get("event") == "node" and frame["data"]["state"] == "started":
                gate.set()
        conn.close()
        return frames

    frames = served.call(session())
    assert frames[0] == {"subscribed": run_id}
    assert_run_stream([(f["event"], f["data"]) for f in frames[1:]], run_id, "hold")


def test_ws_subscribe_to_another_tenants_run_is_an_error_frame(served):
    foreign = finished_run(served, auth(served.access_token(tenant="globex", subject="eve")))
    same_tenant_other_user = finished_run(served, auth(served.access_token(subject="mallory")))
    access = served.access_token(subject="eve")

    async def session() -> list[dict]:
        conn = await connect(served, access)
        frames = []
        for run_id in (foreign, same_tenant_other_user, str(uuid.uuid4())):
            conn.write_message(json.dumps({"subscribe": run_id}))
            frames.append(await receive(conn))
        conn.write_message("not json")
        frames.append(await receive(conn))
        conn.close()
        return frames

    frames = served.call(session())
    assert frames[0] == {"error": "not_found", "run_id": foreign}
    assert frames[1] == {"error": "not_found", "run_id": same_tenant_other_user}
    assert frames[2]["error"] == "not_found"
    assert frames[3]["error"] == "bad_request"
    assert served.gateway.live_events().watcher_count(foreign) == 0


def test_ws_tenant_admin_may_subscribe_to_a_users_run_as_on_the_http_routes(served):
    """AUTHZ-15 with the ownership rule of ``/runs/{id}``: an admin of the run's tenant
    is served, an admin of another tenant is not."""
    run_id = finished_run(served, auth(served.access_token(subject="mallory")))
    admins = {
        tenant: served.gateway.auth.issue_tokens(
            "root", tenant_id=tenant, roles=["admin"]
        ).access_token
        for tenant in ("acme", "globex")
    }

    async def session(access: str) -> dict | None:
        conn = await connect(served, access)
        conn.write_message(json.dumps({"subscribe": run_id}))
        frame = await receive(conn)
        conn.close()
        return frame

    assert served.call(session(admins["acme"])) == {"subscribed": run_id}
    assert served.call(session(admins["globex"])) == {"error": "not_found", "run_id": run_id}


def test_ws_oversized_frame_closes_1009(served):
    """GW-24: a frame above 64 KiB closes the socket with 1009."""

    async def session() -> tuple[int | None, dict | None]:
        conn = await connect(served, served.access_token())
        conn.write_message("x" * (64 * 1024 + 1))
        return await receive(conn), conn.close_code

    last, code = served.call(session())
    assert last is None and code == 1009


def test_ws_message_flood_closes_1008(served):
    """GW-25: a message flood closes the socket with 1008."""

    async def session() -> tuple[int | None, str | None]:
        conn = await connect(served, served.access_token())
        for _ in range(200):
            conn.write_message(json.dumps({"unsubscribe": "x"}))
        while await receive(conn) is not None:
            pass
        return conn.close_code, conn.close_reason

    assert served.call(session()) == (1008, "too many messages")


def test_ws_closes_when_the_token_expires(served):
    """GW-28: the socket closes when the access token expires."""
    lifetime = served.config.access_token_ttl.total_seconds()
    # A service whose clock runs lifetime - 2 s behind mints a token with 1..2 s left.
    early = TokenService(served.config, served.db_url, clock=lambda: time.time() - lifetime + 2)
    access = early.issue("short-lived", tenant_id="acme", roles=["analyst"]).access_token

    async def session() -> tuple[float, int | None, str | None]:
        conn = await connect(served, access)
        started = time.monotonic()
        while await receive(conn, timeout=6) is not None:
            pass
        return time.monotonic() - started, conn.close_code, conn.close_reason

    waited, code, reason = served.call(session())
    assert (code, reason) == (1008, "token expired") and waited < 4


def test_ws_connect_error_is_raised_for_a_refused_handshake(served):
    async def refused() -> int:
        try:
            await websocket_connect(f"ws://127.0.0.1:{served.port}/ws", connect_timeout=5)
        except HTTPClientError as exc:
            return exc.code
        return 101

    assert served.call(refused()) == 401


def test_ws_client_that_stops_answering_pings_is_closed(served, monkeypatch):
    """GW-27: a client that stops answering pings is closed."""
    from kailash_nb.middleware.handlers.realtime import RealtimeHandler

    monkeypatch.setattr(RealtimeHandler, "ping_every", 0.2)
    monkeypatch.setattr(RealtimeHandler, "pong_within", 0.2)
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as raw:
        head = "".join(f"{name}: {value}\r\n" for name, value in UPGRADE.items())
        raw.sendall(
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n{head}"
            f"Authorization: Bearer {served.access_token()}\r\n\r\n".encode()
        )
        buffered = b""
        while b"\r\n\r\n" not in buffered:
            buffered += raw.recv(4096)
        status, _, buffered = buffered.partition(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 101")
        started, opcodes = time.monotonic(), []
        while True:  # read frames, never answer a ping
            while len(buffered) < 2 or len(buffered) < 2 + (buffered[1] & 0x7F):
                chunk = raw.recv(4096)
                assert chunk, "closed without a close frame"
                buffered += chunk
            length = buffered[1] & 0x7F
            opcode, payload = buffered[0] & 0x0F, buffered[2 : 2 + length]
            buffered = buffered[2 + length :]
            opcodes.append(opcode)
            if opcode == 0x8:
                break
    assert 0x9 in opcodes  # pinged first
    assert payload[2:] == b"ping timed out" and time.monotonic() - started < 3


# -- bounded queues (GW-26) ----------------------------------------------------------------


def test_outbox_overflow_drops_the_client_and_hub_replays_without_gaps():
    """GW-26: a full send queue drops its client."""

    async def scenario() -> None:
        dropped: list[bool] = []
        outbox = Outbox(
            asyncio.get_running_loop(), capacity=3, on_overflow=lambda: dropped.append(True)
        )
        for item in range(3):
            outbox.put(item)
        assert not dropped and await outbox.get() == 0
        outbox.put(3)
        outbox.put(4)  # 4 waiting: one over capacity
        assert dropped == [True] and outbox.overflowed
        with pytest.raises(OutboxClosed):
            await outbox.get()

    asyncio.run(scenario())
    hub = RunEventHub(max_runs=2, max_events_per_run=3)
    seen: list = []
    hub.on_event(RunEvent("r1", "wf", "started", 1.0))
    replay, finished = hub.watch("r1", seen.append)
    for n in range(4):
        hub.on_event(NodeEvent("r1", f"n{n}", "completed", 2.0 + n))
    hub.on_event(RunEvent("r1", "wf", "completed", 9.0))
    assert [e.state for e in replay] == ["started"] and not finished
    assert len(seen) == 5 and seen[-1].state == "completed"
    late_replay, late_finished = hub.watch("r1", seen.append)
    assert late_finished and len(late_replay) == 3  # bounded: the latest three events
    for run in ("r2", "r3"):
        hub.on_event(RunEvent(run, "wf", "started", 1.0))
    assert hub.watch("r1", seen.append) == ([], False)  # oldest run forgotten


# -- revocation of a live connection (AUTH-15 bound, GW-28) -------------------------------


async def _closed(conn: WebSocketClientConnection, timeout: float = 5) -> tuple[float, int, str]:
    """Read until the server closes; ``(monotonic time of the close, code, reason)``."""
    while await receive(conn, timeout) is not None:
        pass
    return time.monotonic(), conn.close_code, conn.close_reason


async def _close(conn: WebSocketClientConnection) -> None:
    conn.close()


async def _still_open(conn: WebSocketClientConnection) -> bool:
    conn.write_message(json.dumps({"unsubscribe": "x"}))
    return await receive(conn) == {"unsubscribed": "x"}


@pytest.mark.slow
def test_ws_closes_within_the_revocation_bound_when_its_session_is_revoked(served):
    """AUTH-15 / GW-28: a `WS /ws` connection does not outlive its session. A logout in
    this process, and one made by another worker on the same store (another
    TokenService), close it with 1008 within the 1 s revocation bound, although the
    access token itself runs for 15 more minutes; other sessions stay open."""
    from kailash_nb.security import REVOCATION_CACHE_SECONDS

    other_worker = TokenService(served.config, served.db_url)
    auth_ = served.gateway.auth
    local = auth_.issue_tokens("ws-local", tenant_id="acme", roles=["analyst"])
    remote = auth_.issue_tokens("ws-remote", tenant_id="acme", roles=["analyst"])
    bystander = served.access_token(subject="ws-bystander")

    async def connect_all():
        return [
            await connect(served, access)
            for access in (local.access_token, remote.access_token, bystander)
        ]

    conns = served.call(connect_all())
    assert served.call(_still_open(conns[0])) and served.gateway.session_watch.watched() >= 3

    for conn, revoke in (
        (conns[0], lambda: auth_.logout(local.access_token)),
        (conns[1], lambda: other_worker.revoke_session(remote.session_id)),
    ):
        assert revoke() is True
        revoked_at = time.monotonic()
        closed_at, code, reason = served.call(_closed(conn))
        assert (code, reason) == (1008, "session revoked")
        assert closed_at - revoked_at < REVOCATION_CACHE_SECONDS
    assert served.call(_still_open(conns[2]))
    served.call(_close(conns[2]))
    wait_until(lambda: served.gateway.session_watch.watched() == 0)


@pytest.mark.slow
def test_ws_closes_when_its_refresh_token_is_reused_not_when_rotated(served):
    """AUTH-14 + AUTH-15: a normal refresh rotation keeps the session's WebSocket open;
    replaying the used refresh token revokes the family, and the WebSocket opened with
    the family's first access token closes with 1008 within the 1 s bound."""
    username = f"ws-{uuid.uuid4().hex[:8]}"
    password = "correct horse battery staple"
    served.gateway.auth.add_user(username, password, tenant_id="acme", roles=["analyst"])
    login = served.client.post("/auth/token", json={"username": username, "password": password})
    pair = login.json()
    conn = served.call(connect(served, pair["access_token"]))

    rotated = served.client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert rotated.status_code == 200
    time.sleep(1.2)  # more than one revocation check later
    assert served.call(_still_open(conn))

    reused = served.client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert reused.status_code == 401
    revoked_at = time.monotonic()
    closed_at, code, reason = served.call(_closed(conn))
    assert (code, reason) == (1008, "session revoked")
    assert closed_at - revoked_at < 1.0
    newest = auth(rotated.json()["access_token"])
    assert served.client.get("/workflows", headers=newest).status_code == 401


def test_session_watch_fails_closed_when_the_store_cannot_answer():
    """AUTH-15: when revocations cannot be read (store down, or a read that hangs),
    watched connections close with 1011 once the bound has passed, rather than living
    on unchecked; a hung read is not started again while it hangs."""
    from kailash_nb.middleware._realtime import SessionWatch

    calls: list[list[str]] = []
    release = threading.Event()

    def broken(sessions: list[str]) -> set[str]:
        calls.append(sessions)
        raise OSError("connection refused")

    def hanging(sessions: list[str]) -> set[str]:
        calls.append(sessions)
        release.wait(5)
        return set()

    async def scenario(lookup) -> tuple[list[tuple[int, str]], float]:
        ended: list[tuple[int, str]] = []
        watch = SessionWatch(lambda: lookup, interval=0.05, bound=0.2)
        started = time.monotonic()
        watch.watch("s1", lambda code, reason: ended.append((code, reason)))
        while not ended and time.monotonic() - started < 3:
            await asyncio.sleep(0.01)
        release.set()  # let a hung read end, so the loop's executor can shut down
        await asyncio.sleep(0.2)
        assert watch.watched() == 0
        return ended, time.monotonic() - started

    ended, _ = asyncio.run(scenario(broken))
    assert ended == [(1011, "session check unavailable")] and len(calls) >= 2
    calls.clear()
    release.clear()
    ended, _ = asyncio.run(scenario(hanging))
    assert ended == [(1011, "session check unavailable")] and len(calls) == 1


def test_session_watch_reads_all_sessions_at_once_and_ends_only_the_revoked():
    """One lookup per poll for every watched session; only revoked ones are ended."""
    from kailash_nb.middleware._realtime import SessionWatch

    revoked: set[str] = set()
    calls: list[list[str]] = []

    def lookup(sessions: list[str]) -> set[str]:
        calls.append(sorted(sessions))
        return revoked & set(sessions)

    async def scenario() -> list[tuple[str, int, str]]:
        ended: list[tuple[str, int, str]] = []
        watch = SessionWatch(lambda: lookup, interval=0.02, bound=0.5)
        for session in ("a", "b", "c"):
            watch.watch(session, lambda code, reason, s=session: ended.append((s, code, reason)))
        await asyncio.sleep(0.1)
        revoked.add("b")
        while not ended:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert watch.watched() == 2
        return ended

    assert asyncio.run(scenario()) == [("b", 1008, "session revoked")]
    assert calls[0] == ["a", "b", "c"] and calls[-1] == ["a", "c"]


def test_session_watch_end_all_closes_every_open_websocket(tmp_path):
    """Open WebSockets (with or without a token) are all watched, so a stopping gateway
    can close them with 1001 through ``gateway.session_watch.end_all()``."""
    gateway = create_gateway(database_url=f"sqlite:///{tmp_path / 'open.db'}")
    with ServedGateway(gateway) as server:

        async def scenario() -> list[tuple[int | None, str | None]]:
            url = f"ws://127.0.0.1:{server.port}/ws"
            conns = [await websocket_connect(url) for _ in range(2)]
            assert await _still_open(conns[0])
            assert gateway.session_watch.end_all() == 2
            return [(await _closed(conn))[1:] for conn in conns]

        assert server.call(scenario()) == [(1001, "server shutting down")] * 2
        wait_until(lambda: gateway.session_watch.watched() == 0)
