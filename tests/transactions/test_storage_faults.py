"""Storage faults under the transaction log and the audit trail (STOR-04, STOR-05),
on real storage.

STOR-05: a coordinator process is killed by SIGKILL while a log write is inside its
database transaction (its statements ran, its commit did not); the log then holds the
previous version of the transaction, nothing of the write, and recovery converges.

STOR-04: a full disk. A two-phase transaction's commit decision is written onto a file
system that is full (a small tmpfs in a user and mount namespace of the coordinator
process, filled right before that write): the write fails with SQLite's "database or
disk is full", the caller gets ``TransactionStoreUnavailableError`` and no participant
hears ``commit``. SQLite's ``max_page_count`` cannot stand in for that one: it only
refuses new pages, and the decision is an update the database's existing pages hold
(the WAL append is what a full disk refuses). It does stand in for writes that grow
the database: a new transaction, and audit records (``AuditUnavailableError``, the
chain intact).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from _tx_child import FAST_RETRY, PARTICIPANT_IDS, scenario_specs
from _tx_ledger import Ledger

from kailash_nb.store.audit_trail import AuditRecord, AuditTrail, AuditUnavailableError
from kailash_nb.store.database import create_engine
from kailash_nb.transactions import (
    CRASH_POINT_ENV,
    TransactionManager,
    TransactionStoreUnavailableError,
)

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
CHILD = HERE / "_tx_storage_child.py"
DISK_FULL = "database or disk is full"


def _environment() -> dict[str, str]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE)])
    environment.pop(CRASH_POINT_ENV, None)
    return environment


def _steps(record) -> list[list]:
    return [
        [step.index, step.phase, step.state, step.attempts, step.result, step.error]
        for step in record.steps
    ]


# -- STOR-05: killed inside a log write, before its commit ------------------------------

# scenario, the status the killed write sets, the table of its last statement (the
# process dies at the commit that follows it), the final status after recovery
KILLED_WRITES = {
    "first_prepare_mark": ("2pc_commit", "preparing", "steps", "committed"),
    "commit_decision": ("2pc_commit", "committing", "transactions", "aborted"),
    "compensation_start": ("saga_fail", "compensating", "steps", "compensated"),
}


@pytest.mark.parametrize("write", sorted(KILLED_WRITES))
def test_stor_05_kill_inside_a_log_write_keeps_the_previous_version(write, database_url, tmp_path):
    scenario, status, last_table, final = KILLED_WRITES[write]
    ledger = Ledger(tmp_path / "ledger.db")
    requirements, specs = scenario_specs(ledger, scenario)
    manager = TransactionManager(database_url, retry=FAST_RETRY)
    record = manager.create_transaction(write, requirements, participants=specs)
    arguments = ["kill", database_url, ledger.path, scenario, record.id, status, last_table]
    killed = subprocess.run(
        [sys.executable, str(CHILD), *arguments],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL, (killed.stdout, killed.stderr[-2000:])
    before = json.loads(killed.stdout.splitlines()[-1])

    after = manager.get_status(record.id)
    # The previous version, whole: the row and every step as they were before the write.
    assert (after.status, after.decision, after.version, after.error) == (
        before["status"],
        before["decision"],
        before["version"],
        before["error"],
    )
    assert _steps(after) == before["steps"]
    assert after.status != status
    # The killed write's own step change (it marks one) is not there either.
    if write == "first_prepare_mark":
        assert (after.status, after.steps) == ("created", ())
    elif write == "commit_decision":
        assert after.status == "preparing" and after.decision is None
        assert [(s.phase, s.state) for s in after.steps] == [("prepare", "done")] * 3
    else:
        # The write was to mark billing's step failed and start compensating, at once.
        assert after.status == "executing"
        assert [(s.participant_id, s.state) for s in after.steps][-1] == ("billing", "sent")

    # Recovery converges from that version: nothing lost, nothing applied twice.
    if after.status == "created":
        recovered = manager.execute_transaction(record.id)
    else:
        recovered = manager.recover_transaction(record.id)
    assert recovered.status == final, recovered.error
    ledger.check_outcome(record.id, final, PARTICIPANT_IDS)
    if write == "commit_decision":
        assert ledger.operations(record.id, "commit") == []


# -- STOR-04: the disk fills up ----------------------------------------------------------


@pytest.fixture
def small_filesystem(tmp_path):
    """A command prefix that runs a program with a 4 MiB tmpfs of its own mounted on the
    returned directory (a user and mount namespace: no privileges needed where the
    kernel allows unprivileged user namespaces; skipped where it does not)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("util-linux unshare is not installed: no small file system can be made")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    prefix = [
        unshare,
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        'mount -t tmpfs -o size=4m tmpfs "$0" && exec "$@"',
        str(mount_point),
    ]
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"no tmpfs in a user namespace here: {probe.stderr.strip()[:200]}")
    return prefix, mount_point


