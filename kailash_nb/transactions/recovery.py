"""Running and recovering transactions under a lease.

:func:`run` takes a transaction's lease and drives it with its protocol; it is what
both execution and recovery do, the only difference being where the transaction
starts. :func:`recover_pending` finds every transaction in doubt (an in-doubt status
and no live lease: its driver died or gave up) and finishes each one:

- two-phase ``preparing`` (no decision): presumed abort;
- ``committing``: commit resent to every participant that has not acknowledged it;
- ``aborting``: aborts finished;
- saga ``executing``: resumed after the last ``done`` step;
- saga ``compensating``: compensations continued.

Recovery killed midway leaves the log consistent, and the next run converges on the
same outcome. A row that cannot be read is quarantined (status ``quarantined``,
logged at ERROR, alerted) and recovery goes on with the others.
"""

from __future__ import annotations

import dataclasses
import logging

from kailash_nb.monitoring.events import AlertRecorder
from kailash_nb.transactions import saga, two_phase
from kailash_nb.transactions.crash import crash_point
from kailash_nb.transactions.driver import Driver, raise_alert
from kailash_nb.transactions.log import (
    CorruptTransactionError,
    TransactionLog,
    new_lease_token,
)
from kailash_nb.transactions.model import (
    IN_DOUBT_STATUSES,
    RetryPolicy,
    TransactionBusyError,
    TransactionRecord,
)
from kailash_nb.transactions.participants import UnknownParticipantError

__all__ = ["EngineSettings", "recover_pending", "run"]

logger = logging.getLogger("kailash_nb.transactions")


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    """How transactions are driven: the lease length, retries, the alert sink, and the
    name this coordinator's leases carry for operators."""

    lease_seconds: float = 30.0
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    monitor: AlertRecorder | None = None
    owner: str = ""


def run(
    log: TransactionLog,
    tx_id: str,
    settings: EngineSettings,
    *,
    recovering: bool,
    cancel: str | None = None,
) -> TransactionRecord:
    """Take ``tx_id``'s lease, drive it as far as it goes, release the lease, and
    return the transaction as the log then holds it.

    ``recovering`` runs the recovery crash points; ``cancel`` (a reason) aborts a
    two-phase transaction without a decision or compensates a saga, instead of
    driving it forward.

    Raises:
        TransactionNotFoundError: no such transaction.
        TransactionBusyError: another driver holds its lease.
        CorruptTransactionError: its row cannot be read.
        UnknownParticipantError: a participant this process cannot build; the
            transaction stays as the log has it (in doubt once started).
        TransactionStoreUnavailableError: the log cannot be written.
    """
    token = new_lease_token(settings.owner)
    record = log.take_lease(tx_id, token, settings.lease_seconds)
    failed = True
    try:
        if recovering:
            crash_point("recovery.after_lease")
        if not record.final:
            driver = Driver(
                log,
                record,
                token,
                settings.lease_seconds,
                settings.retry,
                settings.monitor,
                recovering=recovering,
            )
            try:
                _drive(driver, cancel)
            finally:
                driver.close()
        failed = False
    finally:
        _release(log, tx_id, token, failed)
    return log.load(tx_id)


def _drive(driver: Driver, cancel: str | None) -> None:
    status = driver.status
    if cancel is not None and status in ("created", "preparing", "executing"):
        if status == "created":
            driver.set(status="aborted", decision="abort", error=cancel)
        elif driver.record.pattern == "two_phase":
            two_phase.presume_abort(driver, cancel)
        else:
            saga.cancel(driver, cancel)
        return
    if driver.record.pattern == "two_phase":
        two_phase.drive(driver)
    else:
        saga.drive(driver)


def _release(log: TransactionLog, tx_id: str, token: str, failed: bool) -> None:
    try:
        log.release_lease(tx_id, token)
    except Exception:
        if not failed:
            raise
        # The drive's own error is the one to report; the lease ends when it expires
        # (or at once for recovery in this process, whose drivers no longer hold it).
        logger.warning("transaction %s: could not release its lease", tx_id, exc_info=True)


def recover_pending(
    log: TransactionLog, settings: EngineSettings, *, limit: int = 1000
) -> list[TransactionRecord]:
    """Finish every in-doubt transaction nobody drives; return them as they ended.

    Transactions another driver holds are skipped; unreadable ones quarantined; ones
    with a participant this process cannot build (not registered here) are left in
    doubt, logged at ERROR.

    Raises:
        TransactionStoreUnavailableError: the log cannot be read or written.
    """
    for tx_id in log.unreadable_ids(limit):
        _quarantine(log, settings, tx_id, "its status is not one this code knows")
    finished = []
    for tx_id in log.ids(statuses=IN_DOUBT_STATUSES, limit=limit):
        try:
            finished.append(run(log, tx_id, settings, recovering=True))
        except TransactionBusyError:
            logger.info("transaction %s: driven by another process, skipped", tx_id)
        except CorruptTransactionError as exc:
            _quarantine(log, settings, tx_id, str(exc))
        except UnknownParticipantError as exc:
            logger.error(
                "transaction %s: left in doubt, this process cannot reach a participant: %s",
                tx_id,
                exc,
            )
    return finished


def recover(log: TransactionLog, tx_id: str, settings: EngineSettings) -> TransactionRecord:
    """Finish ``tx_id`` if it is in doubt (a final one is returned as it is).

    Raises:
        CorruptTransactionError: its row cannot be read; it is now quarantined.
        TransactionNotFoundError: no such transaction.
        TransactionBusyError: another driver holds its lease.
        TransactionStoreUnavailableError: the log cannot be written.
    """
    try:
        return run(log, tx_id, settings, recovering=True)
    except CorruptTransactionError as exc:
        _quarantine(log, settings, tx_id, str(exc))
        raise


def _quarantine(log: TransactionLog, settings: EngineSettings, tx_id: str, reason: str) -> None:
    log.quarantine(tx_id, f"quarantined: {reason}")
    raise_alert(
        settings.monitor,
        "transaction_quarantined",
        tx_id,
        None,
        f"row cannot be read and was quarantined ({reason}); recovery goes on with the others",
    )
