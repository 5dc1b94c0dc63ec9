"""Production monitoring: alert rules over a gateway's metrics, health and memory.

``ProductionMonitor`` evaluates rules such as ``{"metric": "workflow_failure_rate",
"threshold": 0.05}`` over the gateway's Prometheus metrics and publishes alert states on
``/metrics`` and ``GET /health``::

    from kailash_nb.monitoring import ProductionMonitor

    gateway = create_gateway(monitoring=ProductionMonitor(alert_rules=[...]))

``record_alert(name, detail)`` raises an event alert (a saga whose compensation failed)
on every ``ProductionMonitor`` of the process: counted on ``/metrics``, the most recent
named in ``GET /health``.
"""

from kailash_nb.monitoring.events import EventAlert, record_alert
from kailash_nb.monitoring.memory import (
    memory_limit_bytes,
    memory_usage,
    process_rss_bytes,
    rss_method,
)
from kailash_nb.monitoring.monitor import UNTRACKED_ROUTES, AlertStatus, ProductionMonitor
from kailash_nb.monitoring.rules import DEFAULT_ALERT_RULES, METRICS, AlertRule, parse_rules

__all__ = [
    "DEFAULT_ALERT_RULES",
    "METRICS",
    "UNTRACKED_ROUTES",
    "AlertRule",
    "AlertStatus",
    "EventAlert",
    "ProductionMonitor",
    "memory_limit_bytes",
    "memory_usage",
    "parse_rules",
    "process_rss_bytes",
    "record_alert",
    "rss_method",
]
