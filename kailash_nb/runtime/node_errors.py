"""How a node's failure reads: ``"ErrorType: message"`` of what the node raised.

The engine wraps what a node raises in a ``NodeExecutionError`` whose own text only
repeats the node's id and type; events, run records and the gateway show the
node's own exception instead.
"""

from __future__ import annotations

from kailash_nb.sdk_exceptions import NodeExecutionError

__all__ = ["describe", "describe_node_error", "raised_by_node"]


def describe(error: BaseException | None) -> str | None:
    """``"ErrorType: message"`` of ``error`` (``None`` for ``None``)."""
    if error is None:
        return None
    return f"{type(error).__name__}: {error}"


def raised_by_node(error: BaseException) -> BaseException:
    """What a node raised: the cause of the engine's ``NodeExecutionError`` wrapper (whose
    own text only repeats the node's id and type), else ``error`` itself."""
    cause = error.__cause__ if isinstance(error, NodeExecutionError) else None
    return cause if cause is not None else error


def describe_node_error(error: BaseException) -> str:
    """``"ErrorType: message"`` of what a node raised (:func:`raised_by_node`)."""
    raised = raised_by_node(error)
    return f"{type(raised).__name__}: {raised}"
