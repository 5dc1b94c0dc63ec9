"""Per-agent metrics as a Prometheus collector, for a gateway's (or any) ``/metrics``.

The collector reads the pool (and the coordinator, when given) each time it is
scraped, so it costs nothing between scrapes::

    collector = AgentMetricsCollector(coordinator)
    collector.register(gateway.metrics.registry)      # now on the gateway's /metrics

* ``kailash_nb_agent_tasks_total{agent}``: tasks assigned to the agent (attempts).
* ``kailash_nb_agent_outcomes_total{agent, outcome}``: attempts ended, by outcome
  (``success``, ``failure``, ``timeout``).
* ``kailash_nb_agent_load{agent}``: tasks in flight on the agent.
* ``kailash_nb_agent_healthy{agent}``: 1 while the agent may be given tasks, else 0.
* ``kailash_nb_agent_share{agent}``: its part of all tasks assigned (0 to 1).
* ``kailash_nb_agent_latency_mean_seconds{agent}``, ``..._p95_seconds{agent}``:
  time the agent worked on a task (NaN before the first one ends).
* With a coordinator: ``kailash_nb_agent_coordinator_tasks_total{state}`` (``submitted``,
  ``completed``, ``failed``, ``refused``) and ``kailash_nb_agent_coordinator_tasks_now{state}``
  (``running``, ``queued``).

A registry holds one such collector (the metric names would clash).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from kailash_nb.nodes.ai.coordinator import A2ACoordinator
from kailash_nb.nodes.ai.pool import AgentPool

__all__ = ["AgentMetricsCollector"]


class AgentMetricsCollector:
    """Reads per-agent metrics from a coordinator (with its task counts) or a pool."""

    def __init__(self, source: A2ACoordinator | AgentPool) -> None:
        if isinstance(source, A2ACoordinator):
            self.coordinator: A2ACoordinator | None = source
            self.pool = source.pool
        elif isinstance(source, AgentPool):
            self.coordinator, self.pool = None, source
        else:
            raise TypeError(
                f"AgentMetricsCollector reads an A2ACoordinator or an AgentPool, got "
                f"{type(source).__name__}"
            )

    def register(self, registry: CollectorRegistry) -> AgentMetricsCollector:
        """Register in ``registry`` and return self.

        Raises:
            ValueError: ``registry`` already holds these metric names.
        """
        registry.register(self)
        return self

    def describe(self) -> Iterator[Metric]:
        """The metric families, without samples (for the registry's name check)."""
        return self._families(with_samples=False)

    def collect(self) -> Iterator[Metric]:
        """The metric families with the current values."""
        return self._families(with_samples=True)

    def _families(self, with_samples: bool) -> Iterator[Metric]:
        agents = self.pool.snapshot() if with_samples else {}
        tasks = CounterMetricFamily(
            "kailash_nb_agent_tasks", "Tasks assigned to the agent.", labels=("agent",)
        )
        outcomes = CounterMetricFamily(
            "kailash_nb_agent_outcomes",
            "Task attempts ended on the agent, by outcome (success, failure, timeout).",
            labels=("agent", "outcome"),
        )
        load = GaugeMetricFamily(
            "kailash_nb_agent_load", "Tasks in flight on the agent.", labels=("agent",)
        )
        healthy = GaugeMetricFamily(
            "kailash_nb_agent_healthy",
            "1 while the agent may be given tasks, 0 while it is left out after failures.",
            labels=("agent",),
        )
        share = GaugeMetricFamily(
            "kailash_nb_agent_share", "The agent's part of all tasks assigned.", labels=("agent",)
        )
        mean = GaugeMetricFamily(
            "kailash_nb_agent_latency_mean_seconds",
            "Mean time the agent worked on a task (NaN: none finished).",
            labels=("agent",),
        )
        p95 = GaugeMetricFamily(
            "kailash_nb_agent_latency_p95_seconds",
            "95th percentile of the time the agent worked on its last 1000 tasks.",
            labels=("agent",),
        )
        for agent_id, entry in agents.items():
            tasks.add_metric((agent_id,), entry["tasks"])
            outcomes.add_metric((agent_id, "success"), entry["successes"])
            outcomes.add_metric((agent_id, "failure"), entry["failures"])
            outcomes.add_metric((agent_id, "timeout"), entry["timeouts"])
            load.add_metric((agent_id,), entry["load"])
            healthy.add_metric((agent_id,), 1 if entry["healthy"] else 0)
            share.add_metric((agent_id,), entry["share"])
            mean.add_metric((agent_id,), _or_nan(entry["mean_latency"]))
            p95.add_metric((agent_id,), _or_nan(entry["p95_latency"]))
        yield from (tasks, outcomes, load, healthy, share, mean, p95)
        if self.coordinator is None:
            return
        ended = CounterMetricFamily(
            "kailash_nb_agent_coordinator_tasks",
            "Tasks given to the coordinator, by state (submitted, completed, failed, refused).",
            labels=("state",),
        )
        now = GaugeMetricFamily(
            "kailash_nb_agent_coordinator_tasks_now",
            "Tasks in the coordinator now, by state (running, queued).",
            labels=("state",),
        )
        if with_samples:
            counts = self.coordinator.metrics()["tasks"]
            for state in ("submitted", "completed", "failed", "refused"):
                ended.add_metric((state,), counts[state])
            for state in ("running", "queued"):
                now.add_metric((state,), counts[state])
        yield from (ended, now)


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value
