"""Policies files: the layout, and errors that name the file, the line and the problem."""

from __future__ import annotations

import sys
import textwrap

import pytest
from _access_rules import make_user

from kailash_nb.access_control import (
    AccessControlManager,
    PolicyError,
    Resource,
    load_policy,
    load_policy_file,
)

POLICY = """\
roles:
  admin: [analyst]
  analyst: {inherits: [viewer]}
  viewer: []
rules:
  - id: viewers-read-reports
    effect: allow
    actions: [read_output]
    resource: {workflow: reports}
    subject: {role: viewer}
  - id: analysts-run-payroll-in-office-hours
    effect: allow
    actions: [execute, read_output]
    resource: payroll
    subject: {role: analyst}
    when:
      all:
        - {attribute: environment.time, operator: time_between, value: ["08:00", "18:00"]}
        - {attribute: environment.ip, operator: in_network, value: ["10.0.0.0/8"]}
  - id: hide-ssn
    effect: deny
    action: read_output
    resource: {workflow: payroll, node: "*", field: ssn}
    when: {attribute: user.attributes.clearance, operator: security_level_below, value: secret}
  - id: no-export-for-contractors
    effect: deny
    action: "*"
    resource: {workflow: "*", node: export}
    subject: {role: contractor}
  - id: acme-admins
    effect: allow
    action: admin
    resource: {workflow: "*"}
    subject: {role: admin}
    tenant: acme
    expires_at: 2100-01-01T00:00:00Z
    priority: 5
    description: admins of acme manage every workflow of acme
"""


