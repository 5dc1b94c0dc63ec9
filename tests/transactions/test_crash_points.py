"""The crash-point suite: a real coordinator process is killed (SIGKILL) at every crash
point, then recovery runs and the participants' ledger must show 0 lost and 0
duplicated commits or effects (DTM-01..05, DTM-10, DTM-11).

Each case: the test creates a transaction, a child process executes it with
``KAILASH_NB_TX_CRASH_POINT`` set and dies there; for the ``recovery.*`` points a
second child runs recovery and dies in it too (DTM-05). Then the test process runs
``recover_pending`` (the dead children's leases are free at once: their processes are
gone) and checks the ledger against the final status. The default run kills at the
first and the last time each point is reached, on each backend; ``pytest -m
crash_long`` kills at every time every point is reached, several times over.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _tx_child import FAST_RETRY, PARTICIPANT_IDS, scenario_specs
from _tx_ledger import Ledger

from kailash_nb.transactions import CRASH_POINT_ENV, CRASH_POINTS, TransactionManager
from kailash_nb.transactions.crash import CRASH_HIT_ENV

HERE = Path(__file__).parent
ROOT = HERE.parent.parent

# point -> (scenario, crash of a first child before recovery crashes (recovery points),
#           how many times the point is reached in that run, final status)
CASES = {
    "2pc.after_prepare_sent": ("2pc_commit", None, 3, "aborted"),
    "2pc.after_prepare_vote": ("2pc_commit", None, 3, "aborted"),
    "2pc.after_votes": ("2pc_commit", None, 1, "aborted"),
    "2pc.after_decision": ("2pc_commit", None, 1, "committed"),
    "2pc.after_first_commit": ("2pc_commit", None, 3, "committed"),
    "2pc.after_abort_decision": ("2pc_abort", None, 1, "aborted"),
    "2pc.mid_abort": ("2pc_abort", None, 3, "aborted"),
    "saga.after_step_sent": ("saga_ok", None, 3, "completed"),
    "saga.after_step_effect": ("saga_ok", None, 3, "completed"),
    "saga.between_steps": ("saga_ok", None, 2, "completed"),
    "saga.after_failure": ("saga_fail", None, 1, "compensated"),
    "saga.after_compensation_sent": ("saga_fail", None, 3, "compensated"),
    "saga.mid_compensation": ("saga_fail", None, 3, "compensated"),
    "recovery.after_lease": ("2pc_commit", "2pc.after_decision", 1, "committed"),
    "recovery.mid_commit": ("2pc_commit", "2pc.after_decision", 3, "committed"),
    "recovery.mid_abort": ("2pc_abort", "2pc.after_abort_decision", 3, "aborted"),
    "recovery.mid_compensation": ("saga_fail", "saga.after_failure", 3, "compensated"),
}

LONG_REPEATS = 4


def test_every_crash_point_has_a_case():
    assert sorted(CASES) == sorted(CRASH_POINTS)
    assert len(CRASH_POINTS) >= 14


def _child(store_url: str, ledger: Ledger, scenario: str, mode: str, tx_id: str, point, hit):
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE)])
    environment.pop(CRASH_POINT_ENV, None)
    if point is not None:
        environment[CRASH_POINT_ENV] = point
        environment[CRASH_HIT_ENV] = str(hit)
    return subprocess.run(
        [sys.executable, str(HERE / "_tx_child.py"), store_url, ledger.path, scenario, mode, tx_id],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _crash_and_recover(store_url: str, ledger: Ledger, point: str, hit: int) -> str:
    """Kill a coordinator at ``point`` (its ``hit``-th time), recover, check the ledger;
    return the transaction id."""
    scenario, first_point, _, final = CASES[point]
    requirements, specs = scenario_specs(ledger, scenario)
    manager = TransactionManager(store_url, retry=FAST_RETRY)
    record = manager.create_transaction(point, requirements, participants=specs)
    if first_point is None:
        killed = _child(store_url, ledger, scenario, "execute", record.id, point, hit)
    else:
        first = _child(store_url, ledger, scenario, "execute", record.id, first_point, 1)
        assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
        killed = _child(store_url, ledger, scenario, "recover", record.id, point, hit)
    assert killed.returncode == -signal.SIGKILL, (killed.stdout, killed.stderr[-2000:])
    assert manager.get_status(record.id).in_doubt
    recovered = {item.id: item for item in manager.recover_pending()}
    assert record.id in recovered
    assert recovered[record.id].status == final, recovered[record.id].error
    assert record.id not in [item.id for item in manager.recover_pending()]
    ledger.check_outcome(record.id, final, PARTICIPANT_IDS)
    return record.id


# (point, hit) the checklist tests below kill at; the other points, at their first and
# last hit, run in test_crash_point_recovers_without_loss_or_duplicates.
NAMED = {
    ("2pc.after_votes", 1): "DTM-01",
    ("2pc.after_decision", 1): "DTM-02",
    ("2pc.after_first_commit", 1): "DTM-03",
    ("2pc.mid_abort", 2): "DTM-04",
    ("recovery.mid_commit", 2): "DTM-05",
    ("recovery.mid_compensation", 2): "DTM-05",
    ("saga.after_step_effect", 2): "DTM-10",
    ("saga.between_steps", 2): "DTM-11",
}
DEFAULT_CASES = [
    (point, hit)
    for point in CRASH_POINTS
    for hit in sorted({1, CASES[point][2]})
    if (point, hit) not in NAMED
]


def test_dtm_01_kill_after_all_prepared_before_the_decision_presumes_abort(database_url, tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    tx_id = _crash_and_recover(database_url, ledger, "2pc.after_votes", 1)
    assert ledger.operations(tx_id, "prepare") == PARTICIPANT_IDS
    assert ledger.operations(tx_id, "abort") == PARTICIPANT_IDS
    assert ledger.operations(tx_id, "commit") == []


def test_dtm_02_kill_after_the_commit_decision_commits_all_once(database_url, tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    tx_id = _crash_and_recover(database_url, ledger, "2pc.after_decision", 1)
    assert ledger.operations(tx_id, "commit") == PARTICIPANT_IDS


def test_dtm_03_kill_after_commit_reached_one_of_three(database_url, tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    tx_id = _crash_and_recover(database_url, ledger, "2pc.after_first_commit", 1)
    assert ledger.operations(tx_id, "commit") == PARTICIPANT_IDS
    # crm got the commit twice (the second deduplicated by its step id).
    commits = [call for call in ledger.calls(tx_id) if call[:2] == ("crm", "commit")]
    assert [outcome for *_, outcome in commits] == ["applied", "repeat"]


def test_dtm_04_kill_mid_abort_finishes_the_abort(database_url, tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    tx_id = _crash_and_recover(database_url, ledger, "2pc.mid_abort", 2)
    assert ledger.operations(tx_id, "abort") == PARTICIPANT_IDS  # none left prepared


@pytest.mark.parametrize("point", ["recovery.mid_commit", "recovery.mid_compensation"])
def test_dtm_05_kill_during_recovery_converges_on_the_next_run(point, database_url, tmp_path):
    _crash_and_recover(database_url, Ledger(tmp_path / "ledger.db"), point, 2)


def test_dtm_10_kill_after_step_2_effect_before_its_record(database_url, tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    tx_id = _crash_and_recover(database_url, ledger, "saga.after_step_effect", 2)
    executes = [call for call in ledger.calls(tx_id) if call[1] == "execute"]
    # erp (step 2) was asked again with the same step id and deduplicated it.
    assert executes == [
        ("crm", "execute", 1, "applied"),
        ("erp", "execute", 1, "applied"),
        ("erp", "execute", 2, "repeat"),
        ("billing", "execute", 1, "applied"),
    ]


def test_dtm_11_kill_between_steps_resumes_at_step_3(database_url, tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    tx_id = _crash_and_recover(database_url, ledger, "saga.between_steps", 2)
    executes = [call[0] for call in ledger.calls(tx_id) if call[1] == "execute"]
    assert executes == PARTICIPANT_IDS  # steps 1-2 never re-run


@pytest.mark.parametrize(("point", "hit"), DEFAULT_CASES)
def test_crash_point_recovers_without_loss_or_duplicates(point, hit, database_url, tmp_path):
    _crash_and_recover(database_url, Ledger(tmp_path / "ledger.db"), point, hit)


@pytest.mark.crash_long
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_point_long(point, database_url, tmp_path):
    hits = CASES[point][2]
    for repeat in range(LONG_REPEATS):
        for hit in range(1, hits + 1):
            ledger = Ledger(tmp_path / f"ledger-{repeat}-{hit}.db")
            _crash_and_recover(database_url, ledger, point, hit)
