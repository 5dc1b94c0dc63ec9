"""A policy: compiled rules and role inheritance, and the decision they give.

Decisions are order-independent:

1. a resource of another tenant is denied;
2. every deny rule that covers the request is evaluated: if any matches (or its
   condition raised), the request is denied, and ``applied_rules`` are those deny rules;
3. else the unconditional allow rules that cover it allow, if there are any (allow
   conditions are then not evaluated: they cannot change the decision);
4. else the allow rules whose condition holds allow (a raising condition grants nothing);
5. else the request is denied (default deny).

``priority`` and the order of the rules never enter; ``applied_rules`` are sorted.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Mapping
from typing import Any

from kailash_nb.access_control._compiled import STRATEGIES, CompiledRule, compile_rule
from kailash_nb.access_control._index import RuleIndex
from kailash_nb.access_control._paths import EvaluationContext
from kailash_nb.access_control._shared import ConditionTable
from kailash_nb.access_control.errors import AccessControlConfigurationError
from kailash_nb.access_control.model import (
    AccessDecision,
    Action,
    PermissionRule,
    Resource,
    UserContext,
)
from kailash_nb.access_control.roles import RoleHierarchy

__all__ = ["Policy"]

_versions = itertools.count(1)


class _Check:
    """The per-rule checks of one decision: which rules apply, the conditions met, the
    conditions that raised."""

    __slots__ = (
        "cacheable",
        "context",
        "environment",
        "errors",
        "met",
        "now",
        "resource",
        "roles",
        "user",
    )

    def __init__(
        self,
        user: UserContext,
        resource: Resource,
        environment: Mapping[str, Any] | None,
        roles: frozenset[str],
        now: float,
    ) -> None:
        self.user = user
        self.resource = resource
        self.environment = environment
        self.roles = roles
        self.now = now
        self.context: EvaluationContext | None = None
        self.cacheable = True
        self.errors: list[str] = []
        self.met: dict[str, bool] = {}

    def subject(self, rule: CompiledRule) -> bool:
        """The rule's user and role match the caller."""
        return (rule.user_id is None or rule.user_id == self.user.user_id) and (
            rule.role is None or rule.role in self.roles
        )

    def matching(self, rules: Iterable[CompiledRule]) -> list[str]:
        """The ids of ``rules`` that apply: tenant, role (for a user's rule), expiry and
        condition (the index has matched their subject).

        A condition that raises makes a deny rule apply and an allow rule not. A
        condition or sub-condition that rules share is evaluated once per decision
        (``ConditionTable``), except a plain attribute comparison, as cheap to repeat.
        """
        found: list[str] = []
        met = self.met
        context = self.context
        for rule in rules:
            if rule.scoped and (
                (rule.tenant_id is not None and rule.tenant_id != self.user.tenant_id)
                or (rule.role is not None and rule.role not in self.roles)
                or (rule.expires_at is not None and rule.expires_at <= self.now)
            ):
                continue
            condition = rule.condition
            if condition is None:
                found.append(rule.id)
                continue
            if context is None:
                context = self.context = EvaluationContext(
                    self.user, self.resource, self.environment, self.roles
                )
            if condition.reads_environment:
                self.cacheable = False
            try:
                holds = True if condition.holds(context) else False  # noqa: SIM210
            except Exception as error:  # a raising condition never grants
                self.errors.append(f"rule {rule.id!r}: {str(error) or type(error).__name__}")
                holds = rule.deny
            met[rule.id] = holds
            if holds:
                found.append(rule.id)
        return found


