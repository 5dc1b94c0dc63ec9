"""Per-agent metrics as a Prometheus collector, for a gateway's (or any) ``/metrics``.

A registry has one collector, which reads every pool (and coordinator) attached to it
each time it is scraped, so it costs nothing between scrapes::

    AgentMetricsCollector.attach(gateway.metrics.registry, coordinator,
                                 workflow="triage", node="coordinator")

A gateway attaches the coordinators of the workflows it serves itself
(``Node.register_metrics``). Every sample carries the ``workflow`` and ``node`` it
belongs to:

* ``kailash_nb_agent_tasks_total{agent}``: tasks assigned to the agent (attempts).
* ``kailash_nb_agent_outcomes_total{agent, outcome}``: attempts ended, by outcome
  (``success``, ``failure``, ``timeout``).
* ``kailash_nb_agent_load{agent}``: tasks in flight on the agent.
* ``kailash_nb_agent_healthy{agent}``: 1 while the agent may be given tasks, else 0.
* ``kailash_nb_agent_share{agent}``: its part of all tasks assigned (0 to 1).
* ``kailash_nb_agent_latency_mean_seconds{agent}``, ``..._p95_seconds{agent}``:
  time the agent worked on a task (NaN before the first one ends).
* For a coordinator: ``kailash_nb_agent_coordinator_tasks_total{state}`` (``submitted``,
  ``completed``, ``failed``, ``refused``) and ``kailash_nb_agent_coordinator_tasks_now{state}``
  (``running``, ``queued``).
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Iterator
from typing import ClassVar, NamedTuple

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from kailash_nb.nodes.ai.coordinator import A2ACoordinator
from kailash_nb.nodes.ai.pool import AgentPool

__all__ = ["AgentMetricsCollector"]


class _Source(NamedTuple):
    workflow: str
    node: str
    pool: AgentPool
    coordinator: A2ACoordinator | None


class AgentMetricsCollector:
    """Per-agent metrics of the pools and coordinators attached to one registry."""

    _by_registry: ClassVar[weakref.WeakKeyDictionary[CollectorRegistry, AgentMetricsCollector]] = (
        weakref.WeakKeyDictionary()
    )
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._sources: dict[tuple[str, str], _Source] = {}

    @classmethod
    def attach(
        cls,
        registry: CollectorRegistry,
        source: A2ACoordinator | AgentPool,
        *,
        workflow: str = "",
        node: str = "",
    ) -> AgentMetricsCollector:
        """Show ``source``'s agents in ``registry``, labelled ``workflow`` and ``node``;
        returns the registry's collector (registered on first use).

        Raises:
            TypeError: ``source`` is neither a coordinator nor a pool.
            ValueError: ``registry`` already shows a source under these labels.
        """
        if isinstance(source, A2ACoordinator):
            entry = _Source(workflow, node, source.pool, source)
        elif isinstance(source, AgentPool):
            entry = _Source(workflow, node, source, None)
        else:
            raise TypeError(
                f"AgentMetricsCollector reads an A2ACoordinator or an AgentPool, got "
                f"{type(source).__name__}"
            )
        with cls._lock:
            collector = cls._by_registry.get(registry)
            if collector is None:
                collector = cls()
                registry.register(collector)
                cls._by_registry[registry] = collector
            key = (workflow, node)
            if key in collector._sources:
                raise ValueError(
                    f"agent metrics of workflow {workflow!r}, node {node!r} are already "
                    "in this registry"
                )
            collector._sources = {**collector._sources, key: entry}
        return collector

    def describe(self) -> Iterator[Metric]:
        """The metric families, without samples (for the registry's name check)."""
        return self._families(())

    def collect(self) -> Iterator[Metric]:
        """The metric families with the current values."""
        return self._families(tuple(self._sources.values()))

    def _families(self, sources: tuple[_Source, ...]) -> Iterator[Metric]:
        labels = ("workflow", "node")
        tasks = CounterMetricFamily(
            "kailash_nb_agent_tasks", "Tasks assigned to the agent.", labels=(*labels, "agent")
        )
        outcomes = CounterMetricFamily(
            "kailash_nb_agent_outcomes",
            "Task attempts ended on the agent, by outcome (success, failure, timeout).",
            labels=(*labels, "agent", "outcome"),
        )
        load = GaugeMetricFamily(
            "kailash_nb_agent_load", "Tasks in flight on the agent.", labels=(*labels, "agent")
        )
        healthy = GaugeMetricFamily(
            "kailash_nb_agent_healthy",
            "1 while the agent may be given tasks, 0 while it is left out after failures.",
            labels=(*labels, "agent"),
        )
        share = GaugeMetricFamily(
            "kailash_nb_agent_share",
            "The agent's part of all tasks assigned.",
            labels=(*labels, "agent"),
        )
        mean = GaugeMetricFamily(
            "kailash_nb_agent_latency_mean_seconds",
            "Mean time the agent worked on a task (NaN: none finished).",
            labels=(*labels, "agent"),
        )
        p95 = GaugeMetricFamily(
            "kailash_nb_agent_latency_p95_seconds",
            "95th percentile of the time the agent worked on its last 1000 tasks.",
            labels=(*labels, "agent"),
        )
        ended = CounterMetricFamily(
            "kailash_nb_agent_coordinator_tasks",
            "Tasks given to the coordinator, by state (submitted, completed, failed, refused).",
            labels=(*labels, "state"),
        )
        now = GaugeMetricFamily(
            "kailash_nb_agent_coordinator_tasks_now",
            "Tasks in the coordinator now, by state (running, queued).",
            labels=(*labels, "state"),
        )
        for source in sources:
            where = (source.workflow, source.node)
            for agent_id, entry in source.pool.snapshot().items():
                agent = (*where, agent_id)
                tasks.add_metric(agent, entry["tasks"])
                outcomes.add_metric((*agent, "success"), entry["successes"])
                outcomes.add_metric((*agent, "failure"), entry["failures"])
                outcomes.add_metric((*agent, "timeout"), entry["timeouts"])
                load.add_metric(agent, entry["load"])
                healthy.add_metric(agent, 1 if entry["healthy"] else 0)
                share.add_metric(agent, entry["share"])
                mean.add_metric(agent, _or_nan(entry["mean_latency"]))
                p95.add_metric(agent, _or_nan(entry["p95_latency"]))
            if source.coordinator is not None:
                counts = source.coordinator.metrics()["tasks"]
                for state in ("submitted", "completed", "failed", "refused"):
                    ended.add_metric((*where, state), counts[state])
                for state in ("running", "queued"):
                    now.add_metric((*where, state), counts[state])
        yield from (tasks, outcomes, load, healthy, share, mean, p95, ended, now)


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value
