"""Conditions: checked and compiled when a policy loads, evaluated without ``eval``.

A condition is a mapping with exactly one of these keys::

    all: [condition, ...]          # every one holds
    any: [condition, ...]          # at least one holds
    not: condition                 # it does not hold
    attribute: user.attributes.department      # a comparison:
      operator: equals             #   one of OPERATORS (or exists)
      value: finance               #   a literal, or
      value_from: resource.attributes.department   # another attribute
      timezone: Europe/Paris       #   time_between and weekday_in only (default UTC)

Examples: office hours ``{attribute: environment.time, operator: time_between, value:
["09:00", "17:00"]}``, a network ``{attribute: environment.ip, operator: in_network,
value: ["10.0.0.0/8"]}``, the tenant ``{attribute: resource.tenant_id, operator: equals,
value_from: user.tenant_id}``, clearance ``{attribute: user.attributes.clearance,
operator: security_level_meets, value_from: resource.attributes.classification}``.

Kailash's condition dicts (``{"type": "time_range" | "ip_range" | "user_attribute" |
"attribute_expression", "value": ...}``, as ``create_attribute_condition`` builds them)
are read too. An unknown key, operator or attribute path is a ``PolicyError`` at load.
At decision time a missing attribute or a value of the wrong type raises
``ConditionError``, which the decision treats as described in
:mod:`kailash_nb.access_control`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kailash_nb.access_control._operators import LEVELS, OPERATORS, TIME_OPERATORS, WEEKDAYS
from kailash_nb.access_control._paths import ConditionError, EvaluationContext, compile_path
from kailash_nb.access_control.errors import PolicyError
from kailash_nb.sdk_exceptions import close_matches

__all__ = [
    "LEVELS",
    "OPERATORS",
    "WEEKDAYS",
    "Condition",
    "ConditionError",
    "EvaluationContext",
    "compile_condition",
]

_COMPARISON_KEYS = frozenset({"attribute", "operator", "value", "value_from", "timezone"})
_NO_VALUE_FROM = frozenset({"matches", "in_network"}) | TIME_OPERATORS
_UTC = timezone.utc


class Condition:
    """A compiled condition: ``holds(context)`` returns a bool or raises ``ConditionError``.

    Attributes:
        reads_environment: it reads ``environment.*`` (time, address), so a decision that
            evaluated it is not cached.
    """

    __slots__ = ("holds", "reads_environment")

    def __init__(self, holds: Callable[[EvaluationContext], bool], reads_environment: bool):
        self.holds = holds
        self.reads_environment = reads_environment


def _line(spec: Any) -> int | None:
    return getattr(spec, "line", None)


def compile_condition(spec: Mapping[str, Any]) -> Condition:
    """Check ``spec`` and compile it.

    Raises:
        PolicyError: an unknown key, operator or attribute path, or a bad value; carries
            the line of the offending mapping when ``spec`` came from a policies file.
    """
    try:
        return _compile(spec)
    except PolicyError as error:
        raise error.located(None, _line(spec)) from None


def _compile(spec: Any) -> Condition:
    if not isinstance(spec, Mapping) or not spec:
        raise PolicyError(f"a condition is a non-empty mapping, not {spec!r}")
    if "type" in spec:
        return compile_condition(_from_kailash(spec))
    logical = [key for key in ("all", "any", "not") if key in spec]
    if logical:
        if len(spec) != 1:
            raise PolicyError(f"a condition with {logical[0]!r} has no other key: {dict(spec)}")
        return _logical(logical[0], spec[logical[0]])
    if "attribute" not in spec:
        raise PolicyError(
            f"a condition has one of all, any, not or attribute; got keys {sorted(spec)}"
        )
    return _comparison(spec)


def _logical(key: str, operand: Any) -> Condition:
    if key == "not":
        inner = compile_condition(operand)
        test = inner.holds
        return Condition(lambda context: not test(context), inner.reads_environment)
    if not isinstance(operand, list) or not operand:
        raise PolicyError(f"{key!r} takes a non-empty list of conditions, not {operand!r}")
    parts = [compile_condition(item) for item in operand]
    tests = tuple(part.holds for part in parts)
    reads = any(part.reads_environment for part in parts)
    if len(tests) == 1:
        return parts[0]
    if len(tests) == 2:  # the common case, without a generator per evaluation
        first, second = tests
        if key == "all":
            return Condition(lambda context: bool(first(context) and second(context)), reads)
        return Condition(lambda context: bool(first(context) or second(context)), reads)
    if key == "all":
        return Condition(lambda context: all(test(context) for test in tests), reads)
    return Condition(lambda context: any(test(context) for test in tests), reads)


def _comparison(spec: Mapping[str, Any]) -> Condition:
    unknown = set(spec) - _COMPARISON_KEYS
    if unknown:
        name = sorted(unknown)[0]
        raise PolicyError(
            f"unknown condition key {name!r}{close_matches(name, _COMPARISON_KEYS)}; "
            f"a comparison has {', '.join(sorted(_COMPARISON_KEYS))}"
        )
    read, reads_environment = compile_path(spec["attribute"])
    operator = spec.get("operator")
    if operator == "exists":
        return _exists(spec, read, reads_environment)
    if operator not in OPERATORS:
        known = sorted([*OPERATORS, "exists"])
        raise PolicyError(
            f"unknown operator {operator!r}{close_matches(str(operator), known)}; "
            f"the operators are {', '.join(known)}"
        )
    if "timezone" in spec and operator not in TIME_OPERATORS:
        raise PolicyError(f"'timezone' goes with time_between and weekday_in, not {operator!r}")
    if ("value" in spec) == ("value_from" in spec):
        raise PolicyError(f"operator {operator!r} needs exactly one of 'value' and 'value_from'")
    prepare, compare = OPERATORS[operator]
    if "value_from" in spec:
        if operator in _NO_VALUE_FROM:
            raise PolicyError(f"operator {operator!r} takes a literal 'value', not 'value_from'")
        other, other_reads = compile_path(spec["value_from"])
        return Condition(
            lambda context: compare(read(context), _prepared(prepare, other(context))),
            reads_environment or other_reads,
        )
    try:
        expected = prepare(spec["value"])
    except PolicyError as error:
        raise PolicyError(f"operator {operator!r}: {error.problem}") from None
    if operator == "time_between":
        expected = (*expected, _zone(spec.get("timezone", "UTC")))
    elif operator == "weekday_in":
        expected = (expected, _zone(spec.get("timezone", "UTC")))
    return Condition(lambda context: compare(read(context), expected), reads_environment)


def _prepared(prepare: Callable[[Any], Any], value: Any) -> Any:
    try:
        return prepare(value)
    except PolicyError as error:
        raise ConditionError(error.problem) from None


def _exists(spec: Mapping[str, Any], read: Callable[..., Any], reads: bool) -> Condition:
    if "value_from" in spec or "timezone" in spec:
        raise PolicyError("operator 'exists' takes only an optional 'value' (true or false)")
    wanted = spec.get("value", True)
    if not isinstance(wanted, bool):
        raise PolicyError(f"operator 'exists' takes value true or false, not {wanted!r}")

    def holds(context: EvaluationContext) -> bool:
        try:
            read(context)
        except ConditionError:
            return not wanted
        return wanted

    return Condition(holds, reads)


def _zone(name: Any) -> Any:
    if name == "UTC":
        return _UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, TypeError, ValueError):
        raise PolicyError(f"unknown time zone {name!r}") from None


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


def _from_kailash(spec: Mapping[str, Any]) -> Mapping[str, Any]:
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
