"""``GET /runs/{run_id}``: a run started through the gateway, for its owner only.

A run is answered from this process's run index while it holds it, else from the
store, where the run recorder writes every gateway run (owner, status, results, error)
at most 0.1 s after it starts or ends: a run started on one worker process is readable
from the others, and after a restart. Results whose JSON is above 256 KiB are stored
only as their size (``"results_truncated": true``, ``"results_size"``).

Who may read a run: :func:`kailash_nb.middleware.execution.may_read` (the same tenant and
subject, or an admin of the tenant). Anything else, an unknown id and a malformed id
all answer the same 404.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kailash_nb.middleware._problems import ProblemError
from kailash_nb.middleware._run_errors import ENDED, ErrorView
from kailash_nb.middleware.contract import operations
from kailash_nb.middleware.execution import may_read
from kailash_nb.middleware.handlers.base import GatewayHandler
from kailash_nb.middleware.identity import Identity
from kailash_nb.store.run_history import RunNotFoundError, RunRecordCorruptError

__all__ = ["RunHandler", "find_run", "stored_gateway_run"]

logger = logging.getLogger(__name__)


class RunHandler(GatewayHandler):
    """Status, results and (once recorded) the node timeline of one run."""

    route = "/runs/{run_id}"
    contract = operations.serving(GET=operations.GET_RUN)

    async def get(self, run_id: str) -> None:
        """Look the run up in the gateway's index, else in the store."""
        identity = self.identity
        entry, stored = await find_run(self.gateway, identity, run_id)
        if entry is None:
            self.write_json(_stored_payload(stored, self.gateway.error_view(stored.workflow_name)))
            return
        loop = asyncio.get_running_loop()
        view = self.gateway.error_view(entry.workflow)
        payload: dict[str, Any] = {
            "run_id": entry.run_id,
            "workflow": entry.workflow,
            "status": entry.status,
            "created_at": entry.created_at,
            "finished_at": entry.finished_at,
        }
        if entry.results is not None:
            payload["results"] = view.results(entry.results)
        if entry.error is not None:
            payload["error"] = view.error(entry.error)
        record = await loop.run_in_executor(None, self._history, identity.tenant_id, run_id)
        if record is not None:
            payload["duration"] = record.duration
            payload["nodes"] = _nodes(record.nodes, view)
        self.write_json(payload)

    def _history(self, tenant_id: str, run_id: str) -> Any:
        records = self.gateway.run_records_for(tenant_id)
        if records is None:
            return None
        try:
            return records.store.get_run(run_id)
        except (RunNotFoundError, RunRecordCorruptError):
            return None


async def find_run(gateway: Any, identity: Identity, run_id: str) -> tuple[Any, Any]:
    """``(entry, None)`` when this process holds a run ``identity`` may read (its
    ``RunEntry``), else ``(None, record)`` with its stored ``GatewayRunRecord``.

    Raises:
        ProblemError: 404 ``run_not_found`` for an unknown run and for one the caller
            may not read alike (no existence oracle).
    """
    entry = gateway.runs.index.get(run_id, identity.tenant_id)
    if entry is not None:
        if not may_read(identity, entry.tenant_id, entry.subject):
            raise _not_found()
        return entry, None
    loop = asyncio.get_running_loop()
    stored = await loop.run_in_executor(
        None, stored_gateway_run, gateway, identity.tenant_id, run_id
    )
    if stored is None or not may_read(identity, stored.tenant_id, stored.subject):
        raise _not_found()
    return None, stored


def stored_gateway_run(gateway: Any, tenant_id: str, run_id: str) -> Any:
    """The stored ``GatewayRunRecord`` of ``run_id`` in ``tenant_id``'s run records, or
    ``None`` (not stored, no store yet, or a damaged row, which is logged).

    Blocking: call it in a worker thread. The caller still checks ownership.
    """
    records = gateway.run_records_for(tenant_id)
    if records is None:
        return None
    try:
        return records.store.get_gateway_run(run_id)
    except RunRecordCorruptError as exc:
        logger.warning("%s", exc)
        return None


def _stored_payload(stored: Any, view: ErrorView) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "run_id": stored.run_id,
        "workflow": stored.workflow_name,
        "status": stored.status,
        "created_at": stored.created_at,
        "finished_at": stored.finished_at,
    }
    if stored.results is not None or stored.results_truncated:
        payload["results"] = view.results(stored.results)
        if stored.results_truncated:
            payload["results_truncated"] = True
            payload["results_size"] = stored.results_size
    if stored.error is not None:
        payload["error"] = view.error(stored.error)
    elif stored.status == "interrupted":
        payload["error"] = {"message": ENDED["interrupted"], "node_id": None, "failed_nodes": []}
    if stored.duration is not None:
        payload["duration"] = stored.duration
    if stored.nodes:
        payload["nodes"] = _nodes(stored.nodes, view)
    return payload


def _nodes(nodes: Any, view: ErrorView) -> list[dict[str, Any]]:
    return [
        {
            "node_id": node.node_id,
            "state": node.state,
            "duration": node.duration,
            "error": view.error_text(node.error),
        }
        for node in nodes
    ]


def _not_found() -> ProblemError:
    return ProblemError(404, "run_not_found", "no run with that id")
