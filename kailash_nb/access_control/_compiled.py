"""A ``PermissionRule`` checked and compiled for fast matching."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import Enum

from kailash_nb.access_control._shared import ConditionTable
from kailash_nb.access_control.conditions import Condition, compile_condition
from kailash_nb.access_control.errors import PolicyError
from kailash_nb.access_control.model import Action, PermissionEffect, PermissionRule, action_of

__all__ = ["RESOURCE_LEVELS", "STRATEGIES", "CompiledRule", "compile_rule"]

#: Resource types, from the widest; a rule covers the resources below its own.
RESOURCE_LEVELS = {"workflow": 0, "node": 1, "field": 2}
#: ``rbac`` refuses conditions; ``abac`` and ``hybrid`` decide alike (one evaluator).
STRATEGIES = ("rbac", "abac", "hybrid")


class CompiledRule:
    """The matching form of one rule: plain attributes, a compiled condition."""

    __slots__ = (
        "action",
        "condition",
        "deny",
        "expires_at",
        "field",
        "id",
        "level",
        "node",
        "role",
        "rule",
        "scoped",
        "tenant_id",
        "user_id",
        "workflow",
    )

    def __init__(self, rule: PermissionRule, strategy: str, table: ConditionTable) -> None:
        self.rule = rule
        self.id = _text(rule.id, "id")
        self.action: Action = action_of(rule.permission)
        self.deny = _effect(rule) is PermissionEffect.DENY
        self.level = RESOURCE_LEVELS.get(rule.resource_type)
        if self.level is None:
            raise PolicyError(
                f"unknown resource_type {rule.resource_type!r}; it is workflow, node or field"
            )
        resource_id = _text(rule.resource_id, "resource_id")
        if self.level == 0:
            if rule.workflow_id not in ("*", resource_id):
                raise PolicyError("a workflow rule names its workflow in resource_id only")
            self.workflow, self.node = resource_id, None
        else:
            self.workflow, self.node = _text(rule.workflow_id, "workflow_id"), resource_id
        if (rule.field is not None) != (self.level == 2):
            raise PolicyError("a field rule (and only a field rule) names its output field")
        self.field = None if rule.field is None else _text(rule.field, "field")
        self.user_id = None if rule.user_id is None else _text(rule.user_id, "user_id")
        self.role = None if rule.role is None else _text(rule.role, "role")
        self.tenant_id = None if rule.tenant_id is None else _text(rule.tenant_id, "tenant_id")
        self.condition = _condition(rule, strategy, table)
        self.expires_at = _expiry(rule.expires_at)
        # What the index cannot decide by itself: a tenant, an expiry, a role besides a
        # user (rules are indexed under one subject).
        self.scoped = (
            self.tenant_id is not None
            or self.expires_at is not None
            or (self.user_id is not None and self.role is not None)
        )
        if isinstance(rule.priority, bool) or not isinstance(rule.priority, int):
            raise PolicyError(f"priority is an integer, not {rule.priority!r}")


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise PolicyError(f"{name} is a non-empty string, not {value!r}")
    return value


def _effect(rule: PermissionRule) -> PermissionEffect:
    value = rule.effect
    if isinstance(value, Enum) and not isinstance(value, PermissionEffect):
        value = value.value  # another package's PermissionEffect (Kailash's)
    try:
        effect = PermissionEffect(value)
    except ValueError:
        raise PolicyError(f"unknown effect {rule.effect!r}; it is allow or deny") from None
    if effect is PermissionEffect.CONDITIONAL:
        if not rule.conditions:
            raise PolicyError("a conditional rule needs conditions")
        return PermissionEffect.ALLOW
    return effect


def _condition(rule: PermissionRule, strategy: str, table: ConditionTable) -> Condition | None:
    if not rule.conditions:
        return None
    if not isinstance(rule.conditions, Mapping):
        raise PolicyError(f"conditions is a mapping, not {rule.conditions!r}")
    if strategy == "rbac":
        raise PolicyError(
            "the rbac strategy decides by roles only and this rule has conditions: "
            "use access_control_strategy 'hybrid' (or 'abac'), or drop the conditions"
        )
    # Rules with the same condition share one compiled Condition (see ConditionTable).
    return compile_condition(rule.conditions, table)


def _expiry(expires_at: object) -> float | None:
    if expires_at is None:
        return None
    if not isinstance(expires_at, datetime) or expires_at.tzinfo is None:
        raise PolicyError(f"expires_at is a datetime with a time zone, not {expires_at!r}")
    return expires_at.timestamp()


def compile_rule(
    rule: PermissionRule, strategy: str = "hybrid", table: ConditionTable | None = None
) -> CompiledRule:
    """Check ``rule`` and compile it; ``table`` holds the policy's compiled conditions
    (rules with the same condition share one).

    Raises:
        PolicyError: naming the rule and what is wrong with it.
    """
    if not isinstance(rule, PermissionRule):
        raise PolicyError(f"a rule is a PermissionRule, not {type(rule).__name__}")
    try:
        return CompiledRule(rule, strategy, ConditionTable() if table is None else table)
    except PolicyError as error:
        rule_id = rule.id if isinstance(rule.id, str) else None
        raise PolicyError(
            error.problem, source=error.source, line=error.line, rule_id=rule_id
        ) from None
