"""Connection-level limits of the gateway's server against a real server on a free
loopback port: header timeout against slowloris (GW-16), body timeout against a dribbled
body (GW-17), the per-IP connection cap (GW-19) and sampled refusal warnings (GW-29).

The timeouts are lowered to about a second through ``gateway.limits`` (``ServerLimits``);
127.0.0.2 acts as a second client address (any 127.0.0.0/8 address is local on Linux).
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import time

import pydantic
import pytest
from _gateway_server import ServedGateway

from kailash_nb import WorkflowBuilder
from kailash_nb.middleware._limits import ServerLimits
from kailash_nb.middleware._log_sampling import SampledWarning
from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.nodes.code import PythonCodeNode

SERVER_LOGGER = "kailash_nb.middleware._server"


def double(x: int) -> int:
    """Twice x."""
    return x * 2


@pytest.fixture
def served_gateway(sqlite_url):
    """Factory: ``served_gateway(**limits)``, an open (loopback-only) gateway serving ``dbl``
    with ``limits`` applied, as a ``ServedGateway`` the test enters (the server stops where
    its ``with`` block ends, before the test reads what was logged)."""

    def make(**limits) -> ServedGateway:
        gateway = create_gateway(database_url=sqlite_url)
        builder = WorkflowBuilder()
        builder.add_node(PythonCodeNode.from_function(double), "double")
        gateway.register_workflow("dbl", builder.build())
        gateway.limits = ServerLimits(**limits)
        return ServedGateway(gateway)

    return make


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))


def closed_by_server(conn: socket.socket, within: float) -> bool:
    """True when the server closes ``conn`` (EOF or reset) within ``within`` seconds;
    any bytes it sends first are read and dropped."""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([conn], [], [], left)
        if not readable:
            return False
        try:
            if conn.recv(65536) == b"":
                return True
        except ConnectionResetError:
            return True
    return False


def get_health(conn: socket.socket) -> bytes:
    """One keep-alive ``GET /health`` on ``conn``; the response head."""
    conn.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    answer = b""
    while b'{"status": "ok"}' not in answer:
        chunk = conn.recv(65536)
        assert chunk, "closed by the server"
        answer += chunk
    return answer


# -- GW-16 ------------------------------------------------------------------------------


@pytest.mark.slow
def test_gw16_slowloris_connections_are_closed_at_the_header_timeout(served_gateway):
    """GW-16: 20 connections each sending one header line every 0.25 s are closed at the
    header timeout (1 s here), counted from the first byte, not from the last line;
    legitimate requests are served meanwhile."""
    with served_gateway(header_timeout=1.0) as server:
        loris = [connect(server.port) for _ in range(20)]
        try:
            started = time.monotonic()
            for conn in loris:
                conn.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")
            open_ = list(loris)
            closed_at: list[float] = []
            line = 0
            while open_ and time.monotonic() - started < 6:
                line += 1
                for conn in list(open_):
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        conn.sendall(b"X-Slow-%d: v\r\n" % line)
                    if closed_by_server(conn, 0.01):
                        closed_at.append(time.monotonic() - started)
                        open_.remove(conn)
                assert server.client.get("/health").status_code == 200
                time.sleep(0.25)
            assert not open_, "some connections outlived the header timeout"
            assert min(closed_at) >= 0.9 and max(closed_at) < 4.0, closed_at
        finally:
            for conn in loris:
                conn.close()


@pytest.mark.slow
def test_gw16_an_idle_keep_alive_connection_is_closed_at_the_header_timeout(served_gateway):
    """GW-16: after a response, a keep-alive connection that sends nothing more is closed
    once the header timeout passes."""
    with served_gateway(header_timeout=1.0) as server, connect(server.port) as conn:
        assert get_health(conn).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert closed_by_server(conn, 4)
        assert 0.9 <= time.monotonic() - started < 3.0


# -- GW-17 ------------------------------------------------------------------------------


def seconds_until_cut(conn: socket.socket, body_bytes: int, interval: float = 0.2) -> float:
    """Dribble ``body_bytes`` one per ``interval`` until the server closes; the seconds
    that took (fails if the whole body went through)."""
    started = time.monotonic()
    for _ in range(body_bytes):
        try:
            conn.sendall(b" ")
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started
        if closed_by_server(conn, interval):
            return time.monotonic() - started
    pytest.fail("the server read the whole dribbled body without closing")


@pytest.mark.slow
def test_gw17_a_body_dribbled_at_one_byte_per_interval_is_cut_at_the_body_timeout(served_gateway):
    """GW-17: a 100-byte body sent one byte every 0.2 s (20 s in all) is cut off when the
    body timeout (1 s here) passes: the connection is closed."""
    with served_gateway(body_timeout=1.0) as server, connect(server.port) as conn:
        conn.sendall(
            b"POST /workflows/dbl/execute HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )
        waited = seconds_until_cut(conn, body_bytes=100)
        assert 0.9 <= waited < 3.0, waited
        assert server.client.get("/health").status_code == 200


# -- GW-19 ------------------------------------------------------------------------------


def test_gw19_per_ip_cap_refuses_excess_connections_quickly_others_unaffected(
    served_gateway, caplog
):
    """GW-19: with a cap of 3 connections per peer address, the 4th from 127.0.0.1 is
    closed at once, 127.0.0.2 is still served, and a freed slot is reusable. The refusals
    are logged at WARNING at most once per minute (GW-29)."""
    with (
        served_gateway(max_connections_per_ip=3) as server,
        caplog.at_level(logging.WARNING, SERVER_LOGGER),
    ):
        held = [connect(server.port) for _ in range(3)]
        try:
            for conn in held:
                assert get_health(conn).startswith(b"HTTP/1.1 200")
            refused = []
            for _ in range(25):
                extra = connect(server.port)
                refused.append(extra)
                started = time.monotonic()
                assert closed_by_server(extra, 2)
                assert time.monotonic() - started < 1
            with connect(server.port, source="127.0.0.2") as other:
                assert get_health(other).startswith(b"HTTP/1.1 200")
            held.pop().close()
            deadline = time.monotonic() + 5
            capped = server.gateway._server
            while capped.open_connections("127.0.0.1") > 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            with connect(server.port) as again:
                assert get_health(again).startswith(b"HTTP/1.1 200")
        finally:
            for conn in held + refused:
                conn.close()
        warnings = [r.getMessage() for r in caplog.records if r.name == SERVER_LOGGER]
    assert len(warnings) == 1 and "127.0.0.1" in warnings[0]


def test_gw19_connections_are_released_when_clients_go_away(served_gateway):
    """GW-19: the per-IP count follows closes, resets and refused heads (431), so the cap
    never leaks slots."""
    with served_gateway(max_connections_per_ip=2) as server:
        capped = server.gateway._server
        for _ in range(5):
            with connect(server.port) as conn:
                assert get_health(conn).startswith(b"HTTP/1.1 200")
            abrupt = connect(server.port)
            abrupt.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            abrupt.sendall(b"GET /health HTTP/1.1\r\n")
            abrupt.close()  # reset mid-head
            with connect(server.port) as big:
                big.sendall(b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n")
                assert closed_by_server(big, 5)
        deadline = time.monotonic() + 5
        while capped.open_connections() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert capped.open_connections() == 0


# -- configuration and sampling --------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"header_timeout": 0},
        {"body_timeout": -1},
        {"max_connections_per_ip": 0},
        {"max_header_count": "100"},
        {"header_timeout": True},
        {"idle_timeout": 5},
    ],
)
def test_server_limits_refuse_bad_values(options):
    """``ServerLimits`` refuses non-positive, mistyped and unknown settings by name."""
    with pytest.raises(pydantic.ValidationError, match=next(iter(options))):
        ServerLimits(**options)


def test_gw29_sampled_warning_writes_one_line_per_interval_with_the_folded_count(caplog):
    """GW-29: a flood of one kind of warning becomes one line per interval, the next line
    saying how many were folded into it; other kinds are not held back."""
    now = [100.0]
    sampled = SampledWarning(logging.getLogger("kailash_nb.test.sampled"), 60, lambda: now[0])
    with caplog.at_level(logging.WARNING, "kailash_nb.test.sampled"):
        written = [sampled.warn("cap", "refused %s", n) for n in range(1000)]
        written.append(sampled.warn("other", "different kind"))
        now[0] += 61
        written.append(sampled.warn("cap", "refused %s", "late"))
    assert written.count(True) == 3
    assert [r.getMessage() for r in caplog.records] == [
        "refused 0",
        "different kind",
        "refused late (+999 similar in the last 61 s)",
    ]


def test_gw17_a_slow_body_on_a_route_without_body_streaming_is_cut_too(served_gateway, caplog):
    """GW-17: the body deadline covers every route, also those whose body Tornado reads
    before the handler runs; the cut request leaves one access record with 408."""
    with (
        caplog.at_level("INFO", logger="kailash_nb.middleware.access"),
        served_gateway(body_timeout=1.0) as server,
        connect(server.port) as conn,
    ):
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n")
        waited = seconds_until_cut(conn, body_bytes=50)
        assert 0.9 <= waited < 3.0, waited
        assert server.client.get("/health").status_code == 200
    records = [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith("{")]
    assert [r["status"] for r in records if r.get("path") == "/health"][:1] == [408]
