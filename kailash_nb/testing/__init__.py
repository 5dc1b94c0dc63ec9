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

import importlib
from typing import Any

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


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'kailash_nb.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    # The public names only: what __getattr__ serves (typing's Any is not one of them).
    return sorted(__all__)
