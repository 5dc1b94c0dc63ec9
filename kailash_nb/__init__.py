"""kailash_nb: a notebook-first workflow SDK with the Kailash SDK's API.

Build a workflow, run it, read the results::

    from kailash_nb import LocalRuntime, WorkflowBuilder

    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "double", {"code": "result = x * 2"})
    results, run_id = LocalRuntime().execute(builder.build(), {"double": {"x": 21}})

Or cell by cell in a notebook (``%load_ext kailash_nb`` adds the ``%kailash`` magics)::

    import kailash_nb as kn

    @kn.node
    def load(path="orders.csv"):
        ...

    kn.run()

Public names are loaded on first use, so ``import kailash_nb`` stays fast.
``kn.workflow`` is both the ``kailash_nb.workflow`` subpackage and, when called,
``kailash_nb.notebook.workflow`` (``kn.workflow("etl")`` selects a notebook workflow).
"""

from __future__ import annotations

import importlib
import sys
import types
import typing

from kailash_nb._version import __version__

if typing.TYPE_CHECKING:
    from kailash_nb.nodes.base_async import AsyncNode
    from kailash_nb.nodes.node import Node, NodeParameter
    from kailash_nb.nodes.registry import NodeRegistry, register_node
    from kailash_nb.runtime.async_local import AsyncLocalRuntime
    from kailash_nb.runtime.events import EventBus, NodeEvent, RunEvent
    from kailash_nb.runtime.local import LocalRuntime
    from kailash_nb.workflow.builder import WorkflowBuilder
    from kailash_nb.workflow.graph import Workflow

_NOTEBOOK = "kailash_nb.notebook"
_EXPORTS = {
    "AsyncLocalRuntime": "kailash_nb.runtime.async_local",
    "AsyncNode": "kailash_nb.nodes.base_async",
    "EventBus": "kailash_nb.runtime.events",
    "LocalRuntime": "kailash_nb.runtime.local",
    "Node": "kailash_nb.nodes.node",
    "NodeEvent": "kailash_nb.runtime.events",
    "NodeParameter": "kailash_nb.nodes.node",
    "NodeRegistry": "kailash_nb.nodes.registry",
    "RunEvent": "kailash_nb.runtime.events",
    "Workflow": "kailash_nb.workflow.graph",
    "WorkflowBuilder": "kailash_nb.workflow.builder",
    "register_node": "kailash_nb.nodes.registry",
    # The notebook API (``kn.workflow`` is the callable ``kailash_nb.workflow`` package).
    "NodeRunError": _NOTEBOOK,
    "NotebookError": _NOTEBOOK,
    "add_node": _NOTEBOOK,
    "connect": _NOTEBOOK,
    "current": _NOTEBOOK,
    "deterministic": _NOTEBOOK,
    "disconnect": _NOTEBOOK,
    "export": _NOTEBOOK,
    "invalidate": _NOTEBOOK,
    "node": _NOTEBOOK,
    "publish": _NOTEBOOK,
    "remove": _NOTEBOOK,
    "reset": _NOTEBOOK,
    "run": _NOTEBOOK,
    "run_as": _NOTEBOOK,
    "run_async": _NOTEBOOK,
    "show": _NOTEBOOK,
    "status": _NOTEBOOK,
}

__all__ = [
    "AsyncLocalRuntime",
    "AsyncNode",
    "EventBus",
    "LocalRuntime",
    "Node",
    "NodeEvent",
    "NodeParameter",
    "NodeRegistry",
    "NodeRunError",
    "NotebookError",
    "RunEvent",
    "Workflow",
    "WorkflowBuilder",
    "__version__",
    "add_node",
    "connect",
    "current",
    "deterministic",
    "disconnect",
    "export",
    "invalidate",
    "load_ipython_extension",
    "node",
    "publish",
    "register_node",
    "remove",
    "reset",
    "run",
    "run_as",
    "run_async",
    "show",
    "status",
    "unload_ipython_extension",
    "workflow",
]


class _WorkflowPackage(types.ModuleType):
    """The type of the ``kailash_nb.workflow`` package: callable as the notebook's
    ``workflow(name)``."""

    def __call__(self, name: str) -> typing.Any:
        from kailash_nb.notebook import workflow

        return workflow(name)


class _Package(types.ModuleType):
    """This package's module type: the ``kailash_nb.workflow`` subpackage becomes
    callable when the import system attaches it here, however it was imported."""

    def __setattr__(self, name: str, value: typing.Any) -> None:
        if name == "workflow" and type(value) is types.ModuleType:
            value.__class__ = _WorkflowPackage
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> typing.Any:
    if name == "workflow":
        return importlib.import_module("kailash_nb.workflow")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kailash_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | {"workflow"})


def load_ipython_extension(ipython: typing.Any) -> None:
    """``%load_ext kailash_nb``: register the ``%kailash`` / ``%%kailash`` magics."""
    from kailash_nb.notebook.magics import load_magics

    load_magics(ipython)


def unload_ipython_extension(ipython: typing.Any) -> None:
    """``%unload_ext kailash_nb``: remove the ``%kailash`` magics."""
    from kailash_nb.notebook.magics import unload_magics

    unload_magics(ipython)
