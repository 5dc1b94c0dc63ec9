"""The Kailash module path of the node base classes and the registry.

``Node`` and ``NodeParameter`` live in ``kailash_nb.nodes.node``, ``NodeMetadata`` in
``kailash_nb.nodes.metadata``, the registry in ``kailash_nb.nodes.registry``; Kailash
code imports all five from here.
"""

from kailash_nb.nodes.metadata import NodeMetadata
from kailash_nb.nodes.node import Node, NodeParameter
from kailash_nb.nodes.registry import NodeRegistry, register_node

__all__ = ["Node", "NodeMetadata", "NodeParameter", "NodeRegistry", "register_node"]
