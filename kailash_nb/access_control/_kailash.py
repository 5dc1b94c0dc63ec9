"""Kailash's condition dicts (``{"type": ..., "value": ...}``) in this package's form.

``create_attribute_condition``'s types are read: ``attribute_expression`` (nested
``and``/``or``/``not``), ``time_range``, ``ip_range`` and ``user_attribute``; any other
type is a ``PolicyError`` (Kailash's custom conditions ran code, which is never done
here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kailash_nb.access_control.errors import PolicyError

__all__ = ["from_kailash"]

_KAILASH_ROOTS = {"runtime": "environment.attributes", "timestamp": "environment.time"}
_KAILASH_LOGICAL = {"and": "all", "or": "any", "not": "not"}


def _kailash_path(path: Any) -> Any:
    if not isinstance(path, str):
        return path
    root, _, rest = path.partition(".")
    if root in _KAILASH_ROOTS:
        return _KAILASH_ROOTS[root] + ("." + rest if rest else "")
    return path


def _from_expression(value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise PolicyError(f"an attribute_expression value is a mapping, not {value!r}")
    if "conditions" in value:
        operator = _KAILASH_LOGICAL.get(value.get("operator"))
        if operator is None:
            raise PolicyError(f"unknown logical operator {value.get('operator')!r}")
        parts = [_from_expression(item) for item in value["conditions"]]
        return {operator: parts[0]} if operator == "not" else {operator: parts}
    if value.get("case_sensitive", True) is not True:
        raise PolicyError("case-insensitive comparisons are not supported; compare exact values")
    return {
        "attribute": _kailash_path(value.get("attribute_path")),
        "operator": value.get("operator"),
        "value": value.get("value"),
    }


def from_kailash(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    """Kailash's ``{"type": ..., "value": ...}`` condition in this module's form."""
    kind, value = spec.get("type"), spec.get("value")
    if set(spec) - {"type", "value"}:
        raise PolicyError(f"a Kailash condition has only 'type' and 'value': {dict(spec)}")
    if kind == "attribute_expression":
        return _from_expression(value)
    if not isinstance(value, Mapping):
        raise PolicyError(f"condition type {kind!r} takes a mapping value, not {value!r}")
    if kind == "time_range":
        window = [value.get("start", "00:00"), value.get("end", "23:59:59")]
        return {"attribute": "environment.time", "operator": "time_between", "value": window}
    if kind == "ip_range":
        allowed = value.get("allowed")
        return {"attribute": "environment.ip", "operator": "in_network", "value": allowed}
    if kind == "user_attribute":
        path = f"user.attributes.{value.get('attribute')}"
        return {"attribute": path, "operator": "equals", "value": value.get("value")}
    raise PolicyError(
        f"unknown condition type {kind!r}; the Kailash types read are attribute_expression, "
        "ip_range, time_range and user_attribute (custom code is never run)"
    )
