"""``kailash_nb.monitoring.ProductionMonitor`` and ``create_gateway(monitoring=...)``:
rule validation, failure rate / p95 / memory over sliding windows, alert gauges on
``/metrics``, alert states in ``GET /health``, fire/clear logging."""

from __future__ import annotations

import gc
import logging
import math
import time
import weakref

import pytest
from _clock import Clock
from _gateway_server import ServedGateway

from kailash_nb import WorkflowBuilder
from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.monitoring import (
    DEFAULT_ALERT_RULES,
    ProductionMonitor,
    memory_limit_bytes,
    memory_usage,
    process_rss_bytes,
    record_alert,
)
from kailash_nb.monitoring.events import (
    MAX_ALERT_NAMES,
    MAX_DETAIL_CHARS,
    OTHER_ALERTS,
    EventAlerts,
)
from kailash_nb.monitoring.windows import CounterWindow, bucket_quantile
from kailash_nb.nodes.code import PythonCodeNode

SEED_RULES = [
    {"metric": "workflow_failure_rate", "threshold": 0.05},
    {"metric": "response_time_p95", "threshold": 2000},
    {"metric": "memory_usage", "threshold": 0.8},
]
EXECUTE = "/workflows/{name}/execute"


def seed_monitor(**options) -> ProductionMonitor:
    settings = {
        "metrics_enabled": True,
        "health_checks": True,
        "performance_tracking": True,
        "alert_rules": SEED_RULES,
        "memory_limit_bytes": 1 << 50,  # memory_usage stays far below its threshold
    }
    return ProductionMonitor(**{**settings, **options})


@pytest.fixture
def monitored_gateway(sqlite_url):
    """Factory: ``monitored_gateway(monitor)``, a gateway on the test's store watched by
    ``monitor`` (not started)."""

    def make(monitor: ProductionMonitor):
        return create_gateway(
            title="Monitored Application", monitoring=monitor, database_url=sqlite_url
        )

    return make


def finish_runs(gateway, completed: int, failed: int) -> None:
    for index in range(completed + failed):
        gateway.metrics.observe_run("etl", "running")
        gateway.metrics.observe_run("etl", "completed" if index < completed else "failed")


def by_name(statuses):
    return {status.name: status for status in statuses}


# -- rules -------------------------------------------------------------------------


def test_seed_monitor_constructs_as_written():
    monitor = ProductionMonitor(
        metrics_enabled=True, health_checks=True, performance_tracking=True, alert_rules=SEED_RULES
    )
    assert [(rule.metric, rule.threshold) for rule in monitor.rules] == [
        ("workflow_failure_rate", 0.05),
        ("response_time_p95", 2000.0),
        ("memory_usage", 0.8),
    ]


@pytest.mark.parametrize(
    ("rule", "match"),
    [
        ({"metric": "cpu_usage", "threshold": 0.5}, "unknown metric 'cpu_usage'"),
        ({"metric": "workflow_failure_rate", "threshold": 1.5}, "threshold"),
        ({"metric": "workflow_failure_rate", "threshold": 0}, "threshold"),
        ({"metric": "response_time_p95", "threshold": -1}, "threshold"),
        ({"metric": "response_time_p95", "threshold": math.nan}, "threshold"),
        ({"metric": "response_time_p95", "threshold": math.inf}, "threshold"),
        ({"metric": "memory_usage", "threshold": True}, "threshold"),
        ({"metric": "memory_usage", "threshold": "0.8"}, "threshold"),
        ({"metric": "memory_usage"}, "threshold"),
        ({"metric": "memory_usage", "threshold": 0.8, "severity": "page"}, "unknown key"),
        ("memory_usage > 0.8", "must be a dict"),
    ],
)
def test_invalid_rule_is_refused_naming_its_index(rule, match):
    rules = [{"metric": "memory_usage", "threshold": 0.9}, rule]
    with pytest.raises(ValueError, match=r"alert_rules\[1\]") as caught:
        ProductionMonitor(alert_rules=rules)
    assert match in str(caught.value)


def test_two_rules_on_one_metric_need_their_own_names():
    with pytest.raises(ValueError, match=r"alert_rules\[1\]: name 'memory_usage'"):
        ProductionMonitor(
            alert_rules=[
                {"metric": "memory_usage", "threshold": 0.7},
                {"metric": "memory_usage", "threshold": 0.9},
            ]
        )
    monitor = ProductionMonitor(
        alert_rules=[
            {"metric": "memory_usage", "threshold": 0.7, "name": "memory_warning"},
            {"metric": "memory_usage", "threshold": 0.9, "name": "memory_critical"},
        ]
    )
    assert [rule.name for rule in monitor.rules] == ["memory_warning", "memory_critical"]


