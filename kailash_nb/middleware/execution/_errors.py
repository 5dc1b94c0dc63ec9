"""The run queue's errors, raised by the run side and answered by the HTTP side."""

from __future__ import annotations

__all__ = ["RunQueueFullError"]


class RunQueueFullError(RuntimeError):
    """Every run thread is busy and the queue of waiting runs is full (LOAD-06), or the
    workflow's worker processes are shutting down: the gateway answers 503 with
    ``Retry-After`` instead of letting latency grow."""
