"""Timing helper shared by the benchmark scripts (run as ``python benchmarks/<script>.py``,
so this directory is on ``sys.path``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_time(action: Callable[[], Any], runs: int = 5) -> float:
    """Median wall seconds of ``action`` over ``runs`` runs after one warm-up."""
    action()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)
