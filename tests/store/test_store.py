"""The run store: schema migrations, recorded history, recovery after a killed process.

Every test runs against SQLite and, when configured, PostgreSQL (``database_url``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
import sqlalchemy as sa

from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.sdk_exceptions import RuntimeExecutionError, WorkflowExecutionError
from kailash_nb.store.database import get_engine
from kailash_nb.store.run_history import (
    RunNotFoundError,
    RunRecordCorruptError,
    RunStore,
    process_token,
)
from kailash_nb.store.schema import SCHEMA_VERSION, runs, schema_table
from kailash_nb.store.urls import StoreConfigurationError
from kailash_nb.workflow.builder import WorkflowBuilder


def _chain(fail: bool = False):
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = x + 1"})
    builder.add_node(
        "PythonCodeNode", "b", {"code": "result = 1 / 0" if fail else "result = x * 2"}
    )
    builder.add_node("PythonCodeNode", "c", {"code": "result = x - 1"})
    builder.add_connection("a", "result", "b", "x")
    builder.add_connection("b", "result", "c", "x")
    return builder.build(name="chain")


def test_store_creates_and_versions_its_schema(database_url):
    RunStore(database_url)
    RunStore(database_url)  # reopening is a no-op
    with get_engine(database_url).connect() as connection:
        assert connection.execute(sa.select(schema_table.c.version)).scalar_one() == SCHEMA_VERSION


def test_stor07_newer_schema_is_refused_with_the_missing_migration(database_url):
    RunStore(database_url)
    engine = get_engine(database_url)
    with engine.begin() as connection:
        connection.execute(schema_table.update().values(version=SCHEMA_VERSION + 1))
    try:
        with pytest.raises(StoreConfigurationError, match=f"migration {SCHEMA_VERSION + 1}"):
            RunStore(database_url)
    finally:
        with engine.begin() as connection:
            connection.execute(schema_table.update().values(version=SCHEMA_VERSION))


def test_history_records_completed_runs_with_their_timeline(database_url):
    with LocalRuntime(history=True, database_url=database_url) as runtime:
        results, run_id = runtime.execute(_chain(), parameters={"a": {"x": 1, "api_token": "t0p"}})
        listed = runtime.history(limit=5)
    assert results["c"] == {"result": 3}
    assert run_id in [run.run_id for run in listed]
    run = RunStore(database_url).get_run(run_id)
    assert run.status == "completed"
    assert run.workflow_name == "chain"
    assert run.duration > 0 and run.finished_at >= run.started_at
    assert run.parameters == {"a": {"x": 1, "api_token": "***"}}
    assert [(node.node_id, node.state) for node in run.nodes] == [
        ("a", "completed"),
        ("b", "completed"),
        ("c", "completed"),
    ]
    assert all(node.duration >= 0 for node in run.nodes)


def test_history_records_failed_runs_and_filters_by_status(database_url):
    with LocalRuntime(history=True, database_url=database_url) as runtime:
        with pytest.raises(WorkflowExecutionError) as failure:
            runtime.execute(_chain(fail=True), parameters={"a": {"x": 1}})
        _, ok_id = runtime.execute(_chain(), parameters={"a": {"x": 1}})
        failed = runtime.history(limit=50, status="failed")
        completed = runtime.history(limit=50, status="completed")
    failed_id = failure.value.run_id
    assert failed_id in [run.run_id for run in failed]
    assert ok_id not in [run.run_id for run in failed]
    assert ok_id in [run.run_id for run in completed]
    run = RunStore(database_url).get_run(failed_id)
    assert run.status == "failed"
    assert "ZeroDivisionError" in run.error
    states = {node.node_id: node.state for node in run.nodes}
    assert states == {"a": "completed", "b": "failed"}


def test_history_lists_newest_first_and_honours_limit(database_url):
    with LocalRuntime(history=True, database_url=database_url) as runtime:
        ids = [runtime.execute(_chain(), parameters={"a": {"x": i}})[1] for i in range(3)]
        listed = runtime.history(limit=2)
    assert [run.run_id for run in listed] == ids[:0:-1]


def test_history_off_says_how_to_turn_it_on():
    with pytest.raises(RuntimeExecutionError, match="history=True"):
        LocalRuntime().history()


def test_history_follows_the_environment(monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("KAILASH_NB_HISTORY", "1")
    monkeypatch.setenv("KAILASH_NB_DATABASE_URL", url)
    with LocalRuntime() as runtime:
        _, run_id = runtime.execute(_chain(), parameters={"a": {"x": 1}})
    assert RunStore(url).get_run(run_id).status == "completed"


def test_in_memory_sqlite_store():
    with LocalRuntime(history=True, database_url="sqlite:///:memory:") as runtime:
        _, run_id = runtime.execute(_chain(), parameters={"a": {"x": 1}})
        assert [run.run_id for run in runtime.history()] == [run_id]


def test_unknown_run_is_a_typed_error(database_url):
    with pytest.raises(RunNotFoundError, match="no run 'nope'"):
        RunStore(database_url).get_run("nope")


def test_list_runs_validates_its_arguments(database_url):
    store = RunStore(database_url)
    with pytest.raises(ValueError, match="limit"):
        store.list_runs(limit=0)
    with pytest.raises(ValueError, match="status"):
        store.list_runs(status="sleeping")


def test_recovery_marks_only_runs_of_dead_processes(database_url):
    store = RunStore(database_url)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_token = f"{dead.stdout.strip()}:0"
    rows = []
    for owner in (dead_token, process_token()):
        rows.append(
            {
                "run_id": str(uuid.uuid4()),
                "run_seq": int(time.time() * 1e6),
                "workflow_name": "w",
                "status": "running",
                "started_at": time.time(),
                "owner_host": socket.gethostname(),
                "owner_process": owner,
            }
        )
    with store.engine.begin() as connection:
        connection.execute(runs.insert(), rows)
    assert store.recover_interrupted() >= 1
    assert store.get_run(rows[0]["run_id"]).status == "interrupted"
    assert store.get_run(rows[1]["run_id"]).status == "running"


def test_failed_history_write_is_reported_by_flush(tmp_path):
    url = f"sqlite:///{tmp_path / 'broken.db'}"
    runtime = LocalRuntime(history=True, database_url=url)
    with get_engine(url).begin() as connection:
        connection.execute(sa.text("DROP TABLE kailash_nb_runs"))
    runtime.execute(_chain(), parameters={"a": {"x": 1}})
    with pytest.raises(RuntimeExecutionError, match="could not be written"):
        runtime.flush_history()
    runtime.close()


_KILLED_RUN = textwrap.dedent(
    """
    import sys
    from kailash_nb.runtime.local import LocalRuntime
    from kailash_nb.workflow.builder import WorkflowBuilder

    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "fast", {"code": "result = 1"})
    builder.add_node("PythonCodeNode", "slow", {"code": "time.sleep(120)\\nresult = x"})
    builder.add_connection("fast", "result", "slow", "x")
    runtime = LocalRuntime(history=True, database_url=sys.argv[1])
    print("starting", flush=True)
    runtime.execute(builder.build(name="killed"))
    """
)


def test_stor05_killed_process_leaves_an_interrupted_run_and_no_partial_rows(database_url):
    process = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, database_url],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "starting"
        store = RunStore(database_url)
        deadline = time.monotonic() + 30
        running = []
        while time.monotonic() < deadline and not running:
            running = [run for run in store.list_runs(limit=50) if run.workflow_name == "killed"]
            if not running:
                time.sleep(0.05)
        assert running and running[0].status == "running"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()

    reopened = RunStore(database_url)
    run = reopened.get_run(running[0].run_id)
    assert run.status == "interrupted"
    assert "ended before the run finished" in run.error
    assert run.nodes == ()  # the timeline is written with the run's end, never in part


_WRITER = textwrap.dedent(
    """
    import sys
    from kailash_nb.runtime.local import LocalRuntime
    from kailash_nb.workflow.builder import WorkflowBuilder

    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = x + 1"})
    workflow = builder.build(name=sys.argv[2])
    with LocalRuntime(history=True, database_url=sys.argv[1]) as runtime:
        for index in range(int(sys.argv[3])):
            runtime.execute(workflow, parameters={"a": {"x": index}})
            if index % 10 == 0:
                runtime.flush_history()
    """
)


def test_stor03_concurrent_writer_processes_lose_no_runs(tmp_path):
    """STOR-03: several processes recording into one SQLite file (WAL + busy timeout)."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    RunStore(url)
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, url, f"writer-{n}", "60"])
        for n in range(4)
    ]
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    recorded = RunStore(url).list_runs(limit=1000)
    assert len(recorded) == 240
    assert {run.status for run in recorded} == {"completed"}
    assert sorted({run.workflow_name for run in recorded}) == [f"writer-{n}" for n in range(4)]