def test_stor_04_disk_full_at_the_commit_decision_fails_before_any_commit(
    small_filesystem, tmp_path
):
    prefix, mount_point = small_filesystem
    ledger = Ledger(tmp_path / "ledger.db")  # outside the small file system
    store_url = f"sqlite:///{mount_point / 'log.db'}"
    child = subprocess.run(
        [*prefix, sys.executable, str(CHILD), "enospc", store_url, ledger.path],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, (child.stdout, child.stderr[-3000:])
    outcome = json.loads(child.stdout.splitlines()[-1])
    tx_id = outcome["transaction_id"]

    assert outcome.get("error_type") == "TransactionStoreUnavailableError", outcome
    assert outcome["http_status"] == 503
    assert DISK_FULL in outcome["error"] and "transaction log" in outcome["error"]
    # Every participant prepared; none was told to commit.
    assert ledger.operations(tx_id, "prepare") == PARTICIPANT_IDS
    assert [call for call in ledger.calls(tx_id) if call[1] == "commit"] == []
    # No decision reached the log: the transaction is as it was before that write.
    assert outcome["after_error"]["status"] == "preparing"
    assert outcome["after_error"]["decision"] is None
    assert [step[1:] for step in outcome["after_error"]["steps"]] == [["prepare", "done"]] * 3
    # With space again, recovery presumes abort (there was no decision).
    assert outcome["recovered"] == "aborted"
    ledger.check_outcome(tx_id, "aborted", PARTICIPANT_IDS)


def _limit_pages(engine: sa.engine.Engine):
    """From now on every connection of ``engine`` may not grow its SQLite file: SQLite
    answers a write needing a new page with SQLITE_FULL, as on a full disk. Returns the
    listener (for ``sa.event.remove``)."""

    def limit(dbapi_connection, _record):
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    sa.event.listen(engine, "connect", limit)
    engine.dispose()
    return limit


def test_stor_04_full_database_refuses_a_new_transaction(sqlite_url, tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    requirements, specs = scenario_specs(ledger, "2pc_commit")
    manager = TransactionManager(sqlite_url, retry=FAST_RETRY)
    first = manager.create_transaction("first", requirements, participants=specs)
    engine = manager.log.engine
    limit = _limit_pages(engine)
    try:
        with pytest.raises(TransactionStoreUnavailableError, match=DISK_FULL) as raised:
            manager.create_transaction(
                "second", requirements, context={"order": "x" * 50_000}, participants=specs
            )
        assert raised.value.http_status == 503
        # No partial row: the log holds the first transaction only, as it was.
        assert [item.id for item in manager.list_transactions()] == [first.id]
        assert manager.get_status(first.id) == first
    finally:
        sa.event.remove(engine, "connect", limit)
        engine.dispose()
    assert manager.execute_transaction(first.id).status == "committed"
    assert ledger.calls(first.id)[-1][1] == "commit"


def test_stor_04_full_database_fails_an_audit_append_and_keeps_the_chain(sqlite_url):
    trail = AuditTrail(sqlite_url)
    kept = [AuditRecord("acme", "alice", "execute", f"workflow:w{n}", "allow") for n in range(5)]
    assert trail.append_many(kept) == [1, 2, 3, 4, 5]
    engine = create_engine(sqlite_url)
    _limit_pages(engine)
    full = AuditTrail(engine=engine)
    batch = [
        AuditRecord("acme", "bob", "execute", "workflow:big", "deny", detail={"note": "y" * 2000})
        for _ in range(100)
    ]
    try:
        with pytest.raises(AuditUnavailableError, match=DISK_FULL) as raised:
            full.append_many(batch)
        assert "audit store" in str(raised.value)
    finally:
        engine.dispose()
    # Not one record of the failed batch: the chain is the five before it and verifies.
    result = trail.verify("acme")
    assert result.ok, result.message
    assert result.records == 5
    assert [entry.seq for entry in trail.records(tenant_id="acme")] == [5, 4, 3, 2, 1]
    assert trail.append(kept[0]) == 6
    assert trail.verify("acme").ok