class Policy:
    """An immutable, compiled set of rules with role inheritance and a version number.

    Every ``Policy`` gets a new ``version``: a decision cached under one version never
    answers for another. Building checks every rule (``PolicyError`` naming it).

    Args:
        rules: the rules, in any order.
        roles: role inheritance, ``{"admin": ["analyst"], ...}``.
        strategy: ``"rbac"`` (roles only: a rule with conditions is refused),
            ``"abac"`` or ``"hybrid"`` (roles and conditions).
        source: where the rules came from (a file name), for messages.
    """

    def __init__(
        self,
        rules: Iterable[PermissionRule] = (),
        roles: RoleHierarchy | Mapping[str, Iterable[str]] | None = None,
        *,
        strategy: str = "hybrid",
        source: str | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise AccessControlConfigurationError(
                f"unknown access control strategy {strategy!r}; it is rbac, abac or hybrid"
            )
        self.strategy = strategy
        self.source = source
        self.roles = roles if isinstance(roles, RoleHierarchy) else RoleHierarchy(roles)
        self.rules: tuple[PermissionRule, ...] = tuple(rules)
        self.version = next(_versions)
        table = ConditionTable(getattr(rule, "conditions", None) for rule in self.rules)
        compiled = [compile_rule(rule, strategy, table) for rule in self.rules]
        self._index = RuleIndex(compiled)
        self._expiries = sorted({rule.expires_at for rule in compiled if rule.expires_at})

    def __len__(self) -> int:
        return len(self.rules)

    def next_expiry(self, now: float) -> float | None:
        """The first ``expires_at`` (a timestamp) after ``now``, or ``None``."""
        position = bisect.bisect_right(self._expiries, now)
        return self._expiries[position] if position < len(self._expiries) else None

    def decide(
        self,
        user: UserContext,
        action: Action,
        resource: Resource,
        environment: Mapping[str, Any] | None = None,
        *,
        now: float,
    ) -> tuple[AccessDecision, bool]:
        """The decision for ``user`` doing ``action`` on ``resource``, and whether it may
        be cached (it read no ``environment.*`` attribute).

        ``now`` (a timestamp) decides which rules have expired.
        """
        if resource.tenant_id is not None and resource.tenant_id != user.tenant_id:
            return self._answer(
                False,
                "the resource belongs to another tenant",
                (),
                (),
                (),
                {},
                user,
                action,
                resource,
            ), True
        roles = self.roles.expand(user.role_set)
        check = _Check(user, resource, environment, roles, now)
        denies: list[str] = []
        allows: list[str] = []
        conditional_allows: list[CompiledRule] = []
        for slot in self._index.slots(
            action, resource.workflow_id, resource.node_id, resource.field, user.user_id, roles
        ):
            if slot.denies:
                denies.extend(slot.denies)
            if slot.allows:
                allows.extend(slot.allows)
            if slot.checked_denies:
                denies.extend(check.matching(slot.checked_denies))
            if slot.checked_allows:
                allows.extend(check.matching(slot.checked_allows))
            if slot.conditional_allows:
                conditional_allows.extend(slot.conditional_allows)
        # Every deny rule is evaluated; allow conditions only when they can decide: after
        # no deny matched and no unconditional allow did.
        if not denies and not allows:
            allows = check.matching(conditional_allows)
        masked: set[str] = set()
        reads_output = action is Action.READ_OUTPUT and resource.field is None
        if allows and not denies and reads_output and resource.node_id is not None:
            for rule in self._index.masks(resource.workflow_id, resource.node_id):
                if check.subject(rule) and check.matching((rule,)):
                    masked.add(rule.field)
        errors, met, cacheable = check.errors, check.met, check.cacheable
        if denies:
            ids = tuple(sorted(set(denies)))
            reason = f"denied by rule {', '.join(ids)}"
            return self._answer(False, reason, ids, (), errors, met, user, action, resource), (
                cacheable
            )
        if allows:
            ids = tuple(sorted(set(allows)))
            reason = f"allowed by rule {', '.join(ids)}"
            fields = tuple(sorted(masked))
            return self._answer(True, reason, ids, fields, errors, met, user, action, resource), (
                cacheable
            )
        reason = f"no rule allows {action.value} on {resource} (default deny)"
        return self._answer(False, reason, (), (), errors, met, user, action, resource), cacheable

    def _answer(
        self,
        allowed: bool,
        reason: str,
        applied: tuple[str, ...],
        masked: tuple[str, ...],
        errors: Iterable[str],
        met: dict[str, bool],
        user: UserContext,
        action: Action,
        resource: Resource,
    ) -> AccessDecision:
        return AccessDecision(
            allowed=allowed,
            reason=reason,
            applied_rules=applied,
            conditions_met=met,
            masked_fields=masked,
            action=action,
            resource=resource,
            user_id=user.user_id,
            tenant_id=user.tenant_id,
            policy_version=self.version,
            errors=tuple(sorted(errors)),
        )
