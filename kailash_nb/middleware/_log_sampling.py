"""Warnings that a flood must not multiply (GW-29).

A refusal the gateway logs at WARNING (a connection over the per-IP cap, ...) can be
triggered by an attacker as often as they like; one line per refusal would let them fill
the disk and drown real alerts. ``SampledWarning`` writes the first occurrence of each
kind at once, then at most one line per ``interval`` seconds carrying how many were
folded into it::

    refusals = SampledWarning(logger, interval=60)
    refusals.warn("per_ip_cap", "refused a connection from %s: %d open", peer, count)
    # -> "refused a connection from 10.0.0.9: 256 open (+4711 similar in the last 60 s)"

Per-request access records are INFO and stay one per request (GW-14); only warnings are
sampled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["SampledWarning"]


class SampledWarning:
    """At most one WARNING per ``interval`` seconds for each ``kind``.

    Args:
        logger: where the lines go.
        interval: seconds between two lines of the same kind.
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        self.logger = logger
        self.interval = float(interval)
        self._clock = clock
        self._lock = threading.Lock()
        # kind -> (time of the last line, occurrences folded since)
        self._state: dict[str, tuple[float, int]] = {}

    def warn(self, kind: str, message: str, *args: object) -> bool:
        """Log ``message % args`` unless a line of ``kind`` was written less than
        ``interval`` seconds ago (then only count it); return whether it was written.

        ``kind`` must come from a small fixed set chosen by the caller, never from
        request data, so the bookkeeping stays bounded.
        """
        now = self._clock()
        with self._lock:
            last, folded = self._state.get(kind, (None, 0))
            if last is not None and now - last < self.interval:
                self._state[kind] = (last, folded + 1)
                return False
            self._state[kind] = (now, 0)
        if folded:
            message += " (+%d similar in the last %.0f s)"
            args = (*args, folded, now - last if last is not None else 0.0)
        self.logger.warning(message, *args)
        return True
