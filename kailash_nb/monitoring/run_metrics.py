"""``RunMetrics``: one runtime's runs counted, for ``runtime.get_metrics()`` and Prometheus.

The runtime feeds it from its event bus (``enable_metrics=True``); it keeps plain
counters under a lock (events arrive from any thread) and publishes the same numbers
as Prometheus collectors in a ``CollectorRegistry``: the runtime's own by default, so
two runtimes in one process never share (or clash over) metric names, or one the caller
passes to serve several things on one ``/metrics``:

* ``kailash_nb_runtime_workflows_started_total``: runs started.
* ``kailash_nb_runtime_workflows_total{status}``: runs ended, by final status
  (``completed``, ``failed``, ``timeout``, ``cancelled``: ``kailash_nb.run_status``).
* ``kailash_nb_runtime_workflows_in_flight``: runs started and not ended.
* ``kailash_nb_runtime_workflow_duration_seconds``: a histogram of run durations.
* ``kailash_nb_runtime_nodes_total{state}``: how nodes ended (``completed``,
  ``failed``, ``skipped``, ``cached``).
* ``kailash_nb_runtime_memory_limit_stops_total``: runs stopped by ``memory_limit_mb``.
* ``kailash_nb_process_resident_memory_bytes``: the process's memory, read when scraped
  (``kailash_nb.monitoring.rss_method``).

Usage::

    metrics = RunMetrics()
    metrics.run_started()
    metrics.run_ended("completed", 0.25, ["completed", "completed"])
    metrics.snapshot()["workflows"]["completed"]  # 1
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kailash_nb.monitoring.memory import process_rss_bytes, rss_method
from kailash_nb.run_status import ENGINE_FINAL_STATES

__all__ = ["DURATION_BUCKETS", "NODE_END_STATES", "RunMetrics"]

#: How a node ends in a run's timeline.
NODE_END_STATES = ("completed", "failed", "skipped", "cached")
#: Upper bounds (seconds) of the run-duration histogram.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, float("inf"))


_SHOWN_ORDER = ("completed", "failed", "timeout", "cancelled")


class RunMetrics:
    """Counters of runs by final status, nodes by end state, and run durations.

    Args:
        registry: where the Prometheus collectors are registered (default: a new
            registry of this object's own, ``metrics.registry``).
        memory_limit_bytes: the runtime's memory limit, reported by :meth:`snapshot`.

    Raises:
        ValueError: ``registry`` already holds collectors of these names (another
            runtime's metrics): pass each runtime its own registry.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        memory_limit_bytes: int | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.memory_limit_bytes = memory_limit_bytes
        self._lock = threading.Lock()
        self._started = 0
        self._ended = dict.fromkeys(ENGINE_FINAL_STATES, 0)
        self._nodes = dict.fromkeys(NODE_END_STATES, 0)
        self._memory_stops = 0
        self._duration_count = 0
        self._duration_sum = 0.0
        self._duration_max = 0.0
        self._peak_rss = 0
        registry = self.registry
        self._started_total = Counter(
            "kailash_nb_runtime_workflows_started",
            "Workflow runs started by this runtime.",
            registry=registry,
        )
        ended = Counter(
            "kailash_nb_runtime_workflows",
            "Workflow runs ended, by final status (completed, failed, timeout, cancelled).",
            ("status",),
            registry=registry,
        )
        self._ended_children = {status: ended.labels(status) for status in ENGINE_FINAL_STATES}
        self._in_flight = Gauge(
            "kailash_nb_runtime_workflows_in_flight",
            "Workflow runs started by this runtime and not ended.",
            registry=registry,
        )
        self._duration = Histogram(
            "kailash_nb_runtime_workflow_duration_seconds",
            "Time from a run's start to its end, whatever the end.",
            registry=registry,
            buckets=DURATION_BUCKETS,
        )
        nodes = Counter(
            "kailash_nb_runtime_nodes",
            "Nodes by how they ended in a run (completed, failed, skipped, cached).",
            ("state",),
            registry=registry,
        )
        self._node_children = {state: nodes.labels(state) for state in NODE_END_STATES}
        self._memory_stops_total = Counter(
            "kailash_nb_runtime_memory_limit_stops",
            "Runs stopped because the process went past memory_limit_mb.",
            registry=registry,
        )
        rss = Gauge(
            "kailash_nb_process_resident_memory_bytes",
            f"Memory of this process, read when scraped ({rss_method()}).",
            registry=registry,
        )
        rss.set_function(process_rss_bytes)

    def run_started(self) -> None:
        """Count a run that started."""
        with self._lock:
            self._started += 1
        self._started_total.inc()
        self._in_flight.inc()

    def run_ended(
        self,
        status: str,
        duration: float | None,
        node_states: Iterable[str] = (),
        *,
        memory_limit: bool = False,
    ) -> None:
        """Count a run that ended in ``status`` after ``duration`` seconds, whose nodes
        ended in ``node_states``; ``memory_limit``: the memory limit stopped it.

        Raises:
            ValueError: ``status`` is not a final status the engine reports.
        """
        child = self._ended_children.get(status)
        if child is None:
            raise ValueError(
                f"run status {status!r} is not one of {', '.join(ENGINE_FINAL_STATES)}"
            )
        states = [state for state in node_states if state in self._nodes]
        seconds = duration or 0.0
        rss = process_rss_bytes()
        with self._lock:
            self._ended[status] += 1
            for state in states:
                self._nodes[state] += 1
            self._duration_count += 1
            self._duration_sum += seconds
            self._duration_max = max(self._duration_max, seconds)
            self._memory_stops += memory_limit
            self._peak_rss = max(self._peak_rss, rss)
        child.inc()
        self._in_flight.dec()
        self._duration.observe(seconds)
        for state in states:
            self._node_children[state].inc()
        if memory_limit:
            self._memory_stops_total.inc()

    def snapshot(self) -> dict[str, Any]:
        """The numbers now, JSON-ready::

            {"workflows": {"started", "completed", "failed", "timeout", "cancelled",
                           "in_flight", "memory_limit_stops"},
             "nodes": {"completed", "failed", "skipped", "cached"},
             "duration_seconds": {"count", "sum", "max", "mean"},
             "memory": {"rss_bytes", "peak_rss_bytes", "limit_bytes", "method"}}

        ``started == completed + failed + timeout + cancelled + in_flight`` always holds
        (a run stopped by the memory limit counts as ``failed``); ``peak_rss_bytes`` is
        the highest reading taken when a run ended.
        """
        rss = process_rss_bytes()
        with self._lock:
            ended = sum(self._ended.values())
            count = self._duration_count
            return {
                "workflows": {
                    "started": self._started,
                    **{status: self._ended[status] for status in _SHOWN_ORDER},
                    "in_flight": self._started - ended,
                    "memory_limit_stops": self._memory_stops,
                },
                "nodes": dict(self._nodes),
                "duration_seconds": {
                    "count": count,
                    "sum": self._duration_sum,
                    "max": self._duration_max,
                    "mean": self._duration_sum / count if count else None,
                },
                "memory": {
                    "rss_bytes": rss,
                    "peak_rss_bytes": max(self._peak_rss, rss),
                    "limit_bytes": self.memory_limit_bytes,
                    "method": rss_method(),
                },
            }
