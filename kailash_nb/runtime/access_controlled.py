"""``AccessControlledRuntime``: ``LocalRuntime`` with a policy decision before the run,
before every node, and on every output the caller reads; every decision audited.

It runs workflows through the one engine with ``LocalRuntime``'s data flow. Who runs
is a :class:`~kailash_nb.access_control.UserContext`, given per ``execute`` (or once,
to the constructor, as Kailash does)::

    from kailash_nb.access_control import UserContext
    from kailash_nb.runtime.access_controlled import AccessControlledRuntime

    runtime = AccessControlledRuntime(
        access_control_strategy="hybrid",
        policies_file="policies.yaml",
        dynamic_policies=True,
        audit_enabled=True,
    )
    alice = UserContext(user_id="alice", tenant_id="acme", roles=["analyst"])
    results, run_id = runtime.execute(workflow, user_context=alice)

Per run:

1. the caller needs ``execute`` on the workflow, else ``AccessDeniedError`` (a
   ``PermissionError``) before anything runs;
2. each node needs ``execute`` before it runs (the engine asks, see
   :mod:`kailash_nb.runtime.guard`); a refused node fails the run with
   ``NodeAccessDeniedError`` naming the node and the rules: it never feeds anything
   downstream, and the run ends ``failed`` in its events, history and outcome;
3. the results the caller gets are redacted node by node by ``read_output``: a node the
   caller may not read shows ``{"_access_denied": True}``, a masked field ``REDACTED``.
   Nodes downstream still get what a node produced (the computation does not depend on
   who runs it; masking is about what the caller sees).

With ``audit_enabled`` every decision (cache hits included) and every run writes one
record to the :class:`~kailash_nb.store.audit_trail.AuditTrail`: the workflow decision
before the run starts, the node and output decisions and the run's own record when it
ends. A trail that cannot be written fails closed with ``AuditUnavailableError``: at
the start nothing runs; at the end the results are withheld.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kailash_nb.access_control import (
    AccessControlConfigurationError,
    AccessControlManager,
    AccessDecision,
    AccessDeniedError,
    Action,
    PermissionRule,
    Policy,
    PolicyError,
    UserContext,
    action_of,
)
from kailash_nb.runtime._access import DecisionNotes, NodeAccessDeniedError, RunAccess
from kailash_nb.runtime._audit_sink import AUDIT_WRITE_MODES, audit_sink
from kailash_nb.runtime._policy_file import PolicyFile
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.runtime.outcome import RunOutcome
from kailash_nb.sdk_exceptions import RuntimeExecutionError, WorkflowExecutionError
from kailash_nb.store.audit_trail import AuditRecord, AuditTrail, AuditUnavailableError
from kailash_nb.workflow.graph import Workflow

__all__ = [
    "ACCESS_CONTROL_STRATEGIES",
    "DEFAULT_PERMISSIONS_PREFIX",
    "AccessControlledRuntime",
    "AuthorizationRequiredError",
    "NodeAccessDeniedError",
    "RunAccess",
]

logger = logging.getLogger("kailash_nb.runtime.access_controlled")

#: The values ``access_control_strategy`` takes.
ACCESS_CONTROL_STRATEGIES = ("rbac", "abac", "hybrid")
#: Rule ids of the rules ``default_permissions`` adds start with this.
DEFAULT_PERMISSIONS_PREFIX = "default_permissions:"

#: Who runs when no identity is given and ``require_authorization=False``.
ANONYMOUS = UserContext(user_id="anonymous", tenant_id="default")


class AuthorizationRequiredError(AccessDeniedError):
    """``execute`` was called without a caller identity while ``require_authorization``
    is on (the default): pass ``user_context=UserContext(...)``."""


def _default_rules(permissions: Iterable[Any]) -> tuple[PermissionRule, ...]:
    if isinstance(permissions, str):
        raise AccessControlConfigurationError(
            f"default_permissions is a list of actions, not the string {permissions!r}"
        )
    actions: list[Action] = []
    for permission in permissions:
        try:
            action = action_of(permission)
        except PolicyError as error:
            raise AccessControlConfigurationError(f"default_permissions: {error.problem}") from None
        if action not in actions:
            actions.append(action)
    return tuple(
        PermissionRule(
            id=f"{DEFAULT_PERMISSIONS_PREFIX}{action.value}",
            resource_type="workflow",
            resource_id="*",
            permission=action,
            effect="allow",
            description="default_permissions: every caller, every workflow of its tenant",
        )
        for action in actions
    )


class AccessControlledRuntime(LocalRuntime):
    """Run workflows for a caller, as far as the access policy allows.

    Args:
        user_context: the caller when ``execute`` is not given one (Kailash's
            constructor argument); a gateway passes one per request instead.
        access_control_strategy: ``"rbac"`` (roles only: a rule with a condition is a
            load error), ``"abac"`` or ``"hybrid"`` (roles and conditions).
        default_permissions: actions every caller has on every workflow of its tenant
            (``["read"]``: read the outputs; ``"execute"``...). Deny rules still win.
            Without them and without rules, everything is denied.
        policies_file: a policies file (YAML, see :mod:`kailash_nb.access_control.loader`).
            Missing or invalid: ``PolicyError`` naming the file, line and problem, and
            the runtime does not start.
        dynamic_policies: reload ``policies_file`` when it changes (checked at each
            run); a reload that fails keeps the policy in force and logs the error
            (``policy_error``).
        audit_enabled: write every decision and every run to the audit trail.
        require_authorization: a run needs a caller identity (else
            ``AuthorizationRequiredError``). ``False`` runs calls without one as
            ``anonymous`` in tenant ``default``, still under the policy (never "allow
            all").
        log_all_access: log every decision at INFO (denials are always logged).
        manager: an ``AccessControlManager`` to decide with (default: a new one with
            ``access_control_strategy``); rules added to it take effect at once (with a
            ``policies_file``, until the file is loaded again: the file's rules and
            ``default_permissions`` then make the whole policy).
        audit_trail: the trail to write to (default: ``AuditTrail(database_url)``).
        audit_write: ``"sync"`` (the default: a run's records are stored before its
            results are returned) or ``"batched"`` (queued in a bounded buffer and
            stored by a writer thread in large batches; while the trail cannot be
            written new runs are refused; see ``flush_audit``).
        **options: ``LocalRuntime``'s options (``history``, ``database_url``, timeouts...).

    Raises:
        PolicyError: ``policies_file`` is missing or invalid.
        AccessControlConfigurationError: an unknown strategy, ``dynamic_policies``
            without a file, a ``manager`` with another strategy, an unknown default
            permission.
        TypeError: Kailash's ``base_runtime`` (this runtime is the engine's front end).
    """

    def __init__(
        self,
        user_context: UserContext | None = None,
        *,
        access_control_strategy: str = "hybrid",
        default_permissions: Iterable[Any] = (),
        policies_file: str | os.PathLike[str] | None = None,
        dynamic_policies: bool = False,
        audit_enabled: bool = False,
        require_authorization: bool = True,
        log_all_access: bool = False,
        manager: AccessControlManager | None = None,
        audit_trail: Any | None = None,
        audit_write: str = "sync",
        base_runtime: Any = None,
        **options: Any,
    ) -> None:
        if base_runtime is not None:
            raise TypeError(
                "AccessControlledRuntime does not wrap another runtime (Kailash's "
                "base_runtime): it is LocalRuntime's front end itself and takes LocalRuntime's "
                "options (history=..., node_timeout=...) directly"
            )
        if user_context is not None and not isinstance(user_context, UserContext):
            raise TypeError(
                f"user_context must be a UserContext, not {type(user_context).__name__}"
            )
        if access_control_strategy not in ACCESS_CONTROL_STRATEGIES:
            raise AccessControlConfigurationError(
                f"unknown access_control_strategy {access_control_strategy!r}; it is "
                "rbac, abac or hybrid (access control cannot be switched off)"
            )
        if manager is None:
            manager = AccessControlManager(strategy=access_control_strategy)
        elif not isinstance(manager, AccessControlManager):
            raise TypeError(
                f"manager must be an AccessControlManager, not {type(manager).__name__}"
            )
        elif manager.strategy != access_control_strategy:
            raise AccessControlConfigurationError(
                f"the manager decides by {manager.strategy!r}, but access_control_strategy is "
                f"{access_control_strategy!r}; give the same strategy to both"
            )
        if dynamic_policies and policies_file is None:
            raise AccessControlConfigurationError(
                "dynamic_policies=True reloads the policies_file when it changes: name one"
            )
        self._defaults = _default_rules(default_permissions)
        self._policies: PolicyFile | None = None
        if policies_file is not None:
            self._policies = PolicyFile(
                os.fspath(policies_file), manager.strategy, self._with_defaults
            )
            manager.use_policy(self._policies.policy)
        elif self._defaults:
            manager.use_policy(self._with_defaults(manager.policy))
        self.manager = manager
        self.user_context = user_context
        self.access_control_strategy = manager.strategy
        self.default_permissions = tuple(rule.permission.value for rule in self._defaults)
        self.dynamic_policies = bool(dynamic_policies)
        self.audit_enabled = bool(audit_enabled)
        self.require_authorization = bool(require_authorization)
        self.log_all_access = bool(log_all_access)
        if audit_write not in AUDIT_WRITE_MODES:
            raise AccessControlConfigurationError(
                f"audit_write is 'sync' or 'batched', not {audit_write!r}"
            )
        super().__init__(**options)
        self.audit_write = audit_write
        if audit_enabled and audit_trail is None:
            audit_trail = AuditTrail(options.get("database_url"))
        self.audit_trail = audit_trail if audit_enabled else None
        self._sink = None if self.audit_trail is None else audit_sink(self.audit_trail, audit_write)
        self._notes = DecisionNotes(self._sink, self.log_all_access)

    # -- the policy --------------------------------------------------------------

    @property
    def acm(self) -> AccessControlManager:
        """Kailash's name for :attr:`manager`."""
        return self.manager

    @property
    def policies_file(self) -> str | None:
        """The policies file in force, or ``None``."""
        return None if self._policies is None else self._policies.path

    @property
    def policy_error(self) -> PolicyError | None:
        """Why the last reload of the policies file failed (``None``: it did not)."""
        return None if self._policies is None else self._policies.error

    def reload_policies(self) -> Policy:
        """Load the policies file again now and put it in force.

        Raises:
            PolicyError: it cannot be loaded; the policy in force stays.
            AccessControlConfigurationError: this runtime has no policies file.
        """
        if self._policies is None:
            raise AccessControlConfigurationError("this runtime was given no policies_file")
        policy = self._policies.reload()
        self.manager.use_policy(policy)
        return policy

    def _with_defaults(self, policy: Policy) -> Policy:
        if not self._defaults:
            return policy
        return Policy(
            [*policy.rules, *self._defaults],
            policy.roles,
            strategy=policy.strategy,
            source=policy.source,
        )

    def _refresh(self) -> None:
        if self.dynamic_policies and self._policies is not None:
            policy = self._policies.refresh()
            if policy is not None:
                self.manager.use_policy(policy)

    def flush_audit(self, timeout: float | None = None) -> None:
        """Wait until every audit record of this runtime is stored (no-op without audit).

        Raises:
            AuditUnavailableError: the trail cannot be written (the records stay queued).
        """
        if self._sink is not None:
            self._sink.flush(timeout)

    def close(self) -> None:
        """Refuse further runs, write pending history and audit records."""
        try:
            super().close()
        finally:
            if self._sink is not None:
                self._sink.close()

    # -- decisions ---------------------------------------------------------------

    def caller(self, user_context: UserContext | None = None) -> UserContext:
        """Who runs: ``user_context``, else the constructor's, else (only without
        ``require_authorization``) ``anonymous``.

        Raises:
            AuthorizationRequiredError: no identity and ``require_authorization``.
        """
        user = user_context if user_context is not None else self.user_context
        if user is None:
            if self.require_authorization:
                decision = AccessDecision(
                    allowed=False, reason="no caller identity (require_authorization)"
                )
                raise AuthorizationRequiredError(
                    decision,
                    "this runtime requires authorization: pass "
                    "user_context=UserContext(user_id=..., tenant_id=..., roles=[...])",
                )
            return ANONYMOUS
        if not isinstance(user, UserContext):
            raise TypeError(f"user_context must be a UserContext, not {type(user).__name__}")
        return user

    def check_workflow(
        self,
        workflow_id: str,
        action: Action | str = Action.EXECUTE,
        user_context: UserContext | None = None,
    ) -> AccessDecision:
        """The caller's decision for ``action`` on workflow ``workflow_id``, logged and
        (with ``audit_enabled``) audited before it is returned.

        Raises:
            AuditUnavailableError: the decision could not be audited.
        """
        return self.check_workflows([workflow_id], action, user_context)[0]

    def check_workflows(
        self,
        workflow_ids: Iterable[str],
        action: Action | str = Action.EXECUTE,
        user_context: UserContext | None = None,
    ) -> list[AccessDecision]:
        """The caller's decisions for ``action`` on each of ``workflow_ids`` (a gateway's
        list of workflows), logged and audited together: one policy refresh and one
        audit write for them all, before they are returned.

        Raises:
            AuditUnavailableError: the decisions could not be audited.
        """
        self._refresh()
        user = self.caller(user_context)
        if self._sink is not None:
            self._sink.check()
        records: list[AuditRecord] | None = [] if self.audit_trail is not None else None
        decisions = []
        for workflow_id in workflow_ids:
            resource = self._notes.resource(workflow_id)
            decision = self.manager.check_access(user, action, resource)
            self._notes.note(decision, None, records, resource)
            decisions.append(decision)
        if records:
            self._notes.write(records)
        return decisions

    # -- running -----------------------------------------------------------------

    def execute(
        self,
        workflow: Workflow,
        parameters: dict[str, Any] | None = None,
        *,
        user_context: UserContext | None = None,
        resource_id: str | None = None,
        run_id: str | None = None,
        node_events: bool = True,
        task_manager: None = None,
        cached_outputs: dict[str, dict[str, Any]] | None = None,
        copy_cached: bool = True,
        on_output: Callable[[str, dict[str, Any]], object] | None = None,
        on_failure: Callable[[str, BaseException], object] | None = None,
    ) -> tuple[dict[str, dict[str, Any]], str]:
        """Run ``workflow`` for the caller; ``(results, run_id)`` with the results the
        caller may read.

        ``resource_id`` is the id the policy knows the workflow by (default: its
        ``workflow_id``; a gateway passes the registered name). ``cached_outputs``,
        ``copy_cached``, ``on_output`` and ``on_failure`` are ``LocalRuntime.execute``'s
        (the notebook's incremental runs); a cached output is reused only for a node
        the caller may execute (each such decision audited), any other node executes,
        so the engine's check refuses it. ``on_output`` gets what nodes produced (what
        their dependents get), not what the caller may read.

        Raises:
            AuthorizationRequiredError: no caller identity (``require_authorization``).
            AccessDeniedError: the caller may not execute the workflow (nothing ran).
            NodeAccessDeniedError: the caller may not execute one of its nodes (the run
                stopped there; partial, redacted ``results``).
            AuditUnavailableError: the audit trail could not be written.
            WorkflowExecutionError: as ``LocalRuntime.execute`` (redacted ``results``).
        """
        self._refuse_task_manager(task_manager)
        access, run = self._start(
            workflow,
            parameters,
            user_context,
            resource_id,
            run_id,
            node_events,
            cached_outputs=cached_outputs,
            copy_cached=copy_cached,
            on_output=on_output,
            on_failure=on_failure,
        )
        with self._audited_end(access, run):
            results = self._drive(run)
        shown = access.shown(self._routed(results, run))
        self._audit_run(access, run.status)
        return shown, run.run_id

    def execute_outcome(
        self,
        workflow: Workflow,
        parameters: dict[str, Any] | None = None,
        *,
        user_context: UserContext | None = None,
        resource_id: str | None = None,
        run_id: str | None = None,
        node_events: bool = True,
    ) -> RunOutcome:
        """Run like ``execute`` but return how the run ended (a refused node makes it
        ``failed``); the outcome's results are the ones the caller may read.

        Raises:
            AuthorizationRequiredError, AccessDeniedError, AuditUnavailableError: as
                ``execute`` (nothing ran, or the run is not returned unaudited).
        """
        access, run = self._start(
            workflow, parameters, user_context, resource_id, run_id, node_events
        )
        try:
            outcome = self._drive_outcome(run)
        except BaseException:
            self._abandoned(access, run)
            raise
        return self.close_run(access, outcome)

    async def execute_async(  # type: ignore[override]
        self,
        workflow: Workflow,
        parameters: dict[str, Any] | None = None,
        *,
        user_context: UserContext | None = None,
        resource_id: str | None = None,
        cached_outputs: dict[str, dict[str, Any]] | None = None,
        copy_cached: bool = True,
        on_output: Callable[[str, dict[str, Any]], object] | None = None,
        on_failure: Callable[[str, BaseException], object] | None = None,
    ) -> tuple[dict[str, dict[str, Any]], str]:
        """Run ``workflow`` on the current event loop; same contract as ``execute``."""
        access, run = self._start(
            workflow,
            parameters,
            user_context,
            resource_id,
            None,
            True,
            cached_outputs=cached_outputs,
            copy_cached=copy_cached,
            on_output=on_output,
            on_failure=on_failure,
        )
        with self._audited_end(access, run):
            results = await self._drive_async(run)
        shown = access.shown(self._routed(results, run))
        self._audit_run(access, run.status)
        return shown, run.run_id

    def _start(
        self,
        workflow: Workflow,
        parameters: dict[str, Any] | None,
        user_context: UserContext | None,
        resource_id: str | None,
        run_id: str | None,
        node_events: bool,
        cached_outputs: dict[str, dict[str, Any]] | None = None,
        **engine: Any,
    ) -> tuple[RunAccess, Any]:
        """Decide the workflow (audited before anything runs) and make the guarded run;
        only the cached outputs of nodes the caller may execute are reused."""
        if not isinstance(workflow, Workflow):
            raise TypeError(
                f"expected a built Workflow, got {type(workflow).__name__}; call "
                "WorkflowBuilder.build() first"
            )
        if self._closed:
            raise RuntimeExecutionError("this runtime is closed; create a new one")
        access = self.open_run(
            user_context, resource_id or workflow.workflow_id, run_id or str(uuid.uuid4())
        )
        if cached_outputs:
            cached_outputs = {
                node_id: outputs
                for node_id, outputs in cached_outputs.items()
                if access.decide(Action.EXECUTE, node_id).allowed
            }
            access.write_records()  # fail closed before anything runs
        run = self._new_run(
            workflow,
            parameters,
            cached_outputs,
            access.run_id,
            node_events,
            guard=access,
            **engine,
        )
        return access, run

    # -- runs executed elsewhere (a gateway's execution backends) ------------------

    def open_run(
        self, user_context: UserContext | None, workflow_id: str, run_id: str
    ) -> RunAccess:
        """Decide whether the caller may execute workflow ``workflow_id`` (the decision
        is audited before anything runs) and return the run's access checks.

        For front ends that execute the run on an engine of their own (the gateway's
        execution backends): the returned ``RunAccess`` is the run's
        :class:`~kailash_nb.runtime.guard.NodeGuard`; end the run with ``close_run``
        (or ``abandon_run`` when it raised).

        Raises:
            AuthorizationRequiredError: no caller identity (``require_authorization``).
            AccessDeniedError: the caller may not execute the workflow (a ``refused``
                run record is audited).
            AuditUnavailableError: the audit trail cannot be written (nothing may run).
        """
        self._refresh()
        user = self.caller(user_context)
        if self._sink is not None:
            self._sink.check()  # a failing trail refuses the run before it is decided
        access = RunAccess(self.manager, self._notes, user, workflow_id, run_id)
        decision = access.decide(Action.EXECUTE)
        if not decision.allowed:
            self._audit_run(access, "refused")
            raise AccessDeniedError(
                decision,
                f"{user.user_id!r} (tenant {user.tenant_id!r}) may not execute workflow "
                f"{access.workflow_id!r}: {decision.reason}",
            )
        access.write_records()  # fail closed before anything runs
        return access

    def close_run(self, access: RunAccess, outcome: RunOutcome) -> RunOutcome:
        """``outcome`` with only the results the caller may read, once the run's
        decisions and its own record are audited.

        Raises:
            AuditUnavailableError: the audit trail could not be written; the results
                must not be returned.
        """
        shown = access.shown(outcome.results)
        self._audit_run(access, outcome.status)
        return dataclasses.replace(outcome, results=shown)

    def abandon_run(self, access: RunAccess, status: str = "failed") -> None:
        """Audit a run that ended by an exception instead of an outcome (its decisions
        and its record with ``status``); a trail that cannot be written is logged, as
        the exception that ended the run is what the caller must see."""
        try:
            self._audit_run(access, status)
        except AuditUnavailableError:
            logger.exception("the audit record of run %s could not be written", access.run_id)

    def _audit_run(self, access: RunAccess, status: str) -> None:
        """Add the run's own record to the access's records and write them all."""
        if access.records is None:
            return
        user = access.user
        access.records.append(
            AuditRecord(
                user.tenant_id,
                user.user_id,
                "run",
                f"workflow:{access.workflow_id}",
                "deny" if status == "refused" else "allow",
                (),
                access.run_id,
                False,
                None,
                {"status": status},
            )
        )
        self._notes.write(access.records)

    @contextlib.contextmanager
    def _audited_end(self, access: RunAccess, run: Any) -> Iterator[None]:
        """Around driving ``run``: a run that raises is audited and re-raised as the
        caller should see it (``_failed``), whatever else ended it (``_abandoned``)."""
        try:
            yield
        except WorkflowExecutionError as error:
            failure = self._failed(access, run, error)
            if failure is error:
                raise
            raise failure from (None if isinstance(failure, NodeAccessDeniedError) else error)
        except BaseException:
            self._abandoned(access, run)
            raise

    def _abandoned(self, access: RunAccess, run: Any) -> None:
        """Audit a run left by an exception other than a failed node (it re-raises)."""
        self.abandon_run(access, run.status if run.status != "running" else "failed")

    def _failed(self, access: RunAccess, run: Any, error: WorkflowExecutionError) -> Exception:
        """The exception a failed run raises: the node refusal itself when a node was
        refused, else ``error``; with redacted results, after the audit."""
        try:
            shown = access.shown(error.results)
            self._audit_run(access, run.status if run.status != "running" else "failed")
        except AuditUnavailableError as audit_error:
            return audit_error
        error.results = shown
        cause = run.failure[1] if run.failure is not None else None
        if isinstance(cause, NodeAccessDeniedError):
            cause.results = shown
            cause.run_id = run.run_id
            return cause
        return error
