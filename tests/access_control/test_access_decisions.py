"""Decisions: default deny, deny overrides, role inheritance, resources and subjects."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from _access_rules import make_rule, make_user
from _clock import Clock

from kailash_nb.access_control import (
    AccessControlConfigurationError,
    AccessControlManager,
    AccessDeniedError,
    Action,
    NodePermission,
    PermissionEffect,
    PermissionRule,
    PolicyError,
    Resource,
    WorkflowPermission,
    action_of,
)
from kailash_nb.sdk_exceptions import KailashException


def test_no_rules_denies_by_default():
    decision = AccessControlManager().check_workflow_access(
        make_user("root", "acme", "admin"), "payroll", "execute"
    )
    assert not decision.allowed
    assert decision.applied_rules == ()
    assert "default deny" in decision.reason


def test_rules_for_other_resources_actions_or_roles_deny_by_default():
    manager = AccessControlManager(
        rules=[
            make_rule("other-workflow", workflow="reports", role="analyst"),
            make_rule("other-action", action="read_output", role="analyst"),
            make_rule("other-role", role="viewer"),
        ]
    )
    decision = manager.check_workflow_access(
        make_user("alice", "acme", "analyst"), "payroll", "execute"
    )
    assert not decision.allowed
    assert "default deny" in decision.reason


def test_a_role_rule_allows_its_role_only():
    manager = AccessControlManager(rules=[make_rule("analysts-run", role="analyst")])
    allowed = manager.check_workflow_access(make_user("a", "acme", "analyst"), "payroll", "execute")
    assert allowed.allowed
    assert allowed.applied_rules == ("analysts-run",)
    assert not manager.check_workflow_access(
        make_user("b", "acme", "viewer"), "payroll", "execute"
    ).allowed


def test_deny_overrides_allow_whatever_the_priorities():
    manager = AccessControlManager(
        rules=[
            make_rule("allow-high", role="analyst", priority=1000),
            make_rule("deny-low", effect="deny", role="analyst", priority=-1000),
        ]
    )
    decision = manager.check_workflow_access(
        make_user("a", "acme", "analyst"), "payroll", "execute"
    )
    assert not decision.allowed
    assert decision.applied_rules == ("deny-low",)


def test_role_inheritance_gives_the_inherited_roles_rules():
    manager = AccessControlManager(
        rules=[make_rule("viewers-read", action="read_output", role="viewer")],
        roles={"admin": ["analyst"], "analyst": ["viewer"]},
    )
    admin = make_user("root", "acme", "admin")
    assert manager.check_workflow_access(admin, "payroll", "read_output").allowed


def test_role_inheritance_does_not_flow_downwards():
    manager = AccessControlManager(
        rules=[make_rule("admins-run", role="admin")],
        roles={"admin": ["analyst"], "analyst": ["viewer"]},
    )
    assert not manager.check_workflow_access(
        make_user("v", "acme", "viewer"), "payroll", "execute"
    ).allowed
    assert not manager.check_workflow_access(
        make_user("a", "acme", "analyst"), "payroll", "execute"
    ).allowed


def test_a_deny_on_an_inherited_role_denies_the_heir():
    manager = AccessControlManager(
        rules=[
            make_rule("admins-run", role="admin"),
            make_rule("no-viewers", effect="deny", role="viewer"),
        ],
        roles={"admin": ["viewer"]},
    )
    assert not manager.check_workflow_access(
        make_user("r", "acme", "admin"), "payroll", "execute"
    ).allowed


def test_role_inheritance_cycle_is_a_policy_error():
    with pytest.raises(PolicyError, match="cycle: a -> b -> a"):
        AccessControlManager(roles={"a": ["b"], "b": ["a"]})


def test_a_workflow_rule_covers_its_nodes_and_a_node_deny_overrides_it():
    manager = AccessControlManager(
        rules=[
            make_rule("run-payroll", role="analyst"),
            PermissionRule(
                "no-export",
                "node",
                "export",
                NodePermission.EXECUTE,
                PermissionEffect.DENY,
                role="analyst",
                workflow_id="payroll",
            ),
        ]
    )
    analyst = make_user("a", "acme", "analyst")
    assert manager.check_node_access(analyst, "load", "execute", workflow_id="payroll").allowed
    denied = manager.check_node_access(analyst, "export", "execute", workflow_id="payroll")
    assert not denied.allowed
    assert denied.applied_rules == ("no-export",)
    # the node rule names workflow payroll: a node called export elsewhere is not covered
    assert not manager.check_node_access(analyst, "export", "execute", workflow_id="other").allowed


def test_a_node_rule_without_workflow_covers_that_node_in_every_workflow():
    manager = AccessControlManager(
        rules=[PermissionRule("run-reader", "node", "reader", "execute", "allow", role="analyst")]
    )
    analyst = make_user("a", "acme", "analyst")
    assert manager.check_node_access(analyst, "reader", "execute", workflow_id="one").allowed
    assert manager.check_node_access(analyst, "reader", "execute").allowed
    assert not manager.check_node_access(analyst, "writer", "execute", workflow_id="one").allowed


def test_a_node_does_not_grant_its_workflow():
    manager = AccessControlManager(
        rules=[
            PermissionRule(
                "run-reader", "node", "reader", "execute", "allow", workflow_id="payroll"
            )
        ]
    )
    assert not manager.check_workflow_access(make_user(), "payroll", "execute").allowed


def test_field_deny_rules_mask_fields_of_a_readable_node():
    manager = AccessControlManager(
        rules=[
            make_rule("read-payroll", action="read_output", role="analyst"),
            PermissionRule("hide-ssn", "field", "employees", "read_output", "deny", field="ssn"),
            PermissionRule(
                "hide-salary-from-interns",
                "field",
                "*",
                "read_output",
                "deny",
                field="salary",
                role="intern",
                workflow_id="payroll",
            ),
        ]
    )
    analyst = make_user("a", "acme", "analyst")
    decision = manager.check_node_access(analyst, "employees", "read_output", workflow_id="payroll")
    assert decision.allowed
    assert decision.masked_fields == ("ssn",)
    intern = make_user("i", "acme", "analyst", "intern")
    decision = manager.check_node_access(intern, "employees", "read_output", workflow_id="payroll")
    assert decision.masked_fields == ("salary", "ssn")
    field = Resource("payroll", "employees", "ssn")
    assert not manager.check_access(analyst, "read_output", field).allowed
    assert manager.check_access(
        analyst, "read_output", Resource("payroll", "employees", "name")
    ).allowed


def test_a_user_rule_applies_to_that_user_only():
    manager = AccessControlManager(rules=[make_rule("alice-runs", user_id="alice")])
    assert manager.check_workflow_access(make_user("alice"), "payroll", "execute").allowed
    assert not manager.check_workflow_access(make_user("bob"), "payroll", "execute").allowed


def test_subject_parts_must_all_match():
    # Kailash applied a rule when any one of user_id, role and tenant_id matched.
    manager = AccessControlManager(rules=[make_rule("acme-admins", role="admin", tenant_id="acme")])
    assert manager.check_workflow_access(
        make_user("a", "acme", "admin"), "payroll", "execute"
    ).allowed
    assert not manager.check_workflow_access(
        make_user("b", "acme", "viewer"), "payroll", "execute"
    ).allowed
    assert not manager.check_workflow_access(
        make_user("c", "globex", "admin"), "payroll", "execute"
    ).allowed


def test_a_resource_of_another_tenant_is_denied_even_with_an_allow_for_everyone():
    manager = AccessControlManager(rules=[make_rule("everyone")])
    decision = manager.check_access(
        make_user("a", "acme"), "execute", Resource("payroll", tenant_id="globex")
    )
    assert not decision.allowed
    assert "another tenant" in decision.reason
    assert manager.check_access(
        make_user("a", "acme"), "execute", Resource("payroll", tenant_id="acme")
    ).allowed


def test_an_expired_rule_no_longer_matches():
    clock = Clock(datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp())
    expires = datetime(2027, 1, 1, 12, tzinfo=timezone.utc)
    manager = AccessControlManager(rules=[make_rule("temporary", expires_at=expires)], clock=clock)
    assert manager.check_workflow_access(make_user(), "payroll", "execute").allowed
    clock.now = expires.timestamp()
    assert not manager.check_workflow_access(make_user(), "payroll", "execute").allowed


def test_an_expiry_without_time_zone_is_a_policy_error():
    with pytest.raises(
        PolicyError, match="rule 'naive': expires_at is a datetime with a time zone"
    ):
        AccessControlManager(rules=[make_rule("naive", expires_at=datetime(2027, 1, 1))])


@pytest.mark.parametrize(
    ("permission", "action"),
    [
        (WorkflowPermission.VIEW, Action.READ_OUTPUT),
        (WorkflowPermission.EXECUTE, Action.EXECUTE),
        (WorkflowPermission.MODIFY, Action.WRITE),
        (WorkflowPermission.DELETE, Action.WRITE),
        (WorkflowPermission.SHARE, Action.ADMIN),
        (WorkflowPermission.ADMIN, Action.ADMIN),
        (NodePermission.EXECUTE, Action.EXECUTE),
        (NodePermission.READ_OUTPUT, Action.READ_OUTPUT),
        (NodePermission.WRITE_INPUT, Action.WRITE),
        ("read", Action.READ_OUTPUT),
        ("write", Action.WRITE),
    ],
)
def test_kailash_permissions_map_onto_actions(permission, action):
    assert action_of(permission) is action


@pytest.mark.parametrize(
    ("permission", "hint"),
    [
        (NodePermission.SKIP, "deny 'execute'"),
        (NodePermission.MASK_OUTPUT, "deny 'read_output'"),
        ("run", "unknown action"),
    ],
)
def test_outcomes_and_unknown_names_are_not_actions(permission, hint):
    with pytest.raises(PolicyError, match=hint):
        action_of(permission)


def test_admin_does_not_imply_other_actions():
    manager = AccessControlManager(rules=[make_rule("admins", action="admin", role="admin")])
    admin = make_user("r", "acme", "admin")
    assert manager.check_workflow_access(admin, "payroll", WorkflowPermission.ADMIN).allowed
    assert not manager.check_workflow_access(admin, "payroll", "execute").allowed


def test_access_control_cannot_be_disabled():
    with pytest.raises(AccessControlConfigurationError, match="cannot be disabled"):
        AccessControlManager(enabled=False)


def test_unknown_strategy_is_refused():
    with pytest.raises(
        AccessControlConfigurationError, match="unknown access control strategy 'acl'"
    ):
        AccessControlManager(strategy="acl")


def test_rbac_refuses_rules_with_conditions():
    condition = {"attribute": "user.attributes.department", "operator": "equals", "value": "hr"}
    with pytest.raises(
        PolicyError, match="rule 'hr-only': the rbac strategy decides by roles only"
    ):
        AccessControlManager(strategy="rbac", rules=[make_rule("hr-only", conditions=condition)])


def test_a_conditional_rule_needs_conditions_and_then_allows():
    with pytest.raises(PolicyError, match="conditional rule needs conditions"):
        AccessControlManager(rules=[make_rule("c", effect=PermissionEffect.CONDITIONAL)])
    condition = {"attribute": "user.attributes.department", "operator": "equals", "value": "hr"}
    manager = AccessControlManager(
        rules=[make_rule("c", effect=PermissionEffect.CONDITIONAL, conditions=condition)]
    )
    assert manager.check_workflow_access(make_user(department="hr"), "payroll", "execute").allowed


def test_a_bad_rule_leaves_the_policy_unchanged():
    manager = AccessControlManager(rules=[make_rule("ok")])
    version = manager.policy_version
    with pytest.raises(PolicyError, match="rule 'bad': unknown resource_type 'table'"):
        manager.add_rule(make_rule("bad", resource_type="table"))
    assert manager.policy_version == version
    assert [rule.id for rule in manager.rules] == ["ok"]


def test_remove_rule_takes_effect_at_once():
    manager = AccessControlManager(rules=[make_rule("ok")])
    assert manager.check_workflow_access(make_user(), "payroll", "execute").allowed
    assert manager.remove_rule("ok") is True
    assert manager.remove_rule("ok") is False
    assert not manager.check_workflow_access(make_user(), "payroll", "execute").allowed


def test_require_raises_a_typed_permission_error_naming_the_rule():
    manager = AccessControlManager(rules=[make_rule("no-run", effect="deny")])
    with pytest.raises(
        AccessDeniedError,
        match=r"'alice' \(tenant 'acme'\) may not execute workflow payroll: denied by rule no-run",
    ) as raised:
        manager.require(make_user(), "execute", Resource("payroll"))
    assert isinstance(raised.value, PermissionError)
    assert isinstance(raised.value, KailashException)
    assert raised.value.decision.applied_rules == ("no-run",)


def test_user_context_is_immutable_and_deeply_frozen():
    user = make_user("a", "acme", "analyst", team={"name": "x", "tags": ["a"]})
    with pytest.raises(AttributeError):
        user.roles = ("admin",)
    with pytest.raises(TypeError):
        user.attributes["team"]["name"] = "y"
    assert user.attributes["team"]["tags"] == ("a",)


def test_unknown_workflow_node_is_covered_only_by_rules_for_any_workflow():
    manager = AccessControlManager(rules=[make_rule("run-payroll")])
    assert not manager.check_node_access(make_user(), "load", "execute").allowed


def test_decision_lists_every_matching_rule_sorted():
    manager = AccessControlManager(
        rules=[
            make_rule("b-allow", role="analyst"),
            make_rule("a-allow"),
            make_rule("c-allow", user_id="alice"),
        ]
    )
    decision = manager.check_workflow_access(
        make_user("alice", "acme", "analyst"), "payroll", "execute"
    )
    assert decision.applied_rules == ("a-allow", "b-allow", "c-allow")


def test_effects_and_permissions_of_other_enums_are_read_by_value():
    import enum

    Effect = enum.Enum("PermissionEffect", {"ALLOW": "allow", "DENY": "deny"})
    Permission = enum.Enum("WorkflowPermission", {"EXECUTE": "execute"})
    rule = PermissionRule("r", "workflow", "payroll", Permission.EXECUTE, Effect.ALLOW)
    manager = AccessControlManager(rules=[rule])
    assert manager.check_workflow_access(make_user(), "payroll", Permission.EXECUTE).allowed


def test_strategy_information():
    manager = AccessControlManager("rbac", rules=[make_rule("r")])
    info = manager.get_strategy_info()
    assert info["strategy"] == "rbac" and info["rule_count"] == 1
    assert info["policy_version"] == manager.policy_version
    assert manager.supports_conditions() is False
    assert AccessControlManager().supports_conditions() is True
    with pytest.raises(TypeError, match="use_policy takes a Policy"):
        manager.use_policy([make_rule("x")])
