"""The errors the agent pool and the coordinator raise on purpose."""

from __future__ import annotations

from kailash_nb.sdk_exceptions import NodeExecutionError, ServiceUnavailableError

__all__ = ["TaskQueueFullError"]


class TaskQueueFullError(NodeExecutionError, ServiceUnavailableError):
    """The coordinator refused a task: ``max_concurrent_tasks`` run and
    ``task_queue_limit`` more wait already. Nothing was started or queued for it;
    submit it again later (the gateway answers 503 with ``Retry-After``).

    Attributes:
        running: tasks running when the task was refused.
        queued: tasks waiting for a slot.
        limit: the coordinator's ``task_queue_limit``.
        refused: how many tasks this refusal covers (a batch is admitted whole or not at all).
    """

    def __init__(self, message: str, *, running: int, queued: int, limit: int, refused: int = 1):
        super().__init__(message)
        self.running = running
        self.queued = queued
        self.limit = limit
        self.refused = refused
