"""Gateway benchmark: kailash_nb's gateway against a bare Tornado handler, one run.

Two servers, each in its own process on a free 127.0.0.1 port, measured one after the
other with the same load:

- **bare**: a Tornado application with one handler answering ``{"ok": true}``;
- **gateway**: ``create_gateway`` serving a 1-node ``PythonCodeNode`` workflow at
  ``POST /workflows/ping/execute`` with JWT verification (HS256, a 48-byte secret, a
  token minted by the gateway's ``KailashJWTAuth``) and rate limiting on, the limit set
  far above the load (``max_requests_per_minute=60_000_000``, one key for the run).
  Its code, ``result = {'pong': True}``, is straight-line glue code, which the gateway
  runs on its event loop; ``--threaded`` uses ``result = dict(pong=True)`` instead (a
  call: the run goes to the gateway's run threads and back), the figure for code that
  may block.

Both get the same request: ``POST`` with a small JSON body and the bearer token. The
load comes from a second process on 127.0.0.1 holding 32 keep-alive connections: ``wrk``
when installed (one thread, a Lua hook counting non-2xx statuses), otherwise a raw-socket
asyncio HTTP/1.1 client (``--client python``) bounded in seconds and in requests. Both
servers run at once; after a one-second warm-up each, the measured seconds are split into
alternating rounds (bare, gateway, bare, ...) so background work on the machine falls on
both alike. With at least two CPUs the servers are pinned to CPU 0 and the load process
to CPU 1, so the client never takes the server's core (``--no-pin`` to let the OS place
them).

``--access-control MODE`` measures what access control costs instead: the same gateway
(baseline) against that gateway created with ``runtime=AccessControlledRuntime(...)``
(**guarded**), whose policy file allows the caller's role to execute the workflow and
read its outputs; every request then makes three decisions (the workflow, the node, its
output). MODE is the runtime's audit: ``batched`` (``audit_write="batched"``, the
setting for a gateway), ``sync`` (each request's records stored before it is answered)
or ``off``. Target: guarded/gateway >= 0.90.

Printed: requests/s of both (and per round), the ratio gateway/bare (target >= 0.50),
p50 (median over rounds) and p99 (worst round) latency at 32 connections, and error
counts (non-2xx statuses, socket errors, timeouts). Exits 1 on any error, 2 when the
ratio is below the target, 0 otherwise.

Run: ``python benchmarks/bench_gateway.py [--seconds N] [--rounds R]`` (default 10 s
per server in 5 rounds, about 25 s in all). ``--profile`` prints a cProfile of the
gateway process's event-loop thread to stderr at exit (it slows the gateway down; the
workflow threads are not profiled).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from servers import NO_PIN_ENV, ServerProcess, announce, can_pin, pin, until_terminated

CONNECTIONS = 32
WARMUP_SECONDS = 1
TARGET_RATIO = 0.50
#: Far above any load this machine can produce, so no request is ever refused.
RATE_LIMIT_PER_MINUTE = 60_000_000
#: The python client stops after this many requests even if time remains.
MAX_REQUESTS = 2_000_000
REQUEST_BODY = b'{"parameters": {}}'
WORKFLOW = "ping"
WORKFLOW_CODE = "result = {'pong': True}"
SERVER_CPU = 0
#: Below this the bare figure is likely limited by the client, not by Tornado.
MIN_BARE_PER_SECOND = 3000
LOAD_CPU = 1
#: Set (by ``--threaded``) to serve code that runs on the gateway's run threads.
THREADED_ENV = "KAILASH_NB_BENCH_THREADED"
THREADED_WORKFLOW_CODE = "result = dict(pong=True)"
#: Set (by ``--access-control MODE``) to the guarded server's audit mode.
ACCESS_ENV = "KAILASH_NB_BENCH_ACCESS"
ACCESS_TARGET_RATIO = 0.90
ACCESS_POLICY = """\
rules:
  - id: analysts-ping
    effect: allow
    actions: [execute, read_output]
    resource: {workflow: ping}
    subject: {role: analyst}
