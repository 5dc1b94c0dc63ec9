"""The policy model: who asks (``UserContext``), for what (``Action`` on a ``Resource``),
the rules that answer (``PermissionRule``) and the answer (``AccessDecision``).

Kailash's names and constructor arguments are kept (``UserContext``, ``PermissionRule``,
``WorkflowPermission``, ``NodePermission``, ``PermissionEffect``, ``AccessDecision``);
their permissions map onto the four actions a policy speaks of (``action_of``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from enum import Enum
from types import MappingProxyType
from typing import Any

from kailash_nb.access_control.errors import PolicyError

__all__ = [
    "AccessDecision",
    "Action",
    "NodePermission",
    "PermissionEffect",
    "PermissionRule",
    "Resource",
    "UserContext",
    "WorkflowPermission",
    "action_of",
]


class Action(str, Enum):
    """What a caller wants to do with a resource."""

    EXECUTE = "execute"  #: run a workflow, or run a node inside a run
    READ_OUTPUT = "read_output"  #: see a workflow's results, a node's output or one field
    WRITE = "write"  #: change or delete a workflow definition, feed a node's inputs
    ADMIN = "admin"  #: manage a workflow's sharing and policies (implies no other action)


class WorkflowPermission(Enum):
    """Kailash's workflow permissions; each maps onto an ``Action`` (see ``action_of``)."""

    VIEW = "view"
    EXECUTE = "execute"
    MODIFY = "modify"
    DELETE = "delete"
    SHARE = "share"
    ADMIN = "admin"


class NodePermission(Enum):
    """Kailash's node permissions; each maps onto an ``Action`` (see ``action_of``).

    ``SKIP`` and ``MASK_OUTPUT`` are outcomes, not actions: a policy denies
    ``execute`` on a node, or ``read_output`` on a field to mask it.
    """

    EXECUTE = "execute"
    READ_OUTPUT = "read_output"
    WRITE_INPUT = "write_input"
    SKIP = "skip"
    MASK_OUTPUT = "mask_output"


class PermissionEffect(Enum):
    """What a matching rule does. ``CONDITIONAL`` is an ``ALLOW`` that must have conditions."""

    ALLOW = "allow"
    DENY = "deny"
    CONDITIONAL = "conditional"


#: Other names for the actions: Kailash's permission values and the seed's ``"read"``.
ACTION_ALIASES: Mapping[str, Action] = MappingProxyType(
    {
        "view": Action.READ_OUTPUT,
        "read": Action.READ_OUTPUT,
        "modify": Action.WRITE,
        "delete": Action.WRITE,
        "write_input": Action.WRITE,
        "share": Action.ADMIN,
    }
)

_NOT_ACTIONS = {
    "skip": "deny 'execute' on the node instead",
    "mask_output": "deny 'read_output' on the node's field instead",
}


def action_of(permission: Action | WorkflowPermission | NodePermission | str) -> Action:
    """The ``Action`` a permission, an action name or one of its aliases stands for.

    Raises:
        PolicyError: not an action (``skip`` and ``mask_output`` say what to write instead).
    """
    if isinstance(permission, Action):
        return permission
    name = permission.value if isinstance(permission, Enum) else permission
    if not isinstance(name, str):
        raise PolicyError(f"an action is a string, not {type(name).__name__}")
    try:
        return Action(name)
    except ValueError:
        pass
    if name in ACTION_ALIASES:
        return ACTION_ALIASES[name]
    hint = _NOT_ACTIONS.get(name)
    if hint:
        raise PolicyError(f"{name!r} is not an action: {hint}")
    known = [action.value for action in Action] + sorted(ACTION_ALIASES)
    raise PolicyError(f"unknown action {name!r}; the actions are {', '.join(known)}")


