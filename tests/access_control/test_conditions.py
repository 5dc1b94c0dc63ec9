"""Conditions: every operator, attribute paths, Kailash's condition dicts, load errors."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from _access_rules import make_rule, make_user

from kailash_nb.access_control import (
    AccessControlManager,
    ConditionError,
    EvaluationContext,
    PolicyError,
    Resource,
    UserContext,
    compile_condition,
)

MONDAY_10_UTC = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)


def holds(condition, user=None, resource=None, environment=None):
    """Evaluate ``condition`` for a caller, a resource and an environment."""
    user = user or make_user("alice", "acme", "analyst", department="finance", level=3)
    resource = resource or Resource("payroll", attributes={"classification": "confidential"})
    context = EvaluationContext(user, resource, environment, user.role_set)
    return compile_condition(condition).holds(context)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (
            {"attribute": "user.attributes.department", "operator": "equals", "value": "finance"},
            True,
        ),
        ({"attribute": "user.attributes.department", "operator": "equals", "value": "hr"}, False),
        (
            {"attribute": "user.attributes.department", "operator": "not_equals", "value": "hr"},
            True,
        ),
        (
            {
                "attribute": "user.attributes.department",
                "operator": "in",
                "value": ["hr", "finance"],
            },
            True,
        ),
        ({"attribute": "user.attributes.department", "operator": "not_in", "value": ["hr"]}, True),
        ({"attribute": "user.roles", "operator": "contains", "value": "analyst"}, True),
        ({"attribute": "user.email", "operator": "contains", "value": "@"}, False),
        ({"attribute": "user.roles", "operator": "not_contains", "value": "admin"}, True),
        (
            {"attribute": "user.roles", "operator": "contains_any", "value": ["admin", "analyst"]},
            True,
        ),
        ({"attribute": "user.attributes.level", "operator": "greater_than", "value": 2}, True),
        ({"attribute": "user.attributes.level", "operator": "less_than", "value": 3}, False),
        ({"attribute": "user.attributes.level", "operator": "greater_or_equal", "value": 3}, True),
        ({"attribute": "user.attributes.level", "operator": "less_or_equal", "value": 2.5}, False),
        ({"attribute": "user.attributes.level", "operator": "between", "value": [1, 3]}, True),
        ({"attribute": "user.user_id", "operator": "matches", "value": "al.*"}, True),
        ({"attribute": "user.user_id", "operator": "matches", "value": "al"}, False),
        (
            {
                "attribute": "resource.attributes.classification",
                "operator": "security_level_meets",
                "value": "internal",
            },
            True,
        ),
        (
            {
                "attribute": "resource.attributes.classification",
                "operator": "security_level_below",
                "value": "confidential",
            },
            False,
        ),
        (
            {
                "attribute": "resource.tenant_id",
                "operator": "equals",
                "value_from": "user.tenant_id",
            },
            True,
        ),
        ({"attribute": "resource.workflow_id", "operator": "equals", "value": "payroll"}, True),
        ({"attribute": "resource.type", "operator": "equals", "value": "workflow"}, True),
        ({"attribute": "user.attributes.missing", "operator": "exists"}, False),
        ({"attribute": "user.attributes.department", "operator": "exists", "value": False}, False),
    ],
)
def test_operators(condition, expected):
    assert holds(condition) is expected


def test_logical_combinations():
    finance = {"attribute": "user.attributes.department", "operator": "equals", "value": "finance"}
    hr = {"attribute": "user.attributes.department", "operator": "equals", "value": "hr"}
    assert holds({"all": [finance, {"not": hr}]}) is True
    assert holds({"any": [hr, {"all": [hr, finance]}]}) is False
    assert holds({"any": [hr, finance]}) is True
    assert holds({"all": [finance]}) is True
    assert holds({"any": [hr, hr, finance]}) is True
    assert holds({"all": [finance, finance, hr]}) is False
    assert holds({"any": [hr, hr, hr]}) is False


@pytest.mark.parametrize(
    ("moment", "window", "zone", "expected"),
    [
        (MONDAY_10_UTC, ["09:00", "17:00"], "UTC", True),
        (MONDAY_10_UTC.replace(hour=17), ["09:00", "17:00"], "UTC", False),
        (MONDAY_10_UTC.replace(hour=23), ["22:00", "06:00"], "UTC", True),  # across midnight
        (MONDAY_10_UTC.replace(hour=7), ["22:00", "06:00"], "UTC", False),
        (MONDAY_10_UTC, ["09:00", "10:30"], "Asia/Tokyo", False),  # 19:00 in Tokyo
    ],
)
def test_time_windows(moment, window, zone, expected):
    condition = {
        "attribute": "environment.time",
        "operator": "time_between",
        "value": window,
        "timezone": zone,
    }
    assert holds(condition, environment={"time": moment}) is expected


def test_weekdays():
    condition = {
        "attribute": "environment.time",
        "operator": "weekday_in",
        "value": ["mon", "Tuesday"],
    }
    assert holds(condition, environment={"time": MONDAY_10_UTC}) is True
    assert holds(condition, environment={"time": MONDAY_10_UTC.replace(day=12)}) is False


def test_time_defaults_to_now():
    condition = {
        "attribute": "environment.time",
        "operator": "time_between",
        "value": ["00:00", "23:59:59.999999"],
    }
    assert holds(condition) is True


@pytest.mark.parametrize(
    ("environment", "user_ip", "expected"),
    [
        ({"ip": "10.1.2.3"}, None, True),
        ({"ip": "192.168.1.1"}, None, False),
        ({}, "10.9.9.9", True),  # falls back to the caller's address
        ({"ip": "2001:db8::1"}, None, True),
        ({"ip_address": "10.0.0.1"}, None, True),  # Kailash's runtime_context key
    ],
)
def test_ip_ranges(environment, user_ip, expected):
    user = UserContext("alice", "acme", ip_address=user_ip)
    condition = {
        "attribute": "environment.ip",
        "operator": "in_network",
        "value": ["10.0.0.0/8", "2001:db8::/32"],
    }
    assert holds(condition, user=user, environment=environment) is expected


def test_environment_attributes_read_the_runtime_context():
    condition = {
        "attribute": "environment.attributes.channel",
        "operator": "equals",
        "value": "api",
    }
    assert holds(condition, environment={"channel": "api"}) is True
    assert holds(condition, environment={"attributes": {"channel": "ui"}}) is False


@pytest.mark.parametrize(
    ("condition", "environment", "message"),
    [
        (
            {"attribute": "user.attributes.nope", "operator": "equals", "value": 1},
            None,
            "user.attributes.nope is not set",
        ),
        (
            {"attribute": "user.attributes.department", "operator": "greater_than", "value": 1},
            None,
            "is not a number",
        ),
        (
            {"attribute": "environment.ip", "operator": "in_network", "value": "10.0.0.0/8"},
            {"ip": "bogus"},
            "not an IP address",
        ),
        (
            {
                "attribute": "environment.time",
                "operator": "time_between",
                "value": ["09:00", "10:00"],
            },
            {"time": datetime(2026, 1, 1)},
            "time zone",
        ),
        (
            {
                "attribute": "user.attributes.department",
                "operator": "security_level_meets",
                "value": "public",
            },
            None,
            "not a level",
        ),
        (
            {"attribute": "user.session_id", "operator": "equals", "value": "s"},
            None,
            "user.session_id is not set",
        ),
    ],
)
def test_values_that_cannot_be_compared_raise_condition_errors(condition, environment, message):
    with pytest.raises(ConditionError, match=message):
        holds(condition, environment=environment)


def test_values_are_data_never_code():
    payload = "__import__('os').system('touch /tmp/pwned')"
    condition = {"attribute": "user.attributes.department", "operator": "equals", "value": payload}
    assert holds(condition) is False
    assert holds(
        {"attribute": "user.attributes.department", "operator": "equals", "value": "finance"}
    )


@pytest.mark.parametrize(
    ("kailash", "user", "environment", "expected"),
    [
        (
            {"type": "time_range", "value": {"start": "09:00", "end": "17:00"}},
            None,
            {"time": MONDAY_10_UTC},
            True,
        ),
        (
            {"type": "ip_range", "value": {"allowed": ["10.0.0.0/8"]}},
            None,
            {"ip": "10.0.0.7"},
            True,
        ),
        (
            {"type": "user_attribute", "value": {"attribute": "department", "value": "finance"}},
            None,
            None,
            True,
        ),
        (
            {
                "type": "attribute_expression",
                "value": {
                    "attribute_path": "user.attributes.level",
                    "operator": "greater_or_equal",
                    "value": 5,
                },
            },
            None,
            None,
            False,
        ),
        (
            {
                "type": "attribute_expression",
                "value": {
                    "operator": "or",
                    "conditions": [
                        {
                            "attribute_path": "user.attributes.department",
                            "operator": "equals",
                            "value": "hr",
                        },
                        {
                            "operator": "not",
                            "conditions": [
                                {
                                    "attribute_path": "runtime.channel",
                                    "operator": "equals",
                                    "value": "ui",
                                }
                            ],
                        },
                    ],
                },
            },
            None,
            {"channel": "api"},
            True,
        ),
    ],
)
def test_kailash_condition_dicts_are_read(kailash, user, environment, expected):
    assert holds(kailash, user=user, environment=environment) is expected


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (
            {"attribute": "user.attributes.x", "operator": "equal", "value": 1},
            "unknown operator 'equal' .did you mean 'equals'",
        ),
        (
            {"attribute": "usr.department", "operator": "equals", "value": 1},
            "starts with unknown 'usr'",
        ),
        (
            {"attribute": "user.department", "operator": "equals", "value": 1},
            "user has no attribute 'department'",
        ),
        (
            {"attribute": "user.email.domain", "operator": "equals", "value": 1},
            "has no parts below it",
        ),
        ({"attribute": "user..x", "operator": "equals", "value": 1}, "empty part"),
        (
            {"attribute": "user.user_id", "operator": "equals", "value": 1, "case": True},
            "unknown condition key 'case'",
        ),
        (
            {"attribute": "user.user_id", "operator": "equals"},
            "exactly one of 'value' and 'value_from'",
        ),
        ({"attribute": "user.user_id", "operator": "in", "value": "abc"}, "expects a list"),
        (
            {"attribute": "user.attributes.n", "operator": "greater_than", "value": "3"},
            "expects a number",
        ),
        ({"attribute": "user.attributes.n", "operator": "between", "value": [5, 1]}, "low <= high"),
        (
            {"attribute": "environment.ip", "operator": "in_network", "value": ["10.0.0.0/33"]},
            "not an IP network",
        ),
        (
            {"attribute": "environment.time", "operator": "time_between", "value": ["9am", "5pm"]},
            "not a time of day",
        ),
        (
            {"attribute": "environment.time", "operator": "weekday_in", "value": ["someday"]},
            "not a day",
        ),
        (
            {
                "attribute": "environment.time",
                "operator": "time_between",
                "value": ["09:00", "10:00"],
                "timezone": "Mars/Base",
            },
            "unknown time zone",
        ),
        (
            {
                "attribute": "user.attributes.c",
                "operator": "security_level_meets",
                "value": "ultra",
            },
            "not a level",
        ),
        (
            {"attribute": "user.user_id", "operator": "matches", "value": "(a)\\1"},
            "not a valid RE2",
        ),
        (
            {"attribute": "user.user_id", "operator": "matches", "value_from": "user.email"},
            "takes a literal 'value'",
        ),
        (
            {"attribute": "user.user_id", "operator": "equals", "value": 1, "timezone": "UTC"},
            "'timezone' goes with",
        ),
        ({"all": []}, "non-empty list"),
        (
            {"all": [{"attribute": "user.user_id", "operator": "eq", "value": 1}]},
            "unknown operator 'eq'",
        ),
        ({"all": [], "any": []}, "has no other key"),
        ({"operator": "equals"}, "one of all, any, not or attribute"),
        ({"type": "custom", "value": {}}, "unknown condition type 'custom'"),
        (
            {
                "type": "attribute_expression",
                "value": {
                    "attribute_path": "user.x",
                    "operator": "equals",
                    "value": 1,
                    "case_sensitive": False,
                },
            },
            "case-insensitive",
        ),
    ],
)
def test_bad_conditions_are_load_errors(condition, message):
    with pytest.raises(PolicyError, match=message):
        compile_condition(condition)


def test_a_bad_condition_names_its_rule():
    condition = {"attribute": "user.attributes.x", "operator": "like", "value": "a%"}
    with pytest.raises(PolicyError, match=r"^rule 'finance-only': unknown operator 'like'"):
        AccessControlManager(rules=[make_rule("finance-only", conditions=condition)])
