"""Branching and joining: ``SwitchNode`` routes data, ``MergeNode`` joins branches.

Defined at Kailash's module paths: ``kailash_nb.nodes.logic.operations`` and, for the
async variants, ``kailash_nb.nodes.logic.async_operations``.
"""

from kailash_nb.nodes.logic.async_operations import AsyncMergeNode, AsyncSwitchNode
from kailash_nb.nodes.logic.operations import MergeNode, SwitchNode

__all__ = ["AsyncMergeNode", "AsyncSwitchNode", "MergeNode", "SwitchNode"]
