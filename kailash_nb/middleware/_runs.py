"""Who owns which run, and what a finished run returned.

The gateway keeps, for the runs this process started, ``run_id -> RunEntry`` in a
bounded LRU map, and hands a copy of each entry to ``on_change`` when the run starts
and when it ends. The gateway points ``on_change`` at the run recorder, which writes
the owner, status, results and error to the store in its next batch (at most
``RunRecorder.interval``, 0.1 s, later): other worker processes, and this one after a
restart or once the entry is evicted, read the run from there.

One ownership rule (:func:`may_read`) decides who sees a run, for ``GET /runs/{id}``
and ``GET /runs/{id}/events`` alike; anything else is a 404 with no existence oracle.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kailash_nb.store.run_history import GatewayRunNote

if TYPE_CHECKING:
    from kailash_nb.middleware.handlers.base import Identity

__all__ = ["RunEntry", "RunIndex", "may_read"]


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

    def note(self) -> GatewayRunNote:
        """An immutable copy of the entry as it is now, for the store."""
        return GatewayRunNote(
            self.run_id,
            self.tenant_id,
            self.subject,
            self.workflow,
            self.status,
            self.results,
            self.error,
            self.created_at,
            self.finished_at,
        )


def may_read(identity: Identity, tenant_id: str, subject: str) -> bool:
    """Whether ``identity`` may read a run owned by ``(tenant_id, subject)``.

    The same tenant and the same subject, or an ``admin`` of that tenant; a caller of
    another tenant never, admin or not.
    """
    if identity.tenant_id != tenant_id:
        return False
    return identity.subject == subject or identity.is_admin


class RunIndex:
    """Thread-safe bounded map of the gateway's runs (oldest evicted first).

    Args:
        capacity: runs remembered in memory; older ones are read from the store.

    Attributes:
        on_change: called with a :class:`GatewayRunNote` when a run starts and when it
            ends (set by the gateway to its recorder); must not block.
    """

    def __init__(self, capacity: int = 2048) -> None:
        self.capacity = capacity
        self.on_change: Callable[[GatewayRunNote], None] | None = None
        self._entries: OrderedDict[str, RunEntry] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, entry: RunEntry) -> None:
        """Remember ``entry``, evicting the oldest beyond ``capacity``."""
        with self._lock:
            self._entries[entry.run_id] = entry
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        if self.on_change is not None:
            self.on_change(entry.note())

    def get(self, run_id: str, tenant_id: str) -> RunEntry | None:
        """The run if this process holds it and it belongs to ``tenant_id``; else ``None``."""
        with self._lock:
            entry = self._entries.get(run_id)
        if entry is None or entry.tenant_id != tenant_id:
            return None
        return entry

    def run_finished(self, entry: RunEntry) -> None:
        """Pass the finished ``entry`` to ``on_change``; the executor calls it once per
        started run, after setting its status, results or error and ``finished_at``."""
        if self.on_change is not None:
            self.on_change(entry.note())