"""


# -- servers (run with --serve KIND in a child process) ---------------------------------
async def serve_bare() -> None:
    """A Tornado app with one handler returning a small JSON body, until SIGTERM."""
    import tornado.httpserver
    import tornado.netutil
    import tornado.web

    class Handler(tornado.web.RequestHandler):
        """Answers ``{"ok": true}`` to GET and POST."""

        def get(self) -> None:
            """Write the JSON body."""
            self.write({"ok": True})

        post = get

    app = tornado.web.Application([(r"/.*", Handler)], log_function=lambda handler: None)
    sockets = tornado.netutil.bind_sockets(0, address="127.0.0.1")
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    announce(port=sockets[0].getsockname()[1], token="")
    await until_terminated()
    server.stop()
    await server.close_all_connections()


def _access_runtime(database_url: str, audit: str) -> Any:
    """The guarded server's ``AccessControlledRuntime`` (``ACCESS_POLICY``; ``audit`` is
    ``batched``, ``sync`` or ``off``)."""
    from kailash_nb.runtime.access_controlled import AccessControlledRuntime

    policy = Path(tempfile.mkdtemp()) / "policies.yaml"
    policy.write_text(ACCESS_POLICY)
    return AccessControlledRuntime(
        policies_file=policy,
        audit_enabled=audit != "off",
        audit_write="sync" if audit == "sync" else "batched",
        database_url=database_url,
        history=False,
    )


async def serve_gateway(database_url: str, guarded: bool = False) -> None:
    """The gateway serving the 1-node workflow with JWT auth and rate limiting on; with
    ``guarded``, under an access policy (``ACCESS_ENV`` names the audit mode)."""
    from kailash_nb import WorkflowBuilder
    from kailash_nb.middleware.gateway import create_gateway
    from kailash_nb.security import SecurityConfig

    config = SecurityConfig(
        jwt_secret=secrets.token_urlsafe(48),
        enable_rate_limiting=True,
        max_requests_per_minute=RATE_LIMIT_PER_MINUTE,
    )
    runtime = _access_runtime(database_url, os.environ[ACCESS_ENV]) if guarded else None
    gateway = create_gateway(
        title="bench",
        security_config=config,
        database_url=database_url,
        enable_docs=False,
        runtime=runtime,
    )
    assert gateway.auth is not None and gateway.rate_limiter is not None
    builder = WorkflowBuilder()
    threaded = os.environ.get(THREADED_ENV) == "1"
    code = THREADED_WORKFLOW_CODE if threaded else WORKFLOW_CODE
    builder.add_node("PythonCodeNode", "ping", {"code": code})
    gateway.register_workflow(WORKFLOW, builder.build(), description="benchmark")
    if (WORKFLOW in gateway.inline_workflows) == threaded:
        raise RuntimeError(f"{code!r} did not run where the benchmark expects it")
    port = await gateway.start("127.0.0.1", 0)
    pair = gateway.auth.issue_tokens("bench-client", tenant_id="bench", roles=["analyst"])
    announce(port=port, token=pair.access_token)
    await until_terminated()
    await gateway.stop(timeout=10)


def serve(kind: str, database_url: str, profile: bool) -> None:
    """Entry point of a server process: pin, optionally profile, serve until SIGTERM."""
    pin(SERVER_CPU)
    coroutine = serve_bare() if kind == "bare" else serve_gateway(database_url, kind == "guarded")
    if not profile:
        asyncio.run(coroutine)
        return
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(coroutine)
    finally:
        profiler.disable()
        stats = pstats.Stats(profiler, stream=sys.stderr).strip_dirs()
        sys.stderr.write(f"\n=== cProfile of the {kind} server: top by own time ===\n")
        stats.sort_stats("tottime").print_stats(25)
        sys.stderr.write(f"=== cProfile of the {kind} server: top by cumulative time ===\n")
        stats.sort_stats("cumulative").print_stats(40)


def server_process(kind: str, database_url: str, profile: bool = False) -> ServerProcess:
    """A server child process of ``kind``; ``with server_process(...) as s`` gives ``s.port`` and
    ``s.token``."""
    command = [sys.executable, __file__, "--serve", kind, "--database-url", database_url]
    return ServerProcess(command + (["--profile"] if profile else []), what=f"the {kind} server")


# -- load: wrk ---------------------------------------------------------------------------
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%(body)s'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non2xx = 0; last_bad = 0 end
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


def _load_preexec() -> None:
    """Run in the load process before exec: pin it to the load CPU."""
    pin(LOAD_CPU)


def run_wrk(url: str, token: str, seconds: int, connections: int) -> dict[str, Any]:
    """Drive ``url`` with wrk (one thread, ``connections`` connections, ``seconds`` s)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"body": REQUEST_BODY.decode(), "token": token})
    try:
        command = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-s",
            script.name,
            url,
        ]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            preexec_fn=_load_preexec,
        )
    finally:
        os.unlink(script.name)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")


