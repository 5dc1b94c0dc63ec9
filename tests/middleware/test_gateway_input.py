"""Hostile request input against a real gateway on a free 127.0.0.1 port (checklist 3.3):
body framing and size (GW-02, GW-03), strict JSON (GW-04..GW-09), names (GW-10), media
type and method (GW-11, GW-12), the echoed request id (GW-13), access records (GW-14),
forwarding headers (GW-15), header limits (GW-18, AUTH-21), refusal floods (GW-29) and
unhandled errors (GW-30).

Requests an HTTP client would normalise or refuse to send go over raw sockets.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
import uuid

import pytest
from _gateway_server import ServedGateway

from kailash_nb import WorkflowBuilder
from kailash_nb.middleware._json_body import parse_json_body
from kailash_nb.middleware._problems import ProblemError
from kailash_nb.nodes.code import PythonCodeNode

PROBLEM_BASE = "https://kailash-nb.dev/problems/"
ACCESS_LOGGER = "kailash_nb.middleware.access"


def double(x: int) -> int:
    """Twice x."""
    return x * 2


@pytest.fixture(scope="module")
def make_gateway(secured_gateway, security_config):
    """Factory: ``make_gateway(url, per_minute=100_000)``, a secured gateway serving ``dbl``."""

    def make(url: str, per_minute: int = 100_000):
        config = security_config(max_requests_per_minute=per_minute)
        gateway = secured_gateway(url, config)
        builder = WorkflowBuilder()
        builder.add_node(PythonCodeNode.from_function(double), "double")
        gateway.register_workflow("dbl", builder.build())
        return gateway

    return make


@pytest.fixture(scope="module")
def served(module_sqlite_url, make_gateway, serve_module_gateway):
    return serve_module_gateway(make_gateway(module_sqlite_url))


def read_all(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset ends the read too)."""
    chunks = []
    while True:
        try:
            chunk = conn.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        # Refused mid-request, the answer may already be waiting.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(data)
        return read_all(conn)