_OPENER = textwrap.dedent(
    """
    import sys, time
    from kailash_nb.store.database import get_engine
    from kailash_nb.store.schema import migrate

    url, start = sys.argv[1], float(sys.argv[2])
    time.sleep(max(start - time.time(), 0))
    migrate(get_engine(url))
    """
)


def test_processes_opening_a_new_sqlite_file_at_once_all_migrate_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    start = str(time.time() + 1.5)  # after every interpreter has started
    openers = [
        subprocess.Popen([sys.executable, "-c", _OPENER, url, start], stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    for opener in openers:
        _, stderr = opener.communicate(timeout=60)
        assert opener.returncode == 0, stderr.decode()[-500:]
    with get_engine(url).connect() as connection:
        assert connection.execute(sa.select(schema_table.c.version)).scalars().all() == [
            SCHEMA_VERSION
        ]


def test_stor06_damaged_run_record_is_reported_and_spares_the_rest(tmp_path):
    url = f"sqlite:///{tmp_path / 'damaged.db'}"
    with LocalRuntime(history=True, database_url=url) as runtime:
        _, good_id = runtime.execute(_chain(), parameters={"a": {"x": 1}})
        _, bad_id = runtime.execute(_chain(), parameters={"a": {"x": 2}})
    with get_engine(url).begin() as connection:
        connection.execute(
            sa.text("UPDATE kailash_nb_runs SET node_events = '[[1, 2' WHERE run_id = :id"),
            {"id": bad_id},
        )
    store = RunStore(url)
    with pytest.raises(RunRecordCorruptError, match=bad_id):
        store.get_run(bad_id)
    assert store.get_run(good_id).status == "completed"
    assert {run.run_id for run in store.list_runs()} == {good_id, bad_id}


def _recorded(url: str, **options):
    """A runtime recording into ``url`` whose recorder writes only when flushed."""
    from kailash_nb.runtime.events import EventBus
    from kailash_nb.runtime.recorder import RunRecorder

    bus = EventBus()
    recorder = RunRecorder(RunStore(url), bus, batch_size=10_000, interval=3600, **options)
    return LocalRuntime(event_bus=bus, history=False), recorder


def test_a_failed_leaf_node_is_a_failed_run_in_the_store(database_url):
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "ok", {"code": "result = 1"})
    builder.add_node("PythonCodeNode", "leaf", {"code": "result = {}['missing']"})
    runtime, recorder = _recorded(database_url)
    results, run_id = runtime.execute(builder.build(name="leafy"))
    assert results["leaf"]["failed"] is True  # Kailash's return value is kept
    recorder.close()
    run = RunStore(database_url).get_run(run_id)
    assert run.status == "failed"
    assert run.error == "WorkflowExecutionError: node 'leaf' failed: KeyError: 'missing'"
    assert sorted((node.node_id, node.state) for node in run.nodes) == [
        ("leaf", "failed"),
        ("ok", "completed"),
    ]
    assert run_id in {r.run_id for r in RunStore(database_url).list_runs(status="failed")}
    assert run_id not in {r.run_id for r in RunStore(database_url).list_runs(status="completed")}


def test_a_timed_out_run_is_stored_as_timeout(database_url):
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "slow", {"code": "import time\ntime.sleep(5)\nresult = 1"})
    from kailash_nb.runtime.events import EventBus
    from kailash_nb.runtime.recorder import RunRecorder
    from kailash_nb.sdk_exceptions import WorkflowTimeoutError

    bus = EventBus()
    recorder = RunRecorder(RunStore(database_url), bus)
    runtime = LocalRuntime(event_bus=bus, workflow_timeout=0.2)
    with pytest.raises(WorkflowTimeoutError) as info:
        runtime.execute(builder.build(name="slow"))
    recorder.close()
    assert RunStore(database_url).get_run(info.value.run_id).status == "timeout"


