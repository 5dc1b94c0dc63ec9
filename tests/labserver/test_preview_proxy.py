"""``kailash_nb.labserver`` in a real Jupyter server: a preview published by another
process (a kernel stand-in sharing the runtime directory) opens through the server with
Jupyter's token only, and nothing else does.

One Jupyter server and one preview process serve the whole module; the last test stops
the preview.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import secrets
import stat
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _labserver import JupyterServer, PreviewProcess, free_port, server_env
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.notebook import lab_previews
from kailash_nb.security.config import SecurityConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("labserver-runtime")
    path.chmod(0o700)
    return path


@pytest.fixture(scope="module")
def env(runtime_dir, tmp_path_factory) -> dict[str, str]:
    return server_env(runtime_dir, tmp_path_factory.mktemp("labserver-home"))


@pytest.fixture(scope="module")
def preview(env) -> Iterator[PreviewProcess]:
    process = PreviewProcess(env)
    yield process
    process.close()


@pytest.fixture(scope="module")
def jupyter(env, tmp_path_factory, preview) -> Iterator[JupyterServer]:
    server = JupyterServer(env, tmp_path_factory.mktemp("labserver-root"))
    try:
        server.wait_ready()
        yield server
    finally:
        server.close()


@pytest.fixture
def runtime_previews(runtime_dir, monkeypatch) -> Path:
    """The previews directory of the module's server, for previews this test registers."""
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime_dir))
    return runtime_dir / lab_previews.PREVIEWS_DIRECTORY


def proxied(preview_port: int, path: str) -> str:
    return f"/kailash-nb/previews/{preview_port}/{path}"


# -- the preview's own port ------------------------------------------------------------


def test_a_preview_refuses_a_call_without_its_token(preview):
    response = httpx.post(
        f"http://127.0.0.1:{preview.port}/workflows/quote/execute",
        json={"parameters": {}},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# -- the list --------------------------------------------------------------------------


def test_the_list_names_the_preview_and_no_credential(jupyter, preview, runtime_dir):
    response = jupyter.client.get("/kailash-nb/previews", headers=jupyter.auth)
    assert response.status_code == 200
    (entry,) = [item for item in response.json() if item["port"] == preview.port]
    assert entry["workflows"] == [
        {
            "workflow": "pricing",
            "route": "quote",
            "execute_path": proxied(preview.port, "workflows/quote/execute"),
        }
    ]
    assert entry["docs_path"] == proxied(preview.port, "docs")
    assert entry["openapi_path"] == proxied(preview.port, "openapi.json")
    assert entry["base_path"] == proxied(preview.port, "")
    record = json.loads(
        (runtime_dir / lab_previews.PREVIEWS_DIRECTORY / f"{preview.port}.json").read_text()
    )
    assert record["credential"]["secret"] not in response.text
    assert "credential" not in response.text and "secret" not in response.text
    assert "eyJ" not in response.text  # no token either


def test_the_list_needs_jupyters_token(jupyter, preview):
    assert jupyter.client.get("/kailash-nb/previews").status_code == 403
    wrong = {"Authorization": "token not-the-token"}
    assert jupyter.client.get("/kailash-nb/previews", headers=wrong).status_code == 403


def test_the_registry_file_is_private(jupyter, preview, runtime_dir):
    directory = runtime_dir / lab_previews.PREVIEWS_DIRECTORY
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / f"{preview.port}.json").stat().st_mode) == 0o600


# -- the proxy -------------------------------------------------------------------------


