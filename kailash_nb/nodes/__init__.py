"""Node classes and the registry that maps type names to them."""

from kailash_nb.nodes.base_async import AsyncNode
from kailash_nb.nodes.node import Node, NodeParameter
from kailash_nb.nodes.registry import NodeRegistry, register_node

__all__ = ["AsyncNode", "Node", "NodeParameter", "NodeRegistry", "register_node"]


def __getattr__(name: str):
    # Built-in node classes load on first use so importing kailash_nb stays cheap.
    if name in NodeRegistry.names():
        return NodeRegistry.get(name)
    raise AttributeError(f"module 'kailash_nb.nodes' has no attribute {name!r}")
