"""``TransactionManager``: create, run, abort, inspect and recover transactions.

This is the API the transaction nodes, the gateway and the CLI use. Every call works
on the durable log, so any process sharing the store sees (and can recover) every
transaction; participants are called from the calling thread::

    manager = TransactionManager("postgresql://db/app")
    record = manager.create_transaction(
        "order", requirements={"consistency": "strong"},
        participants=[ParticipantSpec("inventory", "callable")],
    )
    record = manager.execute_transaction(record.id)
    record.status  # "committed"
    manager.recover_pending()  # at start: finish what a dead process left in doubt
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from kailash_nb.monitoring.events import AlertRecorder
from kailash_nb.transactions import recovery
from kailash_nb.transactions.log import CorruptTransactionError, TransactionLog, canonical_json
from kailash_nb.transactions.model import (
    IN_DOUBT_STATUSES,
    STATUSES,
    IdempotencyConflictError,
    InvalidTransactionError,
    RetryPolicy,
    TransactionBusyError,
    TransactionRecord,
    TransactionStateError,
)
from kailash_nb.transactions.participants import ParticipantSpec
from kailash_nb.transactions.patterns import select_pattern

__all__ = ["RESERVED_CONTEXT_KEYS", "TransactionManager"]

logger = logging.getLogger("kailash_nb.transactions")

#: Context keys refused because they would shadow what each participant call carries.
RESERVED_CONTEXT_KEYS = frozenset({"endpoint", "node_id", "operation", "transaction_id", "step_id"})

_MAX_TEXT = 256
_CAS_ATTEMPTS = 20


class TransactionManager:
    """Distributed transactions over one durable log.

    Args:
        store_url: the log's database; ``None`` uses ``KAILASH_NB_DATABASE_URL`` or the
            default SQLite file; ``"sqlite:///:memory:"`` keeps it in memory (only when
            asked for explicitly: nothing survives the process, nothing is recovered).
        table_name: the transactions table (default ``kailash_nb_transactions``).
        owner: a name for this coordinator, carried by its leases.
        lease_seconds: how long a driver's lease lasts without a write (each write
            renews it); another process may take over a transaction whose lease
            expired, or whose process on this host died. Keep it above the longest
            participant call: a driver whose lease was taken over stops at its next
            write (``LeaseLostError``), and the same step may reach a participant
            from both (same step id: it deduplicates).
        retry: backoff and budgets of participant calls.
        monitor: where alerts (compensation failed, commit in doubt, row
            quarantined) are recorded: an object with ``record_alert(name, detail)``
            (an ``AlertRecorder``, e.g. a ``kailash_nb.monitoring.ProductionMonitor``), or
            ``None`` for every ``ProductionMonitor`` of the process, such as the one of
            a gateway created with ``monitoring=`` (``kailash_nb.monitoring
            .record_alert``). Alerts are always logged at ERROR on
            ``kailash_nb.transactions``.
        store_timeout: seconds a write waits for a locked store before failing.

    Raises:
        StoreConfigurationError: a malformed URL or a schema newer than this code.
        InvalidTransactionError: a table name that is not allowed.
        TransactionStoreUnavailableError: the store cannot be reached (never a silent
            fallback to memory).
        TypeError: a ``monitor`` without a ``record_alert`` method.
    """

    def __init__(
        self,
        store_url: str | None = None,
        *,
        table_name: str | None = None,
        owner: str | None = None,
        lease_seconds: float = 30.0,
        retry: RetryPolicy | None = None,
        monitor: AlertRecorder | None = None,
        store_timeout: float = 10.0,
    ) -> None:
        if monitor is not None and not callable(getattr(monitor, "record_alert", None)):
            raise TypeError(
                f"monitor must have a record_alert(name, detail) method (an AlertRecorder, e.g. a "
                f"kailash_nb.monitoring.ProductionMonitor) or be None, got {type(monitor).__name__}"
            )
        if (
            isinstance(lease_seconds, bool)
            or not isinstance(lease_seconds, (int, float))
            or not math.isfinite(lease_seconds)
            or lease_seconds <= 0
        ):
            raise ValueError(f"lease_seconds must be a positive number, got {lease_seconds!r}")
        self.log = TransactionLog(store_url, table_name=table_name, timeout=store_timeout)
        self.settings = recovery.EngineSettings(
            lease_seconds=float(lease_seconds),
            retry=retry or RetryPolicy(),
            monitor=monitor,
            owner=owner or "",
        )

    def __repr__(self) -> str:
        return f"TransactionManager({self.log!r})"

    # -- creating -----------------------------------------------------------------------

    def create_transaction(
        self,
        name: str,
        requirements: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        participants: Iterable[ParticipantSpec | Mapping[str, Any]] = (),
        *,
        tenant_id: str = "default",
        principal: str = "anonymous",
        idempotency_key: str | None = None,
    ) -> TransactionRecord:
        """Log a new transaction (status ``created``) and choose its pattern.

        ``requirements``: ``consistency``, ``availability``, ``isolation_level`` (read
        by :func:`select_pattern`), ``timeout`` (seconds from now: the deadline), and
        ``pattern`` to force ``"two_phase"`` or ``"saga"``. ``context`` is handed to
        every participant call. With ``idempotency_key``, a second call with the same
        key, tenant and principal returns the first transaction (whatever its status)
        if the body (name, requirements, context, participants) is the same.

        Raises:
            InvalidTransactionError: a malformed argument, a context key in
                :data:`RESERVED_CONTEXT_KEYS`, or a forced pattern the participants
                cannot run.
            IdempotencyConflictError: the key was used with a different body.
            TransactionStoreUnavailableError: the log cannot be written.
        """
        name = _text(name, "name")
        tenant_id = _text(tenant_id, "tenant_id")
        principal = _text(principal, "principal")
        if idempotency_key is not None:
            idempotency_key = _text(idempotency_key, "idempotency_key")
        requirements = _json_object(requirements, "requirements")
        context = _json_object(context, "context")
        shadowing = sorted(RESERVED_CONTEXT_KEYS.intersection(context))
        if shadowing:
            raise InvalidTransactionError(
                f"context keys {shadowing} would shadow the step parameters every "
                "participant call carries; rename them"
            )
        deadline = _deadline(requirements)
        specs = _specs(participants)
        pattern = _pattern(requirements, specs)
        digest = _digest(name, requirements, context, specs)
        if idempotency_key is not None:
            existing = self.log.find_by_key(tenant_id, principal, idempotency_key)
            if existing is not None:
                return _same_body(existing, digest)
        now = time.time()
        tx_id = str(uuid.uuid4())
        try:
            self.log.insert(
                {
                    "id": tx_id,
                    "name": name,
                    "tenant_id": tenant_id,
                    "principal": principal,
                    "pattern": pattern,
                    "status": "created",
                    "decision": None,
                    "requirements": canonical_json(requirements),
                    "context": canonical_json(context),
                    "participants": canonical_json([spec.to_dict() for spec in specs]),
                    "idempotency_key": idempotency_key,
                    "body_digest": digest,
                    "deadline": None if deadline is None else now + deadline,
                    "lease_owner": None,
                    "lease_until": None,
                    "version": 1,
                    "error": None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        except sa.exc.IntegrityError:
            if idempotency_key is None:
                raise
            # Another process created it with the same key between our read and insert.
            existing = self.log.find_by_key(tenant_id, principal, idempotency_key)
            if existing is None:
                raise
            return _same_body(existing, digest)
        return self.log.load(tx_id)

    def add_participant(
        self, tx_id: str, participant: ParticipantSpec | Mapping[str, Any]
    ) -> TransactionRecord:
        """Append a participant to a transaction that has not started, and choose its
        pattern again.

        Raises:
            TransactionNotFoundError: no such transaction.
            InvalidTransactionError: a malformed spec, an id already in the
                transaction, or a forced pattern it cannot run.
            TransactionStateError: the transaction has started.
            TransactionBusyError: another process keeps changing it.
            TransactionStoreUnavailableError: the log cannot be written.
        """
        spec = _specs([participant])[0]
        for _ in range(_CAS_ATTEMPTS):
            record = self.log.load(tx_id)
            if record.status != "created":
                raise TransactionStateError(
                    f"transaction {tx_id!r} is {record.status!r}: participants can only be "
                    "added before it is executed"
                )
            specs = _specs([*record.participants, spec])
            pattern = _pattern(record.requirements, specs)
            if self.log.compare_and_set(
                tx_id,
                record.version,
                participants=canonical_json([item.to_dict() for item in specs]),
                pattern=pattern,
            ):
                return self.log.load(tx_id)
        raise TransactionBusyError(f"transaction {tx_id!r} keeps changing; try again")

    # -- running ------------------------------------------------------------------------

    def execute_transaction(self, tx_id: str) -> TransactionRecord:
        """Run the transaction's protocol to its end and return it: ``committed`` or
        ``aborted`` (two-phase), ``completed``, ``compensated`` or
        ``compensation_failed`` (saga); or still ``committing``/``aborting`` when a
        participant stayed unreachable for ``retry.commit_retry_seconds`` (in doubt:
        recovery finishes it). A transaction that already ended is returned as it is;
        one left in doubt is finished like :meth:`recover_transaction` does.

        Raises:
            TransactionNotFoundError: no such transaction.
            TransactionBusyError: another process or thread is running it.
            UnknownParticipantError: a participant this process cannot build (register
                its kind or callables); the transaction stays as the log has it.
            TransactionStoreUnavailableError: the log cannot be written; no participant
                was told to commit without a durable decision (recovery finishes it).
        """
        record = self.log.load(tx_id)
        if record.final:
            return record
        return recovery.run(self.log, tx_id, self.settings, recovering=record.status != "created")

    def abort_transaction(
        self, tx_id: str, reason: str = "aborted on request"
    ) -> TransactionRecord:
        """Abort a transaction: one not started ends ``aborted``; a two-phase one
        without a decision aborts its participants; a saga compensates what it did.
        An abort or compensation already under way is finished.

        Raises:
            TransactionNotFoundError: no such transaction.
            TransactionStateError: its commit is decided, or it already ended
                otherwise than aborted or compensated.
            TransactionBusyError: another process or thread is running it.
            TransactionStoreUnavailableError: the log cannot be written.
        """
        record = self.log.load(tx_id)
        if record.status in ("aborted", "compensated"):
            return record
        if record.status in ("aborting", "compensating"):
            return recovery.run(self.log, tx_id, self.settings, recovering=True)
        if record.status not in ("created", "preparing", "executing"):
            raise TransactionStateError(
                f"transaction {tx_id!r} is {record.status!r} and can no longer be aborted"
            )
        return recovery.run(
            self.log, tx_id, self.settings, recovering=record.status != "created", cancel=reason
        )

    # -- reading ------------------------------------------------------------------------

    def get_status(self, tx_id: str) -> TransactionRecord:
        """The transaction as the log holds it now.

        Raises:
            TransactionNotFoundError: no such transaction.
            CorruptTransactionError: its row cannot be read.
            TransactionStoreUnavailableError: the log cannot be read.
        """
        return self.log.load(tx_id)

    def list_transactions(
        self, status: str | None = None, tenant_id: str | None = None, limit: int = 100
    ) -> list[TransactionRecord]:
        """Transactions, the most recently changed first; ``status`` may be any status
        or ``"in_doubt"``. Rows that cannot be read are left out (logged at ERROR;
        recovery quarantines them).

        Raises:
            InvalidTransactionError: an unknown status or a bad limit.
            TransactionStoreUnavailableError: the log cannot be read.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidTransactionError(f"limit must be a positive int, got {limit!r}")
        if status is None:
            statuses = None
        elif status == "in_doubt":
            statuses = IN_DOUBT_STATUSES
        elif status in STATUSES:
            statuses = frozenset({status})
        else:
            raise InvalidTransactionError(
                f"unknown status {status!r}; use one of {', '.join(STATUSES)} or in_doubt"
            )
        records = []
        for tx_id in self.log.ids(statuses=statuses, tenant_id=tenant_id, limit=limit):
            try:
                records.append(self.log.load(tx_id))
            except CorruptTransactionError as exc:
                logger.error("transaction %s: unreadable, left out of the list: %s", tx_id, exc)
        return records

    # -- recovering ---------------------------------------------------------------------

    def recover_transaction(self, tx_id: str) -> TransactionRecord:
        """Finish ``tx_id`` if it is in doubt; return it.

        Raises:
            TransactionNotFoundError: no such transaction.
            TransactionBusyError: another process or thread is running it.
            CorruptTransactionError: its row cannot be read (it is now quarantined).
            TransactionStoreUnavailableError: the log cannot be written.
        """
        return recovery.recover(self.log, tx_id, self.settings)

    def recover_pending(self, limit: int = 1000) -> list[TransactionRecord]:
        """Finish every in-doubt transaction nobody is running (at start, and on
        demand); return them as they ended.

        Raises:
            TransactionStoreUnavailableError: the log cannot be read or written.
        """
        return recovery.recover_pending(self.log, self.settings, limit=limit)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
        raise InvalidTransactionError(f"{what} must be a string of 1-{_MAX_TEXT} characters")
    return value


