"""Who owns which run, and what a finished run returned.

The gateway keeps, for the runs this process started, ``run_id -> RunEntry`` in a
bounded LRU map, and hands a copy of each entry to its one sink, given at
construction, when the run starts and when it ends. The gateway's sink counts the run
and passes the note to the run recorder, which writes the owner, status, results and
error to the store in its next batch (at most ``RunRecorder.interval``, 0.1 s, later):
other worker processes, and this one after a restart or once the entry is evicted,
read the run from there.

One ownership rule (:func:`may_read`) decides who sees a run, for ``GET /runs/{id}``
and ``GET /runs/{id}/events`` alike; anything else is a 404 with no existence oracle.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kailash_nb.middleware.identity import Identity
from kailash_nb.store.run_history import GatewayRunNote

__all__ = ["RunEntry", "RunIndex", "RunNoteSink", "may_read"]

#: Receives a :class:`GatewayRunNote` when a run starts and when it ends; must not block.
RunNoteSink = Callable[[GatewayRunNote], None]


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
    #: The node the access policy refused (the run failed there), for the answer.
    denied_node: str | None = None

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
        sink: receives a note of each run when it starts and when it ends (the
            gateway's recorder); must not block.
        capacity: runs remembered in memory; older ones are read from the store.
    """

    def __init__(self, sink: RunNoteSink, capacity: int = 2048) -> None:
        self.capacity = capacity
        self._sink = sink
        self._entries: OrderedDict[str, RunEntry] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, entry: RunEntry) -> None:
        """Remember ``entry``, evicting the oldest beyond ``capacity``."""
        with self._lock:
            self._entries[entry.run_id] = entry
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        self._sink(entry.note())

    def get(self, run_id: str, tenant_id: str) -> RunEntry | None:
        """The run if this process holds it and it belongs to ``tenant_id``; else ``None``."""
        with self._lock:
            entry = self._entries.get(run_id)
        if entry is None or entry.tenant_id != tenant_id:
            return None
        return entry

    def run_finished(self, entry: RunEntry) -> None:
        """Pass the finished ``entry`` to the sink; the executor calls it once per
        started run, after setting its status, results or error and ``finished_at``."""
        self._sink(entry.note())
