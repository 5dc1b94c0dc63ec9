"""Workflow routes: list, describe and execute registered workflows."""

from __future__ import annotations

import json
from typing import Any

import tornado.web

from kailash_nb.access_control import AccessDeniedError
from kailash_nb.middleware._problems import ProblemError
from kailash_nb.middleware._result_cache import CacheLookup
from kailash_nb.middleware._run_problems import run_problem
from kailash_nb.middleware.contract import operations
from kailash_nb.middleware.contract.models import ExecuteRequest
from kailash_nb.middleware.execution import RunQueueFullError
from kailash_nb.middleware.handlers.base import GatewayHandler
from kailash_nb.middleware.handlers.sessions import start_in_session
from kailash_nb.middleware.identity import Identity
from kailash_nb.middleware.schemas import CODE_CARRYING_KEYS, overrides_refusal
from kailash_nb.sdk_exceptions import WorkflowValidationError
from kailash_nb.store.audit_trail import AuditUnavailableError
from kailash_nb.workflow.graph import Workflow

__all__ = [
    "CODE_CARRYING_KEYS",
    "ExecuteHandler",
    "WorkflowHandler",
    "WorkflowListHandler",
    "run_problem",
]

#: ``Retry-After`` seconds when every run thread is busy and the run queue is full.
BUSY_RETRY_SECONDS = 1
#: ``Retry-After`` seconds when the access decision could not be audited.
AUDIT_RETRY_SECONDS = 5


_EXECUTE_CODES = {"parameters": "invalid_parameters", "session_id": "invalid_session_id"}


_NOT_SERVED = "no workflow with that name is served"


class _WorkflowRoute(GatewayHandler):
    def _workflow(self, name: str) -> tuple[Workflow, str]:
        found = self.gateway.workflows.get(name)
        if found is None:
            raise ProblemError(404, "workflow_not_found", _NOT_SERVED)
        return found


class WorkflowListHandler(GatewayHandler):
    """``GET /workflows``: the served workflows the caller may execute, by name."""

    route = "/workflows"
    contract = operations.serving(GET=operations.LIST_WORKFLOWS)

    async def get(self) -> None:
        """List names, descriptions and URLs."""
        served = self.gateway.workflows
        shown = await self.gateway.runs.gate.executable(self.identity, sorted(served))
        self.write_json(
            {
                "workflows": [
                    {"name": name, "description": served[name][1], "url": f"/workflows/{name}"}
                    for name in shown
                ]
            }
        )


class WorkflowHandler(_WorkflowRoute):
    """``GET /workflows/{name}``: a workflow's nodes and, when available, its schemas;
    a 404 for a workflow the caller may not execute, as if it were not served."""

    route = "/workflows/{name}"
    contract = operations.serving(GET=operations.DESCRIBE_WORKFLOW)

    async def get(self, name: str) -> None:
        """Describe the workflow."""
        workflow, description = self._workflow(name)
        if not await self.gateway.runs.gate.executable(self.identity, (name,)):
            raise ProblemError(404, "workflow_not_found", _NOT_SERVED)
        info: dict[str, Any] = {
            "name": name,
            "description": description or workflow.description,
            "workflow_id": workflow.workflow_id,
            "version": workflow.version,
            "nodes": [
                {"id": node_id, "type": type(node).__name__}
                for node_id, node in workflow.nodes.items()
            ],
            "execute_url": f"/workflows/{name}/execute",
        }
        inputs = self.gateway.workflow_inputs[name]
        info["input_schema"] = inputs.schema
        info["output_schema"] = inputs.output_schema
        self.write_json(info)


