"""Load checks at small sizes (security checklist 3.7: LOAD-01, LOAD-06, LOAD-07, LOAD-08).

The gateway runs in its own process on a free 127.0.0.1 port, exactly as the load
benchmark starts it (``benchmarks/bench_load.py``: JWT auth and rate limiting on, the
workflows ``ping``, ``work`` and ``ticker``); the load comes from this process through
the benchmark's asyncio HTTP and WebSocket clients. The assertions are about
correctness (every answer, every event); timing bounds are generous because the machine
is shared; the real latency figures come from the benchmark.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_bench():
    # As when run as a script: its directory is on sys.path for the modules it shares.
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(
        "bench_load", ROOT / "benchmarks" / "bench_load.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_load", module)
    spec.loader.exec_module(module)
    return module


bench = _load_bench()
WORK = [("POST", "/workflows/work/execute", bench.PING_BODY)]

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _no_pinning(monkeypatch):
    """Let the OS place the gateway process: tests share the machine."""
    monkeypatch.setenv(bench.NO_PIN_ENV, "1")


def no_errors(result: dict) -> bool:
    return result["socket_errors"] == result["timeouts"] == result["connect_errors"] == 0


def test_load01_short_64_concurrent_clients_every_answer_200():
    """LOAD-01 (short): 64 keep-alive clients on a 1-node workflow for 3 s: 0 errors."""
    with bench.Server() as server:
        result = asyncio.run(
            bench.drive_http(server.port, server.token, bench.PING, 64, seconds=3, timeout=20)
        )
    assert no_errors(result), result
    assert result["statuses"] == {"200": result["sent"]}
    assert result["sent"] > 64
    assert result["all_from_send"]["max_ms"] < 20_000


def test_load06_burst_beyond_threads_and_queue_answers_200_or_503_busy():
    """LOAD-06: 600 runs due within 0.5 s against 2 run threads and a queue of 4: every
    answer is 200 or 503 ``busy`` with ``Retry-After``, none hangs, accepted runs finish
    within a bound independent of the burst, and the queue drains afterwards."""
    with bench.Server(run_ms=100, max_workers=2, max_queued=4) as server:
        result = asyncio.run(
            bench.drive_http(server.port, server.token, WORK, 100, total=600, rate=1200, timeout=20)
        )
        after = asyncio.run(bench.drive_http(server.port, server.token, WORK, 1, total=1))
    assert no_errors(result), result
    assert set(result["statuses"]) == {"200", "503"}, result["statuses"]
    assert sum(result["statuses"].values()) == 600
    assert result["busy"] == result["statuses"]["503"] and result["bad_503"] == 0
    assert result["ok"] >= 6  # at least the threads plus the queue were accepted
    # Queue of 4 behind 2 threads of 0.1 s runs: about 0.3 s; 5 s is far above noise.
    assert result["accepted_from_send"]["max_ms"] < 5_000, result["accepted_from_send"]
    assert result["busy_from_send"]["max_ms"] < 5_000, result["busy_from_send"]
    assert after["statuses"] == {"200": 1}


def fd_counts(pid: int) -> tuple[int, int]:
    """``(open sockets, other open fds)`` of process ``pid``, from ``/proc``."""
    sockets = others = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except FileNotFoundError:
            continue  # closed while listing
        if target.startswith("socket:"):
            sockets += 1
        else:
            others += 1
    return sockets, others


def settled_usage(pid: int, sockets_floor: int | None) -> tuple[int, int, int]:
    """RSS (KiB), open sockets and other fds of ``pid`` once closed client connections
    are gone: waits up to 3 s for the sockets to come down to ``sockets_floor``, or,
    without one, for their count to stop changing (0.3 s unchanged)."""
    deadline = time.monotonic() + 3
    sockets, others = fd_counts(pid)
    unchanged_since = time.monotonic()
    while time.monotonic() < deadline:
        if sockets_floor is not None and sockets <= sockets_floor:
            break
        if sockets_floor is None and time.monotonic() - unchanged_since >= 0.3:
            break
        time.sleep(0.05)
        previous = sockets
        sockets, others = fd_counts(pid)
        if sockets != previous:
            unchanged_since = time.monotonic()
    return bench.process_usage(pid)[0], sockets, others


def test_load07_short_rss_and_open_fds_flat_over_repeated_batches():
    """LOAD-07 (short): batches of mixed requests (ping, a run on the run threads,
    /health), each over new connections; once the bounded run index and event buffers
    are full, the server's RSS and open fds (from /proc) stay flat and nothing fails:
    every client connection's socket is released, and other fds (store files) grow by
    at most one more pooled SQLite connection (database and WAL file)."""
    with bench.Server(run_ms=1, index_capacity=300) as server:

        def batch() -> dict:
            return asyncio.run(
                bench.drive_http(server.port, server.token, bench.SOAK, 16, total=600)
            )

        results = [batch() for _ in range(4)]  # warm-up: > 300 runs and > 256 buffers
        base_rss, base_sockets, base_others = settled_usage(server.pid, None)
        samples = []
        for _ in range(6):
            results.append(batch())
            samples.append(settled_usage(server.pid, base_sockets))
    for result in results:
        assert no_errors(result), result
        assert result["ok"] == result["sent"] == 600, result["statuses"]
    assert all(sockets <= base_sockets for _, sockets, _ in samples), (base_sockets, samples)
    assert max(others for *_, others in samples) <= base_others + 2, (base_others, samples)
    # 3,600 requests after the warm-up: a leak of 1 KiB a request would add 3.5 MiB.
    assert samples[-1][0] <= base_rss * 1.05 + 2048, (base_rss, samples)


def test_load08_short_websockets_receive_every_event_in_order_under_http_load():
    """LOAD-08 (short): 50 WebSockets, 10 per run of 5 ticker runs (about 30 events/s
    each) while HTTP requests run: every client receives every event of its run, in
    order, none is dropped, and every HTTP request is answered 200."""
    nodes = 20
    with bench.Server(ticker_nodes=nodes, tick=0.1) as server:
        http: dict = {}

        async def window() -> None:
            http.update(await bench.drive_http(server.port, server.token, bench.PING, 8, seconds=2))

        events = asyncio.run(
            asyncio.wait_for(bench.ws_phase(server.port, server.token, 50, 10, nodes, window), 60)
        )
    assert events["runs"] == 5
    assert events["dropped"] == 0 and events["unfinished"] == 0, events
    assert events["clients_with_loss"] == 0 and events["errors"] == [], events
    assert events["events_received"] == 50 * len(bench.expected_events(nodes))
    assert no_errors(http) and http["statuses"] == {"200": http["sent"]}, http
