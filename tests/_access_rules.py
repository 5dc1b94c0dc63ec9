"""Helpers for the access control tests: callers and rules in one line each."""

from __future__ import annotations

from typing import Any

from kailash_nb.access_control import PermissionRule, UserContext


def make_user(
    user_id: str = "alice", tenant_id: str = "acme", *roles: str, **attributes: Any
) -> UserContext:
    """A caller with ``roles`` and ``attributes``."""
    return UserContext(
        user_id=user_id, tenant_id=tenant_id, roles=list(roles), attributes=attributes
    )


def make_rule(
    rule_id: str,
    effect: str = "allow",
    action: str = "execute",
    workflow: str = "payroll",
    **extra: Any,
) -> PermissionRule:
    """A workflow rule (pass ``resource_type``/``resource_id`` in ``extra`` for others)."""
    fields = {"resource_type": "workflow", "resource_id": workflow, **extra}
    return PermissionRule(id=rule_id, permission=action, effect=effect, **fields)
