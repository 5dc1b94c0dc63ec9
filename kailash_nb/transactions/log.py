"""The durable transaction log: the single source of truth about every transaction.

Rows live in the run store (SQLite by default, PostgreSQL by URL), in the tables of
schema version 7 or in tables of a name given by ``storage_config`` (created when the
log is opened). Every state change is one database transaction, written before the
action it allows, and a write that cannot be made raises
:class:`TransactionStoreUnavailableError`: the engine never goes on from memory.

Who drives a transaction is decided by a lease on its row: ``take_lease`` is a
compare-and-set on the row's ``version`` that succeeds only while the lease is free
(none, expired, or held by a process of this host that no longer exists, or by a
driver of this process that ended without releasing it), so of two processes
executing or recovering one transaction exactly one proceeds. Every write of the
lease holder is fenced by ``lease_owner`` and renews the lease::

    log = TransactionLog("sqlite:///app.db")
    record = log.take_lease(tx_id, token, 30.0)
    log.write(tx_id, token, 30.0, status="committing", decision="commit")
"""

from __future__ import annotations

import json
import logging
import math
import re
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kailash_nb.store.database import SQLITE_BUSY_TIMEOUT_MS, get_engine
from kailash_nb.store.run_history import process_alive, process_token
from kailash_nb.store.schema import TRANSACTIONS_TABLE, migrate, transaction_tables
from kailash_nb.store.urls import StoreConfigurationError, redact_url
from kailash_nb.transactions.model import (
    PATTERNS,
    STATUSES,
    InvalidTransactionError,
    StepRecord,
    TransactionBusyError,
    TransactionError,
    TransactionNotFoundError,
    TransactionRecord,
    TransactionStoreUnavailableError,
)
from kailash_nb.transactions.participants import ParticipantSpec

__all__ = [
    "CorruptTransactionError",
    "LeaseLostError",
    "TransactionLog",
    "new_lease_token",
    "validate_table_name",
]

logger = logging.getLogger("kailash_nb.transactions")

_T = TypeVar("_T")
_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# PostgreSQL cuts identifiers at 63 bytes; the longest derived name is "ix_<name>_status"
# (an index), so a longer name could make the derived names of two logs collide.
_MAX_TABLE_NAME = 63 - len("ix__status")
_PHASE_ORDER = {"prepare": 0, "commit": 1, "abort": 2, "execute": 3, "compensate": 4}
_HOST = socket.gethostname()

# Lease tokens of drivers running in this process now. A lease held by another token of
# this process was left by a driver that ended without releasing it (its store was
# down): it is free.
_active_tokens: set[str] = set()
_active_lock = threading.Lock()

# An in-memory SQLite database is one connection shared by every thread: its users
# take turns here instead of ending each other's transactions.
_memory_locks: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_memory_locks_guard = threading.Lock()


class CorruptTransactionError(TransactionError):
    """A stored transaction row cannot be read (invalid JSON, unknown status); recovery
    quarantines it and goes on with the others."""


class LeaseLostError(TransactionBusyError):
    """This driver's lease on the transaction was taken over (it expired while a call
    was running): another process drives the transaction now, so this one stops."""


def new_lease_token(label: str = "") -> str:
    """A lease owner for one driver: ``host|pid:start|label-random``, so recovery can
    tell a lease whose process died from one that is alive (``label`` names the
    coordinator for operators)."""
    label = label.replace("|", "_")[:64]
    return f"{_HOST}|{process_token()}|{label}-{uuid.uuid4().hex[:12]}"


def validate_table_name(name: str) -> str:
    """``name`` if it can name a transaction log's tables.

    Raises:
        InvalidTransactionError: not ``^[a-z_][a-z0-9_]{0,62}$``, or longer than 53
            characters (its index names would not fit PostgreSQL's identifier limit).
    """
    if not isinstance(name, str) or not _TABLE_NAME.fullmatch(name) or len(name) > _MAX_TABLE_NAME:
        raise InvalidTransactionError(
            f"table_name {name!r:.80} must match ^[a-z_][a-z0-9_]*$ with at most "
            f"{_MAX_TABLE_NAME} characters (its steps table is <name>_steps, its indexes "
            "ix_<name>_status and uq_<name>_key)"
        )
    return name


