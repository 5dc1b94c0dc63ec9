"""The seed's workflow-testing block, verbatim but for ``kailash.`` -> ``kailash_nb.`` and
the two paths, which name real files in tests/testing/data."""

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
PRODUCTION_CONFIG = str(DATA / "production.yaml")
PRODUCTION_SAMPLE = str(DATA / "production_sample.json")

# --- the seed block, as written ----------------------------------------------------------
# fmt: off
import pytest  # noqa: E402, F401, I001
from kailash_nb.testing import WorkflowTester  # noqa: E402
class TestEnterpriseWorkflows:
    def test_production_workflow(self):
        tester = WorkflowTester()
        workflow = tester.load_workflow_from_config(PRODUCTION_CONFIG)
        result = tester.test_workflow(workflow, test_data=PRODUCTION_SAMPLE,
            performance_requirements={"max_execution_time": 30, "max_memory_mb": 512})
        assert result.success
        assert result.performance.execution_time < 30
        assert result.performance.memory_usage_mb < 512
# fmt: on