def test_performance_rules_need_performance_tracking():
    with pytest.raises(ValueError, match=r"alert_rules\[0\]: response_time_p95 needs"):
        ProductionMonitor(performance_tracking=False, alert_rules=SEED_RULES[1:])
    monitor = ProductionMonitor(performance_tracking=False, alert_rules=SEED_RULES[2:])
    assert set(monitor.values()) == {"memory_usage"}


@pytest.mark.parametrize(
    "options",
    [{"evaluation_interval": 0}, {"window_seconds": -5}, {"memory_limit_bytes": 0}],
)
def test_bad_intervals_and_limits_are_value_errors(options):
    with pytest.raises(ValueError, match=next(iter(options))):
        ProductionMonitor(**options)


def test_flags_must_be_bools():
    with pytest.raises(TypeError, match="health_checks"):
        ProductionMonitor(health_checks="yes")


# -- create_gateway(monitoring=...) ------------------------------------------------------


def test_monitoring_none_keeps_the_plain_health_answer(sqlite_url, serve_gateway):
    gateway = create_gateway(database_url=sqlite_url)
    assert gateway.monitor is None
    server = serve_gateway(gateway)
    assert server.client.get("/health").json() == {"status": "ok"}
    assert "kailash_nb_alert_firing" not in server.client.get("/metrics").text


def test_monitoring_true_is_a_monitor_with_the_default_rules(sqlite_url):
    gateway = create_gateway(monitoring=True, database_url=sqlite_url)
    assert isinstance(gateway.monitor, ProductionMonitor)
    assert [(r.metric, r.threshold) for r in gateway.monitor.rules] == [
        (rule["metric"], rule["threshold"]) for rule in DEFAULT_ALERT_RULES
    ]


@pytest.mark.parametrize("value", [False, "on", 1, {"metrics_enabled": True}, object()])
def test_monitoring_of_another_type_is_a_type_error(value):
    with pytest.raises(TypeError, match="ProductionMonitor"):
        create_gateway(monitoring=value)


def test_a_monitor_watches_one_gateway(monitored_gateway):
    monitor = seed_monitor()
    monitored_gateway(monitor)
    with pytest.raises(ValueError, match="already monitors"):
        create_gateway(monitoring=monitor)


# -- metrics ------------------------------------------------------------------------------


def test_failure_rate_fires_then_clears_over_the_sliding_window(monitored_gateway, caplog):
    clock = Clock(1000.0)
    gateway = monitored_gateway(seed_monitor(clock=clock, window_seconds=60))
    monitor = gateway.monitor
    assert by_name(monitor.evaluate())["workflow_failure_rate"].value is None
    finish_runs(gateway, completed=18, failed=2)
    clock.now += 10
    with caplog.at_level(logging.INFO, logger="kailash_nb.monitoring"):
        status = by_name(monitor.evaluate())["workflow_failure_rate"]
    assert status.value == pytest.approx(0.1) and status.firing and status.since
    fired = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(fired) == 1 and "workflow_failure_rate" in fired[0].getMessage()
    caplog.clear()
    # Still firing: no second warning.
    clock.now += 10
    with caplog.at_level(logging.INFO, logger="kailash_nb.monitoring"):
        assert by_name(monitor.evaluate())["workflow_failure_rate"].firing
    assert not caplog.records
    # A window later only the new, successful runs count.
    clock.now += 61
    finish_runs(gateway, completed=30, failed=0)
    clock.now += 10
    with caplog.at_level(logging.INFO, logger="kailash_nb.monitoring"):
        status = by_name(monitor.evaluate())["workflow_failure_rate"]
    assert status.value == 0.0 and not status.firing and status.since is None
    cleared = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(cleared) == 1 and "cleared" in cleared[0].getMessage()


def test_response_time_p95_in_milliseconds_ignores_probes(monitored_gateway):
    clock = Clock(1000.0)
    gateway = monitored_gateway(seed_monitor(clock=clock))
    metrics = gateway.metrics
    for _ in range(500):
        metrics.observe_request("GET", "/health", 200, 5.0)  # probes do not count
    for _ in range(95):
        metrics.observe_request("POST", EXECUTE, 200, 0.02)
    clock.now += 15
    status = by_name(gateway.monitor.evaluate())["response_time_p95"]
    assert status.value is not None and 10 <= status.value <= 25 and not status.firing
    for _ in range(10):
        metrics.observe_request("POST", EXECUTE, 200, 2.8)
    clock.now += 15
    status = by_name(gateway.monitor.evaluate())["response_time_p95"]
    assert 2500 <= status.value <= 3000 and status.firing


