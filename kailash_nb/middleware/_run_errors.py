"""What the gateway keeps and shows of a run that did not complete.

A failed run's error is kept whole with the run (``run_error``: the engine's message,
the node that stopped the run, and every failed node with its error type and message;
secrets already scrubbed). Node messages can still carry internal details (paths,
hostnames, data), so answers show them only for workflows whose author allowed it
(``register_workflow(..., expose_errors=True)``); otherwise an answer names the failed
nodes and their error types only (:class:`ErrorView`)::

    view = ErrorView(expose=False)
    view.error(entry.error)   # {"message": "node 'bad' failed (KeyError)", ...}
"""

from __future__ import annotations

import logging
from typing import Any

from kailash_nb.runtime.outcome import RunOutcome
from kailash_nb.sdk_exceptions import WorkflowExecutionError, WorkflowTimeoutError

__all__ = ["ENDED", "ErrorView", "failure_error", "run_error"]

logger = logging.getLogger(__name__)

_ENGINE_PREFIX = "WorkflowExecutionError: "
#: What each final status other than ``completed`` means, in words.
ENDED = {
    "failed": "the run failed",
    "timeout": "the run timed out",
    "cancelled": "the run was cancelled",
    "interrupted": "the process running this workflow ended before the run finished",
}


def run_error(outcome: RunOutcome) -> dict[str, Any]:
    """The error kept for a run that did not complete: ``{"message", "node_id",
    "failed_nodes": [{"node_id", "error_type", "error"}]}``; ``node_id`` is the node
    whose failure stopped the run (it had dependents), ``None`` when the run went on;
    ``"unavailable": True`` when a node failed because a store or service it needs
    could not be reached (``ServiceUnavailableError``)."""
    message = outcome.error or f"the run ended {outcome.status}"
    if message.startswith(_ENGINE_PREFIX):
        message = message[len(_ENGINE_PREFIX) :]
    failed = outcome.failed_nodes
    error: dict[str, Any] = {
        "message": message,
        "node_id": outcome.stopped_at,
        "failed_nodes": [failure.public(with_message=True) for failure in failed],
    }
    if any(failure.unavailable for failure in failed):
        error["unavailable"] = True  # a store or service was down: retry, not a bad run
    return error


def failure_error(exc: Exception, run_id: str) -> tuple[str, dict[str, Any]]:
    """``(status, error)`` of a started run whose execution raised ``exc`` (a process
    run's deadline, memory limit, output cap or dead worker; anything else is an
    internal error, logged with its trace and not shown)."""
    if isinstance(exc, WorkflowExecutionError):
        status = "timeout" if isinstance(exc, WorkflowTimeoutError) else "failed"
        return status, {"message": str(exc), "node_id": exc.node_id, "failed_nodes": []}
    logger.error("run %s failed inside the gateway", run_id, exc_info=exc)
    return "failed", {
        "message": "internal error while running the workflow",
        "node_id": None,
        "failed_nodes": [],
    }


class ErrorView:
    """How one workflow's run errors are shown to callers.

    Args:
        expose: show node messages (the workflow's author allowed it); else only the
            failed nodes and their error types.
    """

    __slots__ = ("expose",)

    def __init__(self, expose: bool) -> None:
        self.expose = expose

    def error(self, error: dict[str, Any] | None) -> dict[str, Any] | None:
        """The run's kept ``error`` as an answer may show it."""
        if error is None or self.expose:
            return error
        failed = error.get("failed_nodes") or []
        shown = dict(error)
        shown["failed_nodes"] = [
            {"node_id": node["node_id"], "error_type": node["error_type"]} for node in failed
        ]
        if failed:
            shown["message"] = _summary(failed, error.get("node_id"))
        return shown

    def error_text(self, text: str | None) -> str | None:
        """A node event's or timeline entry's ``"ErrorType: message"``, as shown (only
        ``ErrorType`` unless exposed)."""
        if text is None or self.expose:
            return text
        return text.split(": ", 1)[0]

    def run_error_text(self, status: str, text: str | None) -> str | None:
        """A run event's error, as shown: unless exposed, what the status means (the
        node events name the failed nodes and their error types)."""
        if text is None or self.expose:
            return text
        return ENDED.get(status, ENDED["failed"])

    def results(self, results: Any) -> Any:
        """A run's results, the messages of failed leaf nodes reduced to their type."""
        if self.expose or not isinstance(results, dict):
            return results
        shown = results
        for node_id, outputs in results.items():
            if isinstance(outputs, dict) and outputs.get("failed") is True:
                if shown is results:
                    shown = dict(results)
                shown[node_id] = {**outputs, "error": str(outputs.get("error_type", "Error"))}
        return shown


def _summary(failed: list[dict[str, Any]], stopped_at: str | None) -> str:
    named = [f"{node['node_id']!r} ({node['error_type']})" for node in failed]
    if len(named) == 1:
        text = f"node {named[0]} failed"
    else:
        text = f"{len(named)} nodes failed: {', '.join(named)}"
    if stopped_at is not None and any(node["node_id"] == stopped_at for node in failed):
        text += f"; the run stopped at {stopped_at!r}"
    return text
