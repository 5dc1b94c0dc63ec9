"""HTTPRequestNode and AsyncHTTPRequestNode against a real HTTP server on 127.0.0.1.

Each test gets its own ``ThreadingHTTPServer`` on a free port. The socket listens as
soon as the server is constructed, so requests queue until ``serve_forever`` picks
them up: nothing waits for readiness. The server counts calls per path, which is how
retries are proven.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from kailash_nb import LocalRuntime, WorkflowBuilder
from kailash_nb.nodes.api import AsyncHTTPRequestNode, HTTPRequestNode
from kailash_nb.nodes.registry import NodeRegistry
from kailash_nb.sdk_exceptions import (
    NodeConfigurationError,
    NodeExecutionError,
    NodeValidationError,
)

NODE_CLASSES = [HTTPRequestNode, AsyncHTTPRequestNode]
FAST = {"backoff_factor": 0.0}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.calls: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.release = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self, path: str) -> int:
        with self.lock:
            self.calls[path] += 1
            return self.calls[path]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out has gone; writing the late answer then fails.
        pass


class _Handler(BaseHTTPRequestHandler):
    """Routes by first path segment; every response has a Content-Length (keep-alive)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass

    def handle_any(self) -> None:
        path, _, query_string = self.path.partition("?")
        self.query = {key: values[-1] for key, values in parse_qs(query_string).items()}
        calls = self.server.count(path)
        segments = path.strip("/").split("/")
        route = getattr(self, "route_" + segments[0], self.route_status)
        route(calls, *segments[1:])

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any

    def reply(
        self,
        status: int,
        body: Any = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        if not isinstance(body, bytes):
            body = (
                json.dumps(body).encode() if content_type == "application/json" else body.encode()
            )
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def route_json(self, calls: int) -> None:
        self.reply(200, {"hello": "world"})

    def route_text(self, calls: int) -> None:
        self.reply(200, "plain text", "text/plain; charset=utf-8")

    def route_bytes(self, calls: int) -> None:
        self.reply(200, b"\x00\x01\xff", "application/octet-stream")

    def route_echo(self, calls: int) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        is_json = self.headers.get("Content-Type") == "application/json"
        echoed = {
            "method": self.command,
            "query": self.query,
            "headers": {name.lower(): value for name, value in self.headers.items()},
            "body": body,
            "json": json.loads(body) if is_json else None,
        }
        self.reply(200, echoed, headers={"X-Served-By": "test-server"})

    def route_status(self, calls: int, code: str = "404") -> None:
        self.reply(int(code), {"status": int(code)})

    def route_flaky(self, calls: int) -> None:
        if calls <= int(self.query["fail"]):
            self.reply(500, {"error": "try again"})
        else:
            self.reply(200, {"calls": calls})

    def route_busy(self, calls: int) -> None:
        if calls == 1:
            status = int(self.query.get("status", "503"))
            self.reply(status, {"busy": True}, headers={"Retry-After": self.query["after"]})
        else:
            self.reply(200, {"calls": calls})

    def route_redirect(self, calls: int, hops: str) -> None:
        if int(hops) == 0:
            self.reply(200, {"arrived": True})
        else:
            self.reply(302, {}, headers={"Location": f"/redirect/{int(hops) - 1}"})

    def route_slow(self, calls: int) -> None:
        self.server.release.wait(5)
        self.reply(200, {"late": True})

    def route_port(self, calls: int) -> None:
        self.reply(200, {"client_port": self.client_address[1]})


@pytest.fixture
def server():
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture(params=NODE_CLASSES, ids=["sync", "async"])
def node_class(request):
    """The node class, allowed to reach the loopback test server: HTTP nodes refuse
    private addresses unless the workflow author allows them (WF-09, test_ssrf.py)."""
    return functools.partial(request.param, allow_private_network=True)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- requests and responses ---------------------------------------------------------


def test_get_json(server, node_class):
    outputs = node_class(url=f"{server.base_url}/json").execute()
    assert outputs["status_code"] == 200
    assert outputs["content"] == {"hello": "world"}
    assert outputs["success"] is True
    assert outputs["url"] == f"{server.base_url}/json"
    assert outputs["headers"]["content-type"] == "application/json"
    assert outputs["attempts"] == 1
    assert 0 <= outputs["elapsed"] < 5


def test_post_json_is_echoed(server, node_class):
    node = node_class(url=f"{server.base_url}/echo", method="post")
    outputs = node.execute(json={"items": [1, 2], "name": "x"})
    assert outputs["content"]["method"] == "POST"
    assert outputs["content"]["json"] == {"items": [1, 2], "name": "x"}
    assert outputs["headers"]["x-served-by"] == "test-server"


def test_data_is_sent_as_form_fields_or_raw_body(server, node_class):
    node = node_class(url=f"{server.base_url}/echo", method="PUT")
    form = node.execute(data={"a": "1", "b": "two"})["content"]
    assert form["body"] == "a=1&b=two"
    assert form["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert node.execute(data="raw body")["content"]["body"] == "raw body"


def test_text_and_bytes_responses(server, node_class):
    assert node_class(url=f"{server.base_url}/text").execute()["content"] == "plain text"
    raw = node_class(url=f"{server.base_url}/bytes", response_format="bytes").execute()
    assert raw["content"] == b"\x00\x01\xff"
    as_text = node_class(url=f"{server.base_url}/json", response_format="text").execute()
    assert json.loads(as_text["content"]) == {"hello": "world"}


def test_json_format_on_a_non_json_success_raises(server, node_class):
    node = node_class(url=f"{server.base_url}/text", response_format="json", id="fetch")
    with pytest.raises(NodeExecutionError, match=r"'fetch'.*not JSON.*response_format='text'"):
        node.execute()


def test_query_params_merge_with_the_urls_own_query(server, node_class):
    node = node_class(url=f"{server.base_url}/echo?a=1&b=2", params={"b": "3", "c": 4})
    assert node.execute()["content"]["query"] == {"a": "1", "b": "3", "c": "4"}


def test_headers_are_sent(server, node_class):
    outputs = node_class(url=f"{server.base_url}/echo", headers={"X-Trace": "abc"}).execute()
    assert outputs["content"]["headers"]["x-trace"] == "abc"


def test_head_request_has_empty_content(server, node_class):
    outputs = node_class(url=f"{server.base_url}/text", method="HEAD").execute()
    assert (outputs["status_code"], outputs["content"]) == (200, "")


def test_404_is_returned_with_success_false(server, node_class):
    outputs = node_class(url=f"{server.base_url}/status/404", **FAST).execute()
    assert outputs["status_code"] == 404
    assert outputs["success"] is False
    assert outputs["content"] == {"status": 404}
    assert server.calls["/status/404"] == 1


# -- retries --------------------------------------------------------------------------


def test_500_twice_then_200_succeeds_with_two_retries(server, node_class):
    outputs = node_class(url=f"{server.base_url}/flaky?fail=2", retries=2, **FAST).execute()
    assert outputs["success"] is True
    assert outputs["content"] == {"calls": 3}
    assert outputs["attempts"] == 3
    assert server.calls["/flaky"] == 3


def test_retries_back_off_exponentially(server, node_class):
    node = node_class(url=f"{server.base_url}/flaky?fail=2", retries=2, backoff_factor=0.05)
    assert node.execute()["elapsed"] >= 0.05 + 0.1


def test_500_always_is_returned_after_the_retries(server, node_class):
    outputs = node_class(url=f"{server.base_url}/status/500", retries=2, **FAST).execute()
    assert (outputs["status_code"], outputs["success"], outputs["attempts"]) == (500, False, 3)
    assert server.calls["/status/500"] == 3


def test_retries_zero_sends_once(server, node_class):
    outputs = node_class(url=f"{server.base_url}/flaky?fail=1", retries=0).execute()
    assert outputs["status_code"] == 500
    assert server.calls["/flaky"] == 1


def test_501_is_not_retried(server, node_class):
    outputs = node_class(url=f"{server.base_url}/status/501", retries=2, **FAST).execute()
    assert outputs["status_code"] == 501
    assert server.calls["/status/501"] == 1


@pytest.mark.parametrize(
    ("status", "retry_after"),
    [("503", "0"), ("429", "0"), ("503", "Wed, 21 Oct 2015 07:28:00 GMT")],
    ids=["503-seconds", "429-seconds", "503-past-date"],
)
def test_retry_after_replaces_the_backoff(server, node_class, status, retry_after):
    # A 10 s backoff would show: Retry-After says retry now.
    url = f"{server.base_url}/busy?status={status}&after={retry_after}"
    outputs = node_class(url=url, retries=1, backoff_factor=10).execute()
    assert outputs["content"] == {"calls": 2}
    assert outputs["elapsed"] < 5
    assert server.calls["/busy"] == 2


def test_retry_after_wait_is_honored(server, node_class):
    outputs = node_class(url=f"{server.base_url}/busy?after=0.3", retries=1, **FAST).execute()
    assert outputs["success"] is True
    assert outputs["elapsed"] >= 0.3


def test_retry_after_wait_is_capped(server, node_class):
    url = f"{server.base_url}/busy?after=3600"
    outputs = node_class(url=url, retries=1, max_retry_wait=0.05).execute()
    assert outputs["success"] is True
    assert 0.05 <= outputs["elapsed"] < 5
    assert server.calls["/busy"] == 2


# -- redirects ------------------------------------------------------------------------


def test_redirects_are_followed(server, node_class):
    outputs = node_class(url=f"{server.base_url}/redirect/3").execute()
    assert outputs["content"] == {"arrived": True}
    assert outputs["url"] == f"{server.base_url}/redirect/0"


def test_too_many_redirects_raise(server, node_class):
    node = node_class(url=f"{server.base_url}/redirect/4", max_redirects=2, id="hop")
    with pytest.raises(NodeExecutionError, match=r"'hop'.*GET .*/redirect/4 .*max_redirects=2"):
        node.execute()
    assert server.calls["/redirect/4"] == 1


def test_redirect_is_returned_when_not_followed(server, node_class):
    outputs = node_class(url=f"{server.base_url}/redirect/1", follow_redirects=False).execute()
    assert (outputs["status_code"], outputs["success"]) == (302, False)
    assert outputs["headers"]["location"] == "/redirect/0"


# -- failures without a response ------------------------------------------------------


def test_timeout_raises_after_the_retries(server, node_class):
    node = node_class(url=f"{server.base_url}/slow", timeout=0.1, retries=1, id="slow", **FAST)
    with pytest.raises(NodeExecutionError) as caught:
        node.execute()
    message = str(caught.value)
    assert "'slow'" in message and f"GET {server.base_url}/slow" in message
    assert "timed out" in message and "2 attempt(s)" in message
    assert server.calls["/slow"] == 2


def test_unreachable_port_raises_naming_the_url(closed_port, node_class):
    url = f"http://127.0.0.1:{closed_port}/api"
    node = node_class(url=url, retries=1, id="down", **FAST)
    with pytest.raises(NodeExecutionError, match="could not connect") as caught:
        node.execute()
    expected = f"node 'down' ({node_class.func.__name__}): GET {url} failed after 2"
    assert expected in str(caught.value)
    assert type(caught.value.__cause__).__name__ == "ConnectError"


@pytest.mark.parametrize("url", ["ftp://example.com/file", "not a url", "http://127.0.0.1:x/"])
def test_invalid_url_raises(node_class, url):
    with pytest.raises(NodeExecutionError, match="URL"):
        node_class(url=url, retries=0).execute()


def test_credentials_never_appear_in_errors(closed_port, node_class):
    secrets = ("alice", "s3cr3t", "abc123", "k3y-value")
    urls = [
        f"http://alice:s3cr3t@127.0.0.1:{closed_port}/x?token=abc123&page=2#frag",
        "http://alice:s3cr3t@127.0.0.1:notaport/x?token=abc123&page=2",
    ]
    for url in urls:
        node = node_class(url=url, params={"api_key": "k3y-value"}, retries=0)
        with pytest.raises(NodeExecutionError) as caught:
            node.execute()
        message = str(caught.value)
        assert not [secret for secret in secrets if secret in message], message
        assert "127.0.0.1:" in message and "token=***" in message and "page=2" in message


def test_userinfo_becomes_basic_auth_and_leaves_the_output_url(server, node_class):
    base = server.base_url.replace("http://", "http://alice:s3cr3t@")
    outputs = node_class(url=f"{base}/echo").execute()
    assert outputs["content"]["headers"]["authorization"].startswith("Basic ")
    assert outputs["url"] == f"{server.base_url}/echo"


# -- configuration --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"method": "FETCH"}, "method 'FETCH' is not supported"),
        ({"method": "GTE"}, "did you mean 'GET'"),
        ({"response_format": "xml"}, "response_format 'xml'"),
        ({"retries": -1}, "retries must be 0 or more"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"json": {"a": 1}, "data": "x"}, "either 'json' or 'data'"),
        ({"wrong": 1}, "has no parameter 'wrong'"),
    ],
)
def test_invalid_configuration_fails_at_build(node_class, config, expected):
    with pytest.raises(NodeConfigurationError, match=expected):
        node_class(url="http://127.0.0.1/", **config)


