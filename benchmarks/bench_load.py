"""Load checks of the gateway: security checklist 3.7, LOAD-01, LOAD-06, LOAD-07, LOAD-08.

The gateway runs in its own process on a free 127.0.0.1 port, with JWT verification
(HS256, a token minted by the gateway's ``KailashJWTAuth``) and rate limiting on, the
limit far above the load. The load comes from other processes: ``wrk`` for plain HTTP
load when installed (else an asyncio raw-socket HTTP/1.1 client), the asyncio client for
bursts, Tornado's WebSocket client for ``WS /ws``. With at least two CPUs the server is
pinned to CPU 0 and the load to CPU 1 (``--no-pin`` lets the OS place them). Workflows
served:

- ``ping``: one ``PythonCodeNode`` ``result = {'pong': True}`` (straight-line glue: it
  runs on the gateway's loop, no run thread);
- ``work``: one node sleeping ``--run-ms`` (it runs on the run threads, so it goes
  through the bounded run queue, ``gateway.runs.max_workers`` / ``max_queued``);
- ``ticker``: a chain of nodes each sleeping 0.3 s; every node emits three events
  (queued, started, completed), so one run emits about 10 events per second.

Scenarios (one per run, each exits 0 on PASS and 1 on FAIL):

- ``load01``: 64 keep-alive connections on ``ping`` for 300 s. PASS: 0 errors (non-2xx,
  socket errors, timeouts) and p99 below ``--p99-bound-ms`` (default 250 ms: at 64
  connections on one server core each request waits behind up to 63 others).
- ``load06``: a burst of 10,000 ``work`` requests scheduled evenly over 1 s (open loop)
  through 500 keep-alive connections, spread over source addresses 127.0.0.2.. so the
  per-IP connection cap is not what answers. PASS: every answer 200, or 503 with
  ``Retry-After`` (problem code ``busy``); no socket error or timeout (30 s); the
  latency of accepted requests (from send) stays below the bound the queue implies,
  ``(max_queued / max_workers + 1) x run time + 1 s``, whatever the burst size.
  Printed besides: latency from the scheduled time (it includes waiting in the client
  while the server is saturated) and p99 per quarter of the burst.
- ``load07``: soak at 50 % of capacity (capacity measured first with 32 connections for
  5 s) for an hour, a mix of ``ping``, ``work`` (1 ms) and ``GET /health``, paced by
  wrk's ``delay()``. The server's RSS and open fds are read from ``/proc`` every
  ``--sample-seconds`` (the RSS trend per hour is printed too). PASS: RSS at the end
  less than 5 % above RSS after the warm-up (``--warmup``, default 10 % of the time and
  at least 30 s: the run index and the event replay buffers fill to their bounds), open
  fds never more than 4 above their count after the warm-up, and no error.
- ``load08``: HTTP load on ``ping`` at ``--http-fraction`` (0.25) of capacity for
  ``--seconds`` (60) in ``--rounds`` (3) alternating rounds: without WebSockets (the
  baseline), then while 500 WebSockets (one subject, ten ``ticker`` runs started 30 ms
  apart, 50 clients subscribed to each) receive about 10 events/s each (medians of the
  rounds' p99 compared). PASS: every client receives every event of its run, in order
  (run started, each node queued/started/completed, run completed), no client is
  dropped, and HTTP p99 with WebSockets at most 20 % above the baseline.
  Printed besides: event delivery delay (receive time minus the event's timestamp, for
  events emitted in the measured window), events/s per client, and the CPU share of
  the server and of the WebSocket clients (run at the lowest priority, so they do not
  take the load CPU from the HTTP load generator).

Run: ``python benchmarks/bench_load.py load01|load06|load07|load08 [options]`` with the
checklist's sizes by default (``load01`` 300 s, ``load07`` 3600 s); smaller sizes by
flags, e.g. ``load01 --seconds 10``, ``load06 --requests 2000``, ``load07 --seconds 60``,
``load08 --clients 100 --seconds 10``. ``--help`` on a scenario lists its options.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from servers import NO_PIN_ENV, ServerProcess, announce, can_pin, pin, until_terminated

SERVER_CPU = 0
LOAD_CPU = 1
#: Far above any load this machine can produce, so no request is ever refused.
RATE_LIMIT_PER_MINUTE = 60_000_000
PING_BODY = b'{"parameters": {}}'
TICKER_NODE_SECONDS = 0.3
#: Events one ticker node emits: queued, started, completed.
EVENTS_PER_NODE = 3
#: Clients per source address (the gateway's per-IP cap is 256 by default).
CLIENTS_PER_SOURCE = 200
REQUEST_TIMEOUT = 30.0
CALIBRATE_SECONDS = 5
CALIBRATE_CONNECTIONS = 32

LOAD01_P99_BOUND_MS = 250.0
RSS_GROWTH_LIMIT = 0.05
FD_TOLERANCE = 4
WS_P99_LIMIT = 1.20


# -- processes ---------------------------------------------------------------------------
def _pin_load() -> None:
    pin(LOAD_CPU)


def _pin_load_yielding() -> None:
    # The WebSocket clients share the load CPU with the HTTP load generator: at the
    # lowest priority they take only what it leaves, so they do not inflate its latencies.
    pin(LOAD_CPU)
    os.nice(19)


def source_address(index: int) -> str:
    """The loopback source address of client ``index`` (``CLIENTS_PER_SOURCE`` each)."""
    return f"127.0.0.{2 + index // CLIENTS_PER_SOURCE}"


def ticker_nodes(seconds: float) -> int:
    """Nodes of a ticker run lasting about ``seconds``."""
    return max(1, math.ceil(seconds / TICKER_NODE_SECONDS))


# -- the server (``--child serve OPTIONS``) ----------------------------------------------
async def serve_gateway(options: dict[str, Any]) -> None:
    """Serve ``ping``, ``work`` and ``ticker`` until SIGTERM; announce the port and a
    token as one JSON line on stdout."""
    from datetime import timedelta

    from kailash_nb import WorkflowBuilder
    from kailash_nb.middleware.gateway import create_gateway
    from kailash_nb.security import SecurityConfig

    config = SecurityConfig(
        jwt_secret=secrets.token_urlsafe(48),
        enable_rate_limiting=True,
        max_requests_per_minute=RATE_LIMIT_PER_MINUTE,
        access_token_ttl=timedelta(hours=24),
        refresh_token_ttl=timedelta(days=2),
    )
    gateway = create_gateway(
        title="load",
        security_config=config,
        database_url=options["database_url"],
        enable_docs=False,
    )
    if options.get("max_workers"):
        gateway.runs.max_workers = int(options["max_workers"])
    if options.get("max_queued") is not None:
        gateway.runs.max_queued = int(options["max_queued"])
    if options.get("index_capacity"):
        gateway.runs.index.capacity = int(options["index_capacity"])
    ping = WorkflowBuilder()
    ping.add_node("PythonCodeNode", "ping", {"code": "result = {'pong': True}"})
    gateway.register_workflow("ping", ping.build())
    work = WorkflowBuilder()
    seconds = float(options.get("run_ms", 1)) / 1000
    work.add_node(
        "PythonCodeNode", "work", {"code": f"import time\ntime.sleep({seconds!r})\nresult = 1"}
    )
    gateway.register_workflow("work", work.build())
    ticker = WorkflowBuilder()
    node_code = f"import time\ntime.sleep({float(options.get('tick', TICKER_NODE_SECONDS))!r})"
    for index in range(int(options.get("ticker_nodes", 1))):
        ticker.add_node("PythonCodeNode", f"t{index}", {"code": node_code + "\nresult = 1"})
        if index:
            ticker.add_connection(f"t{index - 1}", "result", f"t{index}", "x")
    gateway.register_workflow("ticker", ticker.build())
    assert gateway.auth is not None
    port = await gateway.start("127.0.0.1", 0)
    pair = gateway.auth.issue_tokens("load-client", tenant_id="load", roles=["analyst"])
    ready = {
        "port": port,
        "token": pair.access_token,
        "max_workers": gateway.runs.max_workers,
        "max_queued": gateway.runs.max_queued,
    }
    announce(**ready)
    await until_terminated()
    await gateway.stop(timeout=10)


class Server(ServerProcess):
    """The gateway's child process with a store of its own; ``with Server(options) as s``
    gives ``s.port``, ``s.token`` (of the subject ``load-client``), ``s.pid`` and
    ``s.ready`` (the announced settings)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(what="the gateway process")
        self.options = options
        self._directory: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> Server:
        self._directory = tempfile.TemporaryDirectory()
        options = {"database_url": f"sqlite:///{Path(self._directory.name) / 'load.db'}"}
        options.update(self.options)
        self.command = [sys.executable, __file__, "--child", "serve", json.dumps(options)]
        super().__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        super().__exit__()
        if self._directory is not None:
            self._directory.cleanup()


