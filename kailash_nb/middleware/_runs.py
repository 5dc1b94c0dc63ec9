"""Who owns which run, and what a finished run returned.

The run store records status and timelines but not the tenant or the results, so the
gateway keeps, for the runs it started, ``run_id -> RunEntry`` in a bounded LRU map.
``GET /runs/{id}`` answers only runs found here for the caller's tenant (anything else
is 404, with no existence oracle).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunEntry", "RunIndex"]


@dataclass
class RunEntry:
    """One run started through the gateway."""

    run_id: str
    workflow: str
    tenant_id: str
    subject: str
    status: str = "running"
    results: Any = None
    error: dict[str, Any] | None = None
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None


class RunIndex:
    """Thread-safe bounded map of the gateway's runs (oldest evicted first).

    Args:
        capacity: runs remembered; older ones answer 404 from this gateway.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, RunEntry] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, entry: RunEntry) -> None:
        """Remember ``entry``, evicting the oldest beyond ``capacity``."""
        with self._lock:
            self._entries[entry.run_id] = entry
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def get(self, run_id: str, tenant_id: str) -> RunEntry | None:
        """The run if it exists and belongs to ``tenant_id``; else ``None``."""
        with self._lock:
            entry = self._entries.get(run_id)
        if entry is None or entry.tenant_id != tenant_id:
            return None
        return entry
