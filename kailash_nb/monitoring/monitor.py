"""``ProductionMonitor``: alert rules over the gateway's failure rate, latency and memory.

It reads what the gateway's Prometheus metrics already count (requests by latency,
runs by final status) when it evaluates, periodically while the gateway serves and on
demand, so it adds no work to a request. Alert states are published as gauges on
``/metrics`` and in ``GET /health``; a rule that starts firing logs a warning, one that
clears logs an info line. Event alerts that code raises (:meth:`record_alert`, or
``kailash_nb.monitoring.record_alert`` for every monitor of the process) are counted
on ``/metrics`` and the most recent are named in ``GET /health``::

    monitor = ProductionMonitor(
        alert_rules=[{"metric": "workflow_failure_rate", "threshold": 0.05}],
    )
    gateway = create_gateway(title="Monitored Application", monitoring=monitor)
    monitor.evaluate()  # -> (AlertStatus(...),)
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kailash_nb.monitoring.events import EventAlert, EventAlerts, register_monitor
from kailash_nb.monitoring.exposition import AlertGauges, EventAlertCounter
from kailash_nb.monitoring.memory import memory_usage
from kailash_nb.monitoring.rules import DEFAULT_ALERT_RULES, AlertRule, parse_rules
from kailash_nb.monitoring.windows import CounterWindow, bucket_quantile

__all__ = ["UNTRACKED_ROUTES", "AlertStatus", "ProductionMonitor"]

logger = logging.getLogger("kailash_nb.monitoring")

#: Routes left out of response_time_p95: probes, scrapes and long-lived streams.
UNTRACKED_ROUTES = frozenset({"/health", "/ready", "/metrics", "/runs/{run_id}/events"})
_TRACKED_METRICS = ("workflow_failure_rate", "response_time_p95")


@dataclass(frozen=True)
class AlertStatus:
    """One rule's state at an evaluation.

    Attributes:
        name, metric, threshold: the rule.
        value: the metric's value (``None``: no data in the window).
        firing: ``value`` is above ``threshold``.
        since: wall-clock time the rule started firing (``None`` when not firing).
    """

    name: str
    metric: str
    threshold: float
    value: float | None
    firing: bool
    since: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The status as JSON-ready values."""
        return {
            "name": self.name,
            "metric": self.metric,
            "threshold": self.threshold,
            "value": self.value,
            "firing": self.firing,
            "since": self.since,
        }


