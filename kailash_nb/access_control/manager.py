"""``AccessControlManager``: decides, caches decisions, tells listeners of every one."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kailash_nb.access_control.cache import DEFAULT_CACHE_SIZE, DEFAULT_CACHE_TTL, DecisionCache
from kailash_nb.access_control.errors import AccessControlConfigurationError, AccessDeniedError
from kailash_nb.access_control.loader import load_policy_file
from kailash_nb.access_control.model import (
    AccessDecision,
    Action,
    NodePermission,
    PermissionRule,
    Resource,
    UserContext,
    WorkflowPermission,
    action_of,
)
from kailash_nb.access_control.policy import Policy
from kailash_nb.access_control.roles import RoleHierarchy

__all__ = ["AccessControlManager", "DecisionListener"]

#: Called with every decision, cache hits included (the audit trail subscribes here).
DecisionListener = Callable[[AccessDecision], None]
Permission = Action | WorkflowPermission | NodePermission | str


class AccessControlManager:
    """Decides who may do what, by a :class:`Policy`, default deny and deny-overrides.

    Example::

        manager = AccessControlManager(strategy="hybrid")
        manager.load_policies("policies.yaml")
        alice = UserContext(user_id="alice", tenant_id="acme", roles=["analyst"])
        decision = manager.check_workflow_access(alice, "payroll", WorkflowPermission.EXECUTE)
        if not decision.allowed: ...

    Args:
        strategy: ``"rbac"``, ``"abac"`` or ``"hybrid"`` (see :class:`Policy`).
        enabled: must be true: access control is never switched off (Kailash's
            ``enabled=False`` allowed everything); write an allow rule instead.
        rules: initial rules; ``roles``: role inheritance.
        cache_ttl, cache_size: the decision cache's bounds (``cache_size=0``: no cache).
        clock: the wall clock, in seconds (rule expiry and cache deadlines).

    Raises:
        AccessControlConfigurationError: ``enabled=False`` or an unknown strategy.
        PolicyError: a rule that does not check.
    """

    def __init__(
        self,
        strategy: str = "hybrid",
        enabled: bool = True,
        *,
        rules: Iterable[PermissionRule] = (),
        roles: Mapping[str, Iterable[str]] | None = None,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        cache_size: int = DEFAULT_CACHE_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if enabled is not True:
            raise AccessControlConfigurationError(
                "access control cannot be disabled (that would allow everything): "
                "to allow an action, add a rule that allows it"
            )
        self.enabled = True
        self._policy = Policy(rules, roles, strategy=strategy)
        self._cache = DecisionCache(cache_size, cache_ttl)
        self._clock = clock
        self._listeners: tuple[DecisionListener, ...] = ()
        self._lock = threading.RLock()

    # -- the policy --------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        """The policy in force."""
        return self._policy

    @property
    def strategy(self) -> str:
        """``"rbac"``, ``"abac"`` or ``"hybrid"``."""
        return self._policy.strategy

    @property
    def rules(self) -> list[PermissionRule]:
        """A copy of the policy's rules."""
        return list(self._policy.rules)

    @property
    def policy_version(self) -> int:
        """The version of the policy in force; it changes with every change of the policy."""
        return self._policy.version

    def use_policy(self, policy: Policy) -> None:
        """Put ``policy`` in force at once (one reference swap; cached decisions of the
        previous version stop answering)."""
        if not isinstance(policy, Policy):
            raise TypeError(f"use_policy takes a Policy, not {type(policy).__name__}")
        with self._lock:
            self._policy = policy
        self._cache.clear()

    def load_policies(self, path: str | os.PathLike[str]) -> Policy:
        """Load a policies file (YAML) with this manager's strategy and put it in force.

        Raises:
            PolicyError: naming the file, line and problem; the policy in force stays.
        """
        policy = load_policy_file(path, strategy=self.strategy)
        self.use_policy(policy)
        return policy

    def _rebuild(self, rules: Iterable[PermissionRule], roles: RoleHierarchy | None = None) -> None:
        current = self._policy
        self.use_policy(
            Policy(
                rules,
                current.roles if roles is None else roles,
                strategy=current.strategy,
                source=current.source,
            )
        )

    def add_rule(self, rule: PermissionRule) -> None:
        """Add ``rule`` (checked first: a ``PolicyError`` leaves the policy unchanged)."""
        with self._lock:
            self._rebuild([*self._policy.rules, rule])

    def remove_rule(self, rule_id: str) -> bool:
        """Remove every rule with id ``rule_id``; whether there was one."""
        with self._lock:
            kept = [rule for rule in self._policy.rules if rule.id != rule_id]
            removed = len(kept) < len(self._policy.rules)
            if removed:
                self._rebuild(kept)
        return removed

    def set_role_inheritance(self, roles: Mapping[str, Iterable[str]]) -> None:
        """Replace role inheritance, ``{"admin": ["analyst"], ...}`` (checked for cycles)."""
        with self._lock:
            self._rebuild(self._policy.rules, RoleHierarchy(roles))

    # -- decisions ---------------------------------------------------------------

    def add_listener(self, listener: DecisionListener) -> None:
        """Call ``listener`` with every decision, cache hits included.

        A listener that raises makes the check raise (fail closed: no decision is
        acted on that could not be recorded).
        """
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: DecisionListener) -> None:
        """Stop calling ``listener``."""
        with self._lock:
            self._listeners = tuple(item for item in self._listeners if item is not listener)

    def check_access(
        self,
        user: UserContext,
        action: Permission,
        resource: Resource,
        environment: Mapping[str, Any] | None = None,
    ) -> AccessDecision:
        """The decision for ``user`` doing ``action`` on ``resource``.

        ``environment`` holds per-request facts conditions read: ``time`` (an aware
        datetime, default now), ``ip`` (default ``user.ip_address``), ``attributes``.
        """
        if not isinstance(action, Action):
            action = action_of(action)
        policy = self._policy
        now = self._clock()
        key = (user.cache_key, policy.version, action, resource.key)
        decision = self._cache.get(key, now)
        if decision is None:
            decision, cacheable = policy.decide(user, action, resource, environment, now=now)
            if cacheable and self._cache.max_entries:
                until = now + self._cache.ttl
                expiry = policy.next_expiry(now)
                if expiry is not None and expiry < until:
                    until = expiry
                self._cache.put(key, dataclasses.replace(decision, cached=True), until)
        for listener in self._listeners:
            listener(decision)
        return decision

    def require(
        self,
        user: UserContext,
        action: Permission,
        resource: Resource,
        environment: Mapping[str, Any] | None = None,
    ) -> AccessDecision:
        """Like :meth:`check_access`, but a denial raises ``AccessDeniedError``."""
        decision = self.check_access(user, action, resource, environment)
        if not decision.allowed:
            raise AccessDeniedError(
                decision,
                f"{user.user_id!r} (tenant {user.tenant_id!r}) may not "
                f"{decision.action.value if decision.action else action} {resource}: "
                f"{decision.reason}",
            )
        return decision

    def check_workflow_access(
        self,
        user: UserContext,
        workflow_id: str,
        permission: Permission,
        runtime_context: Mapping[str, Any] | None = None,
        *,
        resource_attributes: Mapping[str, Any] | None = None,
    ) -> AccessDecision:
        """Kailash's call: may ``user`` do ``permission`` on workflow ``workflow_id``?

        ``runtime_context`` is the environment (see :meth:`check_access`).
        """
        resource = Resource(workflow_id, attributes=resource_attributes or {})
        return self.check_access(user, permission, resource, runtime_context)

    def check_node_access(
        self,
        user: UserContext,
        node_id: str,
        permission: Permission,
        runtime_context: Mapping[str, Any] | None = None,
        *,
        workflow_id: str | None = None,
        resource_attributes: Mapping[str, Any] | None = None,
    ) -> AccessDecision:
        """Kailash's call: may ``user`` do ``permission`` on node ``node_id``?

        Give ``workflow_id`` so that the workflow's rules (and rules naming it) apply;
        without it only rules for any workflow do. For ``read_output`` the decision's
        ``masked_fields`` lists the fields to redact.
        """
        resource = Resource(workflow_id, node_id, attributes=resource_attributes or {})
        return self.check_access(user, permission, resource, runtime_context)

    # -- information -------------------------------------------------------------

    def clear_cache(self) -> None:
        """Forget every cached decision."""
        self._cache.clear()

    def cache_info(self) -> dict[str, Any]:
        """Hits, misses, entries and bounds of the decision cache."""
        return {
            "hits": self._cache.hits,
            "misses": self._cache.misses,
            "size": len(self._cache),
            "max_entries": self._cache.max_entries,
            "ttl": self._cache.ttl,
        }

    def supports_conditions(self) -> bool:
        """Whether rules may have conditions (not under ``rbac``)."""
        return self.strategy != "rbac"

    def get_strategy_info(self) -> dict[str, Any]:
        """The strategy, whether conditions are supported, the rule count and version."""
        return {
            "strategy": self.strategy,
            "supports_conditions": self.supports_conditions(),
            "enabled": True,
            "rule_count": len(self._policy),
            "policy_version": self._policy.version,
        }
