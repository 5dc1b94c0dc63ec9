"""kailash_nb: a notebook-first workflow SDK with the Kailash SDK's API.

Build a workflow, run it, read the results::

    from kailash_nb import LocalRuntime, WorkflowBuilder

    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "double", {"code": "result = x * 2"})
    results, run_id = LocalRuntime().execute(builder.build(), {"double": {"x": 21}})

Public names are loaded on first use, so ``import kailash_nb`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kailash_nb._version import __version__

if TYPE_CHECKING:
    from kailash_nb.nodes.base import Node, NodeParameter
    from kailash_nb.nodes.base_async import AsyncNode
    from kailash_nb.nodes.registry import NodeRegistry, register_node
    from kailash_nb.runtime.async_local import AsyncLocalRuntime
    from kailash_nb.runtime.events import EventBus, NodeEvent, RunEvent
    from kailash_nb.runtime.local import LocalRuntime
    from kailash_nb.workflow.builder import WorkflowBuilder
    from kailash_nb.workflow.graph import Workflow

_EXPORTS = {
    "AsyncLocalRuntime": "kailash_nb.runtime.async_local",
    "AsyncNode": "kailash_nb.nodes.base_async",
    "EventBus": "kailash_nb.runtime.events",
    "LocalRuntime": "kailash_nb.runtime.local",
    "Node": "kailash_nb.nodes.base",
    "NodeEvent": "kailash_nb.runtime.events",
    "NodeParameter": "kailash_nb.nodes.base",
    "NodeRegistry": "kailash_nb.nodes.registry",
    "RunEvent": "kailash_nb.runtime.events",
    "Workflow": "kailash_nb.workflow.graph",
    "WorkflowBuilder": "kailash_nb.workflow.builder",
    "register_node": "kailash_nb.nodes.registry",
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
    "RunEvent",
    "Workflow",
    "WorkflowBuilder",
    "__version__",
    "register_node",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kailash_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
