"""The pytest plugin: fixtures, --kailash-perf-report, output diffs, and the seed block
run as a pytest test that passes, and fails naming the requirement or the node."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DATA = Path(__file__).resolve().parent / "data"
CONFIG = str(DATA / "production.yaml")
SAMPLE = str(DATA / "production_sample.json")
PLUGIN = "kailash_nb.testing.pytest_plugin"


def _plugin_args() -> list[str]:
    """Load the plugin by name unless the installed package's entry point loads it."""
    installed = {ep.value for ep in entry_points(group="pytest11")}
    return [] if PLUGIN in installed else ["-p", PLUGIN]


def _run(pytester, *args):
    return pytester.runpytest(*_plugin_args(), "-p", "no:cacheprovider", *args)


# The seed's block, verbatim but for the import's package and the three values marked.
SEED_BLOCK = """
import pytest
from kailash_nb.testing import WorkflowTester
class TestEnterpriseWorkflows:
    def test_production_workflow(self):
        tester = WorkflowTester()
        workflow = tester.load_workflow_from_config({config!r})
        result = tester.test_workflow(workflow, test_data={data!r},
            performance_requirements={{"max_execution_time": {seconds}, "max_memory_mb": {mib}}})
        assert result.success
        assert result.performance.execution_time < {seconds}
        assert result.performance.memory_usage_mb < {mib}
"""

# The production workflow's last node, replaced by one that is too slow, too hungry or
# raises (the first node and the sample data stay as they are).
TOTAL_CODE = "result = {'count': len(rows), 'amount': sum(row['amount'] for row in rows)}"
FAULTY_TOTAL = {
    "slow": "import time; time.sleep(2); result = len(rows)",
    "hungry": "result = len(rows) + len(bytearray(64 * 1024 * 1024))",
    "raises": "raise RuntimeError('ledger unavailable')",
}


def _seed_test(pytester, config: Path, *, seconds=30, mib=512):
    data = DATA / "production_sample.json"
    pytester.makepyfile(
        test_seed=SEED_BLOCK.format(config=str(config), data=str(data), seconds=seconds, mib=mib)
    )


def _faulty_config(pytester, fault: str) -> Path:
    text = (DATA / "production.yaml").read_text()
    assert TOTAL_CODE in text
    return pytester.makefile(".yaml", production=text.replace(TOTAL_CODE, FAULTY_TOTAL[fault]))


def test_the_seed_block_passes_for_a_healthy_workflow(pytester):
    _seed_test(pytester, DATA / "production.yaml")
    result = _run(pytester)
    result.assert_outcomes(passed=1)


def test_the_seed_block_fails_naming_max_execution_time_when_too_slow(pytester):
    _seed_test(pytester, _faulty_config(pytester, "slow"), seconds=0.2)
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*WorkflowTestResult failed: max_execution_time: the run took*"])


def test_the_seed_block_fails_naming_max_memory_mb_when_too_hungry(pytester):
    _seed_test(pytester, _faulty_config(pytester, "hungry"), mib=32)
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*WorkflowTestResult failed: max_memory_mb: the run's peak*"])


def test_the_seed_block_fails_naming_the_node_that_raises(pytester):
    _seed_test(pytester, _faulty_config(pytester, "raises"))
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*WorkflowTestResult failed: node 'total' raised*ledger*"])


def test_fixtures_and_the_perf_report(pytester):
    pytester.makepyfile(
        test_flows=f"""
        from kailash_nb import LocalRuntime, WorkflowBuilder

        def _flow():
            builder = WorkflowBuilder()
            builder.add_node("PythonCodeNode", "add", {{"code": "result = a + 1"}})
            return builder.build(name="adder")

        def test_with_fixtures(workflow_tester, kailash_runtime):
            assert isinstance(kailash_runtime, LocalRuntime)
            result = workflow_tester.test_workflow(_flow(), {{"add": {{"a": 1}}}})
            assert result.success

        def test_config_file(workflow_tester):
            workflow = workflow_tester.load_workflow_from_config({CONFIG!r})
            assert workflow_tester.test_workflow(workflow, {SAMPLE!r}).success
        """
    )
    result = _run(pytester, "--kailash-perf-report")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*= kailash_nb workflow performance =*",
            "test*workflow*case*result*time (s)*memory (MiB)*slowest node*isolation",
            "test_flows.py::test_with_fixtures*adder*case 1*passed*add (*s)*none",
            "test_flows.py::test_config_file*production*case 1*passed*(*s)*none",
        ]
    )


def test_no_perf_report_without_the_option(pytester):
    pytester.makepyfile(test_empty="def test_nothing():\n    pass\n")
    result = _run(pytester)
    result.assert_outcomes(passed=1)
    assert "kailash_nb workflow performance" not in result.stdout.str()


def test_failed_output_comparisons_are_explained_node_by_node(pytester):
    pytester.makepyfile(
        test_outputs="""
        from kailash_nb import WorkflowBuilder

        def test_outputs(workflow_tester):
            builder = WorkflowBuilder()
            builder.add_node("PythonCodeNode", "add", {"code": "result = a + 1"})
            builder.add_node("PythonCodeNode", "echo", {"code": "result = 'hi'"})
            result = workflow_tester.test_workflow(builder.build(), {"add": {"a": 1}})
            assert result.outputs == {"add": {"result": 3}, "gone": {"result": 0}}
        """
    )
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*workflow outputs differ (left: got, right: expected):",
            "*node 'add' output 'result': expected 3, got 2",
            "*node 'echo': not expected, got {'result': 'hi'}",
            "*node 'gone': no outputs, expected {'result': 0}",
        ]
    )


def test_the_plugin_module_imports_no_runtime():
    import subprocess
    import sys

    code = (
        f"import sys, {PLUGIN}; "
        "print(sorted(m for m in sys.modules if m.startswith('kailash_nb.')), "
        "'networkx' in sys.modules, 'anyio' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("] ")[1].split() == ["False", "False"]
    loaded = out.stdout.split("]")[0]
    assert "kailash_nb.testing.pytest_plugin" in loaded
    for heavy in ("runtime", "workflow", "nodes", "testing.tester"):
        assert f"kailash_nb.{heavy}" not in loaded


def test_the_entry_point_is_declared():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pytest11"] == {"kailash_nb": PLUGIN}
