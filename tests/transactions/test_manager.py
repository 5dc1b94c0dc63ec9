"""The TransactionManager API: pattern selection, validation, deadlines, the store it
refuses to run without, damaged rows and several writer processes (DTM-20..22,
STOR-01, STOR-03, STOR-06, STOR-07)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from _tx_ledger import AlertLog, Behaviour, Ledger, register

import kailash_nb.transactions as transactions
from kailash_nb.store import StoreConfigurationError, get_engine
from kailash_nb.store.database import with_pool_size
from kailash_nb.store.schema import SCHEMA_VERSION, schema_table
from kailash_nb.transactions import (
    InvalidTransactionError,
    ParticipantSpec,
    RetryPolicy,
    TransactionManager,
    TransactionNotFoundError,
    TransactionStateError,
    TransactionStoreUnavailableError,
    select_pattern,
)

HERE = Path(__file__).parent
FAST = RetryPolicy(initial_delay=0.01, max_delay=0.05)


# -- pattern selection -------------------------------------------------------------------

SEED_SERVICES = [
    {"id": "crm_service", "2pc": True, "saga": True},
    {"id": "erp_service", "2pc": True, "saga": True},
    {"id": "billing_service", "2pc": False, "saga": True},
    {"id": "audit_service", "2pc": True, "saga": True},
]


@pytest.mark.parametrize(
    ("requirements", "participants", "pattern"),
    [
        ({"consistency": "strong"}, SEED_SERVICES, "saga"),  # billing cannot prepare
        ({"consistency": "strong"}, SEED_SERVICES[:2], "two_phase"),
        ({"isolation_level": "serializable"}, SEED_SERVICES[:2], "two_phase"),
        ({"consistency": "eventual", "availability": "high"}, SEED_SERVICES[:2], "saga"),
        ({"consistency": "strong", "availability": "high"}, SEED_SERVICES[:2], "two_phase"),
        ({}, SEED_SERVICES[:2], "two_phase"),
        ({}, [], "two_phase"),
        ({"consistency": "eventual", "availability": "high"}, [], "saga"),
        (None, [ParticipantSpec("legacy", "callable", supports_2pc=False)], "saga"),
    ],
)
def test_pattern_selection_rules(requirements, participants, pattern):
    assert select_pattern(requirements, participants) == pattern


def test_pattern_is_chosen_again_as_participants_are_added_until_execution(sqlite_url, ledger):
    manager = TransactionManager(sqlite_url)
    seed_requirements = {
        "consistency": "strong",
        "availability": "high",
        "timeout": 300,
        "isolation_level": "serializable",
    }
    record = manager.create_transaction("enterprise_order_processing", seed_requirements)
    assert record.pattern == "two_phase"
    record = manager.add_participant(record.id, register(ledger, "crm_service"))
    assert record.pattern == "two_phase"
    record = manager.add_participant(
        record.id, {**SEED_SERVICES[2], "kind": "callable", "options": {"name": "billing"}}
    )
    assert record.pattern == "saga"
    assert [spec.id for spec in record.participants] == ["crm_service", "billing_service"]
    with pytest.raises(InvalidTransactionError, match="listed twice"):
        manager.add_participant(record.id, register(ledger, "crm_service"))
    manager.abort_transaction(record.id)
    with pytest.raises(TransactionStateError, match="before it is executed"):
        manager.add_participant(record.id, register(ledger, "audit_service"))


def test_a_forced_pattern_must_suit_every_participant(sqlite_url, ledger):
    manager = TransactionManager(sqlite_url)
    legacy = register(ledger, "billing", supports_2pc=False)
    with pytest.raises(InvalidTransactionError, match="cannot take part in a two_phase"):
        manager.create_transaction("order", {"pattern": "two_phase"}, participants=[legacy])
    with pytest.raises(InvalidTransactionError, match=r"requirements\.pattern"):
        manager.create_transaction("order", {"pattern": "xa"})
    record = manager.create_transaction("order", {"pattern": "saga", "consistency": "strong"})
    assert record.pattern == "saga"
    two_phase_only = register(ledger, "erp", supports_saga=False)
    with pytest.raises(InvalidTransactionError, match="no protocol suits every participant"):
        manager.create_transaction("order", participants=[legacy, two_phase_only])
    record = manager.create_transaction("order", participants=[two_phase_only])
    with pytest.raises(InvalidTransactionError, match="no protocol suits"):
        manager.add_participant(record.id, legacy)


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(transactions.RESERVED_CONTEXT_KEYS))
def test_dtm_21_context_keys_that_shadow_step_parameters_are_400(sqlite_url, key):
    manager = TransactionManager(sqlite_url)
    with pytest.raises(InvalidTransactionError, match=key) as raised:
        manager.create_transaction("order", context={"customer": "c-1", key: "x"})
    assert raised.value.http_status == 400
    assert manager.list_transactions() == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": ""}, "name"),
        ({"requirements": {"timeout": -1}}, "timeout"),
        ({"requirements": {"timeout": True}}, "timeout"),
        ({"context": {"when": object()}}, "JSON"),
        ({"context": ["not", "a", "mapping"]}, "mapping"),
        ({"participants": [{"id": "crm"}]}, "kind"),
        ({"participants": {"id": "crm", "kind": "callable"}}, "list"),
        ({"tenant_id": ""}, "tenant_id"),
        ({"idempotency_key": "k" * 300}, "idempotency_key"),
    ],
)
def test_malformed_requests_are_400(sqlite_url, arguments, message):
    manager = TransactionManager(sqlite_url)
    arguments = {"name": "order", **arguments}
    with pytest.raises(InvalidTransactionError, match=message):
        manager.create_transaction(**arguments)


def test_a_monitor_must_record_alerts(sqlite_url):
    with pytest.raises(TypeError, match="record_alert"):
        TransactionManager(sqlite_url, monitor=object())


def test_unknown_transactions_and_statuses(sqlite_url):
    manager = TransactionManager(sqlite_url)
    with pytest.raises(TransactionNotFoundError) as raised:
        manager.get_status(str(uuid.uuid4()))
    assert raised.value.http_status == 404
    with pytest.raises(TransactionNotFoundError):
        manager.execute_transaction("nope")
    with pytest.raises(InvalidTransactionError, match="unknown status"):
        manager.list_transactions(status="bogus")


def test_record_to_dict_names_what_the_seed_reads(sqlite_url, ledger):
    manager = TransactionManager(sqlite_url)
    record = manager.create_transaction(
        "order", {"consistency": "strong"}, {"enterprise_id": "ENT001"}
    )
    data = record.to_dict()
    assert data["transaction_id"] == record.id and data["selected_pattern"] == "two_phase"
    assert (data["status"], data["context"]) == ("created", {"enterprise_id": "ENT001"})
    with pytest.raises(TransactionStateError, match="can no longer be aborted"):
        manager.abort_transaction(manager.execute_transaction(record.id).id)


# -- deadlines (DTM-20) ---------------------------------------------------------------------


def test_dtm_20_deadline_passing_during_prepare_aborts(database_url, ledger):
    manager = TransactionManager(database_url, retry=FAST)
    specs = [register(ledger, "crm"), register(ledger, "erp", Behaviour(prepare_delay=0.5))]
    record = manager.create_transaction(
        "order", {"pattern": "two_phase", "timeout": 0.2}, participants=specs
    )
    done = manager.execute_transaction(record.id)
    assert (done.status, done.decision) == ("aborted", "abort")
    assert "deadline passed during prepare (requirements.timeout = 0.2 s)" in done.error
    assert ledger.operations(record.id, "commit") == []
    assert ledger.operations(record.id, "abort")[0] == "crm"


def test_dtm_20_deadline_passing_mid_saga_compensates(database_url, ledger):
    # erp keeps failing transiently: only the deadline stops its retries.
    retry = RetryPolicy(max_attempts=1000, initial_delay=0.02, max_delay=0.02)
    manager = TransactionManager(database_url, retry=retry)
    specs = [
        register(ledger, "crm"),
        register(ledger, "erp", Behaviour(fail_execute=10_000)),
        register(ledger, "billing"),
    ]
    record = manager.create_transaction(
        "order", {"pattern": "saga", "timeout": 0.3}, participants=specs
    )
    done = manager.execute_transaction(record.id)
    assert done.status == "compensated"
    assert "deadline passed during the saga (requirements.timeout = 0.3 s)" in done.error
    assert ledger.operations(record.id, "compensate") == ["erp", "crm"]
    assert "billing" not in {call[0] for call in ledger.calls(record.id)}


# -- the store ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://nobody@127.0.0.1:9/nowhere",  # nothing listens on port 9
        "sqlite:////nonexistent-directory/kailash_nb/tx.db",
    ],
)
def test_dtm_22_stor_01_unreachable_store_refuses_to_start(url):
    with pytest.raises(TransactionStoreUnavailableError) as raised:
        TransactionManager(url)
    assert raised.value.http_status == 503
    assert "unavailable (open)" in str(raised.value)


def test_dtm_22_misconfigured_store_refuses_to_start():
    with pytest.raises(StoreConfigurationError):
        TransactionManager("not a database url")


@pytest.mark.parametrize(
    "name", ["Robert'); DROP TABLE x;--", "Upper", "9starts_with_digit", "ok\n", "a" * 54, ""]
)
def test_table_names_are_validated(name):
    with pytest.raises(InvalidTransactionError, match="table_name"):
        TransactionManager("sqlite:///:memory:", table_name=name)


def test_stor_07_a_newer_schema_refuses_to_start_naming_the_migration(tmp_path):
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    TransactionManager(url)
    with get_engine(url).begin() as connection:
        connection.execute(schema_table.update().values(version=SCHEMA_VERSION + 1))
    with pytest.raises(StoreConfigurationError, match=f"migration {SCHEMA_VERSION + 1}"):
        TransactionManager(url)


def test_memory_storage_only_when_asked_and_the_same_code_path(ledger):
    manager = TransactionManager("sqlite:///:memory:", table_name=f"mem_{uuid.uuid4().hex[:8]}")
    record = manager.create_transaction("order", participants=[register(ledger, "crm")])
    assert manager.execute_transaction(record.id).status == "committed"


def test_a_log_in_tables_of_its_own_name(database_url, ledger):
    name = f"enterprise_transaction_states_{uuid.uuid4().hex[:6]}"
    manager = TransactionManager(database_url, table_name=name)
    record = manager.create_transaction("order", participants=[register(ledger, "crm")])
    assert manager.execute_transaction(record.id).status == "committed"
    tables = sa.inspect(get_engine(database_url)).get_table_names()
    assert name in tables and f"{name}_steps" in tables
    again = TransactionManager(database_url, table_name=name)  # created idempotently
    assert again.get_status(record.id).status == "committed"
    with pytest.raises(TransactionNotFoundError):
        TransactionManager(database_url).get_status(record.id)


def test_stor_06_corrupt_rows_are_quarantined_and_recovery_goes_on(database_url, caplog, ledger):
    alerts = AlertLog()
    manager = TransactionManager(database_url, retry=FAST, monitor=alerts)
    specs = [register(ledger, "crm")]
    good, bad_json, bad_status = (
        manager.create_transaction(name, participants=specs) for name in ("good", "json", "status")
    )
    table = manager.log.transactions
    with get_engine(database_url).begin() as connection:
        # Left in doubt by a coordinator that stopped before its first prepare.
        connection.execute(
            table.update().where(table.c.id.in_([good.id, bad_json.id])).values(status="preparing")
        )
        connection.execute(
            table.update().where(table.c.id == bad_json.id).values(participants='[{"id": ')
        )
        connection.execute(table.update().where(table.c.id == bad_status.id).values(status="zzz"))
    with caplog.at_level(logging.ERROR, logger="kailash_nb.transactions"):
        recovered = {item.id: item.status for item in manager.recover_pending()}
    assert recovered[good.id] == "aborted"
    for damaged in (bad_json, bad_status):
        with get_engine(database_url).connect() as connection:
            row = connection.execute(sa.select(table).where(table.c.id == damaged.id)).one()
        assert row.status == "quarantined" and row.error.startswith("quarantined:")
    quarantined = {detail.split(":")[0] for _, detail in alerts.alerts}
    assert {f"transaction {bad_json.id}", f"transaction {bad_status.id}"} <= quarantined
    assert "quarantined" in caplog.text
    listed = [item.id for item in manager.list_transactions(status="quarantined")]
    assert bad_status.id in listed and bad_json.id not in listed  # unreadable JSON: left out


_WRITER = textwrap.dedent(
    """
    import sys
    from _tx_ledger import Ledger, register
    from kailash_nb.transactions import TransactionManager

    url, ledger_path, worker, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    ledger = Ledger(ledger_path)
    specs = [register(ledger, "crm"), register(ledger, "erp")]
    manager = TransactionManager(url)
    for number in range(count):
        record = manager.create_transaction(
            "order", {"pattern": "saga"}, participants=specs, tenant_id=worker
        )
        print(record.id, manager.execute_transaction(record.id).status, flush=True)
    """
)


def test_stor_03_several_writer_processes_on_one_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    ledger = Ledger(tmp_path / "ledger.db")
    TransactionManager(url)  # the schema, once
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent), str(HERE)]),
    }
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, url, ledger.path, f"w{worker}", "15"],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in range(4)
    ]
    finished = []
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err[-2000:]
        finished += [line.split() for line in out.splitlines()]
    assert len(finished) == 60 and {status for _, status in finished} == {"completed"}
    manager = TransactionManager(url)
    for tx_id, _ in finished:
        assert manager.get_status(tx_id).status == "completed"
        ledger.check_outcome(tx_id, "completed", ["crm", "erp"])


def test_the_public_api_is_what_it_says():
    assert sorted(transactions.__all__) == sorted(
        name for name in transactions.__all__ if hasattr(transactions, name)
    )
    for name in ("TransactionManager", "select_pattern", "CRASH_POINTS", "RetryPolicy"):
        assert name in transactions.__all__


def test_stor_11_one_pooled_connection_is_enough_no_deadlock_with_its_own_writes(
    database_url, ledger
):
    # Every log write and read takes one connection and gives it back before the next:
    # with a pool of one, transactions still run to their end.
    url = with_pool_size(database_url, 1, max_overflow=0)
    manager = TransactionManager(url, retry=FAST)
    specs = [register(ledger, "crm"), register(ledger, "erp")]
    for pattern, final in (("two_phase", "committed"), ("saga", "completed")):
        record = manager.create_transaction("order", {"pattern": pattern}, participants=specs)
        assert manager.execute_transaction(record.id).status == final
    assert get_engine(url).pool.size() == 1
