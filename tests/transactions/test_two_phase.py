"""Two-phase commit against reference participants on SQLite and PostgreSQL: votes,
timeouts, unreachable participants and a transaction log that cannot be written
(DTM-06..09, STOR-02)."""

from __future__ import annotations

import logging
import threading

import pytest
from _tx_ledger import AlertLog, Behaviour, StoreLock, register

from kailash_nb.transactions import (
    ParticipantSpec,
    RetryPolicy,
    TransactionManager,
    TransactionStoreUnavailableError,
    Vote,
    register_kind,
)
from kailash_nb.transactions.participants import Participant

IDS = ["crm", "erp", "billing"]
FAST = RetryPolicy(initial_delay=0.01, max_delay=0.05, commit_retry_seconds=5.0)


def _two_phase(manager, ledger, behaviours, **spec_options):
    specs = [
        register(ledger, pid, behaviour, **spec_options.get(pid, {}))
        for pid, behaviour in zip(IDS, behaviours, strict=True)
    ]
    return manager.create_transaction("order", {"pattern": "two_phase"}, participants=specs)


def test_all_prepared_commits_everywhere_once(database_url, ledger):
    manager = TransactionManager(database_url, retry=FAST)
    record = _two_phase(manager, ledger, [Behaviour(), Behaviour(), Behaviour()])
    done = manager.execute_transaction(record.id)
    assert (done.status, done.decision, done.in_doubt) == ("committed", "commit", False)
    ledger.check_outcome(record.id, "committed", IDS)
    assert manager.execute_transaction(record.id) == done  # finished: returned as it is
    assert len(ledger.calls(record.id)) == 6


def test_one_abort_vote_aborts_every_prepared_participant(database_url, ledger):
    manager = TransactionManager(database_url, retry=FAST)
    record = _two_phase(manager, ledger, [Behaviour(), Behaviour(vote="abort"), Behaviour()])
    done = manager.execute_transaction(record.id)
    assert (done.status, done.decision) == ("aborted", "abort")
    assert "'erp' did not prepare" in done.error
    ledger.check_outcome(record.id, "aborted", IDS)
    assert ledger.operations(record.id, "abort") == ["crm", "erp"]
    assert "billing" not in {call[0] for call in ledger.calls(record.id)}  # never asked


def test_dtm_06_prepare_timeout_aborts_all_and_the_late_prepare_is_told_to_abort(
    database_url, ledger
):
    manager = TransactionManager(database_url, retry=FAST)
    late = threading.Event()
    record = _two_phase(
        manager,
        ledger,
        [Behaviour(), Behaviour(prepare_delay=0.5, finished=late), Behaviour()],
        erp={"options": {"timeout": 0.1}},
    )
    done = manager.execute_transaction(record.id)
    assert done.status == "aborted"
    assert "did not answer within 0.1 s" in done.error
    assert late.wait(10)
    ledger.check_outcome(record.id, "aborted", IDS)
    # The abort reached erp before its prepare did: the late prepare was refused.
    assert ("erp", "prepare", 1, "refused") in ledger.calls(record.id)
    assert ledger.operations(record.id, "prepare") == ["crm"]
    assert ledger.operations(record.id, "abort") == ["crm", "erp"]


class _GarbageVoter(Participant):
    """A participant kind whose prepare answers whatever its options say."""

    def prepare(self, call):
        return self.spec.options["answer"]

    def commit(self, call):
        if self.spec.options["answer"] not in (Vote.PREPARED, "prepared"):
            raise AssertionError("a garbage vote must never be committed")

    def abort(self, call):
        return None

    def execute(self, call):
        raise AssertionError("not a saga")

    def compensate(self, call):
        raise AssertionError("not a saga")


register_kind("test_garbage_voter", _GarbageVoter)


@pytest.mark.parametrize("answer", [None, "maybe", {"vote": "prepared"}, 1, "PREPARED "])
def test_dtm_07_no_vote_unknown_vote_or_garbage_counts_as_abort(database_url, ledger, answer):
    manager = TransactionManager(database_url, retry=FAST)
    spec = ParticipantSpec("legacy", "test_garbage_voter", options={"answer": answer})
    first = register(ledger, "crm")
    record = manager.create_transaction("order", participants=[first, spec])
    done = manager.execute_transaction(record.id)
    assert (done.status, done.decision) == ("aborted", "abort")
    assert "'legacy' did not prepare" in done.error
    ledger.check_outcome(record.id, "aborted", ["crm"])


