"""``RealtimeMiddleware``: webhooks POSTed to a real local HTTP server, signed with the
secret, failures reported as failures; event streams scoped to their owner."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kailash_nb.middleware import AgentUIMiddleware, RealtimeMiddleware
from kailash_nb.middleware.agent_ui import SessionNotFoundError
from kailash_nb.middleware.realtime import StreamOverflowError
from kailash_nb.middleware.webhooks import verify_webhook_signature
from tests.middleware._agent_ui_helpers import doubling, wait_for_status

SECRET = "whsec-test-0123456789abcdef"


class Receiver:
    """A real HTTP server on a free loopback port recording every POST."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def agent_ui(tmp_path):
    return AgentUIMiddleware(f"sqlite:///{tmp_path / 'sessions.db'}")


async def _run_once(agent_ui, session, realtime) -> dict:
    await agent_ui.register_workflow("double", doubling(), session_id=session)
    run = await agent_ui.execute(session, "double", {"double": {"x": 1}})
    status = await wait_for_status(agent_ui, run, session)
    await agent_ui.settled()
    return status


def test_signed_delivery_to_a_real_server(agent_ui, receiver):
    async def scenario() -> None:
        realtime = RealtimeMiddleware(agent_ui, allow_private_network=True)
        await realtime.initialize()
        session = await agent_ui.create_session("acme:alice")
        realtime.register_webhook(
            "crm", receiver.url, secret=SECRET, event_types=["workflow.completed"]
        )
        status = await _run_once(agent_ui, session, realtime)
        assert len(receiver.requests) == 1
        headers, body = receiver.requests[0]
        assert verify_webhook_signature(
            SECRET, body, headers["X-Kailash-Timestamp"], headers["X-Kailash-Signature"]
        )
        assert not verify_webhook_signature(
            "another-secret", body, headers["X-Kailash-Timestamp"], headers["X-Kailash-Signature"]
        )
        assert not verify_webhook_signature(
            SECRET, body + b" ", headers["X-Kailash-Timestamp"], headers["X-Kailash-Signature"]
        )
        payload = json.loads(body)
        assert payload["webhook_id"] == headers["X-Kailash-Webhook-Id"] == "crm"
        assert payload["delivery_id"] == headers["X-Kailash-Delivery-Id"]
        assert payload["event"]["type"] == "workflow.completed"
        assert payload["event"]["execution_id"] == status["execution_id"]
        assert payload["event"]["session_id"] == session
        stats = realtime.get_stats()
        assert stats["webhook_stats"] == {
            "total_attempts": 1,
            "successful_deliveries": 1,
            "failed_deliveries": 0,
        }
        assert SECRET not in json.dumps(stats, default=str)
        await realtime.close()

    asyncio.run(scenario())


def test_an_error_answer_is_a_failed_delivery(agent_ui):
    server = Receiver(status=500)

    async def scenario() -> None:
        realtime = RealtimeMiddleware(agent_ui, allow_private_network=True, webhook_retries=1)
        session = await agent_ui.create_session("acme:alice")
        realtime.register_webhook("down", server.url, secret=SECRET)
        # The completion event went to the webhook once; deliver it once more directly.
        results = await realtime.deliver_event((await _collect_one(agent_ui, session, realtime))[0])
        assert results and not results[0]["success"]
        assert results[0]["status_code"] == 500 and results[0]["error"] == "HTTP 500"
        stats = realtime.get_stats()["webhook_stats"]
        assert stats["successful_deliveries"] == 0
        assert stats["failed_deliveries"] == stats["total_attempts"] > 0
        assert len(server.requests) == 2 * stats["total_attempts"]  # one retry each
        await realtime.close()

    try:
        asyncio.run(scenario())
    finally:
        server.close()


async def _collect_one(agent_ui, session, realtime) -> list:
    seen: list = []
    await agent_ui.subscribe_to_events("one", seen.append, session, ["workflow.completed"])
    await _run_once(agent_ui, session, realtime)
    return seen


def test_unreachable_and_refused_destinations_fail(agent_ui, receiver):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    async def scenario() -> None:
        reachable = RealtimeMiddleware(agent_ui, allow_private_network=True, webhook_retries=0)
        reachable.register_webhook("gone", f"http://127.0.0.1:{closed_port}/hook")
        guarded = RealtimeMiddleware(agent_ui)  # default: public addresses only (WF-09)
        guarded.register_webhook("internal", receiver.url)
        session = await agent_ui.create_session("acme:alice")
        completed = (await _collect_one(agent_ui, session, reachable))[0]
        gone = await reachable.deliver_event(completed)
        refused = await guarded.deliver_event(completed)
        assert not gone[0]["success"] and gone[0]["status_code"] is None
        assert "ConnectError" in gone[0]["error"] or "connect" in gone[0]["error"].lower()
        assert not refused[0]["success"] and "127.0.0.1" in refused[0]["error"]
        assert receiver.requests == []
        assert guarded.get_stats()["webhook_stats"]["successful_deliveries"] == 0

    asyncio.run(scenario())