def test_a_workflow_runs_through_the_proxy_with_only_the_jupyter_token(jupyter, preview):
    response = jupyter.client.post(
        proxied(preview.port, "workflows/quote/execute"),
        json={"parameters": {"discount": 0.5}},
        headers={**jupyter.auth, "X-Request-ID": "lab-proxy-1"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"]["invoice"] == {"result": {"total": 9.75}}
    assert response.headers["X-Request-ID"] == "lab-proxy-1"
    assert response.headers["Content-Type"].startswith("application/json")


def test_a_runs_event_stream_passes_through_the_proxy(jupyter, preview):
    run = jupyter.client.post(
        proxied(preview.port, "workflows/quote/execute"),
        json={"parameters": {}},
        headers=jupyter.auth,
    ).json()
    events = jupyter.client.get(
        proxied(preview.port, f"runs/{run['run_id']}/events"),
        headers={**jupyter.auth, "Accept": "text/event-stream"},
    )
    assert events.status_code == 200, events.text
    assert events.headers["Content-Type"].startswith("text/event-stream")
    assert "event: run" in events.text and '"completed"' in events.text


def test_the_proxy_refuses_requests_without_the_jupyter_token(jupyter, preview, runtime_dir):
    """Neither no credential nor the preview's own token (a Bearer token Jupyter does
    not know) gets through Jupyter's authentication."""
    path = proxied(preview.port, "workflows/quote/execute")
    assert jupyter.client.post(path, json={"parameters": {}}).status_code == 403
    assert jupyter.client.get(proxied(preview.port, "docs")).status_code == 403
    record = lab_previews.read_preview(runtime_dir / lab_previews.PREVIEWS_DIRECTORY, preview.port)
    preview_token = {"Authorization": record.credential.authorization()}
    response = jupyter.client.post(path, json={"parameters": {}}, headers=preview_token)
    assert response.status_code == 403


def test_a_cookie_login_posts_only_with_jupyters_xsrf_token(jupyter, preview):
    """As in a browser: ``?token=`` logs in (a cookie), the proxied GET sets ``_xsrf``,
    and a cookie-authenticated POST passes only with the matching ``X-XSRFToken``."""
    path = proxied(preview.port, "workflows/quote/execute")
    with httpx.Client(base_url=jupyter.url, timeout=30) as browser:
        assert browser.get(
            proxied(preview.port, "docs"), params={"token": jupyter.token}
        ).is_success
        xsrf = browser.cookies["_xsrf"]
        assert browser.post(path, json={"parameters": {}}).status_code == 403
        wrong = browser.post(path, json={"parameters": {}}, headers={"X-XSRFToken": "2|0|0|0"})
        assert wrong.status_code == 403
        response = browser.post(path, json={"parameters": {}}, headers={"X-XSRFToken": xsrf})
        assert response.status_code == 200, response.text


def test_the_docs_page_and_document_open_through_the_proxy(jupyter, preview):
    page = jupyter.client.get(proxied(preview.port, "docs"), headers=jupyter.auth)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    # The page's own policy (its script allowed by hash), not Jupyter's API default.
    assert "script-src 'sha256-" in page.headers["Content-Security-Policy"]
    assert 'here("openapi.json")' in page.text
    document = jupyter.client.get(proxied(preview.port, "openapi.json"), headers=jupyter.auth)
    assert document.status_code == 200
    assert "/workflows/quote/execute" in document.json()["paths"]
    head = jupyter.client.head(proxied(preview.port, "health"), headers=jupyter.auth)
    assert head.status_code == 200


def test_an_unregistered_port_is_404(jupyter, preview):
    for port in (jupyter.port, free_port(), 0, 99999):
        response = jupyter.client.get(proxied(port, "docs"), headers=jupyter.auth)
        assert response.status_code == 404, port
    response = jupyter.client.post(
        proxied(jupyter.port, "api/kernels"), json={}, headers=jupyter.auth
    )
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/problem+json")


class _EchoHandler(http.server.BaseHTTPRequestHandler):
    """Answers with what it received, plus headers the proxy must not pass back."""

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "body": self.rfile.read(length).decode() if length else "",
            }
        ).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Set-Cookie", "stolen=1; Path=/")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("X-Preview", "kept")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _echo

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echo_preview(runtime_previews) -> Iterator[tuple[int, SecurityConfig]]:
    """A registered "preview" that echoes requests (registered by this process)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    security = SecurityConfig(jwt_secret=secrets.token_urlsafe(48))
    port = server.server_address[1]
    registration = lab_previews.register(
        port=port,
        host="127.0.0.1",
        workflows=[("echo", "echo")],
        security=security,
        subject="notebook",
        tenant_id="default",
    )
    yield port, security
    registration.remove()
    server.shutdown()
    server.server_close()


def test_the_browsers_credentials_stay_behind(jupyter, echo_preview):
    port, security = echo_preview
    response = jupyter.client.post(
        proxied(port, "workflows/a%2Fb/execute") + "?token=" + jupyter.token + "&x=1",
        content=b'{"parameters": {}}',
        headers={
            **jupyter.auth,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Cookie": "username-127-0-0-1=secret-cookie; _xsrf=abc",
            "X-XSRFToken": "abc",
            "X-Request-ID": "req-7",
            "X-Other": "not forwarded",
        },
    )
    assert response.status_code == 201, response.text
    echoed = response.json()
    assert echoed["method"] == "POST" and echoed["body"] == '{"parameters": {}}'
    assert echoed["path"] == "/workflows/a%2Fb/execute?x=1"  # raw path; Jupyter's token gone
    headers = echoed["headers"]
    assert "cookie" not in headers and "x-xsrftoken" not in headers and "x-other" not in headers
    assert jupyter.token not in json.dumps(echoed)
    assert headers["content-type"] == "application/json" and headers["x-request-id"] == "req-7"
    scheme, token = headers["authorization"].split(" ")
    claims = KailashJWTAuth(config=security, store_url="sqlite://").verify_token(token)
    assert scheme == "Bearer" and claims.sub == "notebook"
    # Jupyter may set its own login cookie (the ?token= above); the preview's is dropped.
    assert not any("stolen" in value for value in response.headers.get_list("set-cookie"))
    # The preview's CORS answer is dropped; Jupyter's own settings apply to its origin.
    assert response.headers.get_list("access-control-allow-origin") in ([], [""])
    assert response.headers["X-Preview"] == "kept"


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_every_method_is_forwarded_as_it_came(jupyter, echo_preview, method):
    port, _ = echo_preview
    body = b'{"a": 1}' if method in ("PUT", "PATCH") else None
    response = jupyter.client.request(
        method, proxied(port, "sessions/s1"), content=body, headers=jupyter.auth
    )
    assert response.status_code == 201, response.text
    echoed = response.json()
    assert echoed["method"] == method and echoed["path"] == "/sessions/s1"
    assert echoed["body"] == (body or b"").decode()


def test_a_registered_preview_that_does_not_answer_is_502(jupyter, runtime_previews):
    port = free_port()
    registration = lab_previews.register(
        port=port,
        host="127.0.0.1",
        workflows=[("gone", "gone")],
        security=SecurityConfig(jwt_secret=secrets.token_urlsafe(48)),
        subject="notebook",
        tenant_id="default",
    )
    try:
        response = jupyter.client.get(proxied(port, "docs"), headers=jupyter.auth)
    finally:
        registration.remove()
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 502 and problem["port"] == port
    assert str(port) in problem["detail"]


def test_a_stale_registration_is_not_listed_and_is_removed(jupyter, runtime_previews):
    """A file whose process is gone (the same pid started at another time counts as
    gone) is ignored and deleted."""
    port = free_port()
    registration = lab_previews.register(
        port=port,
        host="127.0.0.1",
        workflows=[("old", "old")],
        security=SecurityConfig(jwt_secret=secrets.token_urlsafe(48)),
        subject="notebook",
        tenant_id="default",
    )
    data = json.loads(registration.path.read_text())
    data["process"] = f"{os.getpid()}:1"
    registration.path.write_text(json.dumps(data))
    listed = jupyter.client.get("/kailash-nb/previews", headers=jupyter.auth).json()
    assert port not in [item["port"] for item in listed]
    assert not registration.path.exists()
    assert jupyter.client.get(proxied(port, "docs"), headers=jupyter.auth).status_code == 404


KERNEL_CELLS = [
    """
