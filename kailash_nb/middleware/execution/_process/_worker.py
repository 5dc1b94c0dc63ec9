"""The worker process of a process-isolated workflow (runs in the child only).

The parent starts it with the workflow's definition (the server's own, never a
caller's) and its limits. The worker caps its address space (``RLIMIT_AS``, soft and
hard, so node code cannot raise it), rebuilds the workflow once, says ``ready`` and
then serves one run at a time over its pipe:

- job: ``(run_id, parameters, wants_node_events, wants_timeline, wants_step_events,
  guarded, log_ids)``, ``log_ids`` the request's ``log_context`` ids (request, tenant,
  user), which the run executes inside;
- while running: ``("event", NodeEvent)`` for each node event and ``("event",
  NodeStepEvent)`` for each step a node reports, when wanted; for a
  guarded run, ``("check", node_id)`` before each node executes, answered by the
  parent's guard with ``("allow",)`` or ``("refuse", message, reason, rule_ids)``
  (:func:`guard_answer`); a refused node fails with ``NodeAccessDeniedError``;
- at the end: ``("finished", status, results_json, error, stopped_at, failed_nodes,
  finished_run_event)`` for a run the engine ended (completed, or failed with partial
  results; ``failed_nodes`` as ``(node_id, error_type, message, unavailable)`` tuples), or
  ``("failed", message, node_id, finished_run_event, retire)`` when the worker could not
  return the run's results (memory, the output cap, a refused run).

Each job also raises the CPU-time soft limit (``RLIMIT_CPU``) to the CPU already used
plus the run's deadline and a margin: a backstop that ends the process (``SIGXCPU``)
should the parent fail to kill it at the deadline.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import resource
import threading
from typing import Any

from kailash_nb._json_text import plain
from kailash_nb.access_control import AccessDecision, AccessDeniedError
from kailash_nb.logging import log_context
from kailash_nb.runtime.access_controlled import NodeAccessDeniedError
from kailash_nb.runtime.events import EventBus, RunEvent
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.sdk_exceptions import WorkflowValidationError
from kailash_nb.workflow.graph import Workflow

#: CPU seconds granted beyond the deadline before ``SIGXCPU`` ends the worker.
CPU_MARGIN_SECONDS = 5
_M_ARENA_MAX = -8


class OutputTooLarge(Exception):
    """The results' JSON encoding exceeds ``max_output_bytes``."""


def serve(conn: Any, definition: dict[str, Any], limits: dict[str, Any]) -> None:
    """Entry point of a worker process (the ``Process`` target)."""
    _limit_memory(limits["memory_limit_mb"])
    workflow = Workflow.from_dict(definition)
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            conn.send(message)

    send(("ready",))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        _limit_cpu(limits["timeout"])
        send(_run(workflow, job, conn, send, limits))


def _limit_memory(memory_limit_mb: int) -> None:
    # One malloc arena: every thread would otherwise reserve 64 MiB of address space,
    # which RLIMIT_AS counts although nothing is used.
    with contextlib.suppress(OSError, AttributeError):  # not glibc: no arenas to tame
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 1)
    limit = memory_limit_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _limit_cpu(timeout: float) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + timeout) + CPU_MARGIN_SECONDS
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def guard_answer(refusal: BaseException | None) -> tuple[Any, ...]:
    """The parent's answer to a worker's ``("check", node_id)``: its guard's refusal
    (``None``: the node may execute) as plain data for the pipe."""
    if refusal is None:
        return ("allow",)
    if isinstance(refusal, AccessDeniedError):
        decision = refusal.decision
        return ("refuse", str(refusal), decision.reason, tuple(decision.applied_rules))
    text = f"{type(refusal).__name__}: {refusal}"
    return ("refuse", text, text, ())


