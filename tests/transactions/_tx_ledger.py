"""Reference participants for the transaction tests, backed by a SQLite ledger file.

Every effect a participant applies is a row of ``effects`` with a UNIQUE
(transaction_id, step_id, operation) key: a participant deduplicates repeated calls by
that key (as real ones must), and a second effect of one operation under another step
id shows up in :meth:`Ledger.duplicates`. Calls that break the protocol (commit without
prepare, commit after abort, execute after compensate) are refused and recorded in
``violations``. Every call is logged in ``calls``, in order.

Participants are registered per process (``register``), so a coordinator child process
and the test process each build them from the same ledger file.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from kailash_nb.transactions import (
    ParticipantError,
    ParticipantSpec,
    PermanentParticipantError,
    StepCall,
    Vote,
    register_callables,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS effects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    noop INTEGER NOT NULL DEFAULT 0,
    UNIQUE (transaction_id, step_id, operation)
);
CREATE TABLE IF NOT EXISTS calls (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS violations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""


class Ledger:
    """The effects of reference participants, in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        with self._connect() as connection:
            connection.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        connection.execute("PRAGMA journal_mode = WAL")
        return connection

    # -- what participants do ---------------------------------------------------------

    def apply(self, call: StepCall, operation: str, *, refuse_if: tuple[str, ...] = ()) -> str:
        """Apply ``operation`` for ``call`` once; return ``"applied"``, ``"repeat"``
        (deduplicated) or ``"refused"`` (one of ``refuse_if`` already took effect)."""
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            done = {
                row[0]
                for row in connection.execute(
                    "SELECT operation FROM effects WHERE transaction_id = ? AND step_id = ?",
                    (call.transaction_id, call.step_id),
                )
            }
            if done.intersection(refuse_if):
                outcome = "refused"
            elif operation in done:
                outcome = "repeat"
            else:
                noop = operation == "compensate" and "execute" not in done
                connection.execute(
                    "INSERT INTO effects (transaction_id, step_id, participant_id, operation, noop)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (call.transaction_id, call.step_id, call.participant_id, operation, noop),
                )
                outcome = "applied"
            connection.execute(
                "INSERT INTO calls (transaction_id, step_id, participant_id, operation, attempt,"
                " outcome) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    call.transaction_id,
                    call.step_id,
                    call.participant_id,
                    operation,
                    call.attempt,
                    outcome,
                ),
            )
            connection.execute("COMMIT")
        finally:
            connection.close()
        return outcome

    def violation(self, call: StepCall, detail: str) -> None:
        """Record a call that broke the protocol."""
        connection = self._connect()
        try:
            connection.execute(
                "INSERT INTO violations (transaction_id, participant_id, detail) VALUES (?, ?, ?)",
                (call.transaction_id, call.participant_id, detail),
            )
        finally:
            connection.close()

    # -- what tests read --------------------------------------------------------------

    def effects(self, tx_id: str) -> list[tuple[str, str, str, int]]:
        """(participant, operation, step id, noop) of ``tx_id``'s effects, in order."""
        connection = self._connect()
        try:
            return connection.execute(
                "SELECT participant_id, operation, step_id, noop FROM effects "
                "WHERE transaction_id = ? ORDER BY seq",
                (tx_id,),
            ).fetchall()
        finally:
            connection.close()

    def operations(self, tx_id: str, operation: str) -> list[str]:
        """Participants that applied ``operation`` in ``tx_id``, in order."""
        return [row[0] for row in self.effects(tx_id) if row[1] == operation]

    def calls(self, tx_id: str) -> list[tuple[str, str, int, str]]:
        """(participant, operation, attempt, outcome) of every call of ``tx_id``."""
        connection = self._connect()
        try:
            return connection.execute(
                "SELECT participant_id, operation, attempt, outcome FROM calls "
                "WHERE transaction_id = ? ORDER BY seq",
                (tx_id,),
            ).fetchall()
        finally:
            connection.close()

    def violations(self, tx_id: str | None = None) -> list[tuple[str, str]]:
        """(participant, detail) of every protocol violation (of ``tx_id`` if given)."""
        connection = self._connect()
        try:
            query = "SELECT participant_id, detail FROM violations"
            rows = (
                connection.execute(query + " WHERE transaction_id = ?", (tx_id,))
                if tx_id is not None
                else connection.execute(query)
            )
            return rows.fetchall()
        finally:
            connection.close()

    def duplicates(self, tx_id: str) -> list[tuple[str, str]]:
        """(participant, operation) that took effect more than once in ``tx_id``."""
        counts = Counter((row[0], row[1]) for row in self.effects(tx_id))
        return [key for key, count in counts.items() if count > 1]

    def check_outcome(self, tx_id: str, status: str, participant_ids: list[str]) -> None:
        """Assert the ledger agrees with the final ``status``: nothing lost, nothing
        applied twice, no protocol violation."""
        assert self.violations(tx_id) == []
        assert self.duplicates(tx_id) == []
        for participant, _, step, _ in self.effects(tx_id):
            assert step == f"{tx_id}/{participant}", "a step id changed between calls"
        applied = {(row[0], row[1]) for row in self.effects(tx_id)}
        if status == "committed":
            for pid in participant_ids:
                assert (pid, "prepare") in applied and (pid, "commit") in applied, pid
                assert (pid, "abort") not in applied, pid
        elif status == "aborted":
            for pid in participant_ids:
                assert (pid, "commit") not in applied, pid
                if (pid, "prepare") in applied:
                    assert (pid, "abort") in applied, f"{pid} left prepared"
        elif status == "completed":
            for pid in participant_ids:
                assert (pid, "execute") in applied and (pid, "compensate") not in applied, pid
        elif status == "compensated":
            executed = [row[0] for row in self.effects(tx_id) if row[1] == "execute"]
            compensated = [
                row[0] for row in self.effects(tx_id) if row[1] == "compensate" and not row[3]
            ]
            assert compensated == list(reversed(executed)), (executed, compensated)
        else:
            raise AssertionError(f"unexpected final status {status!r}")