def test_memory_usage_is_rss_over_the_limit():
    rss = process_rss_bytes()
    assert rss > 1 << 20
    limit = memory_limit_bytes()
    assert limit is not None and limit >= rss
    assert 0 < memory_usage() < 1
    tight = ProductionMonitor(
        alert_rules=[SEED_RULES[2]], memory_limit_bytes=int(rss * 1.05), clock=Clock(1000.0)
    )
    status = tight.evaluate()[0]
    assert status.value > 0.8 and status.firing
    roomy = ProductionMonitor(alert_rules=[SEED_RULES[2]], memory_limit_bytes=rss * 100)
    assert not roomy.evaluate()[0].firing


# -- over HTTP -------------------------------------------------------------------------------


def fail(x: int) -> int:
    """Always fails."""
    raise ValueError(f"cannot take {x}")


def ok(x: int) -> int:
    """Returns x."""
    return x


def two_nodes(function):
    # A failing node with a dependent fails the run (a lone node's error is a result).
    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(function), "step")
    builder.add_node(PythonCodeNode.from_function(ok), "after")
    builder.add_connection("step", "result", "after", "x")
    return builder.build()


def test_alerts_reach_metrics_and_health_of_a_served_gateway(monitored_gateway, serve_gateway):
    gateway = monitored_gateway(seed_monitor())
    gateway.register_workflow("ok", two_nodes(ok))
    gateway.register_workflow("fail", two_nodes(fail))
    server = serve_gateway(gateway)
    health = server.client.get("/health").json()
    assert health["status"] == "ok" and len(health["alerts"]) == 3
    assert server.client.post(
        "/workflows/ok/execute", json={"parameters": {"step": {"x": 1}}}
    ).is_success
    response = server.client.post(
        "/workflows/fail/execute", json={"parameters": {"step": {"x": 1}}}
    )
    assert response.status_code == 422
    gateway.monitor.evaluate()
    health = server.client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "degraded"
    failure = next(a for a in body["alerts"] if a["metric"] == "workflow_failure_rate")
    assert failure["firing"] and failure["value"] == pytest.approx(0.5)
    exposition = server.client.get("/metrics").text
    assert (
        'kailash_nb_alert_firing{alert="workflow_failure_rate",metric="workflow_failure_rate"} 1.0'
        in exposition
    )
    assert 'kailash_nb_alert_firing{alert="memory_usage",metric="memory_usage"} 0.0' in exposition
    assert 'kailash_nb_monitor_value{metric="workflow_failure_rate"} 0.5' in exposition
    assert (
        'kailash_nb_alert_threshold{alert="response_time_p95",metric="response_time_p95"} 2000.0'
        in (exposition)
    )


def test_health_checks_and_metrics_can_be_turned_off(monitored_gateway, serve_gateway):
    monitor = seed_monitor(health_checks=False, metrics_enabled=False)
    gateway = monitored_gateway(monitor)
    finish_runs(gateway, completed=0, failed=3)
    assert by_name(monitor.evaluate())["workflow_failure_rate"].firing
    server = serve_gateway(gateway)
    assert server.client.get("/health").json() == {"status": "ok"}
    assert "kailash_nb_alert_firing" not in server.client.get("/metrics").text


def test_rules_are_evaluated_periodically_while_serving(monitored_gateway):
    gateway = monitored_gateway(seed_monitor(evaluation_interval=0.05))
    with ServedGateway(gateway) as server:
        first = server.client.get("/health").json()["evaluated_at"]
        deadline = time.monotonic() + 10
        while server.client.get("/health").json()["evaluated_at"] == first:
            assert time.monotonic() < deadline, "no periodic evaluation within 10 s"
            time.sleep(0.02)
    assert gateway.monitor._task is None


# -- event alerts ------------------------------------------------------------------------


def test_event_alerts_are_counted_kept_and_named_in_health(monitored_gateway):
    monitor = seed_monitor(keep_recent_alerts=3)
    monitor.record_alert("refund_refused", "order A-1: the refund was refused")
    gateway = monitored_gateway(monitor)  # alerts recorded before attaching are counted too
    for index in range(4):
        monitor.record_alert("ledger_in_doubt", f"entry {index}")
    assert [alert.detail for alert in monitor.recent_alerts()] == ["entry 1", "entry 2", "entry 3"]
    assert monitor.alert_counts() == {"refund_refused": 1, "ledger_in_doubt": 4}
    health = monitor.health()
    assert [event["name"] for event in health["events"]] == ["ledger_in_doubt"] * 3
    assert all(set(event) == {"name", "at"} for event in health["events"])
    assert health["status"] == "ok"
    exposition = gateway.metrics.render()[0].decode()
    assert 'kailash_nb_event_alerts_total{alert="refund_refused"} 1.0' in exposition
    assert 'kailash_nb_event_alerts_total{alert="ledger_in_doubt"} 4.0' in exposition