def test_invalid_method_fails_workflow_build():
    builder = WorkflowBuilder()
    builder.add_node("HTTPRequestNode", "fetch", {"url": "http://127.0.0.1/", "method": "FETCH"})
    with pytest.raises(NodeConfigurationError, match=r"'fetch'.*method 'FETCH'"):
        builder.build()


def test_invalid_method_at_run_time_is_a_validation_error(node_class):
    with pytest.raises(NodeValidationError, match="method 'FETCH'"):
        node_class(url="http://127.0.0.1/").execute(method="FETCH")


def test_nodes_are_registered_builtins():
    assert NodeRegistry.get("HTTPRequestNode") is HTTPRequestNode
    assert NodeRegistry.get("AsyncHTTPRequestNode") is AsyncHTTPRequestNode
    assert AsyncHTTPRequestNode.is_async and not HTTPRequestNode.is_async


# -- connection pooling ---------------------------------------------------------------


def test_runs_of_one_node_reuse_the_connection(server, node_class):
    node = node_class(url=f"{server.base_url}/port")
    first, second = node.execute()["content"], node.execute()["content"]
    assert first == second


def test_close_releases_connections_and_later_runs_reconnect(server):
    node = HTTPRequestNode(url=f"{server.base_url}/port", allow_private_network=True)
    first = node.execute()["content"]
    node.close()
    assert node.execute()["content"] != first


