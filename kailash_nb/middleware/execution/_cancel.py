"""``RunCancel``: a caller's handle to stop one of its runs before its next node.

The executor wraps the run's node guard (``kailash_nb.runtime.guard``) so the engine,
which asks the guard before each node executes, refuses every node once the handle is
cancelled: the run stops there, whatever backend runs it (process workers ask the
parent's guard over their pipe). A node already executing runs to its end (a thread
cannot be killed); its outputs feed nothing further. The run is recorded ``cancelled``.
"""

from __future__ import annotations

import threading
from typing import Any

from kailash_nb.runtime.guard import NodeGuard
from kailash_nb.sdk_exceptions import WorkflowExecutionError

__all__ = ["RunCancel", "RunCancelledError"]


class RunCancelledError(WorkflowExecutionError):
    """The node was not executed: its run was cancelled by its caller."""


class RunCancel:
    """Cancels one run from any thread (``cancel()``); the first reason given wins."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "cancelled by its caller") -> None:
        """Stop the run before its next node (idempotent)."""
        if not self._event.is_set():
            self.reason = str(reason)[:200]
            self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether ``cancel()`` was called."""
        return self._event.is_set()

    def guard(self, inner: NodeGuard | None) -> NodeGuard:
        """A guard refusing every node once cancelled, else answering as ``inner``."""
        return _CancellingGuard(self, inner)


class _CancellingGuard:
    __slots__ = ("_cancel", "_inner")

    def __init__(self, cancel: RunCancel, inner: NodeGuard | None) -> None:
        self._cancel = cancel
        self._inner = inner

    def check_node(self, node_id: str) -> BaseException | None:
        if self._cancel.cancelled:
            return RunCancelledError(
                f"node {node_id!r} not executed: the run was cancelled ({self._cancel.reason})"
            )
        return None if self._inner is None else self._inner.check_node(node_id)

    def step_detail(self, node_id: str, detail: dict[str, Any]) -> dict[str, Any]:
        return detail if self._inner is None else self._inner.step_detail(node_id, detail)