class ProductionMonitor:
    """Alert rules evaluated over one gateway's metrics.

    Args:
        metrics_enabled: publish values and alert states as Prometheus gauges.
        health_checks: include alert states in ``GET /health``.
        performance_tracking: compute ``workflow_failure_rate`` and
            ``response_time_p95``; without it only ``memory_usage`` is available.
        alert_rules: ``[{"metric": ..., "threshold": ..., "name": ...}]`` (``name``
            optional); ``None`` uses :data:`DEFAULT_ALERT_RULES`, ``[]`` none.
            Metrics: ``workflow_failure_rate`` (0..1, failed / finished runs),
            ``response_time_p95`` (milliseconds, requests other than
            :data:`UNTRACKED_ROUTES`), ``memory_usage`` (0..1, RSS / memory limit).
        evaluation_interval: seconds between evaluations while the gateway serves.
        window_seconds: the sliding window of the failure rate and the p95.
        memory_limit_bytes: the memory limit; default: the container's cgroup limit,
            else the machine's memory.
        keep_recent_alerts: how many event alerts (:meth:`record_alert`) to keep.
        clock: monotonic seconds (tests pass their own).

    A monitor registers itself with ``kailash_nb.monitoring.record_alert`` when it is
    created (held weakly: it receives the process's event alerts while it lives).

    Raises:
        ValueError: an invalid rule (its index is named), a rule on a performance
            metric without ``performance_tracking``, a non-positive interval, window
            or limit, or ``keep_recent_alerts`` below 1.
        TypeError: a flag that is not a bool.
    """

    def __init__(
        self,
        *,
        metrics_enabled: bool = True,
        health_checks: bool = True,
        performance_tracking: bool = True,
        alert_rules: Iterable[Mapping[str, object]] | None = None,
        evaluation_interval: float = 15.0,
        window_seconds: float = 300.0,
        memory_limit_bytes: int | None = None,
        keep_recent_alerts: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for flag, value in (
            ("metrics_enabled", metrics_enabled),
            ("health_checks", health_checks),
            ("performance_tracking", performance_tracking),
        ):
            if not isinstance(value, bool):
                raise TypeError(f"{flag} must be True or False, got {value!r}")
        _positive("evaluation_interval", evaluation_interval)
        _positive("window_seconds", window_seconds)
        if memory_limit_bytes is not None:
            _positive("memory_limit_bytes", memory_limit_bytes)
        if (
            isinstance(keep_recent_alerts, bool)
            or not isinstance(keep_recent_alerts, int)
            or keep_recent_alerts < 1
        ):
            raise ValueError(f"keep_recent_alerts must be an int >= 1, got {keep_recent_alerts!r}")
        self.metrics_enabled = metrics_enabled
        self.health_checks = health_checks
        self.performance_tracking = performance_tracking
        self.rules = parse_rules(DEFAULT_ALERT_RULES if alert_rules is None else alert_rules)
        if not performance_tracking:
            for index, rule in enumerate(self.rules):
                if rule.metric in _TRACKED_METRICS:
                    raise ValueError(
                        f"alert_rules[{index}]: {rule.metric} needs performance_tracking=True"
                    )
        self.evaluation_interval = float(evaluation_interval)
        self.window_seconds = float(window_seconds)
        self.memory_limit_bytes = memory_limit_bytes
        self._clock = clock
        self._gateway_metrics: Any = None
        self._gauges: AlertGauges | None = None
        self._runs = CounterWindow(self.window_seconds)
        self._latency = CounterWindow(self.window_seconds)
        self._since: dict[str, float] = {}
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self.alerts: tuple[AlertStatus, ...] = ()
        self._health: dict[str, Any] = {"status": "ok", "alerts": [], "evaluated_at": None}
        self._events = EventAlerts(keep_recent_alerts)
        register_monitor(self)

    # -- wiring ------------------------------------------------------------------

    def attach(self, gateway: Any) -> None:
        """Monitor ``gateway`` (``create_gateway(monitoring=...)`` calls this).

        Raises:
            ValueError: the monitor already watches a gateway.
        """
        if self._gateway_metrics is not None:
            raise ValueError("this ProductionMonitor already monitors a gateway; create one each")
        self._gateway_metrics = gateway.metrics
        if self.metrics_enabled:
            self._gauges = AlertGauges(gateway.metrics.registry, self.rules)
            self._events.publish_to(EventAlertCounter(gateway.metrics.registry))
        gateway.monitor = self
        self.evaluate()

    def start(self) -> None:
        """Evaluate every ``evaluation_interval`` seconds on the running loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._evaluate_periodically())

    async def stop(self) -> None:
        """Stop the periodic evaluation."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    # -- evaluation ----------------------------------------------------------------

    def values(self) -> dict[str, float | None]:
        """The metrics now: failure rate and p95 over the window, memory usage."""
        now = self._clock()
        values: dict[str, float | None] = {"memory_usage": memory_usage(self.memory_limit_bytes)}
        if self.performance_tracking and self._gateway_metrics is not None:
            finished, failed = self._runs.advance(now, _run_totals(self._gateway_metrics))
            values["workflow_failure_rate"] = failed / finished if finished else None
            bounds, counts = _latency_buckets(self._gateway_metrics)
            p95 = bucket_quantile(0.95, bounds, self._latency.advance(now, counts))
            values["response_time_p95"] = None if p95 is None else p95 * 1000
        return values

    def evaluate(self) -> tuple[AlertStatus, ...]:
        """Evaluate every rule now; log and publish changes; return the states."""
        with self._lock:
            values = self.values()
            statuses = []
            for rule in self.rules:
                value = values.get(rule.metric)
                firing = value is not None and value > rule.threshold
                statuses.append(self._transition(rule, value, firing))
            if self._gauges is not None:
                self._gauges.update(
                    values,
                    {
                        rule: status.firing
                        for rule, status in zip(self.rules, statuses, strict=True)
                    },
                )
            self.alerts = tuple(statuses)
            self._health = {
                "status": "degraded" if any(s.firing for s in statuses) else "ok",
                "alerts": [status.to_dict() for status in statuses],
                "evaluated_at": time.time(),
            }
            return self.alerts

    def health(self) -> dict[str, Any]:
        """The last evaluation for ``GET /health`` (computed then, not now: cheap), and
        under ``"events"`` the most recent event alerts, oldest first, by name and time
        only: ``/health`` answers without authentication, and a detail may name a
        tenant's transaction (:meth:`recent_alerts` has the details)."""
        events = [{"name": alert.name, "at": alert.at} for alert in self._events.recent()]
        return {**self._health, "events": events}

    # -- event alerts --------------------------------------------------------------

    def record_alert(self, name: str, detail: str) -> None:
        """Record the event alert ``name`` (e.g. ``transaction_compensation_failed``):
        counted in ``kailash_nb_event_alerts_total{alert}`` and kept among the recent
        alerts. It does not change ``"status"``: it happened, it does not fire or clear.
        The caller logs it.

        Raises:
            ValueError: ``name`` is not lower-case letters, digits and ``_`` (at most
                64 characters).
            TypeError: ``detail`` is not a string.
        """
        self._events.record(name, detail)

    def recent_alerts(self) -> tuple[EventAlert, ...]:
        """The most recent event alerts with their details, oldest first."""
        return self._events.recent()

    def alert_counts(self) -> dict[str, int]:
        """How many event alerts were recorded, per name."""
        return self._events.counts()

    # -- helpers -------------------------------------------------------------------

    def _transition(self, rule: AlertRule, value: float | None, firing: bool) -> AlertStatus:
        since = self._since.get(rule.name)
        if firing and since is None:
            since = self._since[rule.name] = time.time()
            logger.warning(
                "alert %s firing: %s = %.4g is above %.4g",
                rule.name,
                rule.metric,
                value,
                rule.threshold,
            )
        elif not firing and since is not None:
            del self._since[rule.name]
            since = None
            shown = "no data" if value is None else f"{value:.4g}"
            logger.info(
                "alert %s cleared: %s = %s (threshold %.4g)",
                rule.name,
                rule.metric,
                shown,
                rule.threshold,
            )
        return AlertStatus(rule.name, rule.metric, rule.threshold, value, firing, since)

    async def _evaluate_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.evaluation_interval)
            try:
                self.evaluate()
            except Exception:
                logger.exception("monitor evaluation failed; retrying at the next interval")


def _positive(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _run_totals(metrics: Any) -> tuple[float, float]:
    finished = failed = 0.0
    for family in metrics.runs.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                finished += sample.value
                if sample.labels.get("status") != "completed":
                    failed += sample.value
    return finished, failed


def _latency_buckets(metrics: Any) -> tuple[list[float], tuple[float, ...]]:
    per_bound: dict[float, float] = {}
    for family in metrics.latency.collect():
        for sample in family.samples:
            if sample.name.endswith("_bucket") and sample.labels["route"] not in UNTRACKED_ROUTES:
                bound = float(sample.labels["le"])
                per_bound[bound] = per_bound.get(bound, 0.0) + sample.value
    bounds = sorted(per_bound) or [math.inf]
    return bounds, tuple(per_bound.get(bound, 0.0) for bound in bounds)
