"""What coordinating a distributed transaction costs (``kailash_nb.transactions``).

Three in-process participants (``register_callables``: each keeps its effects in a dict
keyed by transaction and step id, as a real one deduplicates) take part in

- a saga: ``execute`` on each, in turn;
- a two-phase commit: ``prepare`` on each, then ``commit`` on each;

each transaction created and run to its end through ``TransactionManager``
(``create_transaction`` then ``execute_transaction``, checked to end ``completed`` or
``committed``), with the log on SQLite (a file in a temporary directory) and on
PostgreSQL (when ``KAILASH_NB_TEST_PG_URL`` names a server: in a database created for
the run and dropped after it).

For each: transactions per second (the median of ``--runs`` batches of ``--count``
transactions, after a warm-up batch); the store writes per transaction (INSERT, UPDATE
and DELETE statements on the log's two tables, counted with SQLAlchemy's
``after_cursor_execute`` event over every batch, those that changed no row, and the
database transactions committed), the SELECTs on those tables; and the baseline: the
same participant calls made directly, with no coordinator and no log, in transactions
per second, as a ratio, and as the milliseconds coordination adds to a transaction.

Run: ``python benchmarks/bench_transactions.py [--count N] [--runs R]``.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from timing import median_time

from kailash_nb.store.database import dispose_engines
from kailash_nb.store.urls import redact_url, sync_url
from kailash_nb.transactions import (
    ParticipantSpec,
    StepCall,
    TransactionManager,
    register_callables,
    resolve,
)

PG_ENV = "KAILASH_NB_TEST_PG_URL"
PARTICIPANTS = ("orders", "payments", "shipping")
OPERATIONS = ("prepare", "commit", "abort", "execute", "compensate")
PATTERNS = {"saga": ("execute",), "two_phase": ("prepare", "commit")}
ENDED = {"saga": "completed", "two_phase": "committed"}
CONTEXT = {"order_id": "A-1001", "amount": 42.5}
_WRITE = re.compile(r"^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)", re.IGNORECASE)
_READ = re.compile(r"^\s*SELECT\b.*?\bFROM\s+\"?(\w+)", re.IGNORECASE | re.DOTALL)


# -- participants ------------------------------------------------------------------------
def participant_functions(name: str) -> dict[str, Callable[[StepCall], Any]]:
    """The five operations of participant ``name``: each records its effect once per
    (transaction, step, operation), as a real participant deduplicates, and answers."""
    effects: dict[tuple[str, str, str], Any] = {}

    def operation(which: str) -> Callable[[StepCall], Any]:
        answer = "prepared" if which == "prepare" else {"by": name}

        def apply(call: StepCall) -> Any:
            return effects.setdefault((call.transaction_id, call.step_id, which), answer)

        return apply

    return {which: operation(which) for which in OPERATIONS}


def register_participants() -> list[ParticipantSpec]:
    """Register the three callable participants; their specs, in order."""
    specs = []
    for name in PARTICIPANTS:
        register_callables(f"bench_{name}", **participant_functions(name))
        specs.append(ParticipantSpec(name, "callable", options={"name": f"bench_{name}"}))
    return specs


def direct(specs: list[ParticipantSpec], pattern: str) -> Callable[[], None]:
    """One transaction's participant calls made directly: no coordinator, no log."""
    participants = [resolve(spec) for spec in specs]

    def run() -> None:
        tx_id = str(uuid.uuid4())
        for operation in PATTERNS[pattern]:
            for participant in participants:
                call = StepCall(tx_id, f"{tx_id}/{participant.id}", participant.id, CONTEXT)
                getattr(participant, operation)(call)

    return run


def coordinated(
    manager: TransactionManager, specs: list[ParticipantSpec], pattern: str
) -> Callable[[], None]:
    """One transaction created and run to its end by ``manager``."""

    def run() -> None:
        record = manager.create_transaction(
            "order", {"pattern": pattern}, context=CONTEXT, participants=specs
        )
        record = manager.execute_transaction(record.id)
        if record.status != ENDED[pattern]:
            raise RuntimeError(
                f"transaction {record.id} ended {record.status!r}, not {ENDED[pattern]!r}: "
                f"{record.error}"
            )

    return run


# -- the store ---------------------------------------------------------------------------
class StatementCounter:
    """Counts what ``engine`` sends about ``tables``: write statements (INSERT, UPDATE,
    DELETE), those of them that changed no row, SELECTs, and committed transactions."""

    def __init__(self, engine: sa.engine.Engine, tables: set[str]) -> None:
        self.tables = tables
        self.counts: Counter[str] = Counter()
        sa.event.listen(engine, "after_cursor_execute", self._statement)
        sa.event.listen(engine, "commit", self._commit)

    def _statement(self, connection, cursor, statement, parameters, context, many) -> None:
        write = _WRITE.match(statement)
        if write and write.group(2).lower() in self.tables:
            self.counts["writes"] += 1
            if cursor.rowcount == 0:
                self.counts["no_op_writes"] += 1
            return
        read = _READ.match(statement)
        if read and read.group(1).lower() in self.tables:
            self.counts["reads"] += 1

    def _commit(self, connection) -> None:
        self.counts["commits"] += 1


