"""The access checks of one run: the ``NodeGuard`` the engine asks per node, the
redaction of what the caller sees, and the decisions noted for the log and the audit.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from kailash_nb.access_control import (
    AccessControlManager,
    AccessDecision,
    AccessDeniedError,
    Action,
    Resource,
    UserContext,
)
from kailash_nb.runtime._masking import ACCESS_DENIED, masked_outputs
from kailash_nb.sdk_exceptions import WorkflowException
from kailash_nb.store.audit_trail import AuditRecord

__all__ = ["DecisionNotes", "NodeAccessDeniedError", "RunAccess", "resource_name"]

logger = logging.getLogger("kailash_nb.runtime.access_controlled")

_RESOURCE_MEMO = 4096


class NodeAccessDeniedError(AccessDeniedError, WorkflowException):
    """A node of the run may not be executed by the caller: the run stopped there.

    A ``PermissionError`` (``AccessDeniedError``) naming the node and the deciding rules
    (``decision.applied_rules``; none for default deny). The run raises it as the cause
    of its ``WorkflowExecutionError`` and ``AccessControlledRuntime.execute`` raises it
    directly, with the run's redacted partial ``results`` and ``run_id``.
    """

    def __init__(self, decision: AccessDecision, node_id: str, message: str) -> None:
        super().__init__(decision, message)
        self.node_id = node_id
        self.results: dict[str, Any] = {}
        self.run_id: str | None = None


def resource_name(resource: Resource) -> str:
    """``workflow:<id>``, ``node:<workflow>/<node>`` or ``field:<workflow>/<node>/<f>``."""
    parts = [resource.workflow_id or "*", resource.node_id, resource.field]
    return f"{resource.type}:{'/'.join(part for part in parts if part)}"


def _rules(decision: AccessDecision) -> str:
    if decision.applied_rules:
        plural = "s" * (len(decision.applied_rules) > 1)
        return f"rule{plural} {', '.join(decision.applied_rules)}"
    return "default deny (no rule allows it)"


def _detail(decision: AccessDecision) -> dict[str, Any]:
    """The audit record's extras: why a denial, which fields an allowed read hid."""
    if not decision.allowed:
        return {"reason": decision.reason}
    if decision.masked_fields:
        return {"masked_fields": list(decision.masked_fields)}
    return {}


#: The audit text of each action.
_ACTION_TEXT = {action: action.value for action in Action}


class DecisionNotes:
    """Logs decisions and turns them into audit records.

    Args:
        sink: where audit records go (``write``, ``check``), ``None`` for no audit.
        log_all: log every decision at INFO (denials are always logged, at WARNING).
    """

    def __init__(self, sink: Any | None, log_all: bool) -> None:
        self.sink = sink
        self.log_all = log_all
        self._resources: dict[tuple[str, str | None], Resource] = {}
        self._names: dict[tuple[Any, ...], str] = {}

    def resource(self, workflow_id: str, node_id: str | None = None) -> Resource:
        """The (shared, immutable) ``Resource`` of a workflow or one of its nodes."""
        key = (workflow_id, node_id)
        found = self._resources.get(key)
        if found is None:
            if len(self._resources) >= _RESOURCE_MEMO:
                self._resources.clear()
            found = self._resources[key] = Resource(workflow_id, node_id)
        return found

    def name(self, resource: Resource) -> str:
        """``resource_name(resource)``, remembered (a run names the same few resources)."""
        found = self._names.get(resource.key)
        if found is None:
            if len(self._names) >= _RESOURCE_MEMO:
                self._names.clear()
            found = self._names[resource.key] = resource_name(resource)
        return found

    def note(
        self,
        decision: AccessDecision,
        run_id: str | None,
        records: list[AuditRecord] | None,
        resource: Resource,
    ) -> None:
        """Log ``decision`` and add its audit record to ``records`` (when auditing)."""
        allowed = decision.allowed
        if not allowed:
            logger.warning(
                "access denied: %s (tenant %s) %s %s: %s",
                decision.user_id,
                decision.tenant_id,
                decision.action.value if decision.action else "?",
                resource_name(resource),
                decision.reason,
            )
        elif self.log_all:
            logger.info(
                "access allowed: %s (tenant %s) %s %s: %s",
                decision.user_id,
                decision.tenant_id,
                decision.action.value if decision.action else "?",
                resource_name(resource),
                decision.reason,
            )
        if records is not None:
            action = decision.action
            action_text = _ACTION_TEXT.get(action)  # type: ignore[arg-type]
            if action_text is None:
                action_text = action.value if action else ""
            records.append(
                AuditRecord(
                    decision.tenant_id or "",
                    decision.user_id or "",
                    action_text,
                    self.name(resource),
                    "allow" if allowed else "deny",
                    decision.applied_rules,
                    run_id,
                    decision.cached,
                    time.time(),
                    _detail(decision),
                )
            )

    def write(self, records: list[AuditRecord]) -> None:
        """Hand ``records`` to the audit sink (no-op without one).

        Raises:
            AuditUnavailableError: they could not be stored or queued (fail closed).
        """
        if self.sink is not None and records:
            self.sink.write(records)


