"""Where a runtime's audit records go: straight to the trail, or through a bounded buffer.

- ``SyncAuditSink`` writes each batch (one run's records) in its own transaction before
  the caller goes on: a record is stored before the run's results are returned.
- ``BatchedAuditSink`` queues records in memory and a writer thread stores them in
  large batches (one transaction each), which keeps a run's audit cost to microseconds.
  The queue is bounded; a write that fails is retried (the records stay queued, in
  order, never dropped) and, until a write succeeds again, every new run is refused
  with ``AuditUnavailableError`` (fail closed). Records still queued are lost if the
  process dies; ``flush()`` waits until everything is stored.
"""

from __future__ import annotations

import atexit
import collections
import threading
import time
from collections.abc import Sequence
from typing import Any

from kailash_nb.store.audit_trail import AuditRecord, AuditTrailError, AuditUnavailableError

__all__ = ["AUDIT_WRITE_MODES", "BatchedAuditSink", "SyncAuditSink", "audit_sink"]

#: The values ``AccessControlledRuntime(audit_write=...)`` takes.
AUDIT_WRITE_MODES = ("sync", "batched")


def _store(trail: Any, records: Sequence[AuditRecord]) -> None:
    try:
        trail.append_many(records)
    except AuditUnavailableError:
        raise
    except AuditTrailError as error:
        raise AuditUnavailableError(f"the audit trail refused the records: {error}") from error
    except Exception as error:
        raise AuditUnavailableError(
            f"the audit trail could not be written ({type(error).__name__}: {error})"
        ) from error


class SyncAuditSink:
    """Stores records at once, in the caller's thread."""

    def __init__(self, trail: Any) -> None:
        self.trail = trail

    def check(self) -> None:
        """Nothing to check: each write reports its own failure."""

    def write(self, records: Sequence[AuditRecord]) -> None:
        """Store ``records`` in one transaction.

        Raises:
            AuditUnavailableError: they could not be stored.
        """
        _store(self.trail, records)

    def flush(self, timeout: float | None = None) -> None:
        """Nothing waits: every write was synchronous."""

    def close(self) -> None:
        """Nothing to stop."""


class BatchedAuditSink:
    """Queues records; a writer thread stores them in batches (see the module doc).

    Args:
        trail: the audit trail.
        max_pending: records queued at most; a writer that blocks while waiting for room
            gives up after ``wait`` seconds with ``AuditUnavailableError``.
        interval: seconds between writes of a partly filled batch.
        batch_size: records per transaction at most.
        wait: seconds a run waits for room in a full queue.
    """

    def __init__(
        self,
        trail: Any,
        *,
        max_pending: int = 100_000,
        interval: float = 0.05,
        batch_size: int = 5_000,
        wait: float = 5.0,
    ) -> None:
        self.trail = trail
        self.max_pending = max_pending
        self.interval = interval
        self.batch_size = batch_size
        self.wait = wait
        self.error: AuditUnavailableError | None = None
        self._pending: collections.deque[AuditRecord] = collections.deque()
        self._in_flight = 0
        self._failures = 0
        self._condition = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="kailash-nb-audit-writer", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)

    def check(self) -> None:
        """Raise ``AuditUnavailableError`` while the trail cannot be written."""
        error = self.error
        if error is not None:
            raise AuditUnavailableError(
                f"the audit trail cannot be written, so nothing runs: {error}"
            ) from error

    def write(self, records: Sequence[AuditRecord]) -> None:
        """Queue ``records`` (in order).

        Raises:
            AuditUnavailableError: the trail is failing, or the queue stayed full for
                ``wait`` seconds.
        """
        self.check()
        pending = self._pending
        if len(pending) + len(records) > self.max_pending:
            deadline = time.monotonic() + self.wait
            with self._condition:
                self._condition.notify_all()
                while len(pending) + len(records) > self.max_pending:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._stopping:
                        raise AuditUnavailableError(
                            f"the audit queue is full ({self.max_pending} records waiting)"
                        )
                    self._condition.wait(left)
        pending.extend(records)
        if len(pending) >= self.batch_size:
            with self._condition:
                self._condition.notify_all()

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued record is stored.

        Raises:
            AuditUnavailableError: a write failed while waiting (the records stay
                queued and are retried), or ``timeout`` passed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            failures = self._failures
            self._condition.notify_all()
            while self._pending or self._in_flight:
                if self._failures != failures:
                    self.check()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise AuditUnavailableError("the audit queue was not written in time")
                self._condition.wait(0.05 if left is None else min(left, 0.05))

    def close(self) -> None:
        """Write what is queued (as far as the trail allows) and stop the writer."""
        try:
            self.flush(timeout=self.wait)
        finally:
            with self._condition:
                self._stopping = True
                self._condition.notify_all()
            atexit.unregister(self.close)

    def _run(self) -> None:
        pending = self._pending
        condition = self._condition
        while True:
            with condition:
                if not pending and not self._stopping:
                    condition.wait(self.interval)
                if not pending:
                    if self._stopping:
                        return
                    continue
                count = min(len(pending), self.batch_size)
                batch = [pending.popleft() for _ in range(count)]
                self._in_flight = count
            try:
                _store(self.trail, batch)
            except AuditUnavailableError as error:
                self.error = error
                self._failures += 1
                with condition:
                    pending.extendleft(reversed(batch))
                    self._in_flight = 0
                    condition.notify_all()
                    if self._stopping:
                        return
                    condition.wait(min(1.0, self.interval * 10))
                continue
            with condition:
                self.error = None
                self._in_flight = 0
                condition.notify_all()


def audit_sink(trail: Any, mode: str) -> SyncAuditSink | BatchedAuditSink:
    """The sink for ``mode`` (``"sync"`` or ``"batched"``) writing to ``trail``."""
    if mode == "sync":
        return SyncAuditSink(trail)
    if mode == "batched":
        return BatchedAuditSink(trail)
    raise ValueError(f"audit_write is 'sync' or 'batched', not {mode!r}")