def process_usage(pid: int) -> tuple[int, int]:
    """``(RSS in KiB, open file descriptors)`` of process ``pid``, from ``/proc``."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def process_cpu(pid: int) -> float:
    """CPU seconds (user and system) process ``pid`` used so far, from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- HTTP load: wrk ----------------------------------------------------------------------
WRK_SCRIPT = """
local requests = {%(requests)s}
local headers = {["Content-Type"] = "application/json",
                 ["Authorization"] = "Bearer %(token)s"}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non2xx = 0; last_bad = 0; counter = 0 end
function request()
  counter = counter + 1
  local r = requests[(counter %% #requests) + 1]
  return wrk.format(r[1], r[2], headers, r[3])
end
%(delay)s
function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1; last_bad = status end
end
function done(summary, latency, requests)
  local bad, last = 0, 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("non2xx")
    if t:get("last_bad") ~= 0 then last = t:get("last_bad") end
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "seconds": %%f, "non2xx": %%d, "last_bad_status": %%d, ' ..
    '"socket_errors": %%d, "timeouts": %%d, "p50_ms": %%f, "p99_ms": %%f, "max_ms": %%f}\\n',
    summary.requests, summary.duration / 1e6, bad, last,
    e.connect + e.read + e.write, e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
end
"""

#: ``(method, path, body)`` of the requests a load rotates through.
Mix = list[tuple[str, str, bytes]]
PING: Mix = [("POST", "/workflows/ping/execute", PING_BODY)]
SOAK: Mix = [
    ("POST", "/workflows/ping/execute", PING_BODY),
    ("POST", "/workflows/work/execute", PING_BODY),
    ("GET", "/health", b""),
]


def wrk_command(
    port: int, token: str, mix: Mix, seconds: float, connections: int, rate: float | None
) -> tuple[list[str], str]:
    """The wrk command line and its Lua script's path (the caller deletes it)."""
    rows = [
        (json.dumps(m), json.dumps(p), json.dumps(b.decode()) if b else "nil") for m, p, b in mix
    ]
    requests = ", ".join(f"{{{m}, {p}, {b}}}" for m, p, b in rows)
    delay = ""
    if rate:
        # Each connection waits connections/rate s between requests: about ``rate``/s.
        delay = f"function delay() return {1000.0 * connections / rate:.3f} end"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"requests": requests, "token": token, "delay": delay})
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    command += ["--timeout", f"{int(REQUEST_TIMEOUT)}s", "-s", script.name]
    return [*command, f"http://127.0.0.1:{port}/"], script.name


def wrk_result(stdout: str, stderr: str, returncode: int) -> dict[str, Any]:
    """The RESULT line wrk's ``done`` hook printed."""
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"wrk failed ({returncode}): {stdout}{stderr}")