def _json_object(value: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidTransactionError(f"{what} must be a mapping, got {type(value).__name__}")
    try:
        return json.loads(canonical_json(dict(value)))
    except (TypeError, ValueError) as exc:
        raise InvalidTransactionError(f"{what} must be JSON data: {exc}") from exc


def _deadline(requirements: Mapping[str, Any]) -> float | None:
    timeout = requirements.get("timeout")
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise InvalidTransactionError(
            f"requirements.timeout must be a positive number of seconds, got {timeout!r}"
        )
    return float(timeout)


def _specs(participants: Iterable[ParticipantSpec | Mapping[str, Any]]) -> list[ParticipantSpec]:
    if isinstance(participants, (str, bytes, Mapping)):
        raise InvalidTransactionError("participants must be a list of participant specs")
    specs = []
    seen = set()
    for item in participants:
        try:
            spec = item if isinstance(item, ParticipantSpec) else ParticipantSpec.from_dict(item)
            json.loads(canonical_json(spec.to_dict()))
        except (TypeError, ValueError, AttributeError) as exc:
            raise InvalidTransactionError(f"invalid participant {item!r:.200}: {exc}") from exc
        if spec.id in seen:
            raise InvalidTransactionError(f"participant {spec.id!r} is listed twice")
        seen.add(spec.id)
        specs.append(spec)
    return specs


def _pattern(requirements: Mapping[str, Any], specs: list[ParticipantSpec]) -> str:
    forced = requirements.get("pattern")
    if forced is None:
        selected = select_pattern(requirements, specs)
        if selected == "saga":
            no_2pc = [spec.id for spec in specs if not spec.supports_2pc]
            no_saga = [spec.id for spec in specs if not spec.supports_saga]
            if no_2pc and no_saga:
                raise InvalidTransactionError(
                    f"no protocol suits every participant: {no_2pc} cannot take part in a "
                    f"two_phase commit and {no_saga} cannot take part in a saga"
                )
        return selected
    if forced not in ("two_phase", "saga"):
        raise InvalidTransactionError(
            f"requirements.pattern must be 'two_phase' or 'saga', got {forced!r}"
        )
    capability = "supports_2pc" if forced == "two_phase" else "supports_saga"
    unable = [spec.id for spec in specs if not getattr(spec, capability)]
    if unable:
        raise InvalidTransactionError(f"participants {unable} cannot take part in a {forced}")
    return forced


def _digest(
    name: str, requirements: dict[str, Any], context: dict[str, Any], specs: list[ParticipantSpec]
) -> str:
    body = {
        "name": name,
        "requirements": requirements,
        "context": context,
        "participants": [spec.to_dict() for spec in specs],
    }
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def _same_body(existing: TransactionRecord, digest: str) -> TransactionRecord:
    if existing.body_digest != digest:
        raise IdempotencyConflictError(
            f"idempotency key {existing.idempotency_key!r} was used for transaction "
            f"{existing.id} with a different body; use a new key for a new request"
        )
    return existing
