"""The package's public surface: ``__all__``, lazy loading and the Kailash module paths."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import kailash_nb


def test_all_names_resolve():
    for name in kailash_nb.__all__:
        assert getattr(kailash_nb, name) is not None


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        kailash_nb.Nope  # noqa: B018


def test_import_is_lazy():
    code = "import sys, kailash_nb; print('networkx' in sys.modules, 'pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("kailash_nb.workflow.builder", "WorkflowBuilder"),
        ("kailash_nb.workflow", "Workflow"),
        ("kailash_nb.runtime.local", "LocalRuntime"),
        ("kailash_nb.runtime.async_local", "AsyncLocalRuntime"),
        ("kailash_nb.nodes.base", "Node"),
        ("kailash_nb.nodes.base", "NodeParameter"),
        ("kailash_nb.nodes.base", "NodeRegistry"),
        ("kailash_nb.nodes.base", "register_node"),
        ("kailash_nb.nodes.base_async", "AsyncNode"),
        ("kailash_nb.nodes.code", "PythonCodeNode"),
        ("kailash_nb.nodes.code", "AsyncPythonCodeNode"),
        ("kailash_nb.nodes.logic", "SwitchNode"),
        ("kailash_nb.nodes.logic", "MergeNode"),
        ("kailash_nb.nodes", "PythonCodeNode"),
        ("kailash_nb.sdk_exceptions", "WorkflowExecutionError"),
        ("kailash_nb.store", "RunStore"),
        ("kailash_nb.nodes.data", "CSVReaderNode"),
        ("kailash_nb.nodes.data", "AsyncSQLDatabaseNode"),
        ("kailash_nb.nodes.api", "HTTPRequestNode"),
        ("kailash_nb.middleware.auth", "KailashJWTAuth"),
        ("kailash_nb.security", "SecurityConfig"),
    ],
)
def test_kailash_module_paths_exist(module, name):
    assert hasattr(importlib.import_module(module), name)
