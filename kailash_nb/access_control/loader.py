"""Policies files (YAML): read, checked and compiled into a :class:`Policy`.

The layout::

    roles:                         # role inheritance (optional)
      admin: [analyst]             # an admin has the analyst's rules too
      analyst: [viewer]
    rules:
      - id: analysts-run-reports   # unique in the file
        effect: allow              # allow | deny
        actions: [execute, read_output]    # or action: execute; "*" is every action
        resource: {workflow: reports}      # + node: ..., + field: ... ("*" is any)
        subject: {role: analyst}   # role and/or user; omitted: every caller
        tenant: acme               # optional: only in this tenant
        when: {attribute: environment.time, operator: time_between,
               value: ["08:00", "18:00"]}  # optional, see conditions
        expires_at: 2027-01-01T00:00:00Z   # optional
        priority: 10               # optional, kept for reference: never decides
        description: ...           # optional

Any problem is a ``PolicyError`` naming the file, the line and the rule: malformed
YAML, a duplicate key or rule id, an unknown key, action, operator or attribute path.
Anchors and aliases are refused (a policy is read as written).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kailash_nb._located import DocumentError, LocatedDict, load_yaml_located
from kailash_nb.access_control.errors import PolicyError
from kailash_nb.access_control.model import Action, PermissionRule, action_of
from kailash_nb.access_control.policy import Policy
from kailash_nb.access_control.roles import RoleHierarchy
from kailash_nb.sdk_exceptions import close_matches

__all__ = ["MAX_POLICY_BYTES", "load_policy", "load_policy_file"]

#: A policies file larger than this is refused.
MAX_POLICY_BYTES = 4 * 1024 * 1024

_TOP_KEYS = ("version", "roles", "rules")
_RULE_KEYS = (
    "id",
    "effect",
    "action",
    "actions",
    "resource",
    "subject",
    "tenant",
    "when",
    "conditions",
    "expires_at",
    "priority",
    "description",
)
_RESOURCE_KEYS = ("workflow", "node", "field")
_SUBJECT_KEYS = ("role", "user")


def load_policy_file(path: str | os.PathLike[str], *, strategy: str = "hybrid") -> Policy:
    """Read, check and compile the policies file at ``path``.

    Raises:
        PolicyError: the file is missing, unreadable, too large or invalid; the message
            names the file, the line and the problem.
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as handle:
            data = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as error:
        raise PolicyError(
            f"cannot read the policies file: {error.strerror}", source=source
        ) from None
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(f"larger than {MAX_POLICY_BYTES} bytes", source=source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PolicyError(f"not UTF-8 text: {error.reason}", source=source) from None
    return load_policy(text, source=source, strategy=strategy)


def load_policy(text: str, *, source: str = "<policy>", strategy: str = "hybrid") -> Policy:
    """Check and compile policy ``text`` (YAML); ``source`` names it in errors.

    Raises:
        PolicyError: naming ``source``, the line and the problem.
    """
    try:
        document = load_yaml_located(text, refuse_aliases_in="a policies file")
        return _policy(document, source, strategy)
    except PolicyError as error:
        raise error.located(source, None) from None
    except DocumentError as error:
        raise PolicyError(error.problem, source=source, line=error.line) from None


def _line(mapping: Any, key: Any = None) -> int | None:
    if key is not None and isinstance(mapping, LocatedDict) and key in mapping.key_lines:
        return mapping.key_lines[key]
    return getattr(mapping, "line", None)


def _check_keys(mapping: Mapping[str, Any], known: tuple[str, ...], what: str, **where: Any):
    for key in mapping:
        if key not in known:
            raise PolicyError(
                f"unknown {what} key {key!r}{close_matches(str(key), known)}; "
                f"the keys are {', '.join(known)}",
                line=_line(mapping, key),
                **where,
            )


def _policy(document: Any, source: str, strategy: str) -> Policy:
    if not isinstance(document, Mapping):
        raise PolicyError(
            "a policies file is a mapping with 'rules' (and optionally 'roles'), "
            f"not {type(document).__name__}",
            line=_line(document) or 1,
        )
    _check_keys(document, _TOP_KEYS, "top-level")
    if document.get("version", 1) != 1:
        raise PolicyError("only version 1 is known", line=_line(document, "version"))
    if "rules" not in document:
        raise PolicyError("no 'rules' list (an empty list denies everything)", line=1)
    rules_list = document["rules"]
    if not isinstance(rules_list, list):
        raise PolicyError("'rules' is a list of rules", line=_line(document, "rules"))
    roles = _roles(document.get("roles"), _line(document, "roles"))
    rules: list[PermissionRule] = []
    lines: dict[str, int | None] = {}
    for item in rules_list:
        for rule in _rules(item, lines):
            rules.append(rule)
    try:
        return Policy(rules, roles, strategy=strategy, source=source)
    except PolicyError as error:
        raise error.located(source, lines.get(error.rule_id or "")) from None


def _roles(value: Any, line: int | None) -> RoleHierarchy:
    if value is None:
        return RoleHierarchy()
    if not isinstance(value, Mapping):
        raise PolicyError("'roles' maps each role to the roles it inherits", line=line)
    inherits: dict[str, Any] = {}
    for role, parents in value.items():
        if isinstance(parents, Mapping):
            _check_keys(parents, ("inherits",), "role")
            parents = parents.get("inherits")
        if parents is not None and not isinstance(parents, (list, str)):
            raise PolicyError(
                f"role {role!r} inherits a role name or a list of them, not {parents!r}",
                line=_line(value, role),
            )
        inherits[role] = parents or ()
    try:
        return RoleHierarchy(inherits)
    except PolicyError as error:
        raise error.located(None, line) from None


def _rules(item: Any, lines: dict[str, int | None]) -> list[PermissionRule]:
    """One ``PermissionRule`` per action of the rule mapping ``item``."""
    if not isinstance(item, Mapping):
        raise PolicyError(f"a rule is a mapping, not {item!r}", line=_line(item))
    rule_id = item.get("id")
    if not isinstance(rule_id, str) or not rule_id:
        raise PolicyError("a rule needs an 'id' (a non-empty string)", line=_line(item))
    where = {"rule_id": rule_id}
    if rule_id in lines:
        raise PolicyError(
            f"duplicate rule id (first at line {lines[rule_id]})", line=_line(item), **where
        )
    lines[rule_id] = _line(item)
    _check_keys(item, _RULE_KEYS, "rule", **where)

    def fail(problem: str, key: str) -> PolicyError:
        return PolicyError(problem, line=_line(item, key), **where)

    effect = item.get("effect")
    if effect not in ("allow", "deny"):
        raise fail(f"effect is allow or deny, not {effect!r}", "effect")
    actions = _actions(item, fail)
    resource_type, resource_id, workflow_id, field = _resource(item.get("resource"), fail)
    subject = item.get("subject") or {}
    if not isinstance(subject, Mapping):
        raise fail(f"subject is a mapping with role and/or user, not {subject!r}", "subject")
    _check_keys(subject, _SUBJECT_KEYS, "subject", **where)
    tenant = item.get("tenant")
    if "when" in item and "conditions" in item:
        raise fail("give the condition once, as 'when' (or 'conditions')", "conditions")
    conditions = item.get("when", item.get("conditions")) or {}
    expires_at = item.get("expires_at")
    if expires_at is not None and not isinstance(expires_at, datetime):
        raise fail(
            f"expires_at is a timestamp (2027-01-01T00:00:00Z), not {expires_at!r}", "expires_at"
        )
    return [
        PermissionRule(
            id=rule_id,
            resource_type=resource_type,
            resource_id=resource_id,
            permission=action,
            effect=effect,
            user_id=subject.get("user"),
            role=subject.get("role"),
            tenant_id=tenant,
            conditions=conditions,
            expires_at=expires_at,
            priority=item.get("priority", 0),
            workflow_id=workflow_id,
            field=field,
            description=item.get("description", ""),
        )
        for action in actions
    ]


def _actions(item: Mapping[str, Any], fail: Any) -> list[Action]:
    if ("action" in item) == ("actions" in item):
        raise fail("a rule has exactly one of 'action' and 'actions'", "actions")
    key = "action" if "action" in item else "actions"
    value = item[key]
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise fail(f"{key} is an action or a non-empty list of actions, not {value!r}", key)
    if "*" in names:
        return list(Action)
    found: list[Action] = []
    for name in names:
        try:
            action = action_of(name)
        except PolicyError as error:
            raise fail(error.problem, key) from None
        if action not in found:
            found.append(action)
    return found


def _resource(value: Any, fail: Any) -> tuple[str, str, str, str | None]:
    if isinstance(value, str):
        value = {"workflow": value}
    if not isinstance(value, Mapping) or "workflow" not in value:
        raise fail(
            f"resource is a mapping with workflow (and optionally node and field), not {value!r}",
            "resource",
        )
    for key in value:
        if key not in _RESOURCE_KEYS:
            raise fail(
                f"unknown resource key {key!r}{close_matches(str(key), _RESOURCE_KEYS)}; "
                "the keys are workflow, node, field",
                "resource",
            )
    for key, part in value.items():
        if not isinstance(part, str) or not part:
            raise fail(
                f"resource {key} is a non-empty string ('*' is any), not {part!r}", "resource"
            )
    workflow, node, field = value["workflow"], value.get("node"), value.get("field")
    if field is not None and node is None:
        raise fail("a resource with a field names its node ('*' is any)", "resource")
    if node is None:
        return "workflow", workflow, "*", None
    return ("node" if field is None else "field"), node, workflow, field
