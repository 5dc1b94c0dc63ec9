"""``GET /runs/{run_id}``: a run started through this gateway, for its own tenant only."""

from __future__ import annotations

import asyncio
from typing import Any

from kailash_nb.middleware._problems import ProblemError
from kailash_nb.middleware.handlers.base import GatewayHandler

__all__ = ["RunHandler"]


class RunHandler(GatewayHandler):
    """Status, results and (once recorded) the node timeline of one run.

    A run of another tenant, an unknown id and a malformed id all answer the same 404.
    """

    route = "/runs/{run_id}"

    async def get(self, run_id: str) -> None:
        """Look the run up in the gateway's index, then its timeline in the store."""
        entry = self.gateway.runs.index.get(run_id, self.identity.tenant_id)
        if entry is None:
            raise ProblemError(404, "run_not_found", "no run with that id")
        payload: dict[str, Any] = {
            "run_id": entry.run_id,
            "workflow": entry.workflow,
            "status": entry.status,
            "created_at": entry.created_at,
            "finished_at": entry.finished_at,
        }
        if entry.status == "completed":
            payload["results"] = entry.results
        if entry.error is not None:
            payload["error"] = entry.error
        record = await asyncio.get_running_loop().run_in_executor(None, self._stored, run_id)
        if record is not None:
            payload["duration"] = record.duration
            payload["nodes"] = [
                {
                    "node_id": node.node_id,
                    "state": node.state,
                    "duration": node.duration,
                    "error": node.error,
                }
                for node in record.nodes
            ]
        self.write_json(payload)

    def _stored(self, run_id: str) -> Any:
        from kailash_nb.store.runs import RunNotFoundError, RunRecordCorruptError

        store = self.gateway.run_store
        if store is None:
            return None
        try:
            return store.get_run(run_id)
        except (RunNotFoundError, RunRecordCorruptError):
            return None
