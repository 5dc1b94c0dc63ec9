"""Testing workflows: ``WorkflowTester``, the pytest plugin, and local stand-ins for
the services nodes talk to.

``WorkflowTester`` loads a workflow from a YAML or JSON config file, runs it on test
data, and checks its outputs and its time and memory budgets::

    from kailash_nb.testing import WorkflowTester

    tester = WorkflowTester()
    workflow = tester.load_workflow_from_config("config/production.yaml")
    result = tester.test_workflow(
        workflow, test_data="data/sample.json",
        performance_requirements={"max_execution_time": 30, "max_memory_mb": 512},
    )
    assert result.success

The pytest plugin (``kailash_nb.testing.pytest_plugin``, loaded wherever kailash_nb is
installed) adds the ``workflow_tester`` and ``kailash_runtime`` fixtures and the
``--kailash-perf-report`` option. :class:`LLMServer` (``llm_server``) is a local server
speaking the OpenAI and Ollama chat protocols, answering from a script. Names load on
first use: importing this package imports no runtime and no Tornado.
"""

from __future__ import annotations

from kailash_nb._lazy_exports import lazy_exports

__all__ = [
    "CaseResult",
    "Failure",
    "LLMServer",
    "PerformanceReport",
    "WorkflowConfigError",
    "WorkflowOutputs",
    "WorkflowTestResult",
    "WorkflowTestSetupError",
    "WorkflowTester",
]

_MODULES = {
    "CaseResult": "kailash_nb.testing.results",
    "Failure": "kailash_nb.testing.results",
    "LLMServer": "kailash_nb.testing.llm_server",
    "PerformanceReport": "kailash_nb.testing.results",
    "WorkflowConfigError": "kailash_nb.testing.errors",
    "WorkflowOutputs": "kailash_nb.testing.results",
    "WorkflowTestResult": "kailash_nb.testing.results",
    "WorkflowTestSetupError": "kailash_nb.testing.errors",
    "WorkflowTester": "kailash_nb.testing.tester",
}


__getattr__, __dir__ = lazy_exports(__name__, _MODULES, __all__)
