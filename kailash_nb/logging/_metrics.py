"""The process figures a record carries with ``include_metrics``.

Resident set size is read from ``/proc/self/statm`` (resident pages times the page
size) where Linux provides it; elsewhere the peak RSS from ``resource.getrusage`` is
reported as ``max_rss_bytes`` only.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["process_metrics"]

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


def _max_rss_bytes() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak if sys.platform == "darwin" else peak * 1024


def process_metrics(counts: dict[str, int]) -> dict[str, Any]:
    """``rss_bytes`` (``None`` where unknown), ``max_rss_bytes``, ``pid`` and this
    logger's record ``counts`` by level."""
    return {
        "rss_bytes": _rss_bytes(),
        "max_rss_bytes": _max_rss_bytes(),
        "pid": os.getpid(),
        "records": dict(counts),
    }