def http_load(
    port: int,
    token: str,
    mix: Mix,
    seconds: float,
    connections: int,
    rate: float | None = None,
) -> dict[str, Any]:
    """Load ``mix`` for ``seconds`` from a pinned load process (wrk when installed, else
    the python client); ``rate`` paces the load (requests/s), else as fast as answered.
    Returns ``requests, seconds, non2xx, socket_errors, timeouts, p50_ms, p99_ms, max_ms``.
    """
    if shutil.which("wrk"):
        command, script = wrk_command(port, token, mix, seconds, connections, rate)
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=seconds + 60,
                preexec_fn=_pin_load,
            )
        finally:
            os.unlink(script)
        return wrk_result(done.stdout, done.stderr, done.returncode)
    spec = {
        "port": port,
        "token": token,
        "mix": [(m, p, b.decode()) for m, p, b in mix],
        "connections": connections,
        "seconds": seconds,
        "rate": rate,
    }
    result = child("http", spec, timeout=seconds + 60)
    answered = sum(result["statuses"].values())
    return {
        "requests": answered,
        "seconds": result["elapsed"],
        "non2xx": answered - result["ok"],
        "last_bad_status": 0,
        "socket_errors": result["socket_errors"],
        "timeouts": result["timeouts"],
        "p50_ms": result["all_from_send"]["p50_ms"],
        "p99_ms": result["all_from_send"]["p99_ms"],
        "max_ms": result["all_from_send"]["max_ms"],
    }


def http_errors(result: dict[str, Any]) -> int:
    """Non-2xx answers, socket errors and timeouts of one load."""
    return int(result["non2xx"] + result["socket_errors"] + result["timeouts"])


def capacity(port: int, token: str, mix: Mix) -> float:
    """Requests/s the server answers under ``CALIBRATE_CONNECTIONS`` unpaced connections."""
    result = http_load(port, token, mix, CALIBRATE_SECONDS, CALIBRATE_CONNECTIONS)
    if http_errors(result):
        raise RuntimeError(f"errors while measuring capacity: {result}")
    return result["requests"] / result["seconds"]


def child(kind: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run ``--child kind SPEC`` in a pinned load process; its last stdout line (JSON)."""
    command = [sys.executable, __file__, "--child", kind, json.dumps(spec)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, preexec_fn=_pin_load
    )
    if done.returncode != 0:
        raise RuntimeError(f"load process failed ({done.returncode}): {done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- HTTP load: python client --------------------------------------------------------------
def raw_request(method: str, path: str, body: bytes, token: str, port: int) -> bytes:
    """One HTTP/1.1 keep-alive request as bytes."""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    head += f"Authorization: Bearer {token}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, dict[str, str], bytes]:
    """Send ``request``; return the answer's status, headers (lower-case) and body.

    Raises:
        ValueError: an answer without ``Content-Length`` framing.
    """
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    headers: dict[str, str] = {}
    for line in head.split(b"\r\n")[1:]:
        if line:
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    if "transfer-encoding" in headers:
        raise ValueError("chunked answers are not expected from the gateway")
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return status, headers, body


def _problem_code(body: bytes) -> str | None:
    try:
        problem = json.loads(body)
    except ValueError:
        return None
    return problem.get("code") if isinstance(problem, dict) else None


def percentiles(values: list[float]) -> dict[str, float]:
    """``p50_ms``, ``p99_ms``, ``max_ms`` and ``count`` of latencies given in seconds."""
    if not values:
        return {"count": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1e3

    return {"count": len(ordered), "p50_ms": at(0.50), "p99_ms": at(0.99), "max_ms": at(1.0)}


async def drive_http(
    port: int,
    token: str,
    mix: Mix,
    connections: int,
    *,
    total: int | None = None,
    seconds: float | None = None,
    rate: float | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> dict[str, Any]:
    """Send requests of ``mix`` in turn over ``connections`` keep-alive connections (client
    ``i`` from ``source_address(i)``) until ``total`` were sent or ``seconds`` passed.

    With ``rate``, request ``n`` is due ``n / rate`` s after the start (open loop: a
    free connection sends it then, or as soon as one is free); without, each connection
    sends as soon as its previous request was answered. Returns counts by status
    (``statuses``; ``ok`` the 2xx; ``busy`` the 503 carrying ``Retry-After`` and the
    problem code ``busy``; ``bad_503`` the others), ``socket_errors``, ``timeouts``,
    latencies (from send and from the due time) and accepted-request p99 per quarter.
    """
    requests = [raw_request(m, p, b, token, port) for m, p, b in mix]
    answers: list[tuple[int, float, float, float, int]] = []  # n, due, sent, done, status
    counts = {"socket_errors": 0, "timeouts": 0, "connect_errors": 0, "busy": 0, "bad_503": 0}
    state = {"next": 0}
    start = time.perf_counter() + 0.05
    deadline = start + seconds if seconds is not None else math.inf

    async def connect(index: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(
                    "127.0.0.1", port, local_addr=(source_address(index), 0), limit=2**20
                ),
                timeout,
            )
        except (OSError, TimeoutError):
            counts["connect_errors"] += 1
            return None

    async def worker(index: int, streams: Any) -> None:
        while True:
            n = state["next"]
            if (total is not None and n >= total) or time.perf_counter() >= deadline:
                break
            state["next"] = n + 1
            due = start + n / rate if rate else time.perf_counter()
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            if streams is None:
                streams = await connect(index)
                if streams is None:
                    continue
            reader, writer = streams
            sent = time.perf_counter()
            try:
                status, headers, body = await asyncio.wait_for(
                    exchange(reader, writer, requests[n % len(requests)]), timeout
                )
            except TimeoutError:
                counts["timeouts"] += 1
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                counts["socket_errors"] += 1
            else:
                answers.append((n, due, sent, time.perf_counter(), status))
                if status == 503:
                    busy = "retry-after" in headers and _problem_code(body) == "busy"
                    counts["busy" if busy else "bad_503"] += 1
                if headers.get("connection", "").lower() != "close":
                    continue
            writer.close()
            streams = None

    opened = await asyncio.gather(*(connect(index) for index in range(connections)))
    start = time.perf_counter() + 0.05
    deadline = start + seconds if seconds is not None else math.inf
    await asyncio.gather(*(worker(index, streams) for index, streams in enumerate(opened)))
    elapsed = time.perf_counter() - start
    for streams in opened:
        if streams is not None:
            streams[1].close()
    statuses = Counter(status for *_, status in answers)
    accepted = sorted((a for a in answers if 200 <= a[4] <= 299), key=lambda a: a[0])
    quarters = []
    for q in range(4):
        part = accepted[q * len(accepted) // 4 : (q + 1) * len(accepted) // 4]
        quarters.append(percentiles([done - sent for _, _, sent, done, _ in part])["p99_ms"])
    last_send = max((sent for _, _, sent, _, _ in answers), default=start)
    return {
        **counts,
        "statuses": {str(status): count for status, count in sorted(statuses.items())},
        "ok": sum(count for status, count in statuses.items() if 200 <= status <= 299),
        "sent": state["next"],
        "elapsed": elapsed,
        "send_seconds": last_send - start,
        "accepted_from_send": percentiles([d - s for _, _, s, d, st in accepted]),
        "busy_from_send": percentiles([d - s for _, _, s, d, st in answers if st == 503]),
        "all_from_send": percentiles([d - s for _, _, s, d, _ in answers]),
        "all_from_due": percentiles([d - due for _, due, _, d, _ in answers]),
        "accepted_p99_by_quarter_ms": quarters,
    }


def http_child(spec: dict[str, Any]) -> None:
    """Entry point of ``--child http SPEC``: print ``drive_http``'s result as JSON."""
    mix = [(m, p, b.encode()) for m, p, b in spec["mix"]]
    result = asyncio.run(
        drive_http(
            spec["port"],
            spec["token"],
            mix,
            spec["connections"],
            total=spec.get("total"),
            seconds=spec.get("seconds"),
            rate=spec.get("rate"),
        )
    )
    print(json.dumps(result))


# -- WebSocket clients -------------------------------------------------------------------
def expected_events(nodes: int) -> list[str]:
    """Every event of a ticker run of ``nodes`` nodes, in order."""
    events = ["run:started"]
    for index in range(nodes):
        events += [f"node:t{index}:{state}" for state in ("queued", "started", "completed")]
    return [*events, "run:completed"]


class WsClient:
    """One WebSocket client: what it received, and whether the server closed it."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.events: list[str] = []
        self.delays: list[float] = []
        self.other: list[dict[str, Any]] = []
        self.in_window = 0
        self.closed_by_server = False
        self.subscribed = asyncio.Event()
        self.finished = asyncio.Event()

    async def read(self, window: dict[str, Any]) -> None:
        """Read frames until the run ends or the server closes the connection."""
        while True:
            message = await self.connection.read_message()
            if message is None:
                self.closed_by_server = not self.finished.is_set()
                self.finished.set()
                return
            frame = json.loads(message)
            if "event" not in frame:
                if "subscribed" in frame:
                    self.subscribed.set()
                else:
                    self.other.append(frame)
                continue
            data = frame["data"]
            if window["open"]:
                self.in_window += 1
                if data["timestamp"] >= window["since"]:  # not a replay of older events
                    self.delays.append(time.time() - data["timestamp"])
            if frame["event"] == "run":
                self.events.append(f"run:{data['state']}")
                if data["state"] in ("completed", "failed"):
                    self.finished.set()
                    return
            else:
                self.events.append(f"node:{data['node_id']}:{data['state']}")


async def start_run(port: int, token: str, workflow: str) -> str:
    """Start ``workflow`` with ``?wait=false``; its run id."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = raw_request(
            "POST", f"/workflows/{workflow}/execute?wait=false", PING_BODY, token, port
        )
        status, _, body = await asyncio.wait_for(exchange(reader, writer, request), 30)
    finally:
        writer.close()
    if status != 202:
        raise RuntimeError(f"starting {workflow} answered {status}: {body[:300]!r}")
    return str(json.loads(body)["run_id"])