import kailash_nb as kn
kn.workflow("kernel_pricing")

@kn.node
def total(qty=1):
    return {"total": qty * 4}

preview = kn.publish("kernel_pricing", route="/kq", preview=True)
""",
    "await preview.ready(); print(preview.base_url)",
]


async def run_in_kernel(server: JupyterServer, kernel_id: str, code: str) -> str:
    """Execute ``code`` in a kernel over the server's websocket; its stdout (raises on an
    error reply)."""
    ws_url = server.url.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
    connection = await websocket_connect(HTTPRequest(ws_url, headers=server.auth))
    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "username": "test",
        "session": uuid.uuid4().hex,
        "msg_type": "execute_request",
        "version": "5.3",
    }
    content = {"code": code, "silent": False, "store_history": False, "allow_stdin": False}
    message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
    await connection.write_message(json.dumps({**message, "channel": "shell"}))
    output = []
    try:
        while True:
            raw = await asyncio.wait_for(connection.read_message(), 60)
            assert raw is not None, "the kernel's websocket closed"
            reply = json.loads(raw)
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if reply["msg_type"] == "stream":
                output.append(reply["content"]["text"])
            if reply["msg_type"] == "execute_reply":
                assert reply["content"]["status"] == "ok", reply["content"]
                return "".join(output)
    finally:
        connection.close()


def test_a_preview_published_in_a_real_kernel_opens_through_the_server(jupyter):
    """A kernel started by the server publishes a preview: it is listed with the kernel's
    id, runs through the proxy, and is gone once the kernel is shut down."""
    kernel = jupyter.client.post("/api/kernels", json={"name": "python3"}, headers=jupyter.auth)
    assert kernel.status_code == 201, kernel.text
    kernel_id = kernel.json()["id"]
    try:
        for cell in KERNEL_CELLS:
            output = asyncio.run(run_in_kernel(jupyter, kernel_id, cell))
        port = int(output.strip().rsplit(":", 1)[1])
        listed = jupyter.client.get("/kailash-nb/previews", headers=jupyter.auth).json()
        (entry,) = [item for item in listed if item["port"] == port]
        assert entry["kernel_id"] == kernel_id
        response = jupyter.client.post(
            entry["workflows"][0]["execute_path"],
            json={"parameters": {"qty": 3}},
            headers=jupyter.auth,
        )
        assert response.status_code == 200, response.text
        assert response.json()["results"]["total"] == {"result": {"total": 12}}
    finally:
        deleted = jupyter.client.request(
            "DELETE", f"/api/kernels/{kernel_id}", headers=jupyter.auth
        )
        assert deleted.status_code == 204
    listed = jupyter.client.get("/kailash-nb/previews", headers=jupyter.auth).json()
    assert port not in [item["port"] for item in listed]
    assert jupyter.client.get(proxied(port, "docs"), headers=jupyter.auth).status_code == 404


# -- last: the preview stops -------------------------------------------------------------


def test_after_the_preview_stops_it_is_unregistered_and_not_proxied(jupyter, preview, runtime_dir):
    preview.stop_preview()
    assert not (runtime_dir / lab_previews.PREVIEWS_DIRECTORY / f"{preview.port}.json").exists()
    listed = jupyter.client.get("/kailash-nb/previews", headers=jupyter.auth).json()
    assert preview.port not in [item["port"] for item in listed]
    response = jupyter.client.post(
        proxied(preview.port, "workflows/quote/execute"),
        json={"parameters": {}},
        headers=jupyter.auth,
    )
    assert response.status_code == 404
