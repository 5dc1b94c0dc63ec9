"""What ``DaskRuntime`` runs on the cluster: a node attempt's task on a worker, and the
scheduler plugin that reports tasks re-run after their worker was lost.

:func:`run_node` reads the node's connected inputs out of its sources' outputs (dask
hands it those, moved from the workers that made them), runs the node and returns
its outputs, which stay on this worker. It reports to the client on the runtime's
event topic (``Worker.log_event``, forwarded by the scheduler to the client's
``subscribe_topic`` handler) when the node returned:
``{"key", "kind": "done", "manifest", "keys"}``: for each
  connection leaving the node, what it reads from the outputs (:func:`manifest`), the
  only part of the outputs the engine needs to see (None handling and branch skips),
  and the outputs' keys (for the message of a connection reading a missing one).

A node's failure is raised as what the node raised; dask carries it to the client.

:class:`RestartReporter` (a scheduler plugin) logs ``{"key", "kind": "restarted",
"worker"}`` on :data:`RESTART_TOPIC` when the scheduler hands a task to a worker again
after the worker running it was lost (the task's ``suspicious`` count): a worker that
dies mid-node cannot report that itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from kailash_nb import sdk_exceptions as errors
from kailash_nb.logging import log_context
from kailash_nb.nodes.steps import step_receiver
from kailash_nb.runtime._steps import MAX_STEP_NAME, json_safe_detail
from kailash_nb.workflow.connection import MISSING, Connection, read_output

__all__ = ["ABSENT", "NONE", "PRESENT", "RESTART_TOPIC", "RestartReporter", "manifest", "run_node"]

#: The scheduler's event topic of :class:`RestartReporter`.
RESTART_TOPIC = "kailash_nb-restarted"

#: What a connection reads from a node's outputs (a manifest entry; a ``str`` is the
#: message of the ``ConnectionError`` reading it raises).
NONE, PRESENT, ABSENT = 0, 1, 2


def run_node(
    topic: str,
    key: str,
    node: Any,
    kwargs: dict[str, Any],
    takes: dict[str, tuple[str, Connection]],
    sources: dict[str, dict[str, Any]],
    outgoing: Sequence[Connection],
    steps: bool = False,
    log_ids: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``node`` on this worker and return its outputs.

    ``kwargs`` are the inputs the client resolved; ``takes`` maps the other inputs to
    ``(source key, connection)``, read from ``sources`` (the source tasks' outputs).
    ``steps``: send the steps the node reports (``report_step``) to the client, as
    ``{"key", "kind": "step", "step", "detail"}`` with the detail made JSON-safe.
    ``log_ids``: the submitting run's ``log_context`` ids (run, request, tenant, user),
    which the node runs inside.
    """
    from distributed import get_worker

    worker = get_worker()
    for name, (source, connection) in takes.items():
        value = read_output(sources[source], connection)
        if value is MISSING:  # a task submitted ahead whose source lacks the output
            raise errors.ConnectionError(
                f"connection {connection}: node {connection.source_node!r} produced no "
                f"output {connection.source_output!r}"
            )
        kwargs[name] = value
    merged = node.merge_inputs(kwargs)
    with (
        log_context(**(log_ids or {})),
        step_receiver(_StepSender(worker, topic, key) if steps else None),
    ):
        if node.is_async:
            outputs = asyncio.run(node.run_with_async(merged))
        else:
            outputs = node.run_with(merged)
    entries = manifest(outputs, outgoing)
    keys = [str(name) for name in outputs]
    worker.log_event(topic, {"key": key, "kind": "done", "manifest": entries, "keys": keys})
    return outputs


def manifest(outputs: dict[str, Any], outgoing: Sequence[Connection]) -> list[int | str]:
    """For each connection of ``outgoing``, what it reads from ``outputs``: ``NONE``,
    ``PRESENT``, ``ABSENT`` or the message of the ``ConnectionError`` reading raises."""
    entries: list[int | str] = []
    for connection in outgoing:
        try:
            value = read_output(outputs, connection)
        except errors.ConnectionError as exc:
            entries.append(str(exc))
            continue
        entries.append(ABSENT if value is MISSING else NONE if value is None else PRESENT)
    return entries


class _StepSender:
    """A step receiver on the worker: each step goes to the client on ``topic``."""

    __slots__ = ("key", "topic", "worker")

    def __init__(self, worker: Any, topic: str, key: str) -> None:
        self.worker = worker
        self.topic = topic
        self.key = key

    def __call__(self, step: str, detail: dict[str, Any]) -> None:
        name = (step if isinstance(step, str) else repr(step))[:MAX_STEP_NAME]
        safe = {str(k): v for k, v in json_safe_detail(detail).items()}
        message = {"key": self.key, "kind": "step", "step": name, "detail": safe}
        self.worker.log_event(self.topic, message)


class RestartReporter(SchedulerPlugin):
    """Scheduler plugin: log each task handed to a worker again after a lost worker."""

    name = "kailash_nb-restarts"
    #: Registered once per cluster: the scheduler keeps the first and ignores the others
    #: (every DaskRuntime registers it).
    idempotent = True

    def start(self, scheduler: Any) -> None:
        """Keep the scheduler (called when the plugin is added)."""
        self.scheduler = scheduler

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        """On ``-> processing`` of a task whose worker was lost before: report it."""
        if finish != "processing":
            return
        task = self.scheduler.tasks.get(key)
        if task is None or not task.suspicious:
            return
        worker = task.processing_on.address if task.processing_on is not None else None
        self.scheduler.log_event(RESTART_TOPIC, {"key": key, "kind": "restarted", "worker": worker})