def test_event_alerts_reach_health_of_a_served_gateway(monitored_gateway, serve_gateway):
    monitor = seed_monitor()
    server = serve_gateway(monitored_gateway(monitor))
    assert server.client.get("/health").json()["events"] == []
    record_alert("refund_refused", "order A-1")
    (event,) = server.client.get("/health").json()["events"]
    assert event["name"] == "refund_refused" and event["at"] == monitor.recent_alerts()[0].at
    assert 'kailash_nb_event_alerts_total{alert="refund_refused"} 1.0' in (
        server.client.get("/metrics").text
    )


def test_record_alert_reaches_every_live_monitor_and_holds_none_alive():
    first, second = seed_monitor(), seed_monitor()
    assert record_alert("refund_refused", "order A-1") >= 2
    assert [alert.name for alert in first.recent_alerts()] == ["refund_refused"]
    assert [alert.name for alert in second.recent_alerts()] == ["refund_refused"]
    dropped = weakref.ref(second)
    del second
    gc.collect()
    assert dropped() is None  # the registry does not keep a monitor alive
    record_alert("refund_refused", "order A-2")
    assert [alert.detail for alert in first.recent_alerts()] == ["order A-1", "order A-2"]


def test_event_alerts_without_metrics_still_reach_health(monitored_gateway):
    monitor = seed_monitor(metrics_enabled=False)
    gateway = monitored_gateway(monitor)
    monitor.record_alert("refund_refused", "order A-1")
    assert [event["name"] for event in monitor.health()["events"]] == ["refund_refused"]
    assert "kailash_nb_event_alerts" not in gateway.metrics.render()[0].decode()


@pytest.mark.parametrize(
    ("name", "detail", "error"),
    [
        ("Refund Refused", "x", ValueError),
        ("", "x", ValueError),
        ("a" * 65, "x", ValueError),
        ("refund_refused\n", "x", ValueError),
        (None, "x", ValueError),
        ("refund_refused", {"order": "A-1"}, TypeError),
    ],
)
def test_malformed_event_alerts_are_refused(name, detail, error):
    monitor = seed_monitor()
    with pytest.raises(error):
        monitor.record_alert(name, detail)
    with pytest.raises(error):
        record_alert(name, detail)
    assert monitor.recent_alerts() == ()


def test_event_alert_names_and_details_are_bounded():
    alerts = EventAlerts(keep=2)
    for index in range(MAX_ALERT_NAMES + 5):
        alerts.record(f"alert_{index}", "d" * (MAX_DETAIL_CHARS + 10))
    counts = alerts.counts()
    assert len(counts) == MAX_ALERT_NAMES + 1 and counts[OTHER_ALERTS] == 5
    assert [len(alert.detail) for alert in alerts.recent()] == [MAX_DETAIL_CHARS] * 2
    with pytest.raises(ValueError, match="keep_recent_alerts"):
        ProductionMonitor(keep_recent_alerts=0)


# -- windows ------------------------------------------------------------------------------------


def test_counter_window_subtracts_the_reading_a_window_ago():
    window = CounterWindow(60)
    assert window.advance(0, (0.0,)) == (0.0,)
    assert window.advance(30, (5.0,)) == (5.0,)
    assert window.advance(60, (8.0,)) == (8.0,)
    assert window.advance(90, (10.0,)) == (5.0,)  # baseline: the reading at 30
    assert window.advance(90.5, (11.0,)) == (6.0,)  # too close to keep, still answered
    # The 90.5 reading was not kept: a window later the baseline is the one at 90.
    assert window.advance(1000, (11.0,)) == (1.0,)
    assert window.advance(1061, (11.0,)) == (0.0,)


def test_bucket_quantile_interpolates_like_prometheus():
    inf = math.inf
    assert bucket_quantile(0.95, [1.0, 2.0, inf], [0, 0, 0]) is None
    assert bucket_quantile(0.5, [1.0, 2.0, inf], [0, 10, 10]) == pytest.approx(1.5)
    assert bucket_quantile(0.95, [1.0, 2.0, inf], [10, 10, 20]) == 2.0  # in +Inf bucket
