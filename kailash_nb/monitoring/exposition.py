"""The monitor's Prometheus gauges, in the gateway's registry (served on ``/metrics``).

* ``kailash_nb_monitor_value{metric}``: the metric's value at the last evaluation
  (NaN while there is no data, e.g. no finished run in the window).
* ``kailash_nb_alert_firing{alert, metric}``: 1 while the rule fires, else 0.
* ``kailash_nb_alert_threshold{alert, metric}``: the rule's threshold.
* ``kailash_nb_event_alerts_total{alert}``: event alerts recorded (``record_alert``),
  per alert name.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge

from kailash_nb.monitoring.rules import AlertRule

__all__ = ["AlertGauges", "EventAlertCounter"]


class AlertGauges:
    """Gauges for ``rules``, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry, rules: Iterable[AlertRule]) -> None:
        self.values = Gauge(
            "kailash_nb_monitor_value",
            "Value of a monitored metric at the last evaluation (NaN: no data).",
            ("metric",),
            registry=registry,
        )
        self.firing = Gauge(
            "kailash_nb_alert_firing",
            "1 while the alert rule fires, else 0.",
            ("alert", "metric"),
            registry=registry,
        )
        threshold = Gauge(
            "kailash_nb_alert_threshold",
            "Threshold of the alert rule.",
            ("alert", "metric"),
            registry=registry,
        )
        for rule in rules:
            threshold.labels(rule.name, rule.metric).set(rule.threshold)
            self.firing.labels(rule.name, rule.metric).set(0)

    def update(self, values: Mapping[str, float | None], firing: Mapping[AlertRule, bool]) -> None:
        """Publish one evaluation's values and alert states."""
        for metric, value in values.items():
            self.values.labels(metric).set(math.nan if value is None else value)
        for rule, is_firing in firing.items():
            self.firing.labels(rule.name, rule.metric).set(1 if is_firing else 0)


class EventAlertCounter:
    """The count of event alerts per alert name, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.total = Counter(
            "kailash_nb_event_alerts",
            "Event alerts recorded (e.g. a saga whose compensation failed), per alert name.",
            ("alert",),
            registry=registry,
        )

    def add(self, counts: Mapping[str, int]) -> None:
        """Add ``counts`` (alerts per name) to the counter."""
        for name, count in counts.items():
            self.total.labels(name).inc(count)

    def increment(self, name: str) -> None:
        """Count one alert ``name``."""
        self.total.labels(name).inc()
