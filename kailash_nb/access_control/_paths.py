"""Attribute paths of conditions (``user.attributes.department``) and what they read.

A path is checked when the policy loads: its root (``user``, ``resource``,
``environment``) and the attribute after it must exist; only ``attributes`` has free
keys below it. At decision time a path whose value is missing or ``None`` raises
``ConditionError``; it is never read as ``False``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from kailash_nb.access_control.errors import PolicyError
from kailash_nb.access_control.model import Resource, UserContext
from kailash_nb.sdk_exceptions import close_matches

__all__ = [
    "ROOT_ATTRIBUTES",
    "ConditionError",
    "EvaluationContext",
    "Getter",
    "attribute_key",
    "compile_path",
]

#: Every attribute a path may name after its root.
ROOT_ATTRIBUTES: Mapping[str, frozenset[str]] = {
    "user": frozenset(
        {
            "user_id",
            "tenant_id",
            "email",
            "roles",
            "permissions",
            "session_id",
            "ip_address",
            "attributes",
        }
    ),
    "resource": frozenset({"type", "tenant_id", "workflow_id", "node_id", "field", "attributes"}),
    "environment": frozenset({"time", "ip", "attributes"}),
}


class ConditionError(Exception):
    """A condition could not be evaluated (missing attribute, wrong type, bad value)."""


class EvaluationContext:
    """What conditions read for one request: the caller, the resource and the environment.

    ``environment`` may hold ``time`` (an aware datetime; default: now, UTC), ``ip`` (the
    caller's address; default: ``user.ip_address``) and ``attributes`` (a mapping); a
    Kailash ``runtime_context``'s other keys are read as environment attributes.
    ``memo`` holds the outcomes of the sub-conditions a policy shares between rules,
    so each is evaluated once per request.
    """

    __slots__ = ("_now", "environment", "memo", "resource", "roles", "user")

    def __init__(
        self,
        user: UserContext,
        resource: Resource,
        environment: Mapping[str, Any] | None,
        roles: frozenset[str],
    ) -> None:
        self.user = user
        self.resource = resource
        self.environment = environment or {}
        self.roles = roles
        self.memo: dict[Any, Any] = {}
        self._now: datetime | None = None

    def now(self) -> datetime:
        """The request's time (``environment["time"]`` or the current UTC time, read once)."""
        if self._now is None:
            given = self.environment.get("time")
            self._now = given if given is not None else datetime.now(timezone.utc)
        return self._now

    def environment_attributes(self) -> Mapping[str, Any]:
        """``environment["attributes"]``, or the environment's other keys."""
        nested = self.environment.get("attributes")
        if nested is not None:
            return nested
        return {
            key: value
            for key, value in self.environment.items()
            if key not in ("time", "ip", "ip_address")
        }


Getter = Callable[[EvaluationContext], Any]


def _user_field(name: str) -> Getter:
    if name == "roles":
        return lambda context: context.roles
    if name == "attributes":
        return lambda context: context.user.attributes
    return lambda context: getattr(context.user, name)


def _resource_field(name: str) -> Getter:
    if name == "tenant_id":
        return lambda context: context.resource.tenant_id or context.user.tenant_id
    return lambda context: getattr(context.resource, name)


def _environment_field(name: str) -> Getter:
    if name == "time":
        return lambda context: context.now()
    if name == "ip":
        return lambda context: (
            context.environment.get("ip")
            or context.environment.get("ip_address")
            or context.user.ip_address
        )
    return lambda context: context.environment_attributes()


_ROOT_GETTERS = {
    "user": _user_field,
    "resource": _resource_field,
    "environment": _environment_field,
}


#: Attributes that change from one request to the next: a decision reading them is not cached.
_PER_REQUEST = {("user", "session_id"), ("user", "ip_address")}


def attribute_key(path: Any) -> tuple[str, str] | None:
    """``("user", key)`` for ``user.attributes.<key>``, ``("resource", key)`` for
    ``resource.attributes.<key>``, else ``None`` (the paths conditions read most, which
    get a getter of their own)."""
    if not isinstance(path, str):
        return None
    parts = path.split(".")
    if len(parts) == 3 and parts[0] in ("user", "resource") and parts[1] == "attributes":
        return (parts[0], parts[2]) if parts[2] else None
    return None


def compile_path(path: Any) -> tuple[Getter, bool]:
    """A getter for ``path`` and whether it reads per-request data (``environment.*``,
    ``user.session_id``, ``user.ip_address``), which keeps a decision out of the cache.

    The getter raises ``ConditionError`` when the value is missing or ``None``.

    Raises:
        PolicyError: the path is not a string, or names an unknown root or attribute.
    """
    if not isinstance(path, str) or not path:
        raise PolicyError(f"an attribute path is a dotted string, not {path!r}")
    parts = path.split(".")
    if any(not part for part in parts):
        raise PolicyError(f"attribute path {path!r} has an empty part")
    root, name, keys = parts[0], parts[1] if len(parts) > 1 else "", parts[2:]
    if root not in ROOT_ATTRIBUTES:
        raise PolicyError(
            f"attribute path {path!r} starts with unknown {root!r}; paths start with "
            f"user., resource. or environment.{close_matches(root, ROOT_ATTRIBUTES)}"
        )
    known = ROOT_ATTRIBUTES[root]
    if name not in known:
        raise PolicyError(
            f"attribute path {path!r}: {root} has no attribute {name!r}"
            f"{close_matches(name, known)}; its attributes are {', '.join(sorted(known))}"
        )
    if keys and name != "attributes":
        raise PolicyError(
            f"attribute path {path!r}: {root}.{name} has no parts below it "
            f"(free keys go under {root}.attributes)"
        )
    base = _ROOT_GETTERS[root](name)

    # One closure per shape of path: most paths have no key or one key below their
    # attribute, and a decision reads many of them.
    if not keys:

        def read(context: EvaluationContext) -> Any:
            value = base(context)
            if value is None:
                raise ConditionError(f"{path} is not set")
            return value

    elif len(keys) == 1 and name == "attributes" and root in ("user", "resource"):
        (key,) = keys
        holder = root

        def read(context: EvaluationContext) -> Any:
            attributes = (context.user if holder == "user" else context.resource).attributes
            value = attributes.get(key)
            if value is None:
                raise ConditionError(f"{path} is not set")
            return value

    elif len(keys) == 1:
        (key,) = keys

        def read(context: EvaluationContext) -> Any:
            try:
                value = base(context)[key]
            except (KeyError, TypeError, IndexError):
                raise ConditionError(f"{path} is not set") from None
            if value is None:
                raise ConditionError(f"{path} is not set")
            return value

    else:

        def read(context: EvaluationContext) -> Any:
            value = base(context)
            try:
                for key in keys:
                    value = value[key]
            except (KeyError, TypeError, IndexError):
                raise ConditionError(f"{path} is not set") from None
            if value is None:
                raise ConditionError(f"{path} is not set")
            return value

    return read, root == "environment" or (root, name) in _PER_REQUEST