def _frozen(value: Any) -> Any:
    """A read-only deep copy: mappings become mapping proxies, lists tuples, sets frozensets."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: _frozen(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(_frozen(item) for item in value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, frozenset):
        return sorted((_plain(item) for item in value), key=repr)
    return value


def digest(attributes: Mapping[str, Any]) -> str:
    """A short stable digest of attributes (the decision cache's key part)."""
    if not attributes:
        return ""
    text = json.dumps(_plain(attributes), sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclasses.dataclass(frozen=True)
class UserContext:
    """Who is asking: user id, tenant, roles and attributes.

    Immutable: roles become a tuple and attributes a read-only deep copy, so a decision
    cached for this identity can never be answered for a changed one. In a gateway the
    tenant and roles come from the verified token only.

    Example::

        alice = UserContext(user_id="alice", tenant_id="acme", email="alice@acme.test",
                            roles=["analyst"], attributes={"department": "finance"})
    """

    user_id: str
    tenant_id: str
    email: str = ""
    roles: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    session_id: str | None = None
    ip_address: str | None = None
    role_set: frozenset[str] = dataclasses.field(init=False, repr=False, compare=False)
    attributes_digest: str = dataclasses.field(init=False, repr=False, compare=False)
    cache_key: tuple[Any, ...] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("user_id", "tenant_id"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"UserContext.{name} must be a non-empty string")
        if isinstance(self.roles, str):
            raise ValueError("UserContext.roles is a list of role names, not one string")
        set_field = object.__setattr__
        set_field(self, "roles", tuple(self.roles))
        set_field(self, "permissions", tuple(self.permissions))
        set_field(self, "attributes", _frozen(self.attributes or {}))
        set_field(self, "role_set", frozenset(self.roles))
        set_field(self, "attributes_digest", digest(self.attributes))
        set_field(
            self,
            "cache_key",
            (
                self.tenant_id,
                self.user_id,
                self.role_set,
                self.attributes_digest,
                self.email,
                self.permissions,
            ),
        )


@dataclasses.dataclass(frozen=True)
class Resource:
    """What is asked for: a workflow, one of its nodes, or one field of a node's output.

    ``tenant_id`` is the tenant owning the resource (``None``: the caller's own tenant); a
    resource of another tenant is always denied. ``attributes`` feed conditions
    (``resource.attributes.classification``). A node whose workflow is not known
    (``workflow_id=None``) is covered only by rules for any workflow (``"*"``).
    """

    workflow_id: str | None
    node_id: str | None = None
    field: str | None = None
    tenant_id: str | None = None
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    key: tuple[Any, ...] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.workflow_id is None and self.node_id is None:
            raise ValueError("a workflow Resource needs its workflow_id")
        if self.field is not None and self.node_id is None:
            raise ValueError("a Resource with a field needs the node_id it belongs to")
        object.__setattr__(self, "attributes", _frozen(self.attributes or {}))
        object.__setattr__(
            self,
            "key",
            (self.workflow_id, self.node_id, self.field, self.tenant_id, digest(self.attributes)),
        )

    @property
    def type(self) -> str:
        """``"workflow"``, ``"node"`` or ``"field"``."""
        if self.field is not None:
            return "field"
        return "workflow" if self.node_id is None else "node"

    def __str__(self) -> str:
        parts = (self.workflow_id or "*", self.node_id, self.field)
        path = "/".join(part for part in parts if part)
        return f"{self.type} {path}"


@dataclasses.dataclass
class PermissionRule:
    """One rule: ``effect`` (allow or deny) of ``permission`` on a resource, for a subject.

    Resource: ``resource_type`` is ``"workflow"`` (``resource_id`` is the workflow id),
    ``"node"`` (``resource_id`` is the node id, in workflow ``workflow_id``) or
    ``"field"`` (``resource_id`` is the node id, ``field`` the output field). ``"*"``
    matches any id. A rule on a workflow also covers its nodes and their fields, a rule
    on a node its fields.

    Subject: ``user_id``, ``role`` (a user has a role directly or through the policy's
    role inheritance) and ``tenant_id`` must all match where given (Kailash matched any
    one of them); none given means every caller. ``tenant_id`` also scopes the rule: it
    never applies to another tenant's requests.

    ``conditions`` are checked when the rule is added or loaded (see
    ``kailash_nb.access_control.conditions``). ``priority`` is kept for Kailash's sake and
    never changes a decision: a matching deny always wins. A rule past ``expires_at``
    no longer matches.
    """

    id: str
    resource_type: str
    resource_id: str
    permission: WorkflowPermission | NodePermission | Action | str
    effect: PermissionEffect | str
    user_id: str | None = None
    role: str | None = None
    tenant_id: str | None = None
    conditions: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    created_at: datetime = dataclasses.field(default_factory=lambda: datetime.now(timezone.utc))
    created_by: str | None = None
    expires_at: datetime | None = None
    priority: int = 0
    workflow_id: str = "*"
    field: str | None = None
    description: str = ""


@dataclasses.dataclass(frozen=True)
class AccessDecision:
    """The answer to one request.

    Attributes:
        allowed: the action may go ahead.
        reason: why, naming the deciding rules (or default deny).
        applied_rules: ids of the rules that decided, sorted: every matching deny rule
            for a denial; for an allowance the matching unconditional allow rules, or
            when there are none the allow rules whose condition held (allow conditions
            are not evaluated when they cannot change the decision); none for default
            deny.
        masked_fields: for ``read_output`` on a node, the output fields the caller may
            not read (``"*"``: all of them).
        errors: conditions that raised while deciding (a raising deny denies, a raising
            allow grants nothing).
        cached: this answer came from the decision cache.
        policy_version: the version of the policy that decided.
    """

    allowed: bool
    reason: str
    applied_rules: tuple[str, ...] = ()
    conditions_met: Mapping[str, bool] = dataclasses.field(default_factory=dict)
    masked_fields: tuple[str, ...] = ()
    redirect_node: str | None = None
    action: Action | None = None
    resource: Resource | None = None
    user_id: str | None = None
    tenant_id: str | None = None
    policy_version: int = 0
    errors: tuple[str, ...] = ()
    cached: bool = False