class RunAccess:
    """The checks of one run by ``user`` of workflow ``workflow_id`` (the engine's guard).

    Decisions made here are noted (logged, and collected in ``records`` when auditing);
    the front end writes ``records`` when the run ends. ``refused_node`` is the node
    the checks refused, if any.
    """

    __slots__ = (
        "_reads",
        "_reads_lock",
        "manager",
        "notes",
        "records",
        "refused_node",
        "run_id",
        "user",
        "workflow_id",
    )

    def __init__(
        self,
        manager: AccessControlManager,
        notes: DecisionNotes,
        user: UserContext,
        workflow_id: str,
        run_id: str,
    ) -> None:
        self.manager = manager
        self.notes = notes
        self.user = user
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.records: list[AuditRecord] | None = [] if notes.sink is not None else None
        self.refused_node: str | None = None
        # One read_output decision per node and run, shared by its steps and its results.
        self._reads: dict[str, AccessDecision] = {}
        self._reads_lock = threading.Lock()

    def decide(self, action: Action, node_id: str | None = None) -> AccessDecision:
        """The decision for the caller doing ``action`` on the workflow or one node."""
        resource = self.notes.resource(self.workflow_id, node_id)
        decision = self.manager.check_access(self.user, action, resource)
        self.notes.note(decision, self.run_id, self.records, resource)
        return decision

    def check_node(self, node_id: str) -> BaseException | None:
        """``None`` when the caller may execute ``node_id``; else the refusal."""
        try:
            decision = self.decide(Action.EXECUTE, node_id)
        except Exception as error:  # a decision that cannot be made refuses the node
            self.refused_node = node_id
            return error
        if decision.allowed:
            return None
        self.refused_node = node_id
        return NodeAccessDeniedError(
            decision,
            node_id,
            f"{self.user.user_id!r} (tenant {self.user.tenant_id!r}) may not execute node "
            f"{node_id!r} of workflow {self.workflow_id!r}: {_rules(decision)}",
        )

    def read_decision(self, node_id: str) -> AccessDecision:
        """The caller's ``read_output`` decision on ``node_id``, made (and noted) once per
        run: the node's steps and its results are shown by the same decision."""
        with self._reads_lock:
            decision = self._reads.get(node_id)
            if decision is None:
                decision = self._reads[node_id] = self.decide(Action.READ_OUTPUT, node_id)
            return decision

    def step_detail(self, node_id: str, detail: dict[str, Any]) -> dict[str, Any]:
        """``detail`` of a step of ``node_id`` when the caller may read the node's whole
        output; else ``ACCESS_DENIED``. A detail is free-form (a prompt, a tool result):
        a masked field may be anywhere in its text, so a node with masked fields shows
        its steps without their details."""
        try:
            decision = self.read_decision(node_id)
        except Exception:  # a decision that cannot be made shows nothing
            logger.exception("the read decision on node %r failed; step detail withheld", node_id)
            return dict(ACCESS_DENIED)
        if decision.allowed and not decision.masked_fields:
            return detail
        return dict(ACCESS_DENIED)

    def write_records(self) -> None:
        """Write the decisions noted so far to the audit sink and forget them.

        Raises:
            AuditUnavailableError: they could not be stored or queued (fail closed).
        """
        if self.records:
            self.notes.write(self.records)
            self.records.clear()

    def shown(self, results: dict[str, Any]) -> dict[str, Any]:
        """``results`` as the caller may read them: a node whose output the caller may
        not read is ``ACCESS_DENIED``, masked fields are ``REDACTED``."""
        shown: dict[str, Any] = {}
        for node_id, outputs in results.items():
            if outputs is None:
                shown[node_id] = outputs
                continue
            decision = self.read_decision(node_id)
            if not decision.allowed:
                shown[node_id] = dict(ACCESS_DENIED)
            elif decision.masked_fields:
                shown[node_id] = masked_outputs(outputs, decision.masked_fields)
            else:
                shown[node_id] = outputs
        return shown
