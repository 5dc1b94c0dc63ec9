"""The comparison operators of conditions.

Each operator checks its expected value when the policy loads (``prepare``) and compares
at decision time (``compare``), raising ``ConditionError`` on a value it cannot compare
(a string where a number belongs, an address that is not an IP address, a level that
is not a level). Nothing is evaluated as code; ``matches`` uses RE2, whose matching time
is linear in the input (no catastrophic backtracking).
"""

from __future__ import annotations

import ipaddress
import operator
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, time
from typing import Any, NamedTuple

from kailash_nb.access_control._paths import ConditionError
from kailash_nb.access_control.errors import PolicyError

__all__ = [
    "LEVELS",
    "OPERATORS",
    "ORDERED",
    "TIME_OPERATORS",
    "WEEKDAYS",
    "Operator",
    "as_given",
    "number",
]

#: Classification and clearance levels, lowest first (Kailash's list).
LEVELS: tuple[str, ...] = ("public", "internal", "confidential", "secret", "top_secret")
#: Day names for ``weekday_in``.
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Operator(NamedTuple):
    """``prepare(value)`` checks an expected value; ``compare(actual, expected)`` decides."""

    prepare: Callable[[Any], Any]
    compare: Callable[[Any, Any], bool]


def as_given(value: Any) -> Any:
    """The ``prepare`` of operators that take any expected value as it is."""
    return value


def _list(value: Any) -> tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise PolicyError(f"expects a list, got {value!r}")
    return tuple(value)


def _number(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PolicyError(f"expects a number, got {value!r}")
    return value


def _range(value: Any) -> tuple[Any, Any]:
    low, high = _pair(value)
    low, high = _number(low), _number(high)
    if low > high:
        raise PolicyError(f"expects [low, high] with low <= high, got {value!r}")
    return low, high


def _pair(value: Any) -> tuple[Any, Any]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise PolicyError(f"expects a [start, end] pair, got {value!r}")
    return value[0], value[1]


def number(actual: Any) -> float | int:
    """``actual`` if it is a number (not a bool), else ``ConditionError``."""
    if isinstance(actual, bool) or not isinstance(actual, (int, float)):
        raise ConditionError(f"{actual!r} is not a number")
    return actual


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        if not isinstance(expected, str):
            raise ConditionError(f"cannot look for {expected!r} in a string")
        return expected in actual
    if isinstance(actual, Collection) and not isinstance(actual, Mapping):
        return expected in actual
    raise ConditionError(f"{actual!r} is not a string or a list")


def _contains_any(actual: Any, expected: tuple[Any, ...]) -> bool:
    return any(_contains(actual, item) for item in expected)


def _networks(value: Any) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    items = [value] if isinstance(value, str) else _list(value)
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except (TypeError, ValueError) as error:
            raise PolicyError(f"{item!r} is not an IP network (CIDR): {error}") from None
    return tuple(networks)


def _in_network(actual: Any, networks: tuple[Any, ...]) -> bool:
    try:
        address = ipaddress.ip_address(actual)
    except (TypeError, ValueError):
        raise ConditionError(f"{actual!r} is not an IP address") from None
    return any(address in network for network in networks)


def _clock(value: Any) -> time:
    try:
        return time.fromisoformat(value)
    except (TypeError, ValueError):
        raise PolicyError(f"{value!r} is not a time of day (HH:MM or HH:MM:SS)") from None


def _window(value: Any) -> tuple[time, time]:
    start, end = _pair(value)
    return _clock(start), _clock(end)


def _moment(actual: Any) -> datetime:
    if not isinstance(actual, datetime) or actual.tzinfo is None:
        raise ConditionError(f"{actual!r} is not a datetime with a time zone")
    return actual


def _time_between(actual: Any, window: tuple[time, time, Any]) -> bool:
    start, end, zone = window
    moment = _moment(actual).astimezone(zone).time().replace(tzinfo=None)
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end  # a window across midnight


def _weekdays(value: Any) -> frozenset[int]:
    days = set()
    for item in _list(value):
        name = item[:3].lower() if isinstance(item, str) else item
        if name not in WEEKDAYS:
            raise PolicyError(f"{item!r} is not a day; days are {', '.join(WEEKDAYS)}")
        days.add(WEEKDAYS.index(name))
    return frozenset(days)


def _weekday_in(actual: Any, window: tuple[frozenset[int], Any]) -> bool:
    days, zone = window
    return _moment(actual).astimezone(zone).weekday() in days


_RANKS = {level: rank for rank, level in enumerate(LEVELS)}


def _level(value: Any, error: type[Exception] = PolicyError) -> int:
    rank = _RANKS.get(value) if isinstance(value, str) else None
    if rank is None:
        rank = _RANKS.get(value.lower()) if isinstance(value, str) else None
        if rank is None:
            raise error(f"{value!r} is not a level; levels are {', '.join(LEVELS)}")
    return rank


def _regex(value: Any) -> Any:
    if not isinstance(value, str):
        raise PolicyError(f"expects a regular expression string, got {value!r}")
    try:
        import re2
    except ImportError:
        raise PolicyError(
            "the 'matches' operator needs RE2, whose matching time is bounded: "
            "pip install 'kailash-nb[re2]' (Python's re has no time bound)"
        ) from None
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(value, options)
    except re2.error as error:
        reason = error.args[0] if error.args else error
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PolicyError(f"{value!r} is not a valid RE2 regular expression: {reason}") from None


def _matches(actual: Any, pattern: Any) -> bool:
    if not isinstance(actual, str):
        raise ConditionError(f"{actual!r} is not a string")
    return pattern.fullmatch(actual) is not None


def _ordered(compare: Callable[[Any, Any], bool]) -> Operator:
    def ordered(actual: Any, expected: Any) -> bool:
        if actual.__class__ is int or actual.__class__ is float:
            return compare(actual, expected)
        return compare(number(actual), expected)

    return Operator(_number, ordered)


#: The ordering operators, by name: each compares two numbers with this function.
ORDERED: Mapping[str, Callable[[Any, Any], bool]] = {
    "greater_than": operator.gt,
    "less_than": operator.lt,
    "greater_or_equal": operator.ge,
    "less_or_equal": operator.le,
}

#: The operators, by the name a condition uses. Kailash's names where Kailash has one.
OPERATORS: Mapping[str, Operator] = {
    "equals": Operator(as_given, operator.eq),
    "not_equals": Operator(as_given, operator.ne),
    "in": Operator(_list, lambda actual, expected: actual in expected),
    "not_in": Operator(_list, lambda actual, expected: actual not in expected),
    "contains": Operator(as_given, _contains),
    "not_contains": Operator(as_given, lambda actual, expected: not _contains(actual, expected)),
    "contains_any": Operator(_list, _contains_any),
    **{name: _ordered(compare) for name, compare in ORDERED.items()},
    "between": Operator(_range, lambda actual, bounds: bounds[0] <= number(actual) <= bounds[1]),
    "matches": Operator(_regex, _matches),
    "in_network": Operator(_networks, _in_network),
    "time_between": Operator(_window, _time_between),
    "weekday_in": Operator(_weekdays, _weekday_in),
    "security_level_meets": Operator(
        _level, lambda actual, level: _level(actual, ConditionError) >= level
    ),
    "security_level_below": Operator(
        _level, lambda actual, level: _level(actual, ConditionError) < level
    ),
}

#: Operators that compare times and take an optional ``timezone`` (default UTC).
TIME_OPERATORS = frozenset({"time_between", "weekday_in"})
