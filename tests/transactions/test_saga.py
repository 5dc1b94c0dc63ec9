"""Sagas against reference participants on SQLite and PostgreSQL: forward retries,
compensation in reverse order, compensation failures, empty compensation with a
late forward call (DTM-12..14), and cancelling a saga left in doubt."""

from __future__ import annotations

import logging
import threading

import pytest
from _tx_ledger import AlertLog, Behaviour, register

from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.monitoring import ProductionMonitor
from kailash_nb.transactions import (
    ParticipantSpec,
    RetryPolicy,
    TransactionManager,
    UnknownParticipantError,
    register_callables,
)

FAST = RetryPolicy(initial_delay=0.01, max_delay=0.05, commit_retry_seconds=5.0)


def _saga(manager, ledger, behaviours, **spec_options):
    specs = [
        register(ledger, pid, behaviour, **spec_options.get(pid, {}))
        for pid, behaviour in behaviours.items()
    ]
    return manager.create_transaction("order", {"pattern": "saga"}, participants=specs)


def test_saga_runs_every_step_once_and_completes(database_url, ledger):
    manager = TransactionManager(database_url, retry=FAST)
    record = _saga(manager, ledger, {"crm": Behaviour(), "erp": Behaviour(fail_execute=2)})
    done = manager.execute_transaction(record.id)
    assert done.status == "completed"
    assert done.step(1, "execute").attempts == 3
    assert done.step(1, "execute").result == {"done_by": "erp"}
    ledger.check_outcome(record.id, "completed", ["crm", "erp"])


def test_dtm_12_failed_step_compensates_the_earlier_ones_in_reverse_once(database_url, ledger):
    manager = TransactionManager(database_url, retry=FAST)
    behaviours = {
        "crm": Behaviour(),
        "erp": Behaviour(),
        "billing": Behaviour(fail_execute="permanent"),
        "audit": Behaviour(),
    }
    record = _saga(manager, ledger, behaviours)
    done = manager.execute_transaction(record.id)
    assert done.status == "compensated"  # its own final status, not a failure
    assert done.final and not done.in_doubt
    assert "step 'billing' failed: PermanentParticipantError" in done.error
    ledger.check_outcome(record.id, "compensated", list(behaviours))
    effects = [(pid, op, noop) for pid, op, _, noop in ledger.effects(record.id)]
    assert effects == [
        ("crm", "execute", 0),
        ("erp", "execute", 0),
        ("billing", "compensate", 1),  # it was sent: compensated, a no-op tombstone
        ("erp", "compensate", 0),
        ("crm", "compensate", 0),
    ]
    assert "audit" not in {call[0] for call in ledger.calls(record.id)}
    assert record.id not in [item.id for item in manager.recover_pending()]


def test_transient_failures_beyond_the_budget_compensate(database_url, ledger):
    manager = TransactionManager(database_url, retry=FAST)
    record = _saga(manager, ledger, {"crm": Behaviour(), "erp": Behaviour(fail_execute=99)})
    done = manager.execute_transaction(record.id)
    assert done.status == "compensated"
    assert "ParticipantError after 3 attempts" in done.error
    ledger.check_outcome(record.id, "compensated", ["crm", "erp"])


def test_dtm_13_transient_compensation_failures_are_retried_until_success(database_url, ledger):
    manager = TransactionManager(database_url, retry=FAST)
    behaviours = {
        "crm": Behaviour(fail_compensate=4),
        "erp": Behaviour(fail_execute="permanent"),
    }
    done = manager.execute_transaction(_saga(manager, ledger, behaviours).id)
    assert done.status == "compensated"
    assert done.step(0, "compensate").attempts == 5
    ledger.check_outcome(done.id, "compensated", list(behaviours))


@pytest.mark.parametrize("failure", ["permanent", 1000])
def test_dtm_13_compensation_failing_for_good_is_terminal_and_alerted(
    database_url, ledger, caplog, failure
):
    alerts = AlertLog()
    retry = RetryPolicy(initial_delay=0.001, max_delay=0.002, compensation_attempts=4)
    manager = TransactionManager(database_url, retry=retry, monitor=alerts)
    behaviours = {
        "crm": Behaviour(),
        "erp": Behaviour(fail_compensate=failure),
        "billing": Behaviour(fail_execute="permanent"),
    }
    record = _saga(manager, ledger, behaviours)
    with caplog.at_level(logging.ERROR, logger="kailash_nb.transactions"):
        done = manager.execute_transaction(record.id)
    assert done.status == "compensation_failed" and done.final
    assert "compensation of step 'erp' failed" in done.error
    assert [name for name, _ in alerts.alerts] == ["transaction_compensation_failed"]
    assert alerts.alerts[0][1].startswith(f"transaction {record.id} of tenant 'default': ")
    assert "compensation of step 'erp' failed" in caplog.text
    # Never reported compensated, never resumed forward, never retried by recovery.
    assert record.id not in [item.id for item in manager.recover_pending()]
    assert manager.execute_transaction(record.id).status == "compensation_failed"
    assert ledger.operations(record.id, "compensate") == ["billing"]  # crm still done
    assert ledger.operations(record.id, "execute") == ["crm", "erp"]


