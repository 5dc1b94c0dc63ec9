"""Node states of a notebook workflow, kept current from structure changes and events.

A node is ``idle`` until it runs, then shows the outcome of its last run
(``completed``, ``cached``, ``failed``, ``skipped``). It turns ``stale`` when its
definition or anything upstream changes (its *shape* key differs from the one it
ran with) or when it is invalidated, and back to its outcome if the change is
undone. During a run the engine's events move it through ``queued`` and
``running``. Event subscribers run on engine threads, so every access is locked.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kailash_nb.notebook.display import NodeOutcome, preview_outputs
from kailash_nb.notebook.view import ENGINE_STATES
from kailash_nb.runtime.events import NodeEvent

__all__ = ["NodeRecord", "NodeStates", "short_error"]

OUTCOMES = frozenset({"completed", "cached", "failed", "skipped"})
_ERROR_PREFIX = re.compile(r"^(?:NodeExecutionError: )?node '[^']*' \([^)]*\) failed: ")


@dataclass
class NodeRecord:
    """What is known about one node beyond its definition.

    Attributes:
        state: one of ``kailash_nb.notebook.view.NODE_STATES``.
        duration: seconds of its last execution (kept while it is served from cache).
        error: ``"ErrorType: message"`` of its last failure, if its last run failed.
        output_preview: a short preview of its last outputs.
        traceback: the traceback of its last failure, trimmed to the user's frames.
        run_values: previews of the run parameters it received last (secrets masked).
    """

    state: str = "idle"
    duration: float | None = None
    error: str | None = None
    traceback: str | None = None
    output_preview: str | None = None
    run_values: dict[str, str] = field(default_factory=dict)
    ran_shape: str | None = None
    outcome: str | None = None
    forced_stale: bool = False


class NodeStates:
    """The ``NodeRecord`` of every node, and the event log of runs in progress."""

    def __init__(self) -> None:
        self._records: dict[str, NodeRecord] = {}
        self._run_logs: dict[str, dict[str, tuple[str, float | None, str | None]]] = {}
        self._lock = threading.RLock()

    def __getitem__(self, node_id: str) -> NodeRecord:
        return self._records[node_id]

    def add(self, node_id: str) -> None:
        """Start tracking ``node_id`` (``idle``) unless it is tracked already."""
        with self._lock:
            self._records.setdefault(node_id, NodeRecord())

    def remove(self, node_id: str) -> None:
        """Stop tracking ``node_id``."""
        with self._lock:
            self._records.pop(node_id, None)

    def reshape(self, shapes: Mapping[str, str], node_ids: Iterable[str] | None = None) -> None:
        """Mark stale every node that ran under another shape (or was invalidated);
        restore the outcome of a stale node whose shape is back to the one it ran with.
        With ``node_ids``, only those nodes are looked at (the others' shapes did not
        change)."""
        with self._lock:
            records = (
                self._records.items()
                if node_ids is None
                else [(n, self._records[n]) for n in node_ids if n in self._records]
            )
            for node_id, record in records:
                if record.state in ("queued", "running") or record.ran_shape is None:
                    continue
                if record.forced_stale or shapes.get(node_id) != record.ran_shape:
                    record.state = "stale"
                elif record.state == "stale" and record.outcome is not None:
                    record.state = record.outcome

    def force_stale(self, node_ids: Iterable[str]) -> None:
        """Make ``node_ids`` stale until they run again (``reshape`` applies it)."""
        with self._lock:
            for node_id in node_ids:
                self._records[node_id].forced_stale = True

    def restore(self, states: Mapping[str, str]) -> None:
        """Put back ``states`` of nodes left ``queued`` or ``running`` by a run that
        ended without results (interrupted, cancelled)."""
        with self._lock:
            for node_id, state in states.items():
                record = self._records.get(node_id)
                if record is not None and record.state in ("queued", "running"):
                    record.state = state

    def on_event(self, event: object) -> None:
        """Event-bus subscriber: follow a run's node events."""
        if not isinstance(event, NodeEvent):
            return
        state = ENGINE_STATES.get(event.state)
        with self._lock:
            record = self._records.get(event.node_id)
            if record is None or state is None:
                return
            record.state = state
            if state in OUTCOMES:
                log = self._run_logs.setdefault(event.run_id, {})
                log[event.node_id] = (state, event.duration, event.error)

    def finish_run(
        self,
        run_id: str,
        scope: Iterable[str],
        *,
        before: Mapping[str, str],
        shapes: Mapping[str, str],
        results: Mapping[str, dict[str, Any]],
        primary_outputs: Mapping[str, str],
        cells: Mapping[str, str | None],
        stopped_at: tuple[str, str] | None = None,
        exceptions: Mapping[str, BaseException] | None = None,
        tracebacks: Mapping[str, str] | None = None,
    ) -> list[NodeOutcome]:
        """Settle the states of the nodes in ``scope`` after run ``run_id``.

        ``stopped_at`` is ``(node, error text)`` when the run stopped at a node
        without a ``failed`` event (a wiring error). Nodes the run never reached get
        back the state they had ``before`` and the outcome ``not run``.
        ``exceptions`` and ``tracebacks`` hold what failed nodes raised and its
        trimmed traceback text.
        """
        exceptions = exceptions or {}
        tracebacks = tracebacks or {}
        with self._lock:
            log = self._run_logs.pop(run_id, {})
            if stopped_at is not None and log.get(stopped_at[0], ("",))[0] != "failed":
                log[stopped_at[0]] = ("failed", None, stopped_at[1])
            outcomes = []
            for node_id in scope:
                record = self._records.get(node_id)
                if record is None:  # removed while the run went on
                    continue
                state, duration, error = log.get(node_id, ("not run", None, None))
                outputs = results.get(node_id)
                output_text = None
                if state in ("completed", "cached") and outputs is not None:
                    output_text = preview_outputs(outputs, primary_outputs[node_id])
                if state in OUTCOMES:
                    record.state = record.outcome = state
                    record.ran_shape = shapes[node_id]
                    record.forced_stale = False
                    record.error = short_error(error) if state == "failed" else None
                    record.traceback = tracebacks.get(node_id) if state == "failed" else None
                    record.output_preview = output_text
                    if state in ("completed", "failed"):
                        record.duration = duration
                else:
                    record.state = before.get(node_id, record.state)
                outcomes.append(
                    NodeOutcome(
                        node_id=node_id,
                        state=state,
                        duration=duration if state in ("completed", "failed") else None,
                        error=record.error if state == "failed" else None,
                        cell=cells.get(node_id),
                        output=output_text,
                        traceback=record.traceback if state == "failed" else None,
                        exception=exceptions.get(node_id) if state == "failed" else None,
                    )
                )
            return outcomes


def short_error(text: str | None) -> str | None:
    """``"ZeroDivisionError: division by zero"`` out of the engine's longer message (a
    ``NodeEvent``'s or ``NodeTiming``'s ``error``, already scrubbed of secrets): the
    text ``NodeRecord.error`` and ``NodeInfo`` carry."""
    if text is None:
        return None
    return _ERROR_PREFIX.sub("", text, count=1)
