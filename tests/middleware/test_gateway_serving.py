"""Gateway serving details: CORS, failed runs, and ``run()`` stopping on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from kailash_nb import WorkflowBuilder
from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.nodes.code import PythonCodeNode


def fail(x: int) -> int:
    """Always fails."""
    raise ValueError("no luck")


def echo(value: int) -> int:
    """Returns its input."""
    return value


@pytest.fixture
def open_gateway(sqlite_url, serve_gateway):
    """A served gateway without auth, with one CORS origin and a workflow that fails."""
    gateway = create_gateway(cors_origins=["https://app.company.com"], database_url=sqlite_url)
    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(fail), "fail")
    builder.add_node(PythonCodeNode.from_function(echo), "echo")
    builder.connect("fail", "echo", mapping={"result": "value"})
    gateway.register_workflow("failing", builder.build())
    return serve_gateway(gateway)


def test_cors_preflight_echoes_listed_origins_only(open_gateway):
    """GW-20, GW-21: only listed origins are echoed; look-alikes and ``null`` get none."""
    client = open_gateway.client
    ok = client.options(
        "/workflows/failing/execute",
        headers={
            "Origin": "https://app.company.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert ok.status_code == 204
    assert ok.headers["Access-Control-Allow-Origin"] == "https://app.company.com"
    assert "Origin" in ok.headers["Vary"]
    for origin in ("https://app.company.com.evil.io", "null", "https://evilcompany.com"):
        refused = client.options(
            "/workflows/failing/execute",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        )
        assert refused.status_code == 403
        assert "Access-Control-Allow-Origin" not in refused.headers
    simple = client.get("/health", headers={"Origin": "https://app.company.com"})
    assert simple.headers["Access-Control-Allow-Origin"] == "https://app.company.com"
    assert (
        "Access-Control-Allow-Origin"
        not in client.get("/health", headers={"Origin": "https://evil.example"}).headers
    )


def test_a_failed_run_is_422_with_its_run_id(open_gateway):
    response = open_gateway.client.post(
        "/workflows/failing/execute", json={"parameters": {"fail": {"x": 1}}}
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "run_failed" and body["node_id"] == "fail"
    run = open_gateway.client.get(body["run_url"]).json()
    assert run["status"] == "failed" and run["error"]["node_id"] == "fail"
    assert "Traceback" not in response.text


def test_run_serves_until_sigterm_then_exits_cleanly(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = textwrap.dedent(
        f"""
        import logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        from kailash_nb.api.middleware import create_gateway
        gateway = create_gateway(database_url="sqlite:///{tmp_path / "run.db"}")
        gateway.run(host="127.0.0.1", port={port})
        print("stopped", flush=True)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        for line in process.stderr:
            if "serving on" in line:
                break
        import httpx

        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=15)
        assert process.returncode == 0
        assert "stopped" in stdout
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _raw(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head)
        return connection.recv(65536)


def test_connections_beyond_max_connections_are_closed(sqlite_url, serve_gateway):
    """GW-19: connections beyond ``max_connections`` are closed at once."""
    server = serve_gateway(create_gateway(max_connections=1, database_url=sqlite_url))
    first = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        first.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        assert first.recv(65536).startswith(b"HTTP/1.1 200")  # registered and kept alive
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as second:
            assert second.recv(65536) == b""  # closed by the server at once
    finally:
        first.close()


def test_content_length_with_transfer_encoding_is_400(open_gateway):
    """GW-03: Content-Length with Transfer-Encoding answers 400."""
    answer = _raw(
        open_gateway.port,
        b"POST /workflows/failing/execute HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
        b"\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 400")


def test_new_runs_are_refused_while_stopping(open_gateway):
    open_gateway.gateway.stopping = True
    try:
        response = open_gateway.client.post(
            "/workflows/failing/execute", json={"parameters": {"fail": {"x": 1}}}
        )
        assert response.status_code == 503 and response.json()["code"] == "shutting_down"
        assert response.headers["Retry-After"] == "5"
        assert open_gateway.client.get("/ready").status_code == 503
    finally:
        open_gateway.gateway.stopping = False


def test_compression_and_one_json_access_record_per_request(sqlite_url, serve_gateway, caplog):
    """GW-14: one JSON access record per request, control characters escaped."""
    import json

    server = serve_gateway(create_gateway(enable_compression=True, database_url=sqlite_url))
    with caplog.at_level("INFO", "kailash_nb.middleware.access"):
        response = server.client.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.json()["openapi"].startswith("3.1")
        server.client.get("/workflows/bad%0D%0Aname%1b[31m")

        def access_records() -> list:
            return [r for r in caplog.records if r.name.endswith("access")]

        # The server thread writes the access record after the response has gone out.
        deadline = time.monotonic() + 10
        while len(access_records()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    records = [json.loads(r.getMessage()) for r in access_records()]
    assert [r["route"] for r in records] == ["/openapi.json", "unmatched"]
    assert all("\n" not in r.getMessage() for r in caplog.records if r.name.endswith("access"))