def test_an_unencodable_result_next_to_other_runs_in_one_batch_loses_nothing(database_url):
    from kailash_nb.store.run_history import GatewayRunNote

    runtime, recorder = _recorded(database_url)
    huge = WorkflowBuilder()
    huge.add_node("PythonCodeNode", "n", {"code": "result = 10 ** 5000"})
    results, huge_id = runtime.execute(huge.build(name="huge"))
    _, plain_id = runtime.execute(_chain(), parameters={"a": {"x": 1}})
    now = time.time()
    for note in (
        GatewayRunNote(huge_id, "t", "alice", "huge", "running", None, None, now, None),
        GatewayRunNote(huge_id, "t", "alice", "huge", "completed", results, None, now, now),
        GatewayRunNote(plain_id, "t", "bob", "chain", "completed", {"c": 1}, None, now, now),
    ):
        recorder.record_gateway_run(note)
    recorder.flush()  # one batch holding every row; raises if anything was lost
    recorder.close()
    store = RunStore(database_url)
    assert store.get_run(huge_id).status == store.get_run(plain_id).status == "completed"
    stored = store.get_gateway_run(huge_id)
    assert stored.status == "completed"
    assert stored.results == {"n": {"result": str(10**4) + "0" * 4996}}  # digits, as a string


def test_a_gateway_run_is_stored_with_its_owner_row_never_before_it(database_url):
    """A batch written between a new gateway run's note and its ``started`` event holds
    the note back (once), so the gateway row never exists without the run row naming its
    owner process: crash recovery reads that row to end the run ``interrupted``."""
    from kailash_nb.runtime.events import EventBus, RunEvent
    from kailash_nb.runtime.recorder import RunRecorder
    from kailash_nb.store.run_history import GatewayRunNote

    bus = EventBus()
    # A batch of one: every note and every event triggers a write at once.
    recorder = RunRecorder(RunStore(database_url), bus, batch_size=1, interval=3600)
    now = time.time()
    recorder.record_gateway_run(
        GatewayRunNote("run-a", "t", "ann", "wf", "running", None, None, now, None)
    )
    store = RunStore(database_url)
    assert store.get_gateway_run("run-a") is None  # held back: its run event is not in yet
    bus.emit(RunEvent("run-a", "wf", "started", now, workflow_id="wf"))
    assert store.get_gateway_run("run-a").status == "running"
    assert store.get_run("run-a").status == "running"
    # A note whose run event never comes is held once, then written with the next batch.
    recorder.record_gateway_run(
        GatewayRunNote("run-b", "t", "ann", "wf", "running", None, None, now, None)
    )
    assert store.get_gateway_run("run-b") is None
    recorder.record_gateway_run(
        GatewayRunNote("run-a", "t", "ann", "wf", "completed", {}, None, now, now)
    )
    assert store.get_gateway_run("run-b").status == "running"
    assert store.get_gateway_run("run-a").status == "completed"
    recorder.close()


