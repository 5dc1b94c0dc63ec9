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

from kailash_nb.access_control._operators import (
    LEVELS,
    OPERATORS,
    ORDERED,
    TIME_OPERATORS,
    WEEKDAYS,
    as_given,
    number,
)
from kailash_nb.access_control._paths import (
    ConditionError,
    EvaluationContext,
    attribute_key,
    compile_path,
)
from kailash_nb.access_control._shared import ConditionTable, native, spec_key
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


def compile_condition(spec: Mapping[str, Any], table: ConditionTable | None = None) -> Condition:
    """Check ``spec`` and compile it.

    ``table`` (a policy's): a condition met before is not compiled again but shared,
    and a sub-condition the policy repeats is evaluated once per request.

    Raises:
        PolicyError: an unknown key, operator or attribute path, or a bad value; carries
            the line of the offending mapping when ``spec`` came from a policies file.
    """
    try:
        return _compile(spec, table)
    except PolicyError as error:
        raise error.located(None, _line(spec)) from None


def _compile(spec: Any, table: ConditionTable | None) -> Condition:
    if not isinstance(spec, Mapping) or not spec:
        raise PolicyError(f"a condition is a non-empty mapping, not {spec!r}")
    spec = native(spec)
    if table is None:
        return _build(spec, None)
    key = spec_key(spec)
    condition = table.compiled.get(key)
    if condition is None:
        condition = _build(spec, table)
        if table.repeated(key) and not _is_plain(spec):
            condition = _remembered(condition)
        table.compiled[key] = condition
    return condition


def _build(spec: Mapping[str, Any], table: ConditionTable | None) -> Condition:
    logical = [key for key in ("all", "any", "not") if key in spec]
    if logical:
        if len(spec) != 1:
            raise PolicyError(f"a condition with {logical[0]!r} has no other key: {dict(spec)}")
        return _logical(logical[0], spec[logical[0]], table)
    if "attribute" not in spec:
        raise PolicyError(
            f"a condition has one of all, any, not or attribute; got keys {sorted(spec)}"
        )
    return _comparison(spec)


def _is_plain(spec: Mapping[str, Any]) -> bool:
    """A comparison of a user or resource attribute with a literal: as cheap to evaluate
    again as to look up."""
    return (
        "value_from" not in spec
        and spec.get("operator") != "exists"
        and attribute_key(spec.get("attribute")) is not None
    )


class _Raised:
    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


_UNSEEN = object()


def _remembered(condition: Condition) -> Condition:
    """``condition`` evaluated once per request: its outcome (or what it raised) is kept
    in the request's ``EvaluationContext.memo``. Conditions read only the request, so a
    second evaluation could only give the same outcome."""
    test = condition.holds

    def holds(context: EvaluationContext) -> bool:
        memo = context.memo
        outcome = memo.get(holds, _UNSEEN)
        if outcome is _UNSEEN:
            try:
                outcome = test(context)
            except Exception as error:
                memo[holds] = _Raised(error)
                raise
            memo[holds] = outcome
            return outcome
        if outcome.__class__ is _Raised:
            raise outcome.error
        return outcome

    return Condition(holds, condition.reads_environment)


def _logical(key: str, operand: Any, table: ConditionTable | None) -> Condition:
    if key == "not":
        inner = compile_condition(operand, table)
        test = inner.holds
        return Condition(lambda context: not test(context), inner.reads_environment)
    if not isinstance(operand, list) or not operand:
        raise PolicyError(f"{key!r} takes a non-empty list of conditions, not {operand!r}")
    parts = [compile_condition(item, table) for item in operand]
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
        reads = reads_environment or other_reads
        if prepare is as_given:
            return Condition(lambda context: compare(read(context), other(context)), reads)
        return Condition(
            lambda context: compare(read(context), _prepared(prepare, other(context))), reads
        )
    try:
        expected = prepare(spec["value"])
    except PolicyError as error:
        raise PolicyError(f"operator {operator!r}: {error.problem}") from None
    if operator == "time_between":
        expected = (*expected, _zone(spec.get("timezone", "UTC")))
    elif operator == "weekday_in":
        expected = (expected, _zone(spec.get("timezone", "UTC")))
    place = attribute_key(spec["attribute"])
    if place is not None:
        return Condition(_attribute_test(spec["attribute"], place, operator, expected), False)
    return Condition(lambda context: compare(read(context), expected), reads_environment)


def _attribute_test(
    path: str, place: tuple[str, str], operator: str, expected: Any
) -> Callable[[EvaluationContext], bool]:
    """The test of a user or resource attribute against ``expected``, reading the
    attribute in place (the shape of most conditions: one call per evaluation)."""
    holder, key = place
    on_user = holder == "user"
    missing = f"{path} is not set"

    ordered = ORDERED.get(operator)
    if ordered is not None:

        def holds(context: EvaluationContext) -> bool:
            value = (context.user if on_user else context.resource).attributes.get(key)
            if value.__class__ is int or value.__class__ is float:
                return ordered(value, expected)
            if value is None:
                raise ConditionError(missing)
            return ordered(number(value), expected)

        return holds
    compare = OPERATORS[operator].compare

    def holds(context: EvaluationContext) -> bool:
        value = (context.user if on_user else context.resource).attributes.get(key)
        if value is None:
            raise ConditionError(missing)
        return compare(value, expected)

    return holds


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
