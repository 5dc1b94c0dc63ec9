"""The runtime's metrics as a subscriber of its event bus (``enable_metrics=True``).

It asks the bus for run events with their node timelines, not for node events: the
engine then builds one timeline per run rather than an event per node state change, so
metrics cost a run a few microseconds. Being a subscriber, it counts every run published
on the bus: a bus shared between runtimes is counted by each runtime's metrics.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from kailash_nb.monitoring.run_metrics import RunMetrics
from kailash_nb.runtime.events import EventBus, NodeEvent, RunEvent, Subscription
from kailash_nb.sdk_exceptions import MemoryLimitExceededError

__all__ = ["MetricsSink"]

_MEMORY_STOP = MemoryLimitExceededError.__name__ + ":"


class MetricsSink:
    """Feeds ``metrics`` (a :class:`RunMetrics`) from ``bus`` until :meth:`close`."""

    def __init__(
        self,
        bus: EventBus,
        registry: CollectorRegistry | None = None,
        *,
        memory_limit_bytes: int | None = None,
    ) -> None:
        self.metrics = RunMetrics(registry, memory_limit_bytes=memory_limit_bytes)
        self._subscription: Subscription | None = bus.subscribe(
            self._on_event, nodes=False, runs=True, timeline=True
        )

    def _on_event(self, event: NodeEvent | RunEvent) -> None:
        if not isinstance(event, RunEvent):
            return
        if event.state == "started":
            self.metrics.run_started()
            return
        self.metrics.run_ended(
            event.state,
            event.duration,
            [timing.state for timing in event.timeline or ()],
            memory_limit=bool(event.error and event.error.startswith(_MEMORY_STOP)),
        )

    def close(self) -> None:
        """Stop counting (idempotent)."""
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
