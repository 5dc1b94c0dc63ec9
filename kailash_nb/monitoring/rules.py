"""Alert rules: which metric, above which threshold, checked when they are declared.

A rule is a mapping ``{"metric": ..., "threshold": ...}`` (plus an optional ``"name"``,
which defaults to the metric); it fires while the metric's value is above the
threshold::

    rules = parse_rules([{"metric": "response_time_p95", "threshold": 2000}])
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_ALERT_RULES", "METRICS", "AlertRule", "parse_rules"]

#: Metric name -> (unit, smallest allowed threshold, largest allowed threshold).
METRICS: dict[str, tuple[str, float, float]] = {
    "workflow_failure_rate": ("fraction of finished runs that failed", 0.0, 1.0),
    "response_time_p95": ("milliseconds", 0.0, math.inf),
    "memory_usage": ("fraction of the memory limit", 0.0, 1.0),
}

#: The rules of a monitor created without ``alert_rules`` (``monitoring=True``).
DEFAULT_ALERT_RULES: tuple[dict[str, object], ...] = (
    {"metric": "workflow_failure_rate", "threshold": 0.05},
    {"metric": "response_time_p95", "threshold": 2000},
    {"metric": "memory_usage", "threshold": 0.8},
)

_KEYS = frozenset({"metric", "threshold", "name"})
_MAX_NAME_CHARS = 64


@dataclass(frozen=True)
class AlertRule:
    """Fire while ``metric`` is above ``threshold``."""

    name: str
    metric: str
    threshold: float


def parse_rules(rules: Iterable[Mapping[str, object]]) -> tuple[AlertRule, ...]:
    """Validate ``rules`` and return them as :class:`AlertRule` objects.

    Raises:
        ValueError: naming the rule's index, for a rule that is not a mapping, has an
            unknown key, an unknown metric, a threshold that is not a finite number in
            the metric's range, or a name used twice.
    """
    if isinstance(rules, (str, bytes, Mapping)):
        raise ValueError("alert_rules must be a list of {'metric': ..., 'threshold': ...} dicts")
    parsed: list[AlertRule] = []
    for index, rule in enumerate(rules):
        parsed.append(_parse_rule(index, rule))
        names = [existing.name for existing in parsed]
        if names.count(parsed[-1].name) > 1:
            raise ValueError(
                f"alert_rules[{index}]: name {parsed[-1].name!r} is already used; give each "
                "rule on the same metric its own 'name'"
            )
    return tuple(parsed)


def _parse_rule(index: int, rule: object) -> AlertRule:
    where = f"alert_rules[{index}]"
    if not isinstance(rule, Mapping):
        raise ValueError(f"{where} must be a dict with 'metric' and 'threshold'")
    unknown = sorted(str(key) for key in set(rule) - _KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_KEYS)}")
    metric = rule.get("metric")
    if metric not in METRICS:
        raise ValueError(f"{where}: unknown metric {metric!r:.80}; known: {sorted(METRICS)}")
    unit, low, high = METRICS[metric]
    threshold = rule.get("threshold")
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not math.isfinite(threshold)
        or not low < threshold <= high
    ):
        span = f"above {low:g}" + ("" if math.isinf(high) else f" and at most {high:g}")
        raise ValueError(
            f"{where}: threshold for {metric} ({unit}) must be a number {span}, "
            f"got {threshold!r:.80}"
        )
    name = rule.get("name", metric)
    if not isinstance(name, str) or not 0 < len(name) <= _MAX_NAME_CHARS:
        raise ValueError(f"{where}: name must be a string of 1-{_MAX_NAME_CHARS} characters")
    return AlertRule(name=name, metric=str(metric), threshold=float(threshold))