def one_request(port: int, head: str, body: bytes = b"") -> bytes:
    """Send one request with ``Connection: close``; the full answer."""
    return exchange(port, f"{head}Connection: close\r\n\r\n".encode("latin-1") + body)


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    """``(status, headers with lower-case names, body)`` of one HTTP/1.1 response."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), answer[:200]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def assert_problem(answer: bytes, status: int, code: str) -> dict:
    got, headers, body = parse(answer)
    assert got == status, answer[:400]
    assert headers["content-type"].startswith("application/problem+json")
    length = int(headers["content-length"])
    problem = json.loads(body[:length])
    assert problem["status"] == status and problem["code"] == code
    assert problem["type"] == PROBLEM_BASE + code and len(problem["error_id"]) == 32
    assert b"Traceback" not in answer
    return problem


def post_json(served, body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        "POST /workflows/dbl/execute HTTP/1.1\r\nHost: t\r\n"
        f"Authorization: Bearer {served.access_token()}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
    )
    return one_request(served.port, head, body)


def access_records(caplog, count: int = 1, ids: tuple[str, ...] = (), timeout=10) -> list[dict]:
    """The access records captured so far, once at least ``count`` are there and one for
    each request id in ``ids`` (the server thread writes a record after its response has
    gone out, so a record of an earlier test may also show up)."""
    deadline = time.monotonic() + timeout
    while True:
        records = [
            json.loads(r.getMessage())
            for r in caplog.records
            if r.name == ACCESS_LOGGER and r.levelno == logging.INFO
        ]
        seen = {r["request_id"] for r in records}
        done = len(records) >= count and seen.issuperset(ids)
        if done or time.monotonic() > deadline:
            return records
        time.sleep(0.01)


# -- body framing and size ------------------------------------------------------------


def test_gw02_chunked_body_growing_past_1_mib_is_413_and_reading_stops(served):
    """GW-02: a chunked body is refused with 413 once it passes 1 MiB, and the server
    stops reading: a client pushing 64 MiB is cut off long before (memory stays bounded)."""
    head = (
        "POST /workflows/dbl/execute HTTP/1.1\r\nHost: t\r\n"
        f"Authorization: Bearer {served.access_token()}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as conn:
        conn.sendall(head)
        try:
            while sent < 64 * 1024 * 1024:
                conn.sendall(chunk)
                sent += 0x10000
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = read_all(conn)
    assert sent < 64 * 1024 * 1024, "the server kept reading past the limit"
    assert_problem(answer, 413, "payload_too_large")
    assert parse(answer)[1]["connection"] == "close"


def test_gw03_content_length_with_transfer_encoding_is_400_before_the_handler(served):
    """GW-03: Content-Length together with Transfer-Encoding is refused with one 400
    (no smuggling), even for an authenticated request, and nothing follows it."""
    answer = exchange(
        served.port,
        (
            "POST /workflows/dbl/execute HTTP/1.1\r\nHost: t\r\n"
            f"Authorization: Bearer {served.access_token()}\r\nContent-Type: application/json\r\n"
            "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
            "0\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\n\r\n"
        ).encode(),
    )
    assert_problem(answer, 400, "ambiguous_framing")
    assert answer.count(b"HTTP/1.1 ") == 1  # the smuggled request was never served


@pytest.mark.parametrize(
    "lengths",
    ["Content-Length: 2\r\nContent-Length: 30\r\n", "Content-Length: 2, 30\r\n"],
    ids=["two-headers", "comma-list"],
)
def test_gw03_conflicting_duplicate_content_length_is_400(served, lengths):
    """GW-03: repeated Content-Length values are refused with 400."""
    answer = exchange(
        served.port,
        (
            "POST /workflows/dbl/execute HTTP/1.1\r\nHost: t\r\n"
            f"Authorization: Bearer {served.access_token()}\r\nContent-Type: application/json\r\n"
            f"{lengths}\r\n{{}}"
        ).encode(),
    )
    assert_problem(answer, 400, "ambiguous_framing")
    assert answer.count(b"HTTP/1.1 ") == 1


# -- strict JSON ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b'{"parameters": {"double": {"x": 1}', b"{'parameters': {}}", b"\xef\xbb\xbf{}", b"{}x"],
)
def test_gw04_truncated_or_invalid_json_is_400_with_a_stable_code(served, body):
    """GW-04: truncated or invalid JSON answers 400 ``json_invalid`` without a trace."""
    assert_problem(post_json(served, body), 400, "json_invalid")


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000],
    ids=["arrays", "objects"],
)
def test_gw05_100000_nested_levels_are_400_not_500(served, body):
    """GW-05: 100 000 nested arrays or objects hit the depth cap (400), never a 500."""
    assert_problem(post_json(served, body), 400, "json_too_deep")


def test_gw05_the_depth_cap_is_64_structural_levels():
    """GW-05: 64 levels parse, 65 do not; brackets inside strings do not count."""
    value, levels = parse_json_body(b"[" * 64 + b"]" * 64), 1
    while value:
        value, levels = value[0], levels + 1
    assert levels == 64
    with pytest.raises(ProblemError, match="deeper than 64"):
        parse_json_body(b"[" * 65 + b"]" * 65)
    in_strings = json.dumps(["[" * 100, "{" * 100, ["]]]]", '\\"[[']]).encode()
    assert parse_json_body(in_strings)[0] == "[" * 100
    hidden = b'["' + b"]" * 70 + b'"' + b"," + b"[" * 65 + b"]" * 65 + b"]"
    with pytest.raises(ProblemError, match="deeper than 64"):
        parse_json_body(hidden)


@pytest.mark.parametrize(
    "number", [b"9" * 100_000, b"1e999999", b"-1e999999", b"NaN", b"Infinity", b"-Infinity"]
)
def test_gw06_huge_and_non_finite_numbers_are_400(served, number):
    """GW-06: a 100 000-digit integer, ``1e999999`` and NaN/Infinity literals: 400."""
    body = b'{"parameters": {"double": {"x": ' + number + b"}}}"
    assert_problem(post_json(served, body), 400, "json_invalid_number")


def test_gw07_duplicate_keys_are_400(served):
    """GW-07: ``{"a":1,"a":2}`` anywhere in the body is refused, not last-wins."""
    body = b'{"parameters": {"double": {"x": 1, "x": 2}}}'
    assert_problem(post_json(served, body), 400, "json_duplicate_key")


@pytest.mark.parametrize(
    "body",
    [b'{"parameters": "\xff"}', b'{"parameters": "\xc0\xaf"}', b'{"a": "\\ud800"}'],
    ids=["invalid-byte", "overlong-slash", "lone-surrogate"],
)
def test_gw08_invalid_utf8_overlong_and_lone_surrogates_are_400(served, body):
    """GW-08: invalid UTF-8, an overlong encoding and a lone surrogate escape: 400."""
    assert_problem(post_json(served, body), 400, "json_invalid_utf8")


def base62(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    text = digits[number % 62]
    while number >= 62:
        number //= 62
        text = digits[number % 62] + text
    return text


def test_gw09_an_object_with_too_many_keys_inside_the_byte_limit_is_400_quickly(served):
    """GW-09: 110 000 keys within 1 MiB are refused by the key-count cap, in bounded time
    (a million keys cannot fit in 1 MiB; the cap is 10 000)."""
    keys = (f'"{base62(i)}":0' for i in range(110_000))
    body = ("{" + ",".join(keys) + "}").encode()
    assert len(body) < 1024 * 1024
    started = time.monotonic()
    answer = post_json(served, body)
    assert time.monotonic() - started < 5
    assert_problem(answer, 400, "json_too_many_keys")


# -- names, media type, method ----------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "%252e%252e",
        "%252e%252e%252fetc%252fpasswd",
        "dbl%00",
        "dbl%E2%80%AE",  # RTL override
        "%D0%B4bl",  # Cyrillic look-alike of "d"
        "db%C5%82",
        "dbl\x1b[31m",
    ],
)
def test_gw10_hostile_workflow_names_are_404(served, name):
    """GW-10: traversal, double encoding, NUL, RTL override and homoglyphs never reach a
    workflow (names are ``^[A-Za-z0-9_-]{1,64}$``, looked up in a dict, not a file)."""
    token = served.access_token()
    answer = one_request(
        served.port,
        f"GET /workflows/{name} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n",
    )
    status, _, _ = parse(answer)
    assert status in (400, 404), answer[:300]
    assert b"doubles" not in answer and b'"name": "dbl"' not in answer


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", ""]
)
def test_gw11_wrong_content_type_on_a_json_endpoint_is_415(served, content_type):
    """GW-11: a body sent as anything but application/json answers 415."""
    body = b'{"parameters": {"double": {"x": 1}}}'
    head = (
        "POST /workflows/dbl/execute HTTP/1.1\r\nHost: t\r\n"
        f"Authorization: Bearer {served.access_token()}\r\nContent-Length: {len(body)}\r\n"
    )
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    assert_problem(one_request(served.port, head, body), 415, "unsupported_media_type")


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_gw12_unserved_method_on_execute_is_405_with_allow(served, method):
    """GW-12: ``PUT /workflows/{name}/execute`` answers 405 with ``Allow: POST``."""
    answer = one_request(
        served.port,
        f"{method} /workflows/dbl/execute HTTP/1.1\r\nHost: t\r\n"
        f"Authorization: Bearer {served.access_token()}\r\nContent-Length: 0\r\n",
    )
    assert_problem(answer, 405, "method_not_allowed")
    assert parse(answer)[1]["allow"] == "POST, OPTIONS"


# -- request id and access records -------------------------------------------------------


def test_gw13_a_sane_client_request_id_is_echoed_in_the_response_and_the_log(served, caplog):
    """GW-13: a client ``X-Request-ID`` matching ``^[A-Za-z0-9._-]{1,128}$`` is echoed."""
    rid = f"client-{uuid.uuid4().hex}.v1_x"
    with caplog.at_level(logging.INFO, ACCESS_LOGGER):
        response = served.client.get("/health", headers={"X-Request-ID": rid})
        records = access_records(caplog, ids=(rid,))
    assert response.headers["X-Request-ID"] == rid
    assert [r["status"] for r in records if r["request_id"] == rid] == [200]


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("X-Request-ID: abc%0d%0aSet-Cookie:%20x=1\r\n", 200),
        ("X-Request-ID: a b\r\n", 200),
        ("X-Request-ID: " + "a" * 129 + "\r\n", 200),
        ("X-Request-ID: one\r\nX-Request-ID: two\r\n", 200),
        ("X-Request-ID: \r\n", 200),
        ("X-Request-ID: \u00e9t\u00e9\r\n", 200),
        # Obsolete line folding: Tornado 6.6 refuses it, 6.5 joins the lines into one
        # value, which is then replaced; either way no header is injected.
        ("X-Request-ID: abc\r\n Set-Cookie: x=1\r\n", (200, 400)),
        ("X-Request-ID: a\x1b[31mred\r\n", 400),
        ("X-Request-ID: a\rSet-Cookie: x=1\r\n", 400),
    ],
    ids=["encoded-crlf", "space", "too-long", "twice", "empty", "latin1", "folded", "ansi", "cr"],
)
def test_gw13_an_unsafe_request_id_is_replaced_or_refused_never_split(served, header, status):
    """GW-13: any other ``X-Request-ID`` is replaced by a server id, or the request is
    refused (400) when Tornado's parser already rejects it; one response, no injected
    header either way."""
    answer = one_request(served.port, f"GET /health HTTP/1.1\r\nHost: t\r\n{header}")
    got, headers, _ = parse(answer)
    allowed = status if isinstance(status, tuple) else (status,)
    assert got in allowed and answer.count(b"HTTP/1.1 ") == 1, answer[:300]
    assert "set-cookie" not in headers
    if got == 200:
        rid = headers["x-request-id"]
        assert len(rid) == 32 and int(rid, 16) >= 0


def test_gw14_one_json_access_record_per_request_with_control_characters_escaped(served, caplog):
    """GW-14: CR/LF/ANSI in the subject claim and the path stay inside one JSON record
    per request; the record line holds no raw control character."""
    subject = "eve\r\nINFO forged line \x1b[31mred\x1b[0m"
    access = served.access_token(subject=subject)
    rids = [f"gw14-{n}-{uuid.uuid4().hex[:8]}" for n in range(3)]
    with caplog.at_level(logging.INFO, ACCESS_LOGGER):
        served.client.get(
            "/workflows", headers={"Authorization": f"Bearer {access}", "X-Request-ID": rids[0]}
        )
        served.client.get("/workflows/x%0d%0ay%1b[0m", headers={"X-Request-ID": rids[1]})
        served.client.get(
            "/workflows/dbl", headers={"Authorization": f"Bearer {access}", "X-Request-ID": rids[2]}
        )
        records = access_records(caplog, ids=tuple(rids))
        lines = [r.getMessage() for r in caplog.records if r.name == ACCESS_LOGGER]
    assert [sum(r["request_id"] == rid for r in records) for rid in rids] == [1, 1, 1]
    by_id = {r["request_id"]: r for r in records}
    assert by_id[rids[0]]["subject"] == subject and by_id[rids[0]]["status"] == 200
    assert by_id[rids[1]]["status"] == 404 and by_id[rids[2]]["status"] == 200
    assert all(ch not in line for line in lines for ch in "\r\n\x1b")
    assert "\\u001b" in "".join(lines) and "\\r\\n" in "".join(lines)


@pytest.mark.parametrize(
    "request_head",
    [
        "GET /workflows/a\x1b[2Jb HTTP/1.1\r\nHost: t\r\n",
        "GET /health HTTP/1.1\r\nHost: t\r\nUser-Agent: a\x1b[31mb\r\n",
    ],
    ids=["path", "user-agent"],
)
def test_gw14_raw_control_characters_are_refused_with_one_escaped_line(
    served, caplog, request_head
):
    """GW-14: a raw ESC in the request line or a header value is a 400 from the HTTP
    parser; its one log line (``tornado.general``, INFO) shows the bytes escaped."""

    def parser_lines() -> list[str]:
        # Only the HTTP parser's logger: other loggers of the process (a dask cluster
        # another test left running) may log meanwhile.
        return [r.getMessage() for r in caplog.records if r.name == "tornado.general"]

    # The parser's logger at INFO itself: importing dask.distributed (other tests do, at
    # collection) sets the parent ``tornado`` logger to CRITICAL.
    with caplog.at_level(logging.INFO), caplog.at_level(logging.INFO, "tornado.general"):
        caplog.clear()
        answer = one_request(served.port, request_head)
        deadline = time.monotonic() + 5
        while not parser_lines() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert answer.startswith(b"HTTP/1.1 400")
    lines = parser_lines()
    assert len(lines) == 1 and lines[0].startswith("Malformed HTTP message")
    assert "\x1b" not in lines[0] and "\n" not in lines[0]


def test_gw15_forwarding_headers_from_an_unconfigured_peer_never_change_the_rate_key(
    make_gateway, tmp_path
):
    """GW-15: spoofed ``X-Forwarded-For``/``X-Real-IP`` do not give an anonymous caller a
    fresh rate budget; the key stays the TCP peer."""
    with ServedGateway(make_gateway(f"sqlite:///{tmp_path / 'xff.db'}", per_minute=3)) as server:
        statuses = []
        for n in range(5):
            spoof = {"X-Forwarded-For": f"203.0.113.{n}", "X-Real-IP": f"198.51.100.{n}"}
            response = server.client.post(
                "/auth/token", json={"username": "nobody", "password": "x"}, headers=spoof
            )
            statuses.append(response.status_code)
    assert statuses[:3] == [401, 401, 401] and statuses[3:] == [429, 429]


# -- header limits ------------------------------------------------------------------------


def test_gw18_200_headers_are_431(served):
    """GW-18: 200 header fields answer 431 with problem+json, then the connection closes."""
    fields = "".join(f"X-Filler-{n}: v\r\n" for n in range(200))
    answer = one_request(served.port, f"GET /health HTTP/1.1\r\nHost: t\r\n{fields}")
    assert_problem(answer, 431, "too_many_headers")
    assert parse(answer)[1]["connection"] == "close"


def test_gw18_200_repeats_of_one_header_are_431(served):
    """GW-18: repeats of one field name count one by one."""
    fields = "X-Filler: v\r\n" * 200
    answer = one_request(served.port, f"GET /health HTTP/1.1\r\nHost: t\r\n{fields}")
    assert_problem(answer, 431, "too_many_headers")


def test_gw18_one_32_kib_header_is_431(served):
    """GW-18: one 32 KiB header outgrows the 16 KiB head limit: 431, then close."""
    answer = one_request(
        served.port, f"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: {'a' * 32768}\r\n"
    )
    assert_problem(answer, 431, "headers_too_large")
    assert parse(answer)[1]["connection"] == "close"


def test_auth21_a_1_mb_bearer_token_is_431(served, caplog):
    """AUTH-21 / GW-18: a 1 MB token is refused with 431 before any verification, and
    the refusal has its one access record."""
    with caplog.at_level(logging.INFO, ACCESS_LOGGER):
        answer = one_request(
            served.port,
            f"GET /workflows HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {'A' * 1_000_000}\r\n",
        )
        records = access_records(caplog)
    assert_problem(answer, 431, "headers_too_large")
    assert [r["status"] for r in records if r["route"] == "server"] == [431]


def test_gw18_headers_just_under_the_limits_are_served(served):
    """GW-18: the limits leave room for real requests (90 fields, a 12 KiB cookie)."""
    fields = "".join(f"X-Filler-{n}: v\r\n" for n in range(90))
    answer = one_request(
        served.port, f"GET /health HTTP/1.1\r\nHost: t\r\nCookie: {'c' * 12_000}\r\n{fields}"
    )
    assert parse(answer)[0] == 200


# -- floods and errors -------------------------------------------------------------------


def test_gw29_a_flood_of_401_and_429_logs_no_warning_per_refusal(make_gateway, tmp_path, caplog):
    """GW-29: 100 refused requests (401 and 429) write one INFO access record each and
    no WARNING lines at all."""
    gateway = make_gateway(f"sqlite:///{tmp_path / 'flood.db'}", per_minute=5)
    with ServedGateway(gateway) as server, caplog.at_level(logging.DEBUG):
        caplog.clear()
        access = server.gateway.auth.issue_tokens(
            "flooder", tenant_id="acme", roles=["analyst"]
        ).access_token
        rids = tuple(f"flood-{n}" for n in range(100))
        bearer = {"Authorization": f"Bearer {access}"}
        statuses = [
            server.client.get(
                "/workflows", headers={"X-Request-ID": rid, **(bearer if n >= 50 else {})}
            ).status_code
            for n, rid in enumerate(rids)
        ]
        records = [r for r in access_records(caplog, ids=rids) if r["request_id"] in rids]
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert statuses.count(401) == 50 and statuses.count(429) == 45
    assert sorted(r["request_id"] for r in records) == sorted(rids)  # one record each
    assert warnings == []


def test_gw30_unhandled_error_is_500_with_error_id_and_the_trace_only_in_the_log(
    served, monkeypatch, caplog
):
    """GW-30: an exception inside a handler answers 500 with an error id and no trace
    or secret; the server log holds the full trace under the same id."""

    def explode(run_id, tenant_id):
        raise RuntimeError("postgresql://admin:hunter2@db/prod")

    monkeypatch.setattr(served.gateway.runs.index, "get", explode)
    with caplog.at_level(logging.ERROR):
        answer = one_request(
            served.port,
            f"GET /runs/{uuid.uuid4()} HTTP/1.1\r\nHost: t\r\n"
            f"Authorization: Bearer {served.access_token()}\r\n",
        )
    problem = assert_problem(answer, 500, "internal_error")
    assert b"hunter2" not in answer and b"RuntimeError" not in answer
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    logged = caplog.text
    assert problem["error_id"] in logged and "Traceback" in logged and "hunter2" in logged
