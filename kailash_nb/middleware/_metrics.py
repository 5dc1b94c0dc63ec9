"""Prometheus metrics of one gateway, in their own registry.

Each gateway owns a ``CollectorRegistry`` so two gateways in one process (tests, a
notebook) never share counters::

    metrics = GatewayMetrics()
    metrics.observe_request("GET", "/health", 200, 0.002)
    metrics.observe_run("etl", "failed")
    text, content_type = metrics.render()
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["LATENCY_BUCKETS", "GatewayMetrics"]

#: Upper bounds (seconds) of the latency histogram; fine around 1-3 s, where latency
#: alerts (``response_time_p95``) are usually set.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    2.5,
    3.0,
    5.0,
    10.0,
    30.0,
    float("inf"),
)


class GatewayMetrics:
    """Requests, latency, runs by status and runs in flight."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Labelled children by label values: ``labels()`` costs a lock and a tuple per
        # call, and the label sets are few (methods x routes x statuses, workflows).
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._run_children: dict[tuple[str, str], Any] = {}
        self.requests = Counter(
            "kailash_nb_http_requests",
            "HTTP requests answered, by method, route and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "kailash_nb_http_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ("route",),
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.runs = Counter(
            "kailash_nb_workflow_runs",
            "Workflow runs started through the gateway, by registered workflow name and "
            "final status (completed, failed, timeout, cancelled).",
            ("workflow", "status"),
            registry=self.registry,
        )
        self.runs_in_flight = Gauge(
            "kailash_nb_workflow_runs_in_flight",
            "Workflow runs executing now.",
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request. ``route`` is the route pattern, never the raw path
        (bounded label cardinality)."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def observe_run(self, workflow: str, status: str) -> None:
        """Count a gateway run starting (``running``) or ending in a final status
        (``kailash_nb.run_status``: a run with a failed node is ``failed``), under the
        workflow's registered name."""
        if status == "running":
            self.runs_in_flight.inc()
            return
        self.runs_in_flight.dec()
        key = (workflow, status)
        child = self._run_children.get(key)
        if child is None:
            child = self._run_children[key] = self.runs.labels(*key)
        child.inc()

    def render(self) -> tuple[bytes, str]:
        """The text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