@contextmanager
def postgres_database(base_url: str) -> Iterator[sa.engine.URL]:
    """A fresh database on the server of ``base_url``, dropped afterwards; its URL."""
    admin_url = sync_url(base_url)
    name = f"kailash_nb_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.set(database=name)
    finally:
        dispose_engines()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


# -- measuring ---------------------------------------------------------------------------
def measure(store_url: str, specs: list[ParticipantSpec], count: int, runs: int) -> list[dict]:
    """Both patterns on the log at ``store_url``: one row of figures each."""
    manager = TransactionManager(store_url)
    counter = StatementCounter(
        manager.log.engine, {manager.log.transactions.name, manager.log.steps.name}
    )
    rows = []
    for pattern in PATTERNS:
        coordinated_batch = batch(coordinated(manager, specs, pattern), count)
        direct_batch = batch(direct(specs, pattern), count)
        counter.counts.clear()
        seconds = median_time(coordinated_batch, runs)
        # median_time ran the batch runs + 1 times (the first as a warm-up).
        done = count * (runs + 1)
        per_transaction = {key: value / done for key, value in counter.counts.items()}
        direct_seconds = median_time(direct_batch, runs)
        rows.append(
            {
                "pattern": pattern,
                "per_second": count / seconds,
                "ms": seconds / count * 1e3,
                "writes": per_transaction.get("writes", 0.0),
                "no_op_writes": per_transaction.get("no_op_writes", 0.0),
                "commits": per_transaction.get("commits", 0.0),
                "reads": per_transaction.get("reads", 0.0),
                "direct_per_second": count / direct_seconds,
                "overhead_ms": (seconds - direct_seconds) / count * 1e3,
            }
        )
    return rows


def batch(transaction: Callable[[], None], count: int) -> Callable[[], None]:
    """``count`` transactions, one after the other."""

    def run() -> None:
        for _ in range(count):
            transaction()

    return run


HEADER = (
    f"{'store':<11} {'pattern':<10} {'tx/s':>7} {'ms/tx':>7} {'writes':>7} {'no-op':>6} "
    f"{'commits':>8} {'selects':>8} {'direct tx/s':>12} {'ratio':>7} {'+ms/tx':>7}"
)


def report(store: str, rows: list[dict]) -> None:
    """Print one line per pattern (columns as in ``HEADER``)."""
    for row in rows:
        ratio = row["direct_per_second"] / row["per_second"]
        print(
            f"{store:<11} {row['pattern']:<10} {row['per_second']:>7,.0f} {row['ms']:>7.2f} "
            f"{row['writes']:>7.1f} {row['no_op_writes']:>6.1f} {row['commits']:>8.1f} "
            f"{row['reads']:>8.1f} {row['direct_per_second']:>12,.0f} {ratio:>6,.0f}x "
            f"{row['overhead_ms']:>7.2f}"
        )


def main(arguments: list[str] | None = None) -> None:
    """Measure both patterns on SQLite, and on PostgreSQL when configured; print it all."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="transactions per batch")
    parser.add_argument("--runs", type=int, default=3, help="timed batches (the median counts)")
    args = parser.parse_args(arguments)
    if args.count < 1 or args.runs < 1:
        parser.error("--count and --runs must be 1 or more")
    specs = register_participants()
    print(
        f"3 callable participants; {args.count} transactions a batch; the median of "
        f"{args.runs} timed batch(es), after a warm-up batch"
    )
    print(HEADER)
    with tempfile.TemporaryDirectory() as directory:
        rows = measure(f"sqlite:///{directory}/transactions.db", specs, args.count, args.runs)
        report("sqlite", rows)
        dispose_engines()
    base_url = os.environ.get(PG_ENV)
    if base_url:
        with postgres_database(base_url) as url:
            rows = measure(url.render_as_string(hide_password=False), specs, args.count, args.runs)
            report("postgresql", rows)
        print(f"postgresql: {redact_url(url)}, created for this run and dropped")
    else:
        print(f"postgresql: skipped (set {PG_ENV}=postgresql://user@host:port/db)")
    print(
        "writes: INSERT/UPDATE/DELETE statements on the log's two tables per transaction, "
        "no-op: those that changed no row; commits: database transactions; selects: reads"
    )
    print(
        "direct: the same participant calls made without a coordinator or log; ratio: "
        "direct tx/s / tx/s; +ms/tx: what coordination adds to one transaction"
    )


if __name__ == "__main__":
    main()
