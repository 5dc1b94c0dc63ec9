"""``create_gateway(worker_processes=2)`` served for real: a subprocess runs
``gateway.run()``, which forks two workers on one port. Requests spread over both
workers (``/health`` names the answering worker's pid), runs are readable from every
worker and after a restart (store schema v5), SIGTERM drains, a killed worker is
restarted, a crash loop exits non-zero, and the rate limit holds across workers:
globally through Redis, split evenly without it (LOAD-04)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import httpx
import pytest
from _gateway_server import ServedGateway

from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.middleware.gateway_errors import GatewayConfigurationError
from kailash_nb.security import SecurityConfig

SECRET = "kailash-nb-worker-tests-0123456789-abcdefghijkl"
AUDIENCE = "kailash-api"

SERVER = textwrap.dedent(
    '''
    """A gateway with two workflows served by ``gateway.run()`` (argv: url rpm workers)."""
    import logging
    import sys

    from kailash_nb import WorkflowBuilder
    from kailash_nb.middleware.gateway import create_gateway
    from kailash_nb.nodes.code import PythonCodeNode
    from kailash_nb.security import SecurityConfig


    def double(x: int) -> int:
        """Twice x."""
        return x * 2


    def slow(x: int, seconds: float) -> int:
        """x, after sleeping."""
        import time

        time.sleep(seconds)
        return x


    def crash(x: int) -> int:
        """Kill the worker running this node."""
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
        return x


    def main() -> None:
        url, rpm, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
        logging.getLogger("kailash_nb.middleware.access").setLevel(logging.WARNING)
        config = SecurityConfig(
            jwt_secret=sys.argv[4], audience="kailash-api", max_requests_per_minute=rpm
        )
        gateway = create_gateway(
            security_config=config, database_url=url, worker_processes=workers
        )
        for function in (double, slow, crash):
            builder = WorkflowBuilder()
            builder.add_node(PythonCodeNode.from_function(function), function.__name__)
            gateway.register_workflow(function.__name__, builder.build())
        gateway.run("127.0.0.1", 0)


    if __name__ == "__main__":
        main()
    '''
)


class WorkerGateway:
    """The server script in a subprocess; ``port`` once it serves."""

    def __init__(self, tmp_path: Path, url: str, *, rpm: int = 100_000, env=None) -> None:
        script = tmp_path / "serve_workers.py"
        script.write_text(SERVER)
        self.log_path = tmp_path / f"gateway-{uuid.uuid4().hex[:6]}.log"
        self._log = self.log_path.open("wb")
        environment = {**os.environ, **(env or {})}
        if env is None or "KAILASH_NB_REDIS_URL" not in env:
            environment.pop("KAILASH_NB_REDIS_URL", None)
        self.process = subprocess.Popen(
            [sys.executable, str(script), url, str(rpm), "2", SECRET],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
        self.url = url
        self.port = self._wait_for_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.auth = KailashJWTAuth(
            config=SecurityConfig(jwt_secret=SECRET, audience=AUDIENCE), store_url=url
        )
        self._wait_until_serving()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for line in self.log().splitlines():
                if "workers serving on 127.0.0.1:" in line:
                    return int(line.rsplit(":", 1)[1])
            if self.process.poll() is not None:
                raise AssertionError(f"gateway exited early:\n{self.log()}")
            time.sleep(0.02)
        raise AssertionError(f"gateway did not bind:\n{self.log()}")

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.02)
        raise AssertionError(f"gateway did not answer:\n{self.log()}")

    def headers(self, subject: str, tenant: str = "acme", roles=("analyst",)) -> dict[str, str]:
        pair = self.auth.issue_tokens(subject, tenant_id=tenant, roles=list(roles))
        return {"Authorization": f"Bearer {pair.access_token}"}

    def client(self) -> httpx.Client:
        """A client on one new keep-alive connection (so on one worker)."""
        return httpx.Client(base_url=self.base, timeout=10, limits=httpx.Limits(max_connections=1))

    def clients_per_worker(self) -> dict[int, httpx.Client]:
        """One connected client per worker, keyed by the worker's pid."""
        found: dict[int, httpx.Client] = {}
        for _ in range(200):
            client = self.client()
            pid = client.get("/health").json()["worker_pid"]
            if pid in found:
                client.close()
            else:
                found[pid] = client
            if len(found) == 2:
                return found
        raise AssertionError(f"connections never reached both workers: {sorted(found)}")

    def worker_pids(self) -> set[int]:
        return set(children(self.process.pid))

    def stop(self, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def close(self) -> None:
        if self.process.poll() is None:
            for pid in self.worker_pids():
                os.kill(pid, signal.SIGKILL)
            self.process.kill()
            self.process.wait(10)
        self._log.close()


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def poll(call, until, timeout: float = 3.0):
    """``call()`` until ``until(result)`` or ``timeout`` seconds; the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = call()
        if until(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


# -- configuration ------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, True, 2.0, "2"])
def test_worker_processes_must_be_a_positive_int(value):
    with pytest.raises(GatewayConfigurationError, match="worker_processes"):
        create_gateway(worker_processes=value)


def test_start_refuses_several_workers(tmp_path):
    gateway = create_gateway(
        worker_processes=2, database_url=f"sqlite:///{tmp_path / 'refused.db'}"
    )
    with pytest.raises(GatewayConfigurationError, match=r"gateway.run\(host, port\)"):
        asyncio.run(gateway.start("127.0.0.1", 0))


def test_run_with_workers_refuses_a_running_event_loop(tmp_path):
    gateway = create_gateway(worker_processes=2, database_url=f"sqlite:///{tmp_path / 'loop.db'}")

    async def inside_a_loop() -> None:
        gateway.run("127.0.0.1", 0)

    with pytest.raises(GatewayConfigurationError, match="running event loop"):
        asyncio.run(inside_a_loop())


def test_load04_split_limit_too_small_is_refused(monkeypatch):
    monkeypatch.delenv("KAILASH_NB_REDIS_URL", raising=False)
    config = SecurityConfig(jwt_secret=SECRET, max_requests_per_minute=3)
    with pytest.raises(GatewayConfigurationError, match="KAILASH_NB_REDIS_URL"):
        create_gateway(security_config=config, worker_processes=4)


@pytest.mark.slow
def test_serve_cli_workers_serve_the_notebook_from_two_processes(tmp_path):
    """``kailash-nb serve --workers 2`` forks two workers after running the cells."""
    notebook = tmp_path / "publish.ipynb"
    shutil.copy(Path(__file__).parents[2] / "notebooks" / "04-publish.ipynb", notebook)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("KAILASH_NB_JWT_SECRET", "KAILASH_NB_REDIS_URL")
    }
    env["KAILASH_NB_DATABASE_URL"] = f"sqlite:///{tmp_path / 'serve.db'}"
    log = (tmp_path / "serve.log").open("wb")
    command = [sys.executable, "-m", "kailash_nb.cli", "serve", str(notebook), "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", "2"], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not answer /health"
            time.sleep(0.05)  # polling interval, not a wait for readiness
        pids = set()
        for _ in range(200):
            pids.add(httpx.get(f"{base}/health", timeout=5).json()["worker_pid"])
            if len(pids) == 2:
                break
        assert pids == set(children(process.pid))
        response = httpx.post(f"{base}/workflows/pricing/execute", json={}, timeout=10)
        assert response.status_code == 200 and response.json()["status"] == "completed"
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        text = (tmp_path / "serve.log").read_text()
        assert "threads running before" not in text  # the shell's history thread stopped
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        log.close()


# -- two workers, one port ----------------------------------------------------------


def run_spread_and_share(tmp_path, url):
    """Requests reach both workers; a run started on one is read from the other, with
    its events replayed from the store, and from a restarted (single-process) gateway."""
    served = WorkerGateway(tmp_path, url)
    try:
        clients = served.clients_per_worker()
        (first_pid, first), (second_pid, second) = clients.items()
        assert first_pid != second_pid and {first_pid, second_pid} == served.worker_pids()
        owner = served.headers("ann")
        started = first.post(
            "/workflows/double/execute", json={"parameters": {"double": {"x": 21}}}, headers=owner
        )
        assert started.status_code == 200, started.text
        run_url = f"/runs/{started.json()['run_id']}"
        # Recorded by worker one within its flush interval (0.1 s), read by worker two; its
        # start and its end may land in two batches, so wait for the end.
        remote = poll(
            lambda: second.get(run_url, headers=owner),
            lambda r: r.status_code == 200 and r.json()["status"] != "running",
        )
        assert remote.status_code == 200, remote.text
        body = remote.json()
        assert body["status"] == "completed" and body["results"] == {"double": {"result": 42}}
        assert body["workflow"] == "double" and body["nodes"][0]["node_id"] == "double"
        assert second.get("/health").json()["worker_pid"] == second_pid
        # The ownership rule, on the worker that only has the stored record.
        assert second.get(run_url, headers=served.headers("bob")).status_code == 404
        admin = served.headers("root", roles=("admin",))
        assert second.get(run_url, headers=admin).status_code == 200
        other_admin = served.headers("root", tenant="globex", roles=("admin",))
        assert second.get(run_url, headers=other_admin).status_code == 404
        events = second.get(f"{run_url}/events", headers=owner)
        assert events.status_code == 200
        assert events.headers["content-type"].startswith("text/event-stream")
        frames = [line for line in events.text.splitlines() if line.startswith("event:")]
        assert frames == ["event: node", "event: node", "event: run"]
        assert '"state":"completed"' in events.text.rsplit("event: run", 1)[1]
        assert second.get(f"{run_url}/events", headers=served.headers("bob")).status_code == 404
        for client in clients.values():
            client.close()
        assert served.stop() == 0
    finally:
        served.close()
    restarted = create_gateway(
        security_config=SecurityConfig(jwt_secret=SECRET, audience=AUDIENCE), database_url=url
    )
    with ServedGateway(restarted) as server:
        after = server.client.get(run_url, headers=served.headers("ann"))
        assert after.status_code == 200 and after.json()["results"] == {"double": {"result": 42}}


@pytest.mark.slow
def test_workers_spread_requests_and_share_runs_sqlite(tmp_path, sqlite_url):
    run_spread_and_share(tmp_path, sqlite_url)


@pytest.mark.slow
@pytest.mark.postgres
def test_workers_spread_requests_and_share_runs_postgres(tmp_path, pg_url):
    run_spread_and_share(tmp_path, pg_url)


@pytest.mark.slow
def test_sigterm_drains_in_flight_runs_and_every_process_exits_0(tmp_path, sqlite_url):
    served = WorkerGateway(tmp_path, sqlite_url)
    try:
        workers = served.worker_pids()
        assert len(workers) == 2
        owner = served.headers("ann")
        with served.client() as client:
            accepted = client.post(
                "/workflows/slow/execute?wait=false",
                json={"parameters": {"slow": {"x": 5, "seconds": 1.0}}},
                headers=owner,
            )
        assert accepted.status_code == 202, accepted.text
        assert served.stop() == 0, served.log()
        assert not any(alive(pid) for pid in workers)
        assert "exited unexpectedly" not in served.log()
    finally:
        served.close()
    restarted = create_gateway(
        security_config=SecurityConfig(jwt_secret=SECRET, audience=AUDIENCE),
        database_url=sqlite_url,
    )
    with ServedGateway(restarted) as server:
        run = server.client.get(accepted.json()["run_url"], headers=owner).json()
        assert run["status"] == "completed" and run["results"] == {"slow": {"result": 5}}


@pytest.mark.slow
def test_a_killed_worker_is_restarted_and_its_run_reads_interrupted(tmp_path, sqlite_url):
    served = WorkerGateway(tmp_path, sqlite_url)
    try:
        before = served.worker_pids()
        clients = served.clients_per_worker()
        victim, survivor = (clients[pid] for pid in sorted(clients))
        owner = served.headers("ann")
        accepted = victim.post(
            "/workflows/slow/execute?wait=false",
            json={"parameters": {"slow": {"x": 1, "seconds": 30}}},
            headers=owner,
        )
        run_url = accepted.json()["run_url"]
        running = poll(lambda: survivor.get(run_url, headers=owner), lambda r: r.status_code == 200)
        assert running.json()["status"] == "running"
        os.kill(min(clients), signal.SIGKILL)
        after = poll(
            served.worker_pids, lambda pids: len(pids) == 2 and min(clients) not in pids, timeout=4
        )
        assert len(after) == 2 and min(clients) not in after and after & before, served.log()
        restarted = (after - before).pop()
        for _ in range(200):
            with served.client() as client:
                if client.get("/health").json()["worker_pid"] == restarted:
                    break
        else:
            raise AssertionError("the restarted worker never answered")
        # The restarted worker opened the store and marked the dead worker's run.
        ended = poll(
            lambda: survivor.get(run_url, headers=owner).json(),
            lambda body: body["status"] != "running",
        )
        assert ended["status"] == "interrupted" and "ended before" in ended["error"]["message"]
        events = survivor.get(f"{run_url}/events", headers=owner).text
        assert '"state":"interrupted"' in events and "ended before the run finished" in events
        for client in clients.values():
            client.close()
        assert served.stop() == 0, served.log()
        assert "exited unexpectedly with signal SIGKILL" in served.log()
    finally:
        served.close()


@pytest.mark.slow
def test_workers_that_keep_dying_make_the_gateway_exit_non_zero(tmp_path, sqlite_url):
    served = WorkerGateway(tmp_path, sqlite_url)
    try:
        headers = served.headers("ann")
        deadline = time.monotonic() + 8
        while served.process.poll() is None and time.monotonic() < deadline:
            try:
                with served.client() as client:
                    client.post(
                        "/workflows/crash/execute",
                        json={"parameters": {"crash": {"x": 1}}},
                        headers=headers,
                    )
            except httpx.TransportError:
                pass  # the worker died under the request, as intended
        assert served.process.wait(10) != 0, served.log()
        assert "keep dying" in served.log()
        assert not served.worker_pids()
    finally:
        served.close()


# -- the stored run records (schema v5) ---------------------------------------------


def test_gateway_run_records_are_batched_with_owner_results_and_error(database_url):
    """Notes are written by the recorder's batches: the first inserts, later ones
    update; an error survives as JSON, results above the cap only as their size."""
    from kailash_nb.runtime.events import EventBus
    from kailash_nb.runtime.recorder import RunRecorder
    from kailash_nb.store.run_history import MAX_STORED_RESULTS_BYTES, GatewayRunNote, RunStore

    store = RunStore(database_url)
    recorder = RunRecorder(store, EventBus())
    ok, bad, big = (str(uuid.uuid4()) for _ in range(3))
    try:
        for run_id in (ok, bad, big):
            recorder.record_gateway_run(
                GatewayRunNote(run_id, "acme", "ann", "wf", "running", None, None, 1.0, None)
            )
        recorder.flush()
        assert store.get_gateway_run(ok).status == "running"
        error = {"message": "boom", "node_id": "n1"}
        ends = (
            (ok, "completed", {"n": {"result": float("nan"), "s": {1, 2}}}, None),
            (bad, "failed", None, error),
            (big, "completed", {"n": "x" * MAX_STORED_RESULTS_BYTES}, None),
        )
        for run_id, status, results, failure in ends:
            recorder.record_gateway_run(
                GatewayRunNote(run_id, "acme", "ann", "wf", status, results, failure, 1.0, 2.0)
            )
        recorder.flush()
    finally:
        recorder.close()
    done = store.get_gateway_run(ok)
    assert (done.tenant_id, done.subject, done.workflow_name) == ("acme", "ann", "wf")
    assert done.results == {"n": {"result": None, "s": [1, 2]}} and done.finished_at == 2.0
    assert store.get_gateway_run(bad).error == error
    large = store.get_gateway_run(big)
    assert large.results is None and large.results_truncated
    assert large.results_size > MAX_STORED_RESULTS_BYTES
    assert store.get_gateway_run(str(uuid.uuid4())) is None


# -- rate limits across workers (LOAD-04) ---------------------------------------------


def statuses(client: httpx.Client, headers, count: int) -> list[int]:
    return [client.get("/workflows", headers=headers).status_code for _ in range(count)]


@pytest.mark.slow
def test_load04_redis_limit_is_global_across_two_workers(tmp_path, sqlite_url, redis_url):
    served = WorkerGateway(tmp_path, sqlite_url, rpm=20, env={"KAILASH_NB_REDIS_URL": redis_url})
    subject = f"load04-{uuid.uuid4().hex[:8]}"
    try:
        headers = served.headers(subject)
        clients = list(served.clients_per_worker().values())
        first = statuses(clients[0], headers, 25)
        second = statuses(clients[1], headers, 5)
        # One bucket of 20 for both workers (a token refills every 3 s).
        assert first.count(200) == 20 and first[20:] == [429] * 5
        assert second == [429] * 5
        for client in clients:
            client.close()
        assert served.stop() == 0
    finally:
        served.close()
        import redis

        client = redis.Redis.from_url(redis_url)
        client.delete(f"kailash_nb:rl:k:sub:acme:{subject}")
        client.close()


@pytest.mark.slow
def test_load04_without_redis_each_worker_enforces_an_even_share(tmp_path, sqlite_url):
    served = WorkerGateway(tmp_path, sqlite_url, rpm=20)
    try:
        headers = served.headers("ann")
        clients = list(served.clients_per_worker().values())
        first = statuses(clients[0], headers, 12)
        second = statuses(clients[1], headers, 12)
        # 20 per minute over 2 workers: 10 each, 20 in total (a token refills every 6 s).
        assert first == [200] * 10 + [429] * 2
        assert second == [200] * 10 + [429] * 2
        for client in clients:
            client.close()
        assert served.stop() == 0
        assert "rate limit split over 2 workers" in served.log()
    finally:
        served.close()