class Behaviour:
    """How one reference participant answers (defaults: it does everything asked).

    Attributes:
        vote: what ``prepare`` answers after preparing (``"prepared"``, or anything
            else to vote no).
        prepare_delay: seconds ``prepare`` sleeps first.
        fail_execute: ``"permanent"`` refuses every execute; an int fails that many
            first tries transiently.
        fail_compensate: the same for ``compensate``.
        fail_commit: an int: fail that many first commit tries transiently.
        gate: a ``threading.Event`` ``execute``/``prepare`` waits for (concurrency tests).
        entered: a ``threading.Event`` set when ``execute``/``prepare`` is entered.
        finished: a ``threading.Event`` set when ``execute``/``prepare`` returns.
        before_prepare: a function of the ``StepCall`` run first by ``prepare``.
    """

    def __init__(self, **settings: Any) -> None:
        self.vote = settings.pop("vote", "prepared")
        self.prepare_delay = settings.pop("prepare_delay", 0.0)
        self.fail_execute = settings.pop("fail_execute", 0)
        self.fail_compensate = settings.pop("fail_compensate", 0)
        self.fail_commit = settings.pop("fail_commit", 0)
        self.gate: threading.Event | None = settings.pop("gate", None)
        self.entered: threading.Event | None = settings.pop("entered", None)
        self.finished: threading.Event | None = settings.pop("finished", None)
        self.before_prepare = settings.pop("before_prepare", None)
        if settings:
            raise TypeError(f"unknown behaviour settings {sorted(settings)}")
        self.failures: Counter[str] = Counter()

    def transient(self, operation: str, budget: Any) -> None:
        if budget == "permanent":
            raise PermanentParticipantError(f"{operation} refused for good")
        if isinstance(budget, int) and self.failures[operation] < budget:
            self.failures[operation] += 1
            raise ParticipantError(f"{operation} unreachable (failure {self.failures[operation]})")


