"""Idempotency keys scoped to (tenant, principal) and the lease that lets exactly one
driver run a transaction, on SQLite and PostgreSQL (DTM-15..19)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from _tx_ledger import Behaviour, register

from kailash_nb.transactions import (
    IdempotencyConflictError,
    RetryPolicy,
    TransactionBusyError,
    TransactionManager,
)

HERE = Path(__file__).parent
FAST = RetryPolicy(initial_delay=0.01, max_delay=0.05)


@pytest.fixture
def tenant():
    # The PostgreSQL database is shared by the session's tests: each has its own tenant.
    return f"acme-{uuid.uuid4().hex[:8]}"


def _create(manager, specs, key, **overrides):
    arguments = {
        "requirements": {"consistency": "strong"},
        "context": {"order": 42},
        "participants": specs,
        "principal": "alice",
        "idempotency_key": key,
    }
    arguments.update(overrides)
    return manager.create_transaction("order", **arguments)


def test_dtm_15_same_key_and_body_is_one_transaction_with_one_result(database_url, ledger, tenant):
    manager = TransactionManager(database_url, retry=FAST)
    specs = [register(ledger, "crm"), register(ledger, "erp")]
    first = _create(manager, specs, "order-42", tenant_id=tenant)
    again = _create(manager, specs, "order-42", tenant_id=tenant)
    assert again.id == first.id
    done = manager.execute_transaction(first.id)
    assert _create(manager, specs, "order-42", tenant_id=tenant) == done  # the finished transaction
    assert manager.execute_transaction(again.id) == done  # not run twice
    ledger.check_outcome(first.id, "committed", ["crm", "erp"])
    assert len(ledger.calls(first.id)) == 4


@pytest.mark.parametrize(
    "change",
    [
        {"context": {"order": 43}},
        {"requirements": {"consistency": "eventual"}},
        {"participants": []},
    ],
)
def test_dtm_16_same_key_with_another_body_is_422(database_url, ledger, tenant, change):
    manager = TransactionManager(database_url)
    specs = [register(ledger, "crm")]
    first = _create(manager, specs, "order-42", tenant_id=tenant)
    with pytest.raises(IdempotencyConflictError, match=first.id) as raised:
        _create(manager, specs, "order-42", tenant_id=tenant, **change)
    assert raised.value.http_status == 422


def test_dtm_17_same_key_while_the_first_runs_is_409_and_never_runs_twice(
    database_url, ledger, tenant
):
    manager = TransactionManager(database_url, retry=FAST)
    gate, entered = threading.Event(), threading.Event()
    specs = [register(ledger, "crm", Behaviour(gate=gate, entered=entered))]
    first = _create(manager, specs, "order-42", tenant_id=tenant)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(manager.execute_transaction, first.id)
        assert entered.wait(10)
        second = _create(manager, specs, "order-42", tenant_id=tenant)
        assert (second.id, second.status) == (first.id, "preparing")
        with pytest.raises(TransactionBusyError) as raised:
            manager.execute_transaction(second.id)
        assert raised.value.http_status == 409
        gate.set()
        assert running.result(30).status == "committed"
    assert [call[1] for call in ledger.calls(first.id)] == ["prepare", "commit"]


def test_dtm_18_keys_are_scoped_to_tenant_and_principal(database_url, ledger, tenant):
    manager = TransactionManager(database_url)
    specs = [register(ledger, "crm")]
    first = _create(manager, specs, "order-42", tenant_id=tenant)
    other_tenant = _create(manager, specs, "order-42", tenant_id=tenant + "-globex")
    other_principal = _create(manager, specs, "order-42", tenant_id=tenant, principal="bob")
    assert len({first.id, other_tenant.id, other_principal.id}) == 3
    assert (other_tenant.tenant_id, other_principal.principal) == (tenant + "-globex", "bob")
    # Another tenant's different body is not a conflict: it is another transaction.
    assert _create(manager, [], "order-42", tenant_id=tenant + "-initech").id != first.id


def test_concurrent_creations_with_one_key_make_one_row(database_url, ledger, tenant):
    specs = [register(ledger, "crm")]
    managers = [TransactionManager(database_url) for _ in range(6)]
    with ThreadPoolExecutor(6) as pool:
        records = list(
            pool.map(lambda manager: _create(manager, specs, "race", tenant_id=tenant), managers)
        )
    assert len({record.id for record in records}) == 1
    assert len(managers[0].list_transactions(tenant_id=tenant)) == 1


def test_dtm_19_two_workers_on_one_transaction_exactly_one_proceeds(database_url, ledger):
    gate, entered = threading.Event(), threading.Event()
    first_worker = TransactionManager(database_url, retry=FAST, owner="worker-1")
    second_worker = TransactionManager(database_url, retry=FAST, owner="worker-2")
    specs = [
        register(ledger, "crm"),
        register(ledger, "erp", Behaviour(gate=gate, entered=entered)),
    ]
    record = first_worker.create_transaction("order", {"pattern": "saga"}, participants=specs)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(first_worker.execute_transaction, record.id)
        assert entered.wait(10)
        for attempt in (
            second_worker.execute_transaction,
            second_worker.recover_transaction,
            second_worker.abort_transaction,
        ):
            with pytest.raises(TransactionBusyError, match="worker-1"):
                attempt(record.id)
        # Skipped by recovery: it has a live driver.
        assert record.id not in [item.id for item in second_worker.recover_pending()]
        # Another process is refused just the same.
        child = subprocess.run(
            [
                sys.executable,
                str(HERE / "_tx_child.py"),
                database_url,
                ledger.path,
                "saga_ok",
                "recover",
                record.id,
            ],
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent), str(HERE)])},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert child.returncode == 1 and "TransactionBusyError" in child.stderr
        gate.set()
        assert running.result(30).status == "completed"
    ledger.check_outcome(record.id, "completed", ["crm", "erp"])
    assert [call[0] for call in ledger.calls(record.id)] == ["crm", "erp"]


def test_an_expired_lease_can_be_taken_over_and_fences_the_old_driver(database_url, ledger):
    from kailash_nb.transactions import LeaseLostError
    from kailash_nb.transactions.log import new_lease_token

    manager = TransactionManager(database_url)
    record = manager.create_transaction("order", participants=[register(ledger, "crm")])
    stale = new_lease_token("stale")
    manager.log.take_lease(record.id, stale, -1.0)  # already expired
    fresh = new_lease_token("fresh")
    manager.log.take_lease(record.id, fresh, 30.0)
    with pytest.raises(LeaseLostError):
        manager.log.write(record.id, stale, 30.0, status="preparing")
    with pytest.raises(TransactionBusyError):
        manager.log.take_lease(record.id, new_lease_token("third"), 30.0)
    manager.log.release_lease(record.id, fresh)
    assert manager.get_status(record.id).status == "created"
