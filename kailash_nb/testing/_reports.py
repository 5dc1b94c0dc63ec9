"""Every result ``test_workflow`` returns, handed to whoever listens (the pytest
plugin's ``--kailash-perf-report``), whichever ``WorkflowTester`` produced it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["listen", "publish"]

logger = logging.getLogger(__name__)

_listeners: tuple[Callable[[Any], object], ...] = ()
_lock = threading.Lock()


def listen(listener: Callable[[Any], object]) -> Callable[[], None]:
    """Call ``listener(result)`` for every result from now on; returns the function
    that stops it."""
    global _listeners
    with _lock:
        _listeners = (*_listeners, listener)

    def stop() -> None:
        global _listeners
        with _lock:
            _listeners = tuple(known for known in _listeners if known is not listener)

    return stop


def publish(result: Any) -> None:
    """Hand ``result`` to every listener; one that fails is logged, never raised into
    the test."""
    for listener in _listeners:
        try:
            listener(result)
        except Exception:
            logger.exception("workflow test result listener %r failed", listener)