def write(tmp_path, text, name="policies.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_policies_file_loads_and_decides(tmp_path):
    from datetime import datetime, timezone

    manager = AccessControlManager()
    policy = manager.load_policies(write(tmp_path, POLICY))
    assert policy.source.endswith("policies.yaml")
    assert len(policy) == 9  # one rule per action ("*" is four)
    admin = make_user("root", "acme", "admin", clearance="internal")
    office = {"time": datetime(2026, 12, 7, 9, tzinfo=timezone.utc), "ip": "10.0.0.5"}
    assert manager.check_workflow_access(admin, "reports", "read_output").allowed
    assert manager.check_workflow_access(admin, "payroll", "execute", office).allowed
    night = {**office, "time": datetime(2026, 12, 7, 23, tzinfo=timezone.utc)}
    assert not manager.check_workflow_access(admin, "payroll", "execute", night).allowed
    decision = manager.check_node_access(
        admin, "employees", "read_output", office, workflow_id="payroll"
    )
    assert decision.masked_fields == ("ssn",)
    assert manager.check_workflow_access(admin, "anything", "admin").allowed
    assert not manager.check_workflow_access(
        make_user("x", "globex", "admin"), "anything", "admin"
    ).allowed
    contractor = make_user("c", "acme", "admin", "contractor")
    assert not manager.check_access(contractor, "admin", Resource("w", "export")).allowed


def test_the_strategy_applies_to_the_file(tmp_path):
    with pytest.raises(
        PolicyError, match="rule 'analysts-run-payroll-in-office-hours': the rbac strategy"
    ):
        load_policy_file(write(tmp_path, POLICY), strategy="rbac")


def error_of(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as raised:
        load_policy(textwrap.dedent(text), source="policies.yaml")
    return raised.value


@pytest.mark.parametrize(
    ("text", "line", "rule_id", "problem"),
    [
        (
            """\
            rules:
              - id: r1
                effect: allow
                action: execute
                resource: payroll
                when: {attribute: user.attributes.team, operator: equal, value: x}
            """,
            6,
            "r1",
            "unknown operator 'equal'",
        ),
        (
            """\
            rules:
              - id: r1
                effect: allow
                action: execute
                resource: payroll
                when:
                  all:
                    - {attribute: user.attributes.team, operator: equals, value: x}
                    - {attribute: user.team, operator: equals, value: x}
            """,
            9,
            "r1",
            "user has no attribute 'team'",
        ),
        (
            """\
            rules:
              - id: r1
                effect: permit
                action: execute
                resource: payroll
            """,
            3,
            "r1",
            "effect is allow or deny",
        ),
        (
            """\
            rules:
              - id: r1
                effect: allow
                action: execute
                resource: payroll
                subjects: {role: x}
            """,
            6,
            "r1",
            "unknown rule key 'subjects' (did you mean 'subject'?)",
        ),
        (
            """\
            rules:
              - id: r1
                effect: allow
                action: execute
                resource: payroll
              - id: r1
                effect: deny
                action: execute
                resource: payroll
            """,
            6,
            "r1",
            "duplicate rule id (first at line 2)",
        ),
        (
            """\
            rules:
              - id: r1
                effect: allow
                effect: deny
                action: execute
                resource: payroll
            """,
            4,
            None,
            "duplicate key 'effect'",
        ),
        (
            """\
            rules:
              - id: r1
                effect: allow
                action: [execute, run]
                resource: payroll
            """,
            4,
            "r1",
            "unknown action 'run'",
        ),
        (
            """\
            rules:
              - id: r1
                effect: allow
                action: execute
                resource: {workflow: payroll, fields: ssn}
            """,
            5,
            "r1",
            "unknown resource key 'fields'",
        ),
        (
            """\
            rules:
              - id: r1
                effect: allow
                action: execute
                resource: {workflow: payroll, field: ssn}
            """,
            5,
            "r1",
            "names its node",
        ),
        (
            """\
            rules:
              - effect: allow
                action: execute
                resource: payroll
            """,
            2,
            None,
            "a rule needs an 'id'",
        ),
        (
            """\
            rules:
              - id: r1
                effect: allow
                action: execute
                resource: payroll
                expires_at: tomorrow
            """,
            6,
            "r1",
            "expires_at is a timestamp",
        ),
        (
            """\
            rules:
              - id: r1
                effect: allow
                action: execute
                resource: payroll
                tenant: [acme]
            """,
            2,
            "r1",
            "tenant_id is a non-empty string",
        ),
        (
            """\
            roles:
              a: [b]
              b: [a]
            rules: []
            """,
            1,
            None,
            "role inheritance has a cycle",
        ),
        ("rules:\n  - id: r1\n    effect: [allow\n", 4, None, "not valid YAML"),
        ("rule: []\n", 1, None, "unknown top-level key 'rule' (did you mean 'rules'"),
        ("roles: {}\n", 1, None, "no 'rules' list"),
        ("- a\n- b\n", 1, None, "a policies file is a mapping"),
        ("", 1, None, "a policies file is a mapping"),
        (
            """\
            base: &base {effect: allow, action: execute, resource: payroll}
            rules:
              - *base
            """,
            3,
            None,
            "anchors and aliases",
        ),
    ],
)
def test_errors_name_the_file_line_rule_and_problem(text, line, rule_id, problem):
    error = error_of(text)
    assert error.source == "policies.yaml"
    assert error.line == line
    assert error.rule_id == rule_id
    assert problem in error.problem
    assert str(error).startswith(f"policies.yaml, line {line}")


def test_a_missing_file_is_a_policy_error_naming_it(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(
        PolicyError, match=r"nope\.yaml: cannot read the policies file: No such file"
    ):
        load_policy_file(missing)


def test_a_file_that_is_not_text_is_refused(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00rules: []")
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy_file(path)


def test_matches_without_re2_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "re2", None)
    with pytest.raises(PolicyError, match=r"pip install 'kailash-nb\[re2\]'"):
        load_policy(
            "rules:\n  - {id: r, effect: allow, action: execute, resource: w,\n"
            "     when: {attribute: user.user_id, operator: matches, value: 'a.*'}}\n"
        )


def test_a_broken_file_keeps_the_policy_in_force(tmp_path):
    manager = AccessControlManager()
    manager.load_policies(write(tmp_path, POLICY))
    version = manager.policy_version
    broken = write(tmp_path, "rules:\n  - id: x\n    effect: alow\n", name="broken.yaml")
    with pytest.raises(PolicyError, match=r"broken\.yaml, line 3, rule 'x'"):
        manager.load_policies(broken)
    assert manager.policy_version == version
    assert manager.check_workflow_access(
        make_user("v", "acme", "viewer"), "reports", "read_output"
    ).allowed


def test_an_empty_rules_list_denies_everything():
    policy = load_policy("rules: []\n")
    manager = AccessControlManager()
    manager.use_policy(policy)
    assert not manager.check_workflow_access(
        make_user("root", "acme", "admin"), "payroll", "execute"
    ).allowed