# -- load: python client (run with --load in a child process) ---------------------------
async def _python_load(
    host: str, port: int, path: str, token: str, seconds: float, connections: int
) -> dict[str, Any]:
    """``connections`` keep-alive HTTP/1.1 connections sending the benchmark POST until
    ``seconds`` elapsed or ``MAX_REQUESTS`` were answered."""
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {len(REQUEST_BODY)}\r\n\r\n"
    ).encode() + REQUEST_BODY
    latencies: list[float] = []
    counts = {"non2xx": 0, "last_bad_status": 0, "socket_errors": 0, "timeouts": 0}
    started = time.perf_counter()
    deadline = started + seconds

    async def connection() -> None:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            counts["socket_errors"] += 1
            return
        try:
            while time.perf_counter() < deadline and len(latencies) < MAX_REQUESTS:
                sent = time.perf_counter()
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length:
                    await asyncio.wait_for(reader.readexactly(length), 5)
                latencies.append(time.perf_counter() - sent)
                if not 200 <= status <= 299:
                    counts["non2xx"] += 1
                    counts["last_bad_status"] = status
        except TimeoutError:
            counts["timeouts"] += 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            counts["socket_errors"] += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def percentile(fraction: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(fraction * len(latencies)))] * 1e3

    return {
        "requests": len(latencies),
        "seconds": elapsed,
        **counts,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "max_ms": latencies[-1] * 1e3 if latencies else 0.0,
    }