def test_compensation_failed_alerts_the_monitor_of_a_gateway_in_the_process(
    database_url, ledger, sqlite_url, serve_gateway
):
    # The manager is given no monitor: its alerts go to every ProductionMonitor of the
    # process, here the one of a served gateway.
    monitor = ProductionMonitor(alert_rules=[], memory_limit_bytes=1 << 50)
    server = serve_gateway(create_gateway(monitoring=monitor, database_url=sqlite_url))
    retry = RetryPolicy(initial_delay=0.001, max_delay=0.002, compensation_attempts=2)
    manager = TransactionManager(database_url, retry=retry)
    behaviours = {
        "crm": Behaviour(fail_compensate="permanent"),
        "erp": Behaviour(),
        "billing": Behaviour(fail_execute="permanent"),
    }
    record = manager.execute_transaction(_saga(manager, ledger, behaviours).id)
    assert record.status == "compensation_failed"

    health = server.client.get("/health").json()
    assert [event["name"] for event in health["events"]] == ["transaction_compensation_failed"]
    assert health["status"] == "ok"  # an event alert does not fire or clear
    assert "detail" not in health["events"][0]  # /health is public: names and times only
    (alert,) = monitor.recent_alerts()
    assert alert.detail.startswith(f"transaction {record.id} of tenant 'default': ")
    assert "compensation of step 'crm' failed" in alert.detail
    exposition = server.client.get("/metrics").text
    assert 'kailash_nb_event_alerts_total{alert="transaction_compensation_failed"} 1.0' in (
        exposition
    )


def test_dtm_14_compensation_before_the_forward_step_then_the_late_forward_is_refused(
    database_url, ledger
):
    retry = RetryPolicy(max_attempts=1, initial_delay=0.01)
    manager = TransactionManager(database_url, retry=retry)
    gate, finished = threading.Event(), threading.Event()
    record = _saga(
        manager,
        ledger,
        {"crm": Behaviour(), "erp": Behaviour(gate=gate, finished=finished)},
        erp={"options": {"timeout": 0.1}},
    )
    done = manager.execute_transaction(record.id)
    assert done.status == "compensated"
    # erp's compensation arrived first: a no-op that leaves a tombstone.
    assert [(pid, op, noop) for pid, op, _, noop in ledger.effects(record.id)] == [
        ("crm", "execute", 0),
        ("erp", "compensate", 1),
        ("crm", "compensate", 0),
    ]
    gate.set()  # the suspended forward call now reaches erp
    assert finished.wait(10)
    assert ("erp", "execute", 1, "refused") in ledger.calls(record.id)
    assert ledger.operations(record.id, "execute") == ["crm"]
    ledger.check_outcome(record.id, "compensated", ["crm", "erp"])


def test_aborting_a_saga_left_executing_compensates_what_it_did(database_url, ledger):
    # A saga whose coordinator gave up mid-way (its lease is free): the operator cancels it.
    manager = TransactionManager(database_url, retry=FAST)
    record = _saga(
        manager, ledger, {"crm": Behaviour(), "erp": Behaviour(), "billing": Behaviour()}
    )
    manager.log.compare_and_set(record.id, record.version, status="executing")
    # crm's and erp's steps ran before the coordinator stopped.
    from kailash_nb.transactions.driver import Driver
    from kailash_nb.transactions.log import new_lease_token

    token = new_lease_token()
    leased = manager.log.take_lease(record.id, token, 30.0)
    driver = Driver(manager.log, leased, token, 30.0, FAST)
    for index in (0, 1):
        driver.mark(index, "execute", "sent", 1)
        driver.call(index, "execute", 1)
        driver.mark(index, "execute", "done", 1)
    manager.log.release_lease(record.id, token)
    done = manager.abort_transaction(record.id, "cancelled by the operator")
    assert (done.status, done.error) == ("compensated", "cancelled by the operator")
    assert ledger.operations(record.id, "compensate") == ["erp", "crm"]
    assert "billing" not in {call[0] for call in ledger.calls(record.id)}


def test_a_participant_unknown_to_this_process_leaves_the_saga_for_one_that_knows_it(
    database_url, ledger
):
    manager = TransactionManager(database_url, retry=FAST)
    crm = register(ledger, "crm")
    name = f"erp-not-yet-registered-{ledger.path}"
    erp = ParticipantSpec("erp", "callable", options={"name": name})
    record = manager.create_transaction("order", {"pattern": "saga"}, participants=[crm, erp])
    with pytest.raises(UnknownParticipantError, match="register_callables"):
        manager.execute_transaction(record.id)
    stopped = manager.get_status(record.id)
    assert stopped.status == "executing"  # nothing decided for lack of a registration
    assert record.id not in [item.id for item in manager.recover_pending()]
    assert manager.get_status(record.id).status == "executing"
    register_callables(name, execute=lambda call: {"late": True}, compensate=lambda call: None)
    assert manager.recover_transaction(record.id).status == "completed"
    assert ledger.operations(record.id, "execute") == ["crm"]  # once, not re-run