def test_a_row_the_database_refuses_costs_only_its_own_run(database_url, caplog):
    runtime, recorder = _recorded(database_url)
    reused = str(uuid.uuid4())
    _, first = runtime.execute(_chain(), parameters={"a": {"x": 1}}, run_id=reused)
    recorder.flush()
    # One batch: a run before, the refused one (its id is taken), a run after.
    _, before = runtime.execute(_chain(), parameters={"a": {"x": 2}})
    with pytest.raises(WorkflowExecutionError):
        runtime.execute(_chain(fail=True), parameters={"a": {"x": 3}}, run_id=reused)
    _, after = runtime.execute(_chain(), parameters={"a": {"x": 4}})
    with pytest.raises(RuntimeExecutionError, match="could not be written"):
        recorder.flush()
    recorder.close()
    store = RunStore(database_url)
    assert store.get_run(before).status == store.get_run(after).status == "completed"
    original = store.get_run(first)
    assert original.status == "completed" and original.parameters == {"a": {"x": 1}}
    assert f"could not record run {reused}" in caplog.text


def test_a_run_whose_details_the_database_refuses_is_still_ended(database_url):
    # PostgreSQL text cannot hold NUL: the run is recorded without its details instead
    # of staying "running"; SQLite keeps everything. Either way the other run is whole.
    runtime, recorder = _recorded(database_url)
    bad = WorkflowBuilder()
    bad.add_node("PythonCodeNode", "n", {"code": "raise ValueError('nul\\x00byte')"})
    results, bad_id = runtime.execute(bad.build(name="nul"))
    assert results["n"]["failed"] is True
    _, good_id = runtime.execute(_chain(), parameters={"a": {"x": 1}})
    recorder.flush()
    recorder.close()
    store = RunStore(database_url)
    run = store.get_run(bad_id)
    assert run.status == "failed" and run.finished_at is not None
    assert "ValueError" in run.error or "could not be recorded" in run.error
    good = store.get_run(good_id)
    assert good.status == "completed" and len(good.nodes) == 3