def test_the_vote_enum_and_its_text_both_count_as_prepared(database_url, ledger):
    manager = TransactionManager(database_url, retry=FAST)
    spec = ParticipantSpec("modern", "test_garbage_voter", options={"answer": Vote.PREPARED})
    record = manager.create_transaction("order", participants=[spec])
    assert manager.execute_transaction(record.id).step(0, "prepare").result == "prepared"


def test_dtm_08_unreachable_participant_is_retried_until_it_acks(database_url, ledger):
    manager = TransactionManager(database_url, retry=FAST)
    record = _two_phase(manager, ledger, [Behaviour(), Behaviour(fail_commit=3), Behaviour()])
    done = manager.execute_transaction(record.id)
    assert done.status == "committed"
    assert done.step(1, "commit").attempts == 4
    commit_calls = [call for call in ledger.calls(record.id) if call[:2] == ("erp", "commit")]
    assert [call[2] for call in commit_calls] == [4]  # three failed before reaching the ledger
    ledger.check_outcome(record.id, "committed", IDS)


def test_dtm_08_commit_in_doubt_stays_committing_and_recovery_finishes_it(
    database_url, ledger, caplog
):
    alerts = AlertLog()
    retry = RetryPolicy(initial_delay=0.01, max_delay=0.02, commit_retry_seconds=0.2)
    manager = TransactionManager(database_url, retry=retry, monitor=alerts)
    unreachable = Behaviour(fail_commit=10_000)
    record = _two_phase(manager, ledger, [Behaviour(), unreachable, Behaviour()])
    with caplog.at_level(logging.ERROR, logger="kailash_nb.transactions"):
        done = manager.execute_transaction(record.id)
    assert (done.status, done.decision, done.in_doubt) == ("committing", "commit", True)
    assert done.error is None  # never reported failed or inconsistent
    assert [name for name, _ in alerts.alerts] == ["transaction_commit_in_doubt"]
    assert "commit not acknowledged by erp" in caplog.text
    # The others were committed meanwhile; erp holds its prepared change.
    assert ledger.operations(record.id, "commit") == ["crm", "billing"]
    assert record.id in [item.id for item in manager.list_transactions(status="in_doubt")]
    unreachable.fail_commit = 0
    recovered = {item.id: item.status for item in manager.recover_pending()}
    assert recovered[record.id] == "committed"
    ledger.check_outcome(record.id, "committed", IDS)


def test_dtm_09_stor_02_log_write_failing_before_the_decision_sends_no_commit(database_url, ledger):
    lock = StoreLock(database_url)
    manager = TransactionManager(database_url, retry=FAST, store_timeout=0.3)
    try:
        record = _two_phase(
            manager, ledger, [Behaviour(), Behaviour(), Behaviour(before_prepare=lock.acquire)]
        )
        with pytest.raises(TransactionStoreUnavailableError) as raised:
            manager.execute_transaction(record.id)
        assert raised.value.http_status == 503
        # New transactions are refused while the store cannot be written (STOR-02).
        with pytest.raises(TransactionStoreUnavailableError):
            manager.create_transaction("another")
    finally:
        lock.release()
    assert ledger.operations(record.id, "commit") == []
    assert manager.get_status(record.id).status == "preparing"
    assert manager.recover_transaction(record.id).status == "aborted"
    ledger.check_outcome(record.id, "aborted", IDS)
    assert ledger.operations(record.id, "prepare") == IDS  # billing prepared, then aborted


def test_abort_transaction_before_and_after_execution(database_url, ledger):
    manager = TransactionManager(database_url, retry=FAST)
    record = _two_phase(manager, ledger, [Behaviour(), Behaviour(), Behaviour()])
    aborted = manager.abort_transaction(record.id)
    assert (aborted.status, aborted.error) == ("aborted", "aborted on request")
    assert manager.execute_transaction(record.id).status == "aborted"
    assert ledger.calls(record.id) == []
