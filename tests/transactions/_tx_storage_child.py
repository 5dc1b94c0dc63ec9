"""A coordinator process for the storage-fault tests (STOR-04, STOR-05).

``python _tx_storage_child.py kill STORE_URL LEDGER SCENARIO TX_ID STATUS LAST_TABLE``
executes the transaction and dies by SIGKILL inside the log write that sets its status
to ``STATUS``, at the commit of the database transaction in which the write's last
statement (on ``LAST_TABLE``: ``transactions`` or ``steps``) ran: every statement of
the write has run, the commit has not. Right before the write's first statement it
prints, as one JSON line, the transaction as the log held it then (read in that same
database transaction).

``python _tx_storage_child.py enospc STORE_URL LEDGER`` runs with its store on a small
file system of its own (see test_storage_faults.py): it creates a two-phase transaction
of the ``2pc_commit`` scenario and executes it, filling that file system right before
the commit decision is written. It prints one JSON line: the error, the transaction as
read after it, and its status after the file system was emptied and it was recovered.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from _tx_child import FAST_RETRY, scenario_specs
from _tx_ledger import Ledger

from kailash_nb.store.schema import transaction_steps, transactions
from kailash_nb.transactions import TransactionManager, TransactionStoreUnavailableError

_UPDATE_TRANSACTION = f"UPDATE {transactions.name.upper()} "


def _sets_status(statement: str, parameters: Any, status: str) -> bool:
    """Whether ``statement`` is the update of a transaction row to ``status``."""
    if not statement.lstrip().upper().startswith(_UPDATE_TRANSACTION):
        return False
    values = parameters.values() if isinstance(parameters, dict) else parameters
    return status in tuple(values)


def _snapshot(cursor: Any, dialect: sa.engine.Dialect, tx_id: str) -> dict[str, Any]:
    """The transaction's row and steps, read with the DBAPI connection of ``cursor``
    (in the database transaction it is in)."""
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    reader = cursor.connection.cursor()
    reader.execute(
        f"SELECT status, decision, version, error FROM {transactions.name} WHERE id = {mark}",
        (tx_id,),
    )
    status, decision, version, error = reader.fetchone()
    reader.execute(
        "SELECT step_index, phase, state, attempts, result, error "
        f"FROM {transaction_steps.name} WHERE transaction_id = {mark} "
        "ORDER BY step_index, phase",
        (tx_id,),
    )
    steps = [
        [index, phase, state, attempts, None if result is None else json.loads(result), error]
        for index, phase, state, attempts, result, error in reader.fetchall()
    ]
    reader.close()
    return {
        "status": status,
        "decision": decision,
        "version": version,
        "error": error,
        "steps": steps,
    }


def _writes(statement: str, table: sa.Table) -> bool:
    """Whether ``statement`` updates or inserts into ``table``."""
    text = statement.lstrip().upper()
    name = table.name.upper()
    return text.startswith((f"UPDATE {name} ", f"INSERT INTO {name} "))


def kill_inside_write(
    manager: TransactionManager, tx_id: str, status: str, last_table: sa.Table
) -> None:
    """SIGKILL this process at the commit of the database transaction that runs the
    last statement (on ``last_table``) of the log write setting ``status``."""
    engine = manager.log.engine
    armed = False

    @sa.event.listens_for(engine, "before_cursor_execute")
    def before(connection, cursor, statement, parameters, context, executemany):
        nonlocal armed
        if not armed and _sets_status(statement, parameters, status):
            print(json.dumps(_snapshot(cursor, engine.dialect, tx_id)), flush=True)
            armed = True
        if armed and _writes(statement, last_table):
            connection.info["kill_at_commit"] = True

    @sa.event.listens_for(engine, "commit")
    def commit(connection):
        if connection.info.get("kill_at_commit"):
            os.kill(os.getpid(), signal.SIGKILL)


def fill_before_decision(manager: TransactionManager, directory: Path) -> None:
    """Fill the file system of ``directory`` right before the commit decision's update
    runs, so that write cannot be made durable (ENOSPC)."""
    engine = manager.log.engine

    @sa.event.listens_for(engine, "before_cursor_execute")
    def before(connection, cursor, statement, parameters, context, executemany):
        if _sets_status(statement, parameters, "committing"):
            _fill(directory / "filler")


def _fill(path: Path) -> None:
    with open(path, "ab", buffering=0) as filler:
        for size in (1 << 16, 1 << 12, 1 << 8, 1):
            block = b"\0" * size
            while True:
                try:
                    filler.write(block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break


def _state(manager: TransactionManager, tx_id: str) -> dict[str, Any]:
    record = manager.get_status(tx_id)
    return {
        "status": record.status,
        "decision": record.decision,
        "steps": [[step.index, step.phase, step.state] for step in record.steps],
    }


def main() -> None:
    """Run one mode (see the module's docstring)."""
    mode, store_url, ledger_path = sys.argv[1:4]
    ledger = Ledger(ledger_path)
    if mode == "kill":
        scenario, tx_id, status, last_table = sys.argv[4:8]
        scenario_specs(ledger, scenario)
        manager = TransactionManager(store_url, retry=FAST_RETRY)
        table = {"transactions": transactions, "steps": transaction_steps}[last_table]
        kill_inside_write(manager, tx_id, status, table)
        record = manager.execute_transaction(tx_id)
        print(json.dumps({"not_killed": record.status}), flush=True)
        return
    requirements, specs = scenario_specs(ledger, "2pc_commit")
    manager = TransactionManager(store_url, retry=FAST_RETRY)
    record = manager.create_transaction("stor-04", requirements, participants=specs)
    directory = Path(sa.engine.make_url(store_url).database).parent
    fill_before_decision(manager, directory)
    outcome: dict[str, Any] = {"transaction_id": record.id}
    try:
        manager.execute_transaction(record.id)
    except TransactionStoreUnavailableError as exc:
        outcome.update(error_type=type(exc).__name__, error=str(exc), http_status=exc.http_status)
    outcome["after_error"] = _state(manager, record.id)
    (directory / "filler").unlink()
    outcome["recovered"] = manager.recover_transaction(record.id).status
    print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main()
