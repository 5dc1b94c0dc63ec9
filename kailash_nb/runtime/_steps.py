"""Steps a running node reports, turned into ``NodeStepEvent`` objects on the run's bus.

The engine installs a :class:`StepReporter` (``kailash_nb.nodes.steps.step_receiver``)
around each node execution only while someone subscribed to steps. A reporter makes
the node's details fit for any watcher: JSON-safe, size-capped (a cut says so in the
detail), scrubbed of the secrets of the node's config and the run's parameters
(WF-13), and shown as the run's guard allows (access control withholds the details of
a node the caller may not read). It never raises into the node, and drops what a node
reports once its execution is over (a thread the node left running).
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from collections.abc import Callable, Mapping
from typing import Any

from kailash_nb.nodes.steps import step_receiver
from kailash_nb.redaction import REDACTED, redact_value, secret_values
from kailash_nb.runtime.events import EventBus, NodeStepEvent
from kailash_nb.runtime.guard import NodeGuard

__all__ = [
    "MAX_DETAIL_DEPTH",
    "MAX_DETAIL_ITEMS",
    "MAX_DETAIL_STRING",
    "MAX_DETAIL_VALUES",
    "StepReporter",
    "json_safe_detail",
]

logger = logging.getLogger(__name__)

#: Characters kept of one string in a step's detail (a prompt, a tool result).
MAX_DETAIL_STRING = 2_000
#: Items kept of one list or dict.
MAX_DETAIL_ITEMS = 50
#: Levels of nesting kept below the detail itself.
MAX_DETAIL_DEPTH = 6
#: Values kept in one detail overall (what a wide and deep structure is cut to).
MAX_DETAIL_VALUES = 500
#: Characters kept of a step's name.
MAX_STEP_NAME = 100
# Secrets shorter than this are not searched for in text (as in ``scrub_secrets``).
_MIN_SCRUBBED = 4


class _Budget:
    """What a detail may still hold; ``cut`` is set once anything was left out."""

    __slots__ = ("cut", "values")

    def __init__(self) -> None:
        self.values = MAX_DETAIL_VALUES
        self.cut = False


def json_safe_detail(detail: Mapping[str, Any]) -> dict[str, Any]:
    """``detail`` made of JSON values only, within the caps above.

    Strings past ``MAX_DETAIL_STRING`` end with ``"… (N more characters)"``; lists and
    dicts past ``MAX_DETAIL_ITEMS`` end with a ``"… (N more items)"`` entry (a dict:
    under the key ``"…"``); what is nested deeper than ``MAX_DETAIL_DEPTH`` becomes
    ``"… (nested too deep)"``; numbers that are not ``int``/``float`` (NumPy's) become
    ``int``/``float``, infinities and NaN their ``repr``; other objects become their
    (capped) ``repr``. When
    anything was cut, the result has ``"_truncated": True``.
    """
    budget = _Budget()
    safe = _mapping(detail, 0, budget)
    if budget.cut:
        safe["_truncated"] = True
    return safe


def _value(value: Any, depth: int, budget: _Budget) -> Any:
    budget.values -= 1
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        return _string(value, budget)
    if isinstance(value, numbers.Integral):  # NumPy's integers too
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else repr(number)
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        if depth >= MAX_DETAIL_DEPTH:
            budget.cut = True
            return "… (nested too deep)"
        if isinstance(value, Mapping):
            return _mapping(value, depth + 1, budget)
        return _sequence(list(value), depth + 1, budget)
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return _string(text, budget)


def _string(text: str, budget: _Budget) -> str:
    if len(text) <= MAX_DETAIL_STRING:
        return text
    budget.cut = True
    return f"{text[:MAX_DETAIL_STRING]}… ({len(text) - MAX_DETAIL_STRING} more characters)"


def _mapping(value: Mapping[Any, Any], depth: int, budget: _Budget) -> dict[str, Any]:
    safe: dict[str, Any] = {}
    items = list(value.items())
    for index, (key, item) in enumerate(items):
        if index >= MAX_DETAIL_ITEMS or budget.values <= 0:
            budget.cut = True
            safe["…"] = f"{len(items) - index} more items"
            break
        safe[_string(key if isinstance(key, str) else repr(key), budget)] = _value(
            item, depth, budget
        )
    return safe


def _sequence(items: list[Any], depth: int, budget: _Budget) -> list[Any]:
    safe: list[Any] = []
    for index, item in enumerate(items):
        if index >= MAX_DETAIL_ITEMS or budget.values <= 0:
            budget.cut = True
            safe.append(f"… ({len(items) - index} more items)")
            break
        safe.append(_value(item, depth, budget))
    return safe


def _scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` with every string's ``secrets`` replaced by ``REDACTED``."""
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {key: _scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, secrets) for item in value]
    return value


class StepReporter:
    """The step receiver of one node execution: reports become ``NodeStepEvent``s.

    Used as a context manager around the execution: within it, ``report_step`` (in the
    node, its worker thread, the tasks and context-copying threads it starts) reaches
    this reporter; after it, the reporter drops what it receives::

        with StepReporter(bus, run_id, node_id, None, secret_sources):
            outputs = node.run_with(inputs)

    Args:
        bus: where the events go.
        run_id, node_id, iteration: what the events name.
        secret_sources: ``secret_sources(node_id)`` is called once, at the first report,
            for the values whose secrets are scrubbed from details (the node's config
            and the run's parameters).
        guard: the run's guard (``NodeGuard.step_detail``), ``None`` to show details
            whole.
    """

    __slots__ = (
        "_guard",
        "_installed",
        "_secret_sources",
        "_secrets",
        "bus",
        "iteration",
        "node_id",
        "open",
        "run_id",
    )

    def __init__(
        self,
        bus: EventBus,
        run_id: str,
        node_id: str,
        iteration: int | None,
        secret_sources: Callable[[str], tuple[Any, ...]],
        guard: NodeGuard | None = None,
    ) -> None:
        self.bus = bus
        self.run_id = run_id
        self.node_id = node_id
        self.iteration = iteration
        self._secret_sources = secret_sources
        self._guard = guard
        self._secrets: tuple[str, ...] | None = None
        self._installed = step_receiver(self)
        #: False once the node's execution is over: later reports are dropped.
        self.open = True

    def __enter__(self) -> StepReporter:
        self._installed.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.open = False
        self._installed.__exit__()

    def close(self) -> None:
        """The node's execution is over: drop whatever it reports from now on."""
        self.open = False

    def __call__(self, step: str, detail: dict[str, Any]) -> None:
        """Publish ``step`` with ``detail`` (made safe); never raises."""
        if not self.open:
            return
        try:
            event = self._event(step, detail)
        except Exception:
            logger.exception("step %r of node %r could not be reported", step, self.node_id)
            return
        if self.open:
            self.bus.emit(event)

    def _event(self, step: Any, detail: Mapping[str, Any]) -> NodeStepEvent:
        secrets = self._secrets
        if secrets is None:
            sources = self._secret_sources(self.node_id)
            found = set().union(*(secret_values(source) for source in sources))
            secrets = tuple(
                sorted((s for s in found if len(s) >= _MIN_SCRUBBED), key=len, reverse=True)
            )
            self._secrets = secrets
        name = step if isinstance(step, str) else repr(step)
        name = name[:MAX_STEP_NAME]
        safe = redact_value(None, json_safe_detail(detail))
        if secrets:
            safe = _scrub(safe, secrets)
            name = _scrub(name, secrets)
        if self._guard is not None:
            safe = self._guard.step_detail(self.node_id, safe)
        return NodeStepEvent(self.run_id, self.node_id, name, time.time(), safe, self.iteration)
