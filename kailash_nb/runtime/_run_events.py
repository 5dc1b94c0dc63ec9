"""Run bookkeeping and event publishing, one part of ``WorkflowRun``.

Events are built only when the bus has subscribers of that kind; run and timing
tuples are made without their Python-level ``__new__`` because they are built per
node and per run.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from kailash_nb import sdk_exceptions as errors
from kailash_nb.redaction import redacted_parameters, scrub_secrets
from kailash_nb.runtime._steps import StepReporter
from kailash_nb.runtime.events import NodeEvent, NodeTiming, RunEvent
from kailash_nb.runtime.node_errors import describe, describe_node_error
from kailash_nb.sdk_exceptions import WorkflowExecutionError
from kailash_nb.workflow.plan import CycleUnit

__all__ = ["RunEvents", "make_run_event", "make_timing"]

# Field order is the classes'.
make_timing = functools.partial(tuple.__new__, NodeTiming)
make_run_event = functools.partial(tuple.__new__, RunEvent)


class RunEvents:
    """Mixin of ``WorkflowRun``: run start/finish and node/run event emission."""

    def _run_started(self) -> float:
        started = time.perf_counter()
        if self.run_events:
            self.bus.emit(
                make_run_event(
                    (
                        self.run_id,
                        self.workflow.name,
                        "started",
                        time.time(),
                        None,
                        None,
                        self.workflow.workflow_id,
                        # Runtime parameters may carry credentials (WF-13).
                        redacted_parameters(self.parameters) if self.parameters else None,
                        None,
                    )
                )
            )
        return started

    def _run_finished(self, started: float) -> dict[str, dict[str, Any]]:
        """End the run: ``completed``, or ``failed`` when a node failed. A run stopped by
        a node with dependents raises ``WorkflowExecutionError``; a run whose failed
        nodes had no dependents returns its results (Kailash's contract) but still ends
        ``failed``. A run a limit stopped raises the limit's error."""
        if self.limit_error is not None:
            error = self.limit_error
            error.results = dict(self.results)
            error.run_id = self.run_id
            error.node_id = self.failure[0] if self.failure else None
            self._end("failed", started, error)
            raise error
        if self.failure is None:
            if not self.failed_nodes:
                self._end("completed", started)
                return self.results
            self._end("failed", started, WorkflowExecutionError(self._failed_leaves_message()))
            return self.results
        node_id, exc = self.failure
        if isinstance(exc, errors.WorkflowException):
            message = f"the run stopped at node {node_id!r}: {self._scrubbed(exc, node_id)}"
        else:
            dependents = sorted(
                {c.target_node for c in self.workflow.connections if c.source_node == node_id}
            )
            message = (
                f"node {node_id!r} failed and {', '.join(map(repr, dependents))} depend"
                f"{'s' * (len(dependents) == 1)} on it, so the run stopped: "
                f"{self._scrubbed(exc, node_id)}"
            )
        error = WorkflowExecutionError(
            message,
            results=dict(self.results),
            run_id=self.run_id,
            node_id=node_id,
        )
        self._end("failed", started, error)
        raise error from exc

    def _failed_leaves_message(self) -> str:
        failures = self.failed_nodes
        if len(failures) == 1:
            (failure,) = failures
            return f"node {failure.node_id!r} failed: {failure.error_type}: {failure.message}"
        listed = ", ".join(
            f"{failure.node_id!r} ({failure.error_type}: {failure.message})" for failure in failures
        )
        return f"{len(failures)} nodes failed: {listed}"

    def _run_abandoned(self, started: float, cause: BaseException) -> None:
        """End a run left by ``cause`` (the caller re-raises it), unless the run already
        ended (a timeout): ``cancelled`` for a cancellation or an interrupt
        (``KeyboardInterrupt``), else ``failed``. Node errors never get here."""
        if self.status != "running":
            return
        if isinstance(cause, Exception):
            self._end("failed", started, cause)
            return
        reason = type(cause).__name__
        self._end(
            "cancelled", started, errors.RuntimeExecutionError(f"the run was cancelled ({reason})")
        )

    def _end(self, status: str, started: float, error: BaseException | None = None) -> None:
        """Set the final ``status`` and publish the run's end."""
        self.status = status
        # Messages are built from texts already scrubbed per node (``_scrubbed``).
        self.error = describe(error)
        self._emit_run(status, started, error)

    def _emit_run(self, state: str, started: float, error: BaseException | None = None) -> None:
        if not self.run_events:
            return
        # Errors in the timeline were scrubbed when they were recorded (``_record``).
        timeline = None if self.timeline is None else tuple(self.timeline)
        self.bus.emit(
            make_run_event(
                (
                    self.run_id,
                    self.workflow.name,
                    state,
                    time.time(),
                    time.perf_counter() - started,
                    describe(error),
                    self.workflow.workflow_id,
                    None,
                    timeline,
                )
            )
        )

    def _queued(self, index: int) -> None:
        if not self.emitting:
            return
        unit = self.plan.units[index]
        if not isinstance(unit, CycleUnit):
            self._emit_node(unit, "queued")

    def _emit_node(
        self,
        node_id: str,
        state: str,
        duration: float | None = None,
        *,
        error: BaseException | None = None,
        iteration: int | None = None,
    ) -> None:
        self.bus.emit(
            NodeEvent(
                self.run_id,
                node_id,
                state,  # type: ignore[arg-type]
                time.time(),
                duration,
                None if error is None else self._scrubbed(describe_node_error(error), node_id),
                iteration,
            )
        )

    def _reporting_steps(self, node_id: str, iteration: int | None) -> StepReporter:
        """A context manager: within it, steps the node reports (``report_step``)
        become ``NodeStepEvent``s; afterwards they are dropped (a thread the node left
        running). The receiver follows the node into worker threads and tasks; the
        run's guard says what the watchers may see of each detail."""
        return StepReporter(
            self.bus, self.run_id, node_id, iteration, self._secret_sources, self.guard
        )

    def _secret_sources(self, node_id: str) -> tuple[Any, ...]:
        """What the secrets of ``node_id``'s messages are scrubbed against (WF-13)."""
        node = self.workflow.nodes.get(node_id)
        return (node.config if node else {}, self.parameters)

    def _scrubbed(self, error: BaseException | str | None, node_id: str) -> str:
        """``error``'s text without the secrets of the node's config or the run's
        parameters, which a library's exception may quote (WF-13)."""
        node = self.workflow.nodes.get(node_id)
        return scrub_secrets(str(error), node.config if node else {}, self.parameters)
