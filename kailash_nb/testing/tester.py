"""``WorkflowTester``: load a workflow from its config file, run it on test data, check
its outputs and its time and memory budgets.

::

    tester = WorkflowTester()
    workflow = tester.load_workflow_from_config("config/production.yaml")
    result = tester.test_workflow(
        workflow,
        test_data="data/production_sample.json",
        performance_requirements={"max_execution_time": 30, "max_memory_mb": 512},
    )
    assert result.success, result.errors
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.testing import _reports
from kailash_nb.testing.cases import load_cases
from kailash_nb.testing.config_loader import load_workflow_config
from kailash_nb.testing.errors import WorkflowTestSetupError
from kailash_nb.testing.isolation import run_case_in_process
from kailash_nb.testing.performance import check_requirements
from kailash_nb.testing.results import WorkflowTestResult
from kailash_nb.testing.runner import run_case
from kailash_nb.workflow.graph import Workflow

__all__ = ["ISOLATION_MODES", "WorkflowTester"]

#: ``"none"``: run in the test's own process; ``"process"``: in a fresh one per case.
ISOLATION_MODES = ("none", "process")


class WorkflowTester:
    """Tests workflows: runs them on test data and judges outputs, time and memory.

    Args:
        runtime: the ``LocalRuntime`` in-process runs use, as it is (its own
            ``workflow_timeout``, history, limits). By default each run gets a new one
            that stops the run at ``max_execution_time``.
        isolation: the default of ``test_workflow``'s ``isolation``.

    Raises:
        WorkflowTestSetupError: an unknown isolation mode.
    """

    def __init__(self, runtime: LocalRuntime | None = None, *, isolation: str = "none") -> None:
        self.runtime = runtime
        self.isolation = _isolation(isolation, runtime)

    def load_workflow_from_config(self, path: str | os.PathLike[str]) -> Workflow:
        """The workflow defined in the YAML or JSON file at ``path`` (the layout of
        ``Workflow.to_dict()``).

        Raises:
            WorkflowConfigError: the file does not load; the message names the file,
                the line and the node.
        """
        return load_workflow_config(path)

    def test_workflow(
        self,
        workflow: Workflow,
        test_data: str | os.PathLike[str] | Mapping[str, Any] | list[Any] | None = None,
        performance_requirements: Mapping[str, float] | None = None,
        expected: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        isolation: str | None = None,
    ) -> WorkflowTestResult:
        """Run ``workflow`` once per case of ``test_data`` and judge each run.

        Args:
            test_data: runtime parameters keyed by node id, a case
                (``{"name", "parameters", "expected"}``), a list of either, or the
                path of a JSON (or YAML) file holding one (``kailash_nb.testing.cases``).
            performance_requirements: ``max_execution_time`` (s), ``max_memory_mb``
                (MiB, the run's peak allocation), ``max_node_execution_time`` (s).
            expected: ``{node_id: {output: value}}``: the listed outputs must equal these.
            isolation: ``"none"`` (this process) or ``"process"`` (a fresh process per
                case, measured there); default: the tester's.

        Returns:
            a ``WorkflowTestResult``; a failed node, an unmet requirement or an
            unexpected output makes ``success`` false and is listed in ``errors``.

        Raises:
            WorkflowTestSetupError: unusable test data, requirements or isolation.
        """
        if not isinstance(workflow, Workflow):
            raise WorkflowTestSetupError(
                f"test_workflow tests a Workflow (WorkflowBuilder.build(), "
                f"load_workflow_from_config), got {type(workflow).__name__}"
            )
        mode = self.isolation if isolation is None else _isolation(isolation, self.runtime)
        limits = check_requirements(performance_requirements)
        cases = load_cases(test_data, expected)
        if mode == "process":
            results = [run_case_in_process(workflow, case, limits) for case in cases]
        else:
            results = [run_case(workflow, case, limits, self.runtime) for case in cases]
        result = WorkflowTestResult(workflow_name=workflow.name, cases=tuple(results))
        _reports.publish(result)
        return result


def _isolation(mode: str, runtime: LocalRuntime | None) -> str:
    if mode not in ISOLATION_MODES:
        raise WorkflowTestSetupError(
            f"isolation must be one of {', '.join(map(repr, ISOLATION_MODES))}, got {mode!r:.40}"
        )
    if mode == "process" and runtime is not None:
        raise WorkflowTestSetupError(
            "isolation='process' runs each case with a new LocalRuntime in a fresh process; "
            "the tester's runtime cannot go there: create the tester without one"
        )
    return mode
