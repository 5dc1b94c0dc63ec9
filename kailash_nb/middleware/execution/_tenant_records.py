"""Run history per tenant database (``create_gateway(database_per_tenant=True)``).

Engine run events carry no tenant, so the router learns each run's tenant from the
gateway's first note about it (the run index's sink gets it before the run's
``started`` event is published) and forwards the run's events to a bus private to that
tenant, where the tenant's ``RunRecorder`` listens. Gateway run notes go to the same
recorder. Each open tenant database thus has one recorder (and its writer thread),
closed with the database when it leaves the LRU of open tenant databases.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from kailash_nb.runtime.events import EventBus, RunEvent
from kailash_nb.runtime.recorder import SERVER_BATCH_SIZE, RunRecorder
from kailash_nb.store.run_history import GatewayRunNote, RunStore

if TYPE_CHECKING:
    from kailash_nb.store.tenant_databases import TenantDatabases

__all__ = ["TenantRunRouter"]

logger = logging.getLogger(__name__)

# Runs in flight whose tenant is remembered; far above any real concurrency.
_MAX_IN_FLIGHT = 100_000


class TenantRunRouter:
    """Sends each run's events and notes to its tenant's recorder.

    Args:
        databases: the gateway's tenant databases.
        bus: the gateway's event bus (subscribed to run events with timelines).
    """

    def __init__(self, databases: TenantDatabases, bus: EventBus) -> None:
        self.databases = databases
        self._tenant_of: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._subscription = bus.subscribe(self._route, nodes=False, runs=True, timeline=True)

    def recorder(self, tenant_id: str) -> RunRecorder:
        """The recorder writing ``tenant_id``'s runs into its database (opened on first
        use; blocking)."""
        database = self.databases.get(tenant_id)
        events = database.resource("run_events", lambda _engine: EventBus())
        return database.resource(
            "run_records",
            lambda engine: RunRecorder(
                RunStore(engine=engine), events, batch_size=SERVER_BATCH_SIZE
            ),
            close=_close_recorder,
        )

    def note(self, note: GatewayRunNote) -> None:
        """Remember a starting run's tenant and record the note in its database."""
        if note.finished_at is None:
            with self._lock:
                self._tenant_of[note.run_id] = note.tenant_id
                if len(self._tenant_of) > _MAX_IN_FLIGHT:
                    self._tenant_of.popitem(last=False)
        self.recorder(note.tenant_id).record_gateway_run(note)

    def close(self) -> None:
        """Stop routing (the recorders close with their tenant databases)."""
        self._subscription.close()

    def _route(self, event: RunEvent) -> None:
        with self._lock:
            if event.state == "started":
                tenant_id = self._tenant_of.get(event.run_id)
            else:
                tenant_id = self._tenant_of.pop(event.run_id, None)
        if tenant_id is None:
            logger.debug("run %s has no known tenant; its events are not recorded", event.run_id)
            return
        database = self.databases.get(tenant_id)
        self.recorder(tenant_id)  # make sure the tenant's recorder listens
        database.resource("run_events", lambda _engine: EventBus()).emit(event)


def _close_recorder(recorder: RunRecorder) -> None:
    recorder.close()