def run_python_client(url: str, token: str, seconds: int, connections: int) -> dict[str, Any]:
    """Drive ``url`` from a child process running the asyncio raw-socket client."""
    command = [
        sys.executable,
        __file__,
        "--load",
        url,
        "--token",
        token,
        "--seconds",
        str(seconds),
        "--connections",
        str(connections),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, preexec_fn=_load_preexec
    )
    if done.returncode != 0:
        raise RuntimeError(f"load process failed ({done.returncode}): {done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def load_main(url: str, token: str, seconds: int, connections: int) -> None:
    """Entry point of the python load process: print one JSON line of results."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1":
        raise SystemExit("the load targets 127.0.0.1 only")
    result = asyncio.run(
        _python_load(parts.hostname, parts.port or 80, parts.path, token, seconds, connections)
    )
    print(json.dumps(result))


# -- the benchmark -----------------------------------------------------------------------
def smoke_check(url: str, token: str) -> dict[str, str]:
    """One request before the load: it must answer 2xx; returns its headers."""
    import httpx

    response = httpx.post(
        url,
        content=REQUEST_BODY,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        timeout=15,
    )
    if not response.is_success:
        raise RuntimeError(
            f"smoke request to {url} answered {response.status_code}: {response.text}"
        )
    return dict(response.headers)


class Target:
    """A started server of one ``kind``, its request URL and bearer token."""

    def __init__(self, kind: str, server: ServerProcess) -> None:
        self.kind = kind
        path = "/" if kind == "bare" else f"/workflows/{WORKFLOW}/execute"
        self.url = f"http://127.0.0.1:{server.port}{path}"
        self.token = server.token or "unused"


def check(target: Target) -> None:
    """One request each: 2xx, and the gateway's answer carries rate-limit headers."""
    headers = smoke_check(target.url, target.token)
    if target.kind != "bare" and "x-ratelimit-limit" not in {k.lower() for k in headers}:
        raise RuntimeError("the gateway answered without rate-limit headers")


def measure(
    targets: list[Target], seconds: int, rounds: int, client: str
) -> dict[str, dict[str, Any]]:
    """Warm every target up, then load them in turn for ``rounds`` rounds of
    ``seconds / rounds`` seconds each (alternating, so background load on the machine
    falls on both alike); sum the rounds per target."""
    drive = run_wrk if client == "wrk" else run_python_client
    per_round = max(1, round(seconds / rounds))
    totals: dict[str, dict[str, Any]] = {}
    for target in targets:
        warmup = drive(target.url, target.token, WARMUP_SECONDS, CONNECTIONS)
        totals[target.kind] = {
            "requests": 0,
            "seconds": 0.0,
            "non2xx": 0,
            "socket_errors": 0,
            "timeouts": 0,
            "last_bad_status": warmup["last_bad_status"],
            "warmup_errors": errors(warmup),
            "p50s": [],
            "p99s": [],
            "max_ms": 0.0,
            "round_rates": [],
        }
    for _ in range(rounds):
        for target in targets:
            result = drive(target.url, target.token, per_round, CONNECTIONS)
            total = totals[target.kind]
            for key in ("requests", "seconds", "non2xx", "socket_errors", "timeouts"):
                total[key] += result[key]
            total["last_bad_status"] = result["last_bad_status"] or total["last_bad_status"]
            total["p50s"].append(result["p50_ms"])
            total["p99s"].append(result["p99_ms"])
            total["max_ms"] = max(total["max_ms"], result["max_ms"])
            total["round_rates"].append(result["requests"] / result["seconds"])
    for total in totals.values():
        total["per_second"] = total["requests"] / total["seconds"]
        total["p50_ms"] = statistics.median(total["p50s"])
        total["p99_ms"] = max(total["p99s"])
    return totals


def errors(result: dict[str, Any]) -> int:
    """Non-2xx responses, socket errors and timeouts of one load run."""
    return int(result["non2xx"] + result["socket_errors"] + result["timeouts"])


def main() -> int:
    """Parse arguments; serve, load, or run the whole benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per server")
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator (auto: wrk when installed)",
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="alternating rounds the seconds are split into"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the gateway process")
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin the server and load to separate CPUs"
    )
    parser.add_argument(
        "--threaded",
        action="store_true",
        help="serve code with a call, which runs on the gateway's run threads",
    )
    parser.add_argument(
        "--access-control",
        choices=("batched", "sync", "off"),
        help="compare the gateway with and without an access policy (audit mode)",
    )
    parser.add_argument("--serve", choices=("bare", "gateway", "guarded"), help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--token", default="", help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=CONNECTIONS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1 <= args.seconds <= 120:
        parser.error("--seconds must be between 1 and 120")
    if args.serve:
        serve(args.serve, args.database_url, args.profile)
        return 0
    if args.load:
        load_main(args.load, args.token, args.seconds, args.connections)
        return 0
    if not 1 <= args.rounds <= args.seconds:
        parser.error("--rounds must be between 1 and --seconds")

    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    if args.no_pin:
        os.environ[NO_PIN_ENV] = "1"
    if args.threaded:
        os.environ[THREADED_ENV] = "1"
    # The baseline and the measured server: bare Tornado against the gateway, or the
    # gateway against itself under an access policy.
    base_kind, measured_kind, target_ratio = "bare", "gateway", TARGET_RATIO
    if args.access_control:
        os.environ[ACCESS_ENV] = args.access_control
        base_kind, measured_kind, target_ratio = "gateway", "guarded", ACCESS_TARGET_RATIO
    pinned = can_pin()
    print(
        f"gateway benchmark: {CONNECTIONS} connections, {args.seconds} s per server in "
        f"{args.rounds} alternating rounds after a {WARMUP_SECONDS} s warm-up, client={client}, "
        + (f"server on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}" if pinned else "not pinned")
        + (", workflow on the run threads" if args.threaded else ", workflow on the event loop")
        + (f", access control with audit {args.access_control}" if args.access_control else "")
    )
    with tempfile.TemporaryDirectory() as directory:
        database_url = f"sqlite:///{Path(directory) / 'bench.db'}"
        with (
            server_process(base_kind, database_url) as base_server,
            server_process(measured_kind, database_url, profile=args.profile) as measured_server,
        ):
            targets = [Target(base_kind, base_server), Target(measured_kind, measured_server)]
            for target in targets:
                check(target)
            totals = measure(targets, args.seconds, args.rounds, client)
    base, measured = totals[base_kind], totals[measured_kind]
    rows = ((base_kind, base), (measured_kind, measured))

    ratio = measured["per_second"] / base["per_second"]
    header = f"{'server':<10}{'requests':>10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
    header += f"{'max ms':>9}{'non-2xx':>9}{'sock err':>9}{'timeouts':>9}"
    print(header)
    for label, row in rows:
        print(
            f"{label:<10}{row['requests']:>10}{row['per_second']:>10.0f}{row['p50_ms']:>9.2f}"
            f"{row['p99_ms']:>9.2f}{row['max_ms']:>9.2f}{row['non2xx']:>9}"
            f"{row['socket_errors']:>9}{row['timeouts']:>9}"
        )
    for label, row in rows:
        rates = ", ".join(f"{rate:.0f}" for rate in row["round_rates"])
        print(f"  {label} req/s per round: {rates}")
    print("  (p50: median over rounds; p99 and max: worst round)")
    print(
        f"ratio {measured_kind}/{base_kind} requests/s: {ratio:.2f} "
        f"(target >= {target_ratio:.2f}); p99 at {CONNECTIONS} connections: "
        f"{measured_kind} {measured['p99_ms']:.2f} ms, {base_kind} {base['p99_ms']:.2f} ms"
    )
    if base_kind == "bare" and base["per_second"] < MIN_BARE_PER_SECOND:
        print(
            f"warning: bare Tornado below {MIN_BARE_PER_SECOND} requests/s: the load client or "
            "other work on the machine limits the figures; the ratio is not meaningful"
        )
    total_errors = sum(errors(row) + row["warmup_errors"] for _, row in rows)
    print(f"errors (warm-up included): {total_errors}")
    for label, row in rows:
        if row["last_bad_status"]:
            print(f"  {label}: last non-2xx status {row['last_bad_status']}")
    if total_errors:
        return 1
    if ratio < target_ratio:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
