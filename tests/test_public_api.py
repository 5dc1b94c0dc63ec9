"""The package's public surface: ``__all__``, lazy loading and the Kailash module paths."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

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
        ("kailash_nb.nodes.code.python", "PythonCodeNode"),
        ("kailash_nb.nodes.code.async_python", "AsyncPythonCodeNode"),
        ("kailash_nb.nodes.logic.operations", "SwitchNode"),
        ("kailash_nb.nodes.logic.operations", "MergeNode"),
        ("kailash_nb.nodes.data.readers", "CSVReaderNode"),
        ("kailash_nb.nodes.data.readers", "JSONReaderNode"),
        ("kailash_nb.nodes.data.writers", "CSVWriterNode"),
        ("kailash_nb.nodes.data.writers", "JSONWriterNode"),
        ("kailash_nb.nodes.data.sql", "SQLDatabaseNode"),
        ("kailash_nb.nodes.data.async_sql", "AsyncSQLDatabaseNode"),
        ("kailash_nb.workflow.cycle_exceptions", "CycleConfigurationError"),
        ("kailash_nb.nodes.data.readers", "TextReaderNode"),
        ("kailash_nb.nodes.logic.async_operations", "AsyncSwitchNode"),
        ("kailash_nb.nodes.logic.async_operations", "AsyncMergeNode"),
        ("kailash_nb.nodes", "TextReaderNode"),
        ("kailash_nb.sdk_exceptions", "ExportException"),
        ("kailash_nb.middleware.auth", "KailashJWTAuth"),
        ("kailash_nb.security", "SecurityConfig"),
        ("kailash_nb.access_control", "AccessControlManager"),
        ("kailash_nb.access_control", "UserContext"),
        ("kailash_nb.access_control", "PermissionRule"),
        ("kailash_nb.access_control", "NodePermission"),
        ("kailash_nb.access_control", "WorkflowPermission"),
        ("kailash_nb.access_control", "PermissionEffect"),
        ("kailash_nb.access_control", "AccessDecision"),
        ("kailash_nb.logging", "EnterpriseLogger"),
        ("kailash_nb.nodes.security", "GDPRComplianceNode"),
    ],
)
def test_kailash_module_paths_exist(module, name):
    assert hasattr(importlib.import_module(module), name)


@pytest.mark.parametrize(
    ("alias", "package", "name"),
    [
        ("kailash_nb.nodes.code.python", "kailash_nb.nodes.code", "PythonCodeNode"),
        ("kailash_nb.nodes.code.async_python", "kailash_nb.nodes.code", "AsyncPythonCodeNode"),
        ("kailash_nb.nodes.logic.operations", "kailash_nb.nodes.logic", "SwitchNode"),
        ("kailash_nb.nodes.data.readers", "kailash_nb.nodes.data", "CSVReaderNode"),
        ("kailash_nb.nodes.data.sql", "kailash_nb.nodes.data", "SQLDatabaseNode"),
        ("kailash_nb.nodes.data.async_sql", "kailash_nb.nodes.data", "AsyncSQLDatabaseNode"),
        (
            "kailash_nb.workflow.cycle_exceptions",
            "kailash_nb.sdk_exceptions",
            "CycleConfigurationError",
        ),
    ],
)
def test_kailash_module_paths_name_the_same_objects(alias, package, name):
    assert getattr(importlib.import_module(alias), name) is getattr(
        importlib.import_module(package), name
    )


def _public_packages() -> list[str]:
    """Every package of kailash_nb whose dotted path has no ``_private`` part."""
    found = ["kailash_nb"]
    for info in pkgutil.walk_packages(kailash_nb.__path__, "kailash_nb."):
        if info.ispkg and not any(part.startswith("_") for part in info.name.split(".")):
            found.append(info.name)
    return found


@pytest.mark.parametrize("name", _public_packages())
def test_package_all_is_its_public_names(name):
    # As httpx checks its exported members: a package's public names are exactly its
    # __all__. A package that loads names lazily lists them in __dir__ (what its
    # __getattr__ serves); a submodule attribute is not a member unless __all__ names it.
    package = importlib.import_module(name)
    declared = getattr(package, "__all__", None)
    assert declared is not None, f"{name} declares no __all__"
    assert len(declared) == len(set(declared)), f"{name}.__all__ repeats a name"
    public = set()
    for member in dir(package):
        if member.startswith("_") or member == "annotations":
            continue
        if isinstance(getattr(package, member), types.ModuleType) and member not in declared:
            continue
        public.add(member)
    assert sorted(member for member in declared if not member.startswith("_")) == sorted(public)
    for member in declared:
        assert getattr(package, member) is not None
