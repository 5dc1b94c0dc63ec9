"""The payroll example the access control tests share: a policy file, callers and
the workflow it governs (load -> pay -> report, load's output carrying an ``ssn``)."""

from __future__ import annotations

from kailash_nb.access_control import UserContext
from kailash_nb.workflow.builder import WorkflowBuilder

POLICY = """\
roles:
  admin: [analyst]
rules:
  - id: analysts-run-payroll
    effect: allow
    actions: [execute, read_output]
    resource: {workflow: payroll}
    subject: {role: analyst}
  - id: interns-never-pay
    effect: deny
    action: execute
    resource: {workflow: payroll, node: pay}
    subject: {role: intern}
  - id: hide-ssn
    effect: deny
    action: read_output
    resource: {workflow: payroll, node: "*", field: ssn}
    when: {attribute: user.attributes.clearance, operator: security_level_below, value: secret}
"""

ALICE = UserContext(
    user_id="alice", tenant_id="acme", roles=["analyst"], attributes={"clearance": "secret"}
)
BOB = UserContext(
    user_id="bob", tenant_id="acme", roles=["analyst"], attributes={"clearance": "internal"}
)
IVY = UserContext(
    user_id="ivy", tenant_id="acme", roles=["analyst", "intern"], attributes={"clearance": "secret"}
)
EVE = UserContext(user_id="eve", tenant_id="acme", roles=["viewer"])


def payroll():
    """load -> pay -> report; load's output carries an ``ssn``."""
    builder = WorkflowBuilder()
    builder.add_node(
        "PythonCodeNode",
        "load",
        {"code": "result = {'name': 'bob', 'ssn': '123-45-6789', 'salary': 100}"},
    )
    builder.add_node("PythonCodeNode", "pay", {"code": "result = {'paid': data['salary']}"})
    builder.add_node("PythonCodeNode", "report", {"code": "result = {'total': data['paid']}"})
    builder.add_connection("load", "result", "pay", "data")
    builder.add_connection("pay", "result", "report", "data")
    return builder.build(workflow_id="payroll")