def _lease_free(owner: str | None, until: float | None, now: float) -> bool:
    if owner is None or until is None or until < now:
        return True
    host, _, rest = owner.partition("|")
    process, _, _ = rest.rpartition("|")
    if host != _HOST:
        return False
    if process == process_token():
        with _active_lock:
            return owner not in _active_tokens
    return not process_alive(process)


def canonical_json(value: Any) -> str:
    """``value`` as compact JSON with sorted keys (what the log stores and digests)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _memory_lock(engine: Engine) -> threading.RLock | None:
    if engine.dialect.name != "sqlite" or engine.url.database not in (None, "", ":memory:"):
        return None
    with _memory_locks_guard:
        lock = _memory_locks.get(engine)
        if lock is None:
            lock = _memory_locks[engine] = threading.RLock()
        return lock


class TransactionLog:
    """Transactions and their steps in one store.

    Args:
        store_url: database URL; ``None`` uses ``KAILASH_NB_DATABASE_URL`` or the
            default SQLite file. ``sqlite:///:memory:`` keeps the log in memory (only
            when asked for: nothing survives the process).
        table_name: the transactions table (steps: ``<table_name>_steps``); default
            ``kailash_nb_transactions`` of the store's schema.
        timeout: seconds a write may wait for a locked database before it raises
            :class:`TransactionStoreUnavailableError`.

    Raises:
        StoreConfigurationError: a malformed URL or a schema newer than this code.
        InvalidTransactionError: a table name that is not allowed.
        TransactionStoreUnavailableError: the database cannot be reached.
    """

    def __init__(
        self,
        store_url: str | None = None,
        *,
        table_name: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        name = validate_table_name(table_name) if table_name is not None else TRANSACTIONS_TABLE
        self.timeout = float(timeout)
        self.engine = get_engine(store_url)
        self.transactions, self.steps = transaction_tables(name)
        self._memory_lock = _memory_lock(self.engine)
        try:
            migrate(self.engine)
            if name != TRANSACTIONS_TABLE:
                with self.engine.begin() as connection:
                    self.transactions.metadata.create_all(connection)
        except StoreConfigurationError:
            raise
        except (sa.exc.DBAPIError, sa.exc.TimeoutError) as exc:
            raise self._unavailable("open", exc) from exc

    def __repr__(self) -> str:
        return f"TransactionLog({redact_url(self.engine.url)!r}, {self.transactions.name!r})"

    # -- writing ----------------------------------------------------------------------

    def insert(self, values: Mapping[str, Any]) -> None:
        """Store a new transaction row (``values`` as the engine builds them).

        Raises:
            sqlalchemy.exc.IntegrityError: a row with the same id, or the same
                (tenant, principal, idempotency key), exists.
            TransactionStoreUnavailableError: the store cannot be written.
        """
        self._write(lambda connection: connection.execute(self.transactions.insert(), values))

    def take_lease(self, tx_id: str, token: str, seconds: float) -> TransactionRecord:
        """Make ``token`` the transaction's driver for ``seconds``; return the record.

        Raises:
            TransactionNotFoundError: no such transaction.
            TransactionBusyError: a live lease of another driver holds it.
            CorruptTransactionError: the row cannot be read (the lease is not taken).
            TransactionStoreUnavailableError: the store cannot be written.
        """
        table = self.transactions

        def take(connection: Connection) -> int:
            row = connection.execute(
                sa.select(table.c.version, table.c.lease_owner, table.c.lease_until).where(
                    table.c.id == tx_id
                )
            ).first()
            if row is None:
                raise TransactionNotFoundError(f"no transaction {tx_id!r} in the log")
            now = time.time()
            if not _lease_free(row.lease_owner, row.lease_until, now):
                raise TransactionBusyError(
                    f"transaction {tx_id!r} is being driven by {row.lease_owner!r} (host|process|"
                    f"coordinator) until {row.lease_until:.0f} (epoch s); try again later or "
                    "read its status"
                )
            taken = connection.execute(
                table.update()
                .where((table.c.id == tx_id) & (table.c.version == row.version))
                .values(
                    lease_owner=token,
                    lease_until=now + seconds,
                    version=table.c.version + 1,
                )
            )
            if taken.rowcount != 1:
                raise TransactionBusyError(f"transaction {tx_id!r} was taken by another driver")
            return int(row.version) + 1

        # Active before the lease is stored, so no other thread of this process ever
        # sees this lease as one a finished driver left behind.
        with _active_lock:
            _active_tokens.add(token)
        try:
            self._write(take)
        except BaseException:
            with _active_lock:
                _active_tokens.discard(token)
            raise
        try:
            return self.load(tx_id)
        except BaseException:
            self.release_lease(tx_id, token)
            raise

    def release_lease(self, tx_id: str, token: str) -> None:
        """End ``token``'s lease (nothing if it no longer holds one).

        Raises:
            TransactionStoreUnavailableError: the store cannot be written (the lease
                then ends when it expires, or as soon as this process exits).
        """
        table = self.transactions
        with _active_lock:
            _active_tokens.discard(token)
        self._write(
            lambda connection: connection.execute(
                table.update()
                .where((table.c.id == tx_id) & (table.c.lease_owner == token))
                .values(lease_owner=None, lease_until=None)
            )
        )

    def write(
        self,
        tx_id: str,
        token: str,
        lease_seconds: float,
        *,
        step: StepRecord | None = None,
        **changes: Any,
    ) -> None:
        """As the lease holder ``token``: change the transaction's columns (``status``,
        ``decision``, ``error``) and/or store ``step``, in one database transaction,
        renewing the lease.

        Raises:
            LeaseLostError: ``token`` no longer holds the lease; nothing was written.
            TransactionStoreUnavailableError: the store cannot be written.
        """
        table, steps = self.transactions, self.steps

        def write(connection: Connection) -> None:
            now = time.time()
            moved = connection.execute(
                table.update()
                .where((table.c.id == tx_id) & (table.c.lease_owner == token))
                .values(
                    version=table.c.version + 1,
                    updated_at=now,
                    lease_until=now + lease_seconds,
                    **changes,
                )
            )
            if moved.rowcount != 1:
                raise LeaseLostError(
                    f"transaction {tx_id!r}: this driver's lease was taken over; another "
                    "process drives it now"
                )
            if step is None:
                return
            values = {
                "participant_id": step.participant_id,
                "state": step.state,
                "attempts": step.attempts,
                "result": None if step.result is None else canonical_json(step.result),
                "error": step.error,
                "updated_at": now,
            }
            key = (
                (steps.c.transaction_id == tx_id)
                & (steps.c.step_index == step.index)
                & (steps.c.phase == step.phase)
            )
            if connection.execute(steps.update().where(key).values(**values)).rowcount == 0:
                connection.execute(
                    steps.insert().values(
                        transaction_id=tx_id, step_index=step.index, phase=step.phase, **values
                    )
                )

        self._write(write)

    def compare_and_set(self, tx_id: str, version: int, **changes: Any) -> bool:
        """Change a transaction nobody drives, if it is still at ``version``; return
        whether it was changed (``False``: someone wrote it meanwhile).

        Raises:
            TransactionStoreUnavailableError: the store cannot be written.
        """
        table = self.transactions

        def update(connection: Connection) -> bool:
            now = time.time()
            changed = connection.execute(
                table.update()
                .where(
                    (table.c.id == tx_id)
                    & (table.c.version == version)
                    & ((table.c.lease_owner.is_(None)) | (table.c.lease_until < now))
                )
                .values(version=table.c.version + 1, updated_at=now, **changes)
            )
            return changed.rowcount == 1

        return self._write(update)

    def quarantine(self, tx_id: str, reason: str) -> None:
        """Set a transaction whose row cannot be read aside (status ``quarantined``),
        whoever drives it.

        Raises:
            TransactionStoreUnavailableError: the store cannot be written.
        """
        table = self.transactions
        self._write(
            lambda connection: connection.execute(
                table.update()
                .where(table.c.id == tx_id)
                .values(
                    status="quarantined",
                    error=reason[:2000],
                    lease_owner=None,
                    lease_until=None,
                    version=table.c.version + 1,
                    updated_at=time.time(),
                )
            )
        )

    # -- reading ----------------------------------------------------------------------

    def load(self, tx_id: str) -> TransactionRecord:
        """The transaction ``tx_id`` with its steps.

        Raises:
            TransactionNotFoundError: no such transaction.
            CorruptTransactionError: its row cannot be read.
            TransactionStoreUnavailableError: the store cannot be read.
        """

        def read(connection: Connection) -> tuple[Any, list[Any]]:
            row = connection.execute(
                sa.select(self.transactions).where(self.transactions.c.id == tx_id)
            ).first()
            steps = connection.execute(
                sa.select(self.steps).where(self.steps.c.transaction_id == tx_id)
            ).all()
            return row, steps

        row, steps = self._read(read)
        if row is None:
            raise TransactionNotFoundError(f"no transaction {tx_id!r} in the log")
        return _record(row, steps)

    def find_by_key(self, tenant_id: str, principal: str, key: str) -> TransactionRecord | None:
        """The transaction created with idempotency ``key`` by (tenant, principal).

        Raises:
            CorruptTransactionError: its row cannot be read.
            TransactionStoreUnavailableError: the store cannot be read.
        """
        table = self.transactions
        found = self._read(
            lambda connection: connection.execute(
                sa.select(table.c.id).where(
                    (table.c.tenant_id == tenant_id)
                    & (table.c.principal == principal)
                    & (table.c.idempotency_key == key)
                )
            ).scalar()
        )
        return None if found is None else self.load(found)

    def ids(
        self,
        *,
        statuses: Iterable[str] | None = None,
        tenant_id: str | None = None,
        limit: int = 100,
    ) -> list[str]:
        """Ids of transactions with one of ``statuses`` (all if ``None``) of
        ``tenant_id`` (any if ``None``), the most recently changed first.

        Raises:
            TransactionStoreUnavailableError: the store cannot be read.
        """
        table = self.transactions
        query = sa.select(table.c.id)
        if statuses is not None:
            query = query.where(table.c.status.in_(sorted(statuses)))
        if tenant_id is not None:
            query = query.where(table.c.tenant_id == tenant_id)
        query = query.order_by(table.c.updated_at.desc(), table.c.id).limit(limit)
        return list(self._read(lambda connection: connection.execute(query).scalars().all()))

    def unreadable_ids(self, limit: int = 1000) -> list[str]:
        """Ids of rows whose status is not one this code knows (damaged rows).

        Raises:
            TransactionStoreUnavailableError: the store cannot be read.
        """
        table = self.transactions
        query = sa.select(table.c.id).where(table.c.status.not_in(STATUSES)).limit(limit)
        return list(self._read(lambda connection: connection.execute(query).scalars().all()))

    # -- the database -------------------------------------------------------------------

    def _write(self, work: Callable[[Connection], _T]) -> _T:
        deadline = time.monotonic() + self.timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._write_once(work, deadline)
            except sa.exc.IntegrityError:
                raise
            except sa.exc.OperationalError as exc:
                if not _is_contention(exc) or time.monotonic() >= deadline:
                    raise self._unavailable("write", exc) from exc
            except (sa.exc.DBAPIError, sa.exc.TimeoutError) as exc:
                # TimeoutError: no pooled connection came free in time (pool exhausted).
                raise self._unavailable("write", exc) from exc
            time.sleep(min(0.002 * 2 ** min(attempt, 6), max(deadline - time.monotonic(), 0)))

    def _write_once(self, work: Callable[[Connection], _T], deadline: float) -> _T:
        lock = self._memory_lock
        if lock is not None:
            lock.acquire()
        try:
            with self.engine.connect() as connection:
                wait_ms = max(int((deadline - time.monotonic()) * 1000), 1)
                sqlite_file = connection.dialect.name == "sqlite" and lock is None
                shortened = sqlite_file and wait_ms < SQLITE_BUSY_TIMEOUT_MS
                try:
                    if sqlite_file:
                        if shortened:
                            connection.exec_driver_sql(f"PRAGMA busy_timeout = {wait_ms}")
                        # The write lock first, so the row read next is the latest.
                        connection.exec_driver_sql("BEGIN IMMEDIATE")
                    elif connection.dialect.name == "postgresql":
                        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {wait_ms}")
                    result = work(connection)
                    connection.commit()
                    return result
                except BaseException:
                    connection.rollback()
                    raise
                finally:
                    if shortened:
                        connection.exec_driver_sql(
                            f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"
                        )
        finally:
            if lock is not None:
                lock.release()

    def _read(self, work: Callable[[Connection], _T]) -> _T:
        lock = self._memory_lock
        if lock is not None:
            lock.acquire()
        try:
            with self.engine.connect() as connection:
                try:
                    if connection.dialect.name == "postgresql":
                        wait_ms = max(int(self.timeout * 1000), 1)
                        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {wait_ms}")
                    return work(connection)
                finally:
                    connection.rollback()
        except (sa.exc.DBAPIError, sa.exc.TimeoutError) as exc:
            raise self._unavailable("read", exc) from exc
        finally:
            if lock is not None:
                lock.release()

    def _unavailable(self, what: str, exc: BaseException) -> TransactionStoreUnavailableError:
        text = str(getattr(exc, "orig", None) or exc).strip()
        first = text.splitlines()[0][:200] if text else ""
        return TransactionStoreUnavailableError(
            f"transaction log {redact_url(self.engine.url)} unavailable ({what}): "
            f"{type(exc).__name__}: {first}; retry when the store is back"
        )


def _is_contention(exc: sa.exc.OperationalError) -> bool:
    text = str(exc.orig).lower()
    return any(
        marker in text
        for marker in ("database is locked", "deadlock", "could not serialize", "lock timeout")
    )


def _loads(text: Any, what: str, tx_id: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise CorruptTransactionError(
            f"transaction {tx_id!r}: its {what} are not valid JSON ({exc})"
        ) from exc


def _record(row: Any, step_rows: Iterable[Any]) -> TransactionRecord:
    tx_id = row.id
    if row.status not in STATUSES:
        raise CorruptTransactionError(f"transaction {tx_id!r}: unknown status {row.status!r}")
    if row.pattern not in PATTERNS:
        raise CorruptTransactionError(f"transaction {tx_id!r}: unknown pattern {row.pattern!r}")
    requirements = _loads(row.requirements, "requirements", tx_id)
    context = _loads(row.context, "context", tx_id)
    participants = _loads(row.participants, "participants", tx_id)
    if not isinstance(requirements, dict) or not isinstance(context, dict):
        raise CorruptTransactionError(f"transaction {tx_id!r}: requirements/context not objects")
    if not isinstance(participants, list):
        raise CorruptTransactionError(f"transaction {tx_id!r}: participants not a list")
    try:
        specs = tuple(ParticipantSpec.from_dict(item) for item in participants)
    except (TypeError, ValueError, AttributeError) as exc:
        raise CorruptTransactionError(
            f"transaction {tx_id!r}: a participant cannot be read ({exc})"
        ) from exc
    steps = tuple(
        sorted(
            (
                StepRecord(
                    index=int(step.step_index),
                    participant_id=step.participant_id,
                    phase=step.phase,
                    state=step.state,
                    attempts=int(step.attempts),
                    result=_loads(step.result, "step results", tx_id),
                    error=step.error,
                    updated_at=float(step.updated_at),
                )
                for step in step_rows
            ),
            key=lambda step: (step.index, _PHASE_ORDER.get(step.phase, 9)),
        )
    )
    deadline = row.deadline
    if deadline is not None and not math.isfinite(deadline):
        raise CorruptTransactionError(f"transaction {tx_id!r}: deadline {deadline!r}")
    return TransactionRecord(
        id=tx_id,
        name=row.name,
        pattern=row.pattern,
        status=row.status,
        decision=row.decision,
        tenant_id=row.tenant_id,
        principal=row.principal,
        requirements=MappingProxyType(requirements),
        context=MappingProxyType(context),
        participants=specs,
        steps=steps,
        idempotency_key=row.idempotency_key,
        body_digest=row.body_digest,
        deadline=deadline,
        error=row.error,
        version=int(row.version),
        created_at=float(row.created_at),
        updated_at=float(row.updated_at),
    )