def register(
    ledger: Ledger, participant_id: str, behaviour: Behaviour | None = None, **spec: Any
) -> ParticipantSpec:
    """Register the reference participant ``participant_id`` writing to ``ledger`` (its
    functions are named after the ledger file too, so tests never share them); return
    its spec (kind ``callable``; ``spec`` overrides ``supports_2pc``... and ``options``)."""
    behaviour = behaviour or Behaviour()
    name = f"{participant_id}@{ledger.path}"

    def wait(call: StepCall) -> None:
        if behaviour.entered is not None:
            behaviour.entered.set()
        if behaviour.gate is not None:
            assert behaviour.gate.wait(30), "the test never opened the gate"

    def prepare(call: StepCall) -> Any:
        try:
            wait(call)
            if behaviour.before_prepare is not None:
                behaviour.before_prepare(call)
            if behaviour.prepare_delay:
                time.sleep(behaviour.prepare_delay)
            if ledger.apply(call, "prepare", refuse_if=("abort",)) == "refused":
                return Vote.ABORT  # told to abort before this prepare arrived
            return behaviour.vote
        finally:
            if behaviour.finished is not None:
                behaviour.finished.set()

    def commit(call: StepCall) -> None:
        behaviour.transient("commit", behaviour.fail_commit)
        done = ledger.apply(call, "commit", refuse_if=("abort",))
        if done == "refused":
            ledger.violation(call, "commit after abort")
            raise PermanentParticipantError("commit after abort")
        if "prepare" not in {row[1] for row in ledger.effects(call.transaction_id)
                             if row[0] == call.participant_id}:  # fmt: skip
            ledger.violation(call, "commit without prepare")

    def abort(call: StepCall) -> None:
        if ledger.apply(call, "abort", refuse_if=("commit",)) == "refused":
            ledger.violation(call, "abort after commit")
            raise PermanentParticipantError("abort after commit")

    def execute(call: StepCall) -> Any:
        try:
            wait(call)
            behaviour.transient("execute", behaviour.fail_execute)
            if ledger.apply(call, "execute", refuse_if=("compensate",)) == "refused":
                raise PermanentParticipantError(f"step {call.step_id} was compensated: refused")
            return {"done_by": call.participant_id}
        finally:
            if behaviour.finished is not None:
                behaviour.finished.set()

    def compensate(call: StepCall) -> None:
        behaviour.transient("compensate", behaviour.fail_compensate)
        ledger.apply(call, "compensate")

    register_callables(
        name, prepare=prepare, commit=commit, abort=abort, execute=execute, compensate=compensate
    )
    options = {"name": name, **spec.pop("options", {})}
    return ParticipantSpec(participant_id, "callable", options=options, **spec)


class AlertLog:
    """An alert sink (``record_alert``) that keeps what it is given, for assertions."""

    def __init__(self) -> None:
        self.alerts: list[tuple[str, str]] = []

    def record_alert(self, name: str, detail: str) -> None:
        """Keep the alert."""
        self.alerts.append((name, detail))


class StoreLock:
    """Holds the transaction log's table locked from another connection, so the
    coordinator's writes fail (its wait is short): SQLite's write lock
    (``BEGIN IMMEDIATE``), PostgreSQL's ``LOCK TABLE ... ACCESS EXCLUSIVE``."""

    def __init__(self, url: str, table: str = "kailash_nb_transactions") -> None:
        from kailash_nb.store.database import create_engine

        self.engine = create_engine(url)
        self.table = table
        self.connection = None

    def acquire(self, *_: Any) -> None:
        """Lock (the signature lets it serve as a ``before_prepare`` hook)."""
        self.connection = self.engine.connect()
        if self.engine.dialect.name == "sqlite":
            self.connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            self.connection.exec_driver_sql(f"LOCK TABLE {self.table} IN ACCESS EXCLUSIVE MODE")

    def release(self) -> None:
        """Unlock."""
        if self.connection is not None:
            self.connection.rollback()
            self.connection.close()
            self.connection = None
        self.engine.dispose()