class _ParentGuard:
    """The run's guard in the worker: asks the parent's guard over the pipe."""

    def __init__(self, conn: Any, send: Any) -> None:
        self._conn = conn
        self._send = send
        self._ask = threading.Lock()  # parallel nodes ask one at a time

    def check_node(self, node_id: str) -> BaseException | None:
        with self._ask:
            self._send(("check", node_id))
            answer = self._conn.recv()
        if answer[0] == "allow":
            return None
        _, message, reason, rules = answer
        decision = AccessDecision(allowed=False, reason=reason, applied_rules=tuple(rules))
        return NodeAccessDeniedError(decision, node_id, message)

    def step_detail(self, node_id: str, detail: dict[str, Any]) -> dict[str, Any]:
        """``detail`` unchanged: steps go only to the parent, whose guard shows them."""
        return detail


def _run(
    workflow: Any, job: tuple[Any, ...], conn: Any, send: Any, limits: dict[str, Any]
) -> tuple:
    run_id, parameters, wants_nodes, wants_timeline, wants_steps, guarded, log_ids = job
    finished: list[RunEvent] = []

    def forward(event: Any) -> None:
        if isinstance(event, RunEvent):
            if event.state != "started":  # the parent announced the start itself
                finished.append(event)
            return
        send(("event", event))

    bus = EventBus()
    bus.subscribe(forward, nodes=wants_nodes, runs=True, timeline=wants_timeline, steps=wants_steps)
    try:
        with log_context(**log_ids):
            outcome = LocalRuntime(event_bus=bus, history=False).execute_outcome(
                workflow,
                parameters,
                run_id=run_id,
                guard=_ParentGuard(conn, send) if guarded else None,
            )
        memory_node = next(
            (f.node_id for f in outcome.failed_nodes if f.error_type == "MemoryError"), None
        )
        if memory_node is not None:
            return _failed(_memory_message(memory_node, limits), memory_node, finished, True)
        text = _encode(outcome.results, limits["max_output_bytes"])
    except MemoryError:
        return _failed(_memory_message(None, limits), None, finished, True)
    except OutputTooLarge as exc:
        return _failed(str(exc), None, finished, False)
    except WorkflowValidationError as exc:
        return _failed(f"the run was refused: {exc}", None, finished, False)
    except Exception as exc:
        return _failed(f"{type(exc).__name__}: {exc}", None, finished, False)
    failures = [(f.node_id, f.error_type, f.message, f.unavailable) for f in outcome.failed_nodes]
    return (
        "finished",
        outcome.status,
        text,
        outcome.error,
        outcome.stopped_at,
        failures,
        finished[-1] if finished else None,
    )


def _failed(
    message: str, node_id: str | None, finished: list[Any], retire: bool
) -> tuple[str, str, str | None, Any, bool]:
    event = finished[-1] if finished else None
    if event is not None and event.state != "failed":
        event = event._replace(state="failed", error=f"WorkflowExecutionError: {message}")
    return ("failed", message, node_id, event, retire)


def _memory_message(node_id: str | None, limits: dict[str, Any]) -> str:
    where = f"node {node_id!r}" if node_id else "the run"
    return (
        f"{where} ran out of memory: the worker process may use at most "
        f"memory_limit_mb={limits['memory_limit_mb']} MiB of address space; raise "
        "memory_limit_mb in register_workflow or make the node hold less data"
    )


def _encode(results: dict[str, Any], cap: int) -> str:
    """``results`` as JSON (what JSON cannot hold by ``_json_text.plain``'s rule),
    stopping past ``cap``."""
    try:
        return _encode_capped(results, cap)
    except (TypeError, ValueError, RecursionError):
        return _encode_capped(plain(results), cap)


def _encode_capped(results: Any, cap: int) -> str:
    encoder = json.JSONEncoder(ensure_ascii=True, allow_nan=False)
    chunks: list[str] = []
    size = 0
    for chunk in encoder.iterencode(results):
        size += len(chunk)
        if size > cap:
            raise OutputTooLarge(
                f"the run's results exceed max_output_bytes={cap} bytes of JSON; return "
                "less data (write large outputs to a file or store and return a reference) "
                "or raise max_output_bytes in register_workflow"
            )
        chunks.append(chunk)
    return "".join(chunks)
