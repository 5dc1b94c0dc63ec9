"""The typed failures of the agent nodes (besides a provider's ``ProviderError``)."""

from __future__ import annotations

from kailash_nb.nodes.ai.providers.types import ProviderError
from kailash_nb.sdk_exceptions import NodeExecutionError, ServiceUnavailableError

__all__ = [
    "ProviderError",
    "StructuredOutputError",
    "TaskQueueFullError",
    "ToolRoundsExhaustedError",
]


class ToolRoundsExhaustedError(NodeExecutionError):
    """The model still asked for tools after ``max_rounds`` rounds of tool calls; no
    answer is made up.

    Attributes:
        rounds: the rounds of tool calls run.
        pending: the names of the tools asked for in the round that was not run.
    """

    def __init__(self, message: str, *, rounds: int, pending: list[str]) -> None:
        super().__init__(message)
        self.rounds = rounds
        self.pending = pending


class StructuredOutputError(NodeExecutionError):
    """The model's answer does not follow ``response_format``.

    Attributes:
        field: the dotted path of the first field in error (``""``: the whole answer,
            e.g. text that is not JSON).
        content: the answer as received.
    """

    def __init__(self, message: str, *, field: str, content: str | None) -> None:
        super().__init__(message)
        self.field = field
        self.content = content


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
