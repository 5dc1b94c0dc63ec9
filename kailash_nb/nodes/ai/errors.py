"""The typed failures of the agent node (besides a provider's ``ProviderError``)."""

from __future__ import annotations

from kailash_nb.nodes.ai.providers.types import ProviderError
from kailash_nb.sdk_exceptions import NodeExecutionError

__all__ = ["ProviderError", "StructuredOutputError", "ToolRoundsExhaustedError"]


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
