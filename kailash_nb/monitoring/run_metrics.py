"""``RunMetrics``: one runtime's runs counted, for ``runtime.get_metrics()`` and Prometheus.

The runtime feeds it from its event bus (``enable_metrics=True``); it keeps plain
counters under a lock (events arrive from any thread), a few microseconds a run, and
one Prometheus collector registered in a ``CollectorRegistry`` reads them when scraped:
the runtime's own registry by default, so two runtimes in one process never share (or
clash over) metric names, or one the caller passes to serve several things on one
``/metrics``:

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
* ``kailash_nb_runtime_memory_limit_bytes``: ``memory_limit_mb`` in bytes, when set.

Usage::

    metrics = RunMetrics()
    metrics.run_started()
    metrics.run_ended("completed", 0.25, ["completed", "completed"])
    metrics.snapshot()["workflows"]["completed"]  # 1
"""

from __future__ import annotations

import bisect
import resource
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from kailash_nb.monitoring.memory import process_rss_bytes, rss_method
from kailash_nb.run_status import ENGINE_FINAL_STATES

__all__ = ["DURATION_BUCKETS", "NODE_END_STATES", "RunMetrics"]

#: How a node ends in a run's timeline.
NODE_END_STATES = ("completed", "failed", "skipped", "cached")
#: Upper bounds (seconds) of the run-duration histogram (the last, +Inf, is implied).
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0)

_FINAL_ORDER = ("completed", "failed", "timeout", "cancelled")
assert frozenset(_FINAL_ORDER) == ENGINE_FINAL_STATES


class RunMetrics:
    """Counters of runs by final status, nodes by end state, and run durations.

    Args:
        registry: where the Prometheus collector is registered (default: a new
            registry of this object's own, ``metrics.registry``).
        memory_limit_bytes: the runtime's memory limit, reported with the memory.

    Raises:
        ValueError: ``registry`` already holds metrics of these names (another
            runtime's): pass each runtime its own registry.
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
        self._ended = dict.fromkeys(_FINAL_ORDER, 0)
        self._nodes = dict.fromkeys(NODE_END_STATES, 0)
        self._memory_stops = 0
        self._duration_buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self._duration_sum = 0.0
        self._duration_max = 0.0
        self.registry.register(_Collector(self))

    def run_started(self) -> None:
        """Count a run that started."""
        with self._lock:
            self._started += 1

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
        if status not in self._ended:
            raise ValueError(f"run status {status!r} is not one of {', '.join(_FINAL_ORDER)}")
        seconds = duration or 0.0
        bucket = bisect.bisect_left(DURATION_BUCKETS, seconds)
        nodes = self._nodes
        with self._lock:
            self._ended[status] += 1
            for state in node_states:
                if state in nodes:
                    nodes[state] += 1
            self._duration_buckets[bucket] += 1
            self._duration_sum += seconds
            if seconds > self._duration_max:
                self._duration_max = seconds
            if memory_limit:
                self._memory_stops += 1

    def snapshot(self) -> dict[str, Any]:
        """The numbers now, JSON-ready::

            {"workflows": {"started", "completed", "failed", "timeout", "cancelled",
                           "in_flight", "memory_limit_stops"},
             "nodes": {"completed", "failed", "skipped", "cached"},
             "duration_seconds": {"count", "sum", "max", "mean"},
             "memory": {"rss_bytes", "peak_rss_bytes", "limit_bytes", "method"}}

        ``started == completed + failed + timeout + cancelled + in_flight`` always holds
        (a run stopped by the memory limit counts as ``failed``); ``peak_rss_bytes`` is
        the process's peak from ``resource.getrusage``.
        """
        with self._lock:
            ended = sum(self._ended.values())
            count = sum(self._duration_buckets)
            workflows = {
                "started": self._started,
                **self._ended,
                "in_flight": self._started - ended,
                "memory_limit_stops": self._memory_stops,
            }
            nodes = dict(self._nodes)
            total, longest = self._duration_sum, self._duration_max
        rss = process_rss_bytes()
        return {
            "workflows": workflows,
            "nodes": nodes,
            "duration_seconds": {
                "count": count,
                "sum": total,
                "max": longest,
                "mean": total / count if count else None,
            },
            "memory": {
                "rss_bytes": rss,
                "peak_rss_bytes": max(rss, _peak_rss_bytes()),
                "limit_bytes": self.memory_limit_bytes,
                "method": rss_method(),
            },
        }

    def _families(self, with_samples: bool) -> Iterator[Metric]:
        with self._lock:
            started = self._started
            ended = dict(self._ended)
            nodes = dict(self._nodes)
            stops = self._memory_stops
            buckets = list(self._duration_buckets)
            total = self._duration_sum
        runs = CounterMetricFamily(
            "kailash_nb_runtime_workflows_started", "Workflow runs started by this runtime."
        )
        by_status = CounterMetricFamily(
            "kailash_nb_runtime_workflows",
            "Workflow runs ended, by final status (completed, failed, timeout, cancelled).",
            labels=("status",),
        )
        in_flight = GaugeMetricFamily(
            "kailash_nb_runtime_workflows_in_flight",
            "Workflow runs started by this runtime and not ended.",
        )
        by_state = CounterMetricFamily(
            "kailash_nb_runtime_nodes",
            "Node executions by how they ended (completed, failed, skipped, cached).",
            labels=("state",),
        )
        memory_stops = CounterMetricFamily(
            "kailash_nb_runtime_memory_limit_stops",
            "Runs stopped because the process went past memory_limit_mb.",
        )
        rss = GaugeMetricFamily(
            "kailash_nb_process_resident_memory_bytes",
            f"Memory of this process, read when scraped ({rss_method()}).",
        )
        limit = GaugeMetricFamily(
            "kailash_nb_runtime_memory_limit_bytes", "The runtime's memory_limit_mb, in bytes."
        )
        if with_samples:
            runs.add_metric((), started)
            for status, value in ended.items():
                by_status.add_metric((status,), value)
            in_flight.add_metric((), started - sum(ended.values()))
            for state, value in nodes.items():
                by_state.add_metric((state,), value)
            memory_stops.add_metric((), stops)
            rss.add_metric((), process_rss_bytes())
            if self.memory_limit_bytes is not None:
                limit.add_metric((), self.memory_limit_bytes)
        cumulative, running = [], 0
        for bound, value in zip((*DURATION_BUCKETS, float("inf")), buckets, strict=True):
            running += value
            cumulative.append(("+Inf" if bound == float("inf") else str(bound), running))
        durations = HistogramMetricFamily(
            "kailash_nb_runtime_workflow_duration_seconds",
            "Time from a run's start to its end, whatever the end.",
            buckets=cumulative if with_samples else None,
            sum_value=total if with_samples else None,
        )
        yield from (runs, by_status, in_flight, durations, by_state, memory_stops, rss, limit)


class _Collector:
    """The Prometheus view of a :class:`RunMetrics`, read at scrape time."""

    def __init__(self, metrics: RunMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics._families(with_samples=True)

    def describe(self) -> Iterator[Metric]:
        return self._metrics._families(with_samples=False)


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