@tornado.web.stream_request_body
class ExecuteHandler(_WorkflowRoute):
    """``POST /workflows/{name}/execute`` with ``{"parameters": {...}}``.

    An optional ``"session_id"`` in the body runs the workflow in that session of the
    caller: 404 if it is not the caller's, 429 (``Retry-After``) when the session
    already runs its ``max_concurrent_workflows``; the slot is held until the run ends.

    Waits for the run and answers ``{"run_id", "status", "results"}``; with
    ``?wait=false`` answers 202 ``{"run_id", "status", "run_url"}`` once the run started.
    """

    route = "/workflows/{name}/execute"
    contract = operations.serving(POST=operations.EXECUTE)

    async def post(self, name: str) -> None:
        """Check the request against the published contract (body, ``wait``, the
        workflow's parameters schema) and run the workflow on a fresh engine run."""
        workflow, _ = self._workflow(name)
        if self.gateway.stopping:
            raise ProblemError(
                503,
                "shutting_down",
                "the gateway is shutting down and accepts no new runs; retry on another instance",
                headers={"Retry-After": "5"},
            )
        wait = self.query()["wait"] if self.request.query else True
        request = self.body(ExecuteRequest, _EXECUTE_CODES)
        parameters = request.parameters
        _check_overrides(parameters, self.identity)
        self.gateway.workflow_inputs[name].check(parameters, admin=self.identity.is_admin)
        body = {"parameters": parameters, "session_id": request.session_id}
        cached = _cache_lookup(self, name, parameters, wait, body)
        if cached.answered:
            return
        identity = self.identity
        owner = {"tenant_id": identity.tenant_id, "subject": identity.subject, "caller": identity}
        session_id = request.session_id
        try:
            if wait and session_id is None:
                entry = await self.gateway.runs.run(name, workflow, parameters, **owner)
            else:
                started = await start_in_session(
                    self.gateway,
                    self.identity,
                    session_id,
                    lambda: self.gateway.runs.start(name, workflow, parameters, **owner),
                )
                entry = await started.wait_started()
                if wait:
                    entry = await started.task
        except WorkflowValidationError as exc:
            raise ProblemError(400, "invalid_parameters", str(exc)) from None
        except AccessDeniedError:
            raise ProblemError(
                403, "access_denied", f"the access policy denies executing workflow {name!r}"
            ) from None
        except AuditUnavailableError:
            raise ProblemError(
                503,
                "audit_unavailable",
                "the access decision could not be audited, so nothing ran; retry shortly",
                headers={"Retry-After": str(AUDIT_RETRY_SECONDS)},
            ) from None
        except RunQueueFullError as exc:
            raise ProblemError(
                503, "busy", str(exc), headers={"Retry-After": str(BUSY_RETRY_SECONDS)}
            ) from None
        run_url = f"/runs/{entry.run_id}"
        if not wait:
            self.set_header("Location", run_url)
            self.write_json(
                {"run_id": entry.run_id, "status": "running", "run_url": run_url}, status=202
            )
            return
        if entry.status == "completed":
            cached.store(entry)
            self.write_json(
                {"run_id": entry.run_id, "status": "completed", "results": entry.results}
            )
            return
        raise run_problem(entry, run_url, self.gateway.error_view(name))


def _check_overrides(parameters: dict[str, Any], identity: Identity) -> None:
    """403 when a non-admin overrides a code-carrying input, at workflow or node level."""
    refusal = overrides_refusal(parameters, identity.is_admin)
    if refusal is not None:
        raise ProblemError(403, "override_forbidden", refusal)


_BYPASS = CacheLookup(None, None, answered=False)


def _cache_lookup(
    handler: GatewayHandler, name: str, parameters: Any, wait: bool, body: dict[str, Any]
) -> CacheLookup:
    """Answer the execute request from the cache if a live entry exists (``X-Cache:
    hit``); else mark it a miss (``X-Cache: miss``) and return how to store its result.
    Requests the cache does not apply to get neither header."""
    gateway = handler.gateway
    cache = gateway.result_cache
    if (
        cache is None
        or not wait
        or body.get("session_id") is not None
        or name in gateway.uncached_workflows
    ):
        return _BYPASS
    key = cache.key(handler.identity.tenant_id, name, parameters)
    found = cache.get(key)
    if found is None:
        handler.set_header("X-Cache", "miss")
        return CacheLookup(cache, key, answered=False)
    handler.set_header("X-Cache", "hit")
    handler.set_header("Content-Type", "application/json")
    handler.finish(
        f'{{"run_id": {json.dumps(found.run_id)}, "status": "completed", '
        f'"results": {found.results_json}, "cached": true}}'
    )
    return CacheLookup(None, None, answered=True)
