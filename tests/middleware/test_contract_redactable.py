"""The results schemas an access-controlled gateway publishes admit what its policy
does to outputs (withheld nodes, masked fields at any depth, inside models too), and
still refuse what the workflow could never return."""

from __future__ import annotations

from jsonschema import Draft202012Validator
from pydantic import BaseModel

from kailash_nb.access_control import UserContext
from kailash_nb.middleware.contract.redactable import redactable_results
from kailash_nb.middleware.schemas import workflow_output_schema
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.redaction import REDACTED
from kailash_nb.runtime.access_controlled import AccessControlledRuntime
from kailash_nb.workflow.builder import WorkflowBuilder


class Employee(BaseModel):
    """A record with a field the policy masks."""

    name: str
    salary: int


def load() -> Employee:
    """One employee."""
    return Employee(name="bob", salary=100)


def count(employee: Employee) -> int:
    """Always one."""
    return 1


POLICY = """\
rules:
  - id: read-all
    effect: allow
    actions: [execute, read_output]
    resource: {workflow: staff}
  - id: hide-salary
    effect: deny
    action: read_output
    resource: {workflow: staff, node: load, field: salary}
  - id: hide-count
    effect: deny
    action: read_output
    resource: {workflow: staff, node: count}
"""


def staff():
    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(load), "load")
    builder.add_node(PythonCodeNode.from_function(count), "count")
    builder.add_connection("load", "result", "count", "employee")
    return builder.build(workflow_id="staff")


def test_masked_and_withheld_outputs_match_the_published_schema(tmp_path):
    policy = tmp_path / "policies.yaml"
    policy.write_text(POLICY)
    runtime = AccessControlledRuntime(policies_file=policy, history=False)
    workflow = staff()
    results, _ = runtime.execute(workflow, user_context=UserContext(user_id="u", tenant_id="t"))
    assert results["load"]["result"] == {"name": "bob", "salary": REDACTED}
    assert results["count"] == {"_access_denied": True}

    original = Draft202012Validator(workflow_output_schema(workflow))
    published = Draft202012Validator(redactable_results(workflow_output_schema(workflow)))
    assert not original.is_valid(results)  # the plain schema cannot describe them
    published.validate(results)
    published.validate({"load": {"result": {"name": "bob", "salary": 1}}, "count": {"result": 1}})
    assert not published.is_valid({"load": {"result": {"name": 7, "salary": 1}}})
