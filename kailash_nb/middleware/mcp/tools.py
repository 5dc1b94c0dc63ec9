"""Served workflows as MCP tools: their descriptions, and a tool call as a gateway run.

A tool is a workflow registered on the gateway: its name, its description, its input
schema the JSON Schema the REST API publishes for ``parameters`` and its output schema
that of a run's ``results``. A call is checked exactly as ``POST
/workflows/{name}/execute`` checks a request (the workflow's input contract, the
override rule for code-carrying inputs) and runs through the same executor, so it is
queued, access-checked, recorded in the run history under the caller's tenant and
counted in the metrics like any other run.

With a progress token, the run publishes its node events and each reaches the client
as a ``notifications/progress`` (progress 1, 2, 3 ...; the message names the node and
its state; ``_meta["kailash_nb/event"]`` holds the event as the run event streams show
it). A cancelled call stops its run before its next node; the run is recorded
``cancelled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import mcp.types as types

from kailash_nb._json_text import json_text
from kailash_nb.access_control import AccessDeniedError
from kailash_nb.middleware._problems import ProblemError
from kailash_nb.middleware._realtime import Outbox, OutboxClosed, event_frame, is_final
from kailash_nb.middleware._run_problems import run_problem
from kailash_nb.middleware.execution import RunEntry, RunQueueFullError
from kailash_nb.middleware.mcp.sessions import McpSession, ToolCall
from kailash_nb.middleware.schemas import overrides_refusal
from kailash_nb.runtime.events import NodeEvent, NodeStepEvent
from kailash_nb.sdk_exceptions import WorkflowValidationError
from kailash_nb.store.audit_trail import AuditUnavailableError

if TYPE_CHECKING:
    from kailash_nb.middleware._gateway_state import GatewayState
    from kailash_nb.middleware.identity import Identity
    from kailash_nb.runtime.events import Event

__all__ = ["RUN_ID_META", "Send", "ToolCallError", "WorkflowTools"]

#: Where a tool result's ``_meta`` names the gateway run (``GET /runs/{id}``).
RUN_ID_META = "kailash_nb/run_id"
#: Where a progress notification's ``_meta`` holds the node event it reports.
EVENT_META = "kailash_nb/event"
#: Seconds a finished call waits for its run's last events before it answers.
_EVENTS_GRACE = 2.0

Send = Callable[[dict[str, Any]], Awaitable[None]]
"""Delivers one JSON-RPC message (a notification) to the client of a request."""

logger = logging.getLogger(__name__)


class ToolCallError(Exception):
    """A ``tools/call`` refused as a JSON-RPC error (not a tool result).

    Attributes:
        code: the JSON-RPC error code.
        message: what was wrong.
        data: extra error data, or ``None``.
    """

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class WorkflowTools:
    """The gateway's workflows as MCP tools.

    Args:
        gateway: the gateway whose registered workflows are the tools.
    """

    def __init__(self, gateway: GatewayState) -> None:
        self.gateway = gateway
        self._tools: dict[str, dict[str, Any]] = {}
        #: Runs of cancelled calls, kept referenced until they end.
        self._detached: set[asyncio.Future[RunEntry]] = set()

    async def list(self, identity: Identity) -> list[dict[str, Any]]:
        """The tools ``identity`` may call (the workflows its access policy lets it
        execute), as ``Tool`` objects in JSON form, by name."""
        served = self.gateway.workflows
        shown = await self.gateway.runs.gate.executable(identity, sorted(served))
        return [self._tool(name) for name in shown]

    def _tool(self, name: str) -> dict[str, Any]:
        tool = self._tools.get(name)
        if tool is None:
            workflow, description = self.gateway.workflows[name]
            inputs = self.gateway.workflow_inputs[name]
            output_schema = None
            if not self.gateway.runs.gate.redacts_outputs:  # redacted values break it
                output_schema = inputs.output_schema
            tool = types.Tool(
                name=name,
                description=description or workflow.description or f"run workflow {name!r}",
                inputSchema=inputs.schema,
                outputSchema=output_schema,
            ).model_dump(by_alias=True, mode="json", exclude_none=True)
            self._tools[name] = tool
        return tool

    async def call(
        self,
        session: McpSession,
        request_id: Any,
        name: str,
        arguments: dict[str, Any],
        progress_token: types.ProgressToken | None,
        send: Send | None,
    ) -> dict[str, Any]:
        """Run the workflow ``name`` with ``arguments`` for ``session``'s caller; the
        ``CallToolResult`` in JSON form. Argument and run failures are results with
        ``isError`` (the caller can correct them); progress goes through ``send`` when
        the client asked for it (``progress_token``) and the transport can stream.

        Raises:
            ToolCallError: no such tool for this caller (``INVALID_PARAMS``), or the
                call was cancelled (code 0, as the SDK's own servers answer).
        """
        gateway = self.gateway
        identity = session.identity
        found = gateway.workflows.get(name)
        if found is None or not await gateway.runs.gate.executable(identity, (name,)):
            raise ToolCallError(types.INVALID_PARAMS, f"Unknown tool: {name[:80]!r}")
        workflow = found[0]
        if gateway.stopping:
            return error_result("the gateway is shutting down and accepts no new runs")
        refused = _refuse_arguments(gateway, name, arguments, identity)
        if refused is not None:
            return error_result(refused)
        call = session.calls[request_id] = ToolCall(asyncio.get_running_loop())
        pump = None
        try:
            try:
                task, pump = self._start(
                    session, call, name, workflow, arguments, progress_token, send
                )
            except RunQueueFullError as exc:
                return error_result(f"the gateway is busy: {exc}")
            await asyncio.wait({task, call.stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                self._detach(task)
                raise ToolCallError(0, "Request cancelled", {"reason": call.stopped.result()})
            entry = _entry_or_error(task)
            if isinstance(entry, dict):
                return entry
            if pump is not None:
                await pump.finish()
            return run_result(gateway, entry)
        finally:
            if pump is not None:
                pump.close()
            if session.calls.get(request_id) is call:
                del session.calls[request_id]

    def _start(
        self,
        session: McpSession,
        call: ToolCall,
        name: str,
        workflow: Any,
        arguments: dict[str, Any],
        progress_token: types.ProgressToken | None,
        send: Send | None,
    ) -> tuple[asyncio.Future[RunEntry], _ProgressPump | None]:
        """The run's task, and the pump of its progress when the client asked for it
        (the run then publishes node events: ``start`` instead of ``run``)."""
        identity = session.identity
        owner = {"tenant_id": identity.tenant_id, "subject": identity.subject}
        runs = self.gateway.runs
        if progress_token is None or send is None:
            coroutine = runs.run(
                name, workflow, arguments, **owner, caller=identity, cancel=call.cancel
            )
            return asyncio.ensure_future(coroutine), None
        started = runs.start(
            name, workflow, arguments, **owner, caller=identity, cancel=call.cancel
        )
        pump = _ProgressPump(self.gateway, name, progress_token, send)
        pump.watch(started.run_id or "")
        return started.task, pump

    def _detach(self, task: asyncio.Future[RunEntry]) -> None:
        self._detached.add(task)
        task.add_done_callback(_forget(self._detached))


def error_result(text: str, run_id: str | None = None) -> dict[str, Any]:
    """A ``CallToolResult`` with ``isError`` and ``text`` (JSON form)."""
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": True}
    if run_id is not None:
        result["_meta"] = {RUN_ID_META: run_id}
    return result


def run_result(gateway: GatewayState, entry: RunEntry) -> dict[str, Any]:
    """The ``CallToolResult`` of a finished run: its ``results`` as structured content
    (and as JSON text) when it completed, else ``isError`` with what failed, as the
    REST answer shows it (node messages only for ``expose_errors`` workflows)."""
    if entry.status == "completed":
        results = entry.results
        return {
            "content": [{"type": "text", "text": json_text(results)}],
            "structuredContent": results,
            "isError": False,
            "_meta": {RUN_ID_META: entry.run_id},
        }
    problem = run_problem(entry, f"/runs/{entry.run_id}", gateway.error_view(entry.workflow))
    text = f"run {entry.status}: {problem.detail}"
    failed = problem.extra.get("failed_nodes")
    if failed:
        text += f" (failed nodes: {json.dumps(failed)[:2000]})"
    return error_result(text, entry.run_id)


def _refuse_arguments(
    gateway: GatewayState, name: str, arguments: dict[str, Any], identity: Identity
) -> str | None:
    """Why the REST route would refuse these parameters, or ``None``."""
    refusal = overrides_refusal(arguments, identity.is_admin)
    if refusal is not None:
        return refusal
    try:
        gateway.workflow_inputs[name].check(arguments, admin=identity.is_admin)
    except ProblemError as exc:
        return f"invalid arguments: {exc.detail}"
    return None


def _entry_or_error(task: asyncio.Future[RunEntry]) -> RunEntry | dict[str, Any]:
    """The finished run's entry, or the error result of what refused it."""
    try:
        return task.result()
    except WorkflowValidationError as exc:
        return error_result(f"invalid arguments: {exc}")
    except AccessDeniedError:
        return error_result("the access policy denies executing this workflow")
    except AuditUnavailableError:
        return error_result("the access decision could not be audited, so nothing ran")
    except RunQueueFullError as exc:
        return error_result(f"the gateway is busy: {exc}")


#: What refuses a run before it starts: the caller is told (``_entry_or_error``).
_REFUSALS = (WorkflowValidationError, AccessDeniedError, AuditUnavailableError, RunQueueFullError)


def _forget(holder: set[Any]) -> Callable[[Any], None]:
    def done(task: asyncio.Future[Any]) -> None:
        holder.discard(task)
        if task.cancelled():
            return
        error = task.exception()  # retrieved: a refused detached run is not an error here
        if error is not None and not isinstance(error, _REFUSALS):
            logger.error("a cancelled MCP call's run failed", exc_info=error)

    return done


class _ProgressPump:
    """Forwards one run's node events to the client as progress notifications."""

    def __init__(
        self, gateway: GatewayState, name: str, token: types.ProgressToken, send: Send
    ) -> None:
        self.hub = gateway.live_events()
        self.view = gateway.error_view(name)
        self.token = token
        self.send = send
        self.count = 0
        self.run_id = ""
        self.outbox = Outbox(asyncio.get_running_loop())
        self.task: asyncio.Task[None] | None = None

    def watch(self, run_id: str) -> None:
        """Watch ``run_id`` (before it starts executing) and start forwarding."""
        self.run_id = run_id
        replay, _ = self.hub.watch(run_id, self.outbox.push)
        if replay:
            self.outbox.put(replay)
        self.task = asyncio.ensure_future(self._forward())

    async def _forward(self) -> None:
        with contextlib.suppress(OutboxClosed):
            while True:
                item = await self.outbox.get()
                for event in item if isinstance(item, list) else [item]:
                    if is_final(event):
                        return
                    await self._notify(event)

    async def _notify(self, event: Event) -> None:
        if type(event) is NodeEvent and event.state == "queued":
            return
        if type(event) not in (NodeEvent, NodeStepEvent):
            return
        kind, data = event_frame(event, self.view)
        self.count += 1
        what = data["step"] if kind == "node.step" else data["state"]
        params = types.ProgressNotificationParams(
            progressToken=self.token,
            progress=self.count,
            message=f"node {data['node_id']!r}: {what}",
            _meta={EVENT_META: {"event": kind, "data": data}},
        ).model_dump(by_alias=True, mode="json", exclude_none=True)
        await self.send({"jsonrpc": "2.0", "method": "notifications/progress", "params": params})

    async def finish(self) -> None:
        """Wait (briefly) until every event of the ended run was sent."""
        if self.task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.task), _EVENTS_GRACE)

    def close(self) -> None:
        """Stop watching the run and forwarding its events."""
        self.hub.unwatch(self.run_id, self.outbox.push)
        self.outbox.close()
        if self.task is not None and not self.task.done():
            self.task.cancel()