def test_parameters_without_a_plain_equality_cost_no_run(database_url):
    # A loop passing the same parameters object again: its arrays have no plain ==.
    numpy = pytest.importorskip("numpy")
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "n", {"code": "result = len(x)"})
    workflow = builder.build(name="arrays")
    runtime, recorder = _recorded(database_url)
    parameters = {"n": {"x": numpy.arange(3)}}
    run_ids = [runtime.execute(workflow, parameters)[1] for _ in range(3)]
    recorder.flush()
    recorder.close()
    store = RunStore(database_url)
    assert [store.get_run(run_id).status for run_id in run_ids] == ["completed"] * 3


def test_a_batch_that_cannot_be_prepared_is_reported_and_recording_goes_on(
    database_url, monkeypatch
):
    from kailash_nb.runtime.recorder import RunRecorder

    runtime, recorder = _recorded(database_url)
    runtime.execute(_chain(), parameters={"a": {"x": 1}})
    with monkeypatch.context() as patch:
        patch.setattr(RunRecorder, "_parameters_text", _fails)
        with pytest.raises(RuntimeExecutionError, match="could not be written"):
            recorder.flush()
    _, later = runtime.execute(_chain(), parameters={"a": {"x": 2}})
    recorder.flush()
    recorder.close()
    assert RunStore(database_url).get_run(later).status == "completed"


def _fails(*_args):
    raise RuntimeError("a bug while preparing a row")


def test_a_relative_sqlite_url_follows_the_current_directory(tmp_path, monkeypatch):
    """Shared engines are keyed by URL: a relative SQLite path is resolved when the
    engine is asked for, so the same URL in another directory opens that directory's
    file instead of the first one."""
    from kailash_nb.store.database import get_engine

    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    RunStore("sqlite:///relative.db")
    monkeypatch.chdir(second)
    engine = get_engine("sqlite:///relative.db")
    assert engine.url.database == str(second / "relative.db")
    RunStore("sqlite:///relative.db")
    assert (first / "relative.db").exists() and (second / "relative.db").exists()


def test_a_new_sqlite_file_locked_by_another_connection_is_opened_once_it_is_free(tmp_path):
    """Switching a new database to WAL mode while another connection holds a lock on it
    fails at once in SQLite (no busy handler): opening it waits for the lock instead."""
    import sqlite3
    import threading

    from kailash_nb.store.database import get_engine

    path = tmp_path / "busy.db"
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("CREATE TABLE created_elsewhere (x)")
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO created_elsewhere VALUES (1)")
        locked.set()
        release.wait(10)
        holder.execute("COMMIT")
        holder.close()

    thread = threading.Thread(target=hold_lock)
    thread.start()
    assert locked.wait(10)
    threading.Timer(0.3, release.set).start()
    engine = get_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
    thread.join()
    assert mode == "wal"
