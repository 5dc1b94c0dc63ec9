"""MCP benchmark: tool calls over MCP against the same workflow over REST, one run; then
500 concurrent WebSocket MCP sessions and their progress notifications.

One gateway process (``create_gateway(mcp=True)``, JWT auth HS256 and rate limiting on,
the limit far above the load) serves two workflows:

- ``ping``: one ``PythonCodeNode`` (``result = {'pong': True}``, run on the event loop);
- ``chain``: three such nodes in a row (six node events per run).

**Part 1, calls/s.** A load process (pinned to CPU 1, the server to CPU 0 when the
machine has two) holds ``--connections`` keep-alive HTTP/1.1 connections (raw sockets,
asyncio) and sends, for ``--seconds`` split into alternating rounds:

- **rest**: ``POST /workflows/ping/execute`` ``{"parameters": {}}``;
- **mcp**: ``POST /mcp`` ``tools/call`` of ``ping`` on a streamable HTTP session of its
  own per connection (``initialize`` first; ``Mcp-Session-Id`` on every call), answered
  ``application/json``.

Every answer must be 2xx and, for MCP, a result with ``"isError": false``. Target:
mcp/rest >= 0.70.

**Part 2, 500 WebSocket sessions.** A second load process opens ``--sessions``
WebSockets to ``/mcp/ws`` (subprotocol ``mcp``, token in the query; 200 per loopback
source address, the gateway's per-IP cap being 256), initializes each and holds them
all open at once; then every session calls ``chain`` ``--calls`` times in a row with a
progress token. Every progress notification the runs emit (six per call) must arrive
before the call's response, numbered 1..6. Printed: sessions opened and held at once,
calls answered, notifications expected and received (lost = expected - received).

Exit status: 1 on any error, 2 when a target is missed (ratio below 0.70, a session not
opened or a notification lost), else 0.

Run: ``python benchmarks/bench_mcp.py [--seconds 10] [--rounds 5] [--connections 32]
[--sessions 500] [--calls 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import subprocess
import sys
import time
from typing import Any

from servers import ServerProcess, announce, pin, until_terminated

CONNECTIONS = 32
WARMUP_SECONDS = 1
TARGET_RATIO = 0.70
RATE_LIMIT_PER_MINUTE = 60_000_000
SERVER_CPU = 0
LOAD_CPU = 1
NODE_CODE = "result = {'pong': True}"
CHAIN_NODES = 3
#: Progress notifications per ``chain`` call: each node started and completed.
EVENTS_PER_CALL = 2 * CHAIN_NODES
#: WebSocket clients per loopback source address (the per-IP cap is 256).
CLIENTS_PER_SOURCE = 200
REST_BODY = b'{"parameters": {}}'
PROTOCOL_VERSION = "2025-06-18"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"},
    },
}


# -- the server --------------------------------------------------------------------------


async def serve(database_url: str) -> None:
    """The gateway with MCP on, until SIGTERM; announces ``{"port", "token"}``."""
    from kailash_nb import WorkflowBuilder
    from kailash_nb.middleware.gateway import create_gateway
    from kailash_nb.security import SecurityConfig

    config = SecurityConfig(
        jwt_secret=secrets.token_urlsafe(48),
        enable_rate_limiting=True,
        max_requests_per_minute=RATE_LIMIT_PER_MINUTE,
    )
    gateway = create_gateway(
        title="bench", security_config=config, database_url=database_url, mcp=True
    )
    ping = WorkflowBuilder()
    ping.add_node("PythonCodeNode", "ping", {"code": NODE_CODE})
    gateway.register_workflow("ping", ping.build(), description="one node")
    chain = WorkflowBuilder()
    for index in range(CHAIN_NODES):
        chain.add_node("PythonCodeNode", f"step{index}", {"code": NODE_CODE})
        if index:
            chain.add_connection(f"step{index - 1}", "result", f"step{index}", "previous")
    gateway.register_workflow("chain", chain.build(), description="three nodes")
    port = await gateway.start("127.0.0.1", 0)
    assert gateway.auth is not None
    token = gateway.auth.issue_tokens("bench", tenant_id="bench", roles=["analyst"]).access_token
    announce(port=port, token=token)
    await until_terminated()
    await gateway.stop(timeout=10)


def server_process(database_url: str) -> ServerProcess:
    """The server child process, pinned; ``with server_process(url) as s`` gives ``s.port``,
    ``s.token``."""
    command = [sys.executable, __file__, "--serve", "--database-url", database_url]
    return ServerProcess(command, preexec_fn=lambda: pin(SERVER_CPU))


# -- part 1: the HTTP load ----------------------------------------------------------------


def _request(port: int, path: str, token: str, body: bytes, extra: str = "") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer {token}\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, dict[bytes, bytes], bytes]:
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get(b"content-length", b"0"))
    body = await asyncio.wait_for(reader.readexactly(length), 10) if length else b""
    return int(head[9:12]), headers, body


async def http_load(
    port: int, token: str, mode: str, seconds: float, connections: int
) -> dict[str, Any]:
    """``connections`` keep-alive connections calling ``ping`` over ``mode`` (``rest``
    or ``mcp``) for ``seconds``."""
    latencies: list[float] = []
    counts = {"non2xx": 0, "bad_results": 0, "socket_errors": 0, "timeouts": 0}
    accept = "Accept: application/json, text/event-stream\r\n"
    started = time.perf_counter()
    deadline = started + seconds

    async def connection() -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            counts["socket_errors"] += 1
            return
        try:
            if mode == "rest":
                request = _request(port, "/workflows/ping/execute", token, REST_BODY)
            else:
                hello = _request(port, "/mcp", token, json.dumps(INITIALIZE).encode(), accept)
                status, headers, _ = await _exchange(reader, writer, hello)
                if status != 200:
                    counts["non2xx"] += 1
                    return
                session = headers[b"mcp-session-id"].decode()
                extra = (
                    f"{accept}Mcp-Session-Id: {session}\r\n"
                    f"Mcp-Protocol-Version: {PROTOCOL_VERSION}\r\n"
                )
                call = {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "tools/call",
                    "params": {"name": "ping", "arguments": {}},
                }
                request = _request(port, "/mcp", token, json.dumps(call).encode(), extra)
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                status, _, body = await _exchange(reader, writer, request)
                latencies.append(time.perf_counter() - sent)
                if not 200 <= status <= 299:
                    counts["non2xx"] += 1
                elif mode == "mcp" and b'"isError": false' not in body:
                    counts["bad_results"] += 1
            if mode == "mcp":  # end the session (DELETE), as a client should
                end = request.replace(b"POST", b"DELETE", 1).split(b"Content-Length")[0]
                status, _, _ = await _exchange(reader, writer, end + b"\r\n")
                if status != 204:
                    counts["non2xx"] += 1
        except TimeoutError:
            counts["timeouts"] += 1
        except (OSError, asyncio.IncompleteReadError, ValueError, KeyError):
            counts["socket_errors"] += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1e3 if latencies else 0.0
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1e3 if latencies else 0.0
    return {"requests": len(latencies), "seconds": elapsed, **counts, "p50_ms": p50, "p99_ms": p99}


# -- part 2: the WebSocket sessions ---------------------------------------------------------


async def ws_sessions(port: int, token: str, sessions: int, calls: int) -> dict[str, Any]:
    """Open ``sessions`` MCP WebSockets, hold them all, then call ``chain`` ``calls``
    times on each with a progress token; count what arrives."""
    import websockets

    url = f"ws://127.0.0.1:{port}/mcp/ws?token={token}"
    counts = {
        "opened": 0,
        "held_at_once": 0,
        "answered": 0,
        "received": 0,
        "busy_retries": 0,
        "errors": 0,
    }
    samples: list[str] = []
    all_open = asyncio.Event()
    done_calling = asyncio.Event()
    finished = 0

    async def session(index: int) -> None:
        nonlocal finished
        source = f"127.0.0.{2 + index // CLIENTS_PER_SOURCE}"
        try:
            async with websockets.connect(
                url, subprotocols=["mcp"], local_addr=(source, 0), max_size=2**20
            ) as socket:
                await socket.send(json.dumps(INITIALIZE))
                json.loads(await socket.recv())
                await socket.send('{"jsonrpc": "2.0", "method": "notifications/initialized"}')
                counts["opened"] += 1
                if counts["opened"] == sessions:
                    counts["held_at_once"] = sessions
                    all_open.set()
                await all_open.wait()
                call = 0
                while call < calls:
                    call += 1
                    token_value = f"{index}-{call}"
                    message = {
                        "jsonrpc": "2.0",
                        "id": call,
                        "method": "tools/call",
                        "params": {
                            "name": "chain",
                            "arguments": {},
                            "_meta": {"progressToken": token_value},
                        },
                    }
                    await socket.send(json.dumps(message))
                    progress = []
                    while True:
                        frame = json.loads(await socket.recv())
                        if frame.get("method") == "notifications/progress":
                            params = frame["params"]
                            if params["progressToken"] == token_value:
                                progress.append(params["progress"])
                            continue
                        if frame.get("id") == call:
                            break
                    result = frame.get("result") or {}
                    text = json.dumps(frame)[:300]
                    if result.get("isError") and "is busy" in text and not progress:
                        # The run queue was full (LOAD-06): nothing ran; retry, as a
                        # client should, after a moment.
                        counts["busy_retries"] += 1
                        call -= 1
                        await asyncio.sleep(0.05)
                        continue
                    if "result" in frame and not result.get("isError"):
                        counts["answered"] += 1
                    else:
                        counts["errors"] += 1
                        samples.append(text)
                    if progress == list(range(1, len(progress) + 1)):
                        counts["received"] += len(progress)
                    else:
                        counts["errors"] += 1
                finished += 1
                if finished == sessions:
                    done_calling.set()
                await done_calling.wait()  # every session stays open until all are done
        except Exception as exc:
            counts["errors"] += 1
            samples.append(repr(exc)[:300])
            all_open.set()  # a failed session must not block the others for ever
            done_calling.set()

    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(session(i) for i in range(sessions))), 300)
    counts["seconds"] = round(time.perf_counter() - started, 2)
    counts["expected"] = sessions * calls * EVENTS_PER_CALL
    counts["lost"] = counts["expected"] - counts["received"]
    counts["error_samples"] = samples[:3]
    return counts


def load_main(args: argparse.Namespace) -> None:
    """Entry point of a load process: one JSON line of results."""
    pin(LOAD_CPU)
    if args.load == "ws":
        result = asyncio.run(ws_sessions(args.port, args.token, args.sessions, args.calls))
    else:
        result = asyncio.run(
            http_load(args.port, args.token, args.load, args.seconds, args.connections)
        )
    print(json.dumps(result))


def drive(
    server: ServerProcess, mode: str, args: argparse.Namespace, seconds: float
) -> dict[str, Any]:
    """Run one load process against ``server``; its results."""
    command = [
        sys.executable,
        __file__,
        "--load",
        mode,
        "--port",
        str(server.port),
        "--token",
        server.token,
        "--seconds",
        str(seconds),
        "--connections",
        str(args.connections),
        "--sessions",
        str(args.sessions),
        "--calls",
        str(args.calls),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 330)
    if done.returncode != 0:
        raise RuntimeError(f"load process failed ({done.returncode}): {done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def smoke_check(server: ServerProcess) -> None:
    """One call each way before the load: the same results over REST and MCP."""
    import httpx

    base = f"http://127.0.0.1:{server.port}"
    auth = {"Authorization": f"Bearer {server.token}"}
    rest = httpx.post(f"{base}/workflows/ping/execute", json={"parameters": {}}, headers=auth)
    mcp_headers = {**auth, "Accept": "application/json, text/event-stream"}
    hello = httpx.post(f"{base}/mcp", json=INITIALIZE, headers=mcp_headers)
    mcp_headers["Mcp-Session-Id"] = hello.headers["mcp-session-id"]
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call"}
    call["params"] = {"name": "ping", "arguments": {}}
    answer = httpx.post(f"{base}/mcp", json=call, headers=mcp_headers)
    structured = answer.json()["result"]["structuredContent"]
    if rest.json()["results"] != structured:
        raise RuntimeError(f"REST {rest.text} and MCP {answer.text} differ")


def main() -> int:
    """Parse arguments; serve, load, or run the benchmark and print its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per mode")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    parser.add_argument("--sessions", type=int, default=500, help="WebSocket MCP sessions")
    parser.add_argument("--calls", type=int, default=3, help="chain calls per session")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--load", choices=("rest", "mcp", "ws"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.database_url))
        return 0
    if args.load:
        load_main(args)
        return 0
    import tempfile

    with (
        tempfile.TemporaryDirectory() as directory,
        server_process(f"sqlite:///{directory}/bench.db") as server,
    ):
        return run_benchmark(server, args)


