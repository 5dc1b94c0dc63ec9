"""``kn.run_as``: a notebook workflow run for a caller under an access policy
shows only what the caller may read, in its result, its status table and the graph
widget's node details; a node the caller may not execute fails the run; cached outputs
are reused only for nodes the caller may execute."""

from __future__ import annotations

import pytest
from _payroll import ALICE, BOB, IVY, POLICY

import kailash_nb as kn
from kailash_nb.notebook.failures import NodeRunError
from kailash_nb.notebook.widget import GraphWidget
from kailash_nb.redaction import REDACTED
from kailash_nb.runtime.access_controlled import NodeAccessDeniedError
from kailash_nb.store.audit_trail import AuditTrail


@pytest.fixture(autouse=True)
def payroll_notebook():
    kn.reset()
    kn.workflow("payroll")

    @kn.node
    def load():
        return {"name": "bob", "ssn": "123-45-6789", "salary": 100}

    @kn.node
    def pay(load):
        return {"paid": load["salary"]}

    yield
    kn.reset()


@pytest.fixture
def policy_file(tmp_path):
    path = tmp_path / "policies.yaml"
    path.write_text(POLICY)
    return path


def test_results_status_and_widget_show_the_masked_field(policy_file, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    runtime = kn.run_as(BOB, policies_file=policy_file, audit_enabled=True, database_url=url)
    result = kn.run()
    assert result["load"]["result"]["ssn"] == REDACTED
    assert result["pay"]["result"] == {"paid": 100}  # downstream got the real output
    status = repr(kn.status()) + kn.status()._repr_html_()
    assert "123-45-6789" not in status
    widget = GraphWidget(kn.current())
    try:
        widget.select("load")
        assert "123-45-6789" not in widget.details["output_preview"]
        assert REDACTED in widget.details["output_preview"]
    finally:
        widget.close()
    assert runtime is not None and runtime.audit_trail is not None
    actions = {record.record.action for record in AuditTrail(url).records(subject="bob")}
    assert actions == {"execute", "read_output", "run"}


def test_a_denied_node_fails_the_notebook_run(policy_file):
    kn.run_as(IVY, policies_file=policy_file)
    with pytest.raises(NodeRunError) as raised:
        kn.run()
    assert isinstance(raised.value.__cause__, NodeAccessDeniedError)
    assert kn.current().node_info("pay")["state"] == "failed"


def test_cached_outputs_are_reused_only_for_nodes_the_caller_may_execute(policy_file):
    kn.run_as(ALICE, policies_file=policy_file)
    assert kn.run()["pay"]["result"] == {"paid": 100}
    assert kn.current().node_info("pay")["state"] == "completed"
    kn.run_as(IVY, policies_file=policy_file)
    with pytest.raises(NodeRunError):
        kn.run()  # pay's cached output is not served to a caller who may not run it
    assert kn.current().node_info("pay")["state"] == "failed"
    kn.run_as(ALICE, policies_file=policy_file)
    assert kn.run()["pay"]["result"] == {"paid": 100}


def test_access_control_off_again(policy_file):
    kn.run_as(BOB, policies_file=policy_file)
    assert kn.run_as(None) is None
    assert kn.run()["load"]["result"]["ssn"] == "123-45-6789"
    with pytest.raises(TypeError, match="takes no options"):
        kn.run_as(None, policies_file=policy_file)
