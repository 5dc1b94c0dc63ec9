"""Event alerts: one-off alerts that code raises when something went wrong for good (a
saga whose compensation failed), next to the rule alerts evaluated over metrics.

Code anywhere in the process calls :func:`record_alert`; every live
:class:`~kailash_nb.monitoring.ProductionMonitor` records it. A monitor registers
itself when it is created and is held weakly, so one nobody references any more stops
receiving alerts; a monitor attached to a gateway lives as long as the gateway. Each
monitor counts its alerts per name (``kailash_nb_event_alerts_total{alert}`` on the
gateway's ``/metrics``) and keeps the most recent ones::

    from kailash_nb.monitoring import record_alert

    record_alert("transaction_compensation_failed", "transaction 5f0c...: refund refused")
    monitor.recent_alerts()[-1].name  # "transaction_compensation_failed"

:func:`record_alert` does not log: the caller logs the alert with its context.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from kailash_nb.monitoring.exposition import EventAlertCounter

__all__ = [
    "MAX_ALERT_NAMES",
    "MAX_DETAIL_CHARS",
    "OTHER_ALERTS",
    "AlertRecorder",
    "EventAlert",
    "EventAlerts",
    "check_alert_name",
    "record_alert",
    "register_monitor",
]

#: Distinct alert names a monitor counts; later new names are counted as OTHER_ALERTS.
MAX_ALERT_NAMES = 100
#: The label further names are counted under once MAX_ALERT_NAMES names are counted.
OTHER_ALERTS = "other"
#: A longer detail is cut to this many characters.
MAX_DETAIL_CHARS = 2000

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


class AlertRecorder(Protocol):
    """Something that records event alerts (a ``ProductionMonitor``)."""

    def record_alert(self, name: str, detail: str) -> None:
        """Record the alert ``name`` with its ``detail``."""


@dataclass(frozen=True)
class EventAlert:
    """One recorded event alert.

    Attributes:
        name: what happened, e.g. ``transaction_compensation_failed``.
        detail: the caller's description (at most :data:`MAX_DETAIL_CHARS`).
        at: wall-clock time it was recorded (seconds since the epoch).
    """

    name: str
    detail: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        """The alert as JSON-ready values."""
        return {"name": self.name, "detail": self.detail, "at": self.at}


def check_alert_name(name: object) -> str:
    """``name`` if it can name an alert (a Prometheus label value kept small).

    Raises:
        ValueError: not ``[a-z][a-z0-9_]*`` of at most 64 characters.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"alert name {name!r:.80} must be lower-case letters, digits and _ (starting "
            "with a letter, at most 64 characters), e.g. 'transaction_compensation_failed'"
        )
    return name


def _check_alert(name: object, detail: object) -> None:
    """Raise ``ValueError`` for a bad name, ``TypeError`` for a detail not a string."""
    check_alert_name(name)
    if not isinstance(detail, str):
        raise TypeError(f"detail must be a string, got {type(detail).__name__}")


class EventAlerts:
    """The event alerts of one monitor: a count per name and the ``keep`` most recent.

    Thread-safe: alerts arrive from whatever thread raised them.
    """

    def __init__(self, keep: int = 20) -> None:
        self._recent: deque[EventAlert] = deque(maxlen=keep)
        self._counts: dict[str, int] = {}
        self._counter: EventAlertCounter | None = None
        self._lock = threading.Lock()

    def record(self, name: str, detail: str) -> EventAlert:
        """Count and keep the alert ``name``; return it.

        Raises:
            ValueError: a name :func:`check_alert_name` refuses.
            TypeError: ``detail`` is not a string.
        """
        _check_alert(name, detail)
        alert = EventAlert(name, detail[:MAX_DETAIL_CHARS], time.time())
        with self._lock:
            label = name
            if name not in self._counts and len(self._counts) >= MAX_ALERT_NAMES:
                label = OTHER_ALERTS
            self._counts[label] = self._counts.get(label, 0) + 1
            self._recent.append(alert)
            if self._counter is not None:
                self._counter.increment(label)
        return alert

    def publish_to(self, counter: EventAlertCounter) -> None:
        """Count the alerts in ``counter`` from now on (and those recorded so far)."""
        with self._lock:
            counter.add(self._counts)
            self._counter = counter

    def recent(self) -> tuple[EventAlert, ...]:
        """The most recent alerts, oldest first."""
        with self._lock:
            return tuple(self._recent)

    def counts(self) -> dict[str, int]:
        """How many alerts were recorded, per name."""
        with self._lock:
            return dict(self._counts)


_monitors: weakref.WeakSet[Any] = weakref.WeakSet()
_monitors_lock = threading.Lock()


def register_monitor(monitor: AlertRecorder) -> None:
    """Have :func:`record_alert` reach ``monitor`` while it lives (held weakly;
    ``ProductionMonitor`` registers itself when created)."""
    with _monitors_lock:
        _monitors.add(monitor)


def record_alert(name: str, detail: str) -> int:
    """Record the event alert ``name`` on every live monitor of the process; return how
    many recorded it (0: no monitor, so only the caller's log has it).

    Raises:
        ValueError: a name :func:`check_alert_name` refuses.
        TypeError: ``detail`` is not a string.
    """
    _check_alert(name, detail)
    with _monitors_lock:
        monitors = list(_monitors)
    for monitor in monitors:
        monitor.record_alert(name, detail)
    return len(monitors)