def test_async_node_gets_a_client_per_event_loop(server):
    node = AsyncHTTPRequestNode(url=f"{server.base_url}/json", allow_private_network=True)

    async def fetch_twice_then_close() -> list[Any]:
        outputs = [(await node.execute_async())["content"] for _ in range(2)]
        await node.aclose()
        return outputs

    # Each asyncio.run is a new loop; a client from the previous loop would fail here.
    for _ in range(2):
        assert asyncio.run(fetch_twice_then_close()) == [{"hello": "world"}] * 2


# -- in workflows ---------------------------------------------------------------------


@pytest.mark.parametrize("node_type", ["HTTPRequestNode", "AsyncHTTPRequestNode"])
def test_node_in_a_workflow_under_local_runtime(server, node_type):
    builder = WorkflowBuilder()
    builder.add_node(node_type, "fetch", {"method": "POST", "allow_private_network": True})
    builder.add_node("PythonCodeNode", "pick", {"code": "result = body['json']['n'] * 2"})
    builder.add_connection("fetch", "content", "pick", "body")
    parameters = {"fetch": {"url": f"{server.base_url}/echo", "json": {"n": 21}}}
    results, _ = LocalRuntime().execute(builder.build(), parameters)
    assert results["fetch"]["status_code"] == 200
    assert results["pick"]["result"] == 42


def test_failed_request_in_a_workflow_is_recorded_without_credentials(closed_port):
    builder = WorkflowBuilder()
    url = f"http://alice:s3cr3t@127.0.0.1:{closed_port}/x"
    config = {"url": url, "retries": 0, "allow_private_network": True}
    builder.add_node("AsyncHTTPRequestNode", "fetch", config)
    results, _ = LocalRuntime().execute(builder.build())
    assert results["fetch"]["failed"] is True
    assert results["fetch"]["error_type"] == "ConnectError"
    assert "s3cr3t" not in results["fetch"]["error"]
    assert f"127.0.0.1:{closed_port}/x" in results["fetch"]["error"]