def test_webhooks_receive_only_their_owners_events(agent_ui, receiver):
    async def scenario() -> None:
        realtime = RealtimeMiddleware(agent_ui, allow_private_network=True)
        alice = await agent_ui.create_session("acme:alice")
        eve = await agent_ui.create_session("globex:eve")
        realtime.register_webhook(
            "alice", receiver.url, event_types=["workflow.completed"], user_id="acme:alice"
        )
        # Alice's session id without its owner names the anonymous owner's: nothing.
        realtime.register_webhook("spy", receiver.url + "?spy", session_id=str(alice))
        realtime.register_webhook(
            "session", receiver.url + "?session", session_id=alice, event_types=["session.closed"]
        )
        for session in (alice, eve):
            await _run_once(agent_ui, session, realtime)
        await agent_ui.close_session(eve)
        await agent_ui.close_session(alice)
        await agent_ui.settled()
        bodies = receiver.bodies()
        assert sorted(body["webhook_id"] for body in bodies) == ["alice", "session"]
        assert {body["event"]["user_id"] for body in bodies} == {"acme:alice"}

        realtime.unregister_webhook("alice")
        realtime.unregister_webhook("session")
        await _run_once(agent_ui, await agent_ui.create_session("acme:alice"), realtime)
        assert len(receiver.requests) == 2

    asyncio.run(scenario())


def test_registration_is_checked(agent_ui):
    realtime = RealtimeMiddleware(agent_ui)
    for url in ("ftp://example.com/x", "example.com/hook", "http://exa mple.com/"):
        with pytest.raises(ValueError, match="url"):
            realtime.register_webhook("w", url)
    with pytest.raises(ValueError, match="set by the webhook delivery"):
        realtime.register_webhook("w", "https://example.com/", headers={"X-Kailash-Signature": "x"})
    with pytest.raises(ValueError, match="line breaks"):
        realtime.register_webhook("w", "https://example.com/", headers={"X-A": "1\r\nX-B: 2"})
    with pytest.raises(ValueError, match="unknown event type"):
        realtime.register_webhook("w", "https://example.com/", event_types=["done"])
    with pytest.raises(RuntimeError, match="disabled"):
        RealtimeMiddleware(agent_ui, enable_webhooks=False).register_webhook("w", "https://a.io/")
    with pytest.raises(TypeError, match="AgentUIMiddleware"):
        RealtimeMiddleware(object())


def test_sse_and_websocket_streams_are_scoped(agent_ui):
    async def scenario() -> None:
        realtime = RealtimeMiddleware(agent_ui)
        alice = await agent_ui.create_session("acme:alice")
        frames = realtime.create_sse_stream(session_id=alice, event_types=["workflow.completed"])
        reader = asyncio.ensure_future(frames.__anext__())
        await asyncio.sleep(0)  # the stream subscribes on its first read
        await _run_once(agent_ui, alice, realtime)
        frame = await asyncio.wait_for(reader, 5)
        assert frame.startswith("id: ") and "\nevent: workflow.completed\ndata: {" in frame
        assert json.loads(frame.split("data: ", 1)[1])["session_id"] == alice
        await frames.aclose()
        assert realtime.get_stats()["open_streams"] == 0

        with pytest.raises(SessionNotFoundError):
            await realtime.stream(session_id=str(alice)).__anext__()
        with pytest.raises(RuntimeError, match="disabled"):
            await RealtimeMiddleware(agent_ui, enable_sse=False).create_sse_stream().__anext__()

    asyncio.run(scenario())


def test_a_stream_whose_reader_falls_behind_ends(agent_ui, monkeypatch):
    monkeypatch.setattr("kailash_nb.middleware.realtime.STREAM_CAPACITY", 2)

    async def scenario() -> None:
        realtime = RealtimeMiddleware(agent_ui)
        events = realtime.stream()
        first = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0)
        for name in ("a", "b", "c", "d"):
            await agent_ui.create_session(f"acme:{name}")
        await first
        with pytest.raises(StreamOverflowError):
            while True:
                await events.__anext__()

    asyncio.run(scenario())
