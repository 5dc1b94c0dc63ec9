"""Sliding windows over cumulative counters, and quantiles of histogram buckets.

The gateway already counts every request and run in Prometheus metrics; a monitor
reads those counters when it evaluates and keeps a few timestamped readings, so the
value over the last ``seconds`` is the newest reading minus the one taken a window
ago. Nothing is done per request::

    window = CounterWindow(300)
    window.advance(now, (finished, failed))  # -> increase over the last 300 s
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence

__all__ = ["CounterWindow", "bucket_quantile"]

# Readings closer together than this are not kept (on-demand evaluations).
_MIN_SPACING_SECONDS = 1.0


class CounterWindow:
    """Increase of a tuple of cumulative counters over the last ``seconds``.

    The baseline is the newest reading at least ``seconds`` old (the oldest one while
    the window is still filling), so the span covered is ``seconds`` rounded up to the
    evaluation interval. At most about ``seconds`` readings are kept.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._readings: collections.deque[tuple[float, tuple[float, ...]]] = collections.deque()

    def advance(self, now: float, reading: tuple[float, ...]) -> tuple[float, ...]:
        """Record ``reading`` taken at ``now`` (monotonic seconds); return the increase
        since the window's baseline."""
        readings = self._readings
        if not readings or now - readings[-1][0] >= _MIN_SPACING_SECONDS:
            readings.append((now, reading))
        while len(readings) > 1 and readings[1][0] <= now - self.seconds:
            readings.popleft()
        baseline = readings[0][1]
        if len(baseline) != len(reading):
            return reading
        return tuple(max(0.0, new - old) for new, old in zip(reading, baseline, strict=True))


def bucket_quantile(q: float, bounds: Sequence[float], cumulative: Sequence[float]) -> float | None:
    """The ``q`` quantile of observations counted in histogram buckets.

    ``bounds`` are the buckets' upper bounds in increasing order, the last being
    ``inf``; ``cumulative`` the count of observations at or below each. Interpolates
    linearly inside the bucket holding the quantile, like Prometheus's
    ``histogram_quantile``; a quantile in the ``+Inf`` bucket is the largest finite
    bound. ``None`` when nothing was observed.
    """
    total = cumulative[-1] if cumulative else 0
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in zip(bounds, cumulative, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound
