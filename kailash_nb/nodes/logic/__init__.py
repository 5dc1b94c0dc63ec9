"""Branching and joining: ``SwitchNode`` routes data, ``MergeNode`` joins branches.

Defined in ``kailash_nb.nodes.logic.operations`` (Kailash's module path).
"""

from kailash_nb.nodes.logic.operations import MergeNode, SwitchNode

__all__ = ["MergeNode", "SwitchNode"]