def run_benchmark(server: ServerProcess, args: argparse.Namespace) -> int:
    """Both parts against ``server``; print them; the exit status."""
    smoke_check(server)
    for mode in ("rest", "mcp"):
        drive(server, mode, args, WARMUP_SECONDS)
    per_round = args.seconds / args.rounds
    totals = {mode: {"requests": 0, "seconds": 0.0, "errors": 0, "rates": [], "p50": [], "p99": []}
              for mode in ("rest", "mcp")}  # fmt: skip
    for _ in range(args.rounds):
        for mode in ("rest", "mcp"):
            result = drive(server, mode, args, per_round)
            total = totals[mode]
            total["requests"] += result["requests"]
            total["seconds"] += result["seconds"]
            total["errors"] += (
                result["non2xx"] + result["bad_results"] + result["socket_errors"]
                + result["timeouts"]
            )  # fmt: skip
            total["rates"].append(result["requests"] / result["seconds"])
            total["p50"].append(result["p50_ms"])
            total["p99"].append(result["p99_ms"])
    print(f"part 1: 1-node workflow, {args.connections} connections, {args.rounds} rounds")
    for mode, total in totals.items():
        rate = total["requests"] / total["seconds"]
        total["rate"] = rate
        rounds = ", ".join(f"{value:.0f}" for value in total["rates"])
        print(
            f"  {mode:4}: {rate:8.0f} calls/s (rounds: {rounds}); p50 "
            f"{statistics.median(total['p50']):.2f} ms, p99 {max(total['p99']):.2f} ms; "
            f"errors {total['errors']}"
        )
    ratio = totals["mcp"]["rate"] / totals["rest"]["rate"]
    print(f"  ratio mcp/rest: {ratio:.2f} (target >= {TARGET_RATIO:.2f})")
    ws = drive(server, "ws", args, 0)
    print(f"part 2: {args.sessions} WebSocket MCP sessions, {args.calls} chain calls each")
    print(
        f"  opened {ws['opened']}, held at once {ws['held_at_once']}, calls answered "
        f"{ws['answered']}/{args.sessions * args.calls}, progress notifications "
        f"{ws['received']}/{ws['expected']} (lost {ws['lost']}), errors {ws['errors']}, "
        f"{ws['seconds']} s; calls refused busy by the full run queue and retried: "
        f"{ws['busy_retries']}"
    )
    for sample in ws["error_samples"]:
        print(f"  error: {sample}")
    if totals["rest"]["errors"] or totals["mcp"]["errors"] or ws["errors"]:
        return 1
    missed = ratio < TARGET_RATIO or ws["held_at_once"] < args.sessions or ws["lost"] != 0
    return 2 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