async def ws_phase(
    port: int,
    token: str,
    clients: int,
    clients_per_run: int,
    nodes: int,
    window: Callable[[], Awaitable[Any]],
    ready: Callable[[dict[str, Any]], None] = lambda info: None,
) -> dict[str, Any]:
    """Open ``clients`` WebSockets, start one ticker run per ``clients_per_run`` clients
    (their starts spread over one node's time) and subscribe each client to its run;
    call ``ready``, await ``window()`` (the measured window), then wait for every run to
    end and check what each client got.

    Returns counts (``live``, ``dropped``, ``clients_with_loss``, ``lost_events``,
    ``out_of_order``, ``errors``), ``events_per_client_per_second`` over the window
    (mean and min), the event delivery delay and the setup times.
    """
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    began = time.perf_counter()
    gate = asyncio.Semaphore(64)  # a handshake burst must not overflow the listen backlog

    async def open_one(index: int) -> WsClient:
        request = HTTPRequest(
            f"ws://127.0.0.1:{port}/ws",
            headers={"Authorization": f"Bearer {token}"},
            network_interface=source_address(index),
            connect_timeout=30,
            request_timeout=30,
        )
        async with gate:
            return WsClient(await websocket_connect(request))

    opened = await asyncio.gather(*(open_one(index) for index in range(clients)))
    connected = time.perf_counter()
    runs = []
    count = math.ceil(clients / clients_per_run)
    for _ in range(count):
        # Spread over one node's time, so the runs' events do not all fall at once.
        runs.append(await start_run(port, token, "ticker"))
        await asyncio.sleep(TICKER_NODE_SECONDS / count)
    window_state: dict[str, Any] = {"open": False, "since": math.inf}
    readers = [asyncio.ensure_future(client.read(window_state)) for client in opened]
    for index, client in enumerate(opened):
        await client.connection.write_message(
            json.dumps({"subscribe": runs[index // clients_per_run]})
        )
    await asyncio.wait_for(asyncio.gather(*(c.subscribed.wait() for c in opened)), 60)
    subscribed = time.perf_counter()
    ready({"connect_seconds": connected - began, "subscribe_seconds": subscribed - connected})
    window_state["open"], window_state["since"] = True, time.time()
    window_started = time.perf_counter()
    await window()
    window_state["open"] = False
    window_seconds = time.perf_counter() - window_started
    run_seconds = nodes * TICKER_NODE_SECONDS
    await asyncio.wait(readers, timeout=run_seconds + 60)
    for reader in readers:
        reader.cancel()
    for client in opened:
        client.connection.close()
    expected = expected_events(nodes)
    live = [client for client in opened if not client.closed_by_server]
    lost = [len(expected) - len(client.events) for client in live]
    delays = [delay for client in opened for delay in client.delays]
    rates = [client.in_window / window_seconds for client in live] or [0.0]
    return {
        "clients": clients,
        "runs": len(runs),
        "live": len(live),
        "dropped": clients - len(live),
        "unfinished": sum(1 for reader in readers if not reader.done()),
        "clients_with_loss": sum(1 for client in live if client.events != expected),
        "lost_events": sum(max(0, count) for count in lost),
        "out_of_order": sum(
            1
            for client in live
            if sorted(client.events) == sorted(expected) and client.events != expected
        ),
        "errors": [frame for client in opened for frame in client.other][:5],
        "events_expected_per_client": len(expected),
        "events_received": sum(len(client.events) for client in opened),
        "window_seconds": window_seconds,
        "events_per_client_per_second": {
            "mean": sum(rates) / len(rates),
            "min": min(rates),
        },
        "delivery_delay": percentiles(delays),
        "connect_seconds": connected - began,
        "subscribe_seconds": subscribed - connected,
    }


def ws_child(spec: dict[str, Any]) -> None:
    """Entry point of ``--child ws SPEC``: ``ws_phase`` whose window ends at a ``stop``
    line on stdin; prints a ``READY`` JSON line, then the result as JSON."""

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()

        def ready(info: dict[str, Any]) -> None:
            print("READY " + json.dumps(info), flush=True)

        return await ws_phase(
            spec["port"],
            spec["token"],
            spec["clients"],
            spec["clients_per_run"],
            spec["nodes"],
            lambda: loop.run_in_executor(None, sys.stdin.readline),
            ready,
        )

    print(json.dumps(asyncio.run(main())), flush=True)


# -- scenarios ---------------------------------------------------------------------------
def verdict(name: str, failures: list[str]) -> int:
    """Print PASS or FAIL (with reasons) for ``name``; the exit code."""
    if failures:
        print(f"{name}: FAIL")
        for failure in failures:
            print(f"  - {failure}")
        return 1
    print(f"{name}: PASS")
    return 0


def describe_pinning() -> str:
    """How the processes are placed."""
    if can_pin():
        return f"server on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}"
    return "not pinned"


def load01(args: argparse.Namespace) -> int:
    """LOAD-01: ``--connections`` clients on ``ping`` for ``--seconds``."""
    print(
        f"LOAD-01: {args.connections} keep-alive connections on a 1-node workflow for "
        f"{args.seconds} s after a 2 s warm-up; {describe_pinning()}"
    )
    with Server() as server:
        warmup = http_load(server.port, server.token, PING, 2, args.connections)
        result = http_load(server.port, server.token, PING, args.seconds, args.connections)
    print(
        f"requests {result['requests']}  req/s {result['requests'] / result['seconds']:.0f}  "
        f"p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms  "
        f"max {result['max_ms']:.2f} ms"
    )
    print(
        f"non-2xx {result['non2xx']}  socket errors {result['socket_errors']}  "
        f"timeouts {result['timeouts']}  (warm-up errors {http_errors(warmup)})"
    )
    failures = []
    if http_errors(result) or http_errors(warmup):
        failures.append(f"{http_errors(result) + http_errors(warmup)} errors")
    if result["p99_ms"] > args.p99_bound_ms:
        failures.append(f"p99 {result['p99_ms']:.1f} ms above {args.p99_bound_ms:.0f} ms")
    return verdict(f"LOAD-01 (p99 bound {args.p99_bound_ms:.0f} ms)", failures)


def latency_bound(max_workers: int, max_queued: int, run_ms: float) -> float:
    """The longest an accepted run may take (s): the queue ahead of it drained by every
    thread, its own run, and one second for the HTTP side of a saturated server."""
    return (max_queued / max_workers + 1) * run_ms / 1000 + 1.0


def load06(args: argparse.Namespace) -> int:
    """LOAD-06: a burst of ``--requests`` in ``--burst-seconds`` on ``work``."""
    options = {"run_ms": args.run_ms, "max_workers": args.max_workers}
    options["max_queued"] = args.max_queued
    with Server(**options) as server:
        workers, queued = server.ready["max_workers"], server.ready["max_queued"]
        print(
            f"LOAD-06: {args.requests} requests due evenly over {args.burst_seconds} s "
            f"through {args.connections} connections; runs of {args.run_ms} ms on "
            f"{workers} run threads with {queued} queued at most; {describe_pinning()}"
        )
        warmup = http_load(server.port, server.token, SOAK[1:2], 1, 4)
        spec = {
            "port": server.port,
            "token": server.token,
            "mix": [("POST", "/workflows/work/execute", PING_BODY.decode())],
            "connections": args.connections,
            "total": args.requests,
            "rate": args.requests / args.burst_seconds,
        }
        result = child("http", spec, timeout=600)
    bound = latency_bound(workers, queued, args.run_ms)
    return report_burst(result, bound, http_errors(warmup))


def report_burst(result: dict[str, Any], bound: float, warmup_errors: int) -> int:
    """Print a burst's figures; PASS or FAIL by LOAD-06's criterion."""
    accepted, busy = result["accepted_from_send"], result["busy_from_send"]
    print(
        f"sent {result['sent']} in {result['send_seconds']:.2f} s; all answered after "
        f"{result['elapsed']:.2f} s; statuses {result['statuses']}"
    )
    print(
        f"503 busy with Retry-After {result['busy']}, other 503 {result['bad_503']}, "
        f"socket errors {result['socket_errors']}, timeouts {result['timeouts']}, "
        f"connect errors {result['connect_errors']}"
    )
    print(
        f"accepted from send: p50 {accepted['p50_ms']:.1f} ms  p99 {accepted['p99_ms']:.1f} ms"
        f"  max {accepted['max_ms']:.1f} ms (bound {bound * 1e3:.0f} ms); p99 per quarter "
        + ", ".join(f"{p:.0f}" for p in result["accepted_p99_by_quarter_ms"])
        + " ms"
    )
    print(
        f"503 from send: p50 {busy['p50_ms']:.1f} ms  p99 {busy['p99_ms']:.1f} ms; "
        f"any answer from its due time: p99 {result['all_from_due']['p99_ms']:.0f} ms "
        f"max {result['all_from_due']['max_ms']:.0f} ms (client-side wait included)"
    )
    failures = []
    others = {s: c for s, c in result["statuses"].items() if s not in ("200", "503")}
    if others:
        failures.append(f"answers other than 200/503: {others}")
    if result["bad_503"]:
        failures.append(f"{result['bad_503']} 503 answers without Retry-After / code busy")
    errors = result["socket_errors"] + result["timeouts"] + result["connect_errors"]
    if errors or warmup_errors:
        failures.append(f"{errors} socket errors/timeouts, {warmup_errors} in the warm-up")
    if accepted["max_ms"] > bound * 1e3:
        failures.append(
            f"an accepted request took {accepted['max_ms']:.0f} ms, above {bound * 1e3:.0f} ms"
        )
    if not result["busy"]:
        print("note: no request was refused; the run queue never filled at this size")
    return verdict("LOAD-06", failures)


def load07(args: argparse.Namespace) -> int:
    """LOAD-07: soak at ``--fraction`` of capacity for ``--seconds``."""
    warmup = args.warmup if args.warmup is not None else max(30.0, args.seconds / 10)
    if warmup >= args.seconds:
        raise SystemExit("--warmup must be shorter than --seconds")
    with Server(run_ms=1) as server:
        full = capacity(server.port, server.token, SOAK)
        rate = full * args.fraction
        print(
            f"LOAD-07: soak at {args.fraction:.0%} of capacity ({full:.0f} req/s measured "
            f"with {CALIBRATE_CONNECTIONS} connections): {rate:.0f} req/s over "
            f"{args.connections} connections for {args.seconds} s (ping, work 1 ms, "
            f"GET /health); warm-up {warmup:.0f} s; {describe_pinning()}"
        )
        samples = soak(server, rate, args.seconds, args.connections, args.sample_seconds)
    result, series = samples["result"], samples["series"]
    after = [(t, rss, fds) for t, rss, fds in series if t >= warmup]
    if not after:
        raise SystemExit("no sample after the warm-up: lower --sample-seconds")
    base_rss, base_fds = after[0][1], after[0][2]
    end_rss = after[-1][1]
    growth = (end_rss - base_rss) / base_rss
    print("time s   RSS KiB   fds")
    step = max(1, len(series) // 12)
    for t, rss, fds in series[::step] + ([series[-1]] if (len(series) - 1) % step else []):
        print(f"{t:>6.0f} {rss:>9} {fds:>5}")
    print(
        f"requests {result['requests']} ({result['requests'] / result['seconds']:.0f}/s)  "
        f"p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms  "
        f"non-2xx {result['non2xx']}  socket errors {result['socket_errors']}  "
        f"timeouts {result['timeouts']}"
    )
    print(
        f"RSS after warm-up {base_rss} KiB, at the end {end_rss} KiB ({growth:+.1%}), "
        f"highest {max(r for _, r, _ in after)} KiB; fds after warm-up {base_fds}, "
        f"highest {max(f for _, _, f in after)}, at the end {after[-1][2]}"
    )
    slope = rss_slope(after)
    print(
        f"RSS trend after warm-up: {slope * 60:+.0f} KiB/min "
        f"({slope * 3600 / base_rss:+.1%} of the post-warm-up RSS per hour)"
    )
    failures = []
    if growth >= RSS_GROWTH_LIMIT:
        failures.append(f"RSS grew {growth:.1%} (limit {RSS_GROWTH_LIMIT:.0%})")
    if max(f for _, _, f in after) > base_fds + FD_TOLERANCE:
        failures.append(f"open fds rose more than {FD_TOLERANCE} above {base_fds}")
    if http_errors(result):
        failures.append(f"{http_errors(result)} errors")
    return verdict("LOAD-07", failures)


def rss_slope(samples: list[tuple[float, int, int]]) -> float:
    """Least-squares slope of RSS over time (KiB/s) of ``(t, rss, fds)`` samples."""
    if len(samples) < 2:
        return 0.0
    mean_t = sum(t for t, _, _ in samples) / len(samples)
    mean_r = sum(r for _, r, _ in samples) / len(samples)
    spread = sum((t - mean_t) ** 2 for t, _, _ in samples)
    if not spread:
        return 0.0
    return sum((t - mean_t) * (r - mean_r) for t, r, _ in samples) / spread


def soak(
    server: Server, rate: float, seconds: float, connections: int, every: float
) -> dict[str, Any]:
    """Load ``SOAK`` at ``rate`` for ``seconds`` while sampling the server's
    ``(seconds since start, RSS KiB, fds)`` every ``every`` s."""
    series: list[tuple[float, int, int]] = []
    if shutil.which("wrk"):
        command, script = wrk_command(server.port, server.token, SOAK, seconds, connections, rate)
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_pin_load,
        )
    else:
        spec = {
            "port": server.port,
            "token": server.token,
            "mix": [(m, p, b.decode()) for m, p, b in SOAK],
            "connections": connections,
            "seconds": seconds,
            "rate": rate,
        }
        script = ""
        command = [sys.executable, __file__, "--child", "http", json.dumps(spec)]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_pin_load,
        )
    started = time.monotonic()
    try:
        while process.poll() is None:
            rss, fds = process_usage(server.pid)
            series.append((time.monotonic() - started, rss, fds))
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=every)
        stdout, stderr = process.communicate()
    finally:
        if script:
            os.unlink(script)
    if script:
        result = wrk_result(stdout, stderr, process.returncode)
    else:
        raw = json.loads(stdout.strip().splitlines()[-1])
        answered = sum(raw["statuses"].values())
        result = {
            "requests": answered,
            "seconds": raw["elapsed"],
            "non2xx": answered - raw["ok"],
            "socket_errors": raw["socket_errors"] + raw["connect_errors"],
            "timeouts": raw["timeouts"],
            **{k: raw["all_from_send"][k] for k in ("p50_ms", "p99_ms", "max_ms")},
        }
    rss, fds = process_usage(server.pid)
    series.append((time.monotonic() - started, rss, fds))
    return {"result": result, "series": series}


def load08(args: argparse.Namespace) -> int:
    """LOAD-08: HTTP p99 with and without ``--clients`` WebSockets receiving events, in
    ``--rounds`` alternating rounds (baseline, then a WebSocket session) so background
    work on the machine falls on both alike."""
    round_seconds = max(1, round(args.seconds / args.rounds))
    nodes = ticker_nodes(round_seconds + 5)
    clients_per_run = max(1, math.ceil(args.clients / args.runs))
    with Server(ticker_nodes=nodes, max_workers=max(32, args.runs + 8)) as server:
        full = capacity(server.port, server.token, PING)
        rate = full * args.http_fraction
        print(
            f"LOAD-08: HTTP on a 1-node workflow at {rate:.0f} req/s ({args.http_fraction:.0%} "
            f"of {full:.0f} req/s) over {args.http_connections} connections, {args.rounds} "
            f"rounds of {round_seconds} s alone then beside {args.clients} WebSockets "
            f"({args.runs} runs of {nodes} nodes, {clients_per_run} clients each, about "
            f"{EVENTS_PER_NODE / TICKER_NODE_SECONDS:.0f} events/s per client); "
            f"{describe_pinning()}"
        )
        bases, loads, sessions = [], [], []
        for _ in range(args.rounds):
            cpu = process_cpu(server.pid)
            base = http_load(
                server.port, server.token, PING, round_seconds, args.http_connections, rate
            )
            base["server_cpu"] = (process_cpu(server.pid) - cpu) / base["seconds"]
            bases.append(base)
            loaded, events = ws_round(server, args, rate, round_seconds, clients_per_run, nodes)
            loads.append(loaded)
            sessions.append(events)
    return report_ws(combine_http(bases), combine_http(loads), combine_events(sessions))


def ws_round(
    server: Server,
    args: argparse.Namespace,
    rate: float,
    seconds: int,
    clients_per_run: int,
    nodes: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One WebSocket session (a ``--child ws`` process) with ``seconds`` of HTTP load
    beside it: the HTTP figures and the session's result."""
    spec = {
        "port": server.port,
        "token": server.token,
        "clients": args.clients,
        "clients_per_run": clients_per_run,
        "nodes": nodes,
    }
    command = [sys.executable, __file__, "--child", "ws", json.dumps(spec)]
    ws = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_pin_load_yielding,
    )
    assert ws.stdin is not None and ws.stdout is not None
    line = ws.stdout.readline()
    if not line.startswith("READY "):
        ws.kill()
        raise RuntimeError(f"the WebSocket clients failed to start: {line!r}")
    setup = json.loads(line[len("READY ") :])
    cpu, ws_cpu = process_cpu(server.pid), process_cpu(ws.pid)
    loaded = http_load(server.port, server.token, PING, seconds, args.http_connections, rate)
    loaded["server_cpu"] = (process_cpu(server.pid) - cpu) / loaded["seconds"]
    loaded["client_cpu"] = (process_cpu(ws.pid) - ws_cpu) / loaded["seconds"]
    ws.stdin.write("stop\n")
    ws.stdin.flush()
    output, _ = ws.communicate(timeout=nodes * TICKER_NODE_SECONDS + 120)
    events = json.loads(output.strip().splitlines()[-1])
    events.update(setup)
    return loaded, events


def combine_http(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of one HTTP load summed: p50 and p99 the median over rounds, max the
    highest, CPU shares averaged; ``p99s`` lists each round's p99."""
    total: dict[str, Any] = {
        key: sum(row[key] for row in rounds)
        for key in ("requests", "seconds", "non2xx", "socket_errors", "timeouts")
    }
    total["p50_ms"] = statistics.median(row["p50_ms"] for row in rounds)
    total["p99_ms"] = statistics.median(row["p99_ms"] for row in rounds)
    total["max_ms"] = max(row["max_ms"] for row in rounds)
    total["p99s"] = [row["p99_ms"] for row in rounds]
    for key in ("server_cpu", "client_cpu"):
        if key in rounds[0]:
            total[key] = statistics.mean(row[key] for row in rounds)
    return total


def combine_events(sessions: list[dict[str, Any]]) -> dict[str, Any]:
    """WebSocket sessions summed; rates and delays by their worst session."""
    total: dict[str, Any] = {
        key: sum(session[key] for session in sessions)
        for key in (
            "clients",
            "live",
            "dropped",
            "unfinished",
            "clients_with_loss",
            "lost_events",
            "out_of_order",
            "events_received",
            "window_seconds",
        )
    }
    total["sessions"] = len(sessions)
    total["errors"] = [frame for session in sessions for frame in session["errors"]][:5]
    total["events_expected_per_client"] = sessions[0]["events_expected_per_client"]
    rates = [session["events_per_client_per_second"] for session in sessions]
    total["events_per_client_per_second"] = {
        "mean": statistics.mean(rate["mean"] for rate in rates),
        "min": min(rate["min"] for rate in rates),
    }
    delays = [session["delivery_delay"] for session in sessions]
    total["delivery_delay"] = {
        key: max(delay[key] for delay in delays) for key in ("p50_ms", "p99_ms", "max_ms")
    }
    for key in ("connect_seconds", "subscribe_seconds"):
        total[key] = max(session[key] for session in sessions)
    return total


def report_ws(base: dict[str, Any], loaded: dict[str, Any], events: dict[str, Any]) -> int:
    """Print LOAD-08's figures; PASS or FAIL by its criterion."""
    print(
        f"WebSockets: {events['sessions']} sessions of {events['clients'] // events['sessions']}"
        f" clients, opened in {events['connect_seconds']:.1f} s at most, subscribed in "
        f"{events['subscribe_seconds']:.1f} s; live {events['live']}, dropped "
        f"{events['dropped']}, unfinished {events['unfinished']}"
    )
    rates, delay = events["events_per_client_per_second"], events["delivery_delay"]
    print(
        f"events: {events['events_received']} received ({events['events_expected_per_client']}"
        f" per client expected); per client {rates['mean']:.1f}/s mean, {rates['min']:.1f}/s "
        f"min over {events['window_seconds']:.0f} s; delivery delay p50 "
        f"{delay['p50_ms']:.1f} ms p99 {delay['p99_ms']:.1f} ms max {delay['max_ms']:.1f} ms"
    )
    print(
        f"clients missing events {events['clients_with_loss']} ({events['lost_events']} "
        f"events), out of order {events['out_of_order']}, error frames {events['errors']}"
    )
    for label, row in (("HTTP alone", base), ("HTTP + WS", loaded)):
        print(
            f"{label:<11} requests {row['requests']:>7} ({row['requests'] / row['seconds']:.0f}"
            f"/s)  p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms  max "
            f"{row['max_ms']:.2f} ms  errors {http_errors(row)}; p99 per round "
            + ", ".join(f"{p99:.1f}" for p99 in row["p99s"])
        )
    print("  (p50, p99: median over rounds; max: worst round)")
    print(
        f"server CPU: {base['server_cpu']:.0%} of a core alone, {loaded['server_cpu']:.0%} "
        f"beside the WebSockets; WebSocket client process {loaded['client_cpu']:.0%}"
    )
    ratio = loaded["p99_ms"] / base["p99_ms"] if base["p99_ms"] else math.inf
    print(f"HTTP p99 with WebSockets / without: {ratio:.2f} (limit {WS_P99_LIMIT:.2f})")
    failures = []
    if events["clients_with_loss"] or events["unfinished"]:
        failures.append(
            f"{events['clients_with_loss']} live clients missed or reordered events, "
            f"{events['unfinished']} never saw their run end"
        )
    if events["dropped"]:
        failures.append(f"{events['dropped']} clients were closed by the server")
    if http_errors(base) or http_errors(loaded):
        failures.append(f"{http_errors(base) + http_errors(loaded)} HTTP errors")
    if ratio > WS_P99_LIMIT:
        failures.append(f"HTTP p99 {ratio:.2f}x the baseline (limit {WS_P99_LIMIT:.2f}x)")
    return verdict("LOAD-08", failures)


def parse(argv: list[str]) -> argparse.Namespace:
    """The scenario and its options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin the server and load to separate CPUs"
    )
    scenarios = parser.add_subparsers(dest="scenario", required=True)
    one = scenarios.add_parser("load01", help="64 concurrent clients, 300 s")
    one.add_argument("--seconds", type=int, default=300)
    one.add_argument("--connections", type=int, default=64)
    one.add_argument("--p99-bound-ms", type=float, default=LOAD01_P99_BOUND_MS)
    six = scenarios.add_parser("load06", help="burst of 10,000 requests in 1 s")
    six.add_argument("--requests", type=int, default=10_000)
    six.add_argument("--burst-seconds", type=float, default=1.0)
    six.add_argument("--connections", type=int, default=500)
    six.add_argument("--run-ms", type=float, default=50.0, help="duration of one run")
    six.add_argument("--max-workers", type=int, default=None, help="default: the gateway's")
    six.add_argument("--max-queued", type=int, default=None, help="default: the gateway's")
    seven = scenarios.add_parser("load07", help="soak at 50 %% of capacity, 1 h")
    seven.add_argument("--seconds", type=int, default=3600)
    seven.add_argument("--warmup", type=float, default=None)
    seven.add_argument("--sample-seconds", type=float, default=10.0)
    seven.add_argument("--fraction", type=float, default=0.5)
    seven.add_argument("--connections", type=int, default=16)
    eight = scenarios.add_parser("load08", help="500 WebSockets beside HTTP load")
    eight.add_argument("--clients", type=int, default=500)
    eight.add_argument("--runs", type=int, default=10, help="ticker runs the clients share")
    eight.add_argument("--seconds", type=int, default=60, help="measured seconds in all")
    eight.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    eight.add_argument("--http-fraction", type=float, default=0.25)
    eight.add_argument("--http-connections", type=int, default=16)
    args = parser.parse_args(argv)
    for name in (
        "seconds",
        "connections",
        "requests",
        "clients",
        "runs",
        "rounds",
        "http_connections",
    ):
        if getattr(args, name, 1) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    connections = getattr(args, "connections", 0)
    clients = getattr(args, "clients", 0)
    if max(connections, clients) > CLIENTS_PER_SOURCE * 200:
        parser.error("too many connections for the loopback source addresses")
    return args


def main(argv: list[str]) -> int:
    """Run a child role (``--child KIND SPEC``) or a scenario."""
    if argv[:1] == ["--child"]:
        kind, spec = argv[1], json.loads(argv[2])
        if kind == "serve":
            pin(SERVER_CPU)
            asyncio.run(serve_gateway(spec))
        elif kind == "http":
            http_child(spec)
        elif kind == "ws":
            ws_child(spec)
        else:
            raise SystemExit(f"unknown child role {kind!r}")
        return 0
    args = parse(argv)
    if args.no_pin:
        os.environ[NO_PIN_ENV] = "1"
    scenario = {"load01": load01, "load06": load06, "load07": load07, "load08": load08}
    return scenario[args.scenario](args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
