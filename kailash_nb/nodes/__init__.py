"""Node classes and the registry that maps type names to them.

The built-in node classes (``PythonCodeNode``, ``CSVReaderNode``, ...) load on first
use, so importing kailash_nb stays cheap.
"""

from kailash_nb.nodes.base_async import AsyncNode
from kailash_nb.nodes.node import Node, NodeParameter
from kailash_nb.nodes.registry import NodeRegistry, register_node

__all__ = [
    "AsyncHTTPRequestNode",
    "AsyncMergeNode",
    "AsyncNode",
    "AsyncPythonCodeNode",
    "AsyncSQLDatabaseNode",
    "AsyncSwitchNode",
    "CSVReaderNode",
    "CSVWriterNode",
    "HTTPRequestNode",
    "JSONReaderNode",
    "JSONWriterNode",
    "MergeNode",
    "Node",
    "NodeParameter",
    "NodeRegistry",
    "PythonCodeNode",
    "SQLDatabaseNode",
    "SwitchNode",
    "TextReaderNode",
    "register_node",
]


def __getattr__(name: str):
    # Any registered type name resolves, the built-in ones loading their module.
    if name in NodeRegistry.names():
        return NodeRegistry.get(name)
    raise AttributeError(f"module 'kailash_nb.nodes' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
